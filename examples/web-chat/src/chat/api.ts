// The GraphQL side of the page: one urql client (HTTP for queries and mutations, graphql-ws for the
// runAgent subscription) and the operations the page uses. Codegen types every operation from
// ../../schema.graphql, so a schema change that breaks one fails the build.
import { Client, fetchExchange, subscriptionExchange } from "@urql/core";
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { graphql } from "../gql";

export const AgentsQuery = graphql(`
  query Agents {
    agents {
      id
      name
      description
    }
  }
`);

export const SessionsQuery = graphql(`
  query Sessions($first: Int!, $after: String) {
    sessions(first: $first, after: $after) {
      edges {
        cursor
        node {
          id
          name
          agentId
          updatedAt
          runCount
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

export const SessionMessagesQuery = graphql(`
  query SessionMessages($id: ID!, $last: Int!, $before: String) {
    session(id: $id) {
      id
      name
      agentId
      messages(last: $last, before: $before) {
        nodes {
          id
          role
          content
          toolName
          toolCalls {
            id
            name
            arguments
          }
        }
        pageInfo {
          hasPreviousPage
          startCursor
        }
      }
    }
  }
`);

export const RenameSessionMutation = graphql(`
  mutation RenameSession($input: RenameSessionInput!) {
    renameSession(input: $input) {
      session {
        id
        name
      }
    }
  }
`);

export const DeleteSessionMutation = graphql(`
  mutation DeleteSession($input: DeleteSessionInput!) {
    deleteSession(input: $input) {
      deletedSessionId
    }
  }
`);

export const RunAgentSubscription = graphql(`
  subscription RunAgent($input: RunAgentInput!) {
    runAgent(input: $input) {
      __typename
      runId
      sessionId
      ... on RunContentDelta {
        delta
      }
      ... on ToolCallStarted {
        toolCall {
          id
          name
          arguments
        }
      }
      ... on ToolCallCompleted {
        toolCall {
          id
          name
        }
        result
        failed
      }
      ... on RunCompleted {
        content
      }
      ... on RunFailed {
        code
        message
      }
      ... on RunCancelled {
        reason
      }
    }
  }
`);

/** The GraphQL endpoint on the page's own origin, over HTTP and over websockets. */
export function endpointUrls(location: Location): { http: string; ws: string } {
  const http = new URL("/graphql", location.href);
  const ws = new URL(http.href);
  ws.protocol = http.protocol === "https:" ? "wss:" : "ws:";
  return { http: http.href, ws: ws.href };
}

export interface Api {
  client: Client;
  dispose(): void;
}

/**
 * A client that sends the token as a bearer header over HTTP and in the websocket's connection_init
 * payload. `onRejected` runs when the server refuses the token on the socket (close code 4403).
 */
export function createApi(token: string, onRejected: () => void): Api {
  const urls = endpointUrls(window.location);
  const authorization = `Bearer ${token}`;
  const ws: WsClient = createWsClient({
    url: urls.ws,
    lazy: true,
    connectionParams: { Authorization: authorization },
    on: {
      closed: (event) => {
        if ((event as CloseEvent).code === 4403) onRejected();
      },
    },
  });
  const client = new Client({
    url: urls.http,
    requestPolicy: "network-only",
    fetchOptions: () => ({ headers: { Authorization: authorization } }),
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const operation = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(operation, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  return { client, dispose: () => void ws.dispose() };
}
