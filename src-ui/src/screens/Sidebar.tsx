// The left sidebar: nodes, each with its workspaces (loaded per node).
import { useState } from "react";

import { Dot, ShortcutsHelp, Spinner } from "../components/ui";
import { waitingIn, type AppState } from "../state/app";
import { lastSeenText, nodeBadge, workspaceTone } from "../state/health";
import { useNow, useStore } from "../state/store";

export function Sidebar({ onAddNode }: { onAddNode: () => void }) {
  const { state, actions } = useStore();
  const now = useNow(5000);
  const [collapsed, setCollapsed] = useState<Record<string, boolean>>({});
  const route = state.route;
  const nodes = state.nodes.data;

  return (
    <nav className="sidebar" aria-label="Nodes and workspaces">
      <div className="brand">
        <span className="brand-mark" aria-hidden="true">◆</span> SAM
      </div>
      <div className="side-section-head">
        <button
          type="button"
          className={`side-link${route.name === "nodes" ? " active" : ""}`}
          onClick={() => actions.navigate({ name: "nodes" })}
        >
          Nodes
        </button>
        {state.nodes.status === "loading" && <Spinner />}
        <button type="button" className="icon-btn" title="Add a node" aria-label="Add a node" onClick={onAddNode}>
          +
        </button>
      </div>
      <ul className="tree" role="tree">
        {nodes.map((n) => {
          const b = nodeBadge(n);
          const ws = state.workspaces[n.id];
          const open = !collapsed[n.id];
          const nodeActive = route.name === "node" && route.nodeId === n.id;
          return (
            <li key={n.id} role="treeitem" aria-expanded={open} aria-selected={nodeActive}>
              <div className={`tree-row node-row${nodeActive ? " active" : ""}`}>
                <button
                  type="button"
                  className="twisty"
                  aria-label={open ? `Collapse ${n.name}` : `Expand ${n.name}`}
                  onClick={() => setCollapsed((c) => ({ ...c, [n.id]: open }))}
                >
                  {open ? "▾" : "▸"}
                </button>
                <button
                  type="button"
                  className="tree-label"
                  onClick={() => actions.navigate({ name: "node", nodeId: n.id })}
                  title={`${b.label} · ${lastSeenText(n.lastSeenAt, now)}`}
                >
                  <Dot tone={b.tone} title={b.label} />
                  <span className="ellipsis">{n.name}</span>
                </button>
                {ws?.status === "loading" && <Spinner />}
              </div>
              {open && (
                <ul role="group">
                  <WorkspaceRows state={state} nodeId={n.id} />
                </ul>
              )}
            </li>
          );
        })}
      </ul>
      <div className="side-foot">
        <button
          type="button"
          className={`side-link${route.name === "settings" ? " active" : ""}`}
          onClick={() => actions.navigate({ name: "settings" })}
        >
          ⚙ Settings
        </button>
        <ShortcutsHelp />
      </div>
    </nav>
  );
}

function WorkspaceRows({ state, nodeId }: { state: AppState; nodeId: string }) {
  const { actions } = useStore();
  const ws = state.workspaces[nodeId];
  const route = state.route;
  if (!ws) return null;
  if (ws.status === "error" && ws.data.length === 0) {
    return (
      <li className="tree-row sub muted small" title={ws.error?.message}>
        workspaces unavailable
      </li>
    );
  }
  if (ws.status !== "loading" && ws.data.length === 0) {
    return <li className="tree-row sub muted small">no workspaces</li>;
  }
  return (
    <>
      {ws.data.map((w) => {
        const active = route.name === "workspace" && route.workspaceId === w.id;
        const waiting = waitingIn(state, w.id).length > 0;
        return (
          <li key={w.id} role="treeitem" aria-selected={active}>
            <button
              type="button"
              className={`tree-row sub tree-label${active ? " active" : ""}`}
              onClick={() => actions.navigate({ name: "workspace", nodeId, workspaceId: w.id })}
              title={`${w.displayName} · ${w.status}`}
            >
              <Dot tone={workspaceTone(w.status)} title={w.status} />
              <span className="ellipsis">{w.displayName}</span>
              {waiting && (
                <span className="waiting" title="An agent waits for your permission">
                  !
                </span>
              )}
            </button>
          </li>
        );
      })}
    </>
  );
}
