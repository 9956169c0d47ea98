// Apollo Client against a real server: the whole journey of a chat frontend, over HTTP and graphql-ws.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition, relayStylePagination } from "@apollo/client/utilities";
import UploadHttpLink from "apollo-upload-client/UploadHttpLink.mjs";
import { createClient } from "graphql-ws";
import { OperationTypeNode } from "graphql";
import { filter, firstValueFrom, from, lastValueFrom, toArray } from "rxjs";
import WebSocket from "ws";
import {
  assertPausedThenContinued,
  CALCULATOR_ANSWER,
  CALCULATOR_QUESTION,
  CONFIRMATION_REQUEST,
  CONTINUE_RUN,
  CREATE_SESSION,
  DELETE_SESSION,
  EDIT_MESSAGE,
  FORK_SESSION,
  LONG_MESSAGE,
  REGENERATE_RUN,
  RENAME_SESSION,
  RUN,
  RUN_AGENT,
  RUN_ALTERNATIVES,
  SESSION,
  SESSION_ATTACHMENTS,
  SESSION_HISTORY,
  SESSIONS,
  streamedText,
  UPLOAD_ATTACHMENT,
  VIEWER,
} from "../src/operations.js";
import { download, png } from "../src/attachments.js";
import { possibleTypes } from "../src/possible-types.js";
import { backends, newUserId, startServer } from "../src/server.js";
import { persistedQueryWire, recordingFetch, sha256, variesBy } from "../src/wire.js";

function newCache({ withPossibleTypes = true } = {}) {
  return new InMemoryCache({
    possibleTypes: withPossibleTypes ? possibleTypes() : {},
    typePolicies: {
      // Declared once on the interface; possibleTypes hands it down to every event type.
      RunEvent: { keyFields: ["runId", "index"] },
      Query: { fields: { sessions: relayStylePagination(["agentId", "orderBy"]) } },
      Session: { fields: { messages: relayStylePagination(["roles"]) } },
    },
  });
}

function wsClient(server, token, closedCodes = []) {
  return createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
    on: { closed: (event) => closedCodes.push(event.code) },
  });
}

/**
 * Apollo Client with graphql-ws for subscriptions (or, with `ws: null`, multipart subscriptions over HTTP); over
 * HTTP an HttpLink, or with `uploads` apollo-upload-client's UploadHttpLink, which sends an operation whose
 * variables hold a File as a GraphQL multipart request. With `persisted` (PersistedQueryLink's options), a
 * PersistedQueryLink in front of it sends each operation by hash; `fetch` is the HTTP link's.
 */
function apolloClient(
  server,
  token,
  { cache = newCache(), ws = wsClient(server, token), uploads = false, persisted, fetch } = {},
) {
  const options = { uri: server.httpUrl, headers: { Authorization: `Bearer ${token}` }, fetch };
  let http = uploads ? new UploadHttpLink(options) : new HttpLink(options);
  if (persisted) http = new PersistedQueryLink({ sha256, ...persisted }).concat(http);
  if (ws === null) return { client: new ApolloClient({ link: http, cache }), ws };
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === OperationTypeNode.SUBSCRIPTION;
    },
    new GraphQLWsLink(ws),
    http,
  );
  return { client: new ApolloClient({ link, cache }), ws };
}

/** Every event of one subscription (runAgent or continueRun), in order, as Apollo delivers them. */
async function streamEvents(client, query, input) {
  const results = await lastValueFrom(client.subscribe({ query, variables: { input } }).pipe(toArray()));
  for (const result of results) assert.equal(result.error, undefined, `run failed: ${result.error}`);
  return results.map((result) => Object.values(result.data)[0]);
}

const runAgent = (client, input) => streamEvents(client, RUN_AGENT, input);
const continueRun = (client, input) => streamEvents(client, CONTINUE_RUN, input);

// What a run, a regeneration or an edit changes of a Session: its messages (more, or others with other ids and
// cursors), its runs and runCount, maybe its title, and updatedAt.
const CHANGED_SESSION_FIELDS = ["messages", "runs", "runCount", "name", "updatedAt"];

/**
 * Brings the cache in line with a conversation the server changed. A subscription has no refetchQueries option,
 * and which messages there are now only the server knows, so: evict the Session's changed fields and the
 * entities given (a replaced Run or Message, a Run cached while it was PENDING), let gc drop the messages no list
 * reaches any more, and refetch every watched query that read what was evicted.
 */
async function conversationChanged(client, sessionId, evicted) {
  await client.refetchQueries({
    updateCache(cache) {
      const session = cache.identify({ __typename: "Session", id: sessionId });
      for (const fieldName of CHANGED_SESSION_FIELDS) cache.evict({ id: session, fieldName });
      for (const entity of evicted) cache.evict({ id: cache.identify(entity) });
      cache.gc();
    },
  });
}

/** Streams regenerateRun or editMessage; once the run is over, the cache without the Run or Message replaced. */
async function rewriteConversation(client, query, input, replaced) {
  const events = await streamEvents(client, query, input);
  await conversationChanged(client, events[0].sessionId, [replaced]);
  return events;
}

