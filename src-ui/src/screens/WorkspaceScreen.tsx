// One workspace: tabs of terminals, agent sessions and files; a side panel with
// the file tree, agent sessions, forwarded ports and events; rename / stop /
// restart / delete with confirmations.
import { useCallback, useEffect, useMemo, useReducer, useRef, useState, type FormEvent } from "react";

import { api, Codes, toSamError, type SamError } from "../api";
import type { AgentSession } from "../api/gen/AgentSession";
import type { WorkspaceView } from "../api/gen/WorkspaceView";
import { Badge, ConfirmationBody, ConfirmDialog, Dialog, Empty, ErrorBox, Field, ShortcutsHelp, Spinner } from "../components/ui";
import { FileEditor } from "../editor/FileEditor";
import type { AgentActions } from "../sessions/AgentSetup";
import { NewSessionDialog } from "../sessions/NewSessionDialog";
import { SessionView } from "../sessions/SessionView";
import { TerminalView } from "../terminal/TerminalView";
import { findNode, findWorkspace, waitingIn } from "../state/app";
import { workspaceConfirmation, type Confirmation, type WorkspaceAction } from "../state/confirm";
import { workspaceTone } from "../state/health";
import { useDarkMode, useStore } from "../state/store";
import {
  emptyTabs,
  fileTab,
  newTerminalTab,
  sessionTab,
  shortcutOf,
  tabsReducer,
  type Tab,
  type TabsState,
} from "../state/tabs";
import { EventsList } from "./EventsList";
import { FilesPanel } from "./FilesPanel";
import { PortsPanel } from "./PortsPanel";
import { SessionsPanel } from "./SessionsPanel";

/** Tab order per workspace for this window's life (what runs comes from the node). */
const rememberedTabs = new Map<string, TabsState>();

type Panel = "files" | "sessions" | "ports" | "events";

const panelNames: Record<Panel, string> = { files: "Files", sessions: "Sessions", ports: "Ports", events: "Events" };

export function WorkspaceScreen({ nodeId, workspaceId }: { nodeId: string; workspaceId: string }) {
  const { state } = useStore();
  const ws = findWorkspace(state, nodeId, workspaceId);
  const node = findNode(state, nodeId);
  const loading = state.workspaces[nodeId]?.status !== "ready" && state.workspaces[nodeId]?.status !== "error";
  if (!ws) {
    return loading ? (
      <Spinner label="Loading the workspace…" />
    ) : (
      <Empty title="This workspace is not there any more">It may have been deleted from another window.</Empty>
    );
  }
  return <Workspace ws={ws} nodeName={node?.name ?? nodeId} />;
}

