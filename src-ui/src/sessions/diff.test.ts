import { describe, expect, it } from "vitest";

import { diffStats, lineDiff, withContext } from "./diff";

const ops = (a: string | null, b: string) => lineDiff(a, b).map((l) => `${l.op === "eq" ? " " : l.op === "add" ? "+" : "-"}${l.text}`);

describe("lineDiff", () => {
  it("shows a changed line as removed, then added, with line numbers", () => {
    expect(ops("a\nb\nc\n", "a\nB\nc\n")).toEqual([" a", "-b", "+B", " c"]);
    expect(lineDiff("a\nb\nc\n", "a\nB\nc\n")).toEqual([
      { op: "eq", text: "a", a: 1, b: 1 },
      { op: "del", text: "b", a: 2, b: null },
      { op: "add", text: "B", a: null, b: 2 },
      { op: "eq", text: "c", a: 3, b: 3 },
    ]);
  });
  it("finds insertions and deletions in the middle", () => {
    expect(ops("1\n2\n3\n4\n", "1\n3\n3.5\n4\n")).toEqual([" 1", "-2", " 3", "+3.5", " 4"]);
  });
  it("treats a missing old text as a new file", () => {
    expect(ops(null, "x\ny")).toEqual(["+x", "+y"]);
    expect(ops("x\n", "")).toEqual(["-x"]);
    expect(ops("same\n", "same\n")).toEqual([" same"]);
  });
  it("stays fast on huge rewrites (falls back to all removed, then all added)", () => {
    const a = Array.from({ length: 3000 }, (_, i) => `a${i}`).join("\n");
    const b = Array.from({ length: 3000 }, (_, i) => `b${i}`).join("\n");
    const t0 = Date.now();
    const d = lineDiff(a, b);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(diffStats(d)).toEqual({ added: 3000, removed: 3000 });
  });
});

describe("withContext", () => {
  it("keeps three lines around changes and folds the rest", () => {
    const a = Array.from({ length: 20 }, (_, i) => `l${i}`).join("\n");
    const b = a.replace("l10", "L10");
    const rows = withContext(lineDiff(a, b), 3);
    expect(rows[0]).toEqual({ op: "skip", count: 7 });
    expect(rows.filter((r) => r.op !== "skip").map((r) => ("text" in r ? r.text : ""))).toEqual([
      "l7",
      "l8",
      "l9",
      "l10",
      "L10",
      "l11",
      "l12",
      "l13",
    ]);
    expect(rows.at(-1)).toEqual({ op: "skip", count: 6 });
  });
});