/**
 * A message sent as a chat page sends it, followed while it goes on (to send another meanwhile): `first` is its
 * first event as soon as it comes (RunStarted, or RunQueued when it waits in line with ifBusy: ENQUEUE), `all`
 * every event once the run is over and the cache holds the conversation with its exchange (the Run evicted too:
 * read while it waited, it is PENDING in the cache).
 */
function sendMessage(client, input) {
  let firstEvent;
  const first = new Promise((resolve) => (firstEvent = resolve));
  const results = [];
  const ended = new Promise((resolve, reject) => {
    client.subscribe({ query: RUN_AGENT, variables: { input } }).subscribe({
      next(result) {
        results.push(result);
        if (results.length === 1) firstEvent(result.data?.runAgent);
      },
      error: reject,
      complete: () => resolve(results),
    });
  });
  const all = ended.then(async () => {
    for (const result of results) assert.equal(result.error, undefined, `run failed: ${result.error}`);
    const events = results.map((result) => result.data.runAgent);
    await conversationChanged(client, events[0].sessionId, [{ __typename: "Run", id: events[0].runId }]);
    return events;
  });
  return { first, all };
}

const regenerateRun = (client, input) =>
  rewriteConversation(client, REGENERATE_RUN, input, { __typename: "Run", id: input.runId });
const editMessage = (client, input) =>
  rewriteConversation(client, EDIT_MESSAGE, input, { __typename: "Message", id: input.messageId });

/**
 * forkSession with the fork in every watched session list: where a new session goes in each cached page, its
 * order and totalCount are the server's to say, so the lists are refetched rather than an edge spliced in.
 */
async function forkSession(client, input) {
  const { data } = await client.mutate({
    mutation: FORK_SESSION,
    variables: { input },
    refetchQueries: [SESSIONS],
    awaitRefetchQueries: true,
  });
  return data.forkSession.session;
}

async function createSession(client, agentId, name) {
  const { data } = await client.mutate({ mutation: CREATE_SESSION, variables: { input: { agentId, name } } });
  return data.createSession.session;
}

/** An unnamed assistant session with one run per message: the session and the run ids. */
async function chat(client, ...messages) {
  const session = await createSession(client, "assistant");
  const runIds = [];
  for (const message of messages) {
    const events = await runAgent(client, { agentId: "assistant", sessionId: session.id, message });
    runIds.push(events.at(-1).runId);
  }
  return { session, runIds };
}

const said = (messages) => messages.map((message) => [message.role, message.content]);

/** The cache keys of the Message entities the cache holds. */
const cachedMessageKeys = (cache) =>
  Object.keys(cache.extract())
    .filter((key) => key.startsWith("Message:"))
    .sort();

/** Watches a query as a page would (subscribed, so fetchMore and cache updates reach it); resolves on the first result. */
async function watch(client, options, subscriptions) {
  const observable = client.watchQuery(options);
  subscriptions.push(observable.subscribe(() => {}));
  const first = await firstValueFrom(
    from(observable).pipe(filter((result) => !result.loading && result.data !== undefined)),
  );
  return { observable, first };
}

/** fetchMore, then the watched query's next settled result: the pages merged by the cache. */
async function fetchMore(observable, variables) {
  await observable.fetchMore({ variables });
  return firstValueFrom(from(observable).pipe(filter((result) => !result.loading)));
}

const MAX_PAGES = 20;

