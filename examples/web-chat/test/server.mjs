// A real agno-graphql server for the browser tests: `agno-graphql serve` on a free loopback port with a
// temporary SQLite database and its own secret, plus tokens from `agno-graphql token`, a GraphQL client
// for seeding (and uploading), and headless Debian chromium through playwright-core.
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createClient } from "graphql-ws";
import { chromium } from "playwright-core";
import WebSocket from "ws";

export const REPO = resolve(import.meta.dirname, "../../..");
export const RESULTS = resolve(import.meta.dirname, "../test-results");
const CLI = process.env.AGNO_GRAPHQL_BIN ?? join(REPO, ".venv/bin/agno-graphql");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

function freePort() {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** `env` adds AGNO_GRAPHQL_* settings, e.g. `{ AGNO_GRAPHQL_MAX_RUNS_PER_USER: "2" }`. */
export async function startServer({ offlineDelayMs = 15, env: settings = {} } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "agno-graphql-web-"));
  const port = await freePort();
  const env = {
    ...process.env,
    AGNO_GRAPHQL_DATABASE_URL: `sqlite:///${join(dir, "chat.db")}`,
    AGNO_GRAPHQL_STATE_DIR: dir,
    AGNO_GRAPHQL_JWT_SECRET: `browser-test-secret-${port}-0123456789abcdef`,
    AGNO_GRAPHQL_OFFLINE_DELAY_MS: String(offlineDelayMs),
    AGNO_GRAPHQL_LOG_LEVEL: "warning",
    ...settings,
  };
  const child = spawn(CLI, ["serve", "--host", "127.0.0.1", "--port", String(port)], {
    env,
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`agno-graphql serve exited (${child.exitCode}):\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`agno-graphql serve did not answer /healthz:\n${stderr}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }

  async function token(userId) {
    const { stdout } = await promisify(execFile)(CLI, ["token", userId], { env, cwd: dir });
    return stdout.trim();
  }

  async function graphql(bearer, query, variables = {}) {
    const response = await fetch(`${base}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = await response.json();
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  }

  /** Uploads one file as a GraphQL multipart request; resolves with the whole answer, errors included. */
  async function upload(bearer, name, bytes, type = "") {
    const query = "mutation($input: UploadAttachmentInput!) { uploadAttachment(input: $input) { attachment { id } } }";
    const form = new FormData();
    form.append("operations", JSON.stringify({ query, variables: { input: { file: null } } }));
    form.append("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.append("0", new Blob([bytes], { type }), name);
    const headers = { Authorization: `Bearer ${bearer}` };
    const response = await fetch(`${base}/graphql`, { method: "POST", headers, body: form });
    return response.json();
  }

  /** Runs an agent to the end over graphql-ws; resolves with the terminal event. */
  function run(bearer, input) {
    const ws = createClient({
      url: `ws://127.0.0.1:${port}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: `Bearer ${bearer}` },
    });
    const query = `subscription($input: RunAgentInput!) {
      runAgent(input: $input) { __typename sessionId ... on RunCompleted { content } }
    }`;
    return new Promise((done, fail) => {
      let last = null;
      ws.subscribe(
        { query, variables: { input } },
        {
          next: (result) => (result.errors ? fail(new Error(JSON.stringify(result.errors))) : (last = result.data.runAgent)),
          error: fail,
          complete: () => done(last),
        },
      );
    }).finally(() => ws.dispose());
  }

  async function stop() {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      const exited = new Promise((done) => child.once("exit", done));
      let timer;
      const timeout = new Promise((done) => (timer = setTimeout(() => done("timeout"), 15_000)));
      if ((await Promise.race([exited, timeout])) === "timeout") child.kill("SIGKILL");
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  }

  return { base, token, graphql, upload, run, stop };
}

export async function launchBrowser() {
  await mkdir(RESULTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/**
 * A new browser context (its own localStorage, like another browser) on the chat page, signed in with `token`, that
 * records in `window.answerTexts` every text the answer bubbles show (to check that an answer streams and only
 * grows). `prepare(context)` runs first, for routes a test wants in place before the page loads.
 */
export async function signedInPage(browser, server, token, prepare = async () => {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  await prepare(context);
  await context.addInitScript(() => {
    window.answerTexts = [];
    document.addEventListener("DOMContentLoaded", () => {
      const list = document.querySelector("#message-list");
      new MutationObserver(() => {
        for (const answer of list.querySelectorAll('[data-role="assistant"]')) window.answerTexts.push(answer.textContent);
      }).observe(list, { childList: true, subtree: true, characterData: true });
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  await page.goto(`${server.base}/chat/`);
  await page.fill("#token", token);
  await page.click("#sign-in-form button");
  await page.waitForSelector("#app:not([hidden]):not([aria-busy])");
  return page;
}
