// The chat page: plain DOM, no framework. State lives in a few variables below; the location hash
// (#session=ID) says which conversation is open, so reload and back/forward keep it.
import type { CombinedError } from "@urql/core";
import {
  AgentsQuery,
  createApi,
  DeleteSessionMutation,
  RenameSessionMutation,
  RunAgentSubscription,
  SessionMessagesQuery,
  SessionsQuery,
  type Api,
} from "./api";
import type { RunAgentSubscription as RunEventResult, SessionMessagesQuery as MessagesResult } from "../gql/graphql";

const TOKEN_KEY = "agno-graphql-chat-token";
const SESSIONS_PAGE = 15;
const MESSAGES_PAGE = 20;
const MAX_PAGE = 100; // the server's default AGNO_GRAPHQL_PAGE_SIZE_MAX

type HistoryMessage = NonNullable<MessagesResult["session"]>["messages"]["nodes"][number];
type RunEvent = RunEventResult["runAgent"];
const TERMINAL_EVENTS = new Set<RunEvent["__typename"]>(["RunCompleted", "RunFailed", "RunCancelled"]);
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

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

function el(tag: string, attributes: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
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
  error: byId<HTMLElement>("error"),
};

let api: Api | null = null;
let sessions: SessionItem[] = [];
let sessionsCursor: string | null = null;
let current: OpenSession | null = null;
let olderCursor: string | null = null;
let loadingOlder = false;
let running = false;
/** Bumped whenever another conversation is shown, so late answers for the previous one are dropped. */
let view = 0;

// ---- errors and sign-in ---------------------------------------------------------------------------

function errorCode(error: CombinedError): string | undefined {
  const code = error.graphQLErrors[0]?.extensions?.code;
  return typeof code === "string" ? code : undefined;
}

/** Show an error; a refused token signs out. Returns true when there was one. */
function failed(error: CombinedError | undefined): boolean {
  if (!error) return false;
  if (errorCode(error) === "UNAUTHENTICATED") {
    signOut(`The server refused the token: ${error.graphQLErrors[0]?.message ?? error.message}`);
  } else {
    ui.error.textContent = error.graphQLErrors[0]?.message ?? error.message;
  }
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
  api = createApi(token, () => signOut("The server refused the token on the websocket (4403)."));
  const result = await api.client.query(AgentsQuery, {}).toPromise();
  if (failed(result.error) || !result.data) return;
  localStorage.setItem(TOKEN_KEY, token);
  ui.agent.replaceChildren(
    ...result.data.agents.map((agent) => el("option", { value: agent.id, title: agent.description ?? "" }, agent.name)),
  );
  ui.viewer.textContent = tokenSubject(token);
  ui.signIn.hidden = true;
  ui.app.hidden = false;
  ui.signInError.textContent = "";
  await reloadSessions();
  await showFromLocation();
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

// ---- conversation: history with scroll-back -------------------------------------------------------

function toolArguments(value: unknown): string {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return Object.values(value as Record<string, unknown>)
      .map((argument) => JSON.stringify(argument))
      .join(", ");
  }
  return value == null ? "" : JSON.stringify(value);
}

function toolCallChip(name: string, args: unknown): HTMLElement {
  return el("li", { class: "tool", "data-role": "tool-call" }, "calls ", el("b", {}, `${name}(${toolArguments(args)})`));
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
      const chips = message.toolCalls.map((call) => toolCallChip(call.name, call.arguments));
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
  const session = await loadMessages(null);
  if (!session || !current) return;
  current.name = session.name;
  current.agentId = session.agentId;
  ui.title.textContent = session.name || "Untitled";
  ui.agent.value = session.agentId;
  ui.messageList.replaceChildren(...session.messages.nodes.flatMap(renderMessage));
  ui.messages.scrollTop = ui.messages.scrollHeight;
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

// ---- composer: a run, streamed ---------------------------------------------------------------------

function nearBottom(): boolean {
  return ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80;
}

function append(item: HTMLElement): void {
  const follow = nearBottom();
  ui.messageList.append(item);
  if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function send(text: string): void {
  if (!api || running || !text.trim()) return;
  const shown = view;
  const agentId = current?.agentId ?? ui.agent.value;
  running = true;
  ui.send.disabled = true;
  ui.error.textContent = "";
  append(bubble("user", text));
  let answer: HTMLElement | null = null;

  const finish = (): void => {
    running = false;
    ui.send.disabled = false;
    answer?.setAttribute("data-state", "done");
    void reloadSessions().then(() => {
      const listed = sessions.find((session) => session.id === current?.id);
      if (listed && current && shown === view) {
        current.name = listed.name;
        ui.title.textContent = listed.name || "Untitled";
      }
    });
  };
  /** Shows an event in the conversation it belongs to (dropped once another one is open). */
  const show = (event: RunEvent): void => {
    if (shown !== view) return;
    if (!current) {
      current = { id: event.sessionId, name: null, agentId };
      history.replaceState(null, "", `#session=${encodeURIComponent(event.sessionId)}`);
      ui.rename.disabled = ui.remove.disabled = false;
    }
    switch (event.__typename) {
      case "RunContentDelta": {
        if (!answer) {
          answer = bubble("assistant", "");
          answer.setAttribute("data-state", "streaming");
          append(answer);
        }
        const follow = nearBottom();
        answer.textContent += event.delta;
        if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
        break;
      }
      case "ToolCallStarted":
        append(toolCallChip(event.toolCall.name, event.toolCall.arguments));
        break;
      case "ToolCallCompleted":
        append(toolResultChip(event.toolCall.name, event.failed ? `failed: ${event.result}` : (event.result ?? "")));
        break;
      case "RunCompleted":
        if (event.content && answer?.textContent !== event.content) {
          answer = answer ?? bubble("assistant", "");
          answer.textContent = event.content;
          if (!answer.isConnected) append(answer);
        }
        break;
      case "RunFailed":
        append(el("li", { class: "bubble assistant failed", "data-role": "error" }, `${event.code}: ${event.message}`));
        break;
      case "RunCancelled":
        append(el("li", { class: "tool" }, `cancelled${event.reason ? `: ${event.reason}` : ""}`));
        break;
    }
  };

  const input = { agentId, sessionId: current?.id ?? null, message: text };
  api.client.subscription(RunAgentSubscription, { input }).subscribe((result) => {
    if (failed(result.error)) {
      finish(); // the stream ends with its error
    } else if (result.data) {
      const event = result.data.runAgent;
      show(event);
      if (TERMINAL_EVENTS.has(event.__typename)) finish();
    }
  });
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
  if (running || !text.trim()) return;
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
window.addEventListener("hashchange", () => {
  if (api) void showFromLocation();
});

const saved = localStorage.getItem(TOKEN_KEY);
if (saved) void signIn(saved);
else ui.signIn.hidden = false;
