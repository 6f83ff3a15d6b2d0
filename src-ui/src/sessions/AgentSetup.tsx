// Setting up a built-in agent from the window: "Add key" (a password field that
// stores the key in the keychain and forgets it at once) and "Log in" (the
// agent's own login command in a terminal tab). The control plane says how
// ready each agent is (`list_agents`); these pieces only ask and show.
import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from "react";

import { api, toSamError, type AgentReadiness, type SamError } from "../api";
import type { AgentSession } from "../api/gen/AgentSession";
import { ErrorBox, InlineCode, Spinner } from "../components/ui";
import { loginUnavailableReason } from "../state/sessions";

/** What a workspace screen offers its agent pieces: a login tab, a new session tab. */
export type AgentActions = {
  /** Opens the agent's login command as a terminal tab (rejects with the error). */
  openLogin: (agent: string) => Promise<void>;
  /** Starts a session and opens its tab (rejects with the error). */
  startSession: (opts: { agent?: string; label?: string }) => Promise<void>;
};

/** The built-in agents of a workspace: loaded on mount, reloaded on demand (the last list stays meanwhile). */
export function useAgents(workspace: string) {
  const [agents, setAgents] = useState<AgentReadiness[] | null>(null);
  const [error, setError] = useState<SamError | null>(null);
  const [loading, setLoading] = useState(true);
  const live = useRef(true);
  const seq = useRef(0);
  useEffect(() => {
    live.current = true;
    return () => {
      live.current = false;
    };
  }, []);
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    setLoading(true);
    setError(null);
    try {
      const list = await api.listAgents(workspace);
      if (live.current && mine === seq.current) setAgents(list);
    } catch (e) {
      if (live.current && mine === seq.current) setError(toSamError(e));
    } finally {
      if (live.current && mine === seq.current) setLoading(false);
    }
  }, [workspace]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { agents, error, loading, reload };
}

/**
 * "Add key": a password field labelled with the variable the key is passed as.
 * The field empties as soon as the key is sent; the page never keeps it.
 */
