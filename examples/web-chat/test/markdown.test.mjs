// Answers as Markdown in the chat page, in headless chromium against a real server: the offline model echoes
// the message ("You said: ..."), so a message written in Markdown comes back as an answer in Markdown. Formatting,
// highlighted code, tables and links render; the model's HTML, scripts, handlers, javascript: links and images do
// not; the user's own message stays as typed; a streaming answer renders at most once an animation frame.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, signedInPage, startServer } from "./server.mjs";

const ANSWER = '#message-list [data-role="assistant"]';
const USER = '#message-list [data-role="user"]';

describe("chat page: answers in Markdown", () => {
  let server;
  let browser;
  let token;
  let page;

  before(async () => {
    server = await startServer();
    token = await server.token("markdown-user");
    browser = await launchBrowser();
    page = await signedInPage(browser, server, token);
    await page.click("#new-chat");
    await page.selectOption("#agent", "assistant");
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Sends a message in the open conversation and waits for its answer to be done; the answer's locator. */
  async function answerTo(on, message) {
    const answers = await on.locator(ANSWER).count();
    await on.fill("#message", message);
    await on.click("#send");
    await on.waitForFunction(
      ([selector, count]) => {
        const all = document.querySelectorAll(selector);
        return all.length === count && all[count - 1].dataset.state === "done";
      },
      [ANSWER, answers + 1],
    );
    return on.locator(ANSWER).last();
  }

  const texts = (locator) => locator.evaluateAll((elements) => elements.map((element) => element.textContent));

  it("shows bold, emphasis, inline code, lists and quotes as formatted text", async () => {
    const answer = await answerTo(page, "**bold** and *leaning*, with `inline code`\n\n- one\n- two\n\n> quoted");
    assert.equal(await answer.locator("p").first().textContent(), "You said: bold and leaning, with inline code");
    assert.deepEqual(await texts(answer.locator("strong")), ["bold"]);
    assert.deepEqual(await texts(answer.locator("em")), ["leaning"]);
    assert.deepEqual(await texts(answer.locator("p code")), ["inline code"]);
    assert.deepEqual(await texts(answer.locator("ul > li")), ["one", "two"]);
    assert.equal((await answer.locator("blockquote").textContent()).trim(), "quoted");
  });

  it("highlights a fenced python block, with its language's class", async () => {
    const answer = await answerTo(page, "Code:\n```python\ndef add(a, b):\n    return a + b\n```");
    const code = answer.locator("pre > code");
    assert.equal(await code.count(), 1);
    assert.match(await code.getAttribute("class"), /\bhljs\b.*\blanguage-python\b/);
    assert.equal(await code.textContent(), "def add(a, b):\n    return a + b\n");
    assert.deepEqual(await texts(code.locator("span.hljs-keyword")), ["def", "return"]);
    assert.deepEqual(await texts(code.locator(".hljs-title")), ["add"]);
  });

  it("copies a code block with its copy button", async () => {
    const copying = await signedInPage(browser, server, token, (context) =>
      context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.base }),
    );
    const answer = await answerTo(copying, "Run:\n```bash\necho hello\n```");
    await answer.locator("pre").hover();
    await answer.locator('pre button[aria-label="Copy code"]').click();
    await copying.waitForSelector(`${ANSWER} pre button[data-copied]`);
    assert.equal(await copying.evaluate(() => navigator.clipboard.readText()), "echo hello\n");
    await copying.context().close();
  });

  it("renders a table", async () => {
    const answer = await answerTo(page, "Scores:\n\n| name | score |\n| --- | --- |\n| Ada | 3 |\n| Bob | 5 |");
    assert.equal(await answer.locator("table").count(), 1);
    assert.deepEqual(await texts(answer.locator("table thead th")), ["name", "score"]);
    assert.deepEqual(await texts(answer.locator("table tbody td")), ["Ada", "3", "Bob", "5"]);
  });

  it("opens links in a new tab without the opener; file names stay text", async () => {
    const answer = await answerTo(page, "See https://example.com/docs and [the guide](https://example.com/guide), not notes.md");
    const links = answer.locator("a");
    assert.deepEqual(await links.evaluateAll((all) => all.map((a) => [a.getAttribute("href"), a.textContent])), [
      ["https://example.com/docs", "https://example.com/docs"],
      ["https://example.com/guide", "the guide"],
    ]);
    for (const link of await links.all()) {
      assert.equal(await link.getAttribute("target"), "_blank");
      assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
    }
  });

  it("shows the model's HTML and scripts as text, and runs none of them", async () => {
    const hostile =
      '<img src=x onerror="window.pwned = 1"> <script>window.pwned = 2</script> <b onclick="window.pwned = 3">b</b>';
    const answer = await answerTo(page, hostile);
    assert.equal(await answer.locator("img, script, b, [onerror], [onclick]").count(), 0);
    assert.equal(await answer.textContent(), `You said: ${hostile}`);
    await answer.locator("p").click();
    await page.waitForTimeout(200); // an <img> that failed to load would have run its onerror by now
    assert.equal(await page.evaluate(() => window.pwned), undefined);
  });

  it("gives javascript: and data: links no link to follow", async () => {
    const answer = await answerTo(
      page,
      "[one](javascript:alert(1)) [two](JaVaScRiPt:alert(2)) <javascript:alert(3)> [four](data:text/html,hello)",
    );
    const hrefs = await answer.locator("a").evaluateAll((all) => all.map((a) => a.getAttribute("href")));
    assert.deepEqual(hrefs.filter((href) => href !== null && !/^https?:/.test(href)), [], `hrefs: ${hrefs}`);
    assert.match(await answer.textContent(), /\[one\]\(javascript:alert\(1\)\)/, "the link stays as its text");
  });

  it("shows an image an answer links as a link, loading nothing", async () => {
    const requested = [];
    page.on("request", (request) => requested.push(request.url()));
    const tracker = `${server.base}/tracker.png?conversation=secret`;
    const answer = await answerTo(page, `![pixel](${tracker})`);
    assert.equal(await answer.locator("img").count(), 0);
    assert.deepEqual(await answer.locator("a").evaluateAll((all) => all.map((a) => a.getAttribute("href"))), [tracker]);
    assert.deepEqual(requested.filter((url) => url.includes("tracker")), []);
  });

  it("shows the user's own message as typed, Markdown and HTML included", async () => {
    const message = "**not bold**  and <i>not italic</i>\n\n    indented";
    await answerTo(page, message);
    const bubble = page.locator(USER).last();
    assert.equal(await bubble.evaluate((item) => item.firstChild.textContent), message);
    assert.equal(await bubble.locator("strong, i, p, pre").count(), 0);
    assert.equal(await bubble.evaluate((item) => getComputedStyle(item).whiteSpace), "pre-wrap");
  });

  it("renders the answers of the history the same after a reload", async () => {
    await page.reload();
    await page.waitForSelector(`${ANSWER} pre > code.language-python`);
    const answers = page.locator(ANSWER);
    assert.deepEqual(await texts(answers.first().locator("strong")), ["bold"]);
    assert.equal(await answers.locator("table").count(), 1);
    assert.equal(await answers.locator("img, script, b").count(), 0);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
  });

  it("streams an unfinished code fence as a code block, never as backticks", async () => {
    const lines = Array.from({ length: 30 }, (_, n) => `value_${n} = ${n}`);
    const message = `Code:\n\`\`\`python\n${lines.join("\n")}\n\`\`\`\nAfter the code.`;
    // What the answer showed each time it changed while it streamed.
    await page.evaluate(() => {
      window.streamed = [];
      const list = document.querySelector("#message-list");
      new MutationObserver(() => {
        const answer = [...list.querySelectorAll('[data-role="assistant"]')].pop();
        if (answer?.dataset.state !== "streaming") return;
        window.streamed.push({ text: answer.textContent, code: answer.querySelector("pre > code")?.textContent ?? null });
      }).observe(list, { childList: true, subtree: true, characterData: true });
    });
    const answer = await answerTo(page, message);
    assert.equal(await answer.locator("pre > code").textContent(), `${lines.join("\n")}\n`);
    const streamed = await page.evaluate(() => window.streamed);
    const unfinished = streamed.filter(({ text, code }) => code && code.length > 0 && !text.includes("After the code."));
    assert.ok(unfinished.length >= 3, `the code block showed while its fence was open: ${JSON.stringify(streamed)}`);
    assert.deepEqual(streamed.filter(({ text }) => text.includes("```")), [], "no fence shown as text");
  });

  it("renders a burst of deltas once an animation frame, not once a delta", async () => {
    // The test holds the run's deltas and hands them to the page in one burst with the run's end.
    let release;
    const released = new Promise((done) => (release = done));
    const bursting = await signedInPage(browser, server, token, (context) =>
      context.routeWebSocket(/\/graphql$/, (socket) => {
        const toServer = socket.connectToServer();
        const held = [];
        toServer.onMessage((message) => {
          if (!String(message).includes("RunContentDelta") && !String(message).includes("RunCompleted")) {
            socket.send(message);
            return;
          }
          held.push(message);
          if (String(message).includes("RunCompleted")) {
            for (const each of held.splice(0)) socket.send(each);
            release();
          }
        });
      }),
    );
    await bursting.click("#new-chat");
    await bursting.evaluate(() => {
      window.renders = 0;
      window.frames = 0;
      const list = document.querySelector("#message-list");
      window.renderFrames = [];
      new MutationObserver((records) => {
        for (const record of records.filter((each) => each.target.classList?.contains("markdown"))) {
          window.renders += 1;
          window.renderFrames.push(window.frames); // the animation frame it happened in
        }
      }).observe(list, { childList: true, subtree: true });
      const tick = () => {
        window.frames += 1;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    const words = Array.from({ length: 60 }, (_, n) => `**w${n}**`);
    const answer = await answerTo(bursting, words.join(" "));
    await released;
    assert.equal(await answer.locator("strong").count(), words.length, "every delta reached the answer");
    const { renders, frames, renderFrames } = await bursting.evaluate(() => ({
      renders: window.renders,
      frames: window.frames,
      renderFrames: window.renderFrames,
    }));
    // A burst reaches the page over one frame or a few (a loaded machine delivers it in pieces), and the run's end
    // renders at once: a few renders, where rendering on every delta makes 61.
    const spread = `${words.length + 1} deltas rendered ${renders} times, in frames ${renderFrames} (${frames} in all)`;
    assert.ok(renders <= 10, spread);
    await bursting.context().close();
  });
});
