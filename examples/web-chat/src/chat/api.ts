// The GraphQL side of the page: one urql client (HTTP for queries and mutations, graphql-ws for
// subscriptions), a run follower that survives websocket drops, uploads, and the operations the page uses.
// Codegen types every operation from ../../schema.graphql, so a schema change that breaks one fails
// the build, and lists them in the page's trusted documents, as which they are sent (trusted.ts).
import { Client, fetchExchange, subscriptionExchange } from "@urql/core";
import {
  createClient as createWsClient,
  type Client as WsClient,
  type FormattedExecutionResult,
  type Sink,
} from "graphql-ws";
import { graphql } from "../gql";
import type {
  AttachmentFieldsFragment,
  ContinueRunInput,
  EditMessageInput,
  RegenerateRunInput,
  RunAgentInput,
  RunAgentSubscription as RunAgentSubscriptionResult,
  RunEventFieldsFragment,
} from "../gql/graphql";
import { listed, listedText } from "./trusted";

export const AgentsQuery = listed(graphql(`
  query Agents {
    agents {
      id
      name
      description
    }
  }
`));

export const SessionsQuery = listed(graphql(`
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
`));

// What a message shows of a file it carries. `url` is a signed link that expires: read it with the history
// each time, never kept for long.
export const AttachmentFields = graphql(`
  fragment AttachmentFields on Attachment {
    id
    name
    mimeType
    byteSize
    kind
    url
    width
    height
  }
`);

export const SessionMessagesQuery = listed(graphql(`
  query SessionMessages($id: ID!, $last: Int!, $before: String) {
    session(id: $id) {
      id
      name
      agentId
      activeRun {
        id
        input
        status
        requirements {
          ...RunRequirementFields
        }
      }
      messages(last: $last, before: $before) {
        nodes {
          id
          runId
          role
          content
          toolName
          toolCalls {
            id
            name
            arguments
          }
          attachments {
            ...AttachmentFields
          }
        }
        pageInfo {
          hasPreviousPage
          startCursor
        }
      }
    }
  }
`));

// One file a request: the fetch exchange sends a File variable as a GraphQL multipart request.
export const UploadAttachmentMutation = listed(graphql(`
  mutation UploadAttachment($input: UploadAttachmentInput!) {
    uploadAttachment(input: $input) {
      attachment {
        ...AttachmentFields
      }
    }
  }
`));

// A fresh link for an attachment whose link expired while the page was open.
export const AttachmentUrlQuery = listed(graphql(`
  query AttachmentUrl($id: ID!) {
    attachment(id: $id) {
      id
      url
    }
  }
`));

export const RenameSessionMutation = listed(graphql(`
  mutation RenameSession($input: RenameSessionInput!) {
    renameSession(input: $input) {
      session {
        id
        name
      }
    }
  }
`));

export const ForkSessionMutation = listed(graphql(`
  mutation ForkSession($input: ForkSessionInput!) {
    forkSession(input: $input) {
      session {
        id
        name
        agentId
        updatedAt
        runCount
      }
    }
  }
`));

// Every answer to the user message of a run, oldest first, the run itself included.
export const RunAlternativesQuery = listed(graphql(`
  query RunAlternatives($id: ID!) {
    run(id: $id) {
      id
      alternatives {
        id
        content
        replaced
        status
      }
    }
  }
`));

export const DeleteSessionMutation = listed(graphql(`
  mutation DeleteSession($input: DeleteSessionInput!) {
    deleteSession(input: $input) {
      deletedSessionId
    }
  }
`));

// What the page needs to ask a person for each thing a paused run waits for (see requirements.ts).
export const RunRequirementFields = graphql(`
  fragment RunRequirementFields on RunRequirement {
    id
    kind
    toolCall {
      id
      name
      arguments
    }
    inputFields {
      name
      type
      description
      value
    }
    questions {
      header
      question
      options {
        label
        description
      }
      multiSelect
    }
  }
`);

export const RunEventFields = graphql(`
  fragment RunEventFields on RunEvent {
    __typename
    runId
    sessionId
    index
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
      content
    }
    ... on RunPaused {
      requirements {
        ...RunRequirementFields
      }
    }
    ... on RunQueued {
      position
    }
  }
`);

// The subscriptions that start or go on with a run name their field `event`, so a run reads the same whether it was started, resumed
// or continued after a pause.
export const RunAgentSubscription = listed(graphql(`
  subscription RunAgent($input: RunAgentInput!) {
    event: runAgent(input: $input) {
      ...RunEventFields
    }
  }
`));

