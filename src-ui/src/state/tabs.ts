// The tabs of one workspace: terminals and agent sessions (which live on the
// node, so they come back when the window reopens) and open files.
import type { AgentSession } from "../api/gen/AgentSession";
import type { Terminal } from "../api/gen/Terminal";

export type Tab =
  | { key: string; kind: "terminal"; terminalId: string; title: string }
  | { key: string; kind: "session"; sessionId: string; title: string }
  | { key: string; kind: "file"; path: string; title: string };

export type TabsState = { tabs: Tab[]; active: string | null };

export const emptyTabs: TabsState = { tabs: [], active: null };

export type TabsAction =
  /** What lives on the node: adds tabs for live terminals and sessions, drops the gone ones. */
  | { type: "sync"; terminals: Terminal[]; sessions: AgentSession[] }
  | { type: "open"; tab: Tab }
  | { type: "close"; key: string }
  | { type: "activate"; key: string }
  | { type: "next" }
  | { type: "previous" }
  | { type: "retitle"; key: string; title: string };

export const terminalKey = (id: string) => `terminal:${id}`;
export const sessionKey = (id: string) => `session:${id}`;
export const fileKey = (path: string) => `file:${path}`;

export function terminalTab(t: Pick<Terminal, "id">, n: number): Tab {
  return { key: terminalKey(t.id), kind: "terminal", terminalId: t.id, title: `Terminal ${n}` };
}

export function sessionTab(s: Pick<AgentSession, "id" | "label" | "agent">): Tab {
  return { key: sessionKey(s.id), kind: "session", sessionId: s.id, title: s.label || s.agent || "Agent" };
}

export function fileTab(path: string): Tab {
  const name = path.split("/").filter(Boolean).pop() ?? path;
  return { key: fileKey(path), kind: "file", path, title: name };
}

function nextTerminalNumber(tabs: Tab[]): number {
  let n = 0;
  for (const t of tabs) {
    const m = t.kind === "terminal" ? /^Terminal (\d+)$/.exec(t.title) : null;
    if (m) n = Math.max(n, Number(m[1]));
  }
  return n + 1;
}

export function newTerminalTab(state: TabsState, t: Pick<Terminal, "id">): Tab {
  return terminalTab(t, nextTerminalNumber(state.tabs));
}

function neighbour(tabs: Tab[], index: number): string | null {
  if (tabs.length === 0) return null;
  return tabs[Math.min(index, tabs.length - 1)].key;
}

export function tabsReducer(state: TabsState, a: TabsAction): TabsState {
  switch (a.type) {
    case "sync": {
      const liveTerms = new Set(a.terminals.filter((t) => !t.exited).map((t) => terminalKey(t.id)));
      const liveSessions = new Set(
        a.sessions.filter((s) => s.status !== "stopped").map((s) => sessionKey(s.id)),
      );
      let tabs = state.tabs.filter(
        (t) =>
          t.kind === "file" ||
          (t.kind === "terminal" && liveTerms.has(t.key)) ||
          (t.kind === "session" && liveSessions.has(t.key)),
      );
      const have = new Set(tabs.map((t) => t.key));
      const byAge = [...a.terminals].sort((x, y) => x.createdAt.localeCompare(y.createdAt));
      for (const t of byAge) {
        if (t.exited || have.has(terminalKey(t.id))) continue;
        tabs = [...tabs, terminalTab(t, nextTerminalNumber(tabs))];
      }
      const sessionsByAge = [...a.sessions].sort((x, y) => x.createdAt.localeCompare(y.createdAt));
      for (const s of sessionsByAge) {
        if (s.status === "stopped" || have.has(sessionKey(s.id))) continue;
        tabs = [...tabs, sessionTab(s)];
      }
      const active = state.active && tabs.some((t) => t.key === state.active) ? state.active : (tabs[0]?.key ?? null);
      return { tabs, active };
    }
    case "open": {
      if (state.tabs.some((t) => t.key === a.tab.key)) return { ...state, active: a.tab.key };
      return { tabs: [...state.tabs, a.tab], active: a.tab.key };
    }
    case "close": {
      const i = state.tabs.findIndex((t) => t.key === a.key);
      if (i < 0) return state;
      const tabs = state.tabs.filter((t) => t.key !== a.key);
      const active = state.active === a.key ? neighbour(tabs, i) : state.active;
      return { tabs, active };
    }
    case "activate":
      return state.tabs.some((t) => t.key === a.key) ? { ...state, active: a.key } : state;
    case "next":
    case "previous": {
      if (state.tabs.length === 0) return state;
      const i = Math.max(0, state.tabs.findIndex((t) => t.key === state.active));
      const d = a.type === "next" ? 1 : -1;
      const j = (i + d + state.tabs.length) % state.tabs.length;
      return { ...state, active: state.tabs[j].key };
    }
    case "retitle":
      return { ...state, tabs: state.tabs.map((t) => (t.key === a.key ? { ...t, title: a.title } : t)) };
  }
}

export type Shortcut = "new-terminal" | "close-tab" | "next-tab" | "previous-tab";

/** The tab shortcuts, as documented in the UI. */
export const shortcuts: { keys: string; does: string; id: Shortcut }[] = [
  { keys: "Ctrl+Shift+T", does: "New terminal tab", id: "new-terminal" },
  { keys: "Ctrl+Shift+W", does: "Close the current tab", id: "close-tab" },
  { keys: "Ctrl+Tab", does: "Next tab", id: "next-tab" },
  { keys: "Ctrl+Shift+Tab", does: "Previous tab", id: "previous-tab" },
];

/** Which tab shortcut a key press is, if any. */
export function shortcutOf(e: Pick<KeyboardEvent, "ctrlKey" | "shiftKey" | "altKey" | "metaKey" | "key" | "code">): Shortcut | null {
  if (!e.ctrlKey || e.altKey || e.metaKey) return null;
  if (e.key === "Tab" || e.code === "Tab") return e.shiftKey ? "previous-tab" : "next-tab";
  if (!e.shiftKey) return null;
  const k = e.key.toLowerCase();
  if (k === "t" || e.code === "KeyT") return "new-terminal";
  if (k === "w" || e.code === "KeyW") return "close-tab";
  return null;
}