for (const backend of await backends()) {
  describe(`Apollo Client (${backend})`, () => {
    let server;
    const disposers = [];
    const watching = [];

    before(async () => {
      server = await startServer({ backend });
    });

    after(async () => {
      for (const subscription of watching.splice(0)) subscription.unsubscribe();
      for (const dispose of disposers.splice(0)) await dispose();
      await server?.stop();
    });

    function clientFor(userId, options, on = server) {
      const built = apolloClient(on, on.token(userId), options);
      disposers.push(async () => {
        built.client.stop();
        await built.ws?.dispose();
      });
      return built.client;
    }

    test("a calculator run streams a tool call and the answer over graphql-ws", async () => {
      const client = clientFor(newUserId("apollo-run"));
      const session = await createSession(client, "calculator", "Sums");
      const events = await runAgent(client, {
        agentId: "calculator",
        sessionId: session.id,
        message: CALCULATOR_QUESTION,
      });

      const kinds = events.map((event) => event.__typename);
      assert.equal(kinds[0], "RunStarted");
      assert.equal(kinds.at(-1), "RunCompleted");
      assert.ok(kinds.indexOf("ToolCallStarted") < kinds.indexOf("ToolCallCompleted"));
      const toolCall = events.find((event) => event.__typename === "ToolCallStarted").toolCall;
      assert.equal(toolCall.name, "multiply");
      assert.deepEqual(Object.values(toolCall.arguments).sort(), [12, 7].sort());
      assert.equal(events.find((event) => event.__typename === "ToolCallCompleted").result, "84");
      assert.equal(streamedText(events), CALCULATOR_ANSWER);
      assert.equal(events.at(-1).content, CALCULATOR_ANSWER);
      assert.ok(events.every((event) => event.sessionId === session.id));
    });

    test("possibleTypes from schema.graphql let the RunEvent interface key and match every event type", async () => {
      const generated = possibleTypes();
      assert.deepEqual(generated.RunEvent, [
        "ReasoningDelta",
        "RunCancelled",
        "RunCompleted",
        "RunContentDelta",
        "RunContinued",
        "RunFailed",
        "RunPaused",
        "RunQueued",
        "RunStarted",
        "ToolCallCompleted",
        "ToolCallStarted",
      ]);

      const cache = newCache();
      const client = clientFor(newUserId("apollo-types"), { cache });
      const events = await runAgent(client, { agentId: "assistant", message: "hello there" });
      const delta = events.find((event) => event.__typename === "RunContentDelta");

      // The keyFields declared on RunEvent apply to RunContentDelta only through possibleTypes...
      const id = cache.identify(delta);
      assert.equal(id, `RunContentDelta:${JSON.stringify({ runId: delta.runId, index: delta.index })}`);
      // ...and a fragment on the interface reads the concrete event back from the cache.
      const fragment = RUN_AGENT.definitions.find(
        (d) => d.kind === "FragmentDefinition" && d.name.value === "OnRunContentDelta",
      );
      assert.ok(fragment);
      const read = cache.readFragment({
        id,
        fragment: {
          kind: "Document",
          definitions: [
            {
              kind: "FragmentDefinition",
              name: { kind: "Name", value: "AnyEvent" },
              typeCondition: { kind: "NamedType", name: { kind: "Name", value: "RunEvent" } },
              selectionSet: {
                kind: "SelectionSet",
                selections: [
                  { kind: "Field", name: { kind: "Name", value: "index" } },
                  { kind: "FragmentSpread", name: { kind: "Name", value: "OnRunContentDelta" } },
                ],
              },
            },
            fragment,
          ],
        },
        fragmentName: "AnyEvent",
      });
      assert.deepEqual(read, { __typename: "RunContentDelta", index: delta.index, delta: delta.delta });

      // Without possibleTypes the same cache cannot tell a RunContentDelta is a RunEvent.
      assert.equal(newCache({ withPossibleTypes: false }).identify(delta), undefined);
    });

    test("a run paused for confirmation goes on once confirmed, its indexes continuous over graphql-ws", async () => {
      const cache = newCache();
      const client = clientFor(newUserId("apollo-confirm"), { cache });
      const session = await createSession(client, "helpdesk", "Restarts");
      const paused = await runAgent(client, {
        agentId: "helpdesk",
        sessionId: session.id,
        message: CONFIRMATION_REQUEST,
      });

      const [requirement] = paused.at(-1).requirements;
      assert.equal(requirement.toolCall.name, "restart_service");
      assert.deepEqual(requirement.inputFields, []);
      assert.deepEqual(requirement.questions, []);

      const runId = paused[0].runId;
      const continued = await continueRun(client, {
        runId,
        answers: [{ requirementId: requirement.id, confirmed: true }],
      });
      assertPausedThenContinued(paused, continued, "CONFIRMATION");
      assert.equal(paused[0].sessionId, session.id);
      const completed = continued.find((event) => event.__typename === "ToolCallCompleted");
      assert.equal(completed.toolCall.id, requirement.toolCall.id);
      assert.equal(completed.result, "The web service was restarted.");
      assert.equal(completed.failed, false);
      assert.match(continued.at(-1).content, /The web service was restarted/);
      // possibleTypes carry RunEvent's keyFields to the new event types, so the cache keys them too.
      assert.equal(cache.identify(paused.at(-1)), `RunPaused:${JSON.stringify({ runId, index: 1 })}`);
      assert.equal(cache.identify(continued[0]), `RunContinued:${JSON.stringify({ runId, index: 2 })}`);
    });

    test("a refused confirmation fails the tool call with the user's note, and the run completes", async () => {
      const client = clientFor(newUserId("apollo-refuse"));
      const paused = await runAgent(client, { agentId: "helpdesk", message: CONFIRMATION_REQUEST });
      const [requirement] = paused.at(-1).requirements;

      const note = "Not during office hours.";
      const continued = await continueRun(client, {
        runId: paused[0].runId,
        answers: [{ requirementId: requirement.id, confirmed: false, note }],
      });
      assertPausedThenContinued(paused, continued, "CONFIRMATION");
      const completed = continued.filter((event) => event.__typename === "ToolCallCompleted");
      assert.equal(completed.length, 1);
      assert.equal(completed[0].toolCall.name, "restart_service");
      assert.equal(completed[0].failed, true);
      assert.equal(completed[0].result, note);
      assert.ok(continued.at(-1).content.includes(note), continued.at(-1).content);
    });

    test("relayStylePagination merges session pages fetched with after cursors", async () => {
      const client = clientFor(newUserId("apollo-pages"));
      const created = [];
      for (let i = 0; i < 5; i += 1) created.push(await createSession(client, "assistant", `Chat ${i}`));

      const { observable, first } = await watch(client, { query: SESSIONS, variables: { first: 2 } }, watching);
      let result = first;
      assert.equal(result.data.sessions.edges.length, 2);
      assert.equal(result.data.sessions.totalCount, 5);
      const pageSizes = [2];
      while (result.data.sessions.pageInfo.hasNextPage && pageSizes.length < MAX_PAGES) {
        result = await fetchMore(observable, { after: result.data.sessions.pageInfo.endCursor });
        pageSizes.push(result.data.sessions.edges.length);
      }
      assert.deepEqual(pageSizes, [2, 4, 5]);

      const merged = result.data.sessions.edges.map((edge) => edge.node.id);
      assert.equal(new Set(merged).size, 5);
      const { data: everything } = await client.query({
        query: SESSIONS,
        variables: { first: 50 },
        fetchPolicy: "no-cache",
      });
      assert.deepEqual(
        merged,
        everything.sessions.edges.map((edge) => edge.node.id),
      );
      assert.deepEqual(new Set(merged), new Set(created.map((session) => session.id)));
    });

    test("relayStylePagination pages history back with last and before", async () => {
      const client = clientFor(newUserId("apollo-history"));
      const session = await createSession(client, "assistant");
      for (const message of ["one", "two", "three"]) {
        await runAgent(client, { agentId: "assistant", sessionId: session.id, message });
      }
      const expected = ["one", "two", "three"].flatMap((message) => [message, `You said: ${message}`]);

      const { observable, first } = await watch(
        client,
        { query: SESSION_HISTORY, variables: { id: session.id, last: 2 } },
        watching,
      );
      let result = first;
      const contents = () => result.data.session.messages.edges.map((edge) => edge.node.content);
      assert.deepEqual(contents(), expected.slice(-2));
      const sizes = [2];
      while (result.data.session.messages.pageInfo.hasPreviousPage && sizes.length < MAX_PAGES) {
        result = await fetchMore(observable, { before: result.data.session.messages.pageInfo.startCursor });
        sizes.push(result.data.session.messages.edges.length);
      }
      assert.deepEqual(sizes, [2, 4, 6]);
      assert.deepEqual(contents(), expected);
      assert.deepEqual(
        result.data.session.messages.edges.map((edge) => edge.node.role),
        ["USER", "ASSISTANT", "USER", "ASSISTANT", "USER", "ASSISTANT"],
      );
    });

    test("rename updates the cached session list; delete removes the session", async () => {
      const client = clientFor(newUserId("apollo-edit"));
      const kept = await createSession(client, "assistant", "Keep me");
      const doomed = await createSession(client, "assistant", "Old name");
      const { observable } = await watch(client, { query: SESSIONS, variables: { first: 10 } }, watching);

      await client.mutate({
        mutation: RENAME_SESSION,
        variables: { input: { sessionId: doomed.id, name: "New name" } },
      });
      // The payload's Session is normalized by id, so the list shows the new name without a refetch.
      const cachedNames = observable.getCurrentResult().data.sessions.edges.map((edge) => edge.node.name);
      assert.deepEqual(new Set(cachedNames), new Set(["Keep me", "New name"]));

      const { data } = await client.mutate({
        mutation: DELETE_SESSION,
        variables: { input: { sessionId: doomed.id } },
        update(cache, { data: payload }) {
          cache.evict({ id: cache.identify({ __typename: "Session", id: payload.deleteSession.deletedSessionId }) });
          cache.gc();
        },
      });
      assert.equal(data.deleteSession.deletedSessionId, doomed.id);
      const remaining = observable.getCurrentResult().data.sessions.edges;
      assert.deepEqual(
        remaining.filter((edge) => edge.node).map((edge) => edge.node.id),
        [kept.id],
      );
      const gone = await client.query({ query: SESSION, variables: { id: doomed.id }, fetchPolicy: "network-only" });
      assert.equal(gone.data.session, null);
      const refetched = await client.query({ query: SESSIONS, variables: { first: 10 }, fetchPolicy: "no-cache" });
      assert.deepEqual(
        refetched.data.sessions.edges.map((edge) => edge.node.id),
        [kept.id],
      );
    });

    test("regenerating the latest answer: the watched history drops the old one, and both are alternatives", async () => {
      const cache = newCache();
      const client = clientFor(newUserId("apollo-regenerate"), { cache });
      const {
        session,
        runIds: [first, second],
      } = await chat(client, "hello", "how are you");
      const { observable } = await watch(
        client,
        { query: SESSION_HISTORY, variables: { id: session.id, last: 20 } },
        watching,
      );
      const messages = () => observable.getCurrentResult().data.session.messages.edges.map((edge) => edge.node);
      const before = messages();
      assert.deepEqual(
        before.map((message) => message.runId),
        [first, first, second, second],
      );

      const events = await regenerateRun(client, { runId: second });
      const regenerated = events[0].runId;
      assert.notEqual(regenerated, second);
      assert.deepEqual([events[0].__typename, events.at(-1).__typename], ["RunStarted", "RunCompleted"]);
      assert.equal(streamedText(events), "You said: how are you");
      assert.equal(events.at(-1).content, "You said: how are you");

      const after = messages();
      assert.deepEqual(said(after), [
        ["USER", "hello"],
        ["ASSISTANT", "You said: hello"],
        ["USER", "how are you"],
        ["ASSISTANT", "You said: how are you"],
      ]);
      assert.deepEqual(
        after.map((message) => message.runId),
        [first, first, regenerated, regenerated],
      );
      assert.deepEqual(after.slice(0, 2), before.slice(0, 2));
      // gc dropped the replaced answer: the cache holds the conversation's messages and no others.
      assert.ok(!after.some((message) => message.id === before[3].id));
      assert.deepEqual(cachedMessageKeys(cache), after.map((message) => cache.identify(message)).sort());

      const { data } = await client.query({ query: RUN_ALTERNATIVES, variables: { id: regenerated } });
      assert.deepEqual(
        data.run.alternatives.map(({ id, content, replaced }) => ({ id, content, replaced })),
        [
          { id: second, content: "You said: how are you", replaced: true },
          { id: regenerated, content: "You said: how are you", replaced: false },
        ],
      );
    });

    test("regenerating an earlier run is refused with NOT_LATEST_RUN and the watched history stays", async () => {
      const client = clientFor(newUserId("apollo-not-latest"));
      const {
        session,
        runIds: [first],
      } = await chat(client, "one", "two");
      const { observable } = await watch(
        client,
        { query: SESSION_HISTORY, variables: { id: session.id, last: 20 } },
        watching,
      );
      const before = observable.getCurrentResult().data;

      const results = await lastValueFrom(
        client.subscribe({ query: REGENERATE_RUN, variables: { input: { runId: first } } }).pipe(toArray()),
      );
      assert.equal(results.length, 1);
      assert.ok(CombinedGraphQLErrors.is(results[0].error));
      assert.deepEqual(
        results[0].error.errors.map((error) => error.extensions.code),
        ["NOT_LATEST_RUN"],
      );
      assert.deepEqual(observable.getCurrentResult().data, before);
      const { data } = await client.query({ query: SESSION, variables: { id: session.id }, fetchPolicy: "no-cache" });
      assert.equal(data.session.runCount, 2);
    });

    test("editing the first message: the watched history, header and session list show the edited conversation", async () => {
      const cache = newCache();
      const client = clientFor(newUserId("apollo-edit-message"), { cache });
      const { session, runIds } = await chat(client, "alpha", "beta", "gamma");
      const history = await watch(
        client,
        { query: SESSION_HISTORY, variables: { id: session.id, last: 20 } },
        watching,
      );
      const header = await watch(client, { query: SESSION, variables: { id: session.id } }, watching);
      const list = await watch(client, { query: SESSIONS, variables: { first: 10 } }, watching);
      const messages = () => history.observable.getCurrentResult().data.session.messages.edges.map((edge) => edge.node);
      const title = () => {
        const { name, runCount } = header.observable.getCurrentResult().data.session;
        return [name, runCount];
      };
      const listed = () =>
        list.observable.getCurrentResult().data.sessions.edges.map((edge) => [edge.node.id, edge.node.runCount]);
      assert.deepEqual(title(), ["alpha", 3]);
      assert.deepEqual(listed(), [[session.id, 3]]);
      const [alpha] = messages();
      assert.equal(alpha.content, "alpha");

      const events = await editMessage(client, { messageId: alpha.id, message: "alpha, edited" });
      const edited = events[0].runId;
      assert.equal(events.at(-1).__typename, "RunCompleted");
      assert.equal(events.at(-1).content, "You said: alpha, edited");

      assert.deepEqual(said(messages()), [
        ["USER", "alpha, edited"],
        ["ASSISTANT", "You said: alpha, edited"],
      ]);
      assert.deepEqual(
        messages().map((message) => message.runId),
        [edited, edited],
      );
      assert.deepEqual(
        cachedMessageKeys(cache),
        messages()
          .map((message) => cache.identify(message))
          .sort(),
      );
      // The three replaced runs left runCount; the unnamed session's title follows its first message.
      assert.deepEqual(title(), ["alpha, edited", 1]);
      assert.deepEqual(listed(), [[session.id, 1]]);

      const { data } = await client.query({ query: RUN_ALTERNATIVES, variables: { id: edited } });
      assert.deepEqual(
        data.run.alternatives.map(({ id, replaced }) => [id, replaced]),
        [
          [runIds[0], true],
          [edited, false],
        ],
      );
    });

    test("editing the first message: the session list's title follows it", async () => {
      const client = clientFor(newUserId("apollo-edit-title"));
      const { session } = await chat(client, "alpha", "beta");
      const { observable } = await watch(client, { query: SESSIONS, variables: { first: 10 } }, watching);
      const names = () => observable.getCurrentResult().data.sessions.edges.map((edge) => edge.node.name);
      assert.deepEqual(names(), ["alpha"]);
      const { data } = await client.query({ query: SESSION_HISTORY, variables: { id: session.id, last: 20 } });
      const [alpha] = data.session.messages.edges.map((edge) => edge.node);

      await editMessage(client, { messageId: alpha.id, message: "alpha, edited" });
      assert.deepEqual(names(), ["alpha, edited"]);
    });

    test("a fork appears in the watched session list, named after its source, with the whole conversation", async () => {
      const client = clientFor(newUserId("apollo-fork"));
      const { session } = await chat(client, "north", "south");
      const { observable } = await watch(client, { query: SESSIONS, variables: { first: 10 } }, watching);
      const listed = () => observable.getCurrentResult().data.sessions;
      assert.deepEqual(
        listed().edges.map((edge) => edge.node.id),
        [session.id],
      );
      const readHistory = async (id) => {
        const { data } = await client.query({
          query: SESSION_HISTORY,
          variables: { id, last: 20 },
          fetchPolicy: "network-only",
        });
        return data.session.messages.edges.map((edge) => edge.node);
      };
      const source = await readHistory(session.id);

      const fork = await forkSession(client, { sessionId: session.id });
      assert.notEqual(fork.id, session.id);
      assert.deepEqual([fork.agentId, fork.name, fork.runCount], ["assistant", "north (copy)", 2]);

      assert.equal(listed().totalCount, 2);
      assert.deepEqual(
        new Map(listed().edges.map((edge) => [edge.node.id, [edge.node.name, edge.node.runCount]])),
        new Map([
          [fork.id, ["north (copy)", 2]],
          [session.id, ["north", 2]],
        ]),
      );
      const copied = await readHistory(fork.id);
      assert.deepEqual(said(copied), [
        ["USER", "north"],
        ["ASSISTANT", "You said: north"],
        ["USER", "south"],
        ["ASSISTANT", "You said: south"],
      ]);
      assert.deepEqual(said(copied), said(source));
      const sourceIds = new Set(source.map((message) => message.id));
      assert.deepEqual(
        copied.filter((message) => sourceIds.has(message.id)),
        [],
      );
    });

    test("an image uploaded with apollo-upload-client reaches the model, the history and its signed link", async () => {
      const client = clientFor(newUserId("apollo-attachment"), { uploads: true });
      const content = png(4, 3);
      // The server takes an Upload only from a multipart request (as JSON it is BAD_USER_INPUT).
      const { data } = await client.mutate({
        mutation: UPLOAD_ATTACHMENT,
        variables: { input: { file: new File([content], "pixel.png", { type: "image/png" }) } },
      });
      const attachment = data.uploadAttachment.attachment;
      const { __typename, id, url, createdAt, ...facts } = attachment;
      assert.deepEqual(facts, {
        name: "pixel.png",
        mimeType: "image/png",
        byteSize: content.length,
        kind: "IMAGE",
        width: 4,
        height: 3,
      });

      const events = await runAgent(client, {
        agentId: "assistant",
        message: "What is this?",
        attachments: [attachment.id],
      });
      assert.deepEqual([events[0].__typename, events.at(-1).__typename], ["RunStarted", "RunCompleted"]);
      const answer = `You said: What is this?\nYou sent pixel.png (image, ${content.length} bytes, 4x3, ${content.length} bytes received).`;
      assert.equal(events.at(-1).content, answer);
      assert.equal(streamedText(events), answer);

      const history = await client.query({
        query: SESSION_ATTACHMENTS,
        variables: { id: events[0].sessionId },
        fetchPolicy: "network-only",
      });
      const messages = history.data.session.messages.nodes;
      assert.deepEqual(
        messages.map((message) => [message.role, message.content]),
        [
          ["USER", "What is this?"],
          ["ASSISTANT", answer],
        ],
      );
      const [listed] = messages[0].attachments;
      assert.deepEqual(
        [listed.id, listed.name, listed.kind, listed.width, listed.height],
        [attachment.id, "pixel.png", "IMAGE", 4, 3],
      );
      assert.deepEqual(messages[1].attachments, []);

      const downloaded = await download(server, listed.url);
      assert.deepEqual([downloaded.status, downloaded.contentType], [200, "image/png"]);
      assert.deepEqual(downloaded.bytes, content);
    });

    test("a rejected token: websocket closed with 4403, HTTP answered UNAUTHENTICATED", async () => {
      const closedCodes = [];
      const ws = wsClient(server, "not-a-valid-token", closedCodes);
      const { client } = apolloClient(server, "not-a-valid-token", { ws });
      disposers.push(async () => {
        client.stop();
        await ws.dispose();
      });

      const results = await lastValueFrom(
        client
          .subscribe({ query: RUN_AGENT, variables: { input: { agentId: "assistant", message: "hi" } } })
          .pipe(toArray()),
      );
      assert.ok(results.at(-1).error, "the subscription ends in an error");
      assert.deepEqual(closedCodes, [4403]);

      await assert.rejects(client.query({ query: SESSIONS, variables: { first: 1 } }), (error) => {
        assert.ok(CombinedGraphQLErrors.is(error));
        assert.equal(error.errors[0].extensions.code, "UNAUTHENTICATED");
        return true;
      });
    });

    // Automatic persisted queries: a PersistedQueryLink (sha256 of node:crypto) in front of the HttpLink, its fetch
    // recorded. Each test sends documents no other test of this file sends, so their hashes are new to the server.
    describe("persisted queries", () => {
      function persistedClient(userId, persisted = {}, options = {}) {
        const wire = recordingFetch();
        return { client: clientFor(userId, { persisted, fetch: wire.fetch, ...options }), exchanges: wire.exchanges };
      }

      const hashOf = (exchange) => exchange?.params.extensions?.persistedQuery?.sha256Hash;

      test("a fresh client sends the hash alone, then the document once; another user's client runs it by hash", async () => {
        const alice = newUserId("apollo-apq");
        const first = persistedClient(alice);
        const { data, error } = await first.client.query({ query: VIEWER });
        assert.equal(error, undefined);
        assert.equal(data.viewer.userId, alice);

        const [miss, registration] = first.exchanges;
        const hash = hashOf(miss);
        assert.deepEqual(persistedQueryWire(first.exchanges), [
          { method: "POST", document: false, sha256Hash: hash, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "POST", document: true, sha256Hash: hash, errors: [] },
        ]);
        assert.equal(miss.answer.errors[0].message, "PersistedQueryNotFound");
        assert.equal(miss.status, 200);
        assert.equal(sha256(registration.params.query), hash);

        const bob = newUserId("apollo-apq-other");
        const second = persistedClient(bob);
        const { data: theirs } = await second.client.query({ query: VIEWER });
        assert.equal(theirs.viewer.userId, bob);
        assert.deepEqual(persistedQueryWire(second.exchanges), [
          { method: "POST", document: false, sha256Hash: hash, errors: [] },
        ]);
      });

      test("with useGETForHashedQueries the hash goes as a GET, private to each viewer; the document once by POST", async () => {
        const [alice, bob] = [newUserId("apollo-apq-get"), newUserId("apollo-apq-get-other")];
        await createSession(clientFor(alice), "assistant", "Alice's chat");
        await createSession(clientFor(bob), "assistant", "Bob's chat");
        const variables = { first: 10 };
        const names = (data) => data.sessions.edges.map((edge) => edge.node.name);

        const first = persistedClient(alice, { useGETForHashedQueries: true });
        assert.deepEqual(names((await first.client.query({ query: SESSIONS, variables })).data), ["Alice's chat"]);
        const hash = hashOf(first.exchanges[0]);
        assert.deepEqual(persistedQueryWire(first.exchanges), [
          { method: "GET", document: false, sha256Hash: hash, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "POST", document: true, sha256Hash: hash, errors: [] },
        ]);

        const second = persistedClient(bob, { useGETForHashedQueries: true });
        assert.deepEqual(names((await second.client.query({ query: SESSIONS, variables })).data), ["Bob's chat"]);
        assert.deepEqual(persistedQueryWire(second.exchanges), [
          { method: "GET", document: false, sha256Hash: hash, errors: [] },
        ]);
        const [byHash] = second.exchanges;
        assert.equal(byHash.url.searchParams.has("query"), false);
        assert.deepEqual(byHash.params.variables, variables);
        // One URL, each viewer's own sessions: a shared cache must not answer Bob with Alice's.
        assert.equal(byHash.url.href, first.exchanges[0].url.href);
        assert.equal(byHash.headers.get("cache-control"), "private");
        assert.ok(variesBy(byHash, "Authorization"), byHash.headers.get("vary"));
      });

      test("a mutation goes by POST and a multipart subscription by hash as well; a second user sends hashes only", async () => {
        const send = async (userId) => {
          const { client, exchanges } = persistedClient(userId, { useGETForHashedQueries: true }, { ws: null });
          const session = await createSession(client, "calculator", "Sums");
          const events = await runAgent(client, {
            agentId: "calculator",
            sessionId: session.id,
            message: CALCULATOR_QUESTION,
          });
          assert.equal(streamedText(events), CALCULATOR_ANSWER);
          assert.equal(events.at(-1).sessionId, session.id);
          return exchanges;
        };

        const first = await send(newUserId("apollo-apq-run"));
        const [mutation, subscription] = [hashOf(first[0]), hashOf(first[2])];
        assert.deepEqual(persistedQueryWire(first), [
          { method: "POST", document: false, sha256Hash: mutation, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "POST", document: true, sha256Hash: mutation, errors: [] },
          { method: "GET", document: false, sha256Hash: subscription, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "POST", document: true, sha256Hash: subscription, errors: [] },
        ]);
        assert.match(first[3].headers.get("content-type"), /^multipart\/mixed/);

        const second = await send(newUserId("apollo-apq-run-other"));
        assert.deepEqual(persistedQueryWire(second), [
          { method: "POST", document: false, sha256Hash: mutation, errors: [] },
          { method: "GET", document: false, sha256Hash: subscription, errors: [] },
        ]);
        assert.match(second[1].headers.get("content-type"), /^multipart\/mixed/);
      });
    });

    // A second message while a run streams, sent with ifBusy: ENQUEUE: on a server whose demo model answers
    // slowly (30 ms a word), so LONG_MESSAGE keeps the session busy a while, and where one message may wait.
    describe("a message in line", () => {
      let queueServer;

      before(async () => {
        queueServer = await startServer({
          backend,
          env: { AGNO_GRAPHQL_OFFLINE_DELAY_MS: "30", AGNO_GRAPHQL_MAX_QUEUED_PER_SESSION: "1" },
        });
      });

      after(async () => {
        for (const subscription of watching.splice(0)) subscription.unsubscribe();
        for (const dispose of disposers.splice(0)) await dispose();
        await queueServer?.stop();
      });

      /** A long run streaming in the session: its RunStarted read, the rest still to come. */
      async function busy(client, sessionId) {
        const running = sendMessage(client, { agentId: "assistant", sessionId, message: LONG_MESSAGE });
        assert.equal((await running.first).__typename, "RunStarted");
        return running;
      }

      const enqueue = (client, sessionId, message) =>
        sendMessage(client, { agentId: "assistant", sessionId, message, ifBusy: "ENQUEUE" });

      test("waits in line with RunQueued, then streams its answer; the watched history has both exchanges", async () => {
        const cache = newCache();
        const client = clientFor(newUserId("apollo-enqueue"), { cache }, queueServer);
        const session = await createSession(client, "assistant");
        const history = await watch(
          client,
          { query: SESSION_HISTORY, variables: { id: session.id, last: 20 } },
          watching,
        );
        const header = await watch(client, { query: SESSION, variables: { id: session.id } }, watching);
        const messages = () =>
          history.observable.getCurrentResult().data.session.messages.edges.map((edge) => edge.node);
        assert.deepEqual(messages(), []);
        const running = await busy(client, session.id);
        const first = (await running.first).runId;

        const queued = enqueue(client, session.id, "and then?");
        const told = await queued.first;
        assert.deepEqual(
          [told.__typename, told.index, told.position, told.sessionId],
          ["RunQueued", -1, 1, session.id],
        );
        assert.notEqual(told.runId, first);
        // possibleTypes carry RunEvent's keyFields to RunQueued, its index -1 apart from RunStarted's 0.
        assert.equal(cache.identify(told), `RunQueued:${JSON.stringify({ runId: told.runId, index: -1 })}`);
        // Stored at once, waiting.
        const run = await watch(client, { query: RUN, variables: { id: told.runId } }, watching);
        assert.deepEqual([run.first.data.run.status, run.first.data.run.input], ["PENDING", "and then?"]);

        const events = await queued.all;
        const answered = await running.all;
        assert.equal(answered.at(-1).__typename, "RunCompleted");
        assert.deepEqual(
          events.slice(0, 2).map((event) => [event.__typename, event.index]),
          [
            ["RunQueued", -1],
            ["RunStarted", 0],
          ],
        );
        assert.equal(events.at(-1).__typename, "RunCompleted");
        assert.equal(events.at(-1).content, "You said: and then?");
        assert.equal(streamedText(events), "You said: and then?");
        assert.deepEqual([...new Set(events.map((event) => event.runId))], [told.runId]);
        assert.deepEqual(
          events.slice(1).map((event) => event.index),
          events.slice(1).map((_, index) => index),
        );

        // The watched queries were refetched once the run was over: the conversation in order, the run's end.
        assert.deepEqual(said(messages()), [
          ["USER", LONG_MESSAGE],
          ["ASSISTANT", `You said: ${LONG_MESSAGE}`],
          ["USER", "and then?"],
          ["ASSISTANT", "You said: and then?"],
        ]);
        assert.deepEqual(
          messages().map((message) => message.runId),
          [first, first, told.runId, told.runId],
        );
        assert.deepEqual(
          cachedMessageKeys(cache),
          messages()
            .map((message) => cache.identify(message))
            .sort(),
        );
        assert.equal(header.observable.getCurrentResult().data.session.runCount, 2);
        const { status, content } = run.observable.getCurrentResult().data.run;
        assert.deepEqual([status, content], ["COMPLETED", "You said: and then?"]);
      });

      test("a message beyond the full line is refused with RATE_LIMITED; the one waiting is answered", async () => {
        const client = clientFor(newUserId("apollo-enqueue-full"), {}, queueServer);
        const session = await createSession(client, "assistant");
        const history = await watch(
          client,
          { query: SESSION_HISTORY, variables: { id: session.id, last: 20 } },
          watching,
        );
        const running = await busy(client, session.id);
        const queued = enqueue(client, session.id, "waiting");
        const told = await queued.first;
        assert.deepEqual([told.__typename, told.position], ["RunQueued", 1]);

        const results = await lastValueFrom(
          client
            .subscribe({
              query: RUN_AGENT,
              variables: {
                input: { agentId: "assistant", sessionId: session.id, message: "one too many", ifBusy: "ENQUEUE" },
              },
            })
            .pipe(toArray()),
        );
        assert.equal(results.length, 1);
        assert.ok(CombinedGraphQLErrors.is(results[0].error));
        assert.deepEqual(
          results[0].error.errors.map((error) => error.extensions.code),
          ["RATE_LIMITED"],
        );

        await running.all;
        assert.equal((await queued.all).at(-1).content, "You said: waiting");
        assert.deepEqual(
          history.observable.getCurrentResult().data.session.messages.edges.map((edge) => edge.node.content),
          [LONG_MESSAGE, `You said: ${LONG_MESSAGE}`, "waiting", "You said: waiting"],
        );
      });
    });
  });
}
