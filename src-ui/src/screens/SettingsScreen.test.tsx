import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { installFake, renderWithStore } from "../testing/render";
import { settingProblem, SettingsScreen } from "./SettingsScreen";

describe("settingProblem", () => {
  it("mirrors the control plane's checks", () => {
    expect(settingProblem("stale-seconds", "4")).toMatch(/5 to 3600/);
    expect(settingProblem("stale-seconds", "30")).toBeNull();
    expect(settingProblem("max-nodes", "0")).toMatch(/1 to 1000/);
    expect(settingProblem("max-nodes", "1.5")).toMatch(/whole number/);
    expect(settingProblem("hcloud-endpoint", "ftp://x")).toMatch(/http/);
    expect(settingProblem("hcloud-endpoint", "http://127.0.0.1:9000/v1")).toBeNull();
    expect(settingProblem("theme", "blue")).toMatch(/system, light or dark/);
    expect(settingProblem("default-image", "a b")).toMatch(/image reference/);
    expect(settingProblem("default-image", "ubuntu:24.04")).toBeNull();
  });
});

describe("SettingsScreen", () => {
  it("stores the Hetzner token and never shows it back", async () => {
    const fake = installFake();
    await renderWithStore(<SettingsScreen />, { fake });
    expect((await screen.findByTestId("token-status")).textContent).toMatch(/No token stored/);
    const input = screen.getByLabelText("Hetzner API token") as HTMLInputElement;
    expect(input.type).toBe("password");
    await userEvent.type(input, "secret-abc");
    await userEvent.click(screen.getByRole("button", { name: "Save token" }));
    await waitFor(() => expect(screen.getByTestId("token-status").textContent).toMatch(/A token is stored/));
    expect(input.value).toBe("");
    expect(document.body.innerHTML).not.toContain("secret-abc");
    expect(fake.keychainHas("secret-abc")).toBe(true);
    await userEvent.click(screen.getByRole("button", { name: "Remove token" }));
    await waitFor(() => expect(screen.getByTestId("token-status").textContent).toMatch(/No token stored/));
    expect(fake.callsOf("clear_hetzner_token")).toHaveLength(1);
  });

  it("saves limits and defaults, refusing a bad value before sending it", async () => {
    const fake = installFake();
    await renderWithStore(<SettingsScreen />, { fake });
    const row = (await screen.findByLabelText("Max workspaces per node")).closest("form")!;
    const input = within(row).getByRole("textbox");
    await userEvent.clear(input);
    await userEvent.type(input, "0");
    expect(within(row).getByText("Use a whole number from 1 to 1000.")).toBeTruthy();
    expect((within(row).getByRole("button", { name: "Save" }) as HTMLButtonElement).disabled).toBe(true);
    await userEvent.clear(input);
    await userEvent.type(input, "20{Enter}");
    await within(row).findByText("Saved");
    expect(fake.callsOf("set_setting").map((c) => c.args)).toEqual([{ key: "max-workspaces", value: "20" }]);
  });

  it("switches the theme", async () => {
    const fake = installFake();
    await renderWithStore(<SettingsScreen />, { fake });
    await userEvent.selectOptions(await screen.findByLabelText("Theme"), "light");
    await waitFor(() => expect(fake.settings.theme).toBe("light"));
    expect((screen.getByLabelText("Theme") as HTMLSelectElement).value).toBe("light");
  });

  it("stores an agent's API key, never shows it, and removes it after asking", async () => {
    const fake = installFake();
    await renderWithStore(<SettingsScreen />, { fake });
    const row = (agent: string) => document.querySelector<HTMLElement>(`[data-agent-key="${agent}"]`)!;
    await screen.findByRole("heading", { name: "Agent keys" });
    expect(["claude", "codex", "gemini"].map((a) => row(a).textContent)).toEqual([
      expect.stringContaining("ANTHROPIC_API_KEY"),
      expect.stringContaining("CODEX_API_KEY"),
      expect.stringContaining("GEMINI_API_KEY"),
    ]);
    const input = screen.getByLabelText("codex API key") as HTMLInputElement;
    expect(input.type).toBe("password");
    await userEvent.type(input, "sk-settings-777");
    await userEvent.click(within(row("codex")).getByRole("button", { name: "Save" }));
    await within(row("codex")).findByTestId("key-stored");
    expect(within(row("codex")).getByText("Saved to the keychain")).toBeTruthy();
    expect(document.body.innerHTML).not.toContain("sk-settings-777");
    expect(fake.agentKeyIs("codex", "sk-settings-777")).toBe(true);
    expect(fake.callsOf("set_agent_key").map((c) => c.args)).toEqual([{ agent: "codex", key: "sk-settings-777" }]);
    // The others are untouched.
    expect(within(row("claude")).queryByTestId("key-stored")).toBeNull();

    await userEvent.click(within(row("codex")).getByRole("button", { name: "Remove the codex API key" }));
    expect(within(row("codex")).getByText(/Remove the codex key\?/)).toBeTruthy();
    expect(fake.callsOf("clear_agent_key")).toHaveLength(0);
    await userEvent.click(within(row("codex")).getByRole("button", { name: "Remove key" }));
    await waitFor(() => expect(screen.getByLabelText("codex API key")).toBeTruthy());
    expect(fake.callsOf("clear_agent_key").map((c) => c.args)).toEqual([{ agent: "codex" }]);
    expect(fake.readiness("w-api").find((a) => a.name === "codex")?.keyStored).toBe(false);
  });

  it("explains a refused key", async () => {
    const fake = installFake();
    await renderWithStore(<SettingsScreen />, { fake });
    await userEvent.type(await screen.findByLabelText("gemini API key"), "two words");
    await userEvent.click(within(document.querySelector<HTMLElement>('[data-agent-key="gemini"]')!).getByRole("button", { name: "Save" }));
    expect((await screen.findByRole("alert")).textContent).toContain("That is not an API key");
    expect((screen.getByLabelText("gemini API key") as HTMLInputElement).value).toBe("");
  });
});
