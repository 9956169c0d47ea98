// The chat page: plain DOM, no framework. State lives in a few variables below; the location hash
// (#session=ID) says which conversation is open, so reload and back/forward keep it.
import type { CombinedError } from "@urql/core";
import {
  AgentsQuery,
  CancelRunMutation,
  createApi,
  DeleteSessionMutation,
  RenameSessionMutation,
  SessionEventsSubscription,
  SessionMessagesQuery,
  SessionsQuery,
  type Api,
  type RunEvent,
  type RunStart,
} from "./api";
import { el, toolCallText } from "./elements";
import { requirementCard, type Requirement, type RequirementCard } from "./requirements";
import type {
  RequirementAnswer,
  SessionEventsSubscription as SessionEventResult,
  SessionMessagesQuery as MessagesResult,
} from "../gql/graphql";

const TOKEN_KEY = "agno-graphql-chat-token";
const SESSIONS_PAGE = 15;
const MESSAGES_PAGE = 20;
const MAX_PAGE = 100; // the server's default AGNO_GRAPHQL_PAGE_SIZE_MAX

type HistoryMessage = NonNullable<MessagesResult["session"]>["messages"]["nodes"][number];
type SessionEvent = SessionEventResult["sessionEvents"];
/** What the page says for the errors a user can run into by using it, instead of the server's wording. */
const EXPLAINED: Record<string, string> = {
  SESSION_BUSY:
    "This conversation is still answering an earlier message (perhaps in another tab). " +
    "Wait for it to finish or stop it, then send again.",
  RATE_LIMITED: "Too many answers are being written for you at once. Wait for one to finish, then send again.",
};
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
  messages: byId<HTMLElement>("messages"),
  loadOlder: byId<HTMLButtonElement>("load-older"),
  messageList: byId<HTMLOListElement>("message-list"),
  composer: byId<HTMLFormElement>("composer"),
  message: byId<HTMLTextAreaElement>("message"),
  send: byId<HTMLButtonElement>("send"),
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
/** The open conversation's run that waits for answers: a new message leaves it (the server cancels it). */
let paused: { leave(): void } | null = null;
/** Bumped whenever another conversation is shown, so late answers for the previous one are dropped. */
let view = 0;

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

function toolCallChip(call: { id: string; name: string; arguments?: unknown }): HTMLElement {
  const attributes = { class: "tool", "data-role": "tool-call", "data-tool-call-id": call.id };
  return el("li", attributes, "calls ", el("b", {}, toolCallText(call.name, call.arguments)));
}

/** A paused call is shown when the run pauses and again when it goes on: one chip for it. */
function showToolCall(call: { id: string; name: string; arguments?: unknown }): void {
  if (!ui.messageList.querySelector(`[data-tool-call-id="${CSS.escape(call.id)}"]`)) append(toolCallChip(call));
}

function toolResultChip(name: string, result: string): HTMLElement {
  return el("li", { class: "tool", "data-role": "tool-result" }, el("b", {}, name), ` → ${result}`);
}

function bubble(role: "user" | "assistant", text: string): HTMLElement {
  return el("li", { class: `bubble ${role}`, "data-role": role, "data-state": "done" }, text);
}

function renderMessage(message: HistoryMessage): HTMLElement[] {
  switch (message.role) {
    case "USER":
      return [bubble("user", message.content ?? "")];
    case "ASSISTANT": {
      const chips = message.toolCalls.map(toolCallChip);
      return message.content ? [...chips, bubble("assistant", message.content)] : chips;
    }
    case "TOOL":
      return [toolResultChip(message.toolName ?? "tool", message.content ?? "")];
    default:
      return [];
  }
}

