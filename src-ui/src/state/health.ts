import type { Node } from "../api/gen/Node";
import type { Provider } from "../api/gen/Provider";
import type { WorkspaceStatus } from "../api/gen/WorkspaceStatus";
import { ago } from "./time";

export type Tone = "ok" | "warn" | "bad" | "busy" | "idle";

export type Badge = { label: string; tone: Tone; title: string };

/**
 * The badge of a node: its health while it is meant to run (healthy / stale /
 * unhealthy), else what it is doing (provisioning, stopping, stopped…).
 */
export function nodeBadge(node: Pick<Node, "status" | "health" | "name">): Badge {
  switch (node.status) {
    case "provisioning":
      return { label: "provisioning", tone: "busy", title: `${node.name} is being set up.` };
    case "stopping":
      return { label: "stopping", tone: "busy", title: `${node.name} is stopping.` };
    case "deleting":
      return { label: "removing", tone: "busy", title: `${node.name} is being removed.` };
    case "stopped":
      return { label: "stopped", tone: "idle", title: `${node.name} was stopped on purpose.` };
    case "error":
      return { label: "error", tone: "bad", title: `The last operation on ${node.name} failed; see its events.` };
    case "running":
      break;
  }
  switch (node.health) {
    case "healthy":
      return { label: "healthy", tone: "ok", title: "Heartbeats arrive on time." };
    case "stale":
      return { label: "stale", tone: "warn", title: "Heartbeats are late; the node may be slow or unreachable." };
    case "unhealthy":
      return { label: "unhealthy", tone: "bad", title: "No heartbeat for a long time, or the node answers with errors." };
    default:
      return { label: "checking", tone: "idle", title: "No heartbeat yet." };
  }
}

/** "last seen 12s ago" / "never seen". */
export function lastSeenText(lastSeenAt: string | null, now: number): string {
  if (!lastSeenAt) return "never seen";
  return `last seen ${ago(lastSeenAt, now)}`;
}

export function providerLabel(p: Provider): string {
  switch (p) {
    case "local":
      return "This computer";
    case "ssh":
      return "SSH";
    case "hetzner":
      return "Hetzner Cloud";
  }
}

export function workspaceTone(s: WorkspaceStatus): Tone {
  switch (s) {
    case "running":
      return "ok";
    case "error":
      return "bad";
    case "stopped":
      return "idle";
    default:
      return "busy";
  }
}

/** "3 of 10 workspaces (2 running)". */
export function workspaceLimitText(node: Pick<Node, "workspaces" | "limits">): string {
  const { total, running } = node.workspaces;
  const of = node.limits ? ` of ${node.limits.maxWorkspaces}` : "";
  const noun = (node.limits?.maxWorkspaces ?? total) === 1 ? "workspace" : "workspaces";
  return `${total}${of} ${noun} (${running} running)`;
}
