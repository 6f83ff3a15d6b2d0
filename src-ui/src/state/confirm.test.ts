import { describe, expect, it } from "vitest";

import type { AgentSession } from "../api/gen/AgentSession";
import type { Workspace } from "../api/gen/Workspace";
import { confirmationText, nodeStopConfirmation, workspaceConfirmation } from "./confirm";

const ws = (id: string, displayName: string, status: Workspace["status"] = "running"): Workspace => ({
  id,
  nodeId: "n1",
  displayName,
  projectPath: `/workspaces/${displayName}`,
  status,
  image: "img",
  createdAt: "2026-11-25T12:00:00Z",
  updatedAt: "2026-11-25T12:00:00Z",
});

const session = (id: string, workspaceId: string, label: string, agent: string | null = "claude"): AgentSession => ({
  id,
  workspaceId,
  label,
  agent,
  status: "running",
  attached: false,
  watchers: 0,
  createdAt: "2026-11-25T12:00:00Z",
});

const node = { name: "build-box", provider: "ssh" as const, workspaces: { total: 3, running: 2 } };

describe("nodeStopConfirmation", () => {
  it("lists exactly the workspaces of the plan, each with its sessions", () => {
    const plan = {
      workspaces: [ws("w1", "api"), ws("w2", "web")],
      sessions: [session("s1", "w1", "Fix login"), session("s2", "w1", "Docs", "codex"), session("s3", "w2", "", null)],
    };
    const c = nodeStopConfirmation(node, plan, "stop");
    expect(c.title).toBe("Stop node build-box?");
    expect(c.summary).toBe("Stopping build-box stops 2 workspaces and 3 agent sessions:");
    expect(c.items).toEqual([
      { label: "workspace “api” (running)", sessions: ["agent session “Fix login” (claude)", "agent session “Docs” (codex)"] },
      { label: "workspace “web” (running)", sessions: ["agent session “s3” (command)"] },
    ]);
    expect(c.consequence).toMatch(/agent on the server stops/);
    expect(c.danger).toBe(false);
    expect(confirmationText(c)).toBe(
      [
        "Stop node build-box?",
        "Stopping build-box stops 2 workspaces and 3 agent sessions:",
        "• workspace “api” (running)",
        "  – agent session “Fix login” (claude)",
        "  – agent session “Docs” (codex)",
        "• workspace “web” (running)",
        "  – agent session “s3” (command)",
        c.consequence,
      ].join("\n"),
    );
  });

  it("says so when nothing runs", () => {
    const c = nodeStopConfirmation(node, { workspaces: [], sessions: [] }, "stop");
    expect(c.summary).toBe("Nothing runs on build-box: no workspace or agent session will stop.");
    expect(c.items).toEqual([]);
  });

  it("uses the singular for one of each", () => {
    const c = nodeStopConfirmation(node, { workspaces: [ws("w1", "api")], sessions: [session("s1", "w1", "x")] }, "stop");
    expect(c.summary).toBe("Stopping build-box stops 1 workspace and 1 agent session:");
  });

  it("still lists sessions whose workspace the plan does not name", () => {
    const c = nodeStopConfirmation(node, { workspaces: [], sessions: [session("s1", "w9", "Lost")] }, "stop");
    expect(c.items).toEqual([{ label: "other agent sessions", sessions: ["agent session “Lost” (claude)"] }]);
  });

  it("says what removing deletes, per provider", () => {
    const plan = { workspaces: [ws("w1", "api")], sessions: [] };
    const hz = nodeStopConfirmation({ ...node, provider: "hetzner" }, plan, "remove");
    expect(hz.title).toBe("Remove node build-box?");
    expect(hz.summary).toBe("Removing build-box stops 1 workspace and 0 agent sessions:");
    expect(hz.consequence).toMatch(/Every workspace on it \(3 workspaces\) is deleted.*server, its firewall and its SSH key are deleted at Hetzner/);
    expect(hz.danger).toBe(true);
    expect(nodeStopConfirmation({ ...node, provider: "ssh" }, plan, "remove").consequence).toMatch(/the server itself stays/);
    expect(nodeStopConfirmation({ ...node, provider: "local" }, plan, "remove").consequence).toMatch(/this computer is removed/);
    expect(nodeStopConfirmation({ ...node, provider: "hetzner" }, plan, "stop").consequence).toMatch(/powered off.*still bills/);
  });
});

describe("workspaceConfirmation", () => {
  it("names the terminals and running sessions that end", () => {
    const c = workspaceConfirmation({ displayName: "api" }, "stop", [session("s1", "w1", "Fix"), { ...session("s2", "w1", "Old"), status: "stopped" }], 2);
    expect(c.summary).toBe("Stopping api ends 2 terminals and 1 agent session:");
    expect(c.items.map((i) => i.label)).toEqual(["agent session “Fix” (claude)"]);
    expect(c.confirmLabel).toBe("Stop workspace");
  });
  it("says when nothing ends, and warns on delete", () => {
    const c = workspaceConfirmation({ displayName: "api" }, "delete", [], 0);
    expect(c.summary).toBe("Deleting api ends no terminals or agent sessions.");
    expect(c.danger).toBe(true);
    expect(c.consequence).toMatch(/cannot be undone/);
    expect(workspaceConfirmation({ displayName: "api" }, "restart", [], 1).summary).toBe("Restarting api ends 1 terminal.");
  });
});
