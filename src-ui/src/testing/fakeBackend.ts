// A fake control plane behind Tauri's IPC (mockIPC): every command of
// docs/app-commands.md with in-memory nodes, workspaces, terminals, sessions,
// files and settings. Used by the unit tests (jsdom) and by the browser tests,
// which build it separately and inject it before the production bundle starts.
// Never imported by the app itself.
import { mockIPC } from "@tauri-apps/api/mocks";

import type { AgentReadiness } from "../api/gen/AgentReadiness";
import type { AgentSession } from "../api/gen/AgentSession";
import type { Event } from "../api/gen/Event";
import type { FileEntry } from "../api/gen/FileEntry";
import type { Node } from "../api/gen/Node";
import type { Port } from "../api/gen/Port";
import type { SessionClientFrame } from "../api/gen/SessionClientFrame";
import type { SessionFrame } from "../api/gen/SessionFrame";
import type { Terminal } from "../api/gen/Terminal";
import type { TerminalServerFrame } from "../api/gen/TerminalServerFrame";
import type { WorkspaceView } from "../api/gen/WorkspaceView";
import type { ServerTypeOption } from "../api/gen/ServerTypeOption";
import type { HetznerOptions, Settings, UiSignal } from "../api/types";

type ChannelLike = { id: number };

export type Call = { cmd: string; args: unknown; headers: Record<string, string> | null; at: number };

type Internals = {
  invoke: (cmd: string, args?: unknown, options?: { headers?: unknown }) => Promise<unknown>;
  runCallback: (id: number, data: unknown) => void;
};

function internals(): Internals {
  return (window as unknown as { __TAURI_INTERNALS__: Internals }).__TAURI_INTERNALS__;
}

class Fail {
  constructor(
    public code: string,
    public message: string,
    public hint: string | null = null,
  ) {}
}

/** The build of the agent the fake app carries; the seeded local node runs an older one. */
export const FAKE_APP_AGENT_BUILD = "71a574d6e0c2b9f1";

const fail = (code: string, message: string, hint: string | null = null) => new Fail(code, message, hint);

type TerminalRec = Terminal & {
  workspaceId: string;
  ring: number[];
  output: ChannelLike | null;
  events: ChannelLike | null;
  line: string;
  input: number[];
  /** The built-in agent whose login command runs in it, if it is a "Log in" terminal. */
  login: string | null;
};

type SessionRec = AgentSession & {
  frames: SessionFrame[];
  seq: number;
  channel: ChannelLike | null;
  /** Another client holds it (for the takeover prompt). */
  heldElsewhere: boolean;
  pendingPermission: number | null;
  turn: number;
};

export type FakeOptions = {
  /** Delay between progress steps and streamed chunks (ms). */
  stepMs?: number;
  /** Start with no nodes at all (first run). */
  empty?: boolean;
  /** Extra latency of every command (ms). */
  latencyMs?: number;
  /** A terminal already running in workspace "api" (as after reopening the window). */
  seedTerminal?: boolean;
  /** Session ids another client holds (for the takeover prompt). */
  held?: string[];
};

/** The built-in agents as the control plane knows them (src-tauri/src/api/agents.rs). */
export const FAKE_BUILTINS = [
  {
    name: "claude",
    adapter: "claude-code-acp",
    npm: "@zed-industries/claude-code-acp",
    keyVariable: "ANTHROPIC_API_KEY",
    login: ["claude", "/login"],
    loginFile: ".claude/.credentials.json",
    authError: "Authentication required: set ANTHROPIC_API_KEY or log in with `claude /login`",
  },
  {
    name: "codex",
    adapter: "codex-acp",
    npm: "@zed-industries/codex-acp",
    keyVariable: "CODEX_API_KEY",
    login: ["codex", "login", "--device-auth"],
    loginFile: ".codex/auth.json",
    authError: "Authentication required: set CODEX_API_KEY or log in with `codex login`",
  },
  {
    name: "gemini",
    adapter: "gemini",
    npm: "@google/gemini-cli",
    keyVariable: "GEMINI_API_KEY",
    login: ["gemini"],
    loginFile: ".gemini/oauth_creds.json",
    authError: "Authentication required: set GEMINI_API_KEY or log in with Google",
  },
] as const;

type Builtin = (typeof FAKE_BUILTINS)[number];

const builtin = (name: unknown): Builtin | undefined => FAKE_BUILTINS.find((b) => b.name === name);

/** Every program of the built-in agents: what the default image has on PATH. */
const ALL_AGENT_PROGRAMS = FAKE_BUILTINS.flatMap((b) => [b.adapter, b.login[0]]);

function readinessSummary(b: Builtin, installed: boolean, key: boolean, login: boolean): string {
  if (!installed) return `This workspace's image has no ${b.adapter} (the default image sam-workspace:latest has it).`;
  if (key && login) return "Ready: API key stored, and logged in.";
  if (key) return `Ready: API key stored (passed as ${b.keyVariable}).`;
  if (login) return "Ready: logged in.";
  return `Needs an API key (${b.keyVariable}) or a login (\`${b.login.join(" ")}\`).`;
}

/**
 * Ids are unique across fakes, so what a screen remembers for the window's life
 * (a workspace's tabs) never matches a later test's new terminal or session.
 */
let nextId = 100;

const te = new TextEncoder();
const td = new TextDecoder();

function iso(msAgo: number): string {
  return new Date(Date.now() - msAgo).toISOString();
}

/** A server type as `hetzner_options` answers it. */
function serverType(
  name: string,
  description: string,
  architecture: string,
  cores: number,
  memoryGb: number,
  diskGb: number,
  locations: string[],
  gross: string,
): ServerTypeOption {
  return {
    name,
    description,
    architecture,
    cores,
    memoryGb,
    diskGb,
    cpuType: "shared",
    locations,
    monthlyPrices: locations.map((location) => ({ location, gross })),
    available: true,
    unavailableReason: null,
  };
}

