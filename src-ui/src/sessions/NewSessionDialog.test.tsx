import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { WorkspaceScreen } from "../screens/WorkspaceScreen";
import { installFake, renderWithStore } from "../testing/render";
import { forgetLastAgent } from "./NewSessionDialog";

// xterm.js needs a real canvas; the terminal itself is covered by the browser tests.
vi.mock("../terminal/TerminalView", () => ({
  TerminalView: (p: { terminalId: string; active: boolean }) => (
    <div data-testid="terminal" data-terminal={p.terminalId} data-active={String(p.active)} />
  ),
}));

const initial = { route: { name: "workspace" as const, nodeId: "n-local", workspaceId: "w-api" } };

async function openDialog(prepare?: (fake: ReturnType<typeof installFake>) => void) {
  const fake = installFake();
  prepare?.(fake);
  await renderWithStore(<WorkspaceScreen nodeId="n-local" workspaceId="w-api" />, { fake, initial });
  await userEvent.click(await screen.findByRole("button", { name: "+ Agent" }));
  const dialog = await screen.findByTestId("new-session");
  return { fake, dialog };
}

const option = (dialog: HTMLElement, agent: string) => dialog.querySelector<HTMLElement>(`.agent-option[data-agent="${agent}"]`)!;
const radio = (dialog: HTMLElement, agent: string) => within(option(dialog, agent)).getByRole("radio") as HTMLInputElement;

beforeEach(() => forgetLastAgent());

