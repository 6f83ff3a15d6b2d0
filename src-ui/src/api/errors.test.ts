import { describe, expect, it } from "vitest";

import { Codes, nextStep, SamError, toSamError } from "./errors";

describe("toSamError", () => {
  it("keeps the wire's code, message and hint", () => {
    const e = toSamError({ code: "node_unreachable", message: "build-box does not answer.", hint: "Is it on?" });
    expect(e).toBeInstanceOf(SamError);
    expect(e).toBeInstanceOf(Error);
    expect([e.code, e.message, e.hint]).toEqual(["node_unreachable", "build-box does not answer.", "Is it on?"]);
  });

  it("turns strings and plain errors into internal errors", () => {
    expect(toSamError("boom").code).toBe(Codes.internal);
    expect(toSamError("boom").message).toBe("boom");
    expect(toSamError(new TypeError("bad")).message).toBe("bad");
    expect(toSamError(undefined).message).toBe("Something went wrong.");
  });

  it("returns a SamError as it is", () => {
    const e = new SamError({ code: "x", message: "y", hint: null });
    expect(toSamError(e)).toBe(e);
  });
});

describe("nextStep", () => {
  it("prefers the hint", () => {
    expect(nextStep({ code: Codes.unreachable, hint: "Start the VM." })).toBe("Start the VM.");
  });
  it("falls back to words for the code, then to a general step", () => {
    expect(nextStep({ code: Codes.unreachable, hint: null })).toMatch(/reachable/);
    expect(nextStep({ code: Codes.limitReached })).toMatch(/raise the limit in Settings/);
    expect(nextStep({ code: "something_new", hint: null })).toMatch(/Try again/);
  });
});
