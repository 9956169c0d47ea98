// Attachments in the chat page, in headless chromium against a real server: files picked, pasted or dropped
// upload at once as chips above the message box, go with the message (the offline model says what it got),
// show in the conversation (images through their signed links), again after a reload, and in an edit; a
// file the server refuses says why on its chip and stays out of the message.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { png, wav } from "./files.mjs";
import { launchBrowser, signedInPage, startServer } from "./server.mjs";

const DOT = { name: "dot.png", mimeType: "image/png", buffer: png(40, 30) };
const NOTES = { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("Shopping list\nmilk\neggs\n") };
const NOT_A_PICTURE = { name: "x.png", mimeType: "image/png", buffer: Buffer.from("these bytes are text") };
const EMPTY = { name: "empty.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) };
const TONE = { name: "tone.wav", mimeType: "audio/wav", buffer: wav(0.5) };

// What the offline model answers about what it received (agno_graphql/agents/offline.py).
const SAYS_DOT = `dot.png (image, ${DOT.buffer.length} bytes, 40x30, ${DOT.buffer.length} bytes received)`;
const SAYS_NOTES =
  `notes.txt (document, ${NOTES.buffer.length} bytes, first line: 'Shopping list', ${NOTES.buffer.length} bytes received)`;
const SAYS_TONE = `tone.wav (audio, ${TONE.buffer.length} bytes, ${TONE.buffer.length} bytes received)`;

const ANSWER = '#message-list [data-role="assistant"]';
const USER = '#message-list [data-role="user"]';
const CHIPS = "#composer .chip";
const ACTIVE_RUN = "query($id: ID!) { session(id: $id) { activeRun { id } } }";
const CANCEL_RUN = "mutation($input: CancelRunInput!) { cancelRun(input: $input) { run { id } } }";

describe("chat page: attachments", () => {
  let server;
  let browser;
  let token;

  before(async () => {
    server = await startServer();
    token = await server.token("attachments-user");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const openPage = (prepare) => signedInPage(browser, server, token, prepare);
  const attach = (page, ...files) => page.locator("#composer").getByLabel("Attach files").setInputFiles(files);
  const chip = (page, name) => page.locator(CHIPS, { has: page.locator(".name", { hasText: name }) });
  /** Each chip's file name and state: uploading, ready or refused. */
  const chipStates = (page) =>
    page.$$eval(CHIPS, (chips) => chips.map((item) => [item.querySelector(".name").textContent, item.dataset.state]));
  /** Waits until no chip is uploading any more. */
  const uploaded = (page) => page.waitForFunction(() => !document.querySelector('#composer .chip[data-state="uploading"]'));
  /** Whether the image of `selector` has loaded: the browser decoded its bytes. */
  const imageLoaded = (page, selector) =>
    page.waitForFunction((found) => {
      const image = document.querySelector(found);
      return image?.complete && image.naturalWidth > 0;
    }, selector);

  /** Sends a message in the open conversation (Send waits for the uploads), and waits until its answer settled. */
  async function send(page, message) {
    const answers = await page.locator(ANSWER).count();
    await page.fill("#message", message);
    await page.click("#send"); // waits while Send is disabled
    await page.waitForFunction(
      ([selector, count]) => document.querySelectorAll(`${selector}[data-state="done"]`).length === count,
      [ANSWER, answers + 1],
    );
    // The stored attachments (with fresh links) and the Edit button come once the run settled.
    await page.waitForSelector("#answer-tools:not([hidden])");
    return page.locator(ANSWER).last().textContent();
  }

  /** A conversation whose one message carries dot.png, made through the API. */
  async function sessionWithPicture() {
    const { data } = await server.upload(token, DOT.name, DOT.buffer, DOT.mimeType);
    const attachments = [data.uploadAttachment.attachment.id];
    const { sessionId } = await server.run(token, { agentId: "assistant", message: "A picture", attachments });
    return sessionId;
  }

  /** Changes what the history query answers, before the page reads it. */
  const rewriteHistory = (change) => async (context) => {
    await context.route("**/graphql", async (route) => {
      if (!route.request().postData()?.includes("query SessionMessages")) return route.fallback();
      const response = await route.fetch();
      const body = await response.json();
      change(body.data.session.messages.nodes);
      await route.fulfill({ response, json: body });
    });
  };

  describe("a message with a picked image and text file", () => {
    let page;

    before(async () => {
      page = await openPage();
    });

    after(async () => {
      await page.context().close();
    });

    it("uploads picked files at once, as chips: the image's thumbnail, the text file's name and size", async () => {
      await attach(page, DOT, NOTES);
      await uploaded(page);
      assert.deepEqual(await chipStates(page), [["dot.png", "ready"], ["notes.txt", "ready"]]);
      await imageLoaded(page, `${CHIPS} img.thumb`);
      assert.equal(await chip(page, "dot.png").locator("img.thumb").getAttribute("alt"), "dot.png");
      assert.equal(await chip(page, "notes.txt").locator(".status").textContent(), `${NOTES.buffer.length} B`);
      assert.equal(await chip(page, "notes.txt").locator("img").count(), 0, "no thumbnail for a text file");
      assert.equal(await page.isEnabled("#send"), true);
    });

    it("sends them with the message: the answer names them, the message shows the image and links the text", async () => {
      const answer = await send(page, "Two files");
      assert.equal(answer, `You said: Two files\nYou sent ${SAYS_DOT}; ${SAYS_NOTES}.`);
      assert.equal(await page.locator(CHIPS).count(), 0, "the composer is empty again");
      await imageLoaded(page, `${USER} .attachment img`);
      const image = page.locator(`${USER} .attachment img`);
      assert.equal(await image.evaluate((element) => element.naturalWidth), 40, "loaded through its signed link");
      assert.equal(await image.getAttribute("alt"), "dot.png");
      assert.deepEqual([await image.getAttribute("width"), await image.getAttribute("height")], ["40", "30"]);
      assert.match(await page.locator(`${USER} a.attachment.image`).getAttribute("href"), /^\/attachments\/.+signature=/);
      const link = page.locator(`${USER} a.attachment.document`);
      assert.equal(await link.textContent(), `notes.txt ${NOTES.buffer.length} B`);
      const download = await page.request.get(new URL(await link.getAttribute("href"), server.base).href);
      assert.equal(await download.text(), NOTES.buffer.toString(), "the link downloads the file, with no header");
    });

    it("shows the message's files again from the history after a reload", async () => {
      await page.reload();
      await page.waitForSelector(ANSWER);
      await imageLoaded(page, `${USER} .attachment img`);
      assert.equal(await page.locator(`${USER} .attachment img`).getAttribute("alt"), "dot.png");
      assert.equal(await page.locator(`${USER} a.attachment.document`).textContent(), `notes.txt ${NOTES.buffer.length} B`);
      assert.equal(await page.locator(USER).first().evaluate((bubble) => bubble.firstChild.textContent), "Two files");
    });
  });

  it("keeps Send disabled while a file uploads", async () => {
    let release;
    const held = new Promise((done) => (release = done));
    const page = await openPage(async (context) => {
      await context.route("**/graphql", async (route) => {
        if (!route.request().headers()["content-type"]?.startsWith("multipart/form-data")) return route.fallback();
        await held;
        await route.fallback();
      });
    });
    await attach(page, NOTES);
    await page.fill("#message", "Not yet");
    assert.equal(await chip(page, "notes.txt").locator(".status").textContent(), `${NOTES.buffer.length} B · Uploading…`);
    assert.equal(await page.isDisabled("#send"), true);
    await page.press("#message", "Enter");
    assert.equal(await page.locator(USER).count(), 0, "Enter sends nothing while the file uploads");
    release();
    await uploaded(page);
    assert.equal(await page.isEnabled("#send"), true);
    await page.context().close();
  });

  it("shows the server's reason on a refused file's chip and sends the message without it", async () => {
    const page = await openPage();
    const reasons = [];
    for (const file of [NOT_A_PICTURE, EMPTY]) {
      const { errors } = await server.upload(token, file.name, file.buffer, file.mimeType);
      assert.equal(errors[0].extensions.code, "BAD_USER_INPUT");
      reasons.push(errors[0].message);
    }
    await attach(page, NOT_A_PICTURE, DOT, EMPTY);
    await uploaded(page);
    assert.deepEqual(await chipStates(page), [["x.png", "refused"], ["dot.png", "ready"], ["empty.txt", "refused"]]);
    assert.equal(await chip(page, "x.png").locator(".status").textContent(), reasons[0]);
    assert.equal(await chip(page, "empty.txt").locator(".status").textContent(), reasons[1]);
    await chip(page, "x.png").locator("img").waitFor({ state: "detached" }); // no broken thumbnail: it is no image

    const answer = await send(page, "One good file");
    assert.equal(answer, `You said: One good file\nYou sent ${SAYS_DOT}.`);
    assert.equal(await page.locator(`${USER} .attachment`).count(), 1);
    await page.context().close();
  });

  it("adds an image pasted into the message box", async () => {
    const page = await openPage();
    await page.focus("#message");
    await page.evaluate((bytes) => {
      const clipboard = new DataTransfer();
      clipboard.items.add(new File([new Uint8Array(bytes)], "image.png", { type: "image/png" }));
      const paste = new ClipboardEvent("paste", { clipboardData: clipboard, bubbles: true, cancelable: true });
      document.querySelector("#message").dispatchEvent(paste);
    }, [...png(24, 24)]);
    await uploaded(page);
    assert.deepEqual(await chipStates(page), [["image.png", "ready"]]);
    await imageLoaded(page, `${CHIPS} img.thumb`);
    assert.equal(await page.inputValue("#message"), "", "nothing pasted as text");
    const answer = await send(page, "Pasted");
    assert.match(answer, /^You said: Pasted\nYou sent image\.png \(image, \d+ bytes, 24x24, /);
    await page.context().close();
  });

  it("adds files dropped onto the conversation", async () => {
    const page = await openPage();
    const dropped = await page.evaluateHandle(
      ([name, text]) => {
        const data = new DataTransfer();
        data.items.add(new File([text], name, { type: "text/plain" }));
        return data;
      },
      [NOTES.name, NOTES.buffer.toString()],
    );
    await page.dispatchEvent("#messages", "dragover", { dataTransfer: dropped });
    assert.equal(await page.locator("#conversation[data-dropping]").count(), 1, "the conversation shows it takes the files");
    await page.dispatchEvent("#messages", "drop", { dataTransfer: dropped });
    assert.equal(await page.locator("#conversation[data-dropping]").count(), 0);
    await uploaded(page);
    assert.deepEqual(await chipStates(page), [["notes.txt", "ready"]]);
    await page.context().close();
  });

  it("leaves out a file removed from the composer", async () => {
    const page = await openPage();
    await attach(page, DOT, NOTES);
    await uploaded(page);
    await page.getByRole("button", { name: "Remove dot.png" }).click();
    assert.deepEqual(await chipStates(page), [["notes.txt", "ready"]]);
    const answer = await send(page, "Only the notes");
    assert.equal(answer, `You said: Only the notes\nYou sent ${SAYS_NOTES}.`);
    await page.context().close();
  });

  it("gives the files back to the composer when the server does not start the message", async () => {
    const { sessionId } = await server.run(token, { agentId: "assistant", message: "Hello" });
    const page = await openPage();
    await page.goto(`${server.base}/chat/#session=${sessionId}`);
    await page.waitForSelector("#answer-tools:not([hidden])");
    await attach(page, NOTES);
    await uploaded(page);
    // Another tab's long answer keeps the conversation busy: the server refuses a second one (SESSION_BUSY).
    const words = Array.from({ length: 1000 }, (_, n) => `word${n + 1}`).join(" ");
    const elsewhere = server.run(token, { agentId: "assistant", sessionId, message: words });
    let activeRun = null;
    while (!activeRun) ({ activeRun } = (await server.graphql(token, ACTIVE_RUN, { id: sessionId })).session);
    await page.fill("#message", "Too soon");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector("#error")?.textContent.includes("still answering"));
    assert.equal(await page.inputValue("#message"), "Too soon");
    assert.deepEqual(await chipStates(page), [["notes.txt", "ready"]]);
    assert.equal(await page.locator(USER).count(), 1, "only the first message is in the conversation");
    await server.graphql(token, CANCEL_RUN, { input: { runId: activeRun.id } });
    await elsewhere;
    await page.context().close();
  });

  it("takes at most 10 files for a message, and says how many it left out", async () => {
    const page = await openPage();
    const files = Array.from({ length: 11 }, (_, n) => ({
      name: `note-${n + 1}.txt`,
      mimeType: "text/plain",
      buffer: Buffer.from(`Note ${n + 1}\n`),
    }));
    await attach(page, ...files);
    assert.equal(await page.locator(CHIPS).count(), 10);
    assert.equal(await page.textContent("#composer .tray-note"), "A message can carry 10 files at most: 1 was not added.");
    await uploaded(page);
    const answer = await send(page, "Ten notes");
    assert.equal(answer.split("; ").length, 10, "the model got ten files");
    assert.doesNotMatch(answer, /note-11\.txt/);
    await page.context().close();
  });

  it("opens the file picker from the keyboard: the attach button is just before the message box", async () => {
    const page = await openPage();
    // Playwright turns the browser's file chooser interception on asynchronously: asked for here, before the
    // focus moves, it is on by the time Enter is pressed even on a loaded machine.
    const chooserShown = page.waitForEvent("filechooser");
    await page.focus("#message");
    await page.keyboard.press("Shift+Tab");
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), "Attach files");
    await page.keyboard.press("Enter");
    const chooser = await chooserShown;
    assert.equal(chooser.isMultiple(), true);
    await chooser.setFiles([NOTES]);
    await uploaded(page);
    assert.deepEqual(await chipStates(page), [["notes.txt", "ready"]]);
    await page.context().close();
  });

  it("plays an audio file in the message with its controls", async () => {
    const page = await openPage();
    await attach(page, TONE);
    const answer = await send(page, "Listen");
    assert.equal(answer, `You said: Listen\nYou sent ${SAYS_TONE}.`);
    const player = page.getByRole("figure").locator("audio[controls]");
    assert.equal(await player.getAttribute("aria-label"), "tone.wav");
    await page.waitForFunction(() => document.querySelector(".attachment audio")?.duration > 0); // its link loads
    assert.equal(Math.round(await player.evaluate((audio) => audio.duration * 10)), 5, "half a second");
    await page.context().close();
  });

  it("keeps a message's files when it is edited", async () => {
    const page = await openPage();
    await attach(page, NOTES);
    await send(page, "First try");
    await page.locator(USER).getByRole("button", { name: "Edit message" }).click();
    const editor = page.locator('#message-list [data-role="editor"]');
    assert.deepEqual(await editor.locator(".chip .name").allTextContents(), ["notes.txt"]);
    await editor.getByRole("textbox", { name: "Edited message" }).fill("Second try");
    await editor.getByRole("button", { name: "Send" }).click();
    await page.waitForFunction((selector) => {
      const answer = document.querySelector(selector);
      return answer?.dataset.state === "done" && answer.textContent.startsWith("You said: Second try");
    }, ANSWER);
    assert.equal(await page.textContent(ANSWER), `You said: Second try\nYou sent ${SAYS_NOTES}.`);
    assert.equal(await page.locator(`${USER} a.attachment.document`).textContent(), `notes.txt ${NOTES.buffer.length} B`);
    await page.context().close();
  });

  it("shows an image an answer carries like one a message carries", async () => {
    const sessionId = await sessionWithPicture();
    // The offline model makes no media: the answer is given the message's picture, as if a tool had made it.
    const page = await openPage(
      rewriteHistory((messages) => {
        const sent = messages.find((message) => message.role === "USER");
        for (const message of messages) if (message.role === "ASSISTANT") message.attachments = sent.attachments;
      }),
    );
    await page.goto(`${server.base}/chat/#session=${sessionId}`);
    await imageLoaded(page, `${ANSWER} .attachment img`);
    assert.equal(await page.locator(`${ANSWER} .attachment img`).getAttribute("alt"), "dot.png");
    await page.context().close();
  });

  it("shows an image whose link expired through a fresh one", async () => {
    const sessionId = await sessionWithPicture();
    const expired = [];
    const page = await openPage(
      rewriteHistory((messages) => {
        for (const message of messages) {
          for (const attachment of message.attachments) {
            attachment.url = attachment.url.replace(/expires=\d+/, "expires=1000000000");
            expired.push(attachment.url);
          }
        }
      }),
    );
    await page.goto(`${server.base}/chat/#session=${sessionId}`);
    await imageLoaded(page, `${USER} .attachment img`);
    assert.equal(expired.length, 1);
    const old = await page.request.get(new URL(expired[0], server.base).href);
    assert.equal(old.status(), 404, "the server refuses the old link");
    const shown = await page.locator(`${USER} .attachment img`).getAttribute("src");
    assert.notEqual(shown, expired[0]);
    assert.equal(await page.locator(`${USER} a.attachment`).getAttribute("href"), shown, "a click opens the fresh link too");
    await page.context().close();
  });
});