export const RunEventsSubscription = listed(graphql(`
  subscription RunEvents($runId: ID!, $afterIndex: Int) {
    event: runEvents(runId: $runId, afterIndex: $afterIndex) {
      ...RunEventFields
    }
  }
`));

export const ContinueRunSubscription = listed(graphql(`
  subscription ContinueRun($input: ContinueRunInput!) {
    event: continueRun(input: $input) {
      ...RunEventFields
    }
  }
`));

export const RegenerateRunSubscription = listed(graphql(`
  subscription RegenerateRun($input: RegenerateRunInput!) {
    event: regenerateRun(input: $input) {
      ...RunEventFields
    }
  }
`));

export const EditMessageSubscription = listed(graphql(`
  subscription EditMessage($input: EditMessageInput!) {
    event: editMessage(input: $input) {
      ...RunEventFields
    }
  }
`));

export const CancelRunMutation = listed(graphql(`
  mutation CancelRun($input: CancelRunInput!) {
    cancelRun(input: $input) {
      run {
        id
        status
        content
      }
    }
  }
`));

export const SessionEventsSubscription = listed(graphql(`
  subscription SessionEvents {
    sessionEvents {
      kind
      sessionId
      session {
        id
        name
        agentId
        updatedAt
        runCount
      }
    }
  }
`));

/** The GraphQL endpoint on the page's own origin, over HTTP and over websockets. */
export function endpointUrls(location: Location): { http: string; ws: string } {
  const http = new URL("/graphql", location.href);
  const ws = new URL(http.href);
  ws.protocol = http.protocol === "https:" ? "wss:" : "ws:";
  return { http: http.href, ws: ws.href };
}

/**
 * How a run is followed: started with runAgent (while another run goes, ifBusy ENQUEUE waits in line behind
 * it, RunQueued first, and INTERRUPT stops it), joined while it goes (after a reload), continued with
 * the answers to what it paused for, or started in place of the latest answer (regenerateRun) or of a user
 * message and everything after it (editMessage). `pausedIndex` is the index of the RunPaused the answers
 * answer, when the page saw it.
 */
export type RunStart =
  | { input: RunAgentInput }
  | { runId: string }
  | { answers: ContinueRunInput; pausedIndex?: number }
  | { regenerate: RegenerateRunInput }
  | { edit: EditMessageInput };
export type RunEvent = RunEventFieldsFragment;
export type Attachment = AttachmentFieldsFragment;
/** The stored file, or why the server refused it (BAD_USER_INPUT says what is wrong with the file). */
export type UploadResult = { attachment: Attachment } | { code: string | undefined; message: string };
// RunPaused ends a stream too: continueRun streams the rest.
const LAST_EVENTS = new Set<RunEvent["__typename"]>(["RunCompleted", "RunFailed", "RunCancelled", "RunPaused"]);

export interface RunSink {
  event(event: RunEvent): void;
  /**
   * The run could not be started, followed or continued (SESSION_BUSY, RATE_LIMITED, NOT_FOUND, a lost
   * socket; NOT_LATEST_RUN for a regeneration; BAD_USER_INPUT for an edit, or for an answer with the id of
   * the requirement it answered).
   */
  error(code: string | undefined, message: string, requirementId?: string): void;
}

export interface Api {
  client: Client;
  /** Follows a run to its terminal event, across websocket reconnects. Returns a function to stop following. */
  followRun(start: RunStart, sink: RunSink): () => void;
  /** Uploads one file; `done` gets the attachment or the refusal. Returns a function that abandons the upload. */
  upload(file: File, done: (result: UploadResult) => void): () => void;
  dispose(): void;
}

export interface ApiEvents {
  /** The server refused the token on the socket (close code 4403). */
  rejected(): void;
  /** The websocket came back after a drop: session events sent meanwhile were missed. */
  reconnected(): void;
}

/** The subscription that starts the run, or continues it after a pause; a run joined while it goes has none. */
function openingOf(start: RunStart): { query: string; variables: Record<string, unknown> } | null {
  if ("input" in start) return { query: listedText(RunAgentSubscription), variables: { input: start.input } };
  if ("answers" in start) return { query: listedText(ContinueRunSubscription), variables: { input: start.answers } };
  if ("regenerate" in start) {
    return { query: listedText(RegenerateRunSubscription), variables: { input: start.regenerate } };
  }
  if ("edit" in start) return { query: listedText(EditMessageSubscription), variables: { input: start.edit } };
  return null;
}

