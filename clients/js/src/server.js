// A real agno-graphql server for the tests: `agno-graphql serve` from the repository's virtualenv, on a free
// loopback port, with a fresh database (a temporary SQLite file or a new MariaDB database), the offline demo
// model, and a known JWT secret for minting tokens.
//
// Every suite runs on each backend of `backends()`: SQLite always; MariaDB (AGNO_GRAPHQL_TEST_MYSQL_URL,
// default root@127.0.0.1:3306) when reachable. As in the Python suite, an unreachable MariaDB is a loud skip,
// and a failure when AGNO_GRAPHQL_REQUIRE_MYSQL=1 (CI). AGNO_GRAPHQL_JS_BACKENDS=sqlite picks backends by hand.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../../..");
const venvBin = process.env.AGNO_GRAPHQL_VENV_BIN ?? path.join(repoRoot, ".venv/bin");
const mysqlBaseUrl = process.env.AGNO_GRAPHQL_TEST_MYSQL_URL ?? "mysql+pymysql://root@127.0.0.1:3306/test";
const SECRET = "js-client-suite-secret-0123456789abcdef";
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// Creates or drops a MariaDB database through the virtualenv's PyMySQL (no MySQL driver in node_modules).
function mysqlAdmin(statement) {
  const script = [
    "import sys, pymysql",
    "from sqlalchemy.engine import make_url",
    "u = make_url(sys.argv[1])",
    "c = pymysql.connect(host=u.host or '127.0.0.1', port=u.port or 3306, user=u.username or 'root',",
    "                    password=u.password or '', autocommit=True, connect_timeout=5)",
    "c.cursor().execute(sys.argv[2])",
  ].join("\n");
  const done = spawnSync(path.join(venvBin, "python"), ["-c", script, mysqlBaseUrl, statement], {
    encoding: "utf8",
    timeout: 30_000,
  });
  if (done.status !== 0) throw new Error(`MariaDB: ${statement} failed: ${done.stderr}`);
}

function newDatabase(backend, stateDir) {
  if (backend === "sqlite") return { url: `sqlite:///${path.join(stateDir, "agno.db")}`, drop() {} };
  if (backend !== "mysql") throw new Error(`AGNO_GRAPHQL_JS_BACKEND must be sqlite or mysql, not ${backend}`);
  const name = `agql_js_${process.pid}_${Date.now().toString(36)}`;
  mysqlAdmin(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
  const base = new URL(mysqlBaseUrl.replace(/^mysql\+pymysql:/, "http:"));
  base.pathname = `/${name}`;
  return {
    url: base.toString().replace(/^http:/, "mysql+pymysql:"),
    drop: () => mysqlAdmin(`DROP DATABASE IF EXISTS \`${name}\``),
  };
}

async function waitHealthy(baseUrl, child, output) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`agno-graphql serve exited (${child.exitCode}):\n${output()}`);
    try {
      const response = await fetch(`${baseUrl}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`agno-graphql serve did not become healthy in ${STARTUP_TIMEOUT_MS} ms:\n${output()}`);
}

function mysqlReachable() {
  const url = new URL(mysqlBaseUrl.replace(/^mysql\+pymysql:/, "http:"));
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname || "127.0.0.1", port: Number(url.port || 3306) });
    const done = (reachable) => {
      socket.destroy();
      resolve(reachable);
    };
    socket.setTimeout(3000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The database backends to run the suites on. */
export async function backends() {
  if (process.env.AGNO_GRAPHQL_JS_BACKENDS) return process.env.AGNO_GRAPHQL_JS_BACKENDS.split(",");
  if (await mysqlReachable()) return ["sqlite", "mysql"];
  if (process.env.AGNO_GRAPHQL_REQUIRE_MYSQL === "1") {
    throw new Error(`AGNO_GRAPHQL_REQUIRE_MYSQL=1 but MariaDB is not reachable at ${mysqlBaseUrl}`);
  }
  console.warn(`!!! MariaDB NOT REACHABLE at ${mysqlBaseUrl}: the MySQL half of the JS suite is SKIPPED !!!`);
  return ["sqlite"];
}

export async function startServer({ backend = "sqlite", env = {} } = {}) {
  const stateDir = mkdtempSync(path.join(tmpdir(), "agno-graphql-js-"));
  const database = newDatabase(backend, stateDir);
  const port = await freePort();
  const serverEnv = {
    ...process.env,
    AGNO_GRAPHQL_DATABASE_URL: database.url,
    AGNO_GRAPHQL_STATE_DIR: stateDir,
    AGNO_GRAPHQL_JWT_SECRET: SECRET,
    AGNO_GRAPHQL_OFFLINE_DELAY_MS: "2",
    AGNO_GRAPHQL_LOG_LEVEL: "warning",
    ...env,
  };
  // cwd is the state dir, so a developer's .env in the repository does not leak into the tests.
  const child = spawn(path.join(venvBin, "agno-graphql"), ["serve", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: stateDir,
    env: serverEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const keep = (chunk) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(baseUrl, child, () => log);
  } catch (error) {
    child.kill("SIGKILL");
    database.drop();
    throw error;
  }

  return {
    backend,
    httpUrl: `${baseUrl}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    log: () => log,
    /** A JWT for the user, minted by `agno-graphql token` with the server's secret. */
    token(userId) {
      const minted = spawnSync(path.join(venvBin, "agno-graphql"), ["token", userId], {
        cwd: stateDir,
        env: serverEnv,
        encoding: "utf8",
        timeout: 30_000,
      });
      if (minted.status !== 0) throw new Error(`agno-graphql token failed: ${minted.stderr}`);
      return minted.stdout.trim();
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      database.drop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** A user id no other test uses, so tests sharing a server never see each other's sessions. */
export function newUserId(label) {
  return `${label}-${Math.random().toString(36).slice(2, 10)}`;
}
