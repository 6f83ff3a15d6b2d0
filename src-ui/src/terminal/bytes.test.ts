import { describe, expect, it, vi } from "vitest";

import { binaryToBytes, concat, dataToBytes, InputQueue } from "./bytes";
import { loadRenderer } from "./renderer";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("bytes", () => {
  it("encodes typed text as UTF-8 and binary strings byte for byte", () => {
    expect([...dataToBytes("é\r")]).toEqual([0xc3, 0xa9, 13]);
    expect([...binaryToBytes("\x1b[M\xff")]).toEqual([27, 91, 77, 255]);
    expect(text(concat([dataToBytes("ab"), dataToBytes("c")]))).toBe("abc");
  });
});

describe("InputQueue", () => {
  it("sends in order, coalescing what is typed while a send is in flight", async () => {
    const sent: string[] = [];
    let release!: () => void;
    const send = vi.fn(async (b: Uint8Array) => {
      sent.push(text(b));
      if (sent.length === 1) await new Promise<void>((r) => (release = r));
    });
    const q = new InputQueue(send, () => {});
    q.push(dataToBytes("l"));
    q.push(dataToBytes("s"));
    q.push(dataToBytes(" -la"));
    q.push(new Uint8Array(0));
    release();
    await vi.waitFor(() => expect(sent).toEqual(["l", "s -la"]));
    q.push(dataToBytes("\r"));
    await vi.waitFor(() => expect(sent).toEqual(["l", "s -la", "\r"]));
  });

  it("reports a failed send and carries on with later input", async () => {
    const errors: unknown[] = [];
    let fail = true;
    const sent: string[] = [];
    const q = new InputQueue(async (b) => {
      if (fail) {
        fail = false;
        throw new Error("node gone");
      }
      sent.push(text(b));
    }, (e) => errors.push(e));
    q.push(dataToBytes("a"));
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    q.push(dataToBytes("b"));
    await vi.waitFor(() => expect(sent).toEqual(["b"]));
  });
});

describe("loadRenderer", () => {
  it("uses WebGL when the addon loads, and falls back to the DOM on a lost context", () => {
    let lost: () => void = () => {};
    const addon = { activate: vi.fn(), dispose: vi.fn(), onContextLoss: (cb: () => void) => (lost = cb) };
    const term = { loadAddon: vi.fn() };
    const fallback = vi.fn();
    expect(loadRenderer(term, () => addon, fallback)).toBe("webgl");
    expect(term.loadAddon).toHaveBeenCalledWith(addon);
    lost();
    expect(addon.dispose).toHaveBeenCalled();
    expect(fallback).toHaveBeenCalledWith("dom");
  });

  it("uses the DOM renderer when WebGL2 is missing", () => {
    const addon = { activate: vi.fn(), dispose: vi.fn(), onContextLoss: vi.fn() };
    const term = {
      loadAddon: vi.fn(() => {
        throw new Error("WebGL2 not supported");
      }),
    };
    expect(loadRenderer(term, () => addon)).toBe("dom");
    expect(addon.dispose).toHaveBeenCalled();
    expect(loadRenderer(term, () => { throw new Error("no"); })).toBe("dom");
  });
});
