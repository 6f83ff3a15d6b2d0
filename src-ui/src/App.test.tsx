import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";

import { App } from "./App";
import { installFake } from "./testing/render";

vi.mock("./terminal/TerminalView", () => ({ TerminalView: () => <div data-testid="terminal" /> }));

describe("App", () => {
  it("navigates nodes → node → workspace → settings from the sidebar", async () => {
    installFake();
    render(<App />);
    const nav = screen.getByRole("navigation");
    await userEvent.click(await within(nav).findByText("build-box"));
    expect(await screen.findByRole("heading", { name: /build-box/ })).toBeTruthy();
    await userEvent.click(await within(nav).findByText("api"));
    expect(await screen.findByRole("heading", { name: "api" })).toBeTruthy();
    await userEvent.click(within(nav).getByRole("button", { name: "⚙ Settings" }));
    expect(await screen.findByRole("heading", { name: "Settings" })).toBeTruthy();
    await userEvent.click(within(nav).getByRole("button", { name: "Nodes" }));
    expect(await screen.findByRole("heading", { name: "Nodes" })).toBeTruthy();
  });

  it("applies the theme setting to the page", async () => {
    const fake = installFake();
    fake.settings.theme = "dark";
    render(<App />);
    await waitFor(() => expect(document.documentElement.dataset.theme).toBe("dark"));
  });

  it("turns health changes and waiting agents into notices that lead there", async () => {
    const fake = installFake();
    render(<App />);
    await screen.findByTestId("nodes-table");
    await waitFor(() => expect(fake.signals).not.toBeNull());
    act(() =>
      fake.signal({
        type: "health",
        change: { nodeId: "n-local", nodeName: "this-computer", from: "healthy", to: "unhealthy", at: new Date().toISOString() },
      }),
    );
    const notice = await screen.findByText("this-computer is unhealthy.");
    expect(within(screen.getByTestId("nodes-table")).getAllByText("unhealthy")).toHaveLength(2);
    await userEvent.click(within(notice.closest(".notice") as HTMLElement).getByRole("button", { name: "Show" }));
    expect(await screen.findByRole("heading", { name: /this-computer/ })).toBeTruthy();
    act(() =>
      fake.signal({
        type: "permission",
        nodeId: "n-local",
        event: {
          id: "e9",
          type: "session.permission_requested",
          level: "warn",
          nodeId: "n-local",
          workspaceId: "w-api",
          sessionId: "s-login",
          message: "Run `npm test`",
          createdAt: new Date().toISOString(),
        },
      }),
    );
    expect(await screen.findByText("An agent waits for your permission: Run `npm test`")).toBeTruthy();
    expect(screen.getByTitle("An agent waits for your permission")).toBeTruthy();
  });
});
