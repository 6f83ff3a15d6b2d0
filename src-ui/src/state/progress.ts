// Progress of long work (provisioning, node stop, workspace creation): each
// message on the progress channel is a step; the newest runs, the ones before it
// are done; the end marks the last one done or failed.
export type StepState = "done" | "running" | "failed";
export type Step = { text: string; state: StepState };
export type Progress = { steps: Step[]; finished: null | "ok" | "failed" };

export type ProgressAction = { type: "start" } | { type: "step"; text: string } | { type: "ok" } | { type: "failed" };

export const idleProgress: Progress = { steps: [], finished: null };

export function progressReducer(p: Progress, a: ProgressAction): Progress {
  switch (a.type) {
    case "start":
      return { steps: [], finished: null };
    case "step": {
      const last = p.steps[p.steps.length - 1];
      // The same line twice in a row is one step.
      if (last && last.text === a.text && last.state === "running") return p;
      const steps = p.steps.map((s) => (s.state === "running" ? { ...s, state: "done" as const } : s));
      return { steps: [...steps, { text: a.text, state: "running" }], finished: null };
    }
    case "ok":
      return { steps: p.steps.map((s) => ({ ...s, state: "done" as const })), finished: "ok" };
    case "failed":
      return {
        steps: p.steps.map((s) => (s.state === "running" ? { ...s, state: "failed" as const } : s)),
        finished: "failed",
      };
  }
}
