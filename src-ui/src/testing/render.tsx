// Rendering a screen for a unit test: the fake control plane installed as IPC,
// the real store around the screen.
import { render, waitFor } from "@testing-library/react";
import { expect } from "vitest";
import type { ReactElement } from "react";

import type { AppState } from "../state/app";
import { StoreProvider } from "../state/store";
import { FakeSam, type FakeOptions } from "./fakeBackend";

export function installFake(opts: FakeOptions = {}): FakeSam {
  return new FakeSam(opts).install();
}

export async function renderWithStore(ui: ReactElement, opts: { fake?: FakeSam; initial?: Partial<AppState> } = {}) {
  const fake = opts.fake ?? installFake();
  const r = render(<StoreProvider initial={opts.initial}>{ui}</StoreProvider>);
  // The store's first loads (settings, nodes, workspaces) have answered.
  await waitFor(() => expect(fake.callsOf("list_nodes").length).toBeGreaterThan(0));
  return { fake, ...r };
}
