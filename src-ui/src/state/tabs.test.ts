import { describe, expect, it } from "vitest";

import type { AgentSession } from "../api/gen/AgentSession";
import type { Terminal } from "../api/gen/Terminal";
import { emptyTabs, fileTab, newTerminalTab, sessionTab, shortcutOf, tabsReducer, type TabsAction, type TabsState } from "./tabs";

const term = (id: string, createdAt: string, exited = false): Terminal => ({ id, cols: 80, rows: 24, createdAt, exited });
const sess = (id: string, label: string, status: AgentSession["status"] = "running"): AgentSession => ({
  id,
  workspaceId: "w",
  label,
  agent: "claude",
  status,
  attached: false,
  watchers: 0,
  createdAt: "2026-01-01T00:00:00Z",
});
const run = (s: TabsState, ...a: TabsAction[]) => a.reduce(tabsReducer, s);

describe("tabsReducer", () => {
  it("brings back live terminals (oldest first) and sessions, not exited or stopped ones", () => {
    const s = run(emptyTabs, {
      type: "sync",
      terminals: [term("t2", "2026-01-02T00:00:00Z"), term("t1", "2026-01-01T00:00:00Z"), term("t3", "2026-01-03T00:00:00Z", true)],
      sessions: [sess("s1", "Fix login"), sess("s2", "Old", "stopped")],
    });
    expect(s.tabs.map((t) => [t.key, t.title])).toEqual([
      ["terminal:t1", "Terminal 1"],
      ["terminal:t2", "Terminal 2"],
      ["session:s1", "Fix login"],
    ]);
    expect(s.active).toBe("terminal:t1");
  });

  it("keeps order and the active tab across syncs, drops what is gone", () => {
    let s = run(emptyTabs, { type: "sync", terminals: [term("t1", "a"), term("t2", "b")], sessions: [] });
    s = run(s, { type: "open", tab: fileTab("src/a.ts") }, { type: "activate", key: "terminal:t2" });
    s = run(s, { type: "sync", terminals: [term("t2", "b"), term("t4", "c")], sessions: [] });
    expect(s.tabs.map((t) => t.key)).toEqual(["terminal:t2", "file:src/a.ts", "terminal:t4"]);
    expect(s.tabs.find((t) => t.key === "terminal:t4")?.title).toBe("Terminal 3");
    expect(s.active).toBe("terminal:t2");
  });

  it("opens a tab once, activating it", () => {
    const s = run(emptyTabs, { type: "open", tab: fileTab("a/b.rs") }, { type: "open", tab: sessionTab({ id: "s", label: "", agent: "codex" }) }, { type: "open", tab: fileTab("a/b.rs") });
    expect(s.tabs.map((t) => t.title)).toEqual(["b.rs", "codex"]);
    expect(s.active).toBe("file:a/b.rs");
  });

  it("numbers new terminals after the highest", () => {
    const s = run(emptyTabs, { type: "sync", terminals: [term("t1", "a"), term("t2", "b")], sessions: [] }, { type: "close", key: "terminal:t1" });
    expect(newTerminalTab(s, { id: "t9" }).title).toBe("Terminal 3");
    expect(newTerminalTab(emptyTabs, { id: "t9" }).title).toBe("Terminal 1");
  });

  it("closing the active tab activates its right neighbour, else the left one", () => {
    const base = run(emptyTabs, { type: "sync", terminals: [term("a", "1"), term("b", "2"), term("c", "3")], sessions: [] });
    expect(run(base, { type: "activate", key: "terminal:b" }, { type: "close", key: "terminal:b" }).active).toBe("terminal:c");
    expect(run(base, { type: "activate", key: "terminal:c" }, { type: "close", key: "terminal:c" }).active).toBe("terminal:b");
    expect(run(base, { type: "close", key: "terminal:c" }).active).toBe("terminal:a");
    expect(run(base, { type: "close", key: "nope" })).toBe(base);
    const last = run(emptyTabs, { type: "open", tab: fileTab("x") }, { type: "close", key: "file:x" });
    expect(last).toEqual(emptyTabs);
  });

  it("cycles with next and previous", () => {
    const base = run(emptyTabs, { type: "sync", terminals: [term("a", "1"), term("b", "2"), term("c", "3")], sessions: [] });
    expect(run(base, { type: "next" }).active).toBe("terminal:b");
    expect(run(base, { type: "previous" }).active).toBe("terminal:c");
    expect(run(base, { type: "next" }, { type: "next" }, { type: "next" }).active).toBe("terminal:a");
    expect(run(emptyTabs, { type: "next" })).toBe(emptyTabs);
  });

  it("retitles and ignores activating unknown tabs", () => {
    const base = run(emptyTabs, { type: "open", tab: fileTab("x") });
    expect(run(base, { type: "retitle", key: "file:x", title: "X" }).tabs[0].title).toBe("X");
    expect(run(base, { type: "activate", key: "nope" })).toBe(base);
  });
});

describe("shortcutOf", () => {
  const k = (key: string, mods: Partial<KeyboardEvent> = {}) =>
    shortcutOf({ key, code: "", ctrlKey: true, shiftKey: false, altKey: false, metaKey: false, ...mods });
  it("knows the tab shortcuts", () => {
    expect(k("T", { shiftKey: true })).toBe("new-terminal");
    expect(k("W", { shiftKey: true })).toBe("close-tab");
    expect(k("Tab")).toBe("next-tab");
    expect(k("Tab", { shiftKey: true })).toBe("previous-tab");
  });
  it("leaves everything else to the terminal", () => {
    expect(k("t")).toBeNull();
    expect(k("c")).toBeNull();
    expect(k("T", { shiftKey: true, altKey: true })).toBeNull();
    expect(k("Tab", { ctrlKey: false })).toBeNull();
    expect(k("F", { shiftKey: true })).toBeNull();
  });
});
