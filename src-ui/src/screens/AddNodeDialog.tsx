// Adding a node: this computer, a server over SSH, or a new Hetzner Cloud server
// (with the progress of each provisioning step).
import { useEffect, useState, type FormEvent } from "react";

import { api, Codes, toSamError, type HetznerOptions, type SamError } from "../api";
import type { Node } from "../api/gen/Node";
import { Dialog, ErrorBox, Field, ProgressSteps, Spinner } from "../components/ui";
import { useOperation } from "../components/useOperation";
import { useStore } from "../state/store";

export type NodeKind = "local" | "ssh" | "hetzner";

/** The same rule as the control plane's, checked before anything is contacted. */
export function nodeNameProblem(name: string): string | null {
  if (!name) return "Give the node a name.";
  if (name.length > 64) return "Use at most 64 characters.";
  if (name.startsWith("-")) return "The name cannot start with '-'.";
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return "Use only letters, digits, '.', '_' or '-'.";
  return null;
}

/** A node name from an SSH target: `deploy@build-1.example.com` → `build-1`. */
export function nameFromTarget(target: string): string {
  const host = target.includes("@") ? target.slice(target.lastIndexOf("@") + 1) : target;
  const first = host.split(".")[0] ?? "";
  return /^\d+$/.test(first) ? host.replace(/[^A-Za-z0-9._-]/g, "-") : first.replace(/[^A-Za-z0-9._-]/g, "-");
}

export function AddNodeDialog({ onClose, initialKind = "local" }: { onClose: () => void; initialKind?: NodeKind }) {
  const { state, actions, dispatch } = useStore();
  const hasLocal = state.nodes.data.some((n) => n.provider === "local");
  const [kind, setKind] = useState<NodeKind>(hasLocal && initialKind === "local" ? "ssh" : initialKind);
  const [chosen, setChosen] = useState(false);
  const op = useOperation();
  // The node list may arrive after the dialog opened: a computer is one node only.
  useEffect(() => {
    if (hasLocal && !chosen && kind === "local" && !op.running) setKind("ssh");
  }, [hasLocal, chosen, kind, op.running]);
  const [done, setDone] = useState<Node | null>(null);

  const finish = (node: Node | undefined) => {
    if (!node) return;
    dispatch({ type: "node/upserted", node });
    void actions.refreshNodes();
    setDone(node);
    actions.notify("info", `Node ${node.name} is ready.`, { name: "node", nodeId: node.id });
  };

  const kinds: { id: NodeKind; label: string }[] = [
    { id: "local", label: "This computer" },
    { id: "ssh", label: "SSH server" },
    { id: "hetzner", label: "Hetzner Cloud" },
  ];

  return (
    <Dialog title="Add a node" onClose={onClose} wide testId="add-node">
      {!done && (
        <div className="segmented" role="tablist" aria-label="Where the node runs">
          {kinds.map((k) => (
            <button
              key={k.id}
              type="button"
              role="tab"
              aria-selected={kind === k.id}
              className={kind === k.id ? "active" : ""}
              disabled={op.running}
              onClick={() => {
                setKind(k.id);
                setChosen(true);
                op.reset();
              }}
            >
              {k.label}
            </button>
          ))}
        </div>
      )}
      {done ? (
        <div className="done" data-testid="add-node-done">
          <ProgressSteps progress={op.progress} />
          <p>
            <strong>{done.name}</strong> is ready.
          </p>
          <div className="actions">
            <button type="button" className="btn" onClick={onClose}>
              Close
            </button>
            <button
              type="button"
              className="btn primary"
              onClick={() => {
                actions.navigate({ name: "node", nodeId: done.id });
                onClose();
              }}
            >
              Open {done.name}
            </button>
          </div>
        </div>
      ) : kind === "local" ? (
        <LocalForm op={op} hasLocal={hasLocal} onDone={finish} />
      ) : kind === "ssh" ? (
        <SshForm op={op} onDone={finish} />
      ) : (
        <HetznerForm op={op} onDone={finish} onClose={onClose} />
      )}
    </Dialog>
  );
}

type Op = ReturnType<typeof useOperation>;

function Running({ op, what }: { op: Op; what: string }) {
  if (!op.running && op.progress.steps.length === 0) return null;
  return (
    <div className="progress-box">
      {op.running && op.progress.steps.length === 0 && <Spinner label={what} />}
      <ProgressSteps progress={op.progress} />
    </div>
  );
}