function showConversation(session: OpenSession | null): void {
  view += 1;
  // The run goes on on the server (onDisconnect CONTINUE); opening its conversation again rejoins it.
  run?.stop();
  run = null;
  paused = null;
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
  // A run still going (the page was reloaded, or it started in another tab) is not in the history yet:
  // show its message and follow it from its first event, so its answer is rebuilt and keeps growing.
  // A paused one is, up to its pause: it shows its card again, or follows what came after its answers.
  const active = session.activeRun;
  const inHistory = active && session.messages.nodes.some((message) => message.runId === active.id);
  if (active?.status === "PAUSED") {
    follow({ paused: { id: active.id, requirements: active.requirements } });
  } else if (active && inHistory) {
    follow({ continued: active.id });
  } else if (active) {
    append(bubble("user", active.input ?? ""));
    follow({ runId: active.id });
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

function append(item: HTMLElement): void {
  const follow = nearBottom();
  ui.messageList.append(item);
  if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** Send while idle; Stop (once the run's id is known) while a run streams. */
function showRunning(): void {
  ui.send.disabled = run !== null || ui.messages.hasAttribute("aria-busy");
  ui.stop.hidden = run === null;
  ui.stop.disabled = !run?.id;
}

/**
 * Shows a run in the open conversation as it streams, to its terminal event: one the composer starts
 * (`sent` is its message's bubble), one already going when the conversation opened, or one paused. A
 * pause shows a card; its answers continue the run, which streams on into the same answer bubble.
 */
function follow(start: RunStart | PausedRun | ContinuedRun, sent: HTMLElement | null = null): void {
  if (!api) return;
  const shown = view;
  const agentId = current?.agentId ?? ui.agent.value;
  const followed: FollowedRun = {
    id: "runId" in start ? start.runId : "paused" in start ? start.paused.id : "continued" in start ? start.continued : null,
    stop: () => {},
  };
  let answer: HTMLElement | null = null;
  let card: RequirementCard | null = null;
  // A continued run's events up to its RunContinued are in the history already.
  let replaying = "continued" in start;

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
    answer?.setAttribute("data-state", state);
    if (run === followed) run = null;
    showRunning();
  };
  const pause = (requirements: Requirement[]): void => {
    for (const requirement of requirements) showToolCall(requirement.toolCall);
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
    followed.stop = api.followRun({ answers: { runId: followed.id, answers } }, { event: show, error: refused });
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
      showRunning();
    }
    switch (event.__typename) {
      case "RunContinued":
        card?.element.remove();
        card = paused = null;
        answer?.setAttribute("data-state", "streaming");
        break;
      case "RunPaused":
        pause(event.requirements);
        break;
      case "RunContentDelta": {
        const follow = nearBottom();
        answerBubble().textContent += event.delta;
        if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
        break;
      }
      case "ToolCallStarted":
        showToolCall(event.toolCall);
        break;
      case "ToolCallCompleted":
        append(toolResultChip(event.toolCall.name, event.failed ? `failed: ${event.result}` : (event.result ?? "")));
        break;
      case "RunCompleted":
        if (event.content && answer?.textContent !== event.content) answerBubble().textContent = event.content;
        end("done");
        break;
      case "RunFailed":
        append(el("li", { class: "bubble assistant failed", "data-role": "error" }, `${event.code}: ${event.message}`));
        end("done");
        break;
      case "RunCancelled":
        // The partial answer as stored; the bubble's "stopped" mark comes from its data-state.
        if (event.content && answerBubble().textContent !== event.content) answerBubble().textContent = event.content;
        answerBubble().title = event.reason ?? "stopped";
        end("stopped");
        break;
    }
  };
  const refused = (code: string | undefined, message: string, requirementId?: string): void => {
    if (shown !== view) return;
    // Answers refused (BAD_USER_INPUT, or the run is no longer paused): the card says why, the run waits.
    if (card) {
      card.refused(requirementId, (code && EXPLAINED[code]) || message);
      end("paused");
      return;
    }
    // Refused before it started (SESSION_BUSY, RATE_LIMITED): the message goes back to the composer.
    if (sent && !followed.id) {
      sent.remove();
      if (!ui.message.value) ui.message.value = sent.textContent ?? "";
    }
    showError(code, message);
    end("done");
  };

  if ("paused" in start) {
    pause(start.paused.requirements);
    return;
  }
  run = followed;
  showRunning();
  const from = "continued" in start ? { runId: start.continued } : start;
  followed.stop = api.followRun(from, { event: show, error: refused });
}

function send(text: string): void {
  if (!api || ui.send.disabled || !text.trim()) return;
  ui.error.textContent = "";
  paused?.leave();
  paused = null;
  const sent = bubble("user", text);
  append(sent);
  const input = { agentId: current?.agentId ?? ui.agent.value, sessionId: current?.id ?? null, message: text };
  follow({ input }, sent);
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
ui.loadOlder.addEventListener("click", () => void loadOlderMessages());
ui.messages.addEventListener("scroll", () => {
  if (ui.messages.scrollTop < 40) void loadOlderMessages();
});
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.message.value;
  if (ui.send.disabled || !text.trim()) return;
  ui.message.value = "";
  send(text);
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
window.addEventListener("hashchange", () => {
  if (api) void showFromLocation();
});

const saved = localStorage.getItem(TOKEN_KEY);
if (saved) void signIn(saved);
else ui.signIn.hidden = false;
