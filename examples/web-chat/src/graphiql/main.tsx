// GraphiQL from local files, for /graphql when `make web` has been run: no CDN, works offline.
// Queries and mutations go over HTTP; subscriptions over graphql-ws (graphql-transport-ws) to the same
// path. The headers box is sent with every HTTP request and, for subscriptions, as the websocket's
// connection_init payload, which is where the server looks for the Authorization header.
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/graphiql.css";
import { createRoot } from "react-dom/client";

const HEADERS_HINT = `{
  "Authorization": "Bearer PASTE-A-TOKEN-FROM-agno-graphql-token-OR-make-run"
}`;

const DEFAULT_QUERY = `# Every request needs the Authorization header: put a token in the Headers box
# below ("agno-graphql token YOUR_NAME" prints one). Subscriptions send it too.

query Agents {
  agents {
    id
    name
    description
  }
}

subscription Ask {
  runAgent(input: { agentId: "calculator", message: "What is 12 * 7?" }) {
    __typename
    ... on RunContentDelta { delta }
    ... on ToolCallStarted { toolCall { name arguments } }
    ... on ToolCallCompleted { result }
    ... on RunCompleted { content }
  }
}
`;

const httpUrl = new URL(window.location.pathname, window.location.href);
const wsUrl = new URL(httpUrl.href);
wsUrl.protocol = httpUrl.protocol === "https:" ? "wss:" : "ws:";

// The toolkit merges the headers box into `wsConnectionParams` for each subscription.
const fetcher = createGraphiQLFetcher({
  url: httpUrl.href,
  subscriptionUrl: wsUrl.href,
  wsConnectionParams: {},
  enableIncrementalDelivery: false,
});

const params = new URLSearchParams(window.location.search);
const container = document.getElementById("graphiql");
if (!container) throw new Error("#graphiql is missing from the page");
createRoot(container).render(
  <GraphiQL
    fetcher={fetcher}
    defaultQuery={DEFAULT_QUERY}
    query={params.get("query") ?? undefined}
    variables={params.get("variables") ?? undefined}
    defaultHeaders={HEADERS_HINT}
    defaultEditorToolsVisibility="headers"
    shouldPersistHeaders
  />,
);
