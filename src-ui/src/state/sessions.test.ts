import { describe, expect, it } from "vitest";

import type { AgentReadiness } from "../api/gen/AgentReadiness";
import type { AgentSession } from "../api/gen/AgentSession";
import { agentStatusText, defaultAgent, loginUnavailableReason, sessionBadge } from "./sessions";

const session = (extra: Partial<AgentSession> = {}): AgentSession => ({
  id: "s1",
  workspaceId: "w1",
  label: "L",
  agent: "codex",
  status: "running",
  attached: false,
  watchers: 0,
  createdAt: "2026-11-25T12:00:00Z",
  ...extra,
});

const agent = (name: string, state: AgentReadiness["state"], extra: Partial<AgentReadiness> = {}): AgentReadiness => ({
  name,
  state,
  installed: state !== "missing",
  keyStored: false,
  loggedIn: false,
  keyVariable: "X_API_KEY",
  loginCommand: [name, "login"],
  loginAvailable: true,
  summary: "",
  ...extra,
});

describe("sessions in words", () => {
  it("says each session state, 'waiting for you' only while it runs", () => {
    expect(sessionBadge(session({ status: "starting" })).label).toBe("starting");
    expect(sessionBadge(session()).label).toBe("running");
    expect(sessionBadge(session({ permissionPending: true }))).toMatchObject({ label: "waiting for you", tone: "warn" });
    expect(sessionBadge(session(), true).label).toBe("waiting for you");
    expect(sessionBadge(session({ status: "stopped", stopReason: "user_stop" }), true)).toMatchObject({
      label: "stopped",
      title: "The session was stopped.",
    });
    expect(sessionBadge(session({ status: "error", error: "Authentication required" }))).toEqual({
      label: "error",
      tone: "bad",
      title: "Authentication required",
    });
  });

  it("says how ready an agent is and why it cannot log in", () => {
    expect(agentStatusText(agent("a", "ready", { keyStored: true, loggedIn: true }))).toBe("Ready — API key stored");
    expect(agentStatusText(agent("a", "ready", { loggedIn: true }))).toBe("Ready — logged in");
    expect(agentStatusText(agent("a", "needs_setup"))).toBe("Needs setup");
    expect(agentStatusText(agent("a", "missing"))).toBe("Not in this image");
    expect(loginUnavailableReason(agent("codex", "needs_setup"))).toBeNull();
    expect(loginUnavailableReason(agent("codex", "needs_setup", { loginAvailable: false }))).toBe("This image has no `codex`.");
  });

  it("starts the picker on the agent picked last, else the first ready, else one to set up", () => {
    const list = [agent("claude", "needs_setup"), agent("codex", "ready"), agent("gemini", "missing")];
    expect(defaultAgent(list, null)).toBe("codex");
    expect(defaultAgent(list, "claude")).toBe("claude");
    expect(defaultAgent(list, "gemini")).toBe("codex");
    expect(defaultAgent([agent("claude", "needs_setup"), agent("gemini", "missing")], null)).toBe("claude");
    expect(defaultAgent([agent("gemini", "missing")], null)).toBeNull();
  });
});
