import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";

import { installFake, renderWithStore } from "../testing/render";
import { SessionView, stopReasonText } from "./SessionView";

describe("SessionView", () => {
  it("replays the history, streams a turn, and answers a permission prompt", async () => {
    const fake = installFake();
    await renderWithStore(<SessionView workspace="w-api" session="s-login" active />, { fake });
    expect(await screen.findByText("Why does the login test fail?")).toBeTruthy();
    const box = screen.getByLabelText("Message to the agent");
    await waitFor(() => expect((box as HTMLTextAreaElement).disabled).toBe(false));
    await userEvent.type(box, "Fix it please{Enter}");
    const prompt = await screen.findByRole("button", { name: "Allow once" });
    const chat = screen.getByTestId("chat");
    // One message for all the streamed chunks, the thought collapsed, the diff shown once.
    const agent = [...chat.querySelectorAll(".msg.agent")].map((m) => m.textContent);
    expect(agent.at(-1)).toContain("I found it: login() returns 200, but the test expects a redirect.");
    expect(chat.querySelector("details.thought")?.hasAttribute("open")).toBe(false);
    expect(chat.querySelectorAll("[data-testid=diff]")).toHaveLength(1);
    expect(screen.getByRole("button", { name: "Cancel" })).toBeTruthy();
    await userEvent.click(prompt);
    expect(await screen.findByText("Answered: Allow once.")).toBeTruthy();
    expect(await screen.findByText("Done. The login test passes now.")).toBeTruthy();
    await waitFor(() => expect(screen.queryByRole("button", { name: "Cancel" })).toBeNull());
    expect(fake.callsOf("send_session_frame").map((c) => (c.args as { frame: unknown }).frame)).toEqual([
      { type: "prompt", text: "Fix it please" },
      { type: "permission.response", requestId: 1, optionId: "allow-once" },
    ]);
  });

  it("offers to take over a session attached elsewhere", async () => {
    const fake = installFake({ held: ["s-login"] });
    await renderWithStore(<SessionView workspace="w-api" session="s-login" active />, { fake });
    const ask = await screen.findByTestId("takeover");
    expect((screen.getByLabelText("Message to the agent") as HTMLTextAreaElement).disabled).toBe(true);
    await userEvent.click(within(ask).getByRole("button", { name: "Take over" }));
    expect(await screen.findByText("Why does the login test fail?")).toBeTruthy();
    expect(fake.callsOf("attach_session").map((c) => (c.args as { takeover: boolean }).takeover)).toEqual([false, true]);
    expect(screen.queryByTestId("takeover")).toBeNull();
  });

  it("cancels a running turn", async () => {
    const fake = installFake({ stepMs: 20 });
    await renderWithStore(<SessionView workspace="w-api" session="s-login" active />, { fake });
    const box = await screen.findByLabelText("Message to the agent");
    await waitFor(() => expect((box as HTMLTextAreaElement).disabled).toBe(false));
    await userEvent.type(box, "Go{Enter}");
    await userEvent.click(await screen.findByRole("button", { name: "Cancel" }));
    expect(await screen.findByText("Turn cancelled.")).toBeTruthy();
  });

  it("says why a session ended, and closes the prompt box", async () => {
    const fake = installFake();
    await renderWithStore(<SessionView workspace="w-api" session="s-login" active />, { fake });
    await screen.findByText("Why does the login test fail?");
    await fake.handle("stop_session", { workspace: "w-api", session: "s-login" }, null);
    expect(await screen.findByText("The session was stopped.")).toBeTruthy();
    await waitFor(() => expect((screen.getByLabelText("Message to the agent") as HTMLTextAreaElement).disabled).toBe(true));
    expect(stopReasonText("node_stop")).toMatch(/node stopped/);
  });

  it("under a session that ended wanting a key: Add key, then a new session of the same agent and label", async () => {
    // Paced, so the window attaches before the agent's handshake fails.
    const fake = installFake({ stepMs: 40 });
    const created = (await fake.handle("new_session", { workspace: "w-api", agent: "codex", label: "Refactor" }, null)) as { id: string };
    const actions = { openLogin: vi.fn(async () => {}), startSession: vi.fn(async () => {}) };
    await renderWithStore(<SessionView workspace="w-api" session={created.id} active actions={actions} />, { fake });
    const chat = screen.getByTestId("chat");
    const message = await within(chat).findByText(/^Authentication required: set CODEX_API_KEY or log in with/);
    expect(message.textContent).toBe("Authentication required: set CODEX_API_KEY or log in with codex login");
    expect(message.querySelector("code")?.textContent).toBe("codex login");
    expect(message.closest(".error-box")?.textContent).toContain("this session has ended; start a new one");
    expect(within(chat).getByText("The session ended with an error.")).toBeTruthy();
    expect(fake.callsOf("attach_session")).toHaveLength(1);
    const fix = await within(chat).findByTestId("session-fix");
    expect(fix.textContent).toContain("codex has no API key and no login in this workspace.");
    await userEvent.click(within(fix).getByRole("button", { name: "Add key" }));
    await userEvent.type(within(fix).getByLabelText("CODEX_API_KEY"), "sk-from-the-error");
    await userEvent.click(within(fix).getByRole("button", { name: "Save key" }));
    const done = await within(fix).findByTestId("session-fix-done");
    expect(done.textContent).toContain("The key is stored; new codex sessions get it.");
    expect(document.body.innerHTML).not.toContain("sk-from-the-error");
    expect(fake.agentKeyIs("codex", "sk-from-the-error")).toBe(true);
    await userEvent.click(within(done).getByRole("button", { name: "Start a new session" }));
    expect(actions.startSession).toHaveBeenCalledWith({ agent: "codex", label: "Refactor" });
    // Log in goes to the workspace screen, which opens the terminal tab.
    await userEvent.click(within(fix).getByRole("button", { name: "Log in" }));
    expect(actions.openLogin).toHaveBeenCalledWith("codex");
  });

  it("shows how a session that was over before attaching ended, with the next steps", async () => {
    const fake = installFake();
    const created = (await fake.handle("new_session", { workspace: "w-api", agent: "codex" }, null)) as { id: string };
    await new Promise((r) => setTimeout(r, 5));
    expect(fake.sessions.at(-1)?.status).toBe("error");
    await renderWithStore(<SessionView workspace="w-api" session={created.id} active />, { fake });
    const ended = await screen.findByTestId("session-ended");
    expect(await within(ended).findByText(/Authentication required: set CODEX_API_KEY/)).toBeTruthy();
    expect(screen.queryByText(/No messages yet/)).toBeNull();
    const fix = await screen.findByTestId("session-fix");
    expect(within(fix).getByRole("button", { name: "Add key" })).toBeTruthy();
    // Without the workspace's actions there is no login tab to open.
    expect(within(fix).queryByRole("button", { name: "Log in" })).toBeNull();
    expect((screen.getByLabelText("Message to the agent") as HTMLTextAreaElement).disabled).toBe(true);
  });

  it("offers no key or login for an agent the image does not have", async () => {
    const fake = installFake();
    const created = (await fake.handle("new_session", { workspace: "w-api", agent: "gemini" }, null)) as { id: string };
    await new Promise((r) => setTimeout(r, 5));
    await renderWithStore(<SessionView workspace="w-api" session={created.id} active />, { fake });
    expect(await screen.findByText(/image has no gemini, which the gemini agent needs/)).toBeTruthy();
    const fix = await screen.findByTestId("session-fix");
    expect(fix.textContent).toContain("This workspace's image has no gemini");
    expect(within(fix).queryByRole("button", { name: "Add key" })).toBeNull();
  });
});
