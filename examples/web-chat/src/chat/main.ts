// The chat page: plain DOM, no framework. State lives in a few variables below; the location hash
// (#session=ID) says which conversation is open, so reload and back/forward keep it.
import type { CombinedError } from "@urql/core";
import {
  AgentsQuery,
  AttachmentUrlQuery,
  CancelRunMutation,
  createApi,
  DeleteSessionMutation,
  ForkSessionMutation,
  RenameSessionMutation,
  RunAlternativesQuery,
  SessionEventsSubscription,
  SessionMessagesQuery,
  SessionsQuery,
  type Api,
  type Attachment,
  type RunEvent,
  type RunStart,
} from "./api";
import { attachmentsOf, showAttachments } from "./attachments";
import { messageEditor } from "./editor";
import { el, toolCallText } from "./elements";
import { appendMarkdown, flushMarkdown, markdownBlock, markdownOf, setMarkdown } from "./markdown";
import { requirementCard, type Requirement, type RequirementCard } from "./requirements";
import { attachControl, attachmentTray, takeDroppedFiles, takePastedFiles, type UploadFile } from "./uploads";
import type {
  BusyPolicy,
  RequirementAnswer,
  RunAlternativesQuery as AlternativesResult,
  SessionEventsSubscription as SessionEventResult,
  SessionMessagesQuery as MessagesResult,
} from "../gql/graphql";

const TOKEN_KEY = "agno-graphql-chat-token";
const SESSIONS_PAGE = 15;
const MESSAGES_PAGE = 20;
const MAX_PAGE = 100; // the server's default AGNO_GRAPHQL_PAGE_SIZE_MAX

type HistoryMessage = NonNullable<MessagesResult["session"]>["messages"]["nodes"][number];
type SessionEvent = SessionEventResult["sessionEvents"];
type Alternative = NonNullable<AlternativesResult["run"]>["alternatives"][number];
/** What the page says for the errors a user can run into by using it, instead of the server's wording. */
const EXPLAINED: Record<string, string> = {
  SESSION_BUSY:
    "This conversation is still answering an earlier message (perhaps in another tab). " +
    "Wait for it to finish or stop it, then send again.",
  RATE_LIMITED: "Too many answers are being written for you at once. Wait for one to finish, then send again.",
  NOT_LATEST_RUN:
    "This is no longer the conversation's latest answer (perhaps another tab sent a message): reload it to see the latest.",
};
/** The reason the server gives a run it cancelled for a message sent with Stop and send (ifBusy: INTERRUPT). */
const INTERRUPTED = "Interrupted by a new message.";
/** What an older answer's tooltip says while it is shown in place of the latest one. */
const OLDER_ANSWER =
  "An earlier answer to this message, shown for reading only: choosing it back is not supported yet, " +
  "so the conversation goes on from the latest answer.";
interface SessionItem {
  id: string;
  name?: string | null;
  agentId: string;
  runCount: number;
}
interface OpenSession {
  id: string;
  name?: string | null;
  agentId: string;
}
/** The run the open conversation follows; its id is known from its first event on. */
interface FollowedRun {
  id: string | null;
  stop(): void;
}
/**
 * What a run that answers again takes the place of (regenerateRun, editMessage): its items stay, dimmed,
 * until the new run's first event, then go; if the server refuses the run they are kept as they were.
 */
interface Replacement {
  items: HTMLElement[];
  started?(): void;
  kept?(): void;
}
/** The conversation's last answer and the other answers to its message, one of them shown in its bubble. */
interface AnswerChoice {
  answer: HTMLElement;
  latestText: string;
  alternatives: Alternative[];
  latest: number;
  shown: number;
}
/** A message sent while a run goes (Queue, Stop and send), until its run starts; `position` once queued. */
interface Waiting {
  followed: FollowedRun;
  bubble: HTMLElement;
  position: number | null;
}
/** A run that waits for answers, as the session tells it when it opens. */
interface PausedRun {
  paused: { id: string; requirements: Requirement[] };
}
/** A run going on after its pause was answered: the history has it up to the pause. */
interface ContinuedRun {
  continued: string;
}

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

const ui = {
  signIn: byId<HTMLElement>("sign-in"),
  signInForm: byId<HTMLFormElement>("sign-in-form"),
  token: byId<HTMLTextAreaElement>("token"),
  signInError: byId<HTMLElement>("sign-in-error"),
  app: byId<HTMLElement>("app"),
  agent: byId<HTMLSelectElement>("agent"),
  newChat: byId<HTMLButtonElement>("new-chat"),
  sessions: byId<HTMLUListElement>("sessions"),
  loadMore: byId<HTMLButtonElement>("load-more"),
  viewer: byId<HTMLElement>("viewer"),
  signOut: byId<HTMLButtonElement>("sign-out"),
  title: byId<HTMLElement>("title"),
  renameForm: byId<HTMLFormElement>("rename-form"),
  renameInput: byId<HTMLInputElement>("rename-input"),
  rename: byId<HTMLButtonElement>("rename"),
  remove: byId<HTMLButtonElement>("delete"),
  conversation: byId<HTMLElement>("conversation"),
  messages: byId<HTMLElement>("messages"),
  loadOlder: byId<HTMLButtonElement>("load-older"),
  messageList: byId<HTMLOListElement>("message-list"),
  answerTools: byId<HTMLElement>("answer-tools"),
  previousAnswer: byId<HTMLButtonElement>("previous-answer"),
  answerPosition: byId<HTMLElement>("answer-position"),
  nextAnswer: byId<HTMLButtonElement>("next-answer"),
  regenerate: byId<HTMLButtonElement>("regenerate"),
  composer: byId<HTMLFormElement>("composer"),
  message: byId<HTMLTextAreaElement>("message"),
  send: byId<HTMLButtonElement>("send"),
  sendWhileBusy: byId<HTMLElement>("send-while-busy"),
  queue: byId<HTMLButtonElement>("queue"),
  interrupt: byId<HTMLButtonElement>("interrupt"),
  stop: byId<HTMLButtonElement>("stop"),
  error: byId<HTMLElement>("error"),
};