describe("NewSessionDialog", () => {
  it("shows which agents the image has and which are ready; a missing one cannot be picked", async () => {
    const { dialog } = await openDialog();
    await within(dialog).findByRole("radio", { name: /claude/ });
    expect(option(dialog, "claude").textContent).toContain("Ready — logged in");
    expect(option(dialog, "codex").textContent).toContain("Needs setup");
    expect(option(dialog, "gemini").textContent).toContain("Not in this image");
    expect(option(dialog, "gemini").textContent).toContain("This workspace's image has no gemini");
    expect(radio(dialog, "gemini").disabled).toBe(true);
    // A ready agent is picked to start on; nothing to set up.
    expect(radio(dialog, "claude").checked).toBe(true);
    expect(within(dialog).queryByTestId("agent-setup")).toBeNull();
  });

  it("adds a key for an agent that needs setup; it turns ready and starts", async () => {
    const { fake, dialog } = await openDialog();
    await userEvent.click(await within(dialog).findByRole("radio", { name: /codex/ }));
    const setup = within(dialog).getByTestId("agent-setup");
    expect(within(dialog).getByTestId("needs-setup-warning").textContent).toMatch(/codex will most likely stop/);
    const input = within(setup).getByLabelText("CODEX_API_KEY") as HTMLInputElement;
    expect(input.type).toBe("password");
    await userEvent.type(input, "sk-codex-secret-1");
    await userEvent.click(within(setup).getByRole("button", { name: "Save key" }));
    await waitFor(() => expect(option(dialog, "codex").textContent).toContain("Ready — API key stored"));
    expect(within(dialog).queryByTestId("agent-setup")).toBeNull();
    expect(document.body.innerHTML).not.toContain("sk-codex-secret-1");
    expect(fake.agentKeyIs("codex", "sk-codex-secret-1")).toBe(true);
    expect(fake.callsOf("set_agent_key").map((c) => c.args)).toEqual([{ agent: "codex", key: "sk-codex-secret-1" }]);
    // Readiness was asked again after saving.
    expect(fake.callsOf("list_agents").length).toBe(2);

    await userEvent.type(within(dialog).getByLabelText("Label (optional)"), "Refactor");
    await userEvent.click(within(dialog).getByRole("button", { name: "Start session" }));
    await screen.findByRole("tab", { name: /Refactor/ });
    expect(screen.queryByTestId("new-session")).toBeNull();
    expect(fake.callsOf("new_session").map((c) => c.args)).toEqual([{ workspace: "w-api", agent: "codex", label: "Refactor" }]);
    expect(fake.sessions.at(-1)?.status).toBe("running");

    // The agent picked last is picked again next time.
    await userEvent.click(screen.getByRole("button", { name: "+ Agent" }));
    const again = await screen.findByTestId("new-session");
    await waitFor(() => expect(radio(again, "codex").checked).toBe(true));
  });

  it("logs in: opens the agent's login command as a terminal tab and closes", async () => {
    const { fake, dialog } = await openDialog();
    await userEvent.click(await within(dialog).findByRole("radio", { name: /codex/ }));
    const setup = within(dialog).getByTestId("agent-setup");
    expect(setup.textContent).toContain("codex login --device-auth");
    await userEvent.click(within(setup).getByRole("button", { name: "Log in" }));
    await waitFor(() => expect(screen.queryByTestId("new-session")).toBeNull());
    expect(fake.callsOf("open_login_terminal").map((c) => c.args)).toEqual([{ workspace: "w-api", agent: "codex", cols: 120, rows: 32 }]);
    const tab = await screen.findByRole("tab", { name: /codex login/ });
    expect(tab.getAttribute("aria-selected")).toBe("true");
    const id = fake.terminals.at(-1)!.id;
    expect(screen.getAllByTestId("terminal").map((t) => t.dataset.terminal)).toContain(id);
    // Once the login finished, codex is ready without a key.
    fake.completeLogin(id);
    expect(fake.readiness("w-api").find((a) => a.name === "codex")).toMatchObject({ state: "ready", loggedIn: true, keyStored: false });
    await userEvent.click(screen.getByRole("button", { name: "+ Agent" }));
    const again = await screen.findByTestId("new-session");
    await waitFor(() => expect(option(again, "codex").textContent).toContain("Ready — logged in"));
  });

  it("says why it cannot log in when the image lacks the login command", async () => {
    const { dialog } = await openDialog((fake) => fake.programs["w-api"].delete("codex"));
    await userEvent.click(await within(dialog).findByRole("radio", { name: /codex/ }));
    const setup = within(dialog).getByTestId("agent-setup");
    expect((within(setup).getByRole("button", { name: "Log in" }) as HTMLButtonElement).disabled).toBe(true);
    expect(within(setup).getByTestId("login-unavailable").textContent).toBe("This image has no codex.");
    // A key still works.
    expect(within(setup).getByLabelText("CODEX_API_KEY")).toBeTruthy();
  });

  it("still starts the node's default agent when the agents cannot be listed, and retries", async () => {
    const { fake, dialog } = await openDialog((f) =>
      f.failures.set("list_agents", { code: "node_unreachable", message: "The node does not answer.", hint: null }),
    );
    const err = await within(dialog).findByRole("alert");
    expect(err.textContent).toContain("The node does not answer.");
    expect(within(dialog).getByText("You can still start the node's default agent.")).toBeTruthy();
    const fallback = within(dialog).getByRole("radio", { name: /node's default agent/ }) as HTMLInputElement;
    expect(fallback.checked).toBe(true);
    await userEvent.click(within(dialog).getByRole("button", { name: "Start session" }));
    await waitFor(() => expect(fake.callsOf("new_session").map((c) => c.args)).toEqual([{ workspace: "w-api" }]));
    await waitFor(() => expect(screen.queryByTestId("new-session")).toBeNull());

    fake.failures.delete("list_agents");
    await userEvent.click(screen.getByRole("button", { name: "+ Agent" }));
    const again = await screen.findByTestId("new-session");
    await within(again).findByRole("radio", { name: /claude/ });
    expect(within(again).queryByRole("radio", { name: /node's default agent/ })).toBeNull();
  });

  it("offers the node's default agent when the image has none of the built-in ones", async () => {
    const fake = installFake();
    await renderWithStore(<WorkspaceScreen nodeId="n-build" workspaceId="w-ml" />, {
      fake,
      initial: { route: { name: "workspace", nodeId: "n-build", workspaceId: "w-ml" } },
    });
    await userEvent.click(await screen.findByRole("button", { name: "+ Agent" }));
    const dialog = await screen.findByTestId("new-session");
    const fallback = (await within(dialog).findByRole("radio", { name: /node's default agent/ })) as HTMLInputElement;
    await waitFor(() => expect(fallback.checked).toBe(true));
    for (const a of ["claude", "codex", "gemini"]) {
      expect(option(dialog, a).textContent).toContain("Not in this image");
      expect(radio(dialog, a).disabled).toBe(true);
    }
    expect((within(dialog).getByRole("button", { name: "Start session" }) as HTMLButtonElement).disabled).toBe(false);
  });
});
