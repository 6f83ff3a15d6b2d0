import { describe, expect, it } from "vitest";

import { idleProgress, progressReducer, type ProgressAction } from "./progress";

const run = (...actions: ProgressAction[]) => actions.reduce(progressReducer, idleProgress);

describe("progressReducer", () => {
  it("marks earlier steps done as new ones arrive", () => {
    const p = run({ type: "start" }, { type: "step", text: "a" }, { type: "step", text: "b" });
    expect(p.steps).toEqual([
      { text: "a", state: "done" },
      { text: "b", state: "running" },
    ]);
    expect(p.finished).toBeNull();
  });
  it("ends with every step done, or the running one failed", () => {
    expect(run({ type: "step", text: "a" }, { type: "ok" })).toEqual({ steps: [{ text: "a", state: "done" }], finished: "ok" });
    expect(run({ type: "step", text: "a" }, { type: "step", text: "b" }, { type: "failed" }).steps).toEqual([
      { text: "a", state: "done" },
      { text: "b", state: "failed" },
    ]);
  });
  it("folds a repeated line into one step, and starts over on start", () => {
    expect(run({ type: "step", text: "a" }, { type: "step", text: "a" }).steps).toHaveLength(1);
    expect(run({ type: "step", text: "a" }, { type: "start" })).toEqual(idleProgress);
  });
});
