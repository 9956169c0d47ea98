// The operation documents of tests/operations/ (the ones a chat frontend sends, validated against
// schema.graphql by the Python suite), so both suites exercise the same documents; and the few this suite
// writes itself until that folder has them, validated by test/operations.test.js.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse, separateOperations } from "graphql";
import { repoRoot } from "./server.js";

const operationsDir = path.join(repoRoot, "tests/operations");
const read = (file) => readFileSync(path.join(operationsDir, file), "utf8");

/** tests/operations/<name>.graphql with the shared fragments (fragments.graphql) it spreads. */
export function operation(name) {
  return separateOperations(parse(`${read(`${name}.graphql`)}\n${read("fragments.graphql")}`))[name];
}

export const CREATE_SESSION = operation("CreateSession");
export const RENAME_SESSION = operation("RenameSession");
export const DELETE_SESSION = operation("DeleteSession");
export const SESSION = operation("Session");
export const SESSIONS = operation("Sessions");
export const SESSION_HISTORY = operation("SessionHistory");
export const SESSION_RUNS = operation("SessionRuns");
export const RUN_AGENT = operation("RunAgent");
export const CONTINUE_RUN = operation("ContinueRun");
export const VIEWER = operation("Viewer");

/**
 * A document the Python suite has no file for yet, written here with the shared fragments it spreads; the
 * documents of this module are validated against schema.graphql by test/operations.test.js.
 */
function clientOperation(source) {
  const document = parse(`${source}\n${read("fragments.graphql")}`);
  return separateOperations(document)[document.definitions[0].name.value];
}

// Conversation editing: a new answer to the latest message, an edited user message, a copy of the conversation.
export const REGENERATE_RUN = clientOperation(`
  subscription RegenerateRun($input: RegenerateRunInput!) {
    regenerateRun(input: $input) {
      ...RunEventFields
    }
  }
`);
export const EDIT_MESSAGE = clientOperation(`
  subscription EditMessage($input: EditMessageInput!) {
    editMessage(input: $input) {
      ...RunEventFields
    }
  }
`);
export const FORK_SESSION = clientOperation(`
  mutation ForkSession($input: ForkSessionInput!) {
    forkSession(input: $input) {
      session {
        id
        agentId
        name
        runCount
        createdAt
        updatedAt
      }
    }
  }
`);
export const RUN_ALTERNATIVES = clientOperation(`
  query RunAlternatives($id: ID!) {
    run(id: $id) {
      id
      input
      content
      replaced
      alternatives {
        id
        content
        replaced
      }
    }
  }
`);

// A message in line (runAgent with ifBusy: ENQUEUE): the run it waits for, then its own; a queued one cancelled.
export const RUN = clientOperation(`
  query Run($id: ID!) {
    run(id: $id) {
      id
      sessionId
      status
      input
      content
    }
  }
`);
export const CANCEL_RUN = clientOperation(`
  mutation CancelRun($input: CancelRunInput!) {
    cancelRun(input: $input) {
      run {
        id
        sessionId
        status
        input
        content
      }
    }
  }
`);

// Attachments: a file uploaded (a GraphQL multipart request), then sent with a message by id; the history lists them.
export const UPLOAD_ATTACHMENT = clientOperation(`
  mutation UploadAttachment($input: UploadAttachmentInput!) {
    uploadAttachment(input: $input) {
      attachment {
        id
        name
        mimeType
        byteSize
        kind
        width
        height
        url
        createdAt
      }
    }
  }
`);
export const SESSION_ATTACHMENTS = clientOperation(`
  query SessionAttachments($id: ID!) {
    session(id: $id) {
      id
      messages(first: 20) {
        nodes {
          id
          role
          content
          attachments {
            id
            name
            mimeType
            byteSize
            kind
            width
            height
            url
          }
        }
      }
    }
  }
`);

/** A message the offline demo model answers word by word for a while: the session is busy meanwhile. */
export const LONG_MESSAGE = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");

export const CALCULATOR_QUESTION = "What is 12 * 7?";
export const CALCULATOR_ANSWER = "The answer is 84.";

// The messages on which the helpdesk agent (offline demo model) calls a tool that pauses the run for a person.
export const CONFIRMATION_REQUEST = "use the restart_service tool";
export const USER_INPUT_REQUEST = "use the open_ticket tool";
export const EXTERNAL_EXECUTION_REQUEST = "use the run_diagnostics tool";
export const USER_FEEDBACK_REQUEST = "use the ask_user tool";

/** The answer a run streamed, from its RunContentDelta events. */
export function streamedText(events) {
  return events
    .filter((event) => event.__typename === "RunContentDelta")
    .map((event) => event.delta)
    .join("");
}

/**
 * What every paused-then-continued run shows, whatever the client: runAgent streamed RunStarted and one RunPaused
 * with one requirement of `kind`; continueRun streamed RunContinued first, RunCompleted last and no other pause;
 * both parts are one run of one session, its indexes going on from the pause with no gap.
 */
export function assertPausedThenContinued(paused, continued, kind) {
  assert.deepEqual(
    paused.map((event) => event.__typename),
    ["RunStarted", "RunPaused"],
  );
  assert.deepEqual(
    paused.at(-1).requirements.map((requirement) => requirement.kind),
    [kind],
  );
  const kinds = continued.map((event) => event.__typename);
  assert.equal(kinds[0], "RunContinued");
  assert.equal(kinds.at(-1), "RunCompleted");
  assert.deepEqual(
    kinds.filter((type) => ["RunContinued", "RunPaused", "RunCompleted", "RunFailed", "RunCancelled"].includes(type)),
    ["RunContinued", "RunCompleted"],
  );
  assert.equal(streamedText(continued), continued.at(-1).content);
  const all = [...paused, ...continued];
  assert.deepEqual(
    [...new Set(all.map((event) => `${event.runId} ${event.sessionId}`))],
    [`${paused[0].runId} ${paused[0].sessionId}`],
  );
  assert.deepEqual(
    all.map((event) => event.index),
    all.map((_, index) => index),
  );
}
