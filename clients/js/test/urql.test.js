// urql with Graphcache against a real server: the whole journey of a chat frontend, over HTTP and graphql-ws.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  assertPausedThenContinued,
  CALCULATOR_ANSWER,
  CALCULATOR_QUESTION,
  CANCEL_RUN,
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
  SESSION_RUNS,
  SESSIONS,
  streamedText,
  UPLOAD_ATTACHMENT,
  USER_FEEDBACK_REQUEST,
  VIEWER,
} from "../src/operations.js";
import { download, MP3 } from "../src/attachments.js";
import { backends, newUserId, startServer } from "../src/server.js";
import { collect, follow, urqlClient, urqlEvents, wsClient } from "../src/urql.js";
import { persistedQueryWire, recordingFetch, sha256, variesBy } from "../src/wire.js";

async function ok(promise) {
  const result = await promise;
  assert.equal(result.error, undefined, `${result.error}`);
  return result.data;
}

for (const backend of await backends()) {
  describe(`urql (${backend})`, () => {
    let server;
    const transports = [];

    before(async () => {
      server = await startServer({ backend });
    });

    after(async () => {
      for (const transport of transports.splice(0)) await transport.dispose();
      await server?.stop();
    });

    function clientFor(userId, on = server) {
      const token = on.token(userId);
      const ws = wsClient(on, token);
      transports.push(ws);
      return urqlClient(on, token, ws);
    }

    async function createSession(client, agentId, name) {
      const data = await ok(client.mutation(CREATE_SESSION, { input: { agentId, name } }).toPromise());
      return data.createSession.session;
    }

    async function runAgent(client, input) {
      return urqlEvents(await collect(client.subscription(RUN_AGENT, { input })));
    }

    async function continueRun(client, input) {
      return urqlEvents(await collect(client.subscription(CONTINUE_RUN, { input })), "continueRun");
    }

    async function regenerateRun(client, input) {
      return urqlEvents(await collect(client.subscription(REGENERATE_RUN, { input })), "regenerateRun");
    }

    async function editMessage(client, input) {
      return urqlEvents(await collect(client.subscription(EDIT_MESSAGE, { input })), "editMessage");
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

    /** The conversation's messages as SessionHistory reads them (from the cache first, as a page would). */
    async function history(client, sessionId, requestPolicy = "cache-first") {
      const data = await ok(client.query(SESSION_HISTORY, { id: sessionId, last: 20 }, { requestPolicy }).toPromise());
      return data.session.messages.edges.map((edge) => edge.node);
    }

    const said = (messages) => messages.map((message) => [message.role, message.content]);

    async function readRun(client, id, requestPolicy = "cache-first") {
      return (await ok(client.query(RUN, { id }, { requestPolicy }).toPromise())).run;
    }

    /** uploadAttachment with a File in the variables, which urql's fetchExchange sends as a multipart request. */
    async function upload(client, file) {
      return (await ok(client.mutation(UPLOAD_ATTACHMENT, { input: { file } }).toPromise())).uploadAttachment
        .attachment;
    }

    test("a calculator run streams a tool call and the answer over graphql-ws", async () => {
      const client = clientFor(newUserId("urql-run"));
      const session = await createSession(client, "calculator");
      const events = await runAgent(client, {
        agentId: "calculator",
        sessionId: session.id,
        message: CALCULATOR_QUESTION,
      });

      const kinds = events.map((event) => event.__typename);
      assert.equal(kinds[0], "RunStarted");
      assert.equal(kinds.at(-1), "RunCompleted");
      assert.ok(kinds.indexOf("ToolCallStarted") < kinds.indexOf("ToolCallCompleted"));
      assert.equal(events.find((event) => event.__typename === "ToolCallStarted").toolCall.name, "multiply");
      assert.equal(events.find((event) => event.__typename === "ToolCallCompleted").result, "84");
      assert.equal(streamedText(events), CALCULATOR_ANSWER);
      assert.equal(events.at(-1).content, CALCULATOR_ANSWER);
      assert.deepEqual([...new Set(events.map((event) => event.sessionId))], [session.id]);
      assert.deepEqual(
        events.map((event) => event.index),
        events.map((_, index) => index),
      );

      const history = await ok(
        client.query(SESSION_HISTORY, { id: session.id, last: 10 }, { requestPolicy: "network-only" }).toPromise(),
      );
      const nodes = history.session.messages.edges.map((edge) => edge.node);
      assert.deepEqual(
        nodes.map((node) => node.role),
        ["USER", "ASSISTANT", "TOOL", "ASSISTANT"],
      );
      assert.equal(nodes[1].toolCalls[0].name, "multiply");
      assert.equal(nodes.at(-1).content, CALCULATOR_ANSWER);
    });

    test("a run paused with questions goes on with the chosen options over graphql-ws", async () => {
      const client = clientFor(newUserId("urql-feedback"));
      const session = await createSession(client, "helpdesk");
      const paused = await runAgent(client, {
        agentId: "helpdesk",
        sessionId: session.id,
        message: USER_FEEDBACK_REQUEST,
      });

      const [requirement] = paused.at(-1).requirements;
      assert.equal(requirement.toolCall.name, "ask_user");
      assert.deepEqual(
        requirement.questions.map(({ question, options, multiSelect }) => ({
          question,
          labels: options.map((option) => option.label),
          multiSelect,
        })),
        [
          { question: "Which plan would you like?", labels: ["Basic", "Team"], multiSelect: false },
          {
            question: "Which extras should come with it?",
            labels: ["Backups", "Audit log", "Single sign-on"],
            multiSelect: true,
          },
        ],
      );

      const continued = await continueRun(client, {
        runId: paused[0].runId,
        answers: [{ requirementId: requirement.id, selections: [["Team"], ["Backups", "Audit log"]] }],
      });
      assertPausedThenContinued(paused, continued, "USER_FEEDBACK");
      assert.equal(paused[0].sessionId, session.id);
      const completed = continued.find((event) => event.__typename === "ToolCallCompleted");
      assert.equal(completed.toolCall.id, requirement.toolCall.id);
      assert.equal(completed.failed, false);
      const prefix = "User feedback received: ";
      assert.ok(completed.result.startsWith(prefix), completed.result);
      assert.deepEqual(JSON.parse(completed.result.slice(prefix.length)), [
        { question: "Which plan would you like?", selected: ["Team"] },
        { question: "Which extras should come with it?", selected: ["Backups", "Audit log"] },
      ]);
      assert.ok(continued.at(-1).content.includes(completed.result), continued.at(-1).content);
    });

    test("relayPagination merges session pages fetched with after cursors", async () => {
      const client = clientFor(newUserId("urql-pages"));
      const created = [];
      for (let i = 0; i < 5; i += 1) created.push(await createSession(client, "assistant", `Chat ${i}`));

      let data = await ok(client.query(SESSIONS, { first: 2 }).toPromise());
      const pageSizes = [data.sessions.edges.length];
      while (data.sessions.pageInfo.hasNextPage && pageSizes.length < 20) {
        data = await ok(client.query(SESSIONS, { first: 2, after: data.sessions.pageInfo.endCursor }).toPromise());
        pageSizes.push(data.sessions.edges.length);
      }
      // Each page's result is the merged list so far, read from the cache by relayPagination.
      assert.deepEqual(pageSizes, [2, 4, 5]);
      assert.equal(data.sessions.totalCount, 5);
      const merged = data.sessions.edges.map((edge) => edge.node.id);

      const everything = await ok(client.query(SESSIONS, { first: 50 }, { requestPolicy: "network-only" }).toPromise());
      assert.deepEqual(
        merged,
        everything.sessions.edges.map((edge) => edge.node.id),
      );
      assert.deepEqual(new Set(merged), new Set(created.map((session) => session.id)));
    });

    test("relayPagination pages history back with last and before", async () => {
      const client = clientFor(newUserId("urql-history"));
      const session = await createSession(client, "assistant");
      for (const message of ["one", "two", "three"]) {
        await runAgent(client, { agentId: "assistant", sessionId: session.id, message });
      }
      const expected = ["one", "two", "three"].flatMap((message) => [message, `You said: ${message}`]);

      let data = await ok(
        client.query(SESSION_HISTORY, { id: session.id, last: 2 }, { requestPolicy: "network-only" }).toPromise(),
      );
      const contents = () => data.session.messages.edges.map((edge) => edge.node.content);
      assert.deepEqual(contents(), expected.slice(-2));
      const sizes = [2];
      while (data.session.messages.pageInfo.hasPreviousPage && sizes.length < 20) {
        const before = data.session.messages.pageInfo.startCursor;
        data = await ok(client.query(SESSION_HISTORY, { id: session.id, last: 2, before }).toPromise());
        sizes.push(data.session.messages.edges.length);
      }
      assert.deepEqual(sizes, [2, 4, 6]);
      assert.deepEqual(contents(), expected);
    });

    test("rename updates the cached session list; delete invalidates the session", async () => {
      const client = clientFor(newUserId("urql-edit"));
      const kept = await createSession(client, "assistant", "Keep me");
      const doomed = await createSession(client, "assistant", "Old name");
      await ok(client.query(SESSIONS, { first: 10 }).toPromise());

      await ok(client.mutation(RENAME_SESSION, { input: { sessionId: doomed.id, name: "New name" } }).toPromise());
      const cached = await ok(client.query(SESSIONS, { first: 10 }, { requestPolicy: "cache-only" }).toPromise());
      assert.deepEqual(new Set(cached.sessions.edges.map((edge) => edge.node.name)), new Set(["Keep me", "New name"]));

      const deleted = await ok(client.mutation(DELETE_SESSION, { input: { sessionId: doomed.id } }).toPromise());
      assert.equal(deleted.deleteSession.deletedSessionId, doomed.id);
      const gone = await ok(client.query(SESSION, { id: doomed.id }, { requestPolicy: "network-only" }).toPromise());
      assert.equal(gone.session, null);
      const listed = await ok(client.query(SESSIONS, { first: 10 }, { requestPolicy: "network-only" }).toPromise());
      assert.deepEqual(
        listed.sessions.edges.map((edge) => edge.node.id),
        [kept.id],
      );
    });

    test("regenerating the latest answer replaces it in the cached history; both answers are alternatives", async () => {
      const client = clientFor(newUserId("urql-regenerate"));
      const {
        session,
        runIds: [first, second],
      } = await chat(client, "hello", "how are you");
      const before = await history(client, session.id);
      assert.deepEqual(
        before.map((message) => message.runId),
        [first, first, second, second],
      );
      const old = await ok(client.query(RUN_ALTERNATIVES, { id: second }).toPromise());
      assert.equal(old.run.replaced, false);

      const events = await regenerateRun(client, { runId: second });
      const regenerated = events[0].runId;
      assert.notEqual(regenerated, second);
      assert.deepEqual([events[0].__typename, events.at(-1).__typename], ["RunStarted", "RunCompleted"]);
      assert.equal(streamedText(events), "You said: how are you");
      assert.deepEqual([...new Set(events.map((event) => event.sessionId))], [session.id]);

      // The updater invalidated the session on RunCompleted, so this cache-first read goes to the server once.
      const after = await history(client, session.id);
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
      assert.deepEqual(await history(client, session.id, "cache-only"), after);

      const replaced = await ok(client.query(RUN_ALTERNATIVES, { id: second }).toPromise());
      assert.equal(replaced.run.replaced, true);
      assert.deepEqual(
        replaced.run.alternatives.map(({ id, content, replaced }) => ({ id, content, replaced })),
        [
          { id: second, content: "You said: how are you", replaced: true },
          { id: regenerated, content: "You said: how are you", replaced: false },
        ],
      );
      const listed = await ok(client.query(SESSIONS, { first: 10 }).toPromise());
      assert.deepEqual(
        listed.sessions.edges.map((edge) => [edge.node.id, edge.node.runCount]),
        [[session.id, 2]],
      );
    });

    test("editing a user message drops its run and every later one from the cached history", async () => {
      const client = clientFor(newUserId("urql-edit-message"));
      const { session } = await chat(client, "alpha", "beta", "gamma");
      const listed = await ok(client.query(SESSIONS, { first: 10 }).toPromise());
      assert.deepEqual(
        listed.sessions.edges.map((edge) => [edge.node.name, edge.node.runCount]),
        [["alpha", 3]],
      );
      const before = await history(client, session.id);
      const beta = before.find((message) => message.content === "beta");

      const events = await editMessage(client, { messageId: beta.id, message: "beta, edited" });
      assert.equal(events.at(-1).__typename, "RunCompleted");
      assert.equal(events.at(-1).content, "You said: beta, edited");

      const after = await history(client, session.id);
      assert.deepEqual(said(after), [
        ["USER", "alpha"],
        ["ASSISTANT", "You said: alpha"],
        ["USER", "beta, edited"],
        ["ASSISTANT", "You said: beta, edited"],
      ]);
      assert.deepEqual(after.slice(0, 2), before.slice(0, 2));
      const kept = new Set(before.map((message) => message.id));
      assert.deepEqual(
        after.slice(2).filter((message) => kept.has(message.id)),
        [],
      );
      assert.deepEqual([...new Set(after.slice(2).map((message) => message.runId))], [events[0].runId]);
      // The title is the first message's, which did not change; the two replaced runs left runCount.
      const relisted = await ok(client.query(SESSIONS, { first: 10 }).toPromise());
      assert.deepEqual(
        relisted.sessions.edges.map((edge) => [edge.node.name, edge.node.runCount]),
        [["alpha", 2]],
      );
    });

    test("editing an answer is refused with BAD_USER_INPUT and the cached history stays", async () => {
      const client = clientFor(newUserId("urql-edit-answer"));
      const { session } = await chat(client, "keep me");
      const before = await history(client, session.id);
      const answer = before.find((message) => message.role === "ASSISTANT");

      const results = await collect(
        client.subscription(EDIT_MESSAGE, { input: { messageId: answer.id, message: "no" } }),
      );
      // urql repeats the last result when the stream ends: every result is the refusal, none an event.
      assert.ok(results.every((result) => result.error && !result.data?.editMessage));
      assert.deepEqual(
        results.at(-1).error.graphQLErrors.map((error) => error.extensions.code),
        ["BAD_USER_INPUT"],
      );
      assert.deepEqual(await history(client, session.id, "cache-only"), before);
      assert.deepEqual(await history(client, session.id, "network-only"), before);
    });

    test("a fork up to an answer appears in the cached session list with that part of the conversation", async () => {
      const client = clientFor(newUserId("urql-fork"));
      const { session } = await chat(client, "one", "two", "three");
      const listed = await ok(client.query(SESSIONS, { first: 10 }).toPromise());
      assert.deepEqual(
        listed.sessions.edges.map((edge) => edge.node.id),
        [session.id],
      );
      const source = await history(client, session.id);
      const secondAnswer = source.filter((message) => message.role === "ASSISTANT")[1];

      const data = await ok(
        client
          .mutation(FORK_SESSION, { input: { sessionId: session.id, upToMessageId: secondAnswer.id, name: "Branch" } })
          .toPromise(),
      );
      const fork = data.forkSession.session;
      assert.notEqual(fork.id, session.id);
      assert.deepEqual([fork.agentId, fork.name, fork.runCount], ["assistant", "Branch", 2]);

      // The updater invalidated the cached lists, so this cache-first read fetches the list with the fork in it.
      const relisted = await ok(client.query(SESSIONS, { first: 10 }).toPromise());
      assert.equal(relisted.sessions.totalCount, 2);
      assert.deepEqual(
        new Map(relisted.sessions.edges.map((edge) => [edge.node.id, [edge.node.name, edge.node.runCount]])),
        new Map([
          [fork.id, ["Branch", 2]],
          [session.id, ["one", 3]],
        ]),
      );
      const copied = await history(client, fork.id);
      assert.deepEqual(said(copied), said(source.slice(0, 4)));
      const sourceIds = new Set(source.map((message) => message.id));
      assert.deepEqual(
        copied.filter((message) => sourceIds.has(message.id)),
        [],
      );
    });

    test("a document and an mp3 uploaded through the fetch exchange reach the model, the history and their links", async () => {
      const client = clientFor(newUserId("urql-attachments"));
      const text = "# Plan\nShip it on Friday.\n";
      const notes = await upload(client, new File([text], "notes.md", { type: "text/markdown" }));
      const song = await upload(client, new File([MP3], "song.mp3", { type: "audio/mpeg" }));
      assert.deepEqual(
        [notes, song].map(({ id, url, createdAt, ...facts }) => facts),
        [
          {
            name: "notes.md",
            mimeType: "text/markdown",
            byteSize: text.length,
            kind: "DOCUMENT",
            width: null,
            height: null,
          },
          { name: "song.mp3", mimeType: "audio/mpeg", byteSize: MP3.length, kind: "AUDIO", width: null, height: null },
        ],
      );

      const session = await createSession(client, "assistant");
      const events = await runAgent(client, {
        agentId: "assistant",
        sessionId: session.id,
        message: "Listen and read",
        attachments: [notes.id, song.id],
      });
      // The demo model describes a message's media by kind (images, audio, video, files): the song first.
      const answer =
        `You said: Listen and read\nYou sent song.mp3 (audio, ${MP3.length} bytes, ${MP3.length} bytes received); ` +
        `notes.md (document, ${text.length} bytes, first line: '# Plan', ${text.length} bytes received).`;
      assert.equal(events.at(-1).__typename, "RunCompleted");
      assert.equal(events.at(-1).content, answer);
      assert.equal(streamedText(events), answer);

      const data = await ok(client.query(SESSION_ATTACHMENTS, { id: session.id }).toPromise());
      const [sent, answered] = data.session.messages.nodes;
      assert.deepEqual(
        [sent.role, sent.content, answered.role, answered.content],
        ["USER", "Listen and read", "ASSISTANT", answer],
      );
      // In the order sent, though Agno keeps one list per kind.
      assert.deepEqual(
        sent.attachments.map(({ id, name, kind }) => [id, name, kind]),
        [
          [notes.id, "notes.md", "DOCUMENT"],
          [song.id, "song.mp3", "AUDIO"],
        ],
      );
      assert.deepEqual(answered.attachments, []);

      const [document, audio] = await Promise.all(
        sent.attachments.map((attachment) => download(server, attachment.url)),
      );
      assert.deepEqual(
        [document.status, document.contentType, document.bytes.toString()],
        [200, "text/markdown; charset=utf-8", text],
      );
      assert.deepEqual([audio.status, audio.contentType], [200, "audio/mpeg"]);
      assert.deepEqual(audio.bytes, MP3);
    });

    test("a file whose bytes are not what its name says is refused with BAD_USER_INPUT", async () => {
      const client = clientFor(newUserId("urql-refused"));
      const refused = await client
        .mutation(UPLOAD_ATTACHMENT, { input: { file: new File(["hello"], "x.png") } })
        .toPromise();
      assert.equal(refused.error.networkError, undefined);
      assert.deepEqual(
        refused.error.graphQLErrors.map((error) => error.extensions.code),
        ["BAD_USER_INPUT"],
      );
      assert.match(refused.error.graphQLErrors[0].message, /^'x\.png' is text/);
      assert.equal(refused.data?.uploadAttachment ?? null, null);
    });

    test("a rejected token: websocket closed with 4403, HTTP answered UNAUTHENTICATED", async () => {
      const closedCodes = [];
      const ws = wsClient(server, "not-a-valid-token", closedCodes);
      transports.push(ws);
      const client = urqlClient(server, "not-a-valid-token", ws);

      const results = await collect(client.subscription(RUN_AGENT, { input: { agentId: "assistant", message: "hi" } }));
      assert.equal(results.length, 1);
      assert.ok(results[0].error?.networkError, "the subscription ends in a network error");
      assert.deepEqual(closedCodes, [4403]);

      const refused = await client.query(SESSIONS, { first: 1 }).toPromise();
      assert.equal(refused.error.graphQLErrors[0].extensions.code, "UNAUTHENTICATED");
    });

    // Automatic persisted queries: persistedExchange (sha256 of node:crypto) in front of the fetch exchange, which
    // also streams the subscriptions (server-sent events), its fetch recorded. Each test sends documents no other
    // test of this file sends, so their hashes are new to the server.
    describe("persisted queries", () => {
      function persistedClient(userId, persisted) {
        const wire = recordingFetch();
        const client = urqlClient(server, server.token(userId), null, { persisted, fetch: wire.fetch });
        return { client, exchanges: wire.exchanges };
      }

      const hashOf = (exchange) => exchange?.params.extensions?.persistedQuery?.sha256Hash;

      test("a fresh client sends the hash alone, then the document once; another user's client runs it by hash", async () => {
        const alice = newUserId("urql-apq");
        const first = persistedClient(alice, { preferGetForPersistedQueries: false });
        assert.equal((await ok(first.client.query(VIEWER, {}).toPromise())).viewer.userId, alice);

        const [miss, registration] = first.exchanges;
        const hash = hashOf(miss);
        assert.deepEqual(persistedQueryWire(first.exchanges), [
          { method: "POST", document: false, sha256Hash: hash, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "POST", document: true, sha256Hash: hash, errors: [] },
        ]);
        assert.equal(miss.answer.errors[0].message, "PersistedQueryNotFound");
        assert.equal(sha256(registration.params.query), hash);

        const bob = newUserId("urql-apq-other");
        const second = persistedClient(bob, { preferGetForPersistedQueries: false });
        assert.equal((await ok(second.client.query(VIEWER, {}).toPromise())).viewer.userId, bob);
        assert.deepEqual(persistedQueryWire(second.exchanges), [
          { method: "POST", document: false, sha256Hash: hash, errors: [] },
        ]);
      });

      test("with preferGetForPersistedQueries the hash goes as a GET, private to each viewer", async () => {
        const [alice, bob] = [newUserId("urql-apq-get"), newUserId("urql-apq-get-other")];
        await createSession(clientFor(alice), "assistant", "Alice's chat");
        await createSession(clientFor(bob), "assistant", "Bob's chat");
        const variables = { first: 10 };
        const names = (data) => data.sessions.edges.map((edge) => edge.node.name);

        const first = persistedClient(alice, { preferGetForPersistedQueries: true });
        assert.deepEqual(names(await ok(first.client.query(SESSIONS, variables).toPromise())), ["Alice's chat"]);
        const hash = hashOf(first.exchanges[0]);
        assert.deepEqual(persistedQueryWire(first.exchanges), [
          { method: "GET", document: false, sha256Hash: hash, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "GET", document: true, sha256Hash: hash, errors: [] },
        ]);

        const second = persistedClient(bob, { preferGetForPersistedQueries: true });
        assert.deepEqual(names(await ok(second.client.query(SESSIONS, variables).toPromise())), ["Bob's chat"]);
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

      test("with enableForSubscriptions a run streams by hash over server-sent events; mutations go by hash too", async () => {
        const send = async (userId) => {
          const persisted = { enableForSubscriptions: true, enableForMutation: true };
          const { client, exchanges } = persistedClient(userId, persisted);
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

        const first = await send(newUserId("urql-apq-run"));
        const [mutation, subscription] = [hashOf(first[0]), hashOf(first[2])];
        assert.deepEqual(persistedQueryWire(first), [
          { method: "POST", document: false, sha256Hash: mutation, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "POST", document: true, sha256Hash: mutation, errors: [] },
          { method: "POST", document: false, sha256Hash: subscription, errors: ["PERSISTED_QUERY_NOT_FOUND"] },
          { method: "POST", document: true, sha256Hash: subscription, errors: [] },
        ]);
        assert.match(first[3].headers.get("content-type"), /^text\/event-stream/);

        const second = await send(newUserId("urql-apq-run-other"));
        assert.deepEqual(persistedQueryWire(second), [
          { method: "POST", document: false, sha256Hash: mutation, errors: [] },
          { method: "POST", document: false, sha256Hash: subscription, errors: [] },
        ]);
        assert.match(second[1].headers.get("content-type"), /^text\/event-stream/);
      });
    });

    // A second message while a run streams, sent with ifBusy: ENQUEUE: on a server whose demo model answers
    // slowly (30 ms a word), so LONG_MESSAGE keeps the session busy a while.
    describe("a message in line", () => {
      let queueServer;

      before(async () => {
        queueServer = await startServer({ backend, env: { AGNO_GRAPHQL_OFFLINE_DELAY_MS: "30" } });
      });

      after(async () => {
        for (const transport of transports.splice(0)) await transport.dispose();
        await queueServer?.stop();
      });

      /** A long run streaming in the session: its first result read, the rest still to come. */
      async function busy(client, sessionId) {
        const running = follow(
          client.subscription(RUN_AGENT, { input: { agentId: "assistant", sessionId, message: LONG_MESSAGE } }),
        );
        assert.equal((await running.first).data.runAgent.__typename, "RunStarted");
        return running;
      }

      function enqueue(client, sessionId, message) {
        return follow(
          client.subscription(RUN_AGENT, { input: { agentId: "assistant", sessionId, message, ifBusy: "ENQUEUE" } }),
        );
      }

      test("waits in line with RunQueued, then streams its answer; the cached history has both exchanges", async () => {
        const client = clientFor(newUserId("urql-enqueue"), queueServer);
        const session = await createSession(client, "assistant");
        assert.deepEqual(await history(client, session.id), []);
        const running = await busy(client, session.id);
        const first = (await running.first).data.runAgent.runId;

        const queued = enqueue(client, session.id, "and then?");
        const told = (await queued.first).data.runAgent;
        assert.deepEqual(
          [told.__typename, told.index, told.position, told.sessionId],
          ["RunQueued", -1, 1, session.id],
        );
        assert.notEqual(told.runId, first);
        // Stored at once, waiting, and not in the conversation until it starts.
        const pending = await readRun(client, told.runId);
        assert.deepEqual([pending.status, pending.input], ["PENDING", "and then?"]);
        const waiting = await history(client, session.id, "network-only");
        assert.ok(!waiting.some((message) => message.runId === told.runId));

        const events = urqlEvents(await queued.all);
        const answered = urqlEvents(await running.all);
        assert.equal(answered.at(-1).__typename, "RunCompleted");
        assert.deepEqual(
          events.map((event) => [event.__typename, event.index]).filter(([, index]) => index <= 0),
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

        // The updater invalidated the session and the run when they ended: these cache-first reads refetch once.
        const after = await history(client, session.id);
        assert.deepEqual(said(after), [
          ["USER", LONG_MESSAGE],
          ["ASSISTANT", `You said: ${LONG_MESSAGE}`],
          ["USER", "and then?"],
          ["ASSISTANT", "You said: and then?"],
        ]);
        assert.deepEqual(
          after.map((message) => message.runId),
          [first, first, told.runId, told.runId],
        );
        assert.deepEqual(await history(client, session.id, "cache-only"), after);
        const run = await readRun(client, told.runId);
        assert.deepEqual([run.status, run.content], ["COMPLETED", "You said: and then?"]);
        assert.deepEqual(await readRun(client, told.runId, "cache-only"), run);
        const header = await ok(client.query(SESSION, { id: session.id }).toPromise());
        assert.equal(header.session.runCount, 2);
      });

      test("cancelRun on a queued run: its subscriber gets RunCancelled and the cached run is CANCELLED", async () => {
        const client = clientFor(newUserId("urql-enqueue-cancel"), queueServer);
        const session = await createSession(client, "assistant");
        const running = await busy(client, session.id);
        const first = (await running.first).data.runAgent.runId;
        const queued = enqueue(client, session.id, "never mind");
        const told = (await queued.first).data.runAgent;
        assert.deepEqual([told.__typename, told.position], ["RunQueued", 1]);
        assert.equal((await readRun(client, told.runId)).status, "PENDING");

        const cancelled = await ok(client.mutation(CANCEL_RUN, { input: { runId: told.runId } }).toPromise());
        assert.deepEqual([cancelled.cancelRun.run.id, cancelled.cancelRun.run.status], [told.runId, "CANCELLED"]);
        const events = urqlEvents(await queued.all);
        assert.deepEqual(
          events.map((event) => event.__typename),
          ["RunQueued", "RunCancelled"],
        );
        assert.deepEqual([...new Set(events.map((event) => event.runId))], [told.runId]);
        assert.equal(urqlEvents(await running.all).at(-1).__typename, "RunCompleted");

        const run = await readRun(client, told.runId);
        assert.deepEqual([run.status, run.input], ["CANCELLED", "never mind"]);
        assert.deepEqual(await readRun(client, told.runId, "cache-only"), run);
        // The cancelled run joined the session's runs, and its message the conversation, with no answer.
        const runs = await ok(client.query(SESSION_RUNS, { id: session.id, first: 10 }).toPromise());
        assert.deepEqual(
          runs.session.runs.nodes.map((node) => [node.id, node.status]),
          [
            [first, "COMPLETED"],
            [told.runId, "CANCELLED"],
          ],
        );
        const after = await history(client, session.id);
        assert.deepEqual(said(after), [
          ["USER", LONG_MESSAGE],
          ["ASSISTANT", `You said: ${LONG_MESSAGE}`],
          ["USER", "never mind"],
        ]);
        assert.equal(after.at(-1).runId, told.runId);
        assert.deepEqual(await history(client, session.id, "cache-only"), after);
      });
    });
  });
}
