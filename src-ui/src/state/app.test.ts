import { describe, expect, it } from "vitest";

import type { AgentSession } from "../api/gen/AgentSession";
import type { Node } from "../api/gen/Node";
import type { WorkspaceView } from "../api/gen/WorkspaceView";
import { SamError } from "../api/errors";
import { appReducer, findWorkspace, initialState, waitingIn, type AppAction, type AppState } from "./app";

const node = (id: string, name: string, extra: Partial<Node> = {}): Node => ({
  id,
  name,
  provider: "ssh",
  address: "https://h:7420",
  status: "running",
  health: "healthy",
  lastSeenAt: "2026-11-25T11:59:00Z",
  agentVersion: "0.1.0",
  certFingerprint: null,
  workspaces: { total: 0, running: 0 },
  limits: null,
  providerIds: null,
  ...extra,
});

const ws = (id: string, nodeId: string, displayName: string): WorkspaceView => ({
  node: nodeId,
  id,
  nodeId,
  displayName,
  projectPath: "/p",
  status: "running",
  image: "img",
  createdAt: "2026-11-25T12:00:00Z",
  updatedAt: "2026-11-25T12:00:00Z",
});

const run = (s: AppState, ...a: AppAction[]) => a.reduce(appReducer, s);
const err = new SamError({ code: "node_unreachable", message: "down", hint: null });

