// runAgent streamed over plain HTTP, for clients behind proxies that drop websockets: the graphql-sse client
// (alone and inside urql), urql's own fetch subscriptions, and Apollo Client's HttpLink (multipart).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ApolloClient, CombinedGraphQLErrors, HttpLink, InMemoryCache } from "@apollo/client";
import { Client, fetchExchange } from "@urql/core";
import { print } from "graphql";
import { lastValueFrom, toArray } from "rxjs";
import {
  assertPausedThenContinued,
  CALCULATOR_ANSWER,
  CALCULATOR_QUESTION,
  CONTINUE_RUN,
  EXTERNAL_EXECUTION_REQUEST,
  RUN_AGENT,
  SESSION_HISTORY,
  SESSIONS,
  streamedText,
  USER_INPUT_REQUEST,
} from "../src/operations.js";
import { possibleTypes } from "../src/possible-types.js";
import { backends, newUserId, startServer } from "../src/server.js";
import { collect, sseClient, urqlClient, urqlEvents } from "../src/urql.js";

const calculatorRun = { input: { agentId: "calculator", message: CALCULATOR_QUESTION } };

function assertCalculatorRun(events) {
  const kinds = events.map((event) => event.__typename);
  assert.equal(kinds[0], "RunStarted");
  assert.equal(kinds.at(-1), "RunCompleted");
  assert.ok(kinds.indexOf("ToolCallStarted") < kinds.indexOf("ToolCallCompleted"));
  assert.equal(events.find((event) => event.__typename === "ToolCallStarted").toolCall.name, "multiply");
  assert.equal(events.find((event) => event.__typename === "ToolCallCompleted").result, "84");
  assert.equal(streamedText(events), CALCULATOR_ANSWER);
  assert.equal(events.at(-1).content, CALCULATOR_ANSWER);
  assert.deepEqual(
    events.map((event) => event.index),
    events.map((_, index) => index),
  );
}

async function iterate(client, payload) {
  const results = [];
  for await (const result of client.iterate(payload)) results.push(result);
  return results;
}

