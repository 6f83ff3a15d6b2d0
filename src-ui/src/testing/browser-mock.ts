// Browser tests only: installs the fake control plane as the page's IPC before
// the production bundle runs (injected with Playwright's addInitScript). Query:
// `?stepMs=N` paces progress and streaming, `?empty` starts with no nodes,
// `?terminal` seeds a terminal that outlived the window, `?held=ID` a session
// another client holds.
import { FakeSam } from "./fakeBackend";

const params = new URLSearchParams(location.search);
const fake = new FakeSam({
  stepMs: Number(params.get("stepMs") ?? 200),
  empty: params.has("empty"),
  latencyMs: Number(params.get("latencyMs") ?? 0),
  seedTerminal: params.has("terminal"),
  held: params.getAll("held"),
});
fake.install();
(window as unknown as { __sam: FakeSam }).__sam = fake;