function LocalForm({ op, hasLocal, onDone }: { op: Op; hasLocal: boolean; onDone: (n: Node | undefined) => void }) {
  const [name, setName] = useState("this-computer");
  const problem = nodeNameProblem(name);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (problem) return;
    onDone(await op.run((onProgress) => api.addLocalNode(name, onProgress)));
  };
  return (
    <form onSubmit={submit} className="form" data-testid="add-local">
      <p className="muted">
        Runs workspaces on this computer with Docker. SAM starts its agent on 127.0.0.1:7420; it keeps running when
        you close the window, so workspaces and agents carry on.
      </p>
      {hasLocal && <p className="note">This computer is a node already; a computer can be one node only.</p>}
      <Field label="Name" hint={problem ?? undefined}>
        <input value={name} onChange={(e) => setName(e.target.value)} disabled={op.running} aria-invalid={!!problem} />
      </Field>
      <Running op={op} what="Starting the agent on this computer…" />
      {op.error && <ErrorBox error={op.error} />}
      <div className="actions">
        <button type="submit" className="btn primary" disabled={op.running || !!problem || hasLocal}>
          Add this computer
        </button>
      </div>
    </form>
  );
}

function SshForm({ op, onDone }: { op: Op; onDone: (n: Node | undefined) => void }) {
  const [target, setTarget] = useState("");
  const [port, setPort] = useState("22");
  const [identity, setIdentity] = useState("");
  const [name, setName] = useState("");
  const [nameTouched, setNameTouched] = useState(false);
  const [hostKey, setHostKey] = useState<SamError | null>(null);
  const effectiveName = nameTouched ? name : nameFromTarget(target);
  const nameProblem = target ? nodeNameProblem(effectiveName) : null;
  const portNumber = Number(port);
  const portProblem = Number.isInteger(portNumber) && portNumber > 0 && portNumber < 65536 ? null : "A port from 1 to 65535.";

  const connect = async (acceptHostKey?: string) => {
    setHostKey(null);
    let asked = false;
    const node = await op.run(async (onProgress) => {
      try {
        return await api.addSshNode(
          {
            target: target.trim(),
            port: portNumber === 22 ? undefined : portNumber,
            identity: identity.trim() || undefined,
            name: effectiveName,
            acceptHostKey,
          },
          onProgress,
        );
      } catch (e) {
        const err = toSamError(e);
        if (err.code === Codes.hostKeyUnknown) {
          asked = true;
          setHostKey(err);
        }
        throw err;
      }
    });
    // An unknown host key is a question, not a failure: the card below asks it.
    if (asked) op.reset();
    onDone(node);
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!target || nameProblem || portProblem) return;
    void connect();
  };

  return (
    <form onSubmit={submit} className="form" data-testid="add-ssh">
      <p className="muted">
        Any Linux server you can reach with SSH and that has Docker. SAM uploads its agent and runs it as a service.
      </p>
      <div className="row">
        <Field label="Server (user@host)">
          <input
            value={target}
            onChange={(e) => setTarget(e.target.value)}
            placeholder="root@203.0.113.7"
            disabled={op.running}
            autoComplete="off"
            spellCheck={false}
          />
        </Field>
        <Field label="Port" hint={portProblem ?? undefined}>
          <input className="narrow" value={port} onChange={(e) => setPort(e.target.value)} disabled={op.running} inputMode="numeric" />
        </Field>
      </div>
      <Field label="Private key file (optional)" hint="Empty: your SSH agent and default keys are used.">
        <input
          value={identity}
          onChange={(e) => setIdentity(e.target.value)}
          placeholder="~/.ssh/id_ed25519"
          disabled={op.running}
          spellCheck={false}
        />
      </Field>
      <Field label="Node name" hint={nameProblem ?? undefined}>
        <input
          value={effectiveName}
          onChange={(e) => {
            setNameTouched(true);
            setName(e.target.value);
          }}
          disabled={op.running}
        />
      </Field>
      <Running op={op} what="Connecting…" />
      {hostKey ? (
        <div className="ask" role="alert" data-testid="host-key">
          <p>
            <strong>{hostKey.message}</strong>
          </p>
          <p>
            Fingerprint: <code>{hostKey.hint}</code>
          </p>
          <p className="muted small">
            Compare it with the server's own (<code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code> on the
            server) before you trust it.
          </p>
          <div className="actions">
            <button type="button" className="btn" onClick={() => setHostKey(null)}>
              Don't trust
            </button>
            <button type="button" className="btn primary" onClick={() => void connect(hostKey.hint ?? undefined)}>
              Trust this key and connect
            </button>
          </div>
        </div>
      ) : (
        op.error && <ErrorBox error={op.error} />
      )}
      <div className="actions">
        <button type="submit" className="btn primary" disabled={op.running || !target || !!nameProblem || !!portProblem}>
          Connect and install
        </button>
      </div>
    </form>
  );
}

