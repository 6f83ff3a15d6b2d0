import { mockIPC } from "@tauri-apps/api/mocks";
import { describe, expect, it, vi } from "vitest";

import * as api from "./commands";
import { SamError } from "./errors";

type Internals = { invoke: (...a: unknown[]) => Promise<unknown>; runCallback: (id: number, d: unknown) => void };
const internals = () => (window as unknown as { __TAURI_INTERNALS__: Internals }).__TAURI_INTERNALS__;

/** Records every command with its arguments and invoke options. */
function record(answer: (cmd: string, args: unknown) => unknown = () => null) {
  const seen: { cmd: string; args: unknown; options: unknown }[] = [];
  mockIPC((cmd, args) => answer(cmd, args));
  const inner = internals().invoke;
  internals().invoke = (cmd, args, options) => {
    seen.push({ cmd: cmd as string, args, options });
    return inner(cmd, args, options);
  };
  return seen;
}

/** Sends a message on a Channel the wrapper passed, the way Tauri does. */
function send(ch: { id: number }, message: unknown, index: number) {
  internals().runCallback(ch.id, { message, index });
}

describe("command wrappers", () => {
  it("call each command with camelCase arguments, optional ones left out", async () => {
    const seen = record();
    await api.listNodes();
    await api.addLocalNode("this-computer");
    await api.listWorkspaces();
    await api.listWorkspaces("n1");
    await api.renameWorkspace("w1", "new");
    await api.stopWorkspace("w1");
    await api.restartWorkspace("w1");
    await api.removeWorkspace("w1");
    await api.workspaceEvents("w1", 5);
    await api.nodeEvents("n1");
    await api.nodeStopPlan("n1");
    await api.openTerminal("w1", 120, 40);
    await api.resizeTerminal("w1", "t1", 100, 30);
    await api.detachTerminal("w1", "t1");
    await api.killTerminal("w1", "t1");
    await api.listTerminals("w1");
    await api.listSessions("w1");
    await api.newSession("w1");
    await api.newSession("w1", { agent: "codex", label: "Fix" });
    await api.sendSessionFrame("s1", { type: "cancel" });
    await api.detachSession("s1");
    await api.stopSession("w1", "s1");
    await api.listFolder("w1", "src");
    await api.readTextFile("w1", "a.ts");
    await api.writeTextFile("w1", "a.ts", "x");
    await api.listPorts("w1");
    await api.openPort("w1", 3000);
    await api.getSettings();
    await api.setSetting("max-nodes", "12");
    await api.setHetznerToken("tok");
    await api.clearHetznerToken();
    await api.hetznerOptions();
    await api.listAgents("w1");
    await api.setAgentKey("codex", "sk-1");
    await api.clearAgentKey("codex");
    await api.openLoginTerminal("w1", "codex", 120, 32);
    expect(seen.map((s) => [s.cmd, s.args])).toEqual([
      ["list_nodes", {}],
      ["add_local_node", { name: "this-computer", progress: expect.anything() }],
      ["list_workspaces", {}],
      ["list_workspaces", { node: "n1" }],
      ["rename_workspace", { workspace: "w1", name: "new" }],
      ["stop_workspace", { workspace: "w1" }],
      ["restart_workspace", { workspace: "w1" }],
      ["remove_workspace", { workspace: "w1" }],
      ["workspace_events", { workspace: "w1", limit: 5 }],
      ["node_events", { node: "n1", limit: 100 }],
      ["node_stop_plan", { node: "n1" }],
      ["open_terminal", { workspace: "w1", cols: 120, rows: 40 }],
      ["resize_terminal", { workspace: "w1", terminal: "t1", cols: 100, rows: 30 }],
      ["detach_terminal", { workspace: "w1", terminal: "t1" }],
      ["kill_terminal", { workspace: "w1", terminal: "t1" }],
      ["list_terminals", { workspace: "w1" }],
      ["list_sessions", { workspace: "w1" }],
      ["new_session", { workspace: "w1" }],
      ["new_session", { workspace: "w1", agent: "codex", label: "Fix" }],
      ["send_session_frame", { session: "s1", frame: { type: "cancel" } }],
      ["detach_session", { session: "s1" }],
      ["stop_session", { workspace: "w1", session: "s1" }],
      ["list_folder", { workspace: "w1", path: "src" }],
      ["read_text_file", { workspace: "w1", path: "a.ts" }],
      ["write_text_file", { workspace: "w1", path: "a.ts", content: "x" }],
      ["list_ports", { workspace: "w1" }],
      ["open_port", { workspace: "w1", port: 3000 }],
      ["get_settings", {}],
      ["set_setting", { key: "max-nodes", value: "12" }],
      ["set_hetzner_token", { token: "tok" }],
      ["clear_hetzner_token", {}],
      ["hetzner_options", {}],
      ["list_agents", { workspace: "w1" }],
      ["set_agent_key", { agent: "codex", key: "sk-1" }],
      ["clear_agent_key", { agent: "codex" }],
      ["open_login_terminal", { workspace: "w1", agent: "codex", cols: 120, rows: 32 }],
    ]);
  });

  it("sends keystrokes as a raw body with the routing headers", async () => {
    const seen = record();
    const bytes = new TextEncoder().encode("ls\r");
    await api.terminalInput("w1", "t1", bytes);
    expect(seen[0].cmd).toBe("terminal_input");
    expect(seen[0].args).toBe(bytes);
    expect(Object.prototype.toString.call(seen[0].args)).toBe("[object Uint8Array]");
    expect(seen[0].options).toEqual({ headers: { workspace: "w1", terminal: "t1" } });
  });

  it("passes a progress channel and reports each step", async () => {
    const steps: string[] = [];
    record((cmd, args) => {
      const a = args as { progress: { id: number } };
      send(a.progress, "Creating SSH key.", 0);
      send(a.progress, "Creating server.", 1);
      return { id: "n9", name: cmd };
    });
    const node = await api.addHetznerNode({ name: "hz", serverType: "cx22", location: "fsn1", image: "ubuntu-24.04" }, (s) =>
      steps.push(s),
    );
    expect(node).toMatchObject({ id: "n9" });
    expect(steps).toEqual(["Creating SSH key.", "Creating server."]);
  });

  it("keeps add_ssh_node's optional fields out unless given", async () => {
    const seen = record();
    await api.addSshNode({ target: "root@h", name: "h" });
    await api.addSshNode({ target: "root@h", name: "h", port: 2222, identity: "~/.ssh/k", acceptHostKey: "SHA256:abc" });
    const [a, b] = seen.map((s) => s.args as Record<string, unknown>);
    expect(Object.keys(a).sort()).toEqual(["name", "progress", "target"]);
    expect(b).toMatchObject({ port: 2222, identity: "~/.ssh/k", acceptHostKey: "SHA256:abc" });
  });

  it("delivers terminal output as bytes and terminal events as frames", async () => {
    const out: string[] = [];
    const events: unknown[] = [];
    record((_cmd, args) => {
      const a = args as { output: { id: number }; events: { id: number } };
      send(a.output, new TextEncoder().encode("hello ").buffer, 0);
      send(a.output, new TextEncoder().encode("world"), 1);
      send(a.events, { type: "ready" }, 0);
      return null;
    });
    await api.attachTerminal("w1", "t1", {
      onOutput: (b) => out.push(new TextDecoder().decode(b)),
      onEvent: (f) => events.push(f),
    });
    expect(out.join("")).toBe("hello world");
    expect(events).toEqual([{ type: "ready" }]);
  });

  it("delivers session frames in order even when they arrive out of order", async () => {
    const frames: number[] = [];
    record((_cmd, args) => {
      const ch = (args as { frames: { id: number } }).frames;
      send(ch, { seq: 2, type: "agent.turn_end", stopReason: "end_turn" }, 1);
      send(ch, { seq: 1, type: "user.prompt", text: "hi" }, 0);
      return null;
    });
    await api.attachSession("w1", "s1", true, (f) => frames.push(f.seq));
    expect(frames).toEqual([1, 2]);
  });

  it("rejects with a SamError carrying the code, message and hint", async () => {
    record(() => {
      throw { code: "session_already_attached", message: "Another client is attached.", hint: null };
    });
    const e = await api.attachSession("w1", "s1", false, vi.fn()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SamError);
    expect((e as SamError).code).toBe("session_already_attached");
  });
});

describe("toBytes", () => {
  it("accepts buffers, views, arrays and strings", () => {
    expect([...api.toBytes(new Uint8Array([1, 2]).buffer)]).toEqual([1, 2]);
    expect([...api.toBytes(new Uint8Array([3]))]).toEqual([3]);
    expect([...api.toBytes(new DataView(new Uint8Array([9, 4, 5]).buffer, 1, 2))]).toEqual([4, 5]);
    expect([...api.toBytes([6, 7])]).toEqual([6, 7]);
    expect([...api.toBytes("A")]).toEqual([65]);
    expect(api.toBytes(null).length).toBe(0);
  });
});
