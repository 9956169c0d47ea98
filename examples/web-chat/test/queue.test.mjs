// Sending while an answer streams, in headless chromium against a real server (40 ms a word): Queue (runAgent
// with ifBusy ENQUEUE: the message shows at once with its place in line and is answered after the answers before
// it), Stop and send (ifBusy INTERRUPT: the streaming answer ends interrupted with what it had said, and the new
// message is answered), and Cancel on a queued message (cancelRun: it stays in the conversation, never answered).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, signedInPage, startServer } from "./server.mjs";

const WORD_DELAY_MS = 40;
const ANSWER = '#message-list [data-role="assistant"]';
const QUEUED = '#message-list [data-role="user"][data-waiting]';
const RUN_QUERY = "query($id: ID!) { run(id: $id) { id status content } }";

/** A message of `count` numbered words: the assistant echoes it word by word, so its answer takes a while. */
function longMessage(label, count) {
  return `${label}: ${Array.from({ length: count }, (_, n) => `word${n + 1}`).join(" ")}`;
}

describe("chat page: sending while an answer streams", () => {
  let server;
  let browser;
  let token;

  before(async () => {
    server = await startServer({ offlineDelayMs: WORD_DELAY_MS });
    token = await server.token("queue-user");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** The conversation as it reads: each item's text without its buttons' and marks' (a bubble's first text). */
  const texts = (page) => page.$$eval("#message-list > li", (items) => items.map((item) => item.firstChild?.textContent ?? ""));
  const queuedMarks = (page) => page.$$eval(`${QUEUED} .queue-position`, (marks) => marks.map((mark) => mark.textContent));
  const doneAnswers = (page, count) =>
    page.waitForFunction(
      (n) => [...document.querySelectorAll('#message-list [data-role="assistant"]')].filter((a) => a.dataset.state === "done").length === n,
      count,
    );
  /** The composer's buttons while an answer streams. */
  const whileBusy = (page) => page.getByRole("group", { name: "Send while the answer is written" });

  /** Sends a long message in a new chat and waits until its answer streams. */
  async function startLongAnswer(page, message) {
    await page.click("#new-chat");
    await page.selectOption("#agent", "assistant");
    await page.fill("#message", message);
    await page.click("#send");
    await page.waitForFunction(() => {
      const answer = document.querySelector('#message-list [data-role="assistant"][data-state="streaming"]');
      return answer && answer.textContent.split(" ").length >= 4;
    });
    await whileBusy(page).getByRole("button", { name: "Queue" }).waitFor();
    assert.equal(await page.isVisible("#send"), false, "Send gives way to the choice while the answer streams");
  }

  it("queues two messages: Queued (1) and (2) at once, answered in order, and all three after a reload", async () => {
    const page = await signedInPage(browser, server, token);
    const first = longMessage("First", 60);
    const second = longMessage("Second", 15);
    const third = "Third, please";
    await startLongAnswer(page, first);
    await page.fill("#message", second);
    await whileBusy(page).getByRole("button", { name: "Queue" }).click();
    await page.fill("#message", third);
    await page.press("#message", "Enter"); // Enter queues while an answer streams
    await page.waitForFunction(() => document.querySelectorAll('#message-list [data-role="user"][data-waiting] button:enabled').length === 2);
    assert.deepEqual(await queuedMarks(page), ["Queued (1)", "Queued (2)"]);
    const shown = await texts(page);
    assert.deepEqual([shown.length, shown[0], shown[2], shown[3]], [4, first, second, third], "the queued messages below the answer");
    assert.equal(await page.getAttribute(ANSWER, "data-state"), "streaming", "the first answer still streams");
    assert.equal(await page.inputValue("#message"), "");

    // The first answer ends, the second message's starts and the third moves up.
    await page.waitForFunction(
      () => document.querySelector('#message-list [data-role="user"][data-waiting] .queue-position')?.textContent === "Queued (1)" &&
        document.querySelectorAll('#message-list [data-role="user"][data-waiting]').length === 1,
    );
    assert.equal(await page.getAttribute(ANSWER, "data-state"), "done", "the first answer ended first");
    await doneAnswers(page, 3);
    const conversation = [first, `You said: ${first}`, second, `You said: ${second}`, third, `You said: ${third}`];
    assert.deepEqual(await texts(page), conversation, "each message answered, in the order sent");
    assert.equal(await page.locator(QUEUED).count(), 0, "nothing waits any more");
    await page.waitForSelector("#send:visible");
    assert.equal(await whileBusy(page).isVisible(), false);
    await page.waitForSelector("#answer-tools:not([hidden])");

    await page.reload();
    await doneAnswers(page, 3);
    assert.deepEqual(await texts(page), conversation, "the stored conversation has the three exchanges in order");
    await page.context().close();
  });

  it("stops the streaming answer with Stop and send: it ends interrupted with what it had said, and the new message is answered", async () => {
    const page = await signedInPage(browser, server, token);
    const first = longMessage("Long", 60);
    await startLongAnswer(page, first);
    await page.fill("#message", "Never mind that");
    await whileBusy(page).getByRole("button", { name: "Stop and send" }).click();
    const interrupted = `${ANSWER}[data-state="stopped"][data-interrupted]`;
    await page.waitForSelector(interrupted);
    await doneAnswers(page, 1);
    const [message, partial, ...rest] = await texts(page);
    assert.equal(message, first);
    assert.ok(`You said: ${first}`.startsWith(partial) && partial.length < `You said: ${first}`.length, "the partial answer");
    assert.ok(partial.split(" ").length >= 4, "what it had said stays");
    assert.deepEqual(rest, ["Never mind that", "You said: Never mind that"]);
    const mark = await page.$eval(interrupted, (answer) => getComputedStyle(answer, "::after").content);
    assert.equal(mark, '"interrupted"', "the answer is marked interrupted");
    assert.equal(await page.getAttribute(interrupted, "title"), "Interrupted by a new message.");
    const { run } = await server.graphql(token, RUN_QUERY, { id: await page.getAttribute(interrupted, "data-run-id") });
    assert.equal(run.status, "CANCELLED");
    // As Markdown shows it: a paragraph without the space after its last word.
    assert.equal(run.content.trimEnd(), partial, "stored with what it had said");
    await page.waitForSelector("#send:visible");

    await page.reload();
    await doneAnswers(page, 2);
    assert.deepEqual(await texts(page), [first, partial, "Never mind that", "You said: Never mind that"]);
    await page.context().close();
  });

  it("cancels a queued message: it is marked not answered, the one behind it moves up and is answered", async () => {
    const page = await signedInPage(browser, server, token);
    const first = longMessage("Busy", 60);
    await startLongAnswer(page, first);
    for (const message of ["Forget this one", "Answer this one"]) {
      await page.fill("#message", message);
      await whileBusy(page).getByRole("button", { name: "Queue" }).click();
    }
    await page.waitForFunction(() => document.querySelectorAll('#message-list [data-role="user"][data-waiting] button:enabled').length === 2);
    assert.deepEqual(await queuedMarks(page), ["Queued (1)", "Queued (2)"]);
    const forgotten = page.locator(QUEUED).first();
    const forgottenRunId = await forgotten.getAttribute("data-run-id");
    await forgotten.getByRole("button", { name: "Cancel queued message" }).click();
    const cancelled = `#message-list [data-role="user"][data-state="cancelled"][data-run-id="${forgottenRunId}"]`;
    await page.waitForSelector(cancelled);
    assert.deepEqual(await queuedMarks(page), ["Queued (1)"], "the one behind moved up");
    const mark = await page.$eval(cancelled, (item) => getComputedStyle(item, "::after").content);
    assert.equal(mark, '"cancelled, not answered"');
    const cancelButtons = page.locator(cancelled).getByRole("button", { name: "Cancel queued message" });
    assert.equal(await cancelButtons.count(), 0, "no Cancel button any more");
    assert.equal(await page.getAttribute(ANSWER, "data-state"), "streaming", "the answer going goes on");

    await doneAnswers(page, 2);
    // The server keeps a cancelled message in the conversation, unanswered, as it does a run stopped before its answer.
    const conversation = [first, `You said: ${first}`, "Forget this one", "Answer this one", "You said: Answer this one"];
    assert.deepEqual(await texts(page), conversation, "the cancelled message is not answered");
    const { run } = await server.graphql(token, RUN_QUERY, { id: forgottenRunId });
    assert.equal(run.status, "CANCELLED");
    assert.equal(run.content, null);
    assert.equal(await page.textContent("#error"), "");

    await page.reload();
    await doneAnswers(page, 2);
    assert.deepEqual(await texts(page), conversation, "stored so: the cancelled message without an answer");
    await page.context().close();
  });
});