let api: Api | null = null;
let sessions: SessionItem[] = [];
let sessionsCursor: string | null = null;
let current: OpenSession | null = null;
let olderCursor: string | null = null;
let loadingOlder = false;
let run: FollowedRun | null = null;
/** Messages sent while a run goes, not started yet, in the order the page showed them. */
let waiting: Waiting[] = [];
/** The open conversation's run that waits for answers: a new message leaves it (the server cancels it). */
let paused: { leave(): void } | null = null;
/** The last answer's alternatives while the conversation is idle; null while a run goes or there is none. */
let choice: AnswerChoice | null = null;
/** Bumped whenever another conversation is shown, so late answers for the previous one are dropped. */
let view = 0;

const uploadFile: UploadFile = (file, done) => {
  if (!api) {
    done({ code: "UNAUTHENTICATED", message: "Sign in to attach files." });
    return () => {};
  }
  return api.upload(file, (result) => {
    done(result);
    if ("code" in result && result.code === "UNAUTHENTICATED") showError(result.code, result.message); // signs out
  });
};
/** The files the next message carries; Send waits while one uploads. */
const tray = attachmentTray(uploadFile, () => showRunning());

/** A fresh signed link, for an image or a player whose link expired while the page was open. */
async function freshUrl(attachmentId: string): Promise<string | null> {
  const result = await api?.client.query(AttachmentUrlQuery, { id: attachmentId }).toPromise();
  return result?.data?.attachment?.url ?? null;
}

// ---- errors and sign-in ---------------------------------------------------------------------------

function errorCode(error: CombinedError): string | undefined {
  const code = error.graphQLErrors[0]?.extensions?.code;
  return typeof code === "string" ? code : undefined;
}

function showError(code: string | undefined, message: string): void {
  if (code === "UNAUTHENTICATED") signOut(`The server refused the token: ${message}`);
  else ui.error.textContent = (code && EXPLAINED[code]) || message;
}

/** Show an error; a refused token signs out. Returns true when there was one. */
function failed(error: CombinedError | undefined): boolean {
  if (!error) return false;
  showError(errorCode(error), error.graphQLErrors[0]?.message ?? error.message);
  return true;
}

function signOut(reason = ""): void {
  api?.dispose();
  api = null;
  localStorage.removeItem(TOKEN_KEY);
  tray.clear();
  ui.app.hidden = true;
  ui.signIn.hidden = false;
  ui.signInError.textContent = reason;
}

function tokenSubject(token: string): string {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.sub === "string" ? payload.sub : "";
  } catch {
    return "";
  }
}

async function signIn(token: string): Promise<void> {
  api?.dispose();
  api = createApi(token, {
    rejected: () => signOut("The server refused the token on the websocket (4403)."),
    reconnected: () => void reloadSessions(), // session events sent while the socket was down are lost
  });
  const result = await api.client.query(AgentsQuery, {}).toPromise();
  if (failed(result.error) || !result.data) return;
  localStorage.setItem(TOKEN_KEY, token);
  ui.agent.replaceChildren(
    ...result.data.agents.map((agent) => el("option", { value: agent.id, title: agent.description ?? "" }, agent.name)),
  );
  ui.viewer.textContent = tokenSubject(token);
  ui.signIn.hidden = true;
  ui.app.hidden = false;
  ui.app.setAttribute("aria-busy", "true"); // until the sidebar and the conversation have loaded
  ui.signInError.textContent = "";
  watchSessions(api);
  await reloadSessions();
  await showFromLocation();
  ui.app.removeAttribute("aria-busy");
}

// ---- sidebar: sessions with cursor paging ---------------------------------------------------------

async function loadSessions(after: string | null, first = SESSIONS_PAGE): Promise<void> {
  if (!api) return;
  const result = await api.client.query(SessionsQuery, { first, after }).toPromise();
  if (failed(result.error) || !result.data) return;
  const page = result.data.sessions;
  const known = new Set(sessions.map((session) => session.id));
  sessions.push(...page.edges.map((edge) => edge.node).filter((node) => !known.has(node.id)));
  sessionsCursor = page.pageInfo.endCursor ?? null;
  ui.loadMore.hidden = !page.pageInfo.hasNextPage;
  renderSessions();
}

/** The sidebar from the top again (names and order change with runs), as many sessions as were shown. */
async function reloadSessions(): Promise<void> {
  const shown = Math.min(Math.max(sessions.length, SESSIONS_PAGE), MAX_PAGE);
  sessions = [];
  sessionsCursor = null;
  await loadSessions(null, shown);
}

