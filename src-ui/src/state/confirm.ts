// The words of confirmations: what exactly stops or is deleted. Built from the
// control plane's own dry run (NodeStopPlan) so the list is the truth, not a guess.
import type { AgentSession } from "../api/gen/AgentSession";
import type { Node } from "../api/gen/Node";
import type { NodeStopPlan } from "../api/gen/NodeStopPlan";
import type { WorkspaceView } from "../api/gen/WorkspaceView";

export type Confirmation = {
  title: string;
  summary: string;
  /** One line per workspace, with the agent sessions that end with it. */
  items: { label: string; sessions: string[] }[];
  consequence: string;
  confirmLabel: string;
  danger: boolean;
};

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function sessionLabel(s: Pick<AgentSession, "label" | "agent" | "id">): string {
  const name = s.label || s.id;
  return `agent session “${name}” (${s.agent ?? "command"})`;
}

function list(items: string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

export function nodeStopConfirmation(
  node: Pick<Node, "name" | "provider" | "workspaces">,
  plan: NodeStopPlan,
  action: "stop" | "remove",
): Confirmation {
  const byWs = new Map<string, string[]>();
  for (const s of plan.sessions) {
    const arr = byWs.get(s.workspaceId) ?? [];
    arr.push(sessionLabel(s));
    byWs.set(s.workspaceId, arr);
  }
  const items = plan.workspaces.map((w) => {
    const sessions = byWs.get(w.id) ?? [];
    byWs.delete(w.id);
    return { label: `workspace “${w.displayName}” (${w.status})`, sessions };
  });
  // Sessions whose workspace the plan does not list still stop: show them too.
  for (const sessions of byWs.values()) items.push({ label: "other agent sessions", sessions });

  const ws = plural(plan.workspaces.length, "workspace");
  const ss = plural(plan.sessions.length, "agent session");
  const verb = action === "stop" ? "Stopping" : "Removing";
  const summary =
    plan.workspaces.length === 0 && plan.sessions.length === 0
      ? `Nothing runs on ${node.name}: no workspace or agent session will stop.`
      : `${verb} ${node.name} stops ${list([ws, ss])}:`;

  let consequence: string;
  if (action === "stop") {
    consequence = {
      local: "Then the agent on this computer stops. Workspaces and their files stay; start the node to use them again.",
      ssh: "Then the agent on the server stops. The server keeps running; workspaces and their files stay.",
      hetzner:
        "Then the server is powered off. Workspaces and their files stay. Hetzner still bills a powered-off server.",
    }[node.provider];
  } else {
    const all = plural(node.workspaces.total, "workspace");
    consequence = {
      local: `Every workspace on it (${all}) is deleted with its files, the agent on this computer is removed, and SAM forgets the node.`,
      ssh: `Every workspace on it (${all}) is deleted with its files, the agent is removed from the server (the server itself stays), and SAM forgets the node.`,
      hetzner: `Every workspace on it (${all}) is deleted with its files, then the server, its firewall and its SSH key are deleted at Hetzner. This cannot be undone.`,
    }[node.provider];
  }
  return {
    title: action === "stop" ? `Stop node ${node.name}?` : `Remove node ${node.name}?`,
    summary,
    items,
    consequence,
    confirmLabel: action === "stop" ? "Stop node" : "Remove node",
    danger: action === "remove",
  };
}

export type WorkspaceAction = "stop" | "restart" | "delete";

export function workspaceConfirmation(
  ws: Pick<WorkspaceView, "displayName">,
  action: WorkspaceAction,
  sessions: Pick<AgentSession, "label" | "agent" | "id" | "status">[],
  terminals: number,
): Confirmation {
  const live = sessions.filter((s) => s.status === "running" || s.status === "starting");
  const ends: string[] = [];
  if (terminals > 0) ends.push(plural(terminals, "terminal"));
  if (live.length > 0) ends.push(plural(live.length, "agent session"));
  const endsText = ends.length ? list(ends) : "no terminals or agent sessions";
  const verb = { stop: "Stopping", restart: "Restarting", delete: "Deleting" }[action];
  return {
    title: { stop: "Stop", restart: "Restart", delete: "Delete" }[action] + ` workspace ${ws.displayName}?`,
    summary: `${verb} ${ws.displayName} ends ${endsText}${live.length ? ":" : "."}`,
    items: live.map((s) => ({ label: sessionLabel(s), sessions: [] })),
    consequence: {
      stop: "The container stops; its files stay. Restart it to work again.",
      restart: "The container restarts; files stay, running processes do not.",
      delete: "The container, its volume and every file in it are deleted. This cannot be undone.",
    }[action],
    confirmLabel: { stop: "Stop workspace", restart: "Restart workspace", delete: "Delete workspace" }[action],
    danger: action === "delete",
  };
}

/** The whole confirmation as plain text (what a screen reader or a test reads). */
export function confirmationText(c: Confirmation): string {
  const lines = [c.title, c.summary];
  for (const i of c.items) {
    lines.push(`• ${i.label}`);
    for (const s of i.sessions) lines.push(`  – ${s}`);
  }
  lines.push(c.consequence);
  return lines.join("\n");
}
