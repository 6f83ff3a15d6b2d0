// The app's state as one pure reducer: nodes, their workspaces (loaded per node,
// so a slow node never holds up the others), settings, the current screen,
// notices and agents waiting for a person.
import type { AgentSession } from "../api/gen/AgentSession";
import type { Event } from "../api/gen/Event";
import type { HealthChange } from "../api/gen/HealthChange";
import type { Node } from "../api/gen/Node";
import type { WorkspaceView } from "../api/gen/WorkspaceView";
import type { SamError } from "../api/errors";
import type { Settings } from "../api/types";

export type Route =
  | { name: "nodes" }
  | { name: "node"; nodeId: string }
  | { name: "workspace"; nodeId: string; workspaceId: string }
  | { name: "settings" };

/** Data that loads: the last good value stays while a reload runs or fails. */
export type Loadable<T> = {
  status: "idle" | "loading" | "ready" | "error";
  data: T;
  error: SamError | null;
  /** When the current load began (ms), for "still waiting…" hints. */
  since: number | null;
};

export type Notice = {
  id: number;
  tone: "info" | "warn" | "error";
  text: string;
  route?: Route;
};

export type Waiting = { nodeId: string; workspaceId: string | null; sessionId: string; message: string; at: string };

export type AppState = {
  route: Route;
  nodes: Loadable<Node[]>;
  workspaces: Record<string, Loadable<WorkspaceView[]>>;
  settings: Settings | null;
  notices: Notice[];
  waiting: Record<string, Waiting>;
  nextNoticeId: number;
};

export type AppAction =
  | { type: "navigate"; route: Route }
  | { type: "nodes/loading"; at: number }
  | { type: "nodes/loaded"; nodes: Node[] }
  | { type: "nodes/failed"; error: SamError }
  | { type: "node/upserted"; node: Node }
  | { type: "node/removed"; nodeId: string }
  | { type: "health"; change: HealthChange }
  | { type: "workspaces/loading"; nodeId: string; at: number }
  | { type: "workspaces/loaded"; nodeId: string; workspaces: WorkspaceView[] }
  | { type: "workspaces/failed"; nodeId: string; error: SamError }
  | { type: "workspace/upserted"; workspace: WorkspaceView }
  | { type: "workspace/removed"; nodeId: string; workspaceId: string }
  | { type: "settings"; settings: Settings }
  | { type: "notice"; tone: Notice["tone"]; text: string; route?: Route }
  | { type: "notice/dismiss"; id: number }
  | { type: "permission/waiting"; nodeId: string; event: Event }
  | { type: "permission/resolved"; sessionId: string }
  /**
   * A workspace's sessions as the node listed them (asked at `at`, ms): its
   * `permissionPending` ones wait for a person, the others no longer do (unless
   * a signal said so after the list was asked for).
   */
  | { type: "sessions/listed"; nodeId: string; workspaceId: string; sessions: AgentSession[]; at: number };

export const initialState: AppState = {
  route: { name: "nodes" },
  nodes: { status: "idle", data: [], error: null, since: null },
  workspaces: {},
  settings: null,
  notices: [],
  waiting: {},
  nextNoticeId: 1,
};

const emptyList = <T,>(): Loadable<T[]> => ({ status: "idle", data: [], error: null, since: null });

function routeStillValid(route: Route, nodes: Node[]): Route {
  if ((route.name === "node" || route.name === "workspace") && !nodes.some((n) => n.id === route.nodeId)) {
    return { name: "nodes" };
  }
  return route;
}

function sortNodes(nodes: Node[]): Node[] {
  return [...nodes].sort((a, b) => a.name.localeCompare(b.name));
}

function sortWorkspaces(ws: WorkspaceView[]): WorkspaceView[] {
  return [...ws].sort((a, b) => a.displayName.localeCompare(b.displayName));
}

