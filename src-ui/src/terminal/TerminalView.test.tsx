import { act, render, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { installFake } from "../testing/render";

// A stand-in for xterm.js (it needs a real canvas): records what the view does with it.
const terms: FakeTerminal[] = [];
class FakeTerminal {
  written: string[] = [];
  dataHandlers: ((d: string) => void)[] = [];
  keyHandler: ((e: KeyboardEvent) => boolean) | null = null;
  cols = 100;
  rows = 30;
  options: Record<string, unknown> = {};
  disposed = false;
  addons: unknown[] = [];
  constructor() {
    terms.push(this);
  }
  loadAddon(a: { activate?: unknown; kind?: string }) {
    if (a.kind === "webgl") throw new Error("WebGL2 not supported");
    this.addons.push(a);
  }
  open() {}
  write(b: Uint8Array | string) {
    this.written.push(typeof b === "string" ? b : new TextDecoder().decode(b));
  }
  onData(h: (d: string) => void) {
    this.dataHandlers.push(h);
    return { dispose() {} };
  }
  onBinary() {
    return { dispose() {} };
  }
  onResize() {
    return { dispose() {} };
  }
  attachCustomKeyEventHandler(h: (e: KeyboardEvent) => boolean) {
    this.keyHandler = h;
  }
  focus() {}
  dispose() {
    this.disposed = true;
  }
}
vi.mock("@xterm/xterm", () => ({ Terminal: FakeTerminal }));
vi.mock("@xterm/addon-fit", () => ({ FitAddon: class { fit() {} } }));
vi.mock("@xterm/addon-search", () => ({ SearchAddon: class { findNext() {} findPrevious() {} clearDecorations() {} } }));
vi.mock("@xterm/addon-webgl", () => ({ WebglAddon: class { kind = "webgl"; onContextLoss() {} dispose() {} } }));

const { TerminalView } = await import("./TerminalView");

afterEach(() => {
  terms.length = 0;
});

describe("TerminalView", () => {
  it("replays and streams output, sends keystrokes as bytes, detaches on unmount", async () => {
    const fake = installFake({ seedTerminal: true });
    const { container, unmount } = render(<TerminalView workspace="w-api" terminalId="t-kept" active dark={false} />);
    await waitFor(() => expect(container.querySelector("[data-state=ready]")).toBeTruthy());
    // No WebGL2 here: the DOM renderer.
    expect(container.querySelector("[data-renderer=dom]")).toBeTruthy();
    const term = terms[0];
    expect(term.written.join("")).toContain("12 passed (kept on the node)");
    act(() => term.dataHandlers.forEach((h) => h("echo hi\r")));
    await waitFor(() => expect(term.written.join("")).toContain("hi\r\n$ "));
    const input = fake.callsOf("terminal_input");
    expect(new TextDecoder().decode(input[0].args as Uint8Array)).toBe("echo hi\r");
    expect(input[0].headers).toEqual({ workspace: "w-api", terminal: "t-kept" });
    // Tab shortcuts are not the shell's.
    expect(term.keyHandler!({ key: "T", code: "KeyT", ctrlKey: true, shiftKey: true, altKey: false, metaKey: false, type: "keydown" } as KeyboardEvent)).toBe(false);
    expect(term.keyHandler!({ key: "c", code: "KeyC", ctrlKey: true, shiftKey: false, altKey: false, metaKey: false, type: "keydown" } as KeyboardEvent)).toBe(true);
    unmount();
    expect(term.disposed).toBe(true);
    expect(fake.callsOf("detach_terminal")).toHaveLength(1);
    expect(fake.callsOf("kill_terminal")).toHaveLength(0);
  });

  it("shows when the program exited", async () => {
    installFake({ seedTerminal: true });
    const onExit = vi.fn();
    const { container } = render(<TerminalView workspace="w-api" terminalId="t-kept" active dark onExit={onExit} />);
    await waitFor(() => expect(container.querySelector("[data-state=ready]")).toBeTruthy());
    act(() => terms[0].dataHandlers.forEach((h) => h("exit\r")));
    await waitFor(() => expect(container.querySelector("[data-state=exited]")).toBeTruthy());
    expect(container.textContent).toContain("Exited with code 0");
    expect(onExit).toHaveBeenCalledWith(0);
  });

  it("explains a failed attach and reconnects", async () => {
    installFake();
    const { container, getByRole } = render(<TerminalView workspace="w-api" terminalId="t-none" active dark />);
    await waitFor(() => expect(container.querySelector("[data-state=error]")).toBeTruthy());
    expect(getByRole("alert").textContent).toContain("There is no terminal t-none.");
    act(() => getByRole("button", { name: "Reconnect" }).click());
    await waitFor(() => expect(terms).toHaveLength(2));
  });
});
