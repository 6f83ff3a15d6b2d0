// The wrappers in ./commands against the Rust side they call: every command
// the UI invokes is registered in src-tauri/src/app/commands.rs, every
// argument it sends is a parameter there, and every required parameter is sent.
// (A mismatch is otherwise only found in the real window, as "missing required
// key".)
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { mockIPC } from "@tauri-apps/api/mocks";
import { describe, expect, it } from "vitest";

import * as api from "./commands";

type Param = { name: string; optional: boolean };

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** `name -> params` of each `#[tauri::command]` fn, injected ones left out. */
function rustCommands(): Map<string, Param[]> {
  const src = readFileSync(resolve(__dirname, "../../../src-tauri/src/app/commands.rs"), "utf8");
  const handler = /generate_handler!\[([^\]]*)\]/.exec(src);
  if (!handler) throw new Error("no generate_handler! in commands.rs");
  const registered = new Set(handler[1].split(",").map((s) => s.trim()).filter(Boolean));
  const out = new Map<string, Param[]>();
  const fnRe = /#\[tauri::command\][^]*?async fn (\w+)\(([^]*?)\)\s*->/g;
  for (const m of src.matchAll(fnRe)) {
    if (!registered.has(m[1])) continue;
    const params: Param[] = [];
    for (const raw of m[2].split(/,(?![^<]*>)/)) {
      const p = /^\s*(\w+)\s*:\s*(.+?)\s*$/s.exec(raw);
      if (!p) continue;
      const [, name, type] = p;
      if (/^(State|tauri::AppHandle|AppHandle|Request|tauri::Window|Window)\b/.test(type)) continue;
      params.push({ name: camel(name), optional: type.startsWith("Option<") });
    }
    out.set(m[1], params);
  }
  return out;
}

/** Every wrapper, called once with plausible arguments. */
async function callEverything(): Promise<{ cmd: string; args: Record<string, unknown> | null }[]> {
  const seen: { cmd: string; args: Record<string, unknown> | null }[] = [];
  mockIPC((cmd, args) => {
    const raw = args instanceof Uint8Array ? null : ((args ?? {}) as Record<string, unknown>);
    seen.push({ cmd, args: raw });
    return null;
  });
  const w = "w1";
  await api.listNodes();
  await api.addLocalNode("this-computer");
  await api.addSshNode({ target: "root@h", name: "h", port: 2222, identity: "~/.ssh/k", acceptHostKey: "SHA256:x" });
  await api.addHetznerNode({ name: "hz", serverType: "cx22", location: "fsn1", image: "ubuntu-24.04" });
  await api.hetznerOptions();
  await api.nodeStopPlan("n1");
  await api.stopNode("n1");
  await api.startNode("n1");
  await api.upgradeNode("n1");
  await api.removeNode("n1");
  await api.nodeEvents("n1");
  await api.listWorkspaces("n1");
  await api.createWorkspace({ node: "n1", name: "a", image: "i", repository: "r", branch: "b" });
  await api.renameWorkspace(w, "b");
  await api.stopWorkspace(w);
  await api.restartWorkspace(w);
  await api.removeWorkspace(w);
  await api.workspaceEvents(w);
  await api.listTerminals(w);
  await api.openTerminal(w, 80, 24);
  await api.attachTerminal(w, "t1", { onOutput: () => {}, onEvent: () => {} });
  await api.terminalInput(w, "t1", new Uint8Array([1]));
  await api.terminalAck(w, "t1", 4096);
  await api.resizeTerminal(w, "t1", 80, 24);
  await api.detachTerminal(w, "t1");
  await api.killTerminal(w, "t1");
  await api.openLoginTerminal(w, "codex", 120, 32);
  await api.listSessions(w);
  await api.listAgents(w);
  await api.setAgentKey("codex", "k");
  await api.clearAgentKey("codex");
  await api.newSession(w, { agent: "claude", label: "x" });
  await api.attachSession(w, "s1", false, () => {});
  await api.sendSessionFrame("s1", { type: "cancel" });
  await api.detachSession("s1");
  await api.stopSession(w, "s1");
  await api.listFolder(w, ".");
  await api.readTextFile(w, "a");
  await api.writeTextFile(w, "a", "b");
  await api.listPorts(w);
  await api.openPort(w, 3000);
  await api.getSettings();
  await api.setSetting("theme", "dark");
  await api.setHetznerToken("t");
  await api.clearHetznerToken();
  await api.subscribe(() => {});
  return seen;
}

describe("the UI's commands against src-tauri", () => {
  it("match the registered Rust commands and their parameters", async () => {
    const rust = rustCommands();
    const seen = await callEverything();
    const problems: string[] = [];
    for (const { cmd, args } of seen) {
      const params = rust.get(cmd);
      if (!params) {
        problems.push(`${cmd}: not a registered command in commands.rs`);
        continue;
      }
      if (args === null) continue; // a raw body (terminal_input reads headers)
      for (const key of Object.keys(args)) {
        if (!params.some((p) => p.name === key)) problems.push(`${cmd}: sends "${key}", which Rust does not take`);
      }
      for (const p of params) {
        if (!p.optional && !(p.name in args)) problems.push(`${cmd}: does not send required "${p.name}"`);
      }
    }
    const called = new Set(seen.map((s) => s.cmd));
    for (const name of rust.keys()) if (!called.has(name)) problems.push(`${name}: registered but no wrapper calls it`);
    expect(problems).toEqual([]);
  });
});
