// The GraphQL-over-HTTP spec's own server audits (the graphql-http package's `serverAudits`), run against a real
// server with a bearer token added to each request: every audit must pass, with no warning.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { serverAudits } from "graphql-http";
import { backends, newUserId, startServer } from "../src/server.js";

for (const backend of await backends()) {
  describe(`graphql-http server audits (${backend})`, () => {
    let server;
    let results;

    before(async () => {
      server = await startServer({ backend });
      const authorization = `Bearer ${server.token(newUserId("audits"))}`;
      const audits = serverAudits({
        url: server.httpUrl,
        fetchFn: (input, init = {}) =>
          fetch(input, { ...init, headers: { ...Object.fromEntries(new Headers(init.headers)), authorization } }),
      });
      results = [];
      for (const audit of audits) {
        results.push({ name: audit.name, ...(await audit.fn()) });
      }
    });

    after(async () => {
      await server?.stop();
    });

    test("every audit ran", () => {
      assert.ok(results.length > 50, `only ${results.length} audits`);
    });

    test("no audit warns or fails", () => {
      const problems = results
        .filter((result) => result.status !== "ok")
        .map(({ status, name, reason }) => `${status}: ${name}${reason ? ` (${reason})` : ""}`);
      assert.deepEqual(problems, []);
    });
  });
}
