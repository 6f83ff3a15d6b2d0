// The app store: the reducer of ./app.ts plus the effects that feed it (loading,
// the signal subscription, periodic refresh). Every call is asynchronous and
// per node, so a slow node shows a spinner in its own row and nothing else waits.
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useReducer,
  useRef,
  useState,
  type ReactNode,
} from "react";

import { api, toSamError, type Settings, type UiSignal } from "../api";
import type { Event } from "../api/gen/Event";
import { appReducer, initialState, type AppAction, type AppState, type Notice, type Route } from "./app";

type EventListener = (nodeId: string, event: Event) => void;

export type Actions = {
  navigate: (r: Route) => void;
  refreshNodes: () => Promise<void>;
  refreshWorkspaces: (nodeId: string) => Promise<void>;
  refreshSettings: () => Promise<Settings | null>;
  notify: (tone: Notice["tone"], text: string, route?: Route) => void;
  /** Live events from the signal stream (for events lists). */
  onEvent: (l: EventListener) => () => void;
};

type Store = { state: AppState; dispatch: (a: AppAction) => void; actions: Actions };

const StoreContext = createContext<Store | null>(null);

/** How often the node list (health, last seen, counts) is refreshed. */
export const NODES_REFRESH_MS = 15_000;

export function StoreProvider({ children, initial }: { children: ReactNode; initial?: Partial<AppState> }) {
  const [state, dispatch] = useReducer(appReducer, { ...initialState, ...initial });
  const listeners = useRef(new Set<EventListener>());
  const inflight = useRef(new Map<string, Promise<void>>());
  const refreshTimers = useRef(new Map<string, ReturnType<typeof setTimeout>>());
  const routeRef = useRef(state.route);
  routeRef.current = state.route;

  /** One load per key at a time: a second caller shares the first's promise. */
  const once = useCallback((key: string, run: () => Promise<void>): Promise<void> => {
    const cur = inflight.current.get(key);
    if (cur) return cur;
    const p = run().finally(() => inflight.current.delete(key));
    inflight.current.set(key, p);
    return p;
  }, []);

  const refreshWorkspaces = useCallback(
    (nodeId: string) =>
      once(`ws:${nodeId}`, async () => {
        dispatch({ type: "workspaces/loading", nodeId, at: Date.now() });
        try {
          dispatch({ type: "workspaces/loaded", nodeId, workspaces: await api.listWorkspaces(nodeId) });
        } catch (e) {
          dispatch({ type: "workspaces/failed", nodeId, error: toSamError(e) });
        }
      }),
    [once],
  );

  const refreshNodes = useCallback(
    () =>
      once("nodes", async () => {
        dispatch({ type: "nodes/loading", at: Date.now() });
        try {
          const nodes = await api.listNodes();
          dispatch({ type: "nodes/loaded", nodes });
          // Each node's workspaces load on their own; none waits for another.
          for (const n of nodes) {
            if (n.status === "running") void refreshWorkspaces(n.id);
          }
        } catch (e) {
          dispatch({ type: "nodes/failed", error: toSamError(e) });
        }
      }),
    [once, refreshWorkspaces],
  );

  const refreshSettings = useCallback(async () => {
    try {
      const settings = await api.getSettings();
      dispatch({ type: "settings", settings });
      return settings;
    } catch (e) {
      const err = toSamError(e);
      dispatch({ type: "notice", tone: "error", text: `Settings could not be read: ${err.message}` });
      return null;
    }
  }, []);

  /** Coalesces bursts of events into one reload per node. */
  const refreshWorkspacesSoon = useCallback(
    (nodeId: string) => {
      const timers = refreshTimers.current;
      if (timers.has(nodeId)) return;
      timers.set(
        nodeId,
        setTimeout(() => {
          timers.delete(nodeId);
          void refreshWorkspaces(nodeId);
        }, 300),
      );
    },
    [refreshWorkspaces],
  );

  const onSignal = useCallback(
    (s: UiSignal) => {
      switch (s.type) {
        case "health":
          dispatch({ type: "health", change: s.change });
          if (s.change.to !== "healthy" && s.change.from !== null) {
            dispatch({
              type: "notice",
              tone: s.change.to === "unhealthy" ? "error" : "warn",
              text: `${s.change.nodeName} is ${s.change.to}.`,
              route: { name: "node", nodeId: s.change.nodeId },
            });
          }
          break;
        case "event": {
          for (const l of listeners.current) l(s.nodeId, s.event);
          const t = s.event.type;
          if (t === "session.permission_resolved" && s.event.sessionId) {
            dispatch({ type: "permission/resolved", sessionId: s.event.sessionId });
          }
          if (t.startsWith("workspace.") && t !== "workspace.progress") refreshWorkspacesSoon(s.nodeId);
          if (t.startsWith("node.")) void refreshNodes();
          break;
        }
        case "permission": {
          for (const l of listeners.current) l(s.nodeId, s.event);
          dispatch({ type: "permission/waiting", nodeId: s.nodeId, event: s.event });
          const here = routeRef.current;
          // In the workspace already: its tab shows the prompt; no notice on top.
          if (here.name === "workspace" && here.workspaceId === s.event.workspaceId) break;
          const route: Route | undefined = s.event.workspaceId
            ? { name: "workspace", nodeId: s.nodeId, workspaceId: s.event.workspaceId }
            : undefined;
          dispatch({ type: "notice", tone: "warn", text: `An agent waits for your permission: ${s.event.message}`, route });
          break;
        }
      }
    },
    [refreshNodes, refreshWorkspacesSoon],
  );

  useEffect(() => {
    void refreshSettings();
    void refreshNodes();
    api.subscribe(onSignal).catch((e) => {
      dispatch({
        type: "notice",
        tone: "error",
        text: `Live updates are off: ${toSamError(e).message} Lists refresh every ${NODES_REFRESH_MS / 1000} s.`,
      });
    });
    const timer = setInterval(() => void refreshNodes(), NODES_REFRESH_MS);
    return () => clearInterval(timer);
  }, [refreshNodes, refreshSettings, onSignal]);

  const actions = useMemo<Actions>(
    () => ({
      navigate: (route) => dispatch({ type: "navigate", route }),
      refreshNodes,
      refreshWorkspaces,
      refreshSettings,
      notify: (tone, text, route) => dispatch({ type: "notice", tone, text, route }),
      onEvent: (l) => {
        listeners.current.add(l);
        return () => listeners.current.delete(l);
      },
    }),
    [refreshNodes, refreshWorkspaces, refreshSettings],
  );

  const store = useMemo(() => ({ state, dispatch, actions }), [state, actions]);
  return <StoreContext.Provider value={store}>{children}</StoreContext.Provider>;
}

export function useStore(): Store {
  const s = useContext(StoreContext);
  if (!s) throw new Error("useStore outside StoreProvider");
  return s;
}

/** The current time, ticking, for "last seen …" texts. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

/** The theme in force: the setting, else the OS. */
export function useDarkMode(): boolean {
  const { state } = useStore();
  const theme = state.settings?.theme ?? "system";
  const query = useMemo(
    () => (typeof window !== "undefined" && window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null),
    [],
  );
  const [osDark, setOsDark] = useState(() => query?.matches ?? false);
  useEffect(() => {
    if (!query) return;
    const h = (e: MediaQueryListEvent) => setOsDark(e.matches);
    query.addEventListener("change", h);
    return () => query.removeEventListener("change", h);
  }, [query]);
  return theme === "dark" || (theme === "system" && osDark);
}
