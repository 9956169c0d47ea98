// The documents the clients send, checked against schema.graphql without a server: tests/operations/ is
// validated by the Python suite, the ones written in src/operations.js only here.
import assert from "node:assert/strict";
import { test } from "node:test";
import { validate } from "graphql";
import * as operations from "../src/operations.js";
import { loadSchema } from "../src/possible-types.js";

const schema = loadSchema();
const documents = Object.entries(operations).filter(([, value]) => value?.kind === "Document");

test("the conversation-editing, queue and attachment documents are among the ones checked", () => {
  const names = documents.map(([name]) => name);
  const written = [
    "REGENERATE_RUN",
    "EDIT_MESSAGE",
    "FORK_SESSION",
    "RUN_ALTERNATIVES",
    "RUN",
    "CANCEL_RUN",
    "UPLOAD_ATTACHMENT",
    "SESSION_ATTACHMENTS",
  ];
  for (const name of written) {
    assert.ok(names.includes(name), name);
  }
});

for (const [name, document] of documents) {
  test(`${name} validates against schema.graphql`, () => {
    assert.deepEqual(
      validate(schema, document).map((error) => error.message),
      [],
    );
  });
}
