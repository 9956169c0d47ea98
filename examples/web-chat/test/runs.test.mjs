// The run lifecycle in the chat page, in headless chromium against a real server with a slow offline
// model (80 ms a word): Stop, a reload mid-run (also after an answered pause), a websocket that drops
// mid-run (also before the server's answer to an approved pause), two tabs kept in sync by
// sessionEvents, and the SESSION_BUSY / RATE_LIMITED messages.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, signedInPage, startServer } from "./server.mjs";

const WORD_DELAY_MS = 80;
const MAX_RUNS_PER_USER = 2;

/** A message of `count` numbered words: the assistant echoes it word by word, so its answer takes a while. */
function longMessage(label, count) {
  return `${label}: ${Array.from({ length: count }, (_, n) => `word${n + 1}`).join(" ")}`;
}

const SESSION_QUERY = "query($id: ID!) { session(id: $id) { id name runCount activeRun { id } } }";
const RUN_QUERY = "query($id: ID!) { run(id: $id) { id status content } }";
const CREATE_SESSION = "mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id } } }";
const SESSION_COUNT = "{ sessions(first: 1) { totalCount } }";
const CANCEL_RUN = "mutation($input: CancelRunInput!) { cancelRun(input: $input) { run { id status } } }";

describe("chat page: run lifecycle", () => {
  let server;
  let browser;
  let token;

  before(async () => {
    server = await startServer({
      offlineDelayMs: WORD_DELAY_MS,
      env: { AGNO_GRAPHQL_MAX_RUNS_PER_USER: String(MAX_RUNS_PER_USER) },
    });
    token = await server.token("lifecycle-user");
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /**
   * A new browser context (its own localStorage, like another browser), signed in with the token.
   * `sockets`, when given, collects every websocket the page opens, routed through the test (which
   * passes the messages on to the server and can cut a socket as a network drop would).
   */
  function openPage(sockets = null) {
    return signedInPage(browser, server, token, async (context) => {
      if (!sockets) return;
      await context.routeWebSocket(/\/graphql$/, (socket) => {
        socket.connectToServer();
        sockets.push(socket);
      });
    });
  }

  const answerText = (page) => page.textContent('#message-list [data-role="assistant"]');
  /** The answer texts the page showed (since its last load) that are not a beginning of `answer`. */
  const strayTexts = async (page, answer) =>
    (await page.evaluate(() => window.answerTexts)).filter((text) => !answer.startsWith(text));
  const sessionIdOf = (page) => new URLSearchParams(new URL(page.url()).hash.slice(1)).get("session");

  /** Sends a message in a new chat and waits until its answer has started streaming. */
  async function startRun(page, message) {
    await page.click("#new-chat");
    await page.selectOption("#agent", "assistant");
    await page.fill("#message", message);
    await page.click("#send");
    await page.waitForFunction(() => {
      const answer = document.querySelector('#message-list [data-role="assistant"][data-state="streaming"]');
      return answer && answer.textContent.split(" ").length >= 4;
    });
  }

  /** Resolves once `predicate(session)` holds for the session as the server tells it (bounded). */
  async function waitForSession(sessionId, predicate) {
    for (let attempt = 0; attempt < 200; attempt += 1) {
      const { session } = await server.graphql(token, SESSION_QUERY, { id: sessionId });
      if (predicate(session)) return session;
      await new Promise((done) => setTimeout(done, 50));
    }
    throw new Error(`session ${sessionId} never reached the expected state`);
  }

  it("stops a streaming answer with Stop: the bubble keeps its partial text, marked stopped, stored CANCELLED", async () => {
    const page = await openPage();
    const message = longMessage("Stop me", 60);
    await startRun(page, message);
    assert.equal(await page.isVisible("#stop"), true, "Stop shows while the answer streams");
    await page.click("#stop");
    await page.waitForSelector('#message-list [data-role="assistant"][data-state="stopped"]');
    const stopped = await answerText(page);
    const runId = await page.getAttribute('#message-list [data-role="assistant"]', "data-run-id");
    const { run } = await server.graphql(token, RUN_QUERY, { id: runId });
    assert.equal(run.status, "CANCELLED");
    // As Markdown shows it: a paragraph without the space after its last word.
    assert.equal(stopped, run.content.trimEnd(), "the bubble ends with the stored partial answer");
    assert.ok(`You said: ${message}`.startsWith(stopped) && stopped.length < `You said: ${message}`.length);
    assert.equal(await page.isVisible("#stop"), false, "Stop goes away with the run");
    assert.equal(await page.isEnabled("#send"), true);
    // Several words' worth of time later the bubble has not grown: nothing streams into it any more.
    await page.waitForTimeout(WORD_DELAY_MS * 6);
    assert.equal(await answerText(page), stopped);
    await page.context().close();
  });

  it("picks a run up again after a reload and completes its answer exactly once", async () => {
    const page = await openPage();
    const message = longMessage("Reload me", 50);
    await startRun(page, message);
    const before = await answerText(page);
    await page.reload();
    // After the reload the answer is rebuilt from the run's events and keeps streaming.
    await page.waitForSelector('#message-list [data-role="assistant"][data-state="streaming"]');
    await page.waitForSelector('#message-list [data-role="assistant"][data-state="done"]');
    const texts = await page.$$eval("#message-list li", (items) => items.map((item) => item.textContent));
    assert.deepEqual(texts, [message, `You said: ${message}`], "the message and its full answer, once each");
    assert.ok(texts[1].startsWith(before), "the answer continued the text shown before the reload");
    assert.deepEqual(await strayTexts(page, texts[1]), [], "the rebuilt answer only grew, no text repeated");
    // The stored conversation agrees: one run, the same two messages after another reload.
    const session = await waitForSession(sessionIdOf(page), (found) => found.activeRun === null);
    assert.equal(session.runCount, 1);
    await page.reload();
    await page.waitForSelector('#message-list [data-role="assistant"]');
    const stored = await page.$$eval("#message-list li", (items) => items.map((item) => item.textContent));
    assert.deepEqual(stored, texts);
    await page.context().close();
  });

  it("picks a run up again after a reload while it streams on from an answered pause", async () => {
    const page = await openPage();
    await page.click("#new-chat");
    await page.selectOption("#agent", "helpdesk");
    await page.fill("#message", "use the ask_user tool");
    await page.click("#send");
    await page.getByRole("radio", { name: "Team" }).check();
    await page.getByRole("checkbox", { name: "Backups" }).check();
    await page.click('[data-role="requirements"] button:text-is("Send")');
    await page.waitForFunction(() => {
      const answer = document.querySelector('#message-list [data-role="assistant"][data-state="streaming"]');
      return answer && answer.textContent.split(" ").length >= 4;
    });
    const before = await answerText(page);
    await page.reload();
    await page.waitForSelector('#message-list [data-role="assistant"][data-state="done"]');
    const chosen =
      '[{"question": "Which plan would you like?", "selected": ["Team"]}, ' +
      '{"question": "Which extras should come with it?", "selected": ["Backups"]}]';
    const [message, call, result, answer, ...rest] = await page.$$eval("#message-list li", (items) =>
      items.map((item) => item.textContent),
    );
    assert.equal(message, "use the ask_user tool");
    assert.match(call, /^calls ask_user\(/);
    assert.equal(
      result,
      `ask_user → User feedback received: ${chosen}`,
      "the tool's result as stored, from the events after the pause",
    );
    assert.equal(answer, `The answer is User feedback received: ${chosen}.`, "the answer in full, once");
    assert.deepEqual(rest, [], "no card and nothing repeated");
    assert.ok(answer.startsWith(before), "the answer continued the text shown before the reload");
    assert.deepEqual(await strayTexts(page, answer), [], "the rebuilt answer only grew");
    await page.context().close();
  });

  it("resumes the answer where it was when the websocket drops mid-run", async () => {
    const sockets = [];
    const page = await openPage(sockets);
    const message = longMessage("Drop me", 60);
    const sessionsBefore = (await server.graphql(token, SESSION_COUNT)).sessions.totalCount;
    await startRun(page, message);
    const before = await answerText(page);
    const opened = sockets.length;
    await sockets[sockets.length - 1].close({ code: 1012, reason: "network drop" });
    await page.waitForSelector('#message-list [data-role="assistant"][data-state="done"]', { timeout: 30_000 });
    assert.ok(sockets.length > opened, "the page opened a new websocket");
    const texts = await page.$$eval("#message-list li", (items) => items.map((item) => item.textContent));
    assert.deepEqual(texts, [message, `You said: ${message}`], "the full answer, no text lost or repeated");
    assert.ok(texts[1].startsWith(before));
    assert.deepEqual(await strayTexts(page, texts[1]), [], "the answer only grew across the reconnect");
    const session = await waitForSession(sessionIdOf(page), (found) => found.activeRun === null);
    assert.equal(session.runCount, 1);
    const sessionsAfter = (await server.graphql(token, SESSION_COUNT)).sessions.totalCount;
    assert.equal(sessionsAfter, sessionsBefore + 1, "the reconnect resumed the run rather than starting another");
    assert.equal(await page.textContent("#error"), "");
    await page.context().close();
  });

  it("follows an approved pause on when the websocket drops before the server answers the approval", async () => {
    // The server takes the continueRun, but its answer is lost with the socket: graphql-ws sends the
    // continueRun again on the next socket, and the server refuses it (RUN_NOT_PAUSED) as the run goes on.
    let cut = false;
    const page = await signedInPage(browser, server, token, (context) =>
      context.routeWebSocket(/\/graphql$/, (socket) => {
        const upstream = socket.connectToServer();
        let lostId = null;
        socket.onMessage((message) => {
          const { type, id, payload } = JSON.parse(message);
          if (!cut && type === "subscribe" && payload.query.includes("continueRun")) lostId = id;
          upstream.send(message);
        });
        upstream.onMessage((message) => {
          if (!lostId || JSON.parse(message).id !== lostId) socket.send(message);
          else if (!cut) {
            cut = true;
            socket.close({ code: 1012, reason: "network drop" });
          }
        });
      }),
    );
    await page.click("#new-chat");
    await page.selectOption("#agent", "helpdesk");
    await page.fill("#message", "use the restart_service tool");
    await page.click("#send");
    const card = '#message-list [data-role="requirements"]';
    await page.waitForSelector(`${card} form`);
    const runId = await page.getAttribute(card, "data-run-id");
    await page.click(`${card} button:text-is("Approve")`);
    // Done, or (what the page did before) the card saying the run is no longer paused.
    await page.waitForSelector(`#message-list [data-role="assistant"][data-state="done"], ${card} .error:not(:empty)`);
    assert.ok(cut, "the server's answer to the continueRun was lost with its socket");
    const texts = await page.$$eval("#message-list li", (items) => items.map((item) => item.textContent));
    assert.deepEqual(texts, [
      "use the restart_service tool",
      "calls restart_service()",
      "restart_service → The web service was restarted.",
      "The answer is The web service was restarted..",
    ]);
    const answerRunId = await page.getAttribute('#message-list [data-role="assistant"]', "data-run-id");
    assert.equal(answerRunId, runId, "the answer is the paused run's bubble");
    assert.equal(await page.textContent("#error"), "");
    const { run } = await server.graphql(token, RUN_QUERY, { id: runId });
    assert.equal(run.status, "COMPLETED");
    assert.equal(run.content, "The answer is The web service was restarted..");
    await page.context().close();
  });

  it("keeps a second tab's sidebar in sync: created, renamed, updated, deleted", async () => {
    const older = await server.graphql(token, CREATE_SESSION, { input: { agentId: "assistant", name: "Older chat" } });
    const olderId = older.createSession.session.id;
    const [pageA, pageB] = [await openPage(), await openPage()];
    const rowIds = (page) => page.$$eval("#sessions li", (items) => items.map((item) => item.dataset.sessionId));
    const row = (page, id) => page.locator(`#sessions li[data-session-id="${id}"] a`);
    /** Waits until the sidebar row of session `id` in `page` has text matching `pattern`. */
    const rowShows = (page, id, pattern) =>
      page.waitForFunction(
        ([id, source]) => new RegExp(source).test(document.querySelector(`#sessions li[data-session-id="${id}"] a`)?.textContent),
        [id, pattern.source],
      );

    // Created in A (by its first message): B lists it on top without a reload.
    await pageA.click("#new-chat");
    await pageA.fill("#message", "Hello from tab A");
    await pageA.click("#send");
    await pageA.waitForSelector('#message-list [data-role="assistant"][data-state="done"]');
    const createdId = sessionIdOf(pageA);
    await pageB.waitForFunction((id) => document.querySelector("#sessions li")?.dataset.sessionId === id, createdId);
    await rowShows(pageB, createdId, /^Hello from tab A/);

    // Renamed in A: B shows the new name, in the sidebar and in its title when it has the session open.
    await pageB.click(`#sessions li[data-session-id="${createdId}"] a`);
    await pageB.waitForFunction(() => document.querySelectorAll('#message-list [data-role="assistant"]').length === 1);
    await pageA.click("#rename");
    await pageA.fill("#rename-input", "Renamed in tab A");
    await pageA.press("#rename-input", "Enter");
    await pageB.waitForFunction(() => document.querySelector("#title")?.textContent === "Renamed in tab A");
    assert.match(await row(pageB, createdId).textContent(), /^Renamed in tab A/);

    // Updated by a run in A on the older session: it moves to the top of B's sidebar.
    assert.notEqual((await rowIds(pageB))[0], olderId);
    await pageA.goto(`${server.base}/chat/#session=${olderId}`);
    await pageA.waitForFunction(() => document.querySelector("#title")?.textContent === "Older chat");
    await pageA.fill("#message", "A run in the older chat");
    await pageA.click("#send");
    await pageB.waitForFunction((id) => document.querySelector("#sessions li")?.dataset.sessionId === id, olderId);
    await rowShows(pageB, olderId, /· 1 run$/);

    // Deleted in A: the row leaves B's sidebar, and B's open conversation closes.
    await pageA.waitForSelector('#message-list [data-role="assistant"][data-state="done"]');
    await pageA.goto(`${server.base}/chat/#session=${createdId}`);
    await pageA.waitForFunction(() => document.querySelector("#title")?.textContent === "Renamed in tab A");
    pageA.once("dialog", (dialog) => dialog.accept());
    await pageA.click("#delete");
    await pageB.waitForSelector(`#sessions li[data-session-id="${createdId}"]`, { state: "detached" });
    assert.equal(await pageB.textContent("#title"), "New chat");
    assert.equal(await pageB.textContent("#error"), "That conversation was deleted.");
    assert.deepEqual(await rowIds(pageA), await rowIds(pageB), "both tabs list the same sessions");
    await pageA.context().close();
    await pageB.context().close();
  });

  it("says the conversation is busy when another run is still answering in it (SESSION_BUSY)", async () => {
    const created = await server.graphql(token, CREATE_SESSION, { input: { agentId: "assistant", name: "Busy chat" } });
    const sessionId = created.createSession.session.id;
    const page = await openPage();
    await page.goto(`${server.base}/chat/#session=${sessionId}`);
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "Busy chat");
    const elsewhere = server.run(token, { agentId: "assistant", sessionId, message: longMessage("Elsewhere", 200) });
    const { activeRun } = await waitForSession(sessionId, (found) => found.activeRun !== null);
    await page.fill("#message", "Are you there?");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector("#error")?.textContent.includes("still answering"));
    assert.equal(await page.locator('#message-list [data-role="user"]').count(), 0, "no bubble for the refused message");
    assert.equal(await page.inputValue("#message"), "Are you there?", "the message is back in the composer");
    assert.equal(await page.isEnabled("#send"), true);
    await server.graphql(token, CANCEL_RUN, { input: { runId: activeRun.id } });
    assert.equal((await elsewhere).__typename, "RunCancelled");
    await page.context().close();
  });

  it("says so when the user has too many runs going (RATE_LIMITED)", async () => {
    const runs = [];
    const runIds = [];
    for (let n = 0; n < MAX_RUNS_PER_USER; n += 1) {
      const created = await server.graphql(token, CREATE_SESSION, { input: { agentId: "assistant", name: `Busy ${n}` } });
      const sessionId = created.createSession.session.id;
      runs.push(server.run(token, { agentId: "assistant", sessionId, message: longMessage(`Run ${n}`, 200) }));
      runIds.push((await waitForSession(sessionId, (found) => found.activeRun !== null)).activeRun.id);
    }
    const page = await openPage();
    await page.click("#new-chat");
    await page.fill("#message", "One more, please");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector("#error")?.textContent.includes("Too many answers"));
    assert.equal(await page.locator("#message-list li").count(), 0, "no broken bubble");
    assert.equal(await page.inputValue("#message"), "One more, please");
    for (const runId of runIds) await server.graphql(token, CANCEL_RUN, { input: { runId } });
    await Promise.all(runs);
    await page.context().close();
  });
});

