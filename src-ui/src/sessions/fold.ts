// Folding an agent session's frames (history, then live) into what the chat shows:
// consecutive message chunks become one markdown message, thoughts one collapsed
// block, tool calls one card updated in place, plans one checklist per turn,
// permission prompts with their options and, later, their answer.
import type { JsonValue } from "../api/gen/serde_json/JsonValue";
import type { RequestId } from "../api/gen/RequestId";
import type { SessionFrame } from "../api/gen/SessionFrame";
import type { StopReason } from "../api/gen/StopReason";

export type ToolContent =
  | { type: "diff"; path: string; oldText: string | null; newText: string }
  | { type: "text"; text: string }
  | { type: "terminal"; terminalId: string };

export type PlanEntry = { content: string; status: string; priority: string | null };

export type PermissionOption = { optionId: string; name: string; kind: string };

export type ChatItem =
  | { kind: "user"; id: string; text: string }
  | { kind: "agent"; id: string; text: string }
  | { kind: "thought"; id: string; text: string }
  | {
      kind: "tool";
      id: string;
      toolCallId: string;
      title: string;
      toolKind: string;
      status: string;
      content: ToolContent[];
      locations: string[];
    }
  | { kind: "plan"; id: string; entries: PlanEntry[] }
  | {
      kind: "permission";
      id: string;
      requestId: RequestId;
      /** The tool call it is about, when the chat shows that call already (its diff is there). */
      toolCallId: string | null;
      title: string;
      toolKind: string;
      content: ToolContent[];
      options: PermissionOption[];
      resolved: null | { optionId: string | null; outcome: string | null };
    }
  | { kind: "turn_end"; id: string; stopReason: string }
  | { kind: "error"; id: string; message: string }
  | { kind: "stopped"; id: string; reason: StopReason };

export type ChatState = {
  items: ChatItem[];
  /** The seq of the last conversation frame folded; older or equal ones are replays. */
  lastSeq: number;
  /** A turn runs: a prompt went in and no turn end came back yet. */
  running: boolean;
  attached: boolean;
  /** Why the socket was detached (e.g. "takeover"), while it is. */
  detached: string | null;
  stopped: StopReason | null;
  /** The last error about the socket itself (not the conversation). */
  notice: string | null;
  tools: Record<string, number>;
  permissions: Record<string, number>;
  /** Index of the plan item of the current turn, if any. */
  plan: number | null;
};

export const emptyChat: ChatState = {
  items: [],
  lastSeq: -1,
  running: false,
  attached: false,
  detached: null,
  stopped: null,
  notice: null,
  tools: {},
  permissions: {},
  plan: null,
};

type Obj = { [k: string]: JsonValue };

function obj(v: JsonValue | undefined): Obj | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : null;
}

function str(v: JsonValue | undefined): string | null {
  return typeof v === "string" ? v : null;
}

/** The text of one ACP content block. */
export function blockText(v: JsonValue | undefined): string {
  const b = obj(v);
  if (!b) return typeof v === "string" ? v : "";
  switch (b.type) {
    case "text":
      return str(b.text) ?? "";
    case "image":
      return "[image]";
    case "audio":
      return "[audio]";
    case "resource_link": {
      const name = str(b.name) ?? str(b.uri) ?? "resource";
      return `[${name}](${str(b.uri) ?? ""})`;
    }
    case "resource": {
      const r = obj(b.resource);
      return str(r?.text) ?? `[${str(r?.uri) ?? "resource"}]`;
    }
    default:
      return "";
  }
}

function toolContents(v: JsonValue | undefined): ToolContent[] {
  if (!Array.isArray(v)) return [];
  const out: ToolContent[] = [];
  for (const c of v) {
    const o = obj(c);
    if (!o) continue;
    if (o.type === "diff") {
      out.push({ type: "diff", path: str(o.path) ?? "", oldText: str(o.oldText), newText: str(o.newText) ?? "" });
    } else if (o.type === "content") {
      const t = blockText(o.content);
      if (t) out.push({ type: "text", text: t });
    } else if (o.type === "terminal") {
      out.push({ type: "terminal", terminalId: str(o.terminalId) ?? "" });
    }
  }
  return out;
}

function locations(v: JsonValue | undefined): string[] {
  if (!Array.isArray(v)) return [];
  return v
    .map((l) => {
      const o = obj(l);
      const p = str(o?.path);
      if (!p) return null;
      return typeof o?.line === "number" ? `${p}:${o.line}` : p;
    })
    .filter((x): x is string => x !== null);
}

function promptText(f: { text?: string | null; content?: JsonValue[] | null }): string {
  if (f.text) return f.text;
  return (f.content ?? []).map(blockText).filter(Boolean).join("\n\n");
}

function planEntries(v: JsonValue | undefined): PlanEntry[] {
  if (!Array.isArray(v)) return [];
  return v
    .map(obj)
    .filter((o): o is Obj => o !== null)
    .map((o) => ({ content: str(o.content) ?? "", status: str(o.status) ?? "pending", priority: str(o.priority) }));
}

/** Folds frames into the chat. Pure: returns a new state, shares untouched items. */
export function foldFrames(state: ChatState, frames: SessionFrame[]): ChatState {
  if (frames.length === 0) return state;
  const s: ChatState = {
    ...state,
    items: [...state.items],
    tools: { ...state.tools },
    permissions: { ...state.permissions },
  };
  for (const f of frames) foldInto(s, f);
  return s;
}