interface FirstError {
  code: string | undefined;
  message: string;
  requirementId?: string;
}

function firstError(errors: unknown): FirstError {
  const first = (Array.isArray(errors) ? errors[0] : errors) as
    | { message?: string; extensions?: { code?: unknown; requirementId?: unknown }; reason?: string; code?: number }
    | undefined;
  const code = first?.extensions?.code;
  const requirementId = first?.extensions?.requirementId;
  const message = first?.message || first?.reason || `the connection closed (${first?.code ?? "no code"})`;
  return {
    code: typeof code === "string" ? code : undefined,
    message,
    ...(typeof requirementId === "string" ? { requirementId } : {}),
  };
}

/**
 * A client that sends the token as a bearer header over HTTP and in the websocket's connection_init
 * payload. Queries, mutations and sessionEvents go through urql; runs through graphql-ws directly (see
 * followRun).
 */
export function createApi(token: string, events: ApiEvents): Api {
  const urls = endpointUrls(window.location);
  const authorization = `Bearer ${token}`;
  const ws: WsClient = createWsClient({
    url: urls.ws,
    lazy: true,
    connectionParams: { Authorization: authorization },
    on: {
      closed: (event) => {
        if ((event as CloseEvent).code === 4403) events.rejected();
      },
      connected: (_socket, _payload, wasRetry) => {
        if (wasRetry) events.reconnected();
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

  function followRun(start: RunStart, sink: RunSink): () => void {
    let runId = "runId" in start ? start.runId : "answers" in start ? start.answers.runId : null;
    let afterIndex: number | null = null;
    let ended = false;
    let opening = openingOf(start);
    // graphql-ws sends a subscription's payload again when the socket comes back after a drop. Read
    // through these getters, that second send is runEvents after the last index seen, never a second
    // runAgent, continueRun, regenerateRun or editMessage: the run went on on the server, and the answer
    // continues where it stopped.
    const operation = {
      get query(): string {
        return opening?.query ?? listedText(RunEventsSubscription);
      },
      get variables(): Record<string, unknown> {
        return opening?.variables ?? { runId, afterIndex };
      },
    };
    // The server may have taken the first send of a continueRun whose socket closed before its first
    // event: the run then goes on (or is done), and the resend is refused with RUN_NOT_PAUSED. That
    // refusal is no error for the page: the rest of the run is followed from its pause.
    let openingResent = false;
    const stopWatching = ws.on("closed", () => {
      if (opening) openingResent = true;
    });
    const pausedIndex = "answers" in start ? start.pausedIndex : undefined;
    const refused = ({ code, message, requirementId }: FirstError): void => {
      if (code === "RUN_NOT_PAUSED" && openingResent && pausedIndex !== undefined) {
        opening = null;
        afterIndex = pausedIndex;
        unsubscribe();
        unsubscribe = ws.subscribe<RunAgentSubscriptionResult>(operation, observer);
        return;
      }
      ended = true;
      stopWatching();
      sink.error(code, message, requirementId);
    };
    const observer: Sink<FormattedExecutionResult<RunAgentSubscriptionResult>> = {
      next(result) {
        if (result.errors?.length) {
          refused(firstError(result.errors));
        } else if (result.data) {
          const event = result.data.event;
          opening = null;
          stopWatching();
          runId = event.runId;
          // RunQueued (index -1) is no numbered event: runEvents after a drop waits for the run and streams it from RunStarted.
          if (event.index >= 0) afterIndex = event.index;
          ended = LAST_EVENTS.has(event.__typename);
          sink.event(event);
        }
      },
      error(error) {
        if (ended) return; // a socket lost after the terminal event loses nothing
        refused(firstError(error));
      },
      complete() {},
    };
    let unsubscribe = ws.subscribe<RunAgentSubscriptionResult>(operation, observer);
    return () => {
      stopWatching();
      unsubscribe();
    };
  }

  function upload(file: File, done: (result: UploadResult) => void): () => void {
    // Unsubscribing before the answer aborts the request.
    const { unsubscribe } = client.mutation(UploadAttachmentMutation, { input: { file } }).subscribe((result) => {
      const attachment = result.data?.uploadAttachment.attachment;
      if (attachment) done({ attachment });
      else done(firstError(result.error?.graphQLErrors.length ? result.error.graphQLErrors : result.error));
    });
    return unsubscribe;
  }

  return { client, followRun, upload, dispose: () => void ws.dispose() };
}
