// The operation documents of tests/operations/ (the ones a chat frontend sends, validated against
// schema.graphql by the Python suite), so both suites exercise the same documents.
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
export const RUN_AGENT = operation("RunAgent");
export const VIEWER = operation("Viewer");

export const CALCULATOR_QUESTION = "What is 12 * 7?";
export const CALCULATOR_ANSWER = "The answer is 84.";

/** The answer a run streamed, from its RunContentDelta events. */
export function streamedText(events) {
  return events
    .filter((event) => event.__typename === "RunContentDelta")
    .map((event) => event.delta)
    .join("");
}
