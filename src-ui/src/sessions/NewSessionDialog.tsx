// New agent session: which built-in agents the workspace's image has and which
// are ready (a key stored, or logged in), inline setup for one that is not
// ("Add key", "Log in"), a label, and start.
import { useEffect, useId, useState, type FormEvent } from "react";

import { api, toSamError, type AgentReadiness, type SamError } from "../api";
import type { AgentSession } from "../api/gen/AgentSession";
import { Dialog, ErrorBox, Field, InlineCode, Spinner } from "../components/ui";
import { agentStatusText, defaultAgent } from "../state/sessions";
import { AgentKeyForm, LoginButton, useAgents, type AgentActions } from "./AgentSetup";

/** The agent picked last, for this window's life. */
let lastAgent: string | null = null;

/** For tests: forget the agent picked last. */
export function forgetLastAgent() {
  lastAgent = null;
}

/** The node's default agent, offered when the workspace's agents cannot be listed. */
const NODE_DEFAULT = "";

const statusTone: Record<AgentReadiness["state"], string> = { ready: "ok", needs_setup: "warn", missing: "idle" };

export function NewSessionDialog({
  ws,
  onClose,
  onCreated,
  onLogin,
}: {
  ws: { id: string; displayName: string };
  onClose: () => void;
  onCreated: (s: AgentSession) => void;
  onLogin: AgentActions["openLogin"];
}) {
  const { agents, error: listError, loading, reload } = useAgents(ws.id);
  const [picked, setPicked] = useState<string | null>(null);
  const [label, setLabel] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<SamError | null>(null);
  const name = useId();

  // The first list picks the agent to start on (a later reload keeps the choice);
  // without a list, the node's default agent.
  useEffect(() => {
    if (agents && (picked === null || picked === NODE_DEFAULT)) setPicked(defaultAgent(agents, lastAgent) ?? NODE_DEFAULT);
    else if (!agents && listError && picked === null) setPicked(NODE_DEFAULT);
  }, [agents, listError, picked]);

  const current = agents?.find((a) => a.name === picked) ?? null;
  const canStart = !busy && picked !== null && (picked === NODE_DEFAULT || (current !== null && current.state !== "missing"));

  const start = async (e?: FormEvent) => {
    e?.preventDefault();
    if (!canStart || picked === null) return;
    setBusy(true);
    setError(null);
    try {
      const s = await api.newSession(ws.id, { agent: picked || undefined, label: label.trim() || undefined });
      if (picked) lastAgent = picked;
      onCreated(s);
    } catch (err) {
      setError(toSamError(err));
      setBusy(false);
    }
  };

  // The node's default agent, when the built-in ones cannot be listed or the image has none of them.
  const offerDefault = agents ? agents.every((a) => a.state === "missing") : !!listError;

  return (
    <Dialog
      title={`New agent session in ${ws.displayName}`}
      onClose={onClose}
      busy={busy}
      testId="new-session"
      wide
      footer={
        <>
          <button type="button" className="btn" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button type="button" className="btn primary" onClick={() => void start()} disabled={!canStart}>
            Start session
          </button>
        </>
      }
    >
      <fieldset className="agent-picker" disabled={busy}>
        <legend className="field-label">Agent</legend>
        {loading && !agents && <Spinner label="Looking for agents in the workspace…" />}
        {listError && (
          <>
            <ErrorBox error={listError} onRetry={() => void reload()} compact />
            {offerDefault && !agents && <p className="muted small">You can still start the node's default agent.</p>}
          </>
        )}
        {(agents || offerDefault) && (
          <div className="agent-options" role="radiogroup" aria-label="Agent">
            {agents?.map((a) => (
              <label
                key={a.name}
                className={`agent-option${a.state === "missing" ? " disabled" : ""}${picked === a.name ? " picked" : ""}`}
                data-agent={a.name}
                data-state={a.state}
                title={a.summary}
              >
                <input
                  type="radio"
                  name={name}
                  value={a.name}
                  checked={picked === a.name}
                  disabled={a.state === "missing"}
                  onChange={() => setPicked(a.name)}
                />
                <span className="agent-name">{a.name}</span>
                <span className={`agent-status tone-${statusTone[a.state]}`}>
                  <span className="dot" aria-hidden="true" />
                  {agentStatusText(a)}
                </span>
                {a.state === "missing" && (
                  <span className="agent-hint muted small">
                    <InlineCode text={a.summary} />
                  </span>
                )}
              </label>
            ))}
            {offerDefault && (
              <label className={`agent-option${picked === NODE_DEFAULT ? " picked" : ""}`} data-agent="">
                <input type="radio" name={name} value="" checked={picked === NODE_DEFAULT} onChange={() => setPicked(NODE_DEFAULT)} />
                <span className="agent-name">The node's default agent</span>
              </label>
            )}
          </div>
        )}
      </fieldset>

      {current?.state === "needs_setup" && (
        <div className="agent-setup" data-testid="agent-setup">
          <p className="small">
            <InlineCode text={current.summary} /> Set it up once; new sessions of {current.name} then start without asking.
          </p>
          <AgentKeyForm agent={current.name} keyVariable={current.keyVariable} onSaved={reload} />
          <div className="or muted small">or</div>
          <LoginButton agent={current} onLogin={onLogin} onOpened={onClose} />
        </div>
      )}

      <form className="form" onSubmit={(e) => void start(e)}>
        <Field label="Label (optional)">
          <input value={label} onChange={(e) => setLabel(e.target.value)} placeholder="Fix the login bug" disabled={busy} />
        </Field>
      </form>
      {current?.state === "needs_setup" && (
        <p className="muted small" data-testid="needs-setup-warning">
          Without a key or a login, {current.name} will most likely stop at once and ask for one.
        </p>
      )}
      {busy && <Spinner label="Starting the agent…" />}
      {error && <ErrorBox error={error} compact />}
    </Dialog>
  );
}
