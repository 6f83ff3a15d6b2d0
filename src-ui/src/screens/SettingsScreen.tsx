// Settings: theme, the Hetzner token and the agents' API keys (kept in the
// keychain, never shown back), defaults and limits.
import { useEffect, useId, useState, type FormEvent } from "react";

import { api, toSamError, type SamError, type SettingKey, type Settings, type Theme } from "../api";
import { ErrorBox, Field, Spinner } from "../components/ui";
import { useStore } from "../state/store";

/** The control plane's own checks, so a person hears about a typo before saving. */
export function settingProblem(key: SettingKey, value: string): string | null {
  const number = (min: number, max: number) => {
    const n = Number(value);
    return /^\d+$/.test(value.trim()) && n >= min && n <= max ? null : `Use a whole number from ${min} to ${max}.`;
  };
  switch (key) {
    case "stale-seconds":
      return number(5, 3600);
    case "max-nodes":
    case "max-workspaces":
    case "max-sessions":
      return number(1, 1000);
    case "hcloud-endpoint":
      try {
        const u = new URL(value);
        return u.protocol === "http:" || u.protocol === "https:" ? null : "Use an http(s) URL.";
      } catch {
        return "Use an http(s) URL.";
      }
    case "theme":
      return ["system", "light", "dark"].includes(value) ? null : "Pick system, light or dark.";
    case "default-image":
      return value && !/\s/.test(value) ? null : "Use an image reference such as ubuntu:24.04.";
    case "auto-local":
      return value === "true" || value === "false" ? null : "Use true or false.";
  }
}

export function settingValue(s: Settings, key: SettingKey): string {
  switch (key) {
    case "stale-seconds":
      return String(s.staleSeconds);
    case "max-nodes":
      return String(s.maxNodes);
    case "max-workspaces":
      return String(s.maxWorkspaces);
    case "max-sessions":
      return String(s.maxSessions);
    case "hcloud-endpoint":
      return s.hcloudEndpoint;
    case "theme":
      return s.theme;
    case "default-image":
      return s.defaultImage;
    case "auto-local":
      return String(s.autoLocal);
  }
}

export function SettingsScreen() {
  const { state, actions } = useStore();
  const s = state.settings;
  if (!s) {
    return (
      <section className="screen">
        <h1>Settings</h1>
        <Spinner label="Loading settings…" />
        <button type="button" className="btn small" onClick={() => void actions.refreshSettings()}>
          Try again
        </button>
      </section>
    );
  }
  return (
    <section className="screen settings" aria-labelledby="settings-title">
      <header className="screen-head">
        <h1 id="settings-title">Settings</h1>
      </header>

      <h2 className="section-title">Appearance</h2>
      <ThemeRow theme={s.theme} />

      <h2 className="section-title">Hetzner Cloud</h2>
      <TokenRow settings={s} />
      <SettingRow settings={s} k="hcloud-endpoint" label="API endpoint" hint="Change only for a test double of the Hetzner API." />

      <h2 className="section-title">Agent keys</h2>
      <p className="muted small setting-note">
        API keys for the built-in agents, kept in {s.secretStore}. A new session of the agent gets its key; an agent
        logged in inside a workspace needs none.
      </p>
      {AGENT_KEYS.map((a) => (
        <AgentKeyRow key={a.name} agent={a.name} variable={a.variable} stored={s.agentKeys?.includes(a.name) ?? false} />
      ))}

      <h2 className="section-title">Defaults</h2>
      <SettingRow settings={s} k="default-image" label="Default workspace image" hint="Used when a new workspace names no image and its repository has no devcontainer.json." />

      <h2 className="section-title">Limits</h2>
      <SettingRow settings={s} k="max-nodes" label="Max nodes" numeric />
      <SettingRow settings={s} k="max-workspaces" label="Max workspaces per node" numeric hint="Applied to each node when it is next started or added." />
      <SettingRow settings={s} k="max-sessions" label="Max agent sessions per workspace" numeric />
      <SettingRow settings={s} k="stale-seconds" label="Heartbeat stale after (seconds)" numeric hint="A node without a heartbeat for this long is stale; for three times as long, unhealthy." />

      <h2 className="section-title">Where things are</h2>
      <dl className="facts">
        <dt>State folder</dt>
        <dd className="mono small">{s.stateDir}</dd>
        <dt>Secrets</dt>
        <dd>{s.secretStore}</dd>
      </dl>
    </section>
  );
}

