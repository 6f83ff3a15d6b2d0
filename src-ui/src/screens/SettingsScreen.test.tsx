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
});
