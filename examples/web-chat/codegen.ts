// Types for the chat page's operations, from the server's exported schema. The build runs this and then
// `tsc --noEmit`, so a schema change that breaks an operation breaks the build.
import { createHash } from "node:crypto";
import type { CodegenConfig } from "@graphql-codegen/cli";

// The two variables let a test check that an operation the schema no longer has fails the build.
const config: CodegenConfig = {
  schema: process.env.CODEGEN_SCHEMA ?? "../../schema.graphql",
  documents: ["src/chat/**/*.ts"],
  ignoreNoDocuments: false,
  generates: {
    [process.env.CODEGEN_OUT ?? "src/gql/"]: {
      preset: "client",
      presetConfig: {
        fragmentMasking: false,
        // persisted-documents.json: the page's trusted documents (AGNO_GRAPHQL_TRUSTED_DOCUMENTS), each operation
        // by the bare sha256 of its text, the hash a persisted query sends (the preset's "sha256" adds a prefix).
        persistedDocuments: { hashAlgorithm: (document: string) => createHash("sha256").update(document).digest("hex") },
      },
      config: {
        enumsAsTypes: true,
        useTypeImports: true,
        // An Upload variable is a file the fetch exchange sends as a multipart request.
        scalars: { DateTime: "string", JSON: "unknown", Upload: "File" },
      },
    },
  },
};

export default config;
