// The workspace's agent sessions: agent, label and state (starting, running,
// waiting for you, stopped, error). Reloads when shown, when a session event of
// the workspace arrives, and every few seconds while shown.
import { useCallback, useEffect, useRef, useState } from "react";

import { api, toSamError, type SamError } from "../api";
import type { AgentSession } from "../api/gen/AgentSession";
import { Badge, Empty, ErrorBox, Spinner } from "../components/ui";
import { sessionBadge } from "../state/sessions";
import { useStore } from "../state/store";

/** How often the list refreshes while it is shown. */
export const SESSIONS_REFRESH_MS = 5000;

export function SessionsPanel({
  workspace,
  waiting,
  reloadKey,
  onOpen,
  onListed,
}: {
  workspace: string;
  /** Sessions a signal said wait for a person. */
  waiting: Set<string>;
  /** Changes when the screen started or stopped a session. */
  reloadKey: number;
  onOpen: (s: AgentSession) => void;
  /** Each list as it arrives, with when it was asked for (ms). */
  onListed?: (sessions: AgentSession[], at: number) => void;
}) {
  const { actions } = useStore();
  const [sessions, setSessions] = useState<AgentSession[] | null>(null);
  const [error, setError] = useState<SamError | null>(null);
  const live = useRef(true);
  const onListedRef = useRef(onListed);
  onListedRef.current = onListed;

  const load = useCallback(async () => {
    const at = Date.now();
    try {
      const list = await api.listSessions(workspace);
      if (!live.current) return;
      setSessions([...list].sort((a, b) => b.createdAt.localeCompare(a.createdAt)));
      setError(null);
      onListedRef.current?.(list, at);
    } catch (e) {
      if (live.current) setError(toSamError(e));
    }
  }, [workspace]);

  useEffect(() => {
    live.current = true;
    setSessions(null);
    void load();
    const t = setInterval(() => void load(), SESSIONS_REFRESH_MS);
    // A session of this workspace started, stopped or asks: reload (bursts coalesced).
    let soon: ReturnType<typeof setTimeout> | undefined;
    const off = actions.onEvent((_, e) => {
      if (e.workspaceId !== workspace || !e.type.startsWith("session.") || soon) return;
      soon = setTimeout(() => {
        soon = undefined;
        void load();
      }, 200);
    });
    return () => {
      live.current = false;
      clearInterval(t);
      clearTimeout(soon);
      off();
    };
  }, [workspace, load, actions]);

  useEffect(() => {
    if (reloadKey > 0) void load();
  }, [reloadKey, load]);

  return (
    <div className="panel-body" data-testid="sessions">
      {error && <ErrorBox error={error} onRetry={() => void load()} compact />}
      {!sessions && !error && <Spinner label="Listing agent sessions…" />}
      {sessions && sessions.length === 0 && (
        <Empty title="No agent sessions">Start one with “+ Agent”; it keeps running on the node when you close this window.</Empty>
      )}
      {sessions && sessions.length > 0 && (
        <ul className="sessions-list">
          {sessions.map((s) => {
            const b = sessionBadge(s, waiting.has(s.id));
            return (
              <li key={s.id}>
                <button
                  type="button"
                  className="session-row"
                  data-session={s.id}
                  data-state={b.label}
                  onClick={() => onOpen(s)}
                  title={`Open ${s.label || s.agent || "this session"}`}
                >
                  <span className="session-label">{s.label || <span className="muted">No label</span>}</span>
                  <span className="session-meta">
                    <span className="mono small muted">{s.agent ?? "command"}</span>
                    <Badge tone={b.tone} label={b.label} title={b.title} />
                  </span>
                  {s.status === "error" && s.error && <span className="session-error small">{s.error}</span>}
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
