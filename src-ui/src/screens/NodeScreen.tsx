// One node: what it is, its workspaces (and creating one), stop/start/remove with
// a confirmation naming what will stop, and its events.
import { useEffect, useRef, useState, type FormEvent } from "react";

import { api, toSamError, type SamError } from "../api";
import type { Node } from "../api/gen/Node";
import type { WorkspaceView } from "../api/gen/WorkspaceView";
import {
  Badge,
  ConfirmationBody,
  Dialog,
  Empty,
  ErrorBox,
  Field,
  OperationFooter,
  ProgressSteps,
  Spinner,
} from "../components/ui";
import { useOperation } from "../components/useOperation";
import { findNode } from "../state/app";
import { nodeStopConfirmation, type Confirmation } from "../state/confirm";
import { lastSeenText, nodeBadge, providerLabel, workspaceLimitText, workspaceTone } from "../state/health";
import { useNow, useStore } from "../state/store";
import { EventsList } from "./EventsList";

export function NodeScreen({ nodeId }: { nodeId: string }) {
  const { state, actions } = useStore();
  const now = useNow(1000);
  const node = findNode(state, nodeId);
  const [dialog, setDialog] = useState<null | "create" | "stop" | "remove" | "start" | "upgrade">(null);

  if (!node) {
    return state.nodes.status === "loading" || state.nodes.status === "idle" ? (
      <Spinner label="Loading the node…" />
    ) : (
      <Empty title="This node is not there any more">It may have been removed from another window.</Empty>
    );
  }
  const b = nodeBadge(node);
  const ws = state.workspaces[node.id];
  const atLimit = !!node.limits && node.workspaces.total >= node.limits.maxWorkspaces;
  const canWork = node.status === "running";

  return (
    <section className="screen" aria-labelledby="node-title">
      <header className="screen-head">
        <div>
          <h1 id="node-title">
            {node.name} <Badge tone={b.tone} label={b.label} title={b.title} />
          </h1>
          <div className="muted small">
            {providerLabel(node.provider)} · <span className="mono">{node.address}</span> ·{" "}
            <span data-testid="last-seen">{lastSeenText(node.lastSeenAt, now)}</span>
          </div>
        </div>
        <div className="actions">
          {node.status === "stopped" || node.status === "error" ? (
            <button type="button" className="btn" onClick={() => setDialog("start")}>
              Start node
            </button>
          ) : (
            <button type="button" className="btn" onClick={() => setDialog("stop")} disabled={node.status !== "running"}>
              Stop node
            </button>
          )}
          <button type="button" className="btn danger-outline" onClick={() => setDialog("remove")}>
            Remove node
          </button>
          <button
            type="button"
            className="btn primary"
            onClick={() => setDialog("create")}
            disabled={!canWork || atLimit}
            title={
              !canWork
                ? "Start the node to create workspaces."
                : atLimit
                  ? "This node has as many workspaces as its limit allows."
                  : undefined
            }
          >
            New workspace
          </button>
        </div>
      </header>

      <dl className="facts">
        <dt>Workspaces</dt>
        <dd data-testid="ws-limit">{workspaceLimitText(node)}</dd>
        <dt>Agent sessions</dt>
        <dd>{node.limits ? `up to ${node.limits.maxSessionsPerWorkspace} per workspace` : "—"}</dd>
        <dt>Agent version</dt>
        <dd>
          <span data-testid="agent-version">{agentText(node)}</span>
          {canWork && (
            <>
              {" "}
              <button type="button" className="btn small" onClick={() => setDialog("upgrade")}>
                Upgrade agent…
              </button>
            </>
          )}
        </dd>
        <dt>Certificate</dt>
        <dd className="mono small ellipsis" title={node.certFingerprint ?? undefined}>
          {node.certFingerprint ? node.certFingerprint.slice(0, 32) + "…" : "—"}
        </dd>
      </dl>
      {atLimit && canWork && (
        <p className="note">
          {node.name} has {node.workspaces.total} workspaces, its limit. Delete one, or raise “Max workspaces per node”
          in Settings.
        </p>
      )}

      <h2 className="section-title">Workspaces</h2>
      {ws?.error && <ErrorBox error={ws.error} onRetry={() => void actions.refreshWorkspaces(node.id)} compact />}
      {!ws || (ws.status === "loading" && ws.data.length === 0) ? (
        canWork ? (
          <Spinner label="Loading workspaces…" />
        ) : (
          <Empty title={`${node.name} is ${node.status}`}>Start it to see and use its workspaces.</Empty>
        )
      ) : ws.data.length === 0 && !ws.error ? (
        <Empty title="No workspaces yet">
          A workspace is a container with its own volume and network, from an image or a git repository.
        </Empty>
      ) : (
        <WorkspaceTable nodeId={node.id} workspaces={ws.data} />
      )}

      <h2 className="section-title">Events</h2>
      <EventsList
        reloadKey={node.id}
        load={() => api.nodeEvents(node.id, 100)}
        matches={(nid) => nid === node.id}
      />

      {dialog === "create" && <CreateWorkspaceDialog node={node} onClose={() => setDialog(null)} />}
      {(dialog === "stop" || dialog === "remove") && (
        <StopNodeDialog node={node} action={dialog} onClose={() => setDialog(null)} />
      )}
      {dialog === "start" && <StartNodeDialog node={node} onClose={() => setDialog(null)} />}
      {dialog === "upgrade" && <UpgradeAgentDialog node={node} onClose={() => setDialog(null)} />}
    </section>
  );
}

