import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";

import { installFake, renderWithStore } from "../testing/render";
import { NodesScreen } from "./NodesScreen";
import { Sidebar } from "./Sidebar";

describe("NodesScreen", () => {
  it("lists nodes with health badges, freshness, provider and workspaces against limits", async () => {
    await renderWithStore(<NodesScreen onAddNode={() => {}} />);
    const table = await screen.findByTestId("nodes-table");
    const row = (name: string) => within(table).getByText(name).closest("tr")!;
    await waitFor(() => expect(within(row("build-box")).getByText("stale")).toBeTruthy());
    expect(within(row("this-computer")).getByText("healthy")).toBeTruthy();
    expect(within(row("hetzner-old")).getByText("unhealthy")).toBeTruthy();
    expect(within(row("build-box")).getByTestId("last-seen").textContent).toBe("last seen 1m ago");
    expect(within(row("hetzner-old")).getByText("Hetzner Cloud")).toBeTruthy();
    expect(within(row("this-computer")).getByText("2 of 10 workspaces (1 running)")).toBeTruthy();
    expect(screen.getByTestId("node-count").textContent).toBe("3 of 10 nodes");
  });

  it("shows the empty state with a way to add the first node", async () => {
    const onAdd = vi.fn();
    await renderWithStore(<NodesScreen onAddNode={onAdd} />, { fake: installFake({ empty: true }) });
    expect(await screen.findByText("No nodes yet")).toBeTruthy();
    await userEvent.click(screen.getByRole("button", { name: "Add a node" }));
    expect(onAdd).toHaveBeenCalled();
  });

  it("explains a failed load with the next step and retries", async () => {
    const fake = installFake();
    const handle = fake.handle.bind(fake);
    let failing = true;
    fake.handle = async (cmd, args, headers) => {
      if (cmd === "list_nodes" && failing) {
        fake.calls.push({ cmd, args, headers, at: Date.now() });
        throw { code: "internal", message: "The state database is locked.", hint: "Close the other SAM window, then try again." };
      }
      return handle(cmd, args, headers);
    };
    await renderWithStore(<NodesScreen onAddNode={() => {}} />, { fake });
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("The state database is locked.");
    expect(alert.textContent).toContain("Next step: Close the other SAM window, then try again.");
    failing = false;
    await userEvent.click(within(alert).getByRole("button", { name: "Try again" }));
    expect(await screen.findByTestId("nodes-table")).toBeTruthy();
  });

  it("disables adding at the node limit and says why", async () => {
    const fake = installFake();
    fake.settings.maxNodes = 3;
    await renderWithStore(<NodesScreen onAddNode={() => {}} />, { fake });
    await screen.findByText(/You have 3 nodes, the limit/);
    expect((screen.getByRole("button", { name: "Add node" }) as HTMLButtonElement).disabled).toBe(true);
  });

  it("never waits for a slow node: the sidebar shows the others' workspaces first", async () => {
    const fake = installFake();
    const handle = fake.handle.bind(fake);
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    fake.handle = async (cmd, args, headers) => {
      if (cmd === "list_workspaces" && (args as { node?: string }).node === "n-build") await slow;
      return handle(cmd, args, headers);
    };
    await renderWithStore(<Sidebar onAddNode={() => {}} />, { fake });
    expect(await screen.findByText("api")).toBeTruthy();
    expect(screen.queryByText("ml")).toBeNull();
    release();
    expect(await screen.findByText("ml")).toBeTruthy();
  });
});