function useSaver() {
  const { actions } = useStore();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<SamError | null>(null);
  const [saved, setSaved] = useState(false);
  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      await fn();
      await actions.refreshSettings();
      setSaved(true);
      return true;
    } catch (e) {
      setError(toSamError(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, saved, run, setSaved };
}

function ThemeRow({ theme }: { theme: Theme }) {
  const saver = useSaver();
  return (
    <div className="setting-row">
      <Field label="Theme" hint="System follows your operating system's light or dark mode.">
        <select
          value={theme}
          disabled={saver.busy}
          onChange={(e) => void saver.run(() => api.setSetting("theme", e.target.value))}
        >
          <option value="system">System</option>
          <option value="light">Light</option>
          <option value="dark">Dark</option>
        </select>
      </Field>
      {saver.error && <ErrorBox error={saver.error} compact />}
    </div>
  );
}

function SettingRow({
  settings,
  k,
  label,
  hint,
  numeric,
}: {
  settings: Settings;
  k: SettingKey;
  label: string;
  hint?: string;
  numeric?: boolean;
}) {
  const current = settingValue(settings, k);
  const [value, setValue] = useState(current);
  const saver = useSaver();
  useEffect(() => setValue(current), [current]);
  const problem = value === current ? null : settingProblem(k, value.trim());
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (problem || value.trim() === current) return;
    void saver.run(() => api.setSetting(k, value.trim()));
  };
  const id = useId();
  return (
    <form className="setting-row" onSubmit={submit} data-setting={k}>
      <div className="field">
        <label className="field-label" htmlFor={id}>
          {label}
        </label>
        <div className="inline">
          <input
            id={id}
            value={value}
            onChange={(e) => {
              setValue(e.target.value);
              saver.setSaved(false);
            }}
            inputMode={numeric ? "numeric" : undefined}
            className={numeric ? "narrow" : undefined}
            aria-invalid={!!problem}
            aria-describedby={`${id}-hint`}
            disabled={saver.busy}
            spellCheck={false}
          />
          <button type="submit" className="btn small" disabled={saver.busy || !!problem || value.trim() === current}>
            Save
          </button>
          {saver.saved && <span className="muted small">Saved</span>}
        </div>
        {(problem ?? hint) && (
          <span className="field-hint" id={`${id}-hint`}>
            {problem ?? hint}
          </span>
        )}
      </div>
      {saver.error && <ErrorBox error={saver.error} compact />}
    </form>
  );
}

function TokenRow({ settings }: { settings: Settings }) {
  const id = useId();
  const [token, setToken] = useState("");
  const saver = useSaver();
  const [cleared, setCleared] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    // The field empties whatever happens: the token is not kept in the page.
    setToken("");
    setCleared(false);
    await saver.run(() => api.setHetznerToken(t));
  };
  return (
    <form className="setting-row" onSubmit={submit} data-testid="token-row">
      <p className="token-status" data-testid="token-status" id={`${id}-status`}>
        {settings.hetznerTokenSet
          ? `A token is stored (${settings.secretStore}). It is never shown; enter a new one to replace it.`
          : "No token stored. Add one to create servers at Hetzner Cloud."}
      </p>
      <div className="field">
        <label className="field-label" htmlFor={id}>
          {settings.hetznerTokenSet ? "Replace token" : "API token"}
        </label>
        <div className="inline">
          <input
            id={id}
            type="password"
            value={token}
            onChange={(e) => {
              setToken(e.target.value);
              saver.setSaved(false);
            }}
            autoComplete="off"
            placeholder={settings.hetznerTokenSet ? "••••••••  (stored)" : "Paste a read & write token"}
            disabled={saver.busy}
            aria-label="Hetzner API token"
            aria-describedby={`${id}-status`}
          />
          <button type="submit" className="btn small primary" disabled={saver.busy || !token.trim()}>
            Save token
          </button>
          {settings.hetznerTokenSet && (
            <button
              type="button"
              className="btn small danger-outline"
              disabled={saver.busy}
              onClick={async () => {
                if (await saver.run(() => api.clearHetznerToken())) setCleared(true);
              }}
            >
              Remove token
            </button>
          )}
          {saver.saved && <span className="muted small">{cleared ? "Removed" : "Saved to the keychain"}</span>}
        </div>
      </div>
      {saver.error && <ErrorBox error={saver.error} compact />}
    </form>
  );
}

