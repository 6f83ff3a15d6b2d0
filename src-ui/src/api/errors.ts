import type { Error as WireError } from "./gen/Error";

/** Error codes the UI branches on (sam-desktop's `error::code` and the agent's). */
export const Codes = {
  hostKeyUnknown: "host_key_unknown",
  sessionAlreadyAttached: "session_already_attached",
  sessionNotRunning: "session_not_running",
  unreachable: "node_unreachable",
  limitReached: "limit_reached",
  invalidInput: "invalid_input",
  notFound: "not_found",
  conflict: "conflict",
  secretStore: "secret_store",
  certificateChanged: "certificate_changed",
  hostKeyChanged: "host_key_changed",
  notTrusted: "not_trusted",
  provider: "provider",
  internal: "internal",
} as const;

/**
 * A failed command, as the UI handles it: the wire's `{code, message, hint}` in
 * an `Error` (so it has a stack and `instanceof` works).
 */
export class SamError extends Error implements WireError {
  code: string;
  hint: string | null;
  constructor(e: WireError) {
    super(e.message);
    this.name = "SamError";
    this.code = e.code;
    this.hint = e.hint ?? null;
  }
}

function isWireError(e: unknown): e is { code: string; message: string; hint?: string | null } {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { code?: unknown }).code === "string" &&
    typeof (e as { message?: unknown }).message === "string"
  );
}

/** Whatever a command rejected with, as a `SamError`. */
export function toSamError(e: unknown): SamError {
  if (e instanceof SamError) return e;
  if (isWireError(e)) return new SamError({ code: e.code, message: e.message, hint: e.hint ?? null });
  if (typeof e === "string") return new SamError({ code: Codes.internal, message: e, hint: null });
  if (e instanceof Error) return new SamError({ code: Codes.internal, message: e.message, hint: null });
  return new SamError({ code: Codes.internal, message: "Something went wrong.", hint: null });
}

const defaultSteps: Record<string, string> = {
  [Codes.unreachable]: "Check that the node is running and reachable from this computer, then try again.",
  [Codes.limitReached]: "Remove something you no longer need, or raise the limit in Settings.",
  [Codes.invalidInput]: "Correct the value and try again.",
  [Codes.notFound]: "It may have been removed elsewhere; refresh the list.",
  [Codes.conflict]: "Pick another name, or remove the existing one first.",
  [Codes.secretStore]: "Check that your system keychain is unlocked, then try again.",
  [Codes.certificateChanged]:
    "The node presented a different certificate than the one SAM pinned. Check the node before trusting it again.",
  [Codes.hostKeyChanged]:
    "The server's SSH host key changed. Make sure it is the same server before you continue.",
};

/** The next step to offer for an error: its hint, else a sensible default. */
export function nextStep(e: { code: string; hint?: string | null }): string {
  if (e.hint) return e.hint;
  return defaultSteps[e.code] ?? "Try again. If it keeps failing, look at the node's events.";
}
