// Editing a conversation in the chat page, in headless chromium against a real server (40 ms a word):
// Regenerate the last answer and browse its alternatives, edit a user message and resend it, branch
// into a new chat from an answer, and the busy conversation the server refuses to answer again in.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, signedInPage, startServer } from "./server.mjs";

const WORD_DELAY_MS = 40;
const ANSWER = '#message-list [data-role="assistant"]';
const SESSION_QUERY = "query($id: ID!) { session(id: $id) { id name runCount activeRun { id } } }";
const CREATE_SESSION = "mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id } } }";
const CANCEL_RUN = "mutation($input: CancelRunInput!) { cancelRun(input: $input) { run { id status } } }";

/** A message of `count` numbered words: the assistant echoes it word by word, so its answer takes a while. */
function longMessage(label, count) {
  return `${label}: ${Array.from({ length: count }, (_, n) => `word${n + 1}`).join(" ")}`;
}

describe("chat page: editing the conversation", () => {
  let server;
  let browser;
  let token;

  before(async () => {
    server = await startServer({ offlineDelayMs: WORD_DELAY_MS });
    token = await server.token("editing-user");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A new browser context, signed in, recording every text the answer bubbles show (to see them stream). */
  const openPage = () => signedInPage(browser, server, token);

  const texts = (page) => page.$$eval("#message-list > li", (items) => items.map((item) => item.textContent));
  const sessionIdOf = (page) => new URLSearchParams(new URL(page.url()).hash.slice(1)).get("session");
  /** The beginnings of `answer` the page showed before it was whole: it streamed in when there are some. */
  const partialsOf = async (page, answer) => {
    const shown = await page.evaluate(() => window.answerTexts);
    return [...new Set(shown.filter((text) => text.length > 0 && text !== answer && answer.startsWith(text)))];
  };

  /** Sends each message in turn in a new chat, waiting for each answer. */
  async function converse(page, ...messages) {
    await page.click("#new-chat");
    await page.selectOption("#agent", "assistant");
    for (const [n, message] of messages.entries()) {
      await page.fill("#message", message);
      await page.click("#send");
      await page.waitForFunction(
        (count) => [...document.querySelectorAll('#message-list [data-role="assistant"]')].filter((a) => a.dataset.state === "done").length === count,
        n + 1,
      );
    }
    // The bubbles have their stored ids (and so their Edit and Branch buttons) once the last run settled.
    await page.waitForSelector("#answer-tools:not([hidden])");
  }

  it("regenerates the last answer: the new one streams in, 2 / 2, and the arrows show the first", async () => {
    const page = await openPage();
    const message = longMessage("Again", 40);
    await page.click("#new-chat");
    await page.selectOption("#agent", "assistant");
    await page.fill("#message", message);
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector('#message-list [data-role="assistant"]')?.textContent.split(" ").length >= 4);
    await page.click("#stop");
    await page.waitForSelector(`${ANSWER}[data-state="stopped"]`);
    const first = await page.textContent(ANSWER);
    await page.waitForSelector("#regenerate:visible");
    assert.equal(await page.isVisible("#answer-position"), false, "no n / m while there is one answer");

    await page.click("#regenerate");
    await page.waitForSelector(`${ANSWER}[data-state="done"]`);
    await page.waitForFunction(() => document.querySelector("#answer-position")?.textContent === "2 / 2");
    const full = `You said: ${message}`;
    assert.deepEqual(await texts(page), [message, full], "the new answer in the old one's place");
    assert.ok((await partialsOf(page, full)).some((text) => text.length > first.length), "the new answer streamed");
    assert.equal(await page.isDisabled("#next-answer"), true);

    await page.click("#previous-answer");
    assert.equal(await page.textContent("#answer-position"), "1 / 2");
    assert.equal(await page.textContent(ANSWER), first, "the first, stopped answer");
    assert.match(await page.getAttribute(ANSWER, "title"), /choosing it back is not supported yet/);
    assert.equal(await page.isDisabled("#previous-answer"), true);
    await page.click("#next-answer");
    assert.equal(await page.textContent("#answer-position"), "2 / 2");
    assert.equal(await page.textContent(ANSWER), full);

    const { session } = await server.graphql(token, SESSION_QUERY, { id: sessionIdOf(page) });
    assert.equal(session.runCount, 1, "the replaced run left the conversation");
    await page.reload();
    await page.waitForFunction(() => document.querySelector("#answer-position")?.textContent === "2 / 2");
    assert.deepEqual(await texts(page), [message, full], "the stored conversation has the new answer");
    await page.context().close();
  });

  it("edits a message: the later messages go, the new answer streams, and a reload shows the edited conversation", async () => {
    const page = await openPage();
    await converse(page, "First question", "Second question");
    await page.locator('#message-list [data-role="user"]').first().getByRole("button", { name: "Edit message" }).click();
    const editor = page.locator('#message-list [data-role="editor"]');
    assert.equal(await editor.getByRole("textbox", { name: "Edited message" }).inputValue(), "First question");
    await editor.getByRole("textbox", { name: "Edited message" }).fill("First question, edited");
    await page.evaluate(() => (window.answerTexts = []));
    await editor.getByRole("button", { name: "Send" }).click();
    await page.waitForFunction(() => {
      const answers = document.querySelectorAll('#message-list [data-role="assistant"]');
      return answers.length === 1 && answers[0].dataset.state === "done";
    });
    const edited = ["First question, edited", "You said: First question, edited"];
    assert.deepEqual(await texts(page), edited, "the second question and both old answers are gone");
    assert.ok((await partialsOf(page, edited[1])).length >= 2, "the new answer streamed in");
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "First question, edited");

    await page.reload();
    await page.waitForSelector(ANSWER);
    assert.deepEqual(await texts(page), edited);
    assert.equal(await page.textContent("#title"), "First question, edited", "the title follows the edited first message");
    const { session } = await server.graphql(token, SESSION_QUERY, { id: sessionIdOf(page) });
    assert.equal(session.runCount, 1);
    await page.context().close();
  });

  it("cancels an edit, keeping the message as it was", async () => {
    const page = await openPage();
    await converse(page, "Keep me");
    await page.locator('#message-list [data-role="user"]').getByRole("button", { name: "Edit message" }).click();
    await page.getByRole("textbox", { name: "Edited message" }).fill("Never sent");
    await page.getByRole("button", { name: "Cancel" }).click();
    assert.deepEqual(await texts(page), ["Keep me", "You said: Keep me"]);
    await page.context().close();
  });

  it("branches into a new chat from an answer, named after the source, with the conversation up to it", async () => {
    const page = await openPage();
    await converse(page, "Alpha", "Beta");
    const sourceId = sessionIdOf(page);
    await page.click("#rename");
    await page.fill("#rename-input", "Trip plans");
    await page.press("#rename-input", "Enter");
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "Trip plans");

    await page.locator(ANSWER).first().getByRole("button", { name: "Branch into a new chat" }).click();
    await page.waitForFunction((id) => !location.hash.includes(id), sourceId);
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "Trip plans (copy)");
    await page.waitForSelector(ANSWER);
    assert.deepEqual(await texts(page), ["Alpha", "You said: Alpha"], "the conversation up to that answer");
    const forkId = sessionIdOf(page);
    const top = page.locator("#sessions li").first();
    assert.equal(await top.getAttribute("data-session-id"), forkId, "the new chat is on top of the sidebar");
    assert.match(await top.locator("a").textContent(), /^Trip plans \(copy\)/);
    assert.equal(await top.getAttribute("class"), "current");

    const { session: source } = await server.graphql(token, SESSION_QUERY, { id: sourceId });
    assert.equal(source.runCount, 2, "the source keeps its whole conversation");
    await page.goBack();
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "Trip plans");
    await page.waitForFunction(() => document.querySelectorAll('#message-list [data-role="assistant"]').length === 2);
    await page.context().close();
  });

  it("keeps the answer and says the conversation is busy when regenerating while another tab's run answers", async () => {
    const created = await server.graphql(token, CREATE_SESSION, { input: { agentId: "assistant", name: "Busy chat" } });
    const sessionId = created.createSession.session.id;
    await server.run(token, { agentId: "assistant", sessionId, message: "Hello" });
    const page = await openPage();
    await page.goto(`${server.base}/chat/#session=${sessionId}`);
    await page.waitForSelector("#answer-tools:not([hidden])");
    const elsewhere = server.run(token, { agentId: "assistant", sessionId, message: longMessage("Elsewhere", 1000) });
    let activeRun = null;
    while (!activeRun) ({ activeRun } = (await server.graphql(token, SESSION_QUERY, { id: sessionId })).session);

    await page.click("#regenerate");
    await page.waitForFunction(() => document.querySelector("#error")?.textContent.includes("still answering"));
    assert.deepEqual(await texts(page), ["Hello", "You said: Hello"], "the answer stays");
    await page.waitForSelector("#regenerate:visible"); // Regenerate can be tried again
    assert.equal(await page.isEnabled("#send"), true);
    await server.graphql(token, CANCEL_RUN, { input: { runId: activeRun.id } });
    assert.equal((await elsewhere).__typename, "RunCancelled");
    await page.context().close();
  });
});