describe("appReducer", () => {
  it("loads nodes sorted by name and keeps the old list while reloading or failing", () => {
    let s = run(initialState, { type: "nodes/loading", at: 1 }, { type: "nodes/loaded", nodes: [node("b", "zeta"), node("a", "alpha")] });
    expect(s.nodes.data.map((n) => n.name)).toEqual(["alpha", "zeta"]);
    s = run(s, { type: "nodes/loading", at: 2 });
    expect(s.nodes).toMatchObject({ status: "loading", since: 2 });
    expect(s.nodes.data).toHaveLength(2);
    s = run(s, { type: "nodes/failed", error: err });
    expect(s.nodes.status).toBe("error");
    expect(s.nodes.data).toHaveLength(2);
  });

  it("loads workspaces per node, independently", () => {
    let s = run(initialState, { type: "workspaces/loading", nodeId: "a", at: 1 }, { type: "workspaces/loading", nodeId: "b", at: 1 });
    s = run(s, { type: "workspaces/loaded", nodeId: "a", workspaces: [ws("w2", "a", "web"), ws("w1", "a", "api")] });
    expect(s.workspaces.a.status).toBe("ready");
    expect(s.workspaces.a.data.map((w) => w.displayName)).toEqual(["api", "web"]);
    expect(s.workspaces.b.status).toBe("loading");
    s = run(s, { type: "workspaces/failed", nodeId: "b", error: err });
    expect(s.workspaces.b).toMatchObject({ status: "error", error: err });
    expect(findWorkspace(s, "a", "w2")?.displayName).toBe("web");
  });

  it("applies health changes; healthy moves 'last seen'", () => {
    let s = run(initialState, { type: "nodes/loaded", nodes: [node("a", "alpha")] });
    s = run(s, { type: "health", change: { nodeId: "a", nodeName: "alpha", from: "healthy", to: "stale", at: "2026-11-25T12:01:00Z" } });
    expect(s.nodes.data[0]).toMatchObject({ health: "stale", lastSeenAt: "2026-11-25T11:59:00Z" });
    s = run(s, { type: "health", change: { nodeId: "a", nodeName: "alpha", from: "stale", to: "healthy", at: "2026-11-25T12:02:00Z" } });
    expect(s.nodes.data[0]).toMatchObject({ health: "healthy", lastSeenAt: "2026-11-25T12:02:00Z" });
  });

  it("leaves a screen whose node or workspace went away", () => {
    let s = run(
      initialState,
      { type: "nodes/loaded", nodes: [node("a", "alpha")] },
      { type: "workspaces/loaded", nodeId: "a", workspaces: [ws("w1", "a", "api")] },
      { type: "navigate", route: { name: "workspace", nodeId: "a", workspaceId: "w1" } },
      { type: "workspace/removed", nodeId: "a", workspaceId: "w1" },
    );
    expect(s.route).toEqual({ name: "node", nodeId: "a" });
    s = run(s, { type: "node/removed", nodeId: "a" });
    expect(s.route).toEqual({ name: "nodes" });
    expect(s.workspaces.a).toBeUndefined();
    s = run(s, { type: "navigate", route: { name: "node", nodeId: "gone" } }, { type: "nodes/loaded", nodes: [] });
    expect(s.route).toEqual({ name: "nodes" });
  });

  it("upserts nodes and workspaces", () => {
    let s = run(initialState, { type: "node/upserted", node: node("a", "alpha") }, { type: "node/upserted", node: node("a", "alpha", { status: "stopped" }) });
    expect(s.nodes.data).toHaveLength(1);
    expect(s.nodes.data[0].status).toBe("stopped");
    s = run(s, { type: "workspace/upserted", workspace: ws("w1", "a", "api") }, { type: "workspace/upserted", workspace: { ...ws("w1", "a", "api2") } });
    expect(s.workspaces.a.data.map((w) => w.displayName)).toEqual(["api2"]);
  });

  it("keeps the newest four notices, and dismisses by id", () => {
    let s = initialState;
    for (let i = 0; i < 6; i++) s = run(s, { type: "notice", tone: "info", text: `n${i}` });
    expect(s.notices.map((n) => n.text)).toEqual(["n2", "n3", "n4", "n5"]);
    s = run(s, { type: "notice/dismiss", id: s.notices[0].id });
    expect(s.notices.map((n) => n.text)).toEqual(["n3", "n4", "n5"]);
  });

  it("tracks agents waiting for permission until resolved", () => {
    const event = {
      id: "e1",
      type: "session.permission_requested",
      level: "warn" as const,
      nodeId: "a",
      workspaceId: "w1",
      sessionId: "s1",
      message: "Run `npm test`",
      createdAt: "2026-11-25T12:06:00Z",
    };
    let s = run(initialState, { type: "permission/waiting", nodeId: "a", event });
    expect(waitingIn(s, "w1").map((w) => w.message)).toEqual(["Run `npm test`"]);
    s = run(s, { type: "permission/resolved", sessionId: "s1" });
    expect(waitingIn(s, "w1")).toEqual([]);
    expect(run(s, { type: "permission/resolved", sessionId: "zz" })).toBe(s);
    expect(run(s, { type: "permission/waiting", nodeId: "a", event: { ...event, sessionId: null } })).toBe(s);
  });

  it("takes who waits from a listed workspace's sessions, without undoing a newer signal", () => {
    const session = (id: string, extra: Partial<AgentSession> = {}): AgentSession => ({
      id,
      workspaceId: "w1",
      label: `L${id}`,
      agent: "codex",
      status: "running",
      attached: false,
      watchers: 0,
      createdAt: "2026-11-25T12:00:00Z",
      ...extra,
    });
    const at = Date.parse("2026-11-25T12:10:00Z");
    let s = run(initialState, {
      type: "sessions/listed",
      nodeId: "a",
      workspaceId: "w1",
      sessions: [session("s1", { permissionPending: true }), session("s2"), session("s3", { status: "error", permissionPending: true })],
      at,
    });
    expect(waitingIn(s, "w1").map((w) => [w.sessionId, w.message])).toEqual([["s1", "Ls1 waits for your permission."]]);
    // Listed again without it: it was answered elsewhere.
    const listedAgain = { type: "sessions/listed" as const, nodeId: "a", workspaceId: "w1", sessions: [session("s1")], at: at + 1000 };
    expect(waitingIn(run(s, listedAgain), "w1")).toEqual([]);
    // A signal newer than the list stays.
    s = run(s, {
      type: "permission/waiting",
      nodeId: "a",
      event: { id: "e", type: "session.permission_requested", level: "warn", nodeId: "a", workspaceId: "w1", sessionId: "s2", message: "Edit", createdAt: "2026-11-25T12:20:00Z" },
    });
    s = run(s, { ...listedAgain, sessions: [session("s1", { permissionPending: true }), session("s2")] });
    expect(waitingIn(s, "w1").map((w) => w.sessionId).sort()).toEqual(["s1", "s2"]);
    expect(run(s, { ...listedAgain, sessions: [session("s1", { permissionPending: true })] })).toBe(s);
  });
});
