import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";

import { installFake, renderWithStore } from "../testing/render";
import { WorkspaceScreen } from "./WorkspaceScreen";

// xterm.js needs a real canvas; the terminal itself is covered by the browser tests.
vi.mock("../terminal/TerminalView", () => ({
  TerminalView: (p: { terminalId: string; active: boolean }) => (
    <div data-testid="terminal" data-terminal={p.terminalId} data-active={String(p.active)} />
  ),
}));

const initial = { route: { name: "workspace" as const, nodeId: "n-local", workspaceId: "w-api" } };

async function open(opts: Parameters<typeof installFake>[0] = {}) {
  const fake = installFake(opts);
  await renderWithStore(<WorkspaceScreen nodeId="n-local" workspaceId="w-api" />, { fake, initial });
  return fake;
}

const key = (k: string, mods: { shift?: boolean } = {}) =>
  act(() => {
    fireEvent.keyDown(window, { key: k, code: k === "Tab" ? "Tab" : `Key${k.toUpperCase()}`, ctrlKey: true, shiftKey: !!mods.shift });
  });

describe("WorkspaceScreen", () => {
  it("brings back the terminals and sessions living on the node as tabs", async () => {
    await open({ seedTerminal: true });
    const tabs = await screen.findAllByRole("tab", { name: /Terminal 1|Fix the login test/ });
    expect(tabs.map((t) => t.textContent)).toEqual([">_Terminal 1", "✦Fix the login test"]);
    expect(screen.getByTestId("terminal").dataset.terminal).toBe("t-kept");
  });

  it("opens, cycles and closes tabs with the keyboard; closing a terminal kills it", async () => {
    const fake = await open({ seedTerminal: true });
    await screen.findByRole("tab", { name: /Terminal 1/ });
    key("T", { shift: true });
    await screen.findByRole("tab", { name: /Terminal 2/ });
    expect(fake.callsOf("open_terminal")[0].args).toEqual({ workspace: "w-api", cols: 120, rows: 32 });
    const active = () => screen.getAllByRole("tab").find((t) => t.getAttribute("aria-selected") === "true")?.textContent;
    expect(active()).toContain("Terminal 2");
    key("Tab");
    expect(active()).toContain("Terminal 1");
    key("Tab", { shift: true });
    expect(active()).toContain("Terminal 2");
    key("W", { shift: true });
    await waitFor(() => expect(screen.queryByRole("tab", { name: /Terminal 2/ })).toBeNull());
    expect(fake.callsOf("kill_terminal").map((c) => (c.args as { terminal: string }).terminal)).toHaveLength(1);
  });

  it("asks before closing a session tab, then stops the session", async () => {
    const fake = await open();
    await screen.findByRole("tab", { name: /Fix the login test/ });
    await userEvent.click(screen.getByRole("button", { name: "Close Fix the login test" }));
    const dialog = await screen.findByRole("dialog");
    expect(dialog.textContent).toContain("Closing the tab stops the agent");
    await userEvent.click(within(dialog).getByRole("button", { name: "Stop session" }));
    await waitFor(() => expect(fake.callsOf("stop_session")).toHaveLength(1));
    expect(screen.queryByRole("tab", { name: /Fix the login test/ })).toBeNull();
  });

  it("confirms a stop with the sessions and terminals that end", async () => {
    const fake = await open({ seedTerminal: true });
    await userEvent.click(await screen.findByRole("button", { name: "Stop" }));
    const body = await screen.findByTestId("confirmation");
    expect(body.textContent).toContain("Stopping api ends 1 terminal and 1 agent session:");
    expect(body.textContent).toContain("agent session “Fix the login test” (claude)");
    await userEvent.click(screen.getByRole("button", { name: "Stop workspace" }));
    await waitFor(() => expect(fake.callsOf("stop_workspace")).toHaveLength(1));
    expect(await screen.findByText("This workspace is stopped")).toBeTruthy();
  });

  it("renames", async () => {
    const fake = await open();
    await userEvent.click(await screen.findByRole("button", { name: "Rename" }));
    const input = screen.getByLabelText("Name");
    await userEvent.clear(input);
    await userEvent.type(input, "api-2{Enter}");
    await waitFor(() => expect(fake.callsOf("rename_workspace")[0]?.args).toEqual({ workspace: "w-api", name: "api-2" }));
  });

  it("lists ports and opens one through a local forward", async () => {
    const fake = await open();
    await userEvent.click(await screen.findByRole("tab", { name: "Ports" }));
    const ports = await screen.findByTestId("ports");
    await within(ports).findByText("3000/tcp");
    await userEvent.click(within(ports).getAllByRole("button", { name: "Open in browser" })[0]);
    expect(await within(ports).findByText("http://127.0.0.1:43000")).toBeTruthy();
    expect(fake.callsOf("open_port")[0].args).toEqual({ workspace: "w-api", port: 3000 });
  });

  it("shows a stopped workspace's state instead of tabs", async () => {
    const fake = installFake();
    await renderWithStore(<WorkspaceScreen nodeId="n-local" workspaceId="w-web" />, { fake });
    expect(await screen.findByText("This workspace is stopped")).toBeTruthy();
    expect((screen.getByRole("button", { name: "+ Terminal" }) as HTMLButtonElement).disabled).toBe(true);
    expect(fake.callsOf("list_terminals")).toHaveLength(0);
  });

  it("lists the sessions with agent, label and state; 'waiting for you' there and on the tab", async () => {
    const fake = installFake();
    // The seeded session asks for a permission nobody answered yet.
    fake.sessions[0].pendingPermission = 1;
    const failed = (await fake.handle("new_session", { workspace: "w-api", agent: "codex", label: "Needs a key" }, null)) as { id: string };
    await new Promise((r) => setTimeout(r, 5));
    await renderWithStore(<WorkspaceScreen nodeId="n-local" workspaceId="w-api" />, { fake, initial });
    const tab = await screen.findByRole("tab", { name: /Fix the login test/ });
    await waitFor(() => expect(tab.textContent).toContain("waiting for you"));
    await userEvent.click(screen.getByRole("tab", { name: "Sessions" }));
    const panel = await screen.findByTestId("sessions");
    const row = (id: string) => panel.querySelector<HTMLElement>(`.session-row[data-session="${id}"]`)!;
    await waitFor(() => expect(row("s-login")).toBeTruthy());
    expect(row("s-login").textContent).toContain("Fix the login test");
    expect(row("s-login").textContent).toContain("claude");
    expect(row("s-login").querySelector(".badge")?.textContent).toBe("waiting for you");
    await waitFor(() => expect(row(failed.id)).toBeTruthy());
    const errBadge = row(failed.id).querySelector(".badge")!;
    expect(errBadge.textContent).toBe("error");
    expect(errBadge.getAttribute("title")).toBe("Authentication required: set CODEX_API_KEY or log in with `codex login`");
    expect(row(failed.id).textContent).toContain("codex");

    // Once answered, the list and the tab stop saying so.
    fake.sessions[0].pendingPermission = null;
    await fake.handle("stop_session", { workspace: "w-api", session: "s-login" }, null);
    fake.signal({
      type: "event",
      nodeId: "n-local",
      event: { id: "e9", type: "session.stopped", level: "info", nodeId: "n-local", workspaceId: "w-api", sessionId: "s-login", message: "stopped", createdAt: new Date().toISOString() },
    });
    await waitFor(() => expect(row("s-login").querySelector(".badge")?.textContent).toBe("stopped"));
    await waitFor(() => expect(tab.textContent).not.toContain("waiting for you"));

    // Clicking a session opens its tab.
    await userEvent.click(row(failed.id));
    const opened = await screen.findByRole("tab", { name: /Needs a key/ });
    expect(opened.getAttribute("aria-selected")).toBe("true");
    expect(await screen.findByText(/Authentication required: set CODEX_API_KEY/, { selector: ".error-message" })).toBeTruthy();
  });

  it("a session that ended wanting a login: Log in opens the login tab, then a new session of that agent", async () => {
    const fake = installFake();
    const failed = (await fake.handle("new_session", { workspace: "w-api", agent: "codex", label: "Port the CLI" }, null)) as { id: string };
    await new Promise((r) => setTimeout(r, 5));
    await renderWithStore(<WorkspaceScreen nodeId="n-local" workspaceId="w-api" />, { fake, initial });
    // An errored session comes back as a tab.
    await userEvent.click(await screen.findByRole("tab", { name: /Port the CLI/ }));
    const fix = await screen.findByTestId("session-fix");
    await userEvent.click(within(fix).getByRole("button", { name: "Log in" }));
    const login = await screen.findByRole("tab", { name: /codex login/ });
    expect(login.getAttribute("aria-selected")).toBe("true");
    expect(fake.callsOf("open_login_terminal").map((c) => c.args)).toEqual([{ workspace: "w-api", agent: "codex", cols: 120, rows: 32 }]);
    fake.completeLogin(fake.terminals.at(-1)!.id);
    // Back to the session: start a new one of the same agent and label; it runs now.
    await userEvent.click(screen.getByRole("tab", { name: /Port the CLI/ }));
    const done = await within(fix).findByTestId("session-fix-done");
    await userEvent.click(within(done).getByRole("button", { name: "Start a new session" }));
    await waitFor(() => expect(fake.callsOf("new_session")).toHaveLength(2));
    expect(fake.callsOf("new_session")[1].args).toEqual({ workspace: "w-api", agent: "codex", label: "Port the CLI" });
    const fresh = fake.sessions.at(-1)!;
    expect(fresh.id).not.toBe(failed.id);
    expect(fresh.status).toBe("running");
    const tabs = await screen.findAllByRole("tab", { name: /Port the CLI/ });
    expect(tabs).toHaveLength(2);
    expect(tabs[1].getAttribute("aria-selected")).toBe("true");
  });
});
