import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { installFake, renderWithStore } from "../testing/render";
import { AddNodeDialog, nameFromTarget, nodeNameProblem } from "./AddNodeDialog";

describe("node names", () => {
  it("follows the control plane's rule", () => {
    expect(nodeNameProblem("build-1.eu_2")).toBeNull();
    expect(nodeNameProblem("")).toMatch(/name/);
    expect(nodeNameProblem("-x")).toMatch(/start/);
    expect(nodeNameProblem("a b")).toMatch(/letters/);
    expect(nodeNameProblem("x".repeat(65))).toMatch(/64/);
  });
  it("suggests one from the SSH target", () => {
    expect(nameFromTarget("deploy@build-1.example.com")).toBe("build-1");
    expect(nameFromTarget("root@203.0.113.7")).toBe("203.0.113.7");
    expect(nameFromTarget("host")).toBe("host");
  });
});

describe("AddNodeDialog", () => {
  it("adds this computer", async () => {
    const fake = installFake({ empty: true });
    await renderWithStore(<AddNodeDialog onClose={() => {}} />, { fake });
    await userEvent.click(screen.getByRole("button", { name: "Add this computer" }));
    expect(await screen.findByTestId("add-node-done")).toBeTruthy();
    expect(fake.callsOf("add_local_node").map((c) => c.args)).toEqual([{ name: "this-computer", progress: expect.anything() }]);
  });

  it("asks about an unknown SSH host key, then connects with it accepted, showing each step", async () => {
    const fake = installFake();
    await renderWithStore(<AddNodeDialog onClose={() => {}} initialKind="ssh" />, { fake });
    await userEvent.type(screen.getByLabelText("Server (user@host)"), "root@198.51.100.4");
    expect((screen.getByLabelText("Node name") as HTMLInputElement).value).toBe("198.51.100.4");
    await userEvent.click(screen.getByRole("button", { name: "Connect and install" }));
    const ask = await screen.findByTestId("host-key");
    expect(ask.textContent).toContain("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8");
    await userEvent.click(within(ask).getByRole("button", { name: "Trust this key and connect" }));
    const done = await screen.findByTestId("add-node-done");
    expect(within(done).getByText("Uploading sam-agent 0.1.0 (x86_64).")).toBeTruthy();
    const calls = fake.callsOf("add_ssh_node").map((c) => c.args as Record<string, unknown>);
    expect(calls.map((c) => c.acceptHostKey)).toEqual([undefined, "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"]);
    expect(calls[1]).toMatchObject({ target: "root@198.51.100.4", name: "198.51.100.4" });
  });

  it("asks for the Hetzner token first, then offers server types and locations", async () => {
    const fake = installFake();
    await renderWithStore(<AddNodeDialog onClose={() => {}} initialKind="hetzner" />, { fake });
    await userEvent.type(await screen.findByLabelText("Hetzner API token"), "tok-123");
    await userEvent.click(screen.getByRole("button", { name: "Save token" }));
    const type = await screen.findByLabelText("Server type");
    const arm = within(type).getByRole("option", { name: /cax21/ }) as HTMLOptionElement;
    expect(arm.disabled).toBe(true);
    expect(arm.textContent).toContain("no agent for arm64 yet");
    await userEvent.selectOptions(type, "cpx11");
    const location = screen.getByLabelText("Location");
    // cpx11 is not offered in Helsinki here, so it is not offered.
    expect(within(location).queryByRole("option", { name: /hel1/ })).toBeNull();
    await userEvent.selectOptions(location, "nbg1");
    expect(screen.getByText("2 vCPU · 2 GB RAM · 40 GB disk · x86 · 5.18 a month")).toBeTruthy();
    await userEvent.click(screen.getByRole("button", { name: "Create server" }));
    const done = await screen.findByTestId("add-node-done");
    expect(within(done).getAllByText(/Creating server hetzner-1 \(cpx11 in nbg1, ubuntu-24.04\)\./)).toHaveLength(1);
    expect(fake.keychainHas("tok-123")).toBe(true);
    expect(document.body.innerHTML).not.toContain("tok-123");
  });

  it("does not offer this computer twice", async () => {
    const fake = installFake();
    await renderWithStore(<AddNodeDialog onClose={() => {}} />, { fake });
    // This computer is a node already.
    await waitFor(() => expect(screen.getByRole("tab", { name: "SSH server" }).getAttribute("aria-selected")).toBe("true"));
    await userEvent.click(screen.getByRole("tab", { name: "This computer" }));
    expect(screen.getByText(/a computer can be one node only/)).toBeTruthy();
    expect((screen.getByRole("button", { name: "Add this computer" }) as HTMLButtonElement).disabled).toBe(true);
  });
});