export class FakeSam {
  calls: Call[] = [];
  nodes: Node[] = [];
  workspaces: WorkspaceView[] = [];
  terminals: TerminalRec[] = [];
  sessions: SessionRec[] = [];
  files: Record<string, Record<string, string>> = {};
  /** Per workspace: the programs its image has on PATH (agents' adapters and CLIs). */
  programs: Record<string, Set<string>> = {};
  /** Per workspace: files under the user's home (the home volume), e.g. agents' logins. */
  homes: Record<string, Record<string, string>> = {};
  events: Event[] = [];
  knownHosts = new Set<string>();
  settings: Omit<Settings, "hetznerTokenSet" | "agentKeys"> = {
    staleSeconds: 30,
    maxNodes: 10,
    maxWorkspaces: 10,
    maxSessions: 5,
    hcloudEndpoint: "https://api.hetzner.cloud/v1",
    theme: "system",
    defaultImage: "sam-workspace:latest",
    autoLocal: true,
    stateDir: "/home/dev/.local/share/sam",
    secretStore: "the system keychain (Secret Service)",
  };
  /** The keychain: the fake keeps the token here and never answers with it. */
  private keychain: Record<string, string> = {};
  signals: ChannelLike | null = null;
  /** Test hook: commands that fail with this error until deleted from the map. */
  failures = new Map<string, { code: string; message: string; hint: string | null }>();
  stepMs: number;
  latencyMs: number;
  private channelIndex = new Map<number, number>();

  constructor(opts: FakeOptions = {}) {
    this.stepMs = opts.stepMs ?? 0;
    this.latencyMs = opts.latencyMs ?? 0;
    if (!opts.empty) this.seed();
    if (opts.seedTerminal && !opts.empty) {
      this.terminals.push({
        id: "t-kept",
        workspaceId: "w-api",
        cols: 120,
        rows: 32,
        createdAt: iso(3_600_000),
        exited: false,
        exitCode: null,
        ring: Array.from(te.encode("$ npm test\r\n\r\n  12 passed (kept on the node)\r\n$ ")),
        output: null,
        events: null,
        line: "",
        input: [],
        login: null,
      });
    }
    for (const id of opts.held ?? []) {
      const s = this.sessions.find((x) => x.id === id);
      if (s) s.heldElsewhere = true;
    }
  }

  // ---------------------------------------------------------------- plumbing

  /** Installs this fake as the IPC of the page. */
  install(): this {
    mockIPC((cmd, args) => this.handle(cmd, args, this.pendingHeaders));
    // mockIPC drops invoke's options; keep the headers (terminal_input) for the handler.
    const inner = internals().invoke;
    internals().invoke = (cmd, args, options) => {
      const h = options?.headers;
      this.pendingHeaders =
        h instanceof Headers ? Object.fromEntries(h.entries()) : ((h as Record<string, string> | undefined) ?? null);
      try {
        return inner(cmd, args, options);
      } finally {
        this.pendingHeaders = null;
      }
    };
    return this;
  }
  private pendingHeaders: Record<string, string> | null = null;

  /** Sends a message on a channel the UI gave us, in Tauri's ordered format. */
  send(ch: ChannelLike | null, message: unknown) {
    if (!ch) return;
    const index = this.channelIndex.get(ch.id) ?? 0;
    this.channelIndex.set(ch.id, index + 1);
    internals().runCallback(ch.id, { message, index });
  }

  callsOf(cmd: string): Call[] {
    return this.calls.filter((c) => c.cmd === cmd);
  }

  private id(prefix: string): string {
    nextId += 1;
    return `${prefix}${nextId.toString(36)}`;
  }

  private sleep(ms = this.stepMs): Promise<void> {
    return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
  }

  private async steps(ch: ChannelLike | null, lines: string[]) {
    for (const l of lines) {
      this.send(ch, l);
      await this.sleep();
    }
  }

  private event(e: Omit<Event, "id" | "createdAt" | "level"> & { level?: Event["level"] }): Event {
    const ev: Event = { level: "info", ...e, id: this.id("ev-"), createdAt: new Date().toISOString() };
    this.events.unshift(ev);
    this.signal({ type: "event", nodeId: ev.nodeId, event: ev });
    return ev;
  }

  signal(s: UiSignal) {
    this.send(this.signals, s);
  }

  // ---------------------------------------------------------------- seed data

