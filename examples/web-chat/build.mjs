// Bundles the chat page and GraphiQL into dist/ (served by the server at /chat and /graphql).
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const dist = new URL("./dist/", import.meta.url);
await rm(dist, { recursive: true, force: true });

const common = {
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "iife",
  target: "es2020",
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
};

await Promise.all([
  build({ ...common, entryPoints: { chat: "src/chat/main.ts" }, outdir: "dist/chat" }),
  build({ ...common, entryPoints: { graphiql: "src/graphiql/main.tsx" }, outdir: "dist/graphiql", jsx: "automatic" }),
]);
await mkdir(new URL("chat/", dist), { recursive: true });
await copyFile(new URL("./src/chat/index.html", import.meta.url), new URL("chat/index.html", dist));
await copyFile(new URL("./src/chat/style.css", import.meta.url), new URL("chat/chat.css", dist));
// The page's trusted documents, for AGNO_GRAPHQL_TRUSTED_DOCUMENTS (written by the codegen, see codegen.ts).
await copyFile(new URL("./src/gql/persisted-documents.json", import.meta.url), new URL("chat/persisted-documents.json", dist));
await copyFile(new URL("./src/graphiql/index.html", import.meta.url), new URL("graphiql/index.html", dist));
console.log("built dist/chat and dist/graphiql");
