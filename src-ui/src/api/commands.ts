// The UI's only door to the control plane: every Tauri command of
// docs/app-commands.md as a typed function. Nothing else in src-ui calls
// `invoke` or makes a `Channel`.
import { Channel, invoke, type InvokeArgs, type InvokeOptions } from "@tauri-apps/api/core";

import type { AgentReadiness } from "./gen/AgentReadiness";
import type { AgentSession } from "./gen/AgentSession";
import type { Event } from "./gen/Event";
import type { FileEntry } from "./gen/FileEntry";
import type { Node } from "./gen/Node";
import type { NodeStopPlan } from "./gen/NodeStopPlan";
import type { Port } from "./gen/Port";
import type { SessionClientFrame } from "./gen/SessionClientFrame";
import type { SessionFrame } from "./gen/SessionFrame";
import type { Terminal } from "./gen/Terminal";
import type { TerminalServerFrame } from "./gen/TerminalServerFrame";
import type { WorkspaceView } from "./gen/WorkspaceView";
import { toSamError } from "./errors";
import type { Deleted, HetznerOptions, SettingKey, Settings, UiSignal } from "./types";

/** Receives each provisioning / lifecycle step as it happens. */
export type OnProgress = (step: string) => void;

async function call<T>(cmd: string, args?: InvokeArgs, options?: InvokeOptions): Promise<T> {
  try {
    return await invoke<T>(cmd, args, options);
  } catch (e) {
    throw toSamError(e);
  }
}

/** Drops `undefined` fields so optional arguments reach Rust as absent. */
function args(a: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) if (v !== undefined) out[k] = v;
  return out;
}

function channel<T>(onMessage: (m: T) => void): Channel<T> {
  const ch = new Channel<T>();
  ch.onmessage = onMessage;
  return ch;
}

function progress(onProgress?: OnProgress): Channel<string> {
  return channel<string>((m) => onProgress?.(m));
}

/**
 * Terminal output arrives as an ArrayBuffer; be lenient about views and arrays.
 * (Checked by internal tag, not `instanceof`, so buffers from another realm count.)
 */
export function toBytes(m: unknown): Uint8Array {
  const tag = Object.prototype.toString.call(m);
  if (tag === "[object Uint8Array]") return m as Uint8Array;
  if (tag === "[object ArrayBuffer]") return new Uint8Array(m as ArrayBuffer);
  if (ArrayBuffer.isView(m)) return new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
  if (Array.isArray(m)) return Uint8Array.from(m as number[]);
  if (typeof m === "string") return new TextEncoder().encode(m);
  return new Uint8Array(0);
}

// ---- Nodes

export const listNodes = () => call<Node[]>("list_nodes");

export const addLocalNode = (name: string, onProgress?: OnProgress) =>
  call<Node>("add_local_node", { name, progress: progress(onProgress) });

export type AddSsh = {
  target: string;
  port?: number;
  identity?: string;
  name: string;
  /** The host key fingerprint the person trusts (`SHA256:…`), as `host_key_unknown` showed it. */
  acceptHostKey?: string;
};
export const addSshNode = (a: AddSsh, onProgress?: OnProgress) =>
  call<Node>("add_ssh_node", args({ ...a, progress: progress(onProgress) }));

export type AddHetzner = { name: string; serverType: string; location: string; image: string };
export const addHetznerNode = (a: AddHetzner, onProgress?: OnProgress) =>
  call<Node>("add_hetzner_node", { ...a, progress: progress(onProgress) });

export const hetznerOptions = () => call<HetznerOptions>("hetzner_options");

export const nodeStopPlan = (node: string) => call<NodeStopPlan>("node_stop_plan", { node });

export const stopNode = (node: string, onProgress?: OnProgress) =>
  call<Node>("stop_node", { node, progress: progress(onProgress) });

export const startNode = (node: string, onProgress?: OnProgress) =>
  call<Node>("start_node", { node, progress: progress(onProgress) });

/** This app's sam-agent replaces the node's when the node's is older (the library decides; `force` replaces it anyway). */
export const upgradeNode = (node: string, onProgress?: OnProgress, force = false) =>
  call<Node>("upgrade_node", { node, force, progress: progress(onProgress) });

export const removeNode = (node: string, onProgress?: OnProgress) =>
  call<Deleted>("remove_node", { node, progress: progress(onProgress) });

export const nodeEvents = (node: string, limit = 100) => call<Event[]>("node_events", { node, limit });

// ---- Workspaces

export const listWorkspaces = (node?: string) =>
  call<WorkspaceView[]>("list_workspaces", args({ node }));

export type NewWorkspace = {
  node: string;
  name: string;
  image?: string;
  repository?: string;
  branch?: string;
};
export const createWorkspace = (a: NewWorkspace, onProgress?: OnProgress) =>
  call<WorkspaceView>("create_workspace", args({ ...a, progress: progress(onProgress) }));

export const renameWorkspace = (workspace: string, name: string) =>
  call<WorkspaceView>("rename_workspace", { workspace, name });

