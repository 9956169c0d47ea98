// An urql client as a chat frontend would build it: Graphcache with the schema, relay pagination on the
// session list and the history, subscriptions over graphql-ws, graphql-sse or urql's own fetch (SSE), and
// persisted queries when asked.
import assert from "node:assert/strict";
import { Client, fetchExchange, subscriptionExchange } from "@urql/core";
import { cacheExchange } from "@urql/exchange-graphcache";
import { relayPagination } from "@urql/exchange-graphcache/extras";
import { persistedExchange } from "@urql/exchange-persisted";
import { introspectionFromSchema } from "graphql";
import { createClient as createSseClient } from "graphql-sse";
import { createClient as createWsClient } from "graphql-ws";
import { onEnd, pipe, subscribe } from "wonka";
import WebSocket from "ws";
import { loadSchema, possibleTypes } from "./possible-types.js";
import { sha256 } from "./wire.js";

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
  "ForkSessionPayload",
  "CancelRunPayload",
  "UploadAttachmentPayload",
  "UserInputField",
  "FeedbackQuestion",
  "FeedbackOption",
];

// The events on which a run (sent, regenerated or edited) is over and its answer stored.
const RUN_ENDS = new Set(["RunCompleted", "RunFailed", "RunCancelled", "RunPaused"]);

/**
 * After a regeneration or an edit the server has rewritten the conversation: other messages (with other ids
 * and cursors), other runs and runCount, maybe the title and updatedAt. Splicing relay pages by hand would
 * need cursors only the server knows, so the Session is invalidated and every query reading it (the history,
 * the session list) is fetched again; so is the Run or Message of the input (`typename`, `idField`), which
 * left the conversation.
 */
function conversationRewritten(field, typename, idField) {
  return (result, args, cache) => {
    const event = result[field];
    if (!RUN_ENDS.has(event?.__typename)) return;
    cache.invalidate({ __typename: typename, id: args.input[idField] });
    cache.invalidate({ __typename: "Session", id: event.sessionId });
  };
}

/**
 * A run that ended (a message sent with runAgent, maybe after waiting in line with ifBusy: ENQUEUE, and the one
 * it waited for) added its exchange to the conversation and changed its runs, runCount and updatedAt, and a
 * Run read while it waited is PENDING in the cache: the Session and the Run are invalidated, so the next read
 * of the history, the header or the run fetches them again.
 */
function conversationGrew(result, _args, cache) {
  const event = result.runAgent;
  if (!RUN_ENDS.has(event?.__typename)) return;
  cache.invalidate({ __typename: "Run", id: event.runId });
  cache.invalidate({ __typename: "Session", id: event.sessionId });
}

/**
 * The payload's Run (normalized by id) is CANCELLED; it joined the session's runs (a queued run is not among
 * them before it starts), so the Session is invalidated too.
 */
function runCancelled(result, _args, cache) {
  cache.invalidate({ __typename: "Session", id: result.cancelRun.run.sessionId });
}

/**
 * A fork is a new session somewhere in every cached session list (which page, how it sorts, totalCount are
 * the server's), so each cached list (every argument set inspectFields finds) is invalidated and fetched again.
 */
function sessionListsChanged(result, _args, cache) {
  const agent = { __typename: "Agent", id: result.forkSession.session.agentId };
  for (const [entity, fieldName] of [
    ["Query", "sessions"],
    [agent, "sessions"],
  ]) {
    for (const field of cache.inspectFields(entity)) {
      if (field.fieldName === fieldName) cache.invalidate(entity, fieldName, field.arguments);
    }
  }
}

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
        forkSession: sessionListsChanged,
        cancelRun: runCancelled,
      },
      Subscription: {
        runAgent: conversationGrew,
        regenerateRun: conversationRewritten("regenerateRun", "Run", "runId"),
        editMessage: conversationRewritten("editMessage", "Message", "messageId"),
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

/** urql's subscriptionExchange handing each subscription to a graphql-ws or graphql-sse client. */
function subscriptionsOver(transport) {
  return subscriptionExchange({
    forwardSubscription(request) {
      const input = { ...request, query: request.query || "" };
      return {
        subscribe(sink) {
          const unsubscribe = transport.subscribe(input, sink);
          return { unsubscribe };
        },
      };
    },
  });
}

/**
 * urql with Graphcache; `transport` is a graphql-ws or graphql-sse client for the subscriptions, or null for
 * urql's own fetch subscriptions (server-sent events). With `persisted` (persistedExchange's options), operations
 * go by hash (sha256 of node:crypto); `fetch` is the fetch exchange's.
 */
export function urqlClient(server, token, transport, { persisted, fetch } = {}) {
  return new Client({
    url: server.httpUrl,
    fetch,
    fetchSubscriptions: transport === null,
    fetchOptions: () => ({ headers: { Authorization: `Bearer ${token}` } }),
    exchanges: [
      graphcache(),
      ...(persisted ? [persistedExchange({ generateHash: async (query) => sha256(query), ...persisted })] : []),
      fetchExchange,
      ...(transport ? [subscriptionsOver(transport)] : []),
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
 * A subscription followed while it goes on (to send something else meanwhile): `first` is its first result as
 * soon as it comes (undefined when it ends with none), `all` every result once it ends, as collect gives them.
 */
export function follow(source) {
  let firstResult;
  const first = new Promise((resolve) => (firstResult = resolve));
  const all = new Promise((resolve) => {
    const results = [];
    pipe(
      source,
      onEnd(() => {
        firstResult(undefined);
        resolve(results);
      }),
      subscribe((result) => {
        if (results.length === 0) firstResult(result);
        results.push(result);
      }),
    );
  });
  return { first, all };
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
