// xterm.js renders with WebGL when the webview has WebGL2; otherwise (no GPU,
// a lost context) it falls back to its DOM renderer.
import type { ITerminalAddon, Terminal } from "@xterm/xterm";

export type Renderer = "webgl" | "dom";

type WebglLike = ITerminalAddon & { onContextLoss: (cb: () => void) => unknown };

export function loadRenderer(
  term: Pick<Terminal, "loadAddon">,
  makeWebgl: () => WebglLike,
  onFallback: (r: Renderer) => void = () => {},
): Renderer {
  let addon: WebglLike | null = null;
  try {
    addon = makeWebgl();
    const a = addon;
    a.onContextLoss(() => {
      a.dispose();
      onFallback("dom");
    });
    term.loadAddon(a);
    return "webgl";
  } catch {
    try {
      addon?.dispose();
    } catch {
      // Nothing to undo.
    }
    return "dom";
  }
}
