// The page's operations as its trusted documents list them. The build writes the manifest (GraphQL Code
// Generator's persistedDocuments: sha256 -> document, as codegen prints it) and copies it to
// dist/chat/persisted-documents.json; a server started with AGNO_GRAPHQL_TRUSTED_DOCUMENTS set to that file runs
// only those documents, sent by hash or byte for byte as listed. The page sends each operation as its listed text,
// which any server runs (no hash to register first): over HTTP through urql (queries, mutations, the multipart
// upload) and over graphql-ws (the runs through `listedText`, sessionEvents through urql).
import manifest from "../gql/persisted-documents.json";

const LISTED: Readonly<Record<string, string>> = manifest;

/** A generated document: codegen puts its hash, the manifest's key, in `__meta__` (operations only). */
interface HashedDocument {
  __meta__?: { hash?: string };
}

/** An operation's text as the manifest lists it. */
export function listedText(document: object): string {
  const hash = (document as HashedDocument).__meta__?.hash;
  const text = hash === undefined ? undefined : LISTED[hash];
  if (text === undefined) throw new Error("an operation missing from persisted-documents.json: run the codegen");
  return text;
}

/**
 * The operation, sent by urql as the manifest lists it. Codegen's AST prints otherwise (the manifest sorts
 * fields), and urql (@urql/core 5.2, checked) sends a document's `loc.source.body` as its text, where a parsed
 * document keeps its source: so the operation gets its listed text as its source. If an upgrade of urql prints
 * the AST instead, the server refuses every operation but the runs, and test/trusted.test.mjs fails here.
 */
export function listed<T extends object>(document: T): T {
  const body = listedText(document);
  const loc = { start: 0, end: body.length, source: { body, name: "persisted-documents.json", locationOffset: { line: 1, column: 1 } } };
  return Object.assign(document, { loc });
}