export const stopWorkspace = (workspace: string) => call<WorkspaceView>("stop_workspace", { workspace });

export const restartWorkspace = (workspace: string) =>
  call<WorkspaceView>("restart_workspace", { workspace });

export const removeWorkspace = (workspace: string) => call<Deleted>("remove_workspace", { workspace });

export const workspaceEvents = (workspace: string, limit = 100) =>
  call<Event[]>("workspace_events", { workspace, limit });

// ---- Terminals

export const listTerminals = (workspace: string) => call<Terminal[]>("list_terminals", { workspace });

export const openTerminal = (workspace: string, cols: number, rows: number) =>
  call<Terminal>("open_terminal", { workspace, cols, rows });

export type TerminalSink = {
  onOutput: (bytes: Uint8Array) => void;
  onEvent: (frame: TerminalServerFrame) => void;
};
/** Replays the scrollback, then streams live output until detached. */
export const attachTerminal = (workspace: string, terminal: string, sink: TerminalSink) =>
  call<void>("attach_terminal", {
    workspace,
    terminal,
    output: channel<unknown>((m) => sink.onOutput(toBytes(m))),
    events: channel<TerminalServerFrame>(sink.onEvent),
  });

/**
 * The view has parsed `bytes` more of a terminal's output. The app sends at
 * most a window of output ahead of these (src-tauri api/output_window.rs), so
 * a flood goes at the pace xterm.js takes it in.
 */
export const terminalAck = (workspace: string, terminal: string, bytes: number) =>
  call<void>("terminal_ack", { workspace, terminal, bytes });

/** Keystrokes as a raw body: no JSON, no base64. */
export const terminalInput = (workspace: string, terminal: string, bytes: Uint8Array) =>
  call<void>("terminal_input", bytes, { headers: { workspace, terminal } });

export const resizeTerminal = (workspace: string, terminal: string, cols: number, rows: number) =>
  call<void>("resize_terminal", { workspace, terminal, cols, rows });

export const detachTerminal = (workspace: string, terminal: string) =>
  call<void>("detach_terminal", { workspace, terminal });

export const killTerminal = (workspace: string, terminal: string) =>
  call<void>("kill_terminal", { workspace, terminal });

/** "Log in": a terminal running the agent's own login command; it exits when the login ends. */
export const openLoginTerminal = (workspace: string, agent: string, cols: number, rows: number) =>
  call<Terminal>("open_login_terminal", { workspace, agent, cols, rows });

// ---- Agent sessions

export const listSessions = (workspace: string) => call<AgentSession[]>("list_sessions", { workspace });

/** The built-in agents of a running workspace: in its image or not, and ready or not. */
export const listAgents = (workspace: string) => call<AgentReadiness[]>("list_agents", { workspace });

/** Stored in the OS keychain by the control plane; it is never sent back. */
export const setAgentKey = (agent: string, key: string) => call<void>("set_agent_key", { agent, key });

export const clearAgentKey = (agent: string) => call<void>("clear_agent_key", { agent });

export const newSession = (workspace: string, opts: { agent?: string; label?: string } = {}) =>
  call<AgentSession>("new_session", args({ workspace, agent: opts.agent, label: opts.label }));

/** History first, then live frames. Rejects with `session_already_attached` when another client holds it. */
export const attachSession = (
  workspace: string,
  session: string,
  takeover: boolean,
  onFrame: (f: SessionFrame) => void,
) => call<void>("attach_session", { workspace, session, takeover, frames: channel<SessionFrame>(onFrame) });

export const sendSessionFrame = (session: string, frame: SessionClientFrame) =>
  call<void>("send_session_frame", { session, frame });

export const detachSession = (session: string) => call<void>("detach_session", { session });

export const stopSession = (workspace: string, session: string) =>
  call<AgentSession>("stop_session", { workspace, session });

// ---- Files and ports

export const listFolder = (workspace: string, path: string) =>
  call<FileEntry[]>("list_folder", { workspace, path });

export const readTextFile = (workspace: string, path: string) =>
  call<string>("read_text_file", { workspace, path });

export const writeTextFile = (workspace: string, path: string, content: string) =>
  call<void>("write_text_file", { workspace, path, content });

export const listPorts = (workspace: string) => call<Port[]>("list_ports", { workspace });

/** Opens a local forward to the port and the browser on it; answers the local URL. */
export const openPort = (workspace: string, port: number) => call<string>("open_port", { workspace, port });

// ---- Settings and signals

export const getSettings = () => call<Settings>("get_settings");

export const setSetting = (key: SettingKey, value: string) => call<void>("set_setting", { key, value });

/** Stored in the OS keychain by the control plane; it is never sent back. */
export const setHetznerToken = (token: string) => call<void>("set_hetzner_token", { token });

export const clearHetznerToken = () => call<void>("clear_hetzner_token");

export const subscribe = (onSignal: (s: UiSignal) => void) =>
  call<void>("subscribe", { signals: channel<UiSignal>(onSignal) });