function Workspace({ ws, nodeName }: { ws: WorkspaceView; nodeName: string }) {
  const { state, actions, dispatch } = useStore();
  const dark = useDarkMode();
  const [tabs, dispatchTabs] = useReducer(tabsReducer, rememberedTabs.get(ws.id) ?? emptyTabs);
  const tabsRef = useRef(tabs);
  tabsRef.current = tabs;
  useEffect(() => {
    rememberedTabs.set(ws.id, tabs);
  }, [ws.id, tabs]);

  const running = ws.status === "running";
  const [syncState, setSyncState] = useState<"loading" | "ready" | "error">("loading");
  const [syncError, setSyncError] = useState<SamError | null>(null);
  const [panel, setPanel] = useState<Panel>("files");
  const [dirty, setDirty] = useState<Record<string, boolean>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [tabError, setTabError] = useState<SamError | null>(null);
  /** Bumped when this screen starts or stops a session, so the sessions list reloads. */
  const [sessionsKey, setSessionsKey] = useState(0);
  const [dialog, setDialog] = useState<
    | null
    | { kind: "rename" }
    | { kind: "new-session" }
    | { kind: "lifecycle"; action: WorkspaceAction; c: Confirmation | null; error: SamError | null }
    | { kind: "close"; tab: Tab; c: Confirmation }
  >(null);

  // What lives on the node comes back as tabs: terminals and sessions outlive the window.
  const sync = useCallback(async () => {
    setSyncState("loading");
    setSyncError(null);
    try {
      const at = Date.now();
      const [terminals, sessions] = await Promise.all([api.listTerminals(ws.id), api.listSessions(ws.id)]);
      dispatchTabs({ type: "sync", terminals, sessions });
      dispatch({ type: "sessions/listed", nodeId: ws.node, workspaceId: ws.id, sessions, at });
      setSyncState("ready");
    } catch (e) {
      setSyncState("error");
      setSyncError(toSamError(e));
    }
  }, [ws.id, ws.node, dispatch]);

  useEffect(() => {
    if (running) void sync();
  }, [running, sync]);

  const openSessionTab = useCallback((s: AgentSession) => {
    dispatchTabs({ type: "open", tab: sessionTab(s) });
    setSessionsKey((k) => k + 1);
  }, []);

  // What agent pieces (the new-session dialog, a session that ended in error) may ask of this screen.
  const agentActions = useMemo<AgentActions>(
    () => ({
      openLogin: async (agent) => {
        const t = await api.openLoginTerminal(ws.id, agent, 120, 32);
        dispatchTabs({ type: "open", tab: { ...newTerminalTab(tabsRef.current, t), title: `${agent} login` } });
      },
      startSession: async (opts) => {
        openSessionTab(await api.newSession(ws.id, opts));
      },
    }),
    [ws.id, openSessionTab],
  );

  const newTerminal = useCallback(async () => {
    if (!running) return;
    setBusy("terminal");
    setTabError(null);
    try {
      const t = await api.openTerminal(ws.id, 120, 32);
      dispatchTabs({ type: "open", tab: newTerminalTab(tabsRef.current, t) });
    } catch (e) {
      setTabError(toSamError(e));
    } finally {
      setBusy(null);
    }
  }, [running, ws.id]);

  const closeNow = useCallback(
    async (tab: Tab) => {
      dispatchTabs({ type: "close", key: tab.key });
      setTabError(null);
      try {
        if (tab.kind === "terminal") await api.killTerminal(ws.id, tab.terminalId);
        if (tab.kind === "session") {
          await api.stopSession(ws.id, tab.sessionId);
          setSessionsKey((k) => k + 1);
        }
      } catch (e) {
        const err = toSamError(e);
        // Already gone (an exited shell, an ended session): closing is all that was left.
        if (err.code !== Codes.notFound) setTabError(err);
      }
      if (tab.kind === "file") setDirty((d) => ({ ...d, [tab.path]: false }));
    },
    [ws.id],
  );

  const requestClose = useCallback(
    (tab: Tab) => {
      if (tab.kind === "session") {
        setDialog({
          kind: "close",
          tab,
          c: {
            title: `Stop agent session “${tab.title}”?`,
            summary: "Closing the tab stops the agent. Its conversation stays in the node's history.",
            items: [],
            consequence: "A turn in progress is cancelled.",
            confirmLabel: "Stop session",
            danger: false,
          },
        });
      } else if (tab.kind === "file" && dirty[tab.path]) {
        setDialog({
          kind: "close",
          tab,
          c: {
            title: `Discard changes to ${tab.title}?`,
            summary: `${tab.path} has changes that are not saved.`,
            items: [],
            consequence: "Closing the tab throws them away.",
            confirmLabel: "Discard changes",
            danger: true,
          },
        });
      } else {
        void closeNow(tab);
      }
    },
    [closeNow, dirty],
  );

  // Tab shortcuts, caught before the terminal or the editor sees them.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const s = shortcutOf(e);
      if (!s || dialog) return;
      e.preventDefault();
      e.stopPropagation();
      if (s === "new-terminal") void newTerminal();
      else if (s === "next-tab") dispatchTabs({ type: "next" });
      else if (s === "previous-tab") dispatchTabs({ type: "previous" });
      else if (s === "close-tab") {
        const t = tabsRef.current.tabs.find((x) => x.key === tabsRef.current.active);
        if (t) requestClose(t);
      }
    };
    window.addEventListener("keydown", onKey, true);
    return () => window.removeEventListener("keydown", onKey, true);
  }, [newTerminal, requestClose, dialog]);

  const openLifecycle = async (action: WorkspaceAction) => {
    setDialog({ kind: "lifecycle", action, c: null, error: null });
    try {
      const [sessions, terminals] = running
        ? await Promise.all([api.listSessions(ws.id), api.listTerminals(ws.id)])
        : [[], []];
      const c = workspaceConfirmation(ws, action, sessions, terminals.filter((t) => !t.exited).length);
      setDialog({ kind: "lifecycle", action, c, error: null });
    } catch (e) {
      // Still let the person go ahead, saying that the list is unknown.
      const c = workspaceConfirmation(ws, action, [], 0);
      c.summary = "SAM could not list what runs in it; every terminal and agent session in it ends.";
      setDialog({ kind: "lifecycle", action, c, error: toSamError(e) });
    }
  };

  const [lifecycleBusy, setLifecycleBusy] = useState(false);
  const runLifecycle = async (action: WorkspaceAction) => {
    setLifecycleBusy(true);
    try {
      if (action === "delete") {
        await api.removeWorkspace(ws.id);
        rememberedTabs.delete(ws.id);
        dispatch({ type: "workspace/removed", nodeId: ws.node, workspaceId: ws.id });
        actions.notify("info", `Deleted workspace ${ws.displayName}.`);
      } else {
        const next = action === "stop" ? await api.stopWorkspace(ws.id) : await api.restartWorkspace(ws.id);
        dispatch({ type: "workspace/upserted", workspace: next });
        if (action === "stop") {
          // Its terminals and sessions ended with it.
          dispatchTabs({ type: "sync", terminals: [], sessions: [] });
        }
      }
      setDialog(null);
      void actions.refreshNodes();
    } catch (e) {
      setDialog((d) => (d && d.kind === "lifecycle" ? { ...d, error: toSamError(e) } : d));
    } finally {
      setLifecycleBusy(false);
    }
  };

  const waitingSessions = new Set(waitingIn(state, ws.id).map((w) => w.sessionId));

  return (
    <section className="workspace" aria-label={`Workspace ${ws.displayName}`}>
      <header className="ws-head">
        <div className="ws-title">
          <h1>{ws.displayName}</h1>
          <Badge tone={workspaceTone(ws.status)} label={ws.status} title={ws.error ?? undefined} />
          <span className="muted small">
            on {nodeName} · <span className="mono">{ws.repository ? `${ws.repository}${ws.branch ? ` @ ${ws.branch}` : ""}` : ws.image}</span>
          </span>
        </div>
        <div className="actions">
          <button type="button" className="btn small" onClick={() => setDialog({ kind: "rename" })}>
            Rename
          </button>
          {ws.status === "stopped" || ws.status === "error" ? (
            <button type="button" className="btn small" onClick={() => void openLifecycle("restart")}>
              Start
            </button>
          ) : (
            <>
              <button type="button" className="btn small" onClick={() => void openLifecycle("stop")} disabled={!running}>
                Stop
              </button>
              <button type="button" className="btn small" onClick={() => void openLifecycle("restart")} disabled={!running}>
                Restart
              </button>
            </>
          )}
          <button type="button" className="btn small danger-outline" onClick={() => void openLifecycle("delete")}>
            Delete
          </button>
        </div>
      </header>

      <div className="ws-body">
        <div className="ws-main">
          <div className="tabstrip">
            <div className="tabbar" role="tablist" aria-label="Terminals, agent sessions and files">
              {tabs.tabs.map((t) => (
                <div key={t.key} className={`tab${t.key === tabs.active ? " active" : ""}`} data-tab={t.key}>
                  <button
                    type="button"
                    role="tab"
                    aria-selected={t.key === tabs.active}
                    className="tab-label"
                    onClick={() => dispatchTabs({ type: "activate", key: t.key })}
                    title={t.kind === "file" ? t.path : t.title}
                  >
                    <span className="tab-icon" aria-hidden="true">
                      {t.kind === "terminal" ? ">_" : t.kind === "session" ? "✦" : "≡"}
                    </span>
                    {t.title}
                    {t.kind === "file" && dirty[t.path] && <span className="dirty-dot" title="Unsaved changes" />}
                    {t.kind === "session" && waitingSessions.has(t.sessionId) && (
                      <span className="waiting wide" title="The agent waits for your permission">
                        waiting for you
                      </span>
                    )}
                  </button>
                  <button type="button" className="tab-x" aria-label={`Close ${t.title}`} title="Close (Ctrl+Shift+W)" onClick={() => requestClose(t)}>
                    ×
                  </button>
                </div>
              ))}
              <button
                type="button"
                className="tab-add"
                onClick={() => void newTerminal()}
                disabled={!running || busy === "terminal"}
                title="New terminal (Ctrl+Shift+T)"
              >
                + Terminal
              </button>
              <button type="button" className="tab-add" onClick={() => setDialog({ kind: "new-session" })} disabled={!running} title="New agent session">
                + Agent
              </button>
            </div>
            <ShortcutsHelp />
          </div>
          {tabError && <ErrorBox error={tabError} compact />}
          <div className="tab-content">
            {!running ? (
              <NotRunning ws={ws} onStart={() => void openLifecycle("restart")} />
            ) : syncState === "error" && syncError ? (
              <div className="pad">
                <ErrorBox error={syncError} onRetry={() => void sync()} />
              </div>
            ) : tabs.tabs.length === 0 ? (
              syncState === "loading" ? (
                <Spinner label="Looking for terminals and agent sessions…" />
              ) : (
                <Empty title="Nothing open">
                  Open a terminal (Ctrl+Shift+T) or start an agent session. Both keep running on the node when you
                  close this window.
                  <div className="actions left">
                    <button type="button" className="btn primary" onClick={() => void newTerminal()}>
                      New terminal
                    </button>
                    <button type="button" className="btn" onClick={() => setDialog({ kind: "new-session" })}>
                      New agent session
                    </button>
                  </div>
                </Empty>
              )
            ) : (
              tabs.tabs.map((t) => (
                <div key={t.key} className={`tab-page${t.key === tabs.active ? "" : " hidden"}`} role="tabpanel">
                  {t.kind === "terminal" ? (
                    <TerminalView workspace={ws.id} terminalId={t.terminalId} active={t.key === tabs.active} dark={dark} />
                  ) : t.kind === "session" ? (
                    <SessionView workspace={ws.id} session={t.sessionId} active={t.key === tabs.active} actions={agentActions} />
                  ) : (
                    <FileEditor
                      workspace={ws.id}
                      path={t.path}
                      active={t.key === tabs.active}
                      dark={dark}
                      onDirty={(d) => setDirty((x) => (x[t.path] === d ? x : { ...x, [t.path]: d }))}
                    />
                  )}
                </div>
              ))
            )}
          </div>
        </div>

        <aside className="ws-side" aria-label="Files, sessions, ports and events">
          <div className="segmented small" role="tablist">
            {(["files", "sessions", "ports", "events"] as const).map((p) => (
              <button key={p} type="button" role="tab" aria-selected={panel === p} className={panel === p ? "active" : ""} onClick={() => setPanel(p)}>
                {panelNames[p]}
              </button>
            ))}
          </div>
          {panel === "files" &&
            (running ? (
              <FilesPanel workspace={ws.id} onOpen={(path) => dispatchTabs({ type: "open", tab: fileTab(path) })} />
            ) : (
              <p className="muted pad">Start the workspace to browse its files.</p>
            ))}
          {panel === "sessions" &&
            (running ? (
              <SessionsPanel
                workspace={ws.id}
                waiting={waitingSessions}
                reloadKey={sessionsKey}
                onOpen={(s) => dispatchTabs({ type: "open", tab: sessionTab(s) })}
                onListed={(sessions, at) => dispatch({ type: "sessions/listed", nodeId: ws.node, workspaceId: ws.id, sessions, at })}
              />
            ) : (
              <p className="muted pad">Start the workspace to see its agent sessions.</p>
            ))}
          {panel === "ports" &&
            (running ? <PortsPanel workspace={ws.id} /> : <p className="muted pad">Start the workspace to see its ports.</p>)}
          {panel === "events" && (
            <div className="panel-body">
              <EventsList
                reloadKey={ws.id}
                load={() => api.workspaceEvents(ws.id, 100)}
                matches={(_, e) => e.workspaceId === ws.id}
              />
            </div>
          )}
        </aside>
      </div>

      {dialog?.kind === "rename" && <RenameDialog ws={ws} onClose={() => setDialog(null)} />}
      {dialog?.kind === "new-session" && (
        <NewSessionDialog
          ws={ws}
          onClose={() => setDialog(null)}
          onCreated={(s) => {
            openSessionTab(s);
            setDialog(null);
          }}
          onLogin={agentActions.openLogin}
        />
      )}
      {dialog?.kind === "close" && (
        <ConfirmDialog
          c={dialog.c}
          onCancel={() => setDialog(null)}
          onConfirm={() => {
            const tab = dialog.tab;
            setDialog(null);
            void closeNow(tab);
          }}
        />
      )}
      {dialog?.kind === "lifecycle" &&
        (dialog.c ? (
          <Dialog
            title={ws.status === "stopped" && dialog.action === "restart" ? `Start workspace ${ws.displayName}?` : dialog.c.title}
            onClose={() => setDialog(null)}
            busy={lifecycleBusy}
            testId="workspace-confirm"
            footer={
              <>
                <button type="button" className="btn" onClick={() => setDialog(null)} disabled={lifecycleBusy}>
                  Cancel
                </button>
                <button
                  type="button"
                  className={`btn ${dialog.c.danger ? "danger" : "primary"}`}
                  onClick={() => void runLifecycle(dialog.action)}
                  disabled={lifecycleBusy}
                >
                  {ws.status === "stopped" && dialog.action === "restart" ? "Start workspace" : dialog.c.confirmLabel}
                </button>
              </>
            }
          >
            {ws.status === "stopped" && dialog.action === "restart" ? (
              <p>The container starts again with its files as they were.</p>
            ) : (
              <ConfirmationBody c={dialog.c} />
            )}
            {lifecycleBusy && <Spinner label="Working…" />}
            {dialog.error && <ErrorBox error={dialog.error} compact />}
          </Dialog>
        ) : (
          <Dialog title="One moment" onClose={() => setDialog(null)}>
            <Spinner label="Asking the node what runs in this workspace…" />
          </Dialog>
        ))}
    </section>
  );
}

