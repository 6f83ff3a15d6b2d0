import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { installFake, renderWithStore } from "../testing/render";
import { NodeScreen, workspaceFormProblem } from "./NodeScreen";

describe("workspaceFormProblem", () => {
  it("checks the name and the repository", () => {
    expect(workspaceFormProblem({ name: "api", source: "image", repository: "" })).toBeNull();
    expect(workspaceFormProblem({ name: " ", source: "image", repository: "" })).toMatch(/name/);
    expect(workspaceFormProblem({ name: "api", source: "repository", repository: "" })).toMatch(/URL/);
    expect(workspaceFormProblem({ name: "api", source: "repository", repository: "--upload-pack=x" })).toMatch(/cannot start/);
    expect(workspaceFormProblem({ name: "api", source: "repository", repository: "ftp://x" })).toMatch(/https/);
    expect(workspaceFormProblem({ name: "api", source: "repository", repository: "git@github.com:a/b.git" })).toBeNull();
  });
});

describe("NodeScreen", () => {
  it("shows the node, its limits, workspaces and events", async () => {
    await renderWithStore(<NodeScreen nodeId="n-local" />);
    expect(await screen.findByText("2 of 10 workspaces (1 running)")).toBeTruthy();
    expect(screen.getByText("up to 5 per workspace")).toBeTruthy();
    const table = await screen.findByTestId("workspaces-table");
    expect(within(table).getByText("api")).toBeTruthy();
    expect(within(table).getByText("stopped")).toBeTruthy();
    expect(await screen.findByText("Workspace api is running.")).toBeTruthy();
  });

  it("confirms a stop with exactly the workspaces and sessions that stop, then stops", async () => {
    const fake = installFake();
    await renderWithStore(<NodeScreen nodeId="n-local" />, { fake });
    await userEvent.click(await screen.findByRole("button", { name: "Stop node" }));
    const body = await screen.findByTestId("confirmation");
    expect(body.textContent).toContain("Stopping this-computer stops 1 workspace and 1 agent session:");
    expect(within(body).getAllByRole("listitem").map((li) => li.firstChild?.textContent)).toEqual([
      "workspace “api” (running)",
      "agent session “Fix the login test” (claude)",
    ]);
    const dialog = screen.getByTestId("stop-node");
    await userEvent.click(within(dialog).getByRole("button", { name: "Stop node" }));
    expect(await within(dialog).findByText("this-computer is stopped.")).toBeTruthy();
    expect(fake.callsOf("stop_node")).toHaveLength(1);
  });

  it("creates a workspace from an image with progress, then opens it", async () => {
    const fake = installFake();
    await renderWithStore(<NodeScreen nodeId="n-local" />, { fake });
    await userEvent.click(await screen.findByRole("button", { name: "New workspace" }));
    const dialog = screen.getByTestId("create-workspace");
    await userEvent.type(within(dialog).getByLabelText("Name"), "scratch");
    await userEvent.type(within(dialog).getByLabelText("Image"), "ubuntu:24.04");
    await userEvent.click(within(dialog).getByRole("button", { name: "Create workspace" }));
    await waitFor(() => expect(fake.callsOf("create_workspace")).toHaveLength(1));
    expect(fake.callsOf("create_workspace")[0].args).toMatchObject({ node: "n-local", name: "scratch", image: "ubuntu:24.04" });
    expect((fake.callsOf("create_workspace")[0].args as Record<string, unknown>).repository).toBeUndefined();
    await waitFor(() => expect(screen.queryByTestId("create-workspace")).toBeNull());
  });

  it("upgrades an older agent with progress, then says it is up to date", async () => {
    const fake = installFake();
    await renderWithStore(<NodeScreen nodeId="n-local" />, { fake });
    expect((await screen.findByTestId("agent-version")).textContent).toBe("0.1.0 (build 65126352)");
    await userEvent.click(screen.getByRole("button", { name: "Upgrade agent…" }));
    let dialog = screen.getByTestId("upgrade-agent");
    expect(dialog.textContent).toContain("Terminals and agent sessions keep running");
    await userEvent.click(within(dialog).getByRole("button", { name: "Upgrade agent" }));
    expect(await within(dialog).findByText("sam-agent on this-computer is now 0.1.0 (build 71a574d6).")).toBeTruthy();
    expect(fake.callsOf("upgrade_node")[0].args).toMatchObject({ node: "n-local", force: false });
    await waitFor(() => expect(screen.getByTestId("agent-version").textContent).toBe("0.1.0 (build 71a574d6)"));
    await userEvent.click(within(dialog).getByText("Close", { selector: ".dialog-foot button" }));
    expect(screen.queryByTestId("upgrade-agent")).toBeNull();

    await userEvent.click(screen.getByRole("button", { name: "Upgrade agent…" }));
    dialog = screen.getByTestId("upgrade-agent");
    await userEvent.click(within(dialog).getByRole("button", { name: "Upgrade agent" }));
    expect(await within(dialog).findByText(/is up to date: 0.1.0 \(build 71a574d6\)/)).toBeTruthy();
  });

  it("offers no upgrade for a node that is not running", async () => {
    const fake = installFake();
    fake.nodes.find((n) => n.id === "n-hz")!.status = "stopped";
    await renderWithStore(<NodeScreen nodeId="n-hz" />, { fake });
    await screen.findByTestId("agent-version");
    expect(screen.queryByRole("button", { name: "Upgrade agent…" })).toBeNull();
  });

  it("asks before removing and names what is deleted", async () => {
    await renderWithStore(<NodeScreen nodeId="n-hz" />);
    await userEvent.click(await screen.findByRole("button", { name: "Remove node" }));
    const body = await screen.findByTestId("confirmation");
    expect(body.textContent).toContain("Nothing runs on hetzner-old");
    expect(body.textContent).toContain("the server, its firewall and its SSH key are deleted at Hetzner");
  });
});
