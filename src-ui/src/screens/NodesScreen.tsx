// Nodes: every node with its health badge, "last seen …", where it runs, and
// its workspaces against its limit.
import { Badge, Empty, ErrorBox, Spinner } from "../components/ui";
import { lastSeenText, nodeBadge, providerLabel, workspaceLimitText } from "../state/health";
import { useNow, useStore } from "../state/store";

export function NodesScreen({ onAddNode }: { onAddNode: () => void }) {
  const { state, actions } = useStore();
  const now = useNow(1000);
  const nodes = state.nodes;
  const max = state.settings?.maxNodes;
  const atLimit = max !== undefined && nodes.data.length >= max;

  return (
    <section className="screen" aria-labelledby="nodes-title">
      <header className="screen-head">
        <div>
          <h1 id="nodes-title">Nodes</h1>
          <div className="muted small" data-testid="node-count">
            {nodes.data.length}
            {max !== undefined ? ` of ${max}` : ""} nodes
            {nodes.status === "loading" && nodes.data.length > 0 && " · refreshing…"}
          </div>
        </div>
        <div className="actions">
          <button type="button" className="btn" onClick={() => void actions.refreshNodes()}>
            Refresh
          </button>
          <button
            type="button"
            className="btn primary"
            onClick={onAddNode}
            disabled={atLimit}
            title={atLimit ? `The limit of ${max} nodes is reached; raise it in Settings.` : undefined}
          >
            Add node
          </button>
        </div>
      </header>

      {nodes.error && <ErrorBox error={nodes.error} onRetry={() => void actions.refreshNodes()} />}
      {atLimit && (
        <p className="note">
          You have {max} nodes, the limit. Remove one or raise “Max nodes” in Settings to add another.
        </p>
      )}

      {nodes.status === "loading" && nodes.data.length === 0 && <Spinner label="Loading nodes…" />}
      {nodes.status !== "loading" && !nodes.error && nodes.data.length === 0 && (
        <Empty title="No nodes yet">
          A node is a machine that runs your workspaces. Start with this computer (it needs Docker), or add a
          server over SSH or a new one at Hetzner Cloud.
          <div>
            <button type="button" className="btn primary" onClick={onAddNode}>
              Add a node
            </button>
          </div>
        </Empty>
      )}

      {nodes.data.length > 0 && (
        <table className="grid" data-testid="nodes-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Health</th>
              <th>Last seen</th>
              <th>Provider</th>
              <th>Address</th>
              <th>Workspaces</th>
              <th>Agent</th>
            </tr>
          </thead>
          <tbody>
            {nodes.data.map((n) => {
              const b = nodeBadge(n);
              return (
                <tr
                  key={n.id}
                  className="clickable"
                  data-node={n.name}
                  onClick={() => actions.navigate({ name: "node", nodeId: n.id })}
                >
                  <td>
                    <button
                      type="button"
                      className="link"
                      onClick={(e) => {
                        e.stopPropagation();
                        actions.navigate({ name: "node", nodeId: n.id });
                      }}
                    >
                      {n.name}
                    </button>
                  </td>
                  <td>
                    <Badge tone={b.tone} label={b.label} title={b.title} />
                  </td>
                  <td className="muted" data-testid="last-seen">
                    {lastSeenText(n.lastSeenAt, now)}
                  </td>
                  <td>{providerLabel(n.provider)}</td>
                  <td className="mono small">{n.address}</td>
                  <td>
                    {workspaceLimitText(n)}
                    {n.limits && (
                      <div className="muted small">≤ {n.limits.maxSessionsPerWorkspace} agent sessions each</div>
                    )}
                  </td>
                  <td className="muted small">{n.agentVersion ?? "—"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