function NotRunning({ ws, onStart }: { ws: WorkspaceView; onStart: () => void }) {
  switch (ws.status) {
    case "creating":
      return (
        <div className="pad">
          <Spinner label="The workspace is being created; its events show each step." />
        </div>
      );
    case "stopping":
    case "restarting":
    case "deleting":
      return (
        <div className="pad">
          <Spinner label={`The workspace is ${ws.status}…`} />
        </div>
      );
    case "error":
      return (
        <div className="pad">
          <ErrorBox
            error={{
              code: "workspace_error",
              message: ws.error ?? "The workspace failed.",
              hint: "Look at its events for the failing step, then start it again or delete it.",
            }}
          />
          <button type="button" className="btn primary" onClick={onStart}>
            Start again
          </button>
        </div>
      );
    default:
      return (
        <Empty title="This workspace is stopped">
          Its files are kept.{" "}
          <button type="button" className="btn primary" onClick={onStart}>
            Start it
          </button>
        </Empty>
      );
  }
}

function RenameDialog({ ws, onClose }: { ws: WorkspaceView; onClose: () => void }) {
  const { dispatch } = useStore();
  const [name, setName] = useState(ws.displayName);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<SamError | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim() || name.trim() === ws.displayName) return onClose();
    setBusy(true);
    setError(null);
    try {
      dispatch({ type: "workspace/upserted", workspace: await api.renameWorkspace(ws.id, name.trim()) });
      onClose();
    } catch (err) {
      setError(toSamError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Rename ${ws.displayName}`} onClose={onClose} busy={busy}>
      <form className="form" onSubmit={submit}>
        <Field label="Name">
          <input value={name} onChange={(e) => setName(e.target.value)} disabled={busy} />
        </Field>
        {error && <ErrorBox error={error} compact />}
        <div className="actions">
          <button type="button" className="btn" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button type="submit" className="btn primary" disabled={busy || !name.trim()}>
            Rename
          </button>
        </div>
      </form>
    </Dialog>
  );
}
