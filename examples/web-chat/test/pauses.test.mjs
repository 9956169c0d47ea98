// Runs that pause for a person, in the chat page in headless chromium against a real server: the helpdesk
// agent's tools pause on the offline model for each kind of requirement. The page shows a card, the
// answer continues the run, and the rest of the answer streams into the run's bubble.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, signedInPage, startServer } from "./server.mjs";

const RUN_QUERY = "query($id: ID!) { run(id: $id) { id status content } }";
const CARD = '#message-list [data-role="requirements"]';
const ANSWER = '#message-list [data-role="assistant"]';

describe("chat page: runs that pause for a person", () => {
  let server;
  let browser;
  let token;

  before(async () => {
    server = await startServer();
    token = await server.token("pause-user");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A new browser context, signed in, recording every text the answer bubbles show (to see them stream). */
  const openPage = () => signedInPage(browser, server, token);

  /** Sends `message` to the helpdesk agent in a new chat and waits for the card of its pause. */
  async function pauseWith(page, message) {
    await page.click("#new-chat");
    await page.selectOption("#agent", "helpdesk");
    await page.fill("#message", message);
    await page.click("#send");
    await page.waitForSelector(`${CARD} form`);
    return page.getAttribute(CARD, "data-run-id");
  }

  const texts = (page) => page.$$eval("#message-list > li", (items) => items.map((item) => item.textContent));

  /**
   * Waits for the continued run's answer and checks it is the one bubble of the paused run, that it
   * streamed (showed beginnings of itself first) and that the server stored the run COMPLETED with it.
   */
  async function answerOf(page, runId) {
    await page.waitForSelector(`${ANSWER}[data-state="done"]`);
    assert.equal(await page.locator(CARD).count(), 0, "the card goes once the run goes on");
    assert.equal(await page.locator(ANSWER).count(), 1, "one answer bubble");
    assert.equal(await page.getAttribute(ANSWER, "data-run-id"), runId, "the answer is the paused run's bubble");
    const answer = await page.textContent(ANSWER);
    const shown = await page.evaluate(() => window.answerTexts);
    const partial = new Set(shown.filter((text) => text.length > 0 && text !== answer));
    assert.ok(partial.size >= 2, `the answer streamed in, saw ${JSON.stringify([...partial])}`);
    assert.ok([...partial].every((text) => answer.startsWith(text)), "the answer only grew");
    const { run } = await server.graphql(token, RUN_QUERY, { id: runId });
    assert.equal(run.status, "COMPLETED");
    assert.equal(run.content, answer);
    assert.equal(await page.isEnabled("#send"), true);
    return answer;
  }

  it("asks before a tool runs, and Approve runs it and streams the answer", async () => {
    const page = await openPage();
    const runId = await pauseWith(page, "use the restart_service tool");
    assert.equal(await page.getAttribute(`${CARD} form`, "data-kind"), "CONFIRMATION");
    assert.equal(await page.textContent(`${CARD} form > p`), "The assistant wants to run restart_service().");
    assert.deepEqual(await page.locator(`${CARD} button`).allTextContents(), ["Approve", "Refuse"]);
    assert.equal(await page.isVisible(`${CARD} input[aria-label="Note"]`), true);
    assert.equal(await page.isVisible("#stop"), false, "nothing streams while the run waits");
    assert.equal((await server.graphql(token, RUN_QUERY, { id: runId })).run.status, "PAUSED");

    await page.click(`${CARD} button:text-is("Approve")`);
    assert.equal(await answerOf(page, runId), "The answer is The web service was restarted..");
    const live = await texts(page);
    assert.deepEqual(live, [
      "use the restart_service tool",
      "calls restart_service()",
      "restart_service → The web service was restarted.",
      "The answer is The web service was restarted..",
    ]);
    await page.reload();
    await page.waitForSelector(ANSWER);
    assert.deepEqual(await texts(page), live, "the stored conversation reads as it streamed");
    await page.context().close();
  });

  it("refuses a tool call with a note: the tool fails with it and the answer says so", async () => {
    const page = await openPage();
    const runId = await pauseWith(page, "use the restart_service tool");
    await page.fill(`${CARD} input[aria-label="Note"]`, "Not during business hours");
    await page.click(`${CARD} button:text-is("Refuse")`);
    assert.equal(await answerOf(page, runId), "The tool restart_service failed: Not during business hours");
    assert.equal(await page.textContent('[data-role="tool-result"]'), "restart_service → failed: Not during business hours");
    await page.context().close();
  });

  it("asks for a tool's input fields, with a number input for its int, and runs it with them", async () => {
    const page = await openPage();
    const runId = await pauseWith(page, "use the open_ticket tool");
    const form = `${CARD} form[data-kind="USER_INPUT"]`;
    assert.equal(await page.textContent(`${form} > p`), "open_ticket() needs a few details from you.");
    const labels = await page.$$eval(`${form} label`, (items) =>
      items.map((item) => [item.querySelector("span").textContent, item.querySelector("input").type, item.querySelector("small").textContent]),
    );
    assert.deepEqual(labels, [
      ["summary", "text", "What the ticket is about."],
      ["priority", "number", "From 1 (urgent) to 5 (whenever)."],
    ]);
    await page.fill(`${form} input[name="summary"]`, "The printer is jammed");
    await page.fill(`${form} input[name="priority"]`, "2");
    await page.click(`${form} button:text-is("Send")`);
    assert.equal(await answerOf(page, runId), "The answer is Ticket opened at priority 2: The printer is jammed.");
    assert.equal(await page.textContent('[data-role="tool-result"]'), "open_ticket → Ticket opened at priority 2: The printer is jammed");
    await page.context().close();
  });

  it("asks a tool's questions with radio buttons for one choice and checkboxes for several", async () => {
    const page = await openPage();
    const runId = await pauseWith(page, "use the ask_user tool");
    const form = `${CARD} form[data-kind="USER_FEEDBACK"]`;
    const questions = await page.$$eval(`${form} fieldset.question`, (sets) =>
      sets.map((set) => ({
        legend: set.querySelector("legend").textContent,
        options: [...set.querySelectorAll("label")].map((label) => [label.querySelector("input").type, label.textContent]),
      })),
    );
    assert.deepEqual(questions, [
      {
        legend: "Plan Which plan would you like?",
        options: [
          ["radio", "BasicOne seat, email support."],
          ["radio", "TeamTen seats, chat support."],
        ],
      },
      {
        legend: "Extras Which extras should come with it?",
        options: [
          ["checkbox", "Backups"],
          ["checkbox", "Audit log"],
          ["checkbox", "Single sign-on"],
        ],
      },
    ]);
    await page.getByRole("radio", { name: "Team" }).check();
    await page.click(`${form} button:text-is("Send")`);
    assert.equal(
      await page.textContent(`${form} .error`),
      "Choose at least one for “Which extras should come with it?”",
      "an extra is asked for before anything is sent",
    );
    await page.getByRole("checkbox", { name: "Backups" }).check();
    await page.getByRole("checkbox", { name: "Audit log" }).check();
    await page.click(`${form} button:text-is("Send")`);
    const chosen =
      '[{"question": "Which plan would you like?", "selected": ["Team"]}, ' +
      '{"question": "Which extras should come with it?", "selected": ["Backups", "Audit log"]}]';
    assert.equal(await answerOf(page, runId), `The answer is User feedback received: ${chosen}.`);
    await page.context().close();
  });

  it("asks for the result of a tool the user runs, and answers with it", async () => {
    const page = await openPage();
    const runId = await pauseWith(page, "use the run_diagnostics tool");
    const form = `${CARD} form[data-kind="EXTERNAL_EXECUTION"]`;
    assert.equal(await page.textContent(`${form} > p`), "Run run_diagnostics() yourself and paste what it gave.");
    await page.fill(`${form} textarea[aria-label="Result"]`, "up 3 days, load average 0.42");
    await page.click(`${form} button:text-is("Send result")`);
    assert.equal(await answerOf(page, runId), "The answer is up 3 days, load average 0.42.");
    assert.equal(await page.textContent('[data-role="tool-result"]'), "run_diagnostics → up 3 days, load average 0.42");
    await page.context().close();
  });

  it("shows the card again after a reload while the run waits, and continues from it", async () => {
    const page = await openPage();
    const runId = await pauseWith(page, "use the open_ticket tool");
    const before = await texts(page);
    await page.reload();
    await page.waitForSelector(`${CARD} form`);
    assert.deepEqual(await texts(page), before, "the same conversation and card");
    assert.equal(await page.getAttribute(CARD, "data-run-id"), runId);
    assert.deepEqual(await page.locator(`${CARD} label span`).allTextContents(), ["summary", "priority"]);
    await page.fill(`${CARD} input[name="summary"]`, "VPN drops every hour");
    await page.fill(`${CARD} input[name="priority"]`, "1");
    await page.click(`${CARD} button:text-is("Send")`);
    assert.equal(await answerOf(page, runId), "The answer is Ticket opened at priority 1: VPN drops every hour.");
    assert.deepEqual(await texts(page), [
      "use the open_ticket tool",
      "calls open_ticket()",
      "open_ticket → Ticket opened at priority 1: VPN drops every hour",
      "The answer is Ticket opened at priority 1: VPN drops every hour.",
    ]);
    await page.context().close();
  });
});
