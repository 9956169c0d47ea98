// The chat page against a server locked to the page's own trusted documents (AGNO_GRAPHQL_TRUSTED_DOCUMENTS set to
// the dist/chat/persisted-documents.json the build writes), in headless chromium: signing in, a conversation
// started by a message whose answer streams, a file uploaded with a message, a regenerated answer, a rename, the
// history after a reload and a stopped answer all work, every operation the page sends over HTTP and the
// websocket is one the manifest lists, and anything else is refused with PERSISTED_QUERY_NOT_ALLOWED.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { launchBrowser, signedInPage, startServer } from "./server.mjs";

const MANIFEST = resolve(import.meta.dirname, "../dist/chat/persisted-documents.json");
const ANSWER = '#message-list [data-role="assistant"]';
const NOTES = { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("Shopping list\nmilk\n") };
const SAYS_NOTES =
  `notes.txt (document, ${NOTES.buffer.length} bytes, first line: 'Shopping list', ${NOTES.buffer.length} bytes received)`;

const nameOf = (document) => document?.match(/(?:query|mutation|subscription) (\w+)/)?.[1] ?? `unnamed: ${document}`;

describe("chat page with only its trusted documents allowed", () => {
  let server;
  let browser;
  let token;
  let page;
  let listed;
  /** Every document the page sent (HTTP and websocket), and every refusal it got back. */
  const sent = [];
  const refused = [];

  /**
   * Records the page's GraphQL traffic: the documents its requests send (read from its fetch calls, as a
   * multipart upload's body is not visible from outside), the answers refused, websocket messages both ways.
   */
  async function recordTraffic(context) {
    await context.exposeFunction("recordSent", (document) => sent.push(document));
    await context.addInitScript(() => {
      const pageFetch = window.fetch.bind(window);
      window.fetch = (input, init = {}) => {
        const operations = init.body instanceof FormData ? init.body.get("operations") : init.body;
        if (String(input).endsWith("/graphql") && typeof operations === "string") window.recordSent(JSON.parse(operations).query);
        return pageFetch(input, init);
      };
    });
    context.on("response", (response) => {
      if (new URL(response.url()).pathname === "/graphql" && response.status() >= 400) {
        refused.push(`HTTP ${response.status()}: ${response.request().postData()}`);
      }
    });
    await context.routeWebSocket(/\/graphql$/, (socket) => {
      const toServer = socket.connectToServer();
      socket.onMessage((message) => {
        const parsed = JSON.parse(message);
        if (parsed.type === "subscribe") sent.push(parsed.payload.query);
        toServer.send(message);
      });
      toServer.onMessage((message) => {
        if (JSON.parse(message).type === "error") refused.push(`websocket: ${message}`);
        socket.send(message);
      });
    });
  }

  before(async () => {
    listed = JSON.parse(await readFile(MANIFEST, "utf8"));
    server = await startServer({ env: { AGNO_GRAPHQL_TRUSTED_DOCUMENTS: MANIFEST } });
    token = await server.token("trusted-user");
    browser = await launchBrowser();
    page = await signedInPage(browser, server, token, recordTraffic);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Sends a message in the open conversation (Send waits for uploads) and waits until its answer settled. */
  async function send(message) {
    const answers = await page.locator(ANSWER).count();
    await page.fill("#message", message);
    await page.click("#send");
    await page.waitForFunction(
      ([selector, count]) => document.querySelectorAll(`${selector}[data-state="done"]`).length === count,
      [ANSWER, answers + 1],
    );
    await page.waitForSelector("#answer-tools:not([hidden])");
    return page.locator(ANSWER).last().textContent();
  }

  const texts = () => page.$$eval("#message-list > li", (items) => items.map((item) => item.textContent));

  /** Posts a body to /graphql with the page's own token, as another client of this server would. */
  async function post(body) {
    const pageToken = await page.evaluate(() => localStorage.getItem("agno-graphql-chat-token"));
    const response = await fetch(`${server.base}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${pageToken}` },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }

  it("signs in: the agents and the sidebar load", async () => {
    assert.equal(await page.isVisible("#app"), true);
    const agents = await page.$$eval("#agent option", (options) => options.map((option) => option.value));
    assert.ok(agents.includes("assistant") && agents.includes("calculator"), `agents: ${agents}`);
    assert.equal(await page.locator("#sessions li").count(), 0);
  });

  it("starts a conversation with a message whose answer streams in", async () => {
    await page.selectOption("#agent", "assistant");
    const message = "A trusted page streams its answers word by word like any other page";
    assert.equal(await send(message), `You said: ${message}`);
    const shown = await page.evaluate(() => window.answerTexts);
    const partial = shown.filter((text) => text.length > 0 && `You said: ${message}`.startsWith(text) && text !== `You said: ${message}`);
    assert.ok(new Set(partial).size >= 3, `the answer grew in steps: ${JSON.stringify(shown)}`);
    await page.waitForSelector("#sessions li");
    assert.match(await page.textContent("#sessions li"), /^A trusted page streams/);
  });

  it("uploads a file and sends it with a message", async () => {
    await page.locator("#composer").getByLabel("Attach files").setInputFiles(NOTES);
    await page.waitForSelector('#composer .chip[data-state="ready"]');
    assert.equal(await send("With a file"), `You said: With a file\nYou sent ${SAYS_NOTES}.`);
  });

  it("regenerates the last answer: 2 / 2", async () => {
    await page.click("#regenerate");
    await page.waitForFunction(() => document.querySelector("#answer-position")?.textContent === "2 / 2");
    assert.equal(await page.locator(ANSWER).last().textContent(), `You said: With a file\nYou sent ${SAYS_NOTES}.`);
  });

  it("renames the conversation", async () => {
    await page.click("#rename");
    await page.fill("#rename-input", "Trusted chat");
    await page.press("#rename-input", "Enter");
    await page.waitForFunction(() => document.querySelector("#title")?.textContent === "Trusted chat");
    assert.match(await page.textContent("#sessions li.current a"), /^Trusted chat/);
  });

  it("shows the conversation's history after a reload", async () => {
    const before = await texts();
    await page.reload();
    await page.waitForSelector("#app:not([aria-busy])");
    await page.waitForFunction((count) => document.querySelectorAll("#message-list > li").length === count, before.length);
    assert.deepEqual(await texts(), before);
    assert.equal(await page.textContent("#title"), "Trusted chat");
    assert.equal(await page.locator("#message-list a.attachment.document").count(), 1, "the file is there again");
  });

  it("stops a long answer with Stop", async () => {
    const words = Array.from({ length: 80 }, (_, n) => `word${n + 1}`).join(" ");
    await page.fill("#message", words);
    await page.click("#send");
    await page.waitForFunction(
      (selector) => [...document.querySelectorAll(selector)].pop()?.textContent.split(" ").length >= 4,
      `${ANSWER}[data-state="streaming"]`,
    );
    await page.click("#stop");
    await page.waitForSelector(`${ANSWER}[data-state="stopped"]`);
    const stopped = await page.locator(ANSWER).last().textContent();
    assert.ok(`You said: ${words}`.startsWith(stopped) && stopped.length < `You said: ${words}`.length, stopped);
  });

  it("sent every operation as the manifest lists it, and was refused none", async () => {
    const documents = new Set(Object.values(listed));
    assert.deepEqual(sent.filter((document) => !documents.has(document)).map(nameOf), [], "sent as listed");
    assert.deepEqual(refused, []);
    const used = new Set(sent.map(nameOf));
    for (const name of ["Agents", "Sessions", "SessionEvents", "RunAgent", "UploadAttachment", "SessionMessages",
      "RunAlternatives", "RegenerateRun", "RenameSession", "CancelRun"]) {
      assert.ok(used.has(name), `the journey sent ${name} (it sent ${[...used]})`);
    }
  });

  it("refuses an operation the manifest does not list, with PERSISTED_QUERY_NOT_ALLOWED and HTTP 400", async () => {
    const refusal = await post({ query: "query Viewer { viewer { userId } }" });
    assert.equal(refusal.status, 400);
    assert.deepEqual(refusal.body.errors.map((error) => error.extensions.code), ["PERSISTED_QUERY_NOT_ALLOWED"]);
  });

  it("refuses a listed operation written otherwise, and runs it by its hash", async () => {
    const [hash, agents] = Object.entries(listed).find(([, document]) => document.startsWith("query Agents "));
    const reordered = await post({ query: "query Agents { agents { id name description } }" });
    assert.equal(reordered.status, 400);
    assert.deepEqual(reordered.body.errors.map((error) => error.extensions.code), ["PERSISTED_QUERY_NOT_ALLOWED"]);
    const byHash = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: hash } } });
    assert.equal(byHash.status, 200, JSON.stringify(byHash.body));
    assert.ok(byHash.body.data.agents.some((agent) => agent.id === "assistant"), agents);
  });

  it("refuses an unlisted subscription over the websocket", async () => {
    const client = createClient({
      url: `${server.base.replace("http", "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: `Bearer ${token}` },
    });
    try {
      const errors = await new Promise((done, fail) => {
        client.subscribe(
          { query: 'subscription { runAgent(input: {agentId: "assistant", message: "hi"}) { __typename } }' },
          { next: () => fail(new Error("the unlisted subscription ran")), error: done, complete: () => fail(new Error("completed")) },
        );
      });
      assert.deepEqual(errors.map((error) => error.extensions.code), ["PERSISTED_QUERY_NOT_ALLOWED"]);
    } finally {
      await client.dispose();
    }
  });
});
