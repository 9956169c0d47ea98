// An urql client as a chat frontend would build it: Graphcache with the schema, relay pagination on the
// session list and the history, and subscriptions over graphql-ws or graphql-sse.
import assert from "node:assert/strict";
import { Client, fetchExchange, subscriptionExchange } from "@urql/core";
import { cacheExchange } from "@urql/exchange-graphcache";
import { relayPagination } from "@urql/exchange-graphcache/extras";
import { introspectionFromSchema } from "graphql";
import { createClient as createSseClient } from "graphql-sse";
import { createClient as createWsClient } from "graphql-ws";
import { onEnd, pipe, subscribe } from "wonka";
import WebSocket from "ws";
import { loadSchema, possibleTypes } from "./possible-types.js";

const EMBEDDED_TYPES = [
  "SessionConnection",
  "SessionEdge",
  "MessageConnection",
  "MessageEdge",
  "RunConnection",
  "RunEdge",
  "PageInfo",
  "RunMetrics",
  "ModelInfo",
  "ToolInfo",
  "CreateSessionPayload",
  "RenameSessionPayload",
  "DeleteSessionPayload",
  "UserInputField",
  "FeedbackQuestion",
  "FeedbackOption",
];

export function graphcache() {
  const keys = Object.fromEntries(EMBEDDED_TYPES.map((type) => [type, () => null]));
  for (const eventType of possibleTypes().RunEvent) keys[eventType] = (event) => `${event.runId}:${event.index}`;
  keys.Viewer = (viewer) => viewer.userId;
  return cacheExchange({
    schema: introspectionFromSchema(loadSchema()),
    keys,
    resolvers: {
      Query: { sessions: relayPagination() },
      Session: { messages: relayPagination() },
    },
    updates: {
      Mutation: {
        deleteSession(result, _args, cache) {
          cache.invalidate({ __typename: "Session", id: result.deleteSession.deletedSessionId });
        },
      },
    },
  });
}

export function wsClient(server, token, closedCodes = []) {
  return createWsClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
    on: { closed: (event) => closedCodes.push(event.code) },
  });
}

export function sseClient(server, token) {
  // Distinct connections mode: one POST with Accept: text/event-stream per operation.
  return createSseClient({
    url: server.httpUrl,
    headers: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
}

/** urql with Graphcache; `transport` is a graphql-ws or graphql-sse client for the subscriptions. */
export function urqlClient(server, token, transport) {
  return new Client({
    url: server.httpUrl,
    fetchOptions: () => ({ headers: { Authorization: `Bearer ${token}` } }),
    exchanges: [
      graphcache(),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = transport.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
}

/** Every result of a subscription, until it ends. */
export function collect(source) {
  return new Promise((resolve) => {
    const results = [];
    pipe(
      source,
      onEnd(() => resolve(results)),
      subscribe((result) => results.push(result)),
    );
  });
}

/**
 * The run events of urql results (of `field`: runAgent or continueRun): urql repeats the last result when the
 * stream ends (hasNext: false).
 */
export function urqlEvents(results, field = "runAgent") {
  assert.ok(
    results.every((result) => result.error === undefined),
    `${results.find((result) => result.error)?.error}`,
  );
  const [last, previous] = [results.at(-1), results.at(-2)];
  if (last && previous && last.hasNext === false && last.data[field].index === previous.data[field].index) {
    results = results.slice(0, -1);
  }
  return results.map((result) => result.data[field]);
}