for (const backend of await backends()) {
  describe(`streaming over HTTP (${backend})`, () => {
    let server;
    const disposers = [];

    before(async () => {
      server = await startServer({ backend });
    });

    after(async () => {
      for (const dispose of disposers) await dispose();
      await server?.stop();
    });

    function sse(token) {
      const client = sseClient(server, token);
      disposers.push(() => client.dispose());
      return client;
    }

    test("graphql-sse streams a calculator run with its tool call", async () => {
      const client = sse(server.token(newUserId("sse")));
      const results = await iterate(client, { query: print(RUN_AGENT), variables: calculatorRun });
      assert.ok(results.every((result) => result.errors === undefined));
      assertCalculatorRun(results.map((result) => result.data.runAgent));
    });

    test("graphql-sse streams a paused run and, after the client ran the tool, the rest of it", async () => {
      const client = sse(server.token(newUserId("sse-pause")));
      const stream = async (query, input) => {
        const results = await iterate(client, { query: print(query), variables: { input } });
        assert.ok(
          results.every((result) => result.errors === undefined),
          JSON.stringify(results.at(-1).errors),
        );
        return results.map((result) => Object.values(result.data)[0]);
      };
      const paused = await stream(RUN_AGENT, { agentId: "helpdesk", message: EXTERNAL_EXECUTION_REQUEST });
      const [requirement] = paused.at(-1).requirements;
      assert.equal(requirement.toolCall.name, "run_diagnostics");

      const output = "up 3 days, load average: 0.42";
      const continued = await stream(CONTINUE_RUN, {
        runId: paused[0].runId,
        answers: [{ requirementId: requirement.id, result: output }],
      });
      assertPausedThenContinued(paused, continued, "EXTERNAL_EXECUTION");
      const completed = continued.find((event) => event.__typename === "ToolCallCompleted");
      assert.equal(completed.toolCall.id, requirement.toolCall.id);
      assert.equal(completed.result, output);
      assert.equal(completed.failed, false);
      assert.ok(continued.at(-1).content.includes(output), continued.at(-1).content);
    });

    test("graphql-sse with a rejected token gets UNAUTHENTICATED and no run", async () => {
      const client = sse("not-a-valid-token");
      const results = await iterate(client, { query: print(RUN_AGENT), variables: calculatorRun });
      assert.equal(results.length, 1);
      assert.equal(results[0].data, null);
      assert.equal(results[0].errors[0].extensions.code, "UNAUTHENTICATED");
    });

    test("graphql-sse with a broken document gets a coded parse error", async () => {
      const client = sse(server.token(newUserId("sse-bad")));
      const results = await iterate(client, { query: "subscription { runAgent(" });
      assert.equal(results.length, 1);
      assert.equal(results[0].errors[0].extensions.code, "GRAPHQL_PARSE_FAILED");
    });

    test("urql with graphql-sse in its subscriptionExchange runs and then lists the new session", async () => {
      const token = server.token(newUserId("urql-sse"));
      const client = urqlClient(server, token, sse(token));
      const events = urqlEvents(await collect(client.subscription(RUN_AGENT, calculatorRun)));
      assertCalculatorRun(events);

      const listed = await client.query(SESSIONS, { first: 10 }, { requestPolicy: "network-only" }).toPromise();
      assert.deepEqual(
        listed.data.sessions.edges.map((edge) => edge.node.id),
        [events[0].sessionId],
      );
    });

    test("urql's own fetch subscriptions stream the run as server-sent events; its queries still get JSON", async () => {
      const token = server.token(newUserId("urql-fetch"));
      const exchanges = [];
      const client = new Client({
        url: server.httpUrl,
        fetchSubscriptions: true,
        fetchOptions: () => ({ headers: { Authorization: `Bearer ${token}` } }),
        fetch: async (url, init) => {
          const response = await fetch(url, init);
          exchanges.push({ accept: init.headers.accept, contentType: response.headers.get("content-type") });
          return response;
        },
        exchanges: [fetchExchange],
      });
      const events = urqlEvents(await collect(client.subscription(RUN_AGENT, calculatorRun)));
      assertCalculatorRun(events);

      // urql lists text/event-stream in Accept on queries too, after the JSON types: it prefers GraphQL over
      // HTTP's own JSON type, and gets it.
      const history = await client.query(SESSION_HISTORY, { id: events[0].sessionId }).toPromise();
      assert.equal(history.error, undefined);
      assert.equal(history.data.session.messages.edges.at(-1).node.content, CALCULATOR_ANSWER);

      assert.equal(exchanges.length, 2);
      assert.match(exchanges[0].accept, /^text\/event-stream/);
      assert.equal(exchanges[0].contentType, "text/event-stream");
      assert.match(exchanges[1].accept, /^application\/graphql-response\+json.*text\/event-stream/);
      assert.equal(exchanges[1].contentType, "application/graphql-response+json; charset=utf-8");
    });

    test("Apollo Client's HttpLink streams a run as a multipart subscription", async () => {
      const token = server.token(newUserId("apollo-multipart"));
      const client = new ApolloClient({
        link: new HttpLink({ uri: server.httpUrl, headers: { Authorization: `Bearer ${token}` } }),
        cache: new InMemoryCache({ possibleTypes: possibleTypes() }),
      });
      disposers.push(() => client.stop());
      const results = await lastValueFrom(
        client.subscribe({ query: RUN_AGENT, variables: calculatorRun }).pipe(toArray()),
      );
      assert.ok(results.every((result) => result.error === undefined));
      assertCalculatorRun(results.map((result) => result.data.runAgent));
    });

    test("Apollo Client's HttpLink streams a run paused for input and its continuation as multipart", async () => {
      const token = server.token(newUserId("apollo-multipart-pause"));
      const client = new ApolloClient({
        link: new HttpLink({ uri: server.httpUrl, headers: { Authorization: `Bearer ${token}` } }),
        cache: new InMemoryCache({ possibleTypes: possibleTypes() }),
      });
      disposers.push(() => client.stop());
      const stream = async (query, input) => {
        const results = await lastValueFrom(client.subscribe({ query, variables: { input } }).pipe(toArray()));
        assert.ok(
          results.every((result) => result.error === undefined),
          `${results.at(-1).error}`,
        );
        return results.map((result) => Object.values(result.data)[0]);
      };
      const paused = await stream(RUN_AGENT, { agentId: "helpdesk", message: USER_INPUT_REQUEST });
      const [requirement] = paused.at(-1).requirements;
      assert.equal(requirement.toolCall.name, "open_ticket");
      assert.deepEqual(
        requirement.inputFields.map(({ name, type, value }) => ({ name, type, value })),
        [
          { name: "summary", type: "str", value: null },
          { name: "priority", type: "int", value: null },
        ],
      );

      const continued = await stream(CONTINUE_RUN, {
        runId: paused[0].runId,
        answers: [{ requirementId: requirement.id, values: { summary: "The printer is on fire", priority: 1 } }],
      });
      assertPausedThenContinued(paused, continued, "USER_INPUT");
      const started = continued.find((event) => event.__typename === "ToolCallStarted");
      assert.deepEqual(started.toolCall.arguments, { summary: "The printer is on fire", priority: 1 });
      const completed = continued.find((event) => event.__typename === "ToolCallCompleted");
      assert.equal(completed.result, "Ticket opened at priority 1: The printer is on fire");
      assert.equal(completed.failed, false);
    });

    test("Apollo Client's HttpLink with a rejected token gets UNAUTHENTICATED", async () => {
      const client = new ApolloClient({
        link: new HttpLink({ uri: server.httpUrl, headers: { Authorization: "Bearer not-a-valid-token" } }),
        cache: new InMemoryCache({ possibleTypes: possibleTypes() }),
      });
      disposers.push(() => client.stop());
      const results = await lastValueFrom(
        client.subscribe({ query: RUN_AGENT, variables: calculatorRun }).pipe(toArray()),
      );
      const { error } = results.at(-1);
      assert.ok(CombinedGraphQLErrors.is(error), `expected GraphQL errors, got ${error}`);
      assert.equal(error.errors[0].extensions.code, "UNAUTHENTICATED");
    });
  });
}
