// Bytes between xterm.js and the terminal on the node.

const encoder = new TextEncoder();

/** What the user typed (xterm's onData: a JS string) as UTF-8 bytes. */
export function dataToBytes(data: string): Uint8Array {
  return encoder.encode(data);
}

/** xterm's onBinary gives a "binary string" (one char per byte, e.g. mouse reports). */
export function binaryToBytes(data: string): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data.charCodeAt(i) & 0xff;
  return out;
}

/**
 * Coalesces keystrokes typed while the previous send is in flight into one
 * `terminal_input` call, in order, so fast typing or a paste costs few IPC calls
 * and bytes never overtake each other.
 */
export class InputQueue {
  private pending: Uint8Array[] = [];
  private sending = false;
  constructor(
    private send: (bytes: Uint8Array) => Promise<void>,
    private onError: (e: unknown) => void,
  ) {}

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pending.push(bytes);
    if (!this.sending) void this.flush();
  }

  private async flush(): Promise<void> {
    this.sending = true;
    try {
      while (this.pending.length > 0) {
        const chunks = this.pending;
        this.pending = [];
        await this.send(concat(chunks));
      }
    } catch (e) {
      this.pending = [];
      this.onError(e);
    } finally {
      this.sending = false;
    }
  }
}

export function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