function HetznerForm({ op, onDone, onClose }: { op: Op; onDone: (n: Node | undefined) => void; onClose: () => void }) {
  const { state, actions } = useStore();
  const tokenSet = state.settings?.hetznerTokenSet ?? false;
  const [token, setToken] = useState("");
  const [tokenBusy, setTokenBusy] = useState(false);
  const [tokenError, setTokenError] = useState<SamError | null>(null);
  const [options, setOptions] = useState<HetznerOptions | null>(null);
  const [optionsError, setOptionsError] = useState<SamError | null>(null);
  const [name, setName] = useState("hetzner-1");
  const [serverType, setServerType] = useState("");
  const [location, setLocation] = useState("");
  const [image, setImage] = useState("");
  const [loadKey, setLoadKey] = useState(0);

  useEffect(() => {
    if (!tokenSet) return;
    let live = true;
    setOptionsError(null);
    api
      .hetznerOptions()
      .then((o) => {
        if (!live) return;
        setOptions(o);
        const first = o.serverTypes.find((t) => t.available);
        setServerType((v) => v || first?.name || "");
        setLocation((v) => v || first?.locations[0] || o.locations[0]?.name || "");
        setImage((v) => v || o.images[0]?.name || "");
      })
      .catch((e) => live && setOptionsError(toSamError(e)));
    return () => {
      live = false;
    };
  }, [tokenSet, loadKey]);

  const saveToken = async (e: FormEvent) => {
    e.preventDefault();
    setTokenBusy(true);
    setTokenError(null);
    try {
      await api.setHetznerToken(token.trim());
      setToken("");
      await actions.refreshSettings();
    } catch (err) {
      setTokenError(toSamError(err));
    } finally {
      setTokenBusy(false);
    }
  };

  if (!tokenSet) {
    return (
      <form onSubmit={saveToken} className="form" data-testid="hetzner-token">
        <p className="muted">
          SAM creates the server with your Hetzner Cloud API token (Security → API tokens, read &amp; write). It is kept
          in your system keychain and never shown again.
        </p>
        <Field label="Hetzner API token">
          <input type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" disabled={tokenBusy} />
        </Field>
        {tokenError && <ErrorBox error={tokenError} />}
        <div className="actions">
          <button type="submit" className="btn primary" disabled={tokenBusy || token.trim().length === 0}>
            Save token
          </button>
        </div>
      </form>
    );
  }

  const problem = nodeNameProblem(name);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (problem || !serverType || !location || !image) return;
    onDone(await op.run((onProgress) => api.addHetznerNode({ name, serverType, location, image }, onProgress)));
  };
  const type = options?.serverTypes.find((t) => t.name === serverType);
  // Only where the chosen type is offered (Hetzner says so per type).
  const locations = options?.locations.filter((l) => !type || type.locations.includes(l.name)) ?? [];
  const price = type?.monthlyPrices.find((p) => p.location === location);
  const typeHint = type
    ? `${type.cores} vCPU · ${type.memoryGb} GB RAM · ${type.diskGb} GB disk · ${type.architecture}` +
      (price ? ` · ${Number(price.gross).toFixed(2)} a month` : "")
    : undefined;
  const pickType = (name: string) => {
    setServerType(name);
    const t = options?.serverTypes.find((x) => x.name === name);
    if (t && !t.locations.includes(location)) setLocation(t.locations[0] ?? "");
  };

  return (
    <form onSubmit={submit} className="form" data-testid="add-hetzner">
      <p className="muted">
        A new server at Hetzner Cloud, with a firewall that lets in only SSH and the agent. If any step fails, what was
        made is deleted again, so nothing is left billing.
      </p>
      {optionsError && <ErrorBox error={optionsError} onRetry={() => setLoadKey((k) => k + 1)} />}
      {!options && !optionsError && <Spinner label="Asking Hetzner for server types and locations…" />}
      {options && (
        <>
          <Field label="Node name" hint={problem ?? undefined}>
            <input value={name} onChange={(e) => setName(e.target.value)} disabled={op.running} />
          </Field>
          <div className="row">
            <Field label="Server type" hint={typeHint}>
              <select value={serverType} onChange={(e) => pickType(e.target.value)} disabled={op.running}>
                {options.serverTypes.map((t) => (
                  <option key={t.name} value={t.name} disabled={!t.available} title={t.unavailableReason ?? undefined}>
                    {t.name} — {t.description}
                    {t.available ? "" : ` (${t.unavailableReason ?? "not available"})`}
                  </option>
                ))}
              </select>
            </Field>
            <Field label="Location">
              <select value={location} onChange={(e) => setLocation(e.target.value)} disabled={op.running}>
                {locations.map((l) => (
                  <option key={l.name} value={l.name}>
                    {l.name} — {l.city}, {l.country}
                  </option>
                ))}
              </select>
            </Field>
            <Field label="Image">
              <select value={image} onChange={(e) => setImage(e.target.value)} disabled={op.running}>
                {options.images.map((i) => (
                  <option key={i.name} value={i.name}>
                    {i.description || i.name}
                  </option>
                ))}
              </select>
            </Field>
          </div>
        </>
      )}
      <Running op={op} what="Talking to Hetzner…" />
      {op.error && <ErrorBox error={op.error} />}
      <div className="actions">
        {op.running && (
          <button type="button" className="btn" onClick={onClose} title="Provisioning carries on; you get a notice when it is done.">
            Continue in background
          </button>
        )}
        <button type="submit" className="btn primary" disabled={op.running || !options || !!problem || !type?.available}>
          Create server
        </button>
      </div>
    </form>
  );
}
