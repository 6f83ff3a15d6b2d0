import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

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
});