/** The built-in agents and the variable each one's key is passed as (Settings.agentKeys names the stored ones). */
export const AGENT_KEYS = [
  { name: "claude", variable: "ANTHROPIC_API_KEY" },
  { name: "codex", variable: "CODEX_API_KEY" },
  { name: "gemini", variable: "GEMINI_API_KEY" },
] as const;

function AgentKeyRow({ agent, variable, stored }: { agent: string; variable: string; stored: boolean }) {
  const id = useId();
  const [key, setKey] = useState("");
  const [confirming, setConfirming] = useState(false);
  const [did, setDid] = useState<"saved" | "removed" | null>(null);
  const saver = useSaver();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) return;
    // The field empties whatever happens: the key is not kept in the page.
    setKey("");
    if (await saver.run(() => api.setAgentKey(agent, k))) setDid("saved");
  };
  const remove = async () => {
    setConfirming(false);
    if (await saver.run(() => api.clearAgentKey(agent))) setDid("removed");
  };
  return (
    <form className="setting-row agent-key-row" onSubmit={submit} data-agent-key={agent}>
      <div className="field">
        <label className="field-label" htmlFor={id}>
          {agent}
        </label>
        {stored ? (
          <div className="inline">
            <span className="key-stored">
              <span className="badge tone-ok" data-testid="key-stored">
                <span className="dot" aria-hidden="true" />
                Stored
              </span>
            </span>
            {confirming ? (
              <>
                <span className="small">Remove the {agent} key? New {agent} sessions then need a login or a new key.</span>
                <button type="button" className="btn small danger" onClick={() => void remove()} disabled={saver.busy}>
                  Remove key
                </button>
                <button type="button" className="btn small" onClick={() => setConfirming(false)} disabled={saver.busy}>
                  Cancel
                </button>
              </>
            ) : (
              <button
                type="button"
                id={id}
                className="btn small danger-outline"
                onClick={() => {
                  setDid(null);
                  setConfirming(true);
                }}
                disabled={saver.busy}
                aria-label={`Remove the ${agent} API key`}
              >
                Remove
              </button>
            )}
            {saver.saved && did === "saved" && <span className="muted small">Saved to the keychain</span>}
          </div>
        ) : (
          <div className="inline">
            <input
              id={id}
              type="password"
              value={key}
              onChange={(e) => {
                setKey(e.target.value);
                saver.setSaved(false);
              }}
              autoComplete="off"
              spellCheck={false}
              placeholder={`Paste the ${agent} API key`}
              disabled={saver.busy}
              aria-label={`${agent} API key`}
              aria-describedby={`${id}-hint`}
            />
            <button type="submit" className="btn small primary" disabled={saver.busy || !key.trim()}>
              Save
            </button>
            {saver.saved && did === "removed" && <span className="muted small">Removed</span>}
          </div>
        )}
        <span className="field-hint" id={`${id}-hint`}>
          Passed to {agent} sessions as <span className="mono">{variable}</span>.
        </span>
      </div>
      {saver.error && <ErrorBox error={saver.error} compact />}
    </form>
  );
}