function renderSessions(): void {
  ui.sessions.replaceChildren(
    ...sessions.map((session) => {
      const runs = `${session.agentId} · ${session.runCount} run${session.runCount === 1 ? "" : "s"}`;
      const link = el("a", { href: `#session=${encodeURIComponent(session.id)}` }, session.name || "Untitled");
      link.append(el("small", {}, runs));
      const item = el("li", { "data-session-id": session.id }, link);
      if (session.id === current?.id) item.classList.add("current");
      return item;
    }),
  );
}

/** Other tabs (and this one) change sessions: keep the sidebar and the open conversation's title in step. */
function watchSessions(watching: Api): void {
  watching.client.subscription(SessionEventsSubscription, {}).subscribe((result) => {
    if (api === watching && result.data) applySessionEvent(result.data.sessionEvents);
  });
}

function applySessionEvent(event: SessionEvent): void {
  const index = sessions.findIndex((session) => session.id === event.sessionId);
  const changed = event.session;
  if (event.kind === "DELETED" || !changed) {
    if (index >= 0) sessions.splice(index, 1);
    if (current?.id === event.sessionId) {
      history.replaceState(null, "", location.pathname);
      showConversation(null);
      ui.error.textContent = "That conversation was deleted.";
    }
  } else if (event.kind === "CREATED" || event.kind === "UPDATED" || (event.kind === "RUN_STARTED" && index < 0)) {
    if (index >= 0) sessions.splice(index, 1);
    sessions.unshift(changed); // newest activity first, as the sidebar is ordered
  } else if (index >= 0) {
    sessions[index] = changed;
  }
  if (changed && current?.id === changed.id) {
    current.name = changed.name;
    ui.title.textContent = changed.name || "Untitled";
  }
  renderSessions();
}

// ---- conversation: history with scroll-back -------------------------------------------------------

/** The run an item of the conversation belongs to (a regeneration replaces them all), when known. */
function ofRun(runId: string | null | undefined): Record<string, string> {
  return runId ? { "data-run-id": runId } : {};
}

function toolCallChip(call: { id: string; name: string; arguments?: unknown }, runId?: string | null): HTMLElement {
  const attributes = { class: "tool", "data-role": "tool-call", "data-tool-call-id": call.id, ...ofRun(runId) };
  return el("li", attributes, "calls ", el("b", {}, toolCallText(call.name, call.arguments)));
}

/** A paused call is shown when the run pauses and again when it goes on: one chip for it. */
function showToolCall(call: { id: string; name: string; arguments?: unknown }, runId: string | null): void {
  if (!ui.messageList.querySelector(`[data-tool-call-id="${CSS.escape(call.id)}"]`)) append(toolCallChip(call, runId));
}

function toolResultChip(name: string, result: string, runId?: string | null): HTMLElement {
  return el("li", { class: "tool", "data-role": "tool-result", ...ofRun(runId) }, el("b", {}, name), ` → ${result}`);
}