export function AgentKeyForm({
  agent,
  keyVariable,
  onSaved,
}: {
  agent: string;
  keyVariable: string;
  onSaved: () => void | Promise<void>;
}) {
  const id = useId();
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<SamError | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    e.stopPropagation();
    const k = key.trim();
    if (!k || busy) return;
    setKey("");
    setBusy(true);
    setError(null);
    try {
      await api.setAgentKey(agent, k);
      await onSaved();
    } catch (err) {
      setError(toSamError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="agent-key-form" onSubmit={submit} data-testid="agent-key-form">
      <div className="field">
        <label className="field-label mono" htmlFor={id}>
          {keyVariable}
        </label>
        <div className="inline">
          <input
            id={id}
            type="password"
            value={key}
            onChange={(e) => setKey(e.target.value)}
            autoComplete="off"
            spellCheck={false}
            placeholder={`Paste the ${agent} API key`}
            disabled={busy}
            aria-describedby={`${id}-hint`}
          />
          <button type="submit" className="btn small primary" disabled={busy || !key.trim()}>
            Save key
          </button>
          {busy && <Spinner label="Storing it in the keychain…" />}
        </div>
        <span className="field-hint" id={`${id}-hint`}>
          Stored in your system keychain and passed to new {agent} sessions as {keyVariable}; never shown again.
        </span>
      </div>
      {error && <ErrorBox error={error} compact />}
    </form>
  );
}

/** "Log in": runs the agent's own login command in a terminal tab; disabled, with the reason, when the image lacks it. */
export function LoginButton({
  agent,
  onLogin,
  onOpened,
}: {
  agent: AgentReadiness;
  onLogin: (agent: string) => Promise<void>;
  onOpened?: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<SamError | null>(null);
  const live = useRef(true);
  useEffect(() => {
    live.current = true;
    return () => {
      live.current = false;
    };
  }, []);
  const why = loginUnavailableReason(agent);
  const command = agent.loginCommand.join(" ");
  const click = async () => {
    setBusy(true);
    setError(null);
    try {
      await onLogin(agent.name);
      onOpened?.();
    } catch (e) {
      if (live.current) setError(toSamError(e));
    } finally {
      if (live.current) setBusy(false);
    }
  };
  return (
    <div className="agent-login">
      <div className="inline">
        <button
          type="button"
          className="btn small"
          onClick={() => void click()}
          disabled={busy || why !== null}
          title={why ?? `Runs \`${command}\` in a terminal tab of this workspace.`}
        >
          Log in
        </button>
        {why ? (
          <span className="muted small" data-testid="login-unavailable">
            <InlineCode text={why} />
          </span>
        ) : (
          <span className="muted small">
            Runs <span className="mono">{command}</span> in a terminal tab; the login stays with this workspace.
          </span>
        )}
        {busy && <Spinner label="Opening a terminal…" />}
      </div>
      {error && <ErrorBox error={error} compact />}
    </div>
  );
}

/**
 * Under a session that ended in error: the next steps for its built-in agent —
 * "Add key" (then "Start a new session" of the same agent and label) and "Log in".
 * Nothing for an agent the control plane does not know as built-in.
 */
export function SessionFix({
  workspace,
  session,
  actions,
}: {
  workspace: string;
  session: Pick<AgentSession, "agent" | "label">;
  actions?: AgentActions;
}) {
  const { agents, error, loading, reload } = useAgents(workspace);
  const [adding, setAdding] = useState(false);
  const [done, setDone] = useState<null | "key" | "login">(null);
  const [starting, setStarting] = useState(false);
  const [startError, setStartError] = useState<SamError | null>(null);
  const agent = agents?.find((a) => a.name === session.agent) ?? null;

  if (!session.agent) return null;
  if (!agents) {
    return loading ? (
      <div className="pad">
        <Spinner label={`Checking how ${session.agent} is set up…`} />
      </div>
    ) : error ? (
      <div className="pad">
        <ErrorBox error={error} onRetry={() => void reload()} compact />
      </div>
    ) : null;
  }
  if (!agent) return null;
  if (agent.state === "missing") {
    return (
      <div className="agent-fix muted small" data-testid="session-fix">
        <InlineCode text={agent.summary} />
      </div>
    );
  }

  const start = async () => {
    if (!actions) return;
    setStarting(true);
    setStartError(null);
    try {
      await actions.startSession({ agent: agent.name, label: session.label || undefined });
    } catch (e) {
      setStartError(toSamError(e));
    } finally {
      setStarting(false);
    }
  };

  return (
    <div className="agent-fix" data-testid="session-fix" data-agent={agent.name}>
      <p className="small">
        <strong>
          {agent.state === "needs_setup"
            ? `${agent.name} has no API key and no login in this workspace.`
            : `If ${agent.name} asked for a key or a login:`}
        </strong>{" "}
        Add its key ({agent.keyVariable}) or log in, then start a new session.
      </p>
      <div className="actions left">
        <button type="button" className="btn small primary" onClick={() => setAdding((x) => !x)} aria-expanded={adding}>
          Add key
        </button>
        {actions && (
          <LoginButton
            agent={agent}
            onLogin={async (name) => {
              await actions.openLogin(name);
              setDone("login");
            }}
          />
        )}
      </div>
      {adding && (
        <AgentKeyForm
          agent={agent.name}
          keyVariable={agent.keyVariable}
          onSaved={() => {
            setAdding(false);
            setDone("key");
            void reload();
          }}
        />
      )}
      {done && (
        <div className="inline agent-fix-done" data-testid="session-fix-done">
          <span className="small">
            {done === "key"
              ? `The key is stored; new ${agent.name} sessions get it.`
              : "When the login in the terminal tab has finished, start a new session."}
          </span>
          {actions && (
            <button type="button" className="btn small primary" onClick={() => void start()} disabled={starting}>
              Start a new session
            </button>
          )}
          {starting && <Spinner label="Starting…" />}
        </div>
      )}
      {startError && <ErrorBox error={startError} compact />}
    </div>
  );
}
