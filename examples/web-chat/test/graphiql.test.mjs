// GraphiQL from the local build, in headless chromium with every request off the loopback blocked:
// the page loads, a query runs over HTTP and a subscription over graphql-transport-ws, both
// authenticated by the headers box.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { launchBrowser, RESULTS, startServer } from "./server.mjs";

describe("GraphiQL offline", () => {
  let server;
  let browser;
  let page;
  let token;
  const blocked = [];

  before(async () => {
    server = await startServer();
    token = await server.token("graphiql-user");
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === "127.0.0.1") return route.continue();
      blocked.push(url.href);
      return route.abort("internetdisconnected");
    });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Replaces an editor's text the way a user does: focus it, select all, type. */
  async function setEditor(selector, text) {
    await page.click(`${selector} .CodeMirror-scroll`);
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    await page.keyboard.insertText(text);
  }

  /** Types a one-operation document and waits until GraphiQL has parsed it (it does so after a debounce). */
  async function setQuery(text, operationName) {
    await setEditor(".graphiql-query-editor", text);
    await page.waitForFunction((name) => {
      const operations = document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.operations;
      return operations?.length === 1 && operations[0].name?.value === name;
    }, operationName);
  }

  async function runAndWaitFor(text) {
    await page.click(".graphiql-execute-button");
    await page.waitForFunction(
      (expected) => document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror?.getValue().includes(expected),
      text,
    );
    return page.evaluate(() => JSON.parse(document.querySelector(".graphiql-response .CodeMirror").CodeMirror.getValue()));
  }

  it("loads from the server alone, with the Authorization hint in the headers box", async () => {
    await page.goto(`${server.base}/graphql`);
    await page.waitForSelector(".graphiql-container .graphiql-execute-button");
    assert.deepEqual(blocked, [], "nothing was fetched from outside the loopback");
    const headers = await page.evaluate(() =>
      [...document.querySelectorAll(".graphiql-editor-tool .CodeMirror")].map((el) => el.CodeMirror.getValue()).join("\n"),
    );
    assert.match(headers, /"Authorization": "Bearer PASTE-A-TOKEN/);
  });

  it("runs a query with the token from the headers box", async () => {
    await setEditor(".graphiql-editor-tool .graphiql-editor:not(.hidden)", JSON.stringify({ Authorization: `Bearer ${token}` }));
    await setQuery("query Who { viewer { userId } agents { id } }", "Who");
    const result = await runAndWaitFor("userId");
    assert.equal(result.data.viewer.userId, "graphiql-user");
    assert.ok(result.data.agents.some((agent) => agent.id === "calculator"));
  });

  it("streams a subscription over graphql-transport-ws with the same headers", async () => {
    const subscription = `subscription Ask {
      runAgent(input: { agentId: "calculator", message: "What is 12 * 7?" }) {
        __typename
        ... on RunCompleted { content }
      }
    }`;
    await setQuery(subscription, "Ask");
    const result = await runAndWaitFor("RunCompleted");
    assert.deepEqual(result.data.runAgent, { __typename: "RunCompleted", content: "The answer is 84." });
    await page.screenshot({ path: join(RESULTS, "graphiql.png") });
    assert.deepEqual(blocked, [], "nothing was fetched from outside the loopback");
  });
});
