// The chat page in headless chromium against a real server: sign in, page the sidebar, stream an answer
// with a tool call, reload, scroll back through a long conversation, rename, delete.
import assert from "node:assert/strict";
import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { launchBrowser, REPO, RESULTS, startServer } from "./server.mjs";

const SEEDED_RUNS = 12; // 24 messages: more than the page's 20, so scrolling back loads an older page
// With the seeded session, more than the sidebar's page of 15.
const OTHER_SESSIONS = [
  "Trip to Lisbon", "Quarterly report", "Birthday ideas", "SQL index question", "Reading list",
  "Garden plan", "Interview prep", "Budget 2027", "Recipe swaps", "Bug triage",
  "Talk outline", "Moving checklist", "Learning Rust", "Gift for Sam", "Release notes",
];
const EMPTY_SESSIONS = OTHER_SESSIONS.length;

describe("chat page", () => {
  let server;
  let browser;
  let page;
  let token;
  let seededSessionId;
  let chatSessionId;

  before(async () => {
    server = await startServer();
    token = await server.token("browser-user");
    const first = await server.run(token, { agentId: "assistant", message: "Seed message 1" });
    seededSessionId = first.sessionId;
    for (let n = 2; n <= SEEDED_RUNS; n += 1) {
      await server.run(token, { agentId: "assistant", sessionId: seededSessionId, message: `Seed message ${n}` });
    }
    const create = "mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id } } }";
    for (const name of OTHER_SESSIONS) {
      await server.graphql(token, create, { input: { agentId: "assistant", name } });
    }
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    page.setDefaultTimeout(15_000);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("refuses a bad token with a message", async () => {
    await page.goto(`${server.base}/chat/`);
    await page.fill("#token", "not-a-token");
    await page.click("#sign-in-form button");
    await page.waitForFunction(() => document.querySelector("#sign-in-error")?.textContent?.includes("refused"));
    assert.equal(await page.isVisible("#app"), false);
  });

  it("signs in with a pasted token and loads more sessions with the cursor", async () => {
    await page.fill("#token", token);
    await page.click("#sign-in-form button");
    await page.waitForSelector("#sessions li");
    assert.equal(await page.locator("#sessions li").count(), 15);
    assert.equal(await page.isVisible("#load-more"), true);
    await page.click("#load-more");
    await page.waitForFunction((total) => document.querySelectorAll("#sessions li").length === total, EMPTY_SESSIONS + 1);
    assert.equal(await page.isVisible("#load-more"), false);
    const ids = await page.$$eval("#sessions li", (items) => items.map((item) => item.dataset.sessionId));
    assert.equal(new Set(ids).size, EMPTY_SESSIONS + 1, "no session listed twice across pages");
  });

  it("shows a tool call and its answer as the run streams", async () => {
    await page.click("#new-chat");
    await page.selectOption("#agent", "calculator");
    await page.fill("#message", "What is 12 * 7?");
    await page.press("#message", "Enter");
    await page.waitForSelector('#message-list [data-role="assistant"][data-state="done"]');
    assert.equal(await page.textContent('[data-role="tool-call"]'), "calls multiply(12, 7)");
    assert.equal(await page.textContent('[data-role="tool-result"]'), "multiply → 84");
    assert.equal(await page.textContent('[data-role="assistant"]'), "The answer is 84.");
    chatSessionId = new URLSearchParams(new URL(page.url()).hash.slice(1)).get("session");
    assert.ok(chatSessionId, "the new session is in the address");
  });

  it("grows the answer bubble delta by delta until the run completes", async () => {
    const message = "Streaming shows every word of the answer as soon as the server sends it, one delta at a time";
    // Record the answer's text each time the page changes it, to see it grow rather than appear whole.
    await page.evaluate(() => {
      window.seenLengths = [];
      const list = document.querySelector("#message-list");
      new MutationObserver(() => {
        const answers = list.querySelectorAll('[data-role="assistant"]');
        const answer = answers[answers.length - 1];
        if (answers.length === 2 && answer.dataset.state === "streaming") window.seenLengths.push(answer.textContent.length);
      }).observe(list, { childList: true, subtree: true, characterData: true });
    });
    await page.fill("#message", message);
    await page.click("#send");
    await page.waitForFunction(() => {
      const answers = document.querySelectorAll('#message-list [data-role="assistant"]');
      return answers.length === 2 && answers[1].dataset.state === "done";
    });
    const expected = `You said: ${message}`;
    assert.equal(await page.locator('[data-role="assistant"]').nth(1).textContent(), expected);
    const lengths = await page.evaluate(() => window.seenLengths);
    const partial = [...new Set(lengths)].filter((length) => length > 0 && length < expected.length);
    assert.ok(partial.length >= 5, `the bubble grew in steps, saw lengths ${JSON.stringify(lengths)}`);
    assert.deepEqual(partial, [...partial].sort((a, b) => a - b), "the answer only grows");
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "What is 12 * 7?");
    const shot = join(RESULTS, "chat.png");
    await page.screenshot({ path: shot });
    if (process.env.UPDATE_SCREENSHOT === "1") {
      await mkdir(join(REPO, "docs"), { recursive: true });
      await copyFile(shot, join(REPO, "docs", "chat.png"));
    }
  });

  it("shows the conversation's history after a reload", async () => {
    await page.reload();
    await page.waitForSelector('#message-list [data-role="assistant"]');
    assert.equal(await page.isVisible("#sign-in"), false, "the token was kept");
    const texts = await page.$$eval("#message-list li", (items) => items.map((item) => item.textContent));
    assert.deepEqual(texts, [
      "What is 12 * 7?",
      "calls multiply(12, 7)",
      "multiply → 84",
      "The answer is 84.",
      "Streaming shows every word of the answer as soon as the server sends it, one delta at a time",
      "You said: Streaming shows every word of the answer as soon as the server sends it, one delta at a time",
    ]);
    assert.equal(await page.textContent("#title"), "What is 12 * 7?");
  });

  it("scrolls back through a long conversation, loading older messages", async () => {
    await page.click("#load-more"); // the seeded session is the oldest, on the sidebar's second page
    await page.click(`#sessions li[data-session-id="${seededSessionId}"] a`);
    await page.waitForFunction(() => document.querySelectorAll("#message-list li").length === 20);
    assert.equal(await page.textContent("#message-list li:first-child"), "Seed message 3");
    assert.equal(await page.textContent("#message-list li:last-child"), `You said: Seed message ${SEEDED_RUNS}`);
    await page.$eval("#messages", (pane) => pane.scrollTo(0, 0));
    await page.waitForFunction((total) => document.querySelectorAll("#message-list li").length === total, SEEDED_RUNS * 2);
    assert.equal(await page.textContent("#message-list li:first-child"), "Seed message 1");
    assert.equal(await page.isVisible("#load-older"), false, "nothing older is left");
  });

  it("renames the open session", async () => {
    await page.click("#rename");
    await page.fill("#rename-input", "Renamed in the browser");
    await page.press("#rename-input", "Enter");
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "Renamed in the browser");
    const item = page.locator(`#sessions li[data-session-id="${seededSessionId}"] a`);
    assert.match(await item.textContent(), /^Renamed in the browser/);
  });

  it("deletes the open session, from the page and the server", async () => {
    page.once("dialog", (dialog) => dialog.accept());
    await page.click("#delete");
    await page.waitForSelector(`#sessions li[data-session-id="${seededSessionId}"]`, { state: "detached" });
    assert.equal(await page.textContent("#title"), "New chat");
    const data = await server.graphql(token, "query($id: ID!) { session(id: $id) { id } }", { id: seededSessionId });
    assert.equal(data.session, null);
    const kept = await server.graphql(token, "query($id: ID!) { session(id: $id) { id } }", { id: chatSessionId });
    assert.equal(kept.session.id, chatSessionId, "only the deleted session is gone");
  });

  it("keeps the composer usable after leaving a conversation while its run streams", async () => {
    await page.click("#new-chat");
    await page.selectOption("#agent", "assistant");
    await page.fill("#message", "A long answer that is still streaming when the reader opens another conversation");
    await page.click("#send");
    await page.waitForSelector('[data-role="assistant"][data-state="streaming"]');
    await page.click("#new-chat");
    await page.waitForFunction(() => !document.querySelector("#send").disabled);
    assert.equal(await page.locator("#message-list li").count(), 0, "the left run's events stay out of the new chat");
    await page.fill("#message", "Hello again");
    await page.click("#send");
    await page.waitForSelector('[data-role="assistant"][data-state="done"]');
    assert.equal(await page.textContent('[data-role="assistant"]'), "You said: Hello again");
  });
});