function WorkspaceTable({ nodeId, workspaces }: { nodeId: string; workspaces: WorkspaceView[] }) {
  const { actions } = useStore();
  return (
    <table className="grid" data-testid="workspaces-table">
      <thead>
        <tr>
          <th>Name</th>
          <th>Status</th>
          <th>Source</th>
          <th>Image</th>
        </tr>
      </thead>
      <tbody>
        {workspaces.map((w) => (
          <tr key={w.id} className="clickable" onClick={() => actions.navigate({ name: "workspace", nodeId, workspaceId: w.id })}>
            <td>
              <button type="button" className="link">
                {w.displayName}
              </button>
            </td>
            <td>
              <Badge tone={workspaceTone(w.status)} label={w.status} title={w.error ?? undefined} />
            </td>
            <td className="small">
              {w.repository ? (
                <span className="mono">
                  {w.repository}
                  {w.branch ? ` @ ${w.branch}` : ""}
                </span>
              ) : (
                <span className="muted">image only</span>
              )}
            </td>
            <td className="mono small">{w.image}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Checks the create-workspace form; null when it can be sent. */
export function workspaceFormProblem(f: { name: string; source: "image" | "repository"; repository: string }): string | null {
  if (!f.name.trim()) return "Give the workspace a name.";
  if (f.name.length > 100) return "Use at most 100 characters for the name.";
  if (f.source === "repository") {
    const r = f.repository.trim();
    if (!r) return "Enter the repository's URL.";
    if (r.startsWith("-")) return "A repository URL cannot start with '-'.";
    if (!/^(https?:\/\/|ssh:\/\/|git@|git:\/\/)/.test(r)) return "Use an https://, ssh:// or git@ URL.";
  }
  return null;
}

export function CreateWorkspaceDialog({ node, onClose }: { node: Node; onClose: () => void }) {
  const { state, actions, dispatch } = useStore();
  const op = useOperation();
  const [name, setName] = useState("");
  const [source, setSource] = useState<"image" | "repository">("image");
  const [image, setImage] = useState("");
  const [repository, setRepository] = useState("");
  const [branch, setBranch] = useState("");
  const problem = workspaceFormProblem({ name, source, repository });
  const defaultImage = state.settings?.defaultImage ?? "the default image";

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (problem) return;
    const ws = await op.run((onProgress) =>
      api.createWorkspace(
        {
          node: node.id,
          name: name.trim(),
          image: image.trim() || undefined,
          repository: source === "repository" ? repository.trim() : undefined,
          branch: source === "repository" ? branch.trim() || undefined : undefined,
        },
        onProgress,
      ),
    );
    if (ws) {
      dispatch({ type: "workspace/upserted", workspace: ws });
      void actions.refreshNodes();
      actions.notify("info", `Workspace ${ws.displayName} is running.`);
      actions.navigate({ name: "workspace", nodeId: node.id, workspaceId: ws.id });
      onClose();
    }
  };

  return (
    <Dialog title={`New workspace on ${node.name}`} onClose={onClose} wide testId="create-workspace">
      <form className="form" onSubmit={submit}>
        <Field label="Name">
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="api" disabled={op.running} />
        </Field>
        <div className="segmented" role="radiogroup" aria-label="Start from">
          <button type="button" role="radio" aria-checked={source === "image"} className={source === "image" ? "active" : ""} onClick={() => setSource("image")} disabled={op.running}>
            An image
          </button>
          <button type="button" role="radio" aria-checked={source === "repository"} className={source === "repository" ? "active" : ""} onClick={() => setSource("repository")} disabled={op.running}>
            A git repository
          </button>
        </div>
        {source === "repository" && (
          <div className="row">
            <Field label="Repository URL">
              <input value={repository} onChange={(e) => setRepository(e.target.value)} placeholder="https://github.com/you/project.git" disabled={op.running} spellCheck={false} />
            </Field>
            <Field label="Branch (optional)">
              <input className="narrow" value={branch} onChange={(e) => setBranch(e.target.value)} placeholder="main" disabled={op.running} spellCheck={false} />
            </Field>
          </div>
        )}
        <Field
          label={source === "repository" ? "Image (optional)" : "Image"}
          hint={
            source === "repository"
              ? `Empty: the repository's devcontainer.json, else ${defaultImage}.`
              : `Empty: ${defaultImage}.`
          }
        >
          <input value={image} onChange={(e) => setImage(e.target.value)} placeholder={defaultImage} disabled={op.running} spellCheck={false} />
        </Field>
        <ProgressSteps progress={op.progress} />
        {op.running && op.progress.steps.length === 0 && <Spinner label="Creating…" />}
        {op.error && <ErrorBox error={op.error} />}
        <div className="actions">
          <button type="button" className="btn" onClick={onClose}>
            {op.running ? "Continue in background" : "Cancel"}
          </button>
          <button type="submit" className="btn primary" disabled={op.running || !!problem} title={problem ?? undefined}>
            Create workspace
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function StopNodeDialog({ node, action, onClose }: { node: Node; action: "stop" | "remove"; onClose: () => void }) {
  const { actions, dispatch } = useStore();
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const [planError, setPlanError] = useState<SamError | null>(null);
  const op = useOperation();
  const [done, setDone] = useState(false);

  // The plan is asked once, when the dialog opens: the list is what stops now.
  const nodeRef = useRef(node);
  useEffect(() => {
    let live = true;
    api
      .nodeStopPlan(nodeRef.current.id)
      .then((plan) => live && setConfirmation(nodeStopConfirmation(nodeRef.current, plan, action)))
      .catch((e) => live && setPlanError(toSamError(e)));
    return () => {
      live = false;
    };
  }, [action]);

  const go = async () => {
    if (action === "stop") {
      const n = await op.run((p) => api.stopNode(node.id, p));
      if (n) {
        dispatch({ type: "node/upserted", node: n });
        setDone(true);
      }
    } else {
      const r = await op.run((p) => api.removeNode(node.id, p));
      if (r) {
        dispatch({ type: "node/removed", nodeId: node.id });
        actions.notify("info", `Removed node ${node.name}.`);
        onClose();
      }
    }
    void actions.refreshNodes();
  };

  const verb = action === "stop" ? "Stop" : "Remove";
  return (
    <Dialog
      title={confirmation?.title ?? `${verb} node ${node.name}?`}
      onClose={onClose}
      busy={op.running}
      testId="stop-node"
      footer={
        <OperationFooter
          done={done}
          running={op.running}
          onClose={onClose}
          action={
            <button
              type="button"
              className={`btn ${action === "remove" ? "danger" : "primary"}`}
              disabled={op.running || (!confirmation && !planError)}
              onClick={() => void go()}
            >
              {confirmation?.confirmLabel ?? `${verb} anyway`}
            </button>
          }
        />
      }
    >
      {!confirmation && !planError && <Spinner label="Asking the node what is running…" />}
      {planError && (
        <>
          <p>SAM could not ask {node.name} what runs on it, so it cannot list what will stop.</p>
          <ErrorBox error={planError} compact />
        </>
      )}
      {confirmation && <ConfirmationBody c={confirmation} />}
      <ProgressSteps progress={op.progress} />
      {op.error && <ErrorBox error={op.error} />}
      {done && <p>{node.name} is stopped.</p>}
    </Dialog>
  );
}

/** "0.1.0 (build 65126352)": the version, and the build that tells two builds of it apart. */
function agentText(node: Node): string {
  if (!node.agentVersion) return "—";
  return node.agentBuild ? `${node.agentVersion} (build ${node.agentBuild.slice(0, 8)})` : node.agentVersion;
}

function UpgradeAgentDialog({ node, onClose }: { node: Node; onClose: () => void }) {
  const { actions, dispatch } = useStore();
  const op = useOperation();
  const [done, setDone] = useState(false);
  const go = async () => {
    const n = await op.run((p) => api.upgradeNode(node.id, p));
    if (n) {
      dispatch({ type: "node/upserted", node: n });
      void actions.refreshNodes();
      setDone(true);
    }
  };
  return (
    <Dialog
      title={`Upgrade the agent on ${node.name}?`}
      onClose={onClose}
      testId="upgrade-agent"
      busy={op.running}
      footer={
        <OperationFooter
          done={done}
          running={op.running}
          onClose={onClose}
          action={
            <button type="button" className="btn primary" onClick={() => void go()} disabled={op.running}>
              Upgrade agent
            </button>
          }
        />
      }
    >
      <p>
        If the agent on {node.provider === "local" ? "this computer" : node.address} is older than this app's, SAM
        replaces it and restarts it. Terminals and agent sessions keep running in their holder processes; the node is
        out of reach for a moment. A newer agent is left as it is.
      </p>
      <ProgressSteps progress={op.progress} />
      {op.error && <ErrorBox error={op.error} />}
    </Dialog>
  );
}

function StartNodeDialog({ node, onClose }: { node: Node; onClose: () => void }) {
  const { actions, dispatch } = useStore();
  const op = useOperation();
  const go = async () => {
    const n = await op.run((p) => api.startNode(node.id, p));
    if (n) {
      dispatch({ type: "node/upserted", node: n });
      void actions.refreshNodes();
      onClose();
    }
  };
  return (
    <Dialog
      title={`Start node ${node.name}?`}
      onClose={onClose}
      busy={op.running}
      footer={
        <>
          <button type="button" className="btn" onClick={onClose} disabled={op.running}>
            Cancel
          </button>
          <button type="button" className="btn primary" onClick={() => void go()} disabled={op.running}>
            Start node
          </button>
        </>
      }
    >
      <p>
        {node.provider === "hetzner"
          ? "The server is powered on, then its agent starts."
          : `The agent on ${node.provider === "local" ? "this computer" : node.address} starts again.`}
      </p>
      <ProgressSteps progress={op.progress} />
      {op.error && <ErrorBox error={op.error} />}
    </Dialog>
  );
}
