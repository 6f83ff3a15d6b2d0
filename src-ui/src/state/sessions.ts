// Agent sessions and agents in words: a session's state for the sessions list,
// why it ended, and how ready a built-in agent is for the new-session picker.
// The control plane decides readiness (`list_agents`); this only says it.
import type { AgentReadiness } from "../api/gen/AgentReadiness";
import type { AgentSession } from "../api/gen/AgentSession";
import type { StopReason } from "../api/gen/StopReason";
import type { Badge } from "./health";

export function stopReasonText(r: StopReason): string {
  switch (r) {
    case "user_stop":
      return "The session was stopped.";
    case "workspace_stop":
      return "The session ended because its workspace stopped.";
    case "workspace_restart":
      return "The session ended because its workspace restarted.";
    case "node_stop":
      return "The session ended because its node stopped.";
    case "agent_exit":
      return "The agent exited.";
    case "error":
      return "The session ended with an error.";
  }
}

/** Whether the session's agent waits for a person: the node says so, or a signal did. */
export function isWaiting(s: Pick<AgentSession, "status" | "permissionPending">, signalled: boolean): boolean {
  return s.status === "running" && (!!s.permissionPending || signalled);
}

/** A session's state for the sessions list: starting / running / waiting for you / stopped / error. */
export function sessionBadge(s: AgentSession, signalled = false): Badge {
  if (isWaiting(s, signalled)) {
    return { label: "waiting for you", tone: "warn", title: "The agent asks for your permission; open the session to answer." };
  }
  switch (s.status) {
    case "starting":
      return { label: "starting", tone: "busy", title: "The agent is starting." };
    case "running":
      return { label: "running", tone: "ok", title: "The agent runs; open the session to talk to it." };
    case "stopped":
      return { label: "stopped", tone: "idle", title: s.stopReason ? stopReasonText(s.stopReason) : "The session has ended." };
    case "error":
      return { label: "error", tone: "bad", title: s.error ?? "The session ended with an error." };
  }
}

/** How a built-in agent stands in one workspace, in the picker's words. */
export function agentStatusText(a: Pick<AgentReadiness, "state" | "keyStored" | "loggedIn">): string {
  switch (a.state) {
    case "ready":
      return a.keyStored ? "Ready — API key stored" : a.loggedIn ? "Ready — logged in" : "Ready";
    case "needs_setup":
      return "Needs setup";
    case "missing":
      return "Not in this image";
  }
}

/** Why "Log in" cannot run, or null when it can. */
export function loginUnavailableReason(a: Pick<AgentReadiness, "loginAvailable" | "loginCommand">): string | null {
  if (a.loginAvailable) return null;
  const program = a.loginCommand[0];
  return program ? `This image has no \`${program}\`.` : "This agent has no login command.";
}

/**
 * The agent the picker starts on: the one picked last (when the image has it),
 * else the first ready one, else the first that only needs setup.
 */
export function defaultAgent(agents: AgentReadiness[], last: string | null): string | null {
  const usable = (a: AgentReadiness) => a.state !== "missing";
  const remembered = agents.find((a) => a.name === last && usable(a));
  if (remembered) return remembered.name;
  return (agents.find((a) => a.state === "ready") ?? agents.find(usable))?.name ?? null;
}