  private seed() {
    const local: Node = {
      id: "n-local",
      name: "this-computer",
      provider: "local",
      address: "https://127.0.0.1:7420",
      status: "running",
      health: "healthy",
      lastSeenAt: iso(3000),
      agentVersion: "0.1.0",
      agentBuild: "65126352a1b0c9d8",
      certFingerprint: "sha256:4f:1a:9c:77:e2:0b:5d:aa:13:98:c4:61:0e:f2:7b:33",
      workspaces: { total: 2, running: 1 },
      limits: { maxWorkspaces: 10, maxSessionsPerWorkspace: 5 },
      providerIds: null,
    };
    const ssh: Node = {
      ...local,
      id: "n-build",
      name: "build-box",
      provider: "ssh",
      address: "https://203.0.113.20:7420",
      health: "stale",
      lastSeenAt: iso(75_000),
      workspaces: { total: 1, running: 1 },
    };
    const hz: Node = {
      ...local,
      id: "n-hz",
      name: "hetzner-old",
      provider: "hetzner",
      address: "https://198.51.100.9:7420",
      health: "unhealthy",
      lastSeenAt: iso(21 * 60_000),
      workspaces: { total: 0, running: 0 },
      providerIds: { server: 4242, firewall: 77, sshKey: 99 },
    };
    this.nodes = [local, ssh, hz];
    const ws = (node: Node, id: string, displayName: string, extra: Partial<WorkspaceView>): WorkspaceView => ({
      node: node.id,
      id,
      nodeId: node.id,
      displayName,
      projectPath: `/workspaces/${displayName}`,
      status: "running",
      image: "sam-workspace:latest",
      repository: null,
      branch: null,
      createdAt: iso(86_400_000),
      updatedAt: iso(3_600_000),
      error: null,
      ...extra,
    });
    this.workspaces = [
      ws(local, "w-api", "api", { repository: "https://github.com/example/api.git", branch: "main" }),
      ws(local, "w-web", "web", { status: "stopped", image: "node:22" }),
      ws(ssh, "w-ml", "ml", { image: "python:3.12" }),
    ];
    this.terminals = [];
    this.sessions = [
      {
        id: "s-login",
        workspaceId: "w-api",
        label: "Fix the login test",
        agent: "claude",
        status: "running",
        attached: false,
        watchers: 0,
        createdAt: iso(600_000),
        frames: [
          { seq: 1, type: "user.prompt", text: "Why does the login test fail?" },
          {
            seq: 2,
            type: "agent.output",
            update: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "The test expects a **302** redirect, but `login()` answers 200." } },
          },
          { seq: 3, type: "agent.turn_end", stopReason: "end_turn" },
        ],
        seq: 3,
        channel: null,
        heldElsewhere: false,
        pendingPermission: null,
        turn: 0,
      },
    ];
    this.files["w-api"] = {
      "README.md": "# api\n\nThe example API.\n",
      "package.json": '{\n  "name": "api",\n  "version": "1.0.0",\n  "scripts": { "test": "vitest" }\n}\n',
      "src/login.ts": "export function login(user: string): number {\n  return 200;\n}\n",
      "src/util/strings.ts": "export const trim = (s: string) => s.trim();\n",
    };
    this.files["w-ml"] = { "train.py": "print('training')\n" };
    // api's image has claude and codex (their adapters and CLIs), not gemini;
    // claude is logged in (its login lives in the home volume), codex is not.
    this.programs["w-api"] = new Set(["claude-code-acp", "claude", "codex-acp", "codex"]);
    this.homes["w-api"] = { ".claude/.credentials.json": '{"claudeAiOauth":"…"}' };
    this.programs["w-web"] = new Set();
    this.programs["w-ml"] = new Set();
    this.events = [
      { id: "ev-3", type: "workspace.created", level: "info", nodeId: "n-local", workspaceId: "w-api", message: "Workspace api is running.", createdAt: iso(86_000_000) },
      { id: "ev-2", type: "node.health", level: "warn", nodeId: "n-build", message: "build-box is stale: no heartbeat for 75 s.", createdAt: iso(45_000) },
      { id: "ev-1", type: "node.health", level: "error", nodeId: "n-hz", message: "hetzner-old is unhealthy: no heartbeat for 20 minutes.", createdAt: iso(20 * 60_000) },
    ];
  }

  // ---------------------------------------------------------------- dispatch

  async handle(cmd: string, args: unknown, headers: Record<string, string> | null): Promise<unknown> {
    this.calls.push({ cmd, args, headers, at: Date.now() });
    if (this.latencyMs) await this.sleep(this.latencyMs);
    const failure = this.failures.get(cmd);
    if (failure) throw { ...failure };
    try {
      return await this.route(cmd, (args ?? {}) as Record<string, unknown>, headers);
    } catch (e) {
      if (e instanceof Fail) throw { code: e.code, message: e.message, hint: e.hint };
      throw e;
    }
  }

  private node(id: unknown): Node {
    const n = this.nodes.find((x) => x.id === id || x.name === id);
    if (!n) throw fail("not_found", `There is no node ${String(id)}.`, "Refresh the list of nodes.");
    return n;
  }

  private ws(id: unknown): WorkspaceView {
    const w = this.workspaces.find((x) => x.id === id);
    if (!w) throw fail("not_found", `There is no workspace ${String(id)}.`);
    return w;
  }

  private recount(nodeId: string) {
    const n = this.nodes.find((x) => x.id === nodeId);
    if (!n) return;
    const mine = this.workspaces.filter((w) => w.node === nodeId);
    n.workspaces = { total: mine.length, running: mine.filter((w) => w.status === "running").length };
  }

  private publicSettings(): Settings {
    return {
      ...this.settings,
      hetznerTokenSet: "hetzner-token" in this.keychain,
      agentKeys: FAKE_BUILTINS.filter((b) => `agent-key-${b.name}` in this.keychain).map((b) => b.name),
    };
  }

  /** For tests: whether the keychain holds this exact key for the agent. */
  agentKeyIs(agent: string, key: string): boolean {
    return this.keychain[`agent-key-${agent}`] === key;
  }

  /** As `list_agents`: the built-in agents of a workspace, from its image, the keychain and its home. */
  readiness(workspace: string): AgentReadiness[] {
    const programs = this.programs[workspace] ?? new Set<string>();
    const home = this.homes[workspace] ?? {};
    return FAKE_BUILTINS.map((b) => {
      const installed = programs.has(b.adapter);
      const keyStored = `agent-key-${b.name}` in this.keychain;
      const loggedIn = !!home[b.loginFile];
      return {
        name: b.name,
        state: !installed ? "missing" : keyStored || loggedIn ? "ready" : "needs_setup",
        installed,
        keyStored,
        loggedIn,
        keyVariable: b.keyVariable,
        loginCommand: [...b.login],
        loginAvailable: programs.has(b.login[0]),
        summary: readinessSummary(b, installed, keyStored, loggedIn),
      };
    });
  }

  private notBuiltin(agent: unknown): Fail {
    return fail("invalid_input", `"${String(agent)}" is not a built-in agent; SAM knows ${FAKE_BUILTINS.map((b) => b.name).join(", ")}.`);
  }

  /** For tests: whether the keychain holds this exact token. */
  keychainHas(token: string): boolean {
    return this.keychain["hetzner-token"] === token;
  }

  /** As the control plane: the name and the limit are checked before anything is contacted. */
  private checkNewNode(name: string) {
    if (this.nodes.some((n) => n.name === name)) {
      throw fail("conflict", `There is a node named "${name}" already.`, "Pick another name, or remove that node first.");
    }
    if (this.nodes.length >= this.settings.maxNodes) {
      throw fail("limit_reached", `You have ${this.settings.maxNodes} nodes, the limit.`, "Remove a node or raise max-nodes in Settings.");
    }
  }

  private newNode(name: string, provider: Node["provider"], address: string): Node {
    this.checkNewNode(name);
    const n: Node = {
      id: this.id("n-"),
      name,
      provider,
      address,
      status: "running",
      health: "healthy",
      lastSeenAt: new Date().toISOString(),
      agentVersion: "0.1.0",
      agentBuild: FAKE_APP_AGENT_BUILD,
      certFingerprint: "sha256:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99",
      workspaces: { total: 0, running: 0 },
      limits: { maxWorkspaces: this.settings.maxWorkspaces, maxSessionsPerWorkspace: this.settings.maxSessions },
      providerIds: null,
    };
    this.nodes.push(n);
    return n;
  }

  private async route(cmd: string, a: Record<string, unknown>, headers: Record<string, string> | null): Promise<unknown> {
    switch (cmd) {
      // ---- nodes
      case "list_nodes":
        for (const n of this.nodes) if (n.health === "healthy") n.lastSeenAt = iso(2000);
        return structuredClone(this.nodes);
      case "add_local_node": {
        const existing = this.nodes.find((n) => n.provider === "local");
        if (existing) throw fail("conflict", `This computer is already the node "${existing.name}".`, "A computer is one node.");
        await this.sleep();
        const n = this.newNode(String(a.name), "local", "https://127.0.0.1:7420");
        this.event({ type: "node.added", nodeId: n.id, message: `Added node ${n.name} (this computer).` });
        return n;
      }
      case "add_ssh_node": {
        const target = String(a.target);
        const host = target.slice(target.indexOf("@") + 1);
        const port = Number(a.port ?? 22);
        const ch = a.progress as ChannelLike;
        this.checkNewNode(String(a.name));
        await this.steps(ch, [`Asking ${host}:${port} for its SSH host key.`]);
        if (!this.knownHosts.has(host) && !a.acceptHostKey) {
          throw fail(
            "host_key_unknown",
            `The SSH host key of ${host}:${port} is not known yet.`,
            "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8",
          );
        }
        this.knownHosts.add(host);
        const user = target.includes("@") ? target.slice(0, target.indexOf("@")) : "root";
        await this.steps(ch, [
          `Connecting to ${host}:${port} as ${user}.`,
          "Uploading sam-agent 0.1.0 (x86_64).",
          "Making the node's TLS key and certificate on the server.",
          "Installing the sam-agent systemd service.",
          `Waiting for the agent at https://${host}:7420.`,
        ]);
        const n = this.newNode(String(a.name), "ssh", `https://${host}:7420`);
        this.event({ type: "node.added", nodeId: n.id, message: `Added node ${n.name} (SSH).` });
        return n;
      }
      case "hetzner_options": {
        if (!("hetzner-token" in this.keychain)) throw fail("secret_store", "No Hetzner token is stored.", "Add it in Settings.");
        const o: HetznerOptions = {
          serverTypes: [
            serverType("cx22", "CX22", "x86", 2, 4, 40, ["fsn1", "nbg1", "hel1"], "4.51"),
            serverType("cx32", "CX32", "x86", 4, 8, 80, ["fsn1", "nbg1", "hel1"], "7.73"),
            serverType("cpx11", "CPX 11", "x86", 2, 2, 40, ["fsn1", "nbg1"], "5.18"),
            {
              ...serverType("cax21", "CAX21", "arm", 4, 8, 80, ["fsn1", "nbg1", "hel1"], "7.13"),
              available: false,
              unavailableReason: "Arm64 (no agent for arm64 yet)",
            },
          ],
          locations: [
            { name: "fsn1", description: "Falkenstein DC Park 1", city: "Falkenstein", country: "DE", networkZone: "eu-central" },
            { name: "nbg1", description: "Nuremberg DC Park 1", city: "Nuremberg", country: "DE", networkZone: "eu-central" },
            { name: "hel1", description: "Helsinki DC Park 1", city: "Helsinki", country: "FI", networkZone: "eu-central" },
          ],
          images: [
            { name: "ubuntu-24.04", description: "Ubuntu 24.04", osFlavor: "ubuntu", osVersion: "24.04", architecture: "x86" },
            { name: "debian-12", description: "Debian 12", osFlavor: "debian", osVersion: "12", architecture: "x86" },
          ],
        };
        await this.sleep();
        return o;
      }
      case "add_hetzner_node": {
        if (!("hetzner-token" in this.keychain)) throw fail("secret_store", "No Hetzner token is stored.", "Add it in Settings.");
        const ch = a.progress as ChannelLike;
        const name = String(a.name);
        this.checkNewNode(name);
        await this.steps(ch, [
          `Creating SSH key sam-${name}.`,
          `Creating firewall sam-${name} (SSH and the agent port only).`,
          `Creating server ${name} (${String(a.serverType)} in ${String(a.location)}, ${String(a.image)}).`,
          "Waiting for the server to boot.",
          "Installing Docker (cloud-init).",
          "Uploading sam-agent 0.1.0 (x86_64).",
          "Waiting for the agent at https://203.0.113.50:7420.",
        ]);
        const n = this.newNode(name, "hetzner", "https://203.0.113.50:7420");
        n.providerIds = { server: 5151, firewall: 88, sshKey: 101 };
        this.event({ type: "node.added", nodeId: n.id, message: `Added node ${n.name} (Hetzner Cloud).` });
        return n;
      }
      case "node_stop_plan": {
        const n = this.node(a.node);
        if (n.status === "stopped") return { workspaces: [], sessions: [] };
        const ws = this.workspaces.filter((w) => w.node === n.id && w.status === "running");
        const ids = new Set(ws.map((w) => w.id));
        const sessions = this.sessions.filter((s) => ids.has(s.workspaceId) && s.status === "running");
        return {
          workspaces: ws.map(({ node: _node, ...w }) => w),
          sessions: sessions.map((s) => this.sessionView(s)),
        };
      }
      case "stop_node": {
        const n = this.node(a.node);
        const ch = a.progress as ChannelLike;
        n.status = "stopping";
        await this.steps(ch, ["Stopping every workspace on the node."]);
        for (const w of this.workspaces) if (w.node === n.id && w.status === "running") this.endWorkspace(w, "stopped", "node_stop");
        await this.steps(ch, [n.provider === "hetzner" ? "Powering off the server." : "Stopping sam-agent."]);
        n.status = "stopped";
        n.health = null;
        this.recount(n.id);
        this.event({ type: "node.stopped", nodeId: n.id, message: `Stopped node ${n.name}.` });
        return n;
      }
      case "upgrade_node": {
        const n = this.node(a.node);
        const ch = a.progress as ChannelLike;
        if (n.agentBuild === FAKE_APP_AGENT_BUILD && !a.force) {
          await this.steps(ch, [`sam-agent on ${n.name} is up to date: ${n.agentVersion} (build ${FAKE_APP_AGENT_BUILD.slice(0, 8)}).`]);
          return n;
        }
        await this.steps(ch, [
          `Upgrading sam-agent on ${n.name} from ${n.agentVersion} to ${n.agentVersion} (build ${FAKE_APP_AGENT_BUILD.slice(0, 8)}).`,
          "Restarting sam-agent; terminals and agent sessions stay in their holder processes.",
          `sam-agent on ${n.name} is now ${n.agentVersion} (build ${FAKE_APP_AGENT_BUILD.slice(0, 8)}).`,
        ]);
        n.agentBuild = FAKE_APP_AGENT_BUILD;
        this.event({ type: "node.upgraded", nodeId: n.id, message: `Upgraded sam-agent on ${n.name}.` });
        return n;
      }
      case "start_node": {
        const n = this.node(a.node);
        await this.steps(a.progress as ChannelLike, ["Starting sam-agent.", `Waiting for the agent at ${n.address}.`]);
        n.status = "running";
        n.health = "healthy";
        n.lastSeenAt = new Date().toISOString();
        this.event({ type: "node.started", nodeId: n.id, message: `Started node ${n.name}.` });
        return n;
      }
      case "remove_node": {
        const n = this.node(a.node);
        const ch = a.progress as ChannelLike;
        for (const w of this.workspaces.filter((x) => x.node === n.id)) {
          await this.steps(ch, [`Deleting workspace ${w.displayName}.`]);
          this.endWorkspace(w, "deleting", "workspace_stop");
        }
        this.workspaces = this.workspaces.filter((w) => w.node !== n.id);
        await this.steps(ch, n.provider === "hetzner" ? ["Deleting the server.", "Deleting the firewall.", "Deleting the SSH key."] : ["Removing sam-agent."]);
        this.nodes = this.nodes.filter((x) => x.id !== n.id);
        return { id: n.id, deleted: true };
      }
      case "node_events": {
        const n = this.node(a.node);
        return this.events.filter((e) => e.nodeId === n.id).slice(0, Number(a.limit ?? 100));
      }

      // ---- workspaces
      case "list_workspaces":
        return structuredClone(a.node ? this.workspaces.filter((w) => w.node === a.node) : this.workspaces);
      case "create_workspace": {
        const n = this.node(a.node);
        if (n.limits && this.workspaces.filter((w) => w.node === n.id).length >= n.limits.maxWorkspaces) {
          throw fail("limit_reached", `${n.name} has ${n.limits.maxWorkspaces} workspaces, its limit.`);
        }
        const name = String(a.name);
        const ch = a.progress as ChannelLike;
        const id = this.id("w-");
        const repo = (a.repository as string | undefined) ?? null;
        const w: WorkspaceView = {
          node: n.id,
          id,
          nodeId: n.id,
          displayName: name,
          projectPath: `/workspaces/${name}`,
          status: "creating",
          image: (a.image as string | undefined) ?? this.settings.defaultImage,
          repository: repo,
          branch: (a.branch as string | undefined) ?? null,
          createdAt: new Date().toISOString(),
          updatedAt: new Date().toISOString(),
          error: null,
        };
        this.workspaces.push(w);
        this.recount(n.id);
        await this.steps(ch, [
          "Creating the network and the volume.",
          ...(repo ? [`Cloning ${repo}${w.branch ? ` (${w.branch})` : ""}.`] : []),
          `Pulling ${w.image}.`,
          "Starting the container.",
        ]);
        w.status = "running";
        this.files[id] = { "README.md": `# ${name}\n` };
        this.programs[id] = new Set(w.image.startsWith("sam-workspace") ? ALL_AGENT_PROGRAMS : []);
        this.recount(n.id);
        this.event({ type: "workspace.created", nodeId: n.id, workspaceId: id, message: `Workspace ${name} is running.` });
        return structuredClone(w);
      }
      case "rename_workspace": {
        const w = this.ws(a.workspace);
        w.displayName = String(a.name);
        return structuredClone(w);
      }
      case "stop_workspace": {
        const w = this.ws(a.workspace);
        await this.sleep();
        this.endWorkspace(w, "stopped", "workspace_stop");
        this.recount(w.node);
        return structuredClone(w);
      }
      case "restart_workspace": {
        const w = this.ws(a.workspace);
        await this.sleep();
        if (w.status === "running") this.endWorkspace(w, "running", "workspace_restart");
        w.status = "running";
        this.recount(w.node);
        return structuredClone(w);
      }
      case "remove_workspace": {
        const w = this.ws(a.workspace);
        this.endWorkspace(w, "deleting", "workspace_stop");
        this.workspaces = this.workspaces.filter((x) => x.id !== w.id);
        this.recount(w.node);
        return { id: w.id, deleted: true };
      }
      case "workspace_events":
        return this.events.filter((e) => e.workspaceId === a.workspace).slice(0, Number(a.limit ?? 100));

      // ---- terminals
      case "list_terminals":
        this.ws(a.workspace);
        return this.terminals.filter((t) => t.workspaceId === a.workspace).map((t) => this.terminalView(t));
      case "open_terminal": {
        const w = this.ws(a.workspace);
        if (w.status !== "running") throw fail("conflict", `${w.displayName} is not running.`, "Start the workspace first.");
        const t: TerminalRec = {
          id: this.id("t-"),
          workspaceId: w.id,
          cols: Number(a.cols),
          rows: Number(a.rows),
          createdAt: new Date().toISOString(),
          exited: false,
          exitCode: null,
          ring: Array.from(te.encode(`Welcome to ${w.displayName}.\r\n$ `)),
          output: null,
          events: null,
          line: "",
          input: [],
          login: null,
        };
        this.terminals.push(t);
        return this.terminalView(t);
      }
      case "open_login_terminal": {
        const b = builtin(a.agent);
        if (!b) throw this.notBuiltin(a.agent);
        const w = this.ws(a.workspace);
        if (w.status !== "running") throw fail("conflict", `${w.displayName} is not running.`, "Start the workspace first.");
        const has = this.programs[w.id]?.has(b.login[0]) ?? false;
        const banner = !has
          ? `sh: 1: ${b.login[0]}: not found\r\n`
          : b.name === "codex"
            ? "Welcome to Codex.\r\n\r\nTo sign in with ChatGPT, open https://auth.openai.com/codex/device\r\nand enter this one-time code: FAKE-1234\r\n\r\nWaiting for you to finish signing in…\r\n"
            : `Opening the ${b.name} login…\r\nFollow the link it prints, then come back here.\r\n`;
        const t: TerminalRec = {
          id: this.id("t-"),
          workspaceId: w.id,
          cols: Number(a.cols),
          rows: Number(a.rows),
          createdAt: new Date().toISOString(),
          exited: !has,
          exitCode: has ? null : 127,
          ring: Array.from(te.encode(banner)),
          output: null,
          events: null,
          line: "",
          input: [],
          login: has ? b.name : null,
        };
        this.terminals.push(t);
        return this.terminalView(t);
      }
      case "attach_terminal": {
        const t = this.terminal(a.workspace, a.terminal);
        t.output = a.output as ChannelLike;
        t.events = a.events as ChannelLike;
        if (t.ring.length) this.send(t.output, new Uint8Array(t.ring).buffer);
        this.send(t.events, { type: "ready" } satisfies TerminalServerFrame);
        if (t.exited) this.send(t.events, { type: "exit", code: t.exitCode ?? 0 } satisfies TerminalServerFrame);
        // A login "completes" a while after it is shown (the person signs in in a browser).
        if (t.login && this.stepMs > 0) {
          const id = t.id;
          setTimeout(() => this.completeLogin(id), this.stepMs * 10);
        }
        return null;
      }
      case "terminal_ack": {
        this.terminal(a.workspace, a.terminal);
        if (!Number.isInteger(a.bytes) || (a.bytes as number) <= 0) {
          throw fail("invalid_input", "terminal_ack takes a positive byte count.");
        }
        return null;
      }
      case "terminal_input": {
        if (!headers) throw fail("invalid_input", "terminal_input needs the workspace and terminal headers.");
        const t = this.terminal(headers.workspace, headers.terminal);
        const bytes = a instanceof Uint8Array ? a : new Uint8Array(a as unknown as ArrayBuffer);
        t.input.push(...bytes);
        if (t.login) {
          // Ctrl+C interrupts the login; other keys go to the login program (ignored).
          if (bytes.includes(3)) this.exitTerminal(t, "^C\r\n", 130);
          return null;
        }
        this.echo(t, bytes);
        return null;
      }
      case "resize_terminal": {
        const t = this.terminal(a.workspace, a.terminal);
        t.cols = Number(a.cols);
        t.rows = Number(a.rows);
        return null;
      }
      case "detach_terminal": {
        const t = this.terminals.find((x) => x.id === a.terminal);
        if (t) {
          t.output = null;
          t.events = null;
        }
        return null;
      }
      case "kill_terminal":
        this.terminals = this.terminals.filter((t) => t.id !== a.terminal);
        return null;

      // ---- sessions
      case "list_sessions":
        this.ws(a.workspace);
        return this.sessions.filter((s) => s.workspaceId === a.workspace).map((s) => this.sessionView(s));
      case "new_session": {
        const w = this.ws(a.workspace);
        const agent = (a.agent as string | undefined) ?? "claude";
        // A built-in agent the image lacks, or without a key or a login, ends
        // `error` in its handshake, in its own words (as the node's agent does).
        const b = builtin(agent);
        const ready = b ? this.readiness(w.id).find((r) => r.name === agent) : undefined;
        const failure =
          !b || !ready || ready.state === "ready"
            ? null
            : ready.state === "missing"
              ? `The workspace's image has no ${b.adapter}, which the ${b.name} agent needs: use sam-workspace:latest, or add the npm package ${b.npm} (and Node.js 20 or newer) to the image`
              : b.authError;
        const s: SessionRec = {
          id: this.id("s-"),
          workspaceId: w.id,
          label: (a.label as string | undefined) ?? "",
          agent,
          status: failure ? "starting" : "running",
          attached: false,
          watchers: 0,
          createdAt: new Date().toISOString(),
          frames: [],
          seq: 0,
          channel: null,
          heldElsewhere: false,
          pendingPermission: null,
          turn: 0,
        };
        this.sessions.push(s);
        const view = this.sessionView(s);
        if (failure) setTimeout(() => this.failSession(s, failure), this.stepMs * 2);
        return view;
      }
      case "attach_session": {
        const s = this.session(a.session);
        if (s.status === "stopped" || s.status === "error") {
          throw fail(
            "session_not_running",
            `The agent session ${s.id} has stopped.`,
            "`sam session history SID` shows its conversation; `sam session new WS` starts another.",
          );
        }
        if ((s.heldElsewhere || s.channel) && !a.takeover) {
          throw fail(
            "session_already_attached",
            "Another client is attached to this session; attach with takeover=true to replace it.",
          );
        }
        if (s.channel) this.send(s.channel, { seq: s.seq, type: "session.detached", reason: "takeover" });
        s.heldElsewhere = false;
        s.channel = a.frames as ChannelLike;
        s.attached = true;
        for (const f of s.frames) this.send(s.channel, f);
        this.send(s.channel, { seq: s.seq, type: "session.attached", sessionId: s.id, takeover: !!a.takeover, watch: false });
        return null;
      }
      case "send_session_frame": {
        const s = this.session(a.session);
        void this.onClientFrame(s, a.frame as SessionClientFrame);
        return null;
      }
      case "detach_session": {
        const s = this.sessions.find((x) => x.id === a.session);
        if (s) {
          s.channel = null;
          s.attached = false;
        }
        return null;
      }
      case "stop_session": {
        const s = this.session(a.session);
        this.stopSession(s, "user_stop");
        return this.sessionView(s);
      }

      // ---- files and ports
      case "list_folder":
        return this.listFolder(String(a.workspace), String(a.path ?? ""));
      case "read_text_file": {
        const f = this.files[String(a.workspace)]?.[String(a.path)];
        if (f === undefined) throw fail("not_found", `${String(a.path)} does not exist.`);
        return f;
      }
      case "write_text_file":
        (this.files[String(a.workspace)] ??= {})[String(a.path)] = String(a.content);
        return null;
      case "list_ports": {
        this.ws(a.workspace);
        const ports: Port[] = a.workspace === "w-api" ? [{ port: 5432, protocol: "tcp" }, { port: 3000, protocol: "tcp" }] : [];
        return ports;
      }
      case "open_port":
        return `http://127.0.0.1:${40000 + Number(a.port)}`;

      // ---- settings and signals
      case "get_settings":
        return this.publicSettings();
      case "set_setting":
        return this.setSetting(String(a.key), String(a.value));
      case "set_hetzner_token":
        if (!String(a.token ?? "").trim()) throw fail("invalid_input", "The token is empty.");
        this.keychain["hetzner-token"] = String(a.token);
        return null;
      case "clear_hetzner_token":
        delete this.keychain["hetzner-token"];
        return null;
      case "list_agents": {
        const w = this.ws(a.workspace);
        if (w.status !== "running") throw fail("conflict", `${w.displayName} is not running.`, "Start the workspace first.");
        await this.sleep();
        return this.readiness(w.id);
      }
      case "set_agent_key": {
        if (!builtin(a.agent)) throw this.notBuiltin(a.agent);
        const key = String(a.key ?? "").trim();
        if (!key) throw fail("invalid_input", "The key is empty.");
        if (key.length > 4096 || /[\s\u0000-\u001f]/.test(key)) {
          throw fail("invalid_input", "That is not an API key: it has spaces, line breaks or is too long.");
        }
        this.keychain[`agent-key-${String(a.agent)}`] = key;
        return null;
      }
      case "clear_agent_key":
        if (!builtin(a.agent)) throw this.notBuiltin(a.agent);
        delete this.keychain[`agent-key-${String(a.agent)}`];
        return null;
      case "subscribe":
        this.signals = a.signals as ChannelLike;
        return null;
      default:
        throw fail("internal", `The fake does not know the command ${cmd}.`);
    }
  }

  private setSetting(key: string, value: string) {
    const num = (min: number, max: number) => {
      const n = Number(value);
      if (!/^\d+$/.test(value) || n < min || n > max) throw fail("invalid_input", `${key} must be a whole number from ${min} to ${max}.`);
      return n;
    };
    switch (key) {
      case "stale-seconds":
        this.settings.staleSeconds = num(5, 3600);
        break;
      case "max-nodes":
        this.settings.maxNodes = num(1, 1000);
        break;
      case "max-workspaces":
        this.settings.maxWorkspaces = num(1, 1000);
        break;
      case "max-sessions":
        this.settings.maxSessions = num(1, 1000);
        break;
      case "hcloud-endpoint":
        this.settings.hcloudEndpoint = value;
        break;
      case "theme":
        if (!["system", "light", "dark"].includes(value)) throw fail("invalid_input", "theme must be system, light or dark.");
        this.settings.theme = value as Settings["theme"];
        break;
      case "default-image":
        this.settings.defaultImage = value;
        break;
      case "auto-local":
        if (value !== "true" && value !== "false") throw fail("invalid_input", "auto-local must be true or false.");
        this.settings.autoLocal = value === "true";
        break;
      default:
        throw fail("invalid_input", `"${key}" is not a setting.`);
    }
    return null;
  }

  private listFolder(workspace: string, path: string): FileEntry[] {
    const files = this.files[workspace];
    if (!files) throw fail("not_found", "The workspace has no project folder.");
    const prefix = path && path !== "." ? path.replace(/\/$/, "") + "/" : "";
    const out = new Map<string, FileEntry>();
    for (const [p, content] of Object.entries(files)) {
      if (!p.startsWith(prefix)) continue;
      const rest = p.slice(prefix.length);
      const [head, ...more] = rest.split("/");
      if (more.length) out.set(head, { name: head, kind: "dir", size: 4096, modifiedAt: iso(60_000) });
      else out.set(head, { name: head, kind: "file", size: te.encode(content).length, modifiedAt: iso(60_000) });
    }
    if (prefix && out.size === 0) throw fail("not_found", `${path} does not exist.`);
    return [...out.values()];
  }

  // ---------------------------------------------------------------- terminals

  private terminal(ws: unknown, id: unknown): TerminalRec {
    const t = this.terminals.find((x) => x.id === id && x.workspaceId === ws);
    if (!t) throw fail("not_found", `There is no terminal ${String(id)}.`);
    return t;
  }

  private terminalView(t: TerminalRec): Terminal {
    return { id: t.id, cols: t.cols, rows: t.rows, createdAt: t.createdAt, exited: t.exited, exitCode: t.exitCode };
  }

  /** Test hook: bytes from the "program" in the terminal. */
  terminalOutput(id: string, text: string) {
    const t = this.terminals.find((x) => x.id === id);
    if (!t) return;
    const bytes = te.encode(text);
    t.ring.push(...bytes);
    this.send(t.output, bytes.buffer);
  }

  /** A tiny line discipline: echoes, and answers `echo …` and `exit`. */
  private echo(t: TerminalRec, bytes: Uint8Array) {
    let out = "";
    for (const b of bytes) {
      if (b === 13) {
        out += "\r\n";
        const line = t.line;
        t.line = "";
        if (line.startsWith("echo ")) out += line.slice(5) + "\r\n";
        else if (line === "exit") {
          this.terminalOutputRaw(t, out + "logout\r\n");
          t.exited = true;
          t.exitCode = 0;
          this.send(t.events, { type: "exit", code: 0 } satisfies TerminalServerFrame);
          return;
        } else if (line) out += `${line.split(" ")[0]}: command not found\r\n`;
        out += "$ ";
      } else if (b === 127) {
        if (t.line) {
          t.line = t.line.slice(0, -1);
          out += "\b \b";
        }
      } else {
        const ch = td.decode(new Uint8Array([b]));
        t.line += ch;
        out += ch;
      }
    }
    this.terminalOutputRaw(t, out);
  }

  private exitTerminal(t: TerminalRec, text: string, code: number) {
    if (t.exited) return;
    this.terminalOutputRaw(t, text);
    t.exited = true;
    t.exitCode = code;
    t.login = null;
    this.send(t.events, { type: "exit", code } satisfies TerminalServerFrame);
  }

  /** Test hook (and, paced, the browser fake): the login in a "Log in" terminal succeeds. */
  completeLogin(id: string) {
    const t = this.terminals.find((x) => x.id === id);
    const b = builtin(t?.login);
    if (!t || !b || t.exited) return;
    (this.homes[t.workspaceId] ??= {})[b.loginFile] = '{"tokens":"…"}';
    this.exitTerminal(t, "\r\nSuccessfully logged in.\r\n", 0);
  }

  private terminalOutputRaw(t: TerminalRec, text: string) {
    const bytes = te.encode(text);
    t.ring.push(...bytes);
    this.send(t.output, bytes.buffer);
  }

  // ---------------------------------------------------------------- sessions

  private session(id: unknown): SessionRec {
    const s = this.sessions.find((x) => x.id === id);
    if (!s) throw fail("not_found", `There is no agent session ${String(id)}.`);
    return s;
  }

  private sessionView(s: SessionRec): AgentSession {
    const { frames: _f, seq: _s, channel: _c, heldElsewhere: _h, pendingPermission: _p, turn: _t, ...v } = s;
    const view: AgentSession = { ...v, attached: !!s.channel || s.heldElsewhere };
    // As on the wire: present only when true.
    if (s.pendingPermission !== null && s.status === "running") view.permissionPending = true;
    return view;
  }

  /** Test hook: mark a session as held by another client. */
  holdElsewhere(id: string) {
    this.session(id).heldElsewhere = true;
  }

  private emit(s: SessionRec, body: Record<string, unknown>) {
    s.seq += 1;
    const f = { seq: s.seq, ...body } as SessionFrame;
    s.frames.push(f);
    this.send(s.channel, f);
  }

  private chunk(s: SessionRec, text: string, kind = "agent_message_chunk") {
    this.emit(s, { type: "agent.output", update: { sessionUpdate: kind, content: { type: "text", text } } });
  }

  private async onClientFrame(s: SessionRec, f: SessionClientFrame) {
    if (s.status !== "running") return;
    switch (f.type) {
      case "prompt": {
        s.turn += 1;
        const turn = s.turn;
        this.emit(s, { type: "user.prompt", text: f.text ?? null });
        await this.sleep();
        this.chunk(s, "The user wants the login test fixed. ", "agent_thought_chunk");
        this.chunk(s, "First read src/login.ts.", "agent_thought_chunk");
        await this.sleep();
        this.emit(s, {
          type: "agent.output",
          update: {
            sessionUpdate: "plan",
            entries: [
              { content: "Read the failing test", status: "completed", priority: "high" },
              { content: "Make login() redirect", status: "in_progress", priority: "high" },
              { content: "Run the tests", status: "pending", priority: "medium" },
            ],
          },
        });
        for (const piece of ["I found it: ", "`login()` returns **200**, ", "but the test expects a redirect.\n\n", "Here is the change:"]) {
          await this.sleep();
          if (s.turn !== turn) return;
          this.chunk(s, piece);
        }
        const toolCall = {
          toolCallId: `call-${turn}`,
          title: "Edit src/login.ts",
          kind: "edit",
          status: "pending",
          content: [
            {
              type: "diff",
              path: "src/login.ts",
              oldText: "export function login(user: string): number {\n  return 200;\n}\n",
              newText: "export function login(user: string): number {\n  return 302;\n}\n",
            },
          ],
        };
        this.emit(s, { type: "agent.output", update: { sessionUpdate: "tool_call", ...toolCall } });
        await this.sleep();
        s.pendingPermission = turn;
        this.emit(s, {
          type: "agent.permission",
          requestId: turn,
          toolCall,
          options: [
            { optionId: "allow-once", name: "Allow once", kind: "allow_once" },
            { optionId: "allow-always", name: "Always allow", kind: "allow_always" },
            { optionId: "reject-once", name: "Reject", kind: "reject_once" },
          ],
        });
        this.signal({
          type: "permission",
          nodeId: this.ws(s.workspaceId).node,
          event: {
            id: this.id("ev-"),
            type: "session.permission_requested",
            level: "warn",
            nodeId: this.ws(s.workspaceId).node,
            workspaceId: s.workspaceId,
            sessionId: s.id,
            message: "Edit src/login.ts",
            createdAt: new Date().toISOString(),
          },
        });
        return;
      }
      case "permission.response": {
        if (s.pendingPermission === null || String(s.pendingPermission) !== String(f.requestId)) {
          this.send(s.channel, { seq: s.seq, type: "error", message: `No open permission request has requestId ${String(f.requestId)}.` });
          return;
        }
        const turn = s.pendingPermission;
        s.pendingPermission = null;
        this.emit(s, { type: "agent.permission_resolved", requestId: f.requestId, optionId: f.optionId });
        this.event({
          type: "session.permission_resolved",
          nodeId: this.ws(s.workspaceId).node,
          workspaceId: s.workspaceId,
          sessionId: s.id,
          message: `Permission answered: ${f.optionId}.`,
          detail: { requestId: f.requestId, optionId: f.optionId },
        });
        const allowed = f.optionId.startsWith("allow");
        await this.sleep();
        this.emit(s, {
          type: "agent.output",
          update: { sessionUpdate: "tool_call_update", toolCallId: `call-${turn}`, status: allowed ? "completed" : "failed" },
        });
        if (allowed) {
          const files = (this.files[s.workspaceId] ??= {});
          files["src/login.ts"] = "export function login(user: string): number {\n  return 302;\n}\n";
        }
        await this.sleep();
        this.chunk(s, allowed ? "Done. The login test passes now." : "Understood, I left the file alone.");
        this.emit(s, { type: "agent.turn_end", stopReason: "end_turn" });
        return;
      }
      case "cancel": {
        s.turn += 1;
        if (s.pendingPermission !== null) {
          this.emit(s, { type: "agent.permission_resolved", requestId: s.pendingPermission, outcome: "cancelled" });
          s.pendingPermission = null;
        }
        this.emit(s, { type: "agent.turn_end", stopReason: "cancelled" });
        return;
      }
    }
  }

  /** The agent's handshake failed: `agent.error`, then `session.stopped` with reason error. */
  private failSession(s: SessionRec, message: string) {
    if (s.status === "stopped" || s.status === "error") return;
    this.emit(s, { type: "agent.error", message });
    s.status = "error";
    s.stopReason = "error";
    s.error = message;
    s.stoppedAt = new Date().toISOString();
    this.emit(s, { type: "session.stopped", reason: "error" });
    const w = this.workspaces.find((x) => x.id === s.workspaceId);
    if (w) {
      this.event({
        type: "session.stopped",
        level: "error",
        nodeId: w.node,
        workspaceId: w.id,
        sessionId: s.id,
        message: `Agent session ${JSON.stringify(s.label)} ended: ${message}`,
        detail: { reason: "error" },
      });
    }
  }

  private stopSession(s: SessionRec, reason: AgentSession["stopReason"] & string) {
    if (s.status === "stopped" || s.status === "error") return;
    s.status = "stopped";
    s.stopReason = reason;
    s.stoppedAt = new Date().toISOString();
    this.emit(s, { type: "session.stopped", reason });
  }

  private endWorkspace(w: WorkspaceView, status: WorkspaceView["status"], reason: "workspace_stop" | "workspace_restart" | "node_stop") {
    for (const t of this.terminals.filter((x) => x.workspaceId === w.id)) {
      t.exited = true;
      t.exitCode = 137;
      this.send(t.events, { type: "exit", code: 137 } satisfies TerminalServerFrame);
    }
    this.terminals = this.terminals.filter((x) => x.workspaceId !== w.id);
    for (const s of this.sessions.filter((x) => x.workspaceId === w.id)) this.stopSession(s, reason);
    w.status = status;
  }
}
