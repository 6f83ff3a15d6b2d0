import { describe, expect, it } from "vitest";

import type { SessionFrame } from "../api/gen/SessionFrame";
import { blockText, emptyChat, foldFrame, foldFrames, openPermissions } from "./fold";

let seq = 0;
const f = (body: Record<string, unknown>): SessionFrame => ({ seq: ++seq, ...body }) as SessionFrame;
const out = (update: Record<string, unknown>) => f({ type: "agent.output", update });
const msg = (text: string) => out({ sessionUpdate: "agent_message_chunk", content: { type: "text", text } });
const thought = (text: string) => out({ sessionUpdate: "agent_thought_chunk", content: { type: "text", text } });

describe("foldFrames", () => {
  it("streams consecutive message chunks into one markdown message", () => {
    const s = foldFrames(emptyChat, [f({ type: "user.prompt", text: "Why?" }), msg("Let me "), msg("run the **tests**."), msg("\n\nDone")]);
    expect(s.items).toEqual([
      { kind: "user", id: expect.any(String), text: "Why?" },
      { kind: "agent", id: expect.any(String), text: "Let me run the **tests**.\n\nDone" },
    ]);
    expect(s.running).toBe(true);
  });

  it("keeps thoughts apart from messages, each run folded into one block", () => {
    const s = foldFrames(emptyChat, [thought("The test "), thought("expects 302."), msg("Found it."), thought("Next: edit."), msg("Editing.")]);
    expect(s.items.map((i) => [i.kind, "text" in i ? i.text : ""])).toEqual([
      ["thought", "The test expects 302."],
      ["agent", "Found it."],
      ["thought", "Next: edit."],
      ["agent", "Editing."],
    ]);
  });

  it("gives prompts made of content blocks their text", () => {
    const s = foldFrame(emptyChat, f({ type: "user.prompt", content: [{ type: "text", text: "Look:" }, { type: "image", mimeType: "image/png", data: "x" }] }));
    expect(s.items[0]).toMatchObject({ kind: "user", text: "Look:\n\n[image]" });
  });

  it("updates a tool call in place, keeping what the update leaves out", () => {
    const s = foldFrames(emptyChat, [
      out({
        sessionUpdate: "tool_call",
        toolCallId: "c1",
        title: "Edit src/login.ts",
        kind: "edit",
        status: "pending",
        content: [{ type: "diff", path: "src/login.ts", oldText: "a\n", newText: "b\n" }],
        locations: [{ path: "src/login.ts", line: 2 }],
      }),
      msg("meanwhile"),
      out({ sessionUpdate: "tool_call_update", toolCallId: "c1", status: "completed" }),
    ]);
    expect(s.items[0]).toEqual({
      kind: "tool",
      id: expect.any(String),
      toolCallId: "c1",
      title: "Edit src/login.ts",
      toolKind: "edit",
      status: "completed",
      content: [{ type: "diff", path: "src/login.ts", oldText: "a\n", newText: "b\n" }],
      locations: ["src/login.ts:2"],
    });
    expect(s.items).toHaveLength(2);
  });

  it("reads text and terminal tool content; a new file's diff has no old text", () => {
    const s = foldFrame(
      emptyChat,
      out({
        sessionUpdate: "tool_call",
        toolCallId: "c2",
        title: "Run tests",
        kind: "execute",
        content: [
          { type: "content", content: { type: "text", text: "12 passed" } },
          { type: "terminal", terminalId: "term-1" },
          { type: "diff", path: "new.ts", newText: "x" },
        ],
      }),
    );
    expect(s.items[0]).toMatchObject({
      status: "pending",
      content: [
        { type: "text", text: "12 passed" },
        { type: "terminal", terminalId: "term-1" },
        { type: "diff", path: "new.ts", oldText: null, newText: "x" },
      ],
    });
  });

  it("creates a tool call from an update it has not seen", () => {
    const s = foldFrame(emptyChat, out({ sessionUpdate: "tool_call_update", toolCallId: "c9", title: "Read", status: "in_progress" }));
    expect(s.items[0]).toMatchObject({ kind: "tool", toolCallId: "c9", title: "Read", status: "in_progress" });
  });

  it("shows one plan per turn, replaced as it changes", () => {
    const plan = (status: string) => out({ sessionUpdate: "plan", entries: [{ content: "Fix it", status, priority: "high" }] });
    let s = foldFrames(emptyChat, [f({ type: "user.prompt", text: "go" }), plan("pending"), msg("working"), plan("completed")]);
    expect(s.items.filter((i) => i.kind === "plan")).toEqual([
      { kind: "plan", id: expect.any(String), entries: [{ content: "Fix it", status: "completed", priority: "high" }] },
    ]);
    s = foldFrames(s, [f({ type: "user.prompt", text: "again" }), plan("pending")]);
    expect(s.items.filter((i) => i.kind === "plan")).toHaveLength(2);
  });

  it("offers a permission's options until it is resolved", () => {
    const ask = f({
      type: "agent.permission",
      requestId: 7,
      toolCall: { toolCallId: "call_1", title: "Run `npm test`", kind: "execute", status: "pending" },
      options: [
        { optionId: "allow-once", name: "Allow once", kind: "allow_once" },
        { optionId: "reject-once", name: "Reject", kind: "reject_once" },
      ],
    });
    let s = foldFrame(emptyChat, ask);
    expect(openPermissions(s)).toHaveLength(1);
    expect(s.items[0]).toMatchObject({
      kind: "permission",
      requestId: 7,
      title: "Run `npm test`",
      toolKind: "execute",
      options: [
        { optionId: "allow-once", name: "Allow once", kind: "allow_once" },
        { optionId: "reject-once", name: "Reject", kind: "reject_once" },
      ],
      resolved: null,
    });
    s = foldFrame(s, f({ type: "agent.permission_resolved", requestId: 7, optionId: "allow-once" }));
    expect(s.items[0]).toMatchObject({ resolved: { optionId: "allow-once", outcome: null } });
    expect(openPermissions(s)).toHaveLength(0);
    const cancelled = foldFrames(emptyChat, [ask, f({ type: "agent.permission_resolved", requestId: 7, outcome: "cancelled" })]);
    expect(cancelled.items[0]).toMatchObject({ resolved: { optionId: null, outcome: "cancelled" } });
  });

  it("matches string request ids too, and leaves out a diff the tool card already shows", () => {
    const tool = out({
      sessionUpdate: "tool_call",
      toolCallId: "call_2",
      title: "Edit",
      kind: "edit",
      content: [{ type: "diff", path: "a", oldText: "1", newText: "2" }],
    });
    const ask = f({
      type: "agent.permission",
      requestId: "perm-2",
      toolCall: { toolCallId: "call_2", title: "Edit", kind: "edit", content: [{ type: "diff", path: "a", oldText: "1", newText: "2" }] },
      options: [{ optionId: "allow", name: "Allow", kind: "allow_once" }],
    });
    const s = foldFrames(emptyChat, [tool, ask, f({ type: "agent.permission_resolved", requestId: "perm-2", optionId: "allow" })]);
    expect(s.items[1]).toMatchObject({ kind: "permission", toolCallId: "call_2", content: [], resolved: { optionId: "allow" } });
    const alone = foldFrame(emptyChat, ask);
    expect(alone.items[0]).toMatchObject({ toolCallId: null, content: [{ type: "diff", path: "a" }] });
  });

  it("ends turns, shows errors and the stop, and no open permissions after a stop", () => {
    let s = foldFrames(emptyChat, [f({ type: "user.prompt", text: "go" }), f({ type: "agent.turn_end", stopReason: "end_turn" })]);
    expect(s.running).toBe(false);
    expect(s.items.map((i) => i.kind)).toEqual(["user"]);
    s = foldFrames(s, [f({ type: "user.prompt", text: "again" }), f({ type: "agent.turn_end", stopReason: "cancelled" })]);
    expect(s.items.at(-1)).toMatchObject({ kind: "turn_end", stopReason: "cancelled" });
    s = foldFrames(s, [
      f({ type: "user.prompt", text: "x" }),
      f({ type: "agent.permission", requestId: 1, toolCall: {}, options: [] }),
      f({ type: "agent.error", message: "model overloaded" }),
    ]);
    expect(s.running).toBe(false);
    expect(s.items.at(-1)).toMatchObject({ kind: "error", message: "model overloaded" });
    s = foldFrame(s, f({ type: "session.stopped", reason: "user_stop" }));
    expect(s.stopped).toBe("user_stop");
    expect(s.items.at(-1)).toMatchObject({ kind: "stopped", reason: "user_stop" });
    expect(openPermissions(s)).toEqual([]);
  });

  it("ignores replayed frames (seq not newer) but never socket frames", () => {
    const a = { seq: 10, type: "agent.output", update: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "once" } } } as SessionFrame;
    let s = foldFrames(emptyChat, [a, a]);
    expect(s.items).toEqual([{ kind: "agent", id: "10", text: "once" }]);
    s = foldFrame(s, { seq: 10, type: "session.attached", sessionId: "s", takeover: false, watch: false });
    expect(s.attached).toBe(true);
    s = foldFrame(s, { seq: 10, type: "session.detached", reason: "takeover" });
    expect([s.attached, s.detached]).toEqual([false, "takeover"]);
    s = foldFrame(s, { seq: 10, type: "error", message: "No open permission request has requestId 99." });
    expect(s.notice).toMatch(/requestId 99/);
    s = foldFrame(s, { seq: 11, type: "session.attached", sessionId: "s", takeover: true, watch: false });
    expect([s.attached, s.detached, s.notice]).toEqual([true, null, null]);
    expect(s.lastSeq).toBe(10);
  });

  it("skips updates it has nothing to show for, and returns the same state for no frames", () => {
    const s = foldFrames(emptyChat, [out({ sessionUpdate: "available_commands_update", availableCommands: [] }), f({ type: "agent.output", update: "nonsense" })]);
    expect(s.items).toEqual([]);
    expect(foldFrames(s, [])).toBe(s);
  });

  it("shares untouched items between states", () => {
    const s1 = foldFrames(emptyChat, [f({ type: "user.prompt", text: "a" }), msg("b")]);
    const s2 = foldFrame(s1, msg("c"));
    expect(s2.items[0]).toBe(s1.items[0]);
    expect(s2.items[1]).not.toBe(s1.items[1]);
    expect(s1.items[1]).toMatchObject({ text: "b" });
  });
});

describe("blockText", () => {
  it("reads the ACP content blocks", () => {
    expect(blockText({ type: "text", text: "hi" })).toBe("hi");
    expect(blockText({ type: "image", data: "x", mimeType: "image/png" })).toBe("[image]");
    expect(blockText({ type: "resource_link", name: "spec", uri: "file:///spec.md" })).toBe("[spec](file:///spec.md)");
    expect(blockText({ type: "resource", resource: { uri: "file:///a", text: "body" } })).toBe("body");
    expect(blockText("plain")).toBe("plain");
    expect(blockText(null)).toBe("");
  });
});
