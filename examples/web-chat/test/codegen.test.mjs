// The page's operations are checked against schema.graphql at build time: GraphQL Code Generator refuses
// an operation that asks for a field the schema does not have.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { REPO } from "./server.mjs";

const HERE = resolve(import.meta.dirname, "..");
const CODEGEN = join(HERE, "node_modules/.bin/graphql-codegen");

async function codegen(schema, out) {
  const env = { ...process.env, CODEGEN_SCHEMA: schema, CODEGEN_OUT: `${out}/` };
  try {
    const { stdout, stderr } = await promisify(execFile)(CODEGEN, ["--config", "codegen.ts"], { cwd: HERE, env });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    return { ok: false, output: `${error.stdout}${error.stderr}` };
  }
}

describe("typed operations", () => {
  let dir;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "web-chat-codegen-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("generates types for the page's operations from schema.graphql", async () => {
    const result = await codegen(join(REPO, "schema.graphql"), join(dir, "ok"));
    assert.ok(result.ok, result.output);
    const types = await readFile(join(dir, "ok", "graphql.ts"), "utf8");
    assert.match(types, /export type RunAgentSubscription = /);
    assert.match(types, /export type SessionsQuery = /);
  });

  it("fails when the schema loses a field an operation uses", async () => {
    const schema = await readFile(join(REPO, "schema.graphql"), "utf8");
    const broken = schema.replace(/^\s*runCount: Int!\n/m, "");
    assert.notEqual(broken, schema, "the field to remove is in the schema");
    await writeFile(join(dir, "broken.graphql"), broken);
    const result = await codegen(join(dir, "broken.graphql"), join(dir, "broken"));
    assert.equal(result.ok, false);
    assert.match(result.output, /Cannot query field "runCount" on type "Session"/);
  });
});
