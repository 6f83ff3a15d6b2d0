import { describe, expect, it } from "vitest";

import type { Node } from "../api/gen/Node";
import { lastSeenText, nodeBadge, providerLabel, workspaceLimitText, workspaceTone } from "./health";
import { ago, clock } from "./time";

const now = Date.parse("2026-11-25T12:00:00Z");
const at = (s: number) => new Date(now - s * 1000).toISOString();

describe("nodeBadge", () => {
  const n = (status: Node["status"], health: Node["health"]) => ({ name: "n", status, health });
  it("shows health with text and a tone while the node runs", () => {
    expect(nodeBadge(n("running", "healthy"))).toMatchObject({ label: "healthy", tone: "ok" });
    expect(nodeBadge(n("running", "stale"))).toMatchObject({ label: "stale", tone: "warn" });
    expect(nodeBadge(n("running", "unhealthy"))).toMatchObject({ label: "unhealthy", tone: "bad" });
    expect(nodeBadge(n("running", null))).toMatchObject({ label: "checking", tone: "idle" });
  });
  it("shows what the node is doing otherwise, with no health alarm when stopped on purpose", () => {
    expect(nodeBadge(n("stopped", null))).toMatchObject({ label: "stopped", tone: "idle" });
    expect(nodeBadge(n("provisioning", null))).toMatchObject({ label: "provisioning", tone: "busy" });
    expect(nodeBadge(n("stopping", "healthy"))).toMatchObject({ label: "stopping", tone: "busy" });
    expect(nodeBadge(n("deleting", null))).toMatchObject({ label: "removing", tone: "busy" });
    expect(nodeBadge(n("error", "healthy"))).toMatchObject({ label: "error", tone: "bad" });
  });
  it("explains each badge in its title", () => {
    expect(nodeBadge(n("running", "stale")).title).toMatch(/late/);
  });
});

describe("freshness", () => {
  it("says how long ago, in the largest whole unit", () => {
    expect(ago(at(0), now)).toBe("just now");
    expect(ago(at(4), now)).toBe("just now");
    expect(ago(at(12), now)).toBe("12s ago");
    expect(ago(at(75), now)).toBe("1m ago");
    expect(ago(at(3599), now)).toBe("59m ago");
    expect(ago(at(7200), now)).toBe("2h ago");
    expect(ago(at(3 * 86400), now)).toBe("3d ago");
    expect(ago(at(-30), now)).toBe("just now");
    expect(ago("not a date", now)).toBe("at an unknown time");
  });
  it("reads 'last seen …', or 'never seen'", () => {
    expect(lastSeenText(at(75), now)).toBe("last seen 1m ago");
    expect(lastSeenText(null, now)).toBe("never seen");
  });
  it("formats a clock time", () => {
    expect(clock("2026-11-25T12:00:00Z")).toMatch(/^2026-11-2\d \d\d:\d\d:00$/);
    expect(clock("nope")).toBe("nope");
  });
});

describe("labels", () => {
  it("names providers and counts workspaces against the limit", () => {
    expect(providerLabel("local")).toBe("This computer");
    expect(providerLabel("ssh")).toBe("SSH");
    expect(providerLabel("hetzner")).toBe("Hetzner Cloud");
    expect(workspaceLimitText({ workspaces: { total: 3, running: 2 }, limits: { maxWorkspaces: 10, maxSessionsPerWorkspace: 5 } })).toBe(
      "3 of 10 workspaces (2 running)",
    );
    expect(workspaceLimitText({ workspaces: { total: 1, running: 0 }, limits: null })).toBe("1 workspace (0 running)");
    expect(workspaceTone("running")).toBe("ok");
    expect(workspaceTone("error")).toBe("bad");
    expect(workspaceTone("stopped")).toBe("idle");
    expect(workspaceTone("creating")).toBe("busy");
  });
});