export function appReducer(s: AppState, a: AppAction): AppState {
  switch (a.type) {
    case "navigate":
      return { ...s, route: a.route };
    case "nodes/loading":
      return { ...s, nodes: { ...s.nodes, status: "loading", since: a.at } };
    case "nodes/loaded": {
      const nodes = sortNodes(a.nodes);
      const keep = new Set(nodes.map((n) => n.id));
      const workspaces = Object.fromEntries(Object.entries(s.workspaces).filter(([id]) => keep.has(id)));
      return {
        ...s,
        nodes: { status: "ready", data: nodes, error: null, since: null },
        workspaces,
        route: s.nodes.status === "idle" ? s.route : routeStillValid(s.route, nodes),
      };
    }
    case "nodes/failed":
      return { ...s, nodes: { ...s.nodes, status: "error", error: a.error, since: null } };
    case "node/upserted": {
      const others = s.nodes.data.filter((n) => n.id !== a.node.id);
      return { ...s, nodes: { ...s.nodes, data: sortNodes([...others, a.node]) } };
    }
    case "node/removed": {
      const nodes = s.nodes.data.filter((n) => n.id !== a.nodeId);
      const workspaces = { ...s.workspaces };
      delete workspaces[a.nodeId];
      return { ...s, nodes: { ...s.nodes, data: nodes }, workspaces, route: routeStillValid(s.route, nodes) };
    }
    case "health": {
      const c = a.change;
      const data = s.nodes.data.map((n) =>
        n.id === c.nodeId
          ? { ...n, health: c.to, lastSeenAt: c.to === "healthy" ? c.at : n.lastSeenAt }
          : n,
      );
      return { ...s, nodes: { ...s.nodes, data } };
    }
    case "workspaces/loading": {
      const cur = s.workspaces[a.nodeId] ?? emptyList<WorkspaceView>();
      return { ...s, workspaces: { ...s.workspaces, [a.nodeId]: { ...cur, status: "loading", since: a.at } } };
    }
    case "workspaces/loaded":
      return {
        ...s,
        workspaces: {
          ...s.workspaces,
          [a.nodeId]: { status: "ready", data: sortWorkspaces(a.workspaces), error: null, since: null },
        },
      };
    case "workspaces/failed": {
      const cur = s.workspaces[a.nodeId] ?? emptyList<WorkspaceView>();
      return {
        ...s,
        workspaces: { ...s.workspaces, [a.nodeId]: { ...cur, status: "error", error: a.error, since: null } },
      };
    }
    case "workspace/upserted": {
      const nodeId = a.workspace.node;
      const cur = s.workspaces[nodeId] ?? { ...emptyList<WorkspaceView>(), status: "ready" as const };
      const data = sortWorkspaces([...cur.data.filter((w) => w.id !== a.workspace.id), a.workspace]);
      return { ...s, workspaces: { ...s.workspaces, [nodeId]: { ...cur, data } } };
    }
    case "workspace/removed": {
      const cur = s.workspaces[a.nodeId];
      const workspaces = cur
        ? { ...s.workspaces, [a.nodeId]: { ...cur, data: cur.data.filter((w) => w.id !== a.workspaceId) } }
        : s.workspaces;
      const route: Route =
        s.route.name === "workspace" && s.route.workspaceId === a.workspaceId
          ? { name: "node", nodeId: a.nodeId }
          : s.route;
      return { ...s, workspaces, route };
    }
    case "settings":
      return { ...s, settings: a.settings };
    case "notice": {
      const n: Notice = { id: s.nextNoticeId, tone: a.tone, text: a.text, route: a.route };
      // Keep the newest few; notices are reminders, the events lists keep the record.
      return { ...s, notices: [...s.notices, n].slice(-4), nextNoticeId: s.nextNoticeId + 1 };
    }
    case "notice/dismiss":
      return { ...s, notices: s.notices.filter((n) => n.id !== a.id) };
    case "permission/waiting": {
      const e = a.event;
      if (!e.sessionId) return s;
      const w: Waiting = {
        nodeId: a.nodeId,
        workspaceId: e.workspaceId ?? null,
        sessionId: e.sessionId,
        message: e.message,
        at: e.createdAt,
      };
      return { ...s, waiting: { ...s.waiting, [e.sessionId]: w } };
    }
    case "permission/resolved": {
      if (!(a.sessionId in s.waiting)) return s;
      const waiting = { ...s.waiting };
      delete waiting[a.sessionId];
      return { ...s, waiting };
    }
    case "sessions/listed": {
      const waiting = { ...s.waiting };
      let changed = false;
      for (const x of a.sessions) {
        const cur = waiting[x.id];
        const pending = x.status === "running" && !!x.permissionPending;
        if (pending && !cur) {
          waiting[x.id] = {
            nodeId: a.nodeId,
            workspaceId: a.workspaceId,
            sessionId: x.id,
            message: `${x.label || x.agent || "An agent session"} waits for your permission.`,
            at: new Date(a.at).toISOString(),
          };
          changed = true;
        } else if (!pending && cur && !(Date.parse(cur.at) > a.at)) {
          delete waiting[x.id];
          changed = true;
        }
      }
      return changed ? { ...s, waiting } : s;
    }
  }
}

/** Finds a workspace among the loaded ones. */
export function findWorkspace(s: AppState, nodeId: string, workspaceId: string): WorkspaceView | undefined {
  return s.workspaces[nodeId]?.data.find((w) => w.id === workspaceId);
}

export function findNode(s: AppState, nodeId: string): Node | undefined {
  return s.nodes.data.find((n) => n.id === nodeId);
}

/** Agents waiting for a person in one workspace. */
export function waitingIn(s: AppState, workspaceId: string): Waiting[] {
  return Object.values(s.waiting).filter((w) => w.workspaceId === workspaceId);
}