export function foldFrame(state: ChatState, f: SessionFrame): ChatState {
  return foldFrames(state, [f]);
}

function appendText(s: ChatState, kind: "agent" | "thought" | "user", text: string, id: string) {
  if (!text) return;
  const last = s.items[s.items.length - 1];
  if (last && last.kind === kind) {
    s.items[s.items.length - 1] = { ...last, text: last.text + text };
  } else {
    s.items.push({ kind, id, text });
  }
}

function foldInto(s: ChatState, f: SessionFrame) {
  // Frames about the socket carry the head seq, not their own: never deduplicated.
  switch (f.type) {
    case "session.attached":
      s.attached = true;
      s.detached = null;
      s.notice = null;
      return;
    case "session.detached":
      s.attached = false;
      s.detached = f.reason;
      return;
    case "error":
      s.notice = f.message;
      return;
    default:
      break;
  }
  if (f.seq <= s.lastSeq) return;
  s.lastSeq = f.seq;
  const id = String(f.seq);
  switch (f.type) {
    case "user.prompt":
      s.items.push({ kind: "user", id, text: promptText(f) });
      s.running = true;
      s.plan = null;
      return;
    case "agent.output":
      foldUpdate(s, f.update, id);
      return;
    case "agent.permission": {
      const tc = obj(f.toolCall);
      const options = (Array.isArray(f.options) ? f.options : [])
        .map(obj)
        .filter((o): o is Obj => o !== null)
        .map((o) => ({ optionId: str(o.optionId) ?? "", name: str(o.name) ?? str(o.optionId) ?? "", kind: str(o.kind) ?? "" }));
      const toolCallId = str(tc?.toolCallId);
      const shown = toolCallId !== null && s.tools[toolCallId] !== undefined;
      s.permissions[String(f.requestId)] = s.items.length;
      s.items.push({
        kind: "permission",
        id,
        requestId: f.requestId,
        toolCallId: shown ? toolCallId : null,
        title: str(tc?.title) ?? "The agent asks for permission",
        toolKind: str(tc?.kind) ?? "other",
        // The card above already shows this call's diff; do not repeat it.
        content: shown ? [] : toolContents(tc?.content),
        options,
        resolved: null,
      });
      return;
    }
    case "agent.permission_resolved": {
      const i = s.permissions[String(f.requestId)];
      const item = i === undefined ? undefined : s.items[i];
      if (item && item.kind === "permission") {
        s.items[i] = { ...item, resolved: { optionId: f.optionId ?? null, outcome: f.outcome ?? null } };
      }
      return;
    }
    case "agent.turn_end":
      s.running = false;
      if (f.stopReason !== "end_turn") s.items.push({ kind: "turn_end", id, stopReason: f.stopReason });
      return;
    case "agent.error":
      s.running = false;
      s.items.push({ kind: "error", id, message: f.message });
      return;
    case "session.stopped":
      s.running = false;
      s.stopped = f.reason;
      s.items.push({ kind: "stopped", id, reason: f.reason });
      return;
  }
}

function foldUpdate(s: ChatState, update: JsonValue, id: string) {
  const u = obj(update);
  if (!u) return;
  switch (u.sessionUpdate) {
    case "agent_message_chunk":
      appendText(s, "agent", blockText(u.content), id);
      return;
    case "agent_thought_chunk":
      appendText(s, "thought", blockText(u.content), id);
      return;
    case "user_message_chunk":
      appendText(s, "user", blockText(u.content), id);
      return;
    case "tool_call":
    case "tool_call_update": {
      const toolCallId = str(u.toolCallId) ?? id;
      const i = s.tools[toolCallId];
      const prev = i === undefined ? undefined : s.items[i];
      if (prev && prev.kind === "tool") {
        s.items[i] = {
          ...prev,
          title: str(u.title) ?? prev.title,
          toolKind: str(u.kind) ?? prev.toolKind,
          status: str(u.status) ?? prev.status,
          content: Array.isArray(u.content) ? toolContents(u.content) : prev.content,
          locations: Array.isArray(u.locations) ? locations(u.locations) : prev.locations,
        };
      } else {
        s.tools[toolCallId] = s.items.length;
        s.items.push({
          kind: "tool",
          id,
          toolCallId,
          title: str(u.title) ?? "Tool call",
          toolKind: str(u.kind) ?? "other",
          status: str(u.status) ?? "pending",
          content: toolContents(u.content),
          locations: locations(u.locations),
        });
      }
      return;
    }
    case "plan": {
      const entries = planEntries(u.entries);
      const cur = s.plan === null ? undefined : s.items[s.plan];
      if (cur && cur.kind === "plan") {
        s.items[s.plan!] = { ...cur, entries };
      } else {
        s.plan = s.items.length;
        s.items.push({ kind: "plan", id, entries });
      }
      return;
    }
    default:
      // available_commands_update, current_mode_update, …: nothing to show.
      return;
  }
}

/** Permission prompts still waiting for an answer (none once the session stopped). */
export function openPermissions(s: ChatState): Extract<ChatItem, { kind: "permission" }>[] {
  if (s.stopped) return [];
  return s.items.filter((i): i is Extract<ChatItem, { kind: "permission" }> => i.kind === "permission" && i.resolved === null);
}