/** Renders with the conversation kept scrolled to its end when it was there, as a streamed answer grows. */
function keepingEndInView(render: () => void): void {
  const follow = nearBottom();
  render();
  if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** A user's message shows as they typed it (whitespace kept); an answer as Markdown (see markdown.ts). */
function bubble(role: "user" | "assistant", text: string, runId?: string | null, attachments: Attachment[] = []): HTMLElement {
  const content = role === "assistant" ? markdownBlock(text, keepingEndInView) : text;
  const item = el("li", { class: `bubble ${role}`, "data-role": role, "data-state": "done", ...ofRun(runId) }, content);
  showAttachments(item, attachments, freshUrl);
  return item;
}

/** An answer bubble's Markdown block. */
function answerContent(item: HTMLElement): HTMLElement {
  const content = item.querySelector<HTMLElement>(":scope > .markdown");
  if (!content) throw new Error("an answer bubble without its Markdown block");
  return content;
}

/** The text a bubble shows: a message as typed, an answer's Markdown source. */
function bubbleText(item: HTMLElement): string {
  return item.dataset.role === "assistant" ? markdownOf(answerContent(item)) : (item.firstChild?.textContent ?? "");
}

/**
 * A stored message's bubble gets its id and its action: Edit on a user message, Branch on an answer. The
 * buttons have no text of their own (their labels are aria-labels), so a bubble's text is its message's.
 */
function withMessageId(item: HTMLElement, messageId: string): HTMLElement {
  item.setAttribute("data-message-id", messageId);
  item.querySelector(".message-actions")?.remove();
  const [action, label] =
    item.dataset.role === "user" ? ["edit", "Edit message"] : ["branch", "Branch into a new chat"];
  const button = el("button", { type: "button", class: "icon", "data-action": action, "aria-label": label, title: label });
  item.append(el("span", { class: "message-actions" }, button));
  return item;
}

/** Changes a bubble's text, keeping its attachments and action buttons. */
function setBubbleText(item: HTMLElement, text: string): void {
  if (item.dataset.role === "assistant") {
    setMarkdown(answerContent(item), text);
    return;
  }
  const kept = item.querySelectorAll(":scope > .attachments, :scope > .message-actions");
  item.textContent = text;
  item.append(...kept);
}

function renderMessage(message: HistoryMessage): HTMLElement[] {
  switch (message.role) {
    case "USER":
      return [withMessageId(bubble("user", message.content ?? "", message.runId, message.attachments), message.id)];
    case "ASSISTANT": {
      const chips = message.toolCalls.map((call) => toolCallChip(call, message.runId));
      if (!message.content && !message.attachments.length) return chips;
      const answer = bubble("assistant", message.content ?? "", message.runId, message.attachments);
      return [...chips, withMessageId(answer, message.id)];
    }
    case "TOOL":
      return [toolResultChip(message.toolName ?? "tool", message.content ?? "", message.runId)];
    default:
      return [];
  }
}

function showConversation(session: OpenSession | null): void {
  view += 1;
  // The run goes on on the server (onDisconnect CONTINUE); opening its conversation again rejoins it.
  run?.stop();
  run = null;
  // Queued messages wait on the server too: opening the conversation again shows them once they start.
  for (const item of waiting) item.followed.stop();
  waiting = [];
  paused = null;
  choice = null;
  ui.messages.removeAttribute("aria-busy");
  showRunning();
  current = session;
  olderCursor = null;
  ui.loadOlder.hidden = true;
  ui.messageList.replaceChildren();
  ui.error.textContent = "";
  ui.renameForm.hidden = true;
  ui.title.hidden = false;
  ui.title.textContent = session ? session.name || "Untitled" : "New chat";
  ui.rename.disabled = ui.remove.disabled = !session;
  if (session) ui.agent.value = session.agentId;
  renderSessions();
}

type LoadedSession = NonNullable<MessagesResult["session"]>;

/** A page of the open conversation's messages, the newest first time, then older ones `before` a cursor. */
async function loadMessages(before: string | null): Promise<LoadedSession | null> {
  if (!api || !current) return null;
  const shown = view;
  const variables = { id: current.id, last: MESSAGES_PAGE, before };
  const result = await api.client.query(SessionMessagesQuery, variables).toPromise();
  if (shown !== view || failed(result.error)) return null;
  const session = result.data?.session;
  if (!session) {
    ui.error.textContent = "This conversation does not exist (any more).";
    return null;
  }
  olderCursor = session.messages.pageInfo.startCursor ?? null;
  ui.loadOlder.hidden = !session.messages.pageInfo.hasPreviousPage;
  return session;
}

async function openSession(id: string): Promise<void> {
  const known = sessions.find((session) => session.id === id);
  showConversation({ id, name: known?.name, agentId: known?.agentId ?? ui.agent.value });
  // Send waits while the history loads: a message sent now would land in a list about to be replaced.
  const shown = view;
  ui.messages.setAttribute("aria-busy", "true");
  showRunning();
  const session = await loadMessages(null);
  if (shown !== view) return;
  ui.messages.removeAttribute("aria-busy");
  showRunning();
  if (!session || !current) return;
  current.name = session.name;
  current.agentId = session.agentId;
  ui.title.textContent = session.name || "Untitled";
  ui.agent.value = session.agentId;
  ui.messageList.replaceChildren(...session.messages.nodes.flatMap(renderMessage));
  ui.messages.scrollTop = ui.messages.scrollHeight;
  // A run still going (the page was reloaded, or it started in another tab) has only its message in the
  // history (stored as it starts), if that: show its message and follow it from its first event, so its
  // answer is rebuilt and keeps growing. A paused one is there up to its pause: it shows its card again, or
  // follows what came after its answers.
  const active = session.activeRun;
  const inHistory = active ? session.messages.nodes.filter((message) => message.runId === active.id) : [];
  if (active?.status === "PAUSED") {
    follow({ paused: { id: active.id, requirements: active.requirements } });
  } else if (active && inHistory.some((message) => message.role !== "USER")) {
    follow({ continued: active.id });
  } else if (active && inHistory.length) {
    follow({ runId: active.id });
  } else if (active) {
    append(bubble("user", active.input ?? "", active.id));
    follow({ runId: active.id });
  } else {
    void showAnswerTools();
  }
}

async function loadOlderMessages(): Promise<void> {
  if (loadingOlder || !olderCursor || ui.loadOlder.hidden) return;
  loadingOlder = true;
  try {
    const session = await loadMessages(olderCursor);
    if (!session) return;
    // Keep what the reader was looking at in place while older messages appear above it.
    const fromBottom = ui.messages.scrollHeight - ui.messages.scrollTop;
    ui.messageList.prepend(...session.messages.nodes.flatMap(renderMessage));
    ui.messages.scrollTop = ui.messages.scrollHeight - fromBottom;
  } finally {
    loadingOlder = false;
  }
}

async function showFromLocation(): Promise<void> {
  const id = new URLSearchParams(location.hash.slice(1)).get("session");
  if (id) await openSession(id);
  else showConversation(null);
}

// ---- composer: a run, streamed, stopped, resumed ------------------------------------------------

function nearBottom(): boolean {
  return ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80;
}

/**
 * Adds an item to the conversation, above the messages that wait for their answer (a run's items go before
 * the messages sent after it); `last` puts it below them (a message that queues behind them).
 */
function append(item: HTMLElement, last = false): void {
  const follow = nearBottom();
  ui.messageList.insertBefore(item, last ? null : ui.messageList.querySelector(":scope > [data-waiting]"));
  if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** A run goes in the open conversation, or a message sent meanwhile waits for one. */
function busy(): boolean {
  return run !== null || waiting.length > 0;
}

/**
 * Send while idle; while a run streams, Queue and Stop and send instead (once the conversation's id is known),
 * and Stop (once the run's id is known). Editing waits for the runs too, and sending for the uploads.
 */
function showRunning(): void {
  const loading = ui.messages.hasAttribute("aria-busy");
  const uploading = tray.uploading();
  ui.send.hidden = busy();
  ui.send.disabled = loading || uploading;
  ui.sendWhileBusy.hidden = !busy();
  ui.queue.disabled = ui.interrupt.disabled = loading || uploading || !current;
  ui.stop.hidden = run === null;
  ui.stop.disabled = !run?.id;
  ui.messageList.toggleAttribute("data-running", busy());
  if (busy()) hideAnswerTools();
}

/** A queued message's place in line ("Queued" until the server tells it), and its Cancel button. */
function markQueued(item: HTMLElement, position: number | null): void {
  let status = item.querySelector<HTMLElement>(".queue-status");
  if (!status) {
    const label = "Cancel queued message";
    const cancel = el("button", { type: "button", class: "link", "data-action": "cancel-queued", "aria-label": label }, "Cancel");
    status = el("span", { class: "queue-status" }, el("span", { class: "queue-position" }), cancel);
    item.append(status);
  }
  const place = status.querySelector<HTMLElement>(".queue-position");
  if (place) {
    place.textContent = position === null ? "Queued" : `Queued (${position})`;
    place.title = position === null ? "Waits for the current answer" : `Answered after ${position} more answer${position === 1 ? "" : "s"}`;
  }
  const cancel = status.querySelector<HTMLButtonElement>("button");
  if (cancel) cancel.disabled = !item.dataset.runId; // until the server has queued it
}

/**
 * Shows a run in the open conversation as it streams, to its terminal event: one the composer starts
 * (`sent` is its message's bubble), one already going when the conversation opened, one paused, or one
 * that answers again in place of `replacing`. A pause shows a card; its answers continue the run, which
 * streams on into the same answer bubble. Once it ends, its messages' bubbles get their ids.
 */
function follow(
  start: RunStart | PausedRun | ContinuedRun,
  sent: HTMLElement | null = null,
  replacing: Replacement | null = null,
): void {
  if (!api) return;
  const shown = view;
  const agentId = current?.agentId ?? ui.agent.value;
  const followed: FollowedRun = {
    id: "runId" in start ? start.runId : "paused" in start ? start.paused.id : "continued" in start ? start.continued : null,
    stop: () => {},
  };
  let answer: HTMLElement | null = null;
  let card: RequirementCard | null = null;
  /** The index of the RunPaused the card answers; unknown for a card shown again after a reload. */
  let pausedIndex: number | undefined;
  // A continued run's events up to its RunContinued are in the history already.
  let replaying = "continued" in start;
  // A message sent while a run goes waits (queued, or for the run it stops) until its own run starts.
  const ifBusy = "input" in start ? start.input.ifBusy : undefined;
  const line: Waiting | null = sent && ifBusy && ifBusy !== "REJECT" ? { followed, bubble: sent, position: null } : null;
  if (line) waiting.push(line);
  /** The message's run started, or will not: it leaves the line, and the queued ones behind it move up. */
  const leaveLine = (): void => {
    if (!line || !waiting.includes(line)) return;
    waiting = waiting.filter((other) => other !== line);
    line.bubble.removeAttribute("data-waiting");
    line.bubble.querySelector(".queue-status")?.remove();
    for (const other of waiting) {
      if (line.position === null || other.position === null || other.position < line.position) continue;
      other.position = Math.max(other.position - 1, 1);
      markQueued(other.bubble, other.position);
    }
    showRunning();
  };

  const answerBubble = (): HTMLElement => {
    if (!answer) {
      answer = bubble("assistant", "");
      answer.setAttribute("data-state", "streaming");
      answer.setAttribute("data-run-id", followed.id ?? "");
      append(answer);
    }
    return answer;
  };
  const end = (state: "done" | "stopped" | "paused"): void => {
    if (answer) flushMarkdown(answerContent(answer));
    answer?.setAttribute("data-state", state);
    if (run === followed) run = null;
    showRunning();
    if (state !== "paused") void settle(followed.id);
  };
  const pause = (requirements: Requirement[], index?: number): void => {
    pausedIndex = index;
    for (const requirement of requirements) showToolCall(requirement.toolCall, followed.id);
    card?.element.remove();
    card = requirementCard(followed.id ?? "", requirements, answerPause);
    append(card.element);
    paused = {
      leave: () => {
        card?.element.remove();
        if (answer) end("stopped");
      },
    };
    end("paused");
  };
  const answerPause = (answers: RequirementAnswer[]): void => {
    if (!api || shown !== view || !followed.id) return;
    ui.error.textContent = "";
    run = followed;
    showRunning();
    const continuation = { answers: { runId: followed.id, answers }, pausedIndex };
    followed.stop = api.followRun(continuation, { event: show, error: refused });
  };
  /** Shows an event in the conversation it belongs to (dropped once another one is open). */
  const show = (event: RunEvent): void => {
    if (shown !== view) return;
    if (replaying) {
      replaying = event.__typename !== "RunContinued";
      return;
    }
    if (!current) {
      current = { id: event.sessionId, name: null, agentId };
      history.replaceState(null, "", `#session=${encodeURIComponent(event.sessionId)}`);
      ui.rename.disabled = ui.remove.disabled = false;
      renderSessions();
    }
    if (!followed.id) {
      followed.id = event.runId;
      sent?.setAttribute("data-run-id", event.runId);
      for (const item of replacing?.items ?? []) item.remove();
      replacing?.started?.();
      showRunning();
    }
    if (event.__typename === "RunQueued") {
      if (line) line.position = event.position;
      if (sent) markQueued(sent, event.position);
      return;
    }
    if (line && waiting.includes(line)) {
      leaveLine();
      // Cancelled before it started (Cancel, or from elsewhere): the server keeps the message in the
      // conversation, unanswered, and so does the page.
      if (event.__typename === "RunCancelled" && !event.content) {
        sent?.setAttribute("data-state", "cancelled");
        if (sent) sent.title = event.reason ?? "cancelled";
        end("done");
        return;
      }
      run = followed;
      showRunning();
    }
    switch (event.__typename) {
      case "RunContinued":
        card?.element.remove();
        card = paused = null;
        answer?.setAttribute("data-state", "streaming");
        break;
      case "RunPaused":
        pause(event.requirements, event.index);
        break;
      case "RunContentDelta":
        appendMarkdown(answerContent(answerBubble()), event.delta); // rendered at the next frame
        break;
      case "ToolCallStarted":
        showToolCall(event.toolCall, followed.id);
        break;
      case "ToolCallCompleted": {
        const result = event.failed ? `failed: ${event.result}` : (event.result ?? "");
        append(toolResultChip(event.toolCall.name, result, followed.id));
        break;
      }
      case "RunCompleted":
        if (event.content && (!answer || bubbleText(answer) !== event.content)) setBubbleText(answerBubble(), event.content);
        end("done");
        break;
      case "RunFailed":
        append(el("li", { class: "bubble assistant failed", "data-role": "error" }, `${event.code}: ${event.message}`));
        end("done");
        break;
      case "RunCancelled":
        // The partial answer as stored; the bubble's "stopped" mark comes from its data-state.
        if (event.content && bubbleText(answerBubble()) !== event.content) setBubbleText(answerBubble(), event.content);
        answerBubble().title = event.reason ?? "stopped";
        answerBubble().toggleAttribute("data-interrupted", event.reason === INTERRUPTED);
        end("stopped");
        break;
    }
  };
  const refused = (code: string | undefined, message: string, requirementId?: string): void => {
    if (shown !== view) return;
    leaveLine();
    // Answers refused (BAD_USER_INPUT, or the run is no longer paused): the card says why, the run waits.
    if (card) {
      card.refused(requirementId, (code && EXPLAINED[code]) || message);
      end("paused");
      return;
    }
    // Refused before it started (SESSION_BUSY, RATE_LIMITED): a new message goes back to the composer; what
    // a regeneration or an edit would have replaced stays.
    if (replacing && !followed.id) {
      for (const item of replacing.items) item.classList.remove("replacing");
      replacing.kept?.();
    } else if (sent && !followed.id) {
      sent.remove();
      if (!ui.message.value) {
        ui.message.value = bubbleText(sent);
        tray.restore(attachmentsOf(sent));
      }
    }
    // A full line says how many wait, which the page's words for RATE_LIMITED do not.
    if (line && code === "RATE_LIMITED") ui.error.textContent = message;
    else showError(code, message);
    end("done");
  };

  if ("paused" in start) {
    pause(start.paused.requirements);
    return;
  }
  for (const item of replacing?.items ?? []) item.classList.add("replacing");
  if (!line) run = followed;
  showRunning();
  const from = "continued" in start ? { runId: start.continued } : start;
  followed.stop = api.followRun(from, { event: show, error: refused });
}

/**
 * Sends a message: while idle (REJECT: the server refuses it if a run goes elsewhere), or while a run goes,
 * queued behind it (ENQUEUE: shown at once, with its place in line) or in its place (INTERRUPT: the run is
 * stopped, what it said stays).
 */
function send(text: string, ifBusy: BusyPolicy = "REJECT"): void {
  const whileBusy = ifBusy !== "REJECT";
  if (!api || (whileBusy ? ui.queue.disabled : ui.send.disabled) || !text.trim()) return;
  ui.error.textContent = "";
  paused?.leave();
  paused = null;
  // What the tray holds goes with the message; a file the server refused stays out.
  const attachments = tray.ready();
  tray.clear();
  const sent = bubble("user", text, null, attachments);
  if (whileBusy) sent.setAttribute("data-waiting", ifBusy === "ENQUEUE" ? "queued" : "interrupting");
  if (ifBusy === "ENQUEUE") markQueued(sent, null);
  append(sent, ifBusy === "ENQUEUE");
  const input = {
    agentId: current?.agentId ?? ui.agent.value,
    sessionId: current?.id ?? null,
    message: text,
    attachments: attachments.map((attachment) => attachment.id),
  };
  follow({ input: whileBusy ? { ...input, ifBusy } : input }, sent);
}

/** Cancel on a queued message: the server cancels its run, whose RunCancelled marks the message not answered. */
async function cancelQueued(item: HTMLElement, button: HTMLButtonElement): Promise<void> {
  const runId = item.dataset.runId;
  if (!api || !runId || !item.hasAttribute("data-waiting")) return;
  button.disabled = true;
  const result = await api.client.mutation(CancelRunMutation, { input: { runId } }).toPromise();
  if (failed(result.error)) button.disabled = false;
}

/**
 * A run has ended in the open conversation: its user message and answer get their stored ids (so they can
 * be edited and branched from), and the last answer its alternatives.
 */
async function settle(runId: string | null): Promise<void> {
  if (!api || !current) return;
  const shown = view;
  if (runId) {
    const variables = { id: current.id, last: MESSAGES_PAGE, before: null };
    const result = await api.client.query(SessionMessagesQuery, variables).toPromise();
    if (shown !== view || failed(result.error)) return;
    const messages = (result.data?.session?.messages.nodes ?? []).filter((message) => message.runId === runId);
    const ofThisRun = `[data-run-id="${CSS.escape(runId)}"]`;
    const userMessage = messages.find((message) => message.role === "USER");
    const answer = messages
      .filter((message) => message.role === "ASSISTANT" && (message.content || message.attachments.length))
      .pop();
    const userBubble = ui.messageList.querySelector<HTMLElement>(`[data-role="user"]${ofThisRun}`);
    const answerBubbles = ui.messageList.querySelectorAll<HTMLElement>(`[data-role="assistant"]${ofThisRun}`);
    const answerBubble = answerBubbles[answerBubbles.length - 1];
    if (userMessage && userBubble) withMessageId(userBubble, userMessage.id);
    if (answer && answerBubble) {
      withMessageId(answerBubble, answer.id);
      // The media its tools or its model made, which no run event carries.
      showAttachments(answerBubble, answer.attachments, freshUrl);
    }
  }
  await showAnswerTools();
}

// ---- the last answer: its alternatives and Regenerate ---------------------------------------------

function hideAnswerTools(): void {
  if (choice) setBubbleText(choice.answer, choice.latestText);
  choice = null;
  renderAnswerTools();
}

/** Regenerate and the last answer's alternatives, once the conversation is idle and ends with an answer. */
async function showAnswerTools(): Promise<void> {
  hideAnswerTools();
  const last = ui.messageList.lastElementChild as HTMLElement | null;
  const runId = last?.dataset.role === "assistant" ? last.dataset.runId : undefined;
  if (!api || busy() || !last || !runId) return;
  const shown = view;
  const result = await api.client.query(RunAlternativesQuery, { id: runId }).toPromise();
  if (shown !== view || busy() || ui.messageList.lastElementChild !== last || failed(result.error)) return;
  const alternatives = result.data?.run?.alternatives ?? [];
  const latest = alternatives.findIndex((alternative) => alternative.id === runId);
  if (latest < 0) return;
  choice = { answer: last, latestText: bubbleText(last), alternatives, latest, shown: latest };
  renderAnswerTools();
}

/** "n / m" with its arrows (when there is more than one answer), and the shown answer in the bubble. */
function renderAnswerTools(): void {
  ui.answerTools.hidden = !choice;
  if (!choice) return;
  const { answer, alternatives, latest, shown } = choice;
  const older = shown !== latest;
  ui.previousAnswer.hidden = ui.nextAnswer.hidden = ui.answerPosition.hidden = alternatives.length < 2;
  ui.previousAnswer.disabled = shown === 0;
  ui.nextAnswer.disabled = shown === alternatives.length - 1;
  ui.answerPosition.textContent = `${shown + 1} / ${alternatives.length}`;
  ui.answerPosition.title = older ? OLDER_ANSWER : "Answers to this message, oldest first; this is the latest.";
  setBubbleText(answer, older ? (alternatives[shown].content ?? "") : choice.latestText);
  answer.toggleAttribute("data-older", older);
  if (older) answer.title = OLDER_ANSWER;
  else answer.removeAttribute("title");
}

function browseAnswers(step: number): void {
  if (!choice) return;
  choice.shown = Math.min(Math.max(choice.shown + step, 0), choice.alternatives.length - 1);
  renderAnswerTools();
}

/** A new answer in place of the last one (and the tool calls that led to it); its message stays. */
function regenerate(): void {
  if (!api || !choice || busy()) return;
  const runId = choice.answer.dataset.runId ?? "";
  hideAnswerTools();
  ui.error.textContent = "";
  const ofThisRun = `[data-run-id="${CSS.escape(runId)}"]`;
  const sent = ui.messageList.querySelector<HTMLElement>(`[data-role="user"]${ofThisRun}`);
  const items = [...ui.messageList.querySelectorAll<HTMLElement>(`${ofThisRun}:not([data-role="user"])`)];
  follow({ regenerate: { runId } }, sent, { items });
}

// ---- edit a message, branch from an answer --------------------------------------------------------

/** Edit in place of a user message's bubble; Send answers the new text instead of it and all after it. */
function editMessage(item: HTMLElement): void {
  const messageId = item.dataset.messageId;
  if (!api || busy() || !messageId || item.hidden) return;
  const editor = messageEditor({
    text: bubbleText(item),
    attachments: attachmentsOf(item),
    upload: uploadFile,
    send: (message, attachments) => {
      if (!api || busy()) return editor.refused();
      ui.error.textContent = "";
      paused = null; // a paused later run is cancelled by the server, its card goes with the later items
      const later: HTMLElement[] = [];
      for (let next = editor.element.nextElementSibling; next; next = next.nextElementSibling) later.push(next as HTMLElement);
      hideAnswerTools();
      const replacing: Replacement = {
        items: [editor.element, ...later],
        started: () => {
          setBubbleText(item, message);
          showAttachments(item, attachments, freshUrl);
          item.hidden = false;
        },
        kept: () => editor.refused(),
      };
      const ids = attachments.map((attachment) => attachment.id);
      follow({ edit: { messageId, message, attachments: ids } }, item, replacing);
    },
    cancel: () => {
      editor.element.remove();
      item.hidden = false;
    },
  });
  item.hidden = true;
  item.after(editor.element);
}

/** A new session with the conversation up to and including this answer, opened (and named) in the sidebar. */
async function branch(item: HTMLElement): Promise<void> {
  const upToMessageId = item.dataset.messageId;
  if (!api || !current || !upToMessageId) return;
  const input = { sessionId: current.id, upToMessageId };
  const result = await api.client.mutation(ForkSessionMutation, { input }).toPromise();
  if (failed(result.error) || !result.data) return;
  const fork = result.data.forkSession.session;
  sessions = [fork, ...sessions.filter((session) => session.id !== fork.id)];
  renderSessions();
  location.hash = `session=${encodeURIComponent(fork.id)}`;
}

async function stopRun(): Promise<void> {
  if (!api || !run?.id) return;
  ui.stop.disabled = true;
  // The stream then ends with RunCancelled, which marks the bubble.
  const result = await api.client.mutation(CancelRunMutation, { input: { runId: run.id } }).toPromise();
  failed(result.error);
}

// ---- rename and delete -----------------------------------------------------------------------------

async function rename(name: string): Promise<void> {
  if (!api || !current) return;
  const input = { sessionId: current.id, name };
  const result = await api.client.mutation(RenameSessionMutation, { input }).toPromise();
  if (failed(result.error) || !result.data) return;
  const renamed = result.data.renameSession.session;
  current.name = renamed.name;
  ui.title.textContent = renamed.name || "Untitled";
  ui.renameForm.hidden = true;
  ui.title.hidden = false;
  const item = sessions.find((session) => session.id === renamed.id);
  if (item) item.name = renamed.name;
  renderSessions();
}

async function remove(): Promise<void> {
  if (!api || !current) return;
  if (!confirm(`Delete “${current.name || "Untitled"}” and its history?`)) return;
  const input = { sessionId: current.id };
  const result = await api.client.mutation(DeleteSessionMutation, { input }).toPromise();
  if (failed(result.error) || !result.data) return;
  const deleted = result.data.deleteSession.deletedSessionId;
  sessions = sessions.filter((session) => session.id !== deleted);
  history.replaceState(null, "", location.pathname);
  showConversation(null);
}

// ---- wiring ----------------------------------------------------------------------------------------

ui.signInForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void signIn(ui.token.value.trim());
});
ui.signOut.addEventListener("click", () => signOut());
ui.loadMore.addEventListener("click", () => void loadSessions(sessionsCursor));
ui.newChat.addEventListener("click", () => {
  history.replaceState(null, "", location.pathname);
  showConversation(null);
  ui.message.focus();
});
ui.message.before(attachControl(tray));
ui.composer.prepend(tray.element);
takePastedFiles(ui.message, tray);
takeDroppedFiles(ui.conversation, tray);
ui.loadOlder.addEventListener("click", () => void loadOlderMessages());
ui.messages.addEventListener("scroll", () => {
  if (ui.messages.scrollTop < 40) void loadOlderMessages();
});
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.message.value;
  // While a run goes, Enter queues; Stop and send says so.
  const ifBusy: BusyPolicy = !busy() ? "REJECT" : event.submitter === ui.interrupt ? "INTERRUPT" : "ENQUEUE";
  if ((ifBusy === "REJECT" ? ui.send.disabled : ui.queue.disabled) || !text.trim()) return;
  ui.message.value = "";
  send(text, ifBusy);
});
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.rename.addEventListener("click", () => {
  ui.renameInput.value = current?.name ?? "";
  ui.title.hidden = true;
  ui.renameForm.hidden = false;
  ui.renameInput.select();
});
ui.renameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void rename(ui.renameInput.value.trim());
});
ui.remove.addEventListener("click", () => void remove());
ui.stop.addEventListener("click", () => void stopRun());
ui.regenerate.addEventListener("click", () => regenerate());
ui.previousAnswer.addEventListener("click", () => browseAnswers(-1));
ui.nextAnswer.addEventListener("click", () => browseAnswers(1));
ui.messageList.addEventListener("click", (event) => {
  const button = (event.target as Element).closest<HTMLElement>("button[data-action]");
  const item = button?.closest<HTMLElement>("#message-list > li");
  if (!button || !item) return;
  if (button.dataset.action === "edit") editMessage(item);
  else if (button.dataset.action === "cancel-queued") void cancelQueued(item, button as HTMLButtonElement);
  else if (button.dataset.action === "branch") void branch(item);
});
window.addEventListener("hashchange", () => {
  if (api) void showFromLocation();
});

const saved = localStorage.getItem(TOKEN_KEY);
if (saved) void signIn(saved);
else ui.signIn.hidden = false;
