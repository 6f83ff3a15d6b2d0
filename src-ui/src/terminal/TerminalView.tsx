// One terminal tab: xterm.js (fit, WebGL with a DOM fallback, search) attached to
// a terminal that lives on the node. Unmounting detaches; the terminal lives on
// and the next attach replays its scrollback.
import { useEffect, useRef, useState } from "react";
import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { WebglAddon } from "@xterm/addon-webgl";
import { Terminal, type ITheme } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";

import { api, SamError, toSamError } from "../api";
import { ErrorBox } from "../components/ui";
import { shortcutOf } from "../state/tabs";
import { binaryToBytes, dataToBytes, InputQueue } from "./bytes";
import { loadRenderer, type Renderer } from "./renderer";

/** Parsed output acknowledged at once from this much on (the app's window is 1 MiB)… */
const ACK_STEP = 64 * 1024;
/** …and otherwise after this pause. */
const ACK_DELAY_MS = 25;

const darkTheme: ITheme = {
  background: "#16181d",
  foreground: "#d6d9e0",
  cursor: "#d6d9e0",
  selectionBackground: "#3a4a66",
  black: "#1e2127",
  red: "#e06c75",
  green: "#98c379",
  yellow: "#d8b36a",
  blue: "#61afef",
  magenta: "#c678dd",
  cyan: "#56b6c2",
  white: "#d6d9e0",
  brightBlack: "#5c6370",
};

const lightTheme: ITheme = {
  background: "#fbfbfc",
  foreground: "#24292f",
  cursor: "#24292f",
  selectionBackground: "#c8d9f5",
  black: "#24292f",
  red: "#c62d3a",
  green: "#2d7d3a",
  yellow: "#8a6300",
  blue: "#0b5cc4",
  magenta: "#8a3ab9",
  cyan: "#137a84",
  white: "#6e7781",
  brightBlack: "#57606a",
};

function isSearchKey(e: KeyboardEvent): boolean {
  return e.ctrlKey && e.shiftKey && !e.altKey && (e.key === "F" || e.key === "f" || e.code === "KeyF");
}

export function TerminalView({
  workspace,
  terminalId,
  active,
  dark,
  onExit,
}: {
  workspace: string;
  terminalId: string;
  active: boolean;
  dark: boolean;
  onExit?: (code: number) => void;
}) {
  const host = useRef<HTMLDivElement>(null);
  const pane = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);
  const fitRef = useRef<FitAddon | null>(null);
  const searchRef = useRef<SearchAddon | null>(null);
  const activeRef = useRef(active);
  activeRef.current = active;
  const onExitRef = useRef(onExit);
  onExitRef.current = onExit;
  const [renderer, setRenderer] = useState<Renderer | null>(null);
  const [state, setState] = useState<"attaching" | "ready" | "exited" | "error">("attaching");
  const [error, setError] = useState<SamError | null>(null);
  const [exitCode, setExitCode] = useState<number | null>(null);
  const [searching, setSearching] = useState(false);
  const [query, setQuery] = useState("");
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    let disposed = false;
    const term = new Terminal({
      fontFamily: 'ui-monospace, "JetBrains Mono", "Cascadia Code", Menlo, Consolas, "DejaVu Sans Mono", monospace',
      fontSize: 13,
      lineHeight: 1.15,
      cursorBlink: true,
      scrollback: 10000,
      allowProposedApi: true,
      theme: dark ? darkTheme : lightTheme,
    });
    const fit = new FitAddon();
    const search = new SearchAddon();
    term.loadAddon(fit);
    term.loadAddon(search);
    term.open(el);
    setRenderer(loadRenderer(term, () => new WebglAddon(), setRenderer));
    termRef.current = term;
    fitRef.current = fit;
    searchRef.current = search;

    const safeFit = () => {
      if (disposed || !activeRef.current || el.clientWidth === 0 || el.clientHeight === 0) return;
      try {
        fit.fit();
      } catch {
        // Not laid out yet; the next resize fits.
      }
    };
    safeFit();

    const input = new InputQueue(
      (bytes) => api.terminalInput(workspace, terminalId, bytes),
      (e) => !disposed && setError(toSamError(e)),
    );
    term.attachCustomKeyEventHandler((e) => {
      if (e.type === "keydown" && isSearchKey(e)) {
        setSearching(true);
        return false;
      }
      // Tab shortcuts belong to the workspace, not the shell.
      return shortcutOf(e) === null;
    });
    const subs = [
      term.onData((d) => input.push(dataToBytes(d))),
      term.onBinary((d) => input.push(binaryToBytes(d))),
    ];

    let resizeTimer: ReturnType<typeof setTimeout> | undefined;
    let attached = false;
    const sendSize = () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (!disposed && attached) {
          api.resizeTerminal(workspace, terminalId, term.cols, term.rows).catch(() => {
            // A failed resize is cosmetic; the next one retries.
          });
        }
      }, 80);
    };
    subs.push(term.onResize(sendSize));
    const ro = new ResizeObserver(safeFit);
    ro.observe(el);

    // Bytes xterm has parsed, on the pane as `data-bytes-written` (updated from
    // xterm's write callback): what bench/desktop times "rendered" by. One
    // attribute write per chunk, in no selector, so it costs no style work.
    let written = 0;
    // Parsed bytes go back as acknowledgements (terminalAck), which let the app
    // send more: at once in large steps during a flood, after a short pause for
    // a trickle (an echo), so typing costs no extra call per keystroke.
    let unacked = 0;
    let ackTimer: ReturnType<typeof setTimeout> | undefined;
    const ack = () => {
      clearTimeout(ackTimer);
      ackTimer = undefined;
      const n = unacked;
      unacked = 0;
      if (n > 0 && !disposed) api.terminalAck(workspace, terminalId, n).catch(() => {});
    };
    const counted = (n: number) => () => {
      written += n;
      pane.current?.setAttribute("data-bytes-written", String(written));
      unacked += n;
      if (unacked >= ACK_STEP) ack();
      else ackTimer ??= setTimeout(ack, ACK_DELAY_MS);
    };

    setState("attaching");
    setError(null);
    api
      .attachTerminal(workspace, terminalId, {
        onOutput: (bytes) => {
          if (!disposed) term.write(bytes, counted(bytes.length));
        },
        onEvent: (f) => {
          if (disposed) return;
          if (f.type === "ready") {
            attached = true;
            setState("ready");
            sendSize();
          } else if (f.type === "exit") {
            setState("exited");
            setExitCode(f.code);
            onExitRef.current?.(f.code);
          } else if (f.type === "error") {
            setState("error");
            setError(new SamError({ code: "terminal", message: f.message, hint: "Reconnect, or open a new terminal." }));
          }
        },
      })
      .then(() => {
        if (disposed) return;
        attached = true;
        setState((s) => (s === "attaching" ? "ready" : s));
        sendSize();
      })
      .catch((e) => {
        if (disposed) return;
        setState("error");
        setError(toSamError(e));
      });

    return () => {
      disposed = true;
      clearTimeout(resizeTimer);
      clearTimeout(ackTimer);
      ro.disconnect();
      subs.forEach((s) => s.dispose());
      // The terminal lives on on the node; only this view goes.
      api.detachTerminal(workspace, terminalId).catch(() => {});
      term.dispose();
      termRef.current = null;
    };
    // `dark` is applied below without re-attaching.
  }, [workspace, terminalId, attempt]);

  useEffect(() => {
    if (termRef.current) termRef.current.options.theme = dark ? darkTheme : lightTheme;
  }, [dark]);

  useEffect(() => {
    if (!active) return;
    const t = termRef.current;
    const el = host.current;
    if (!t || !el) return;
    // Fit once the tab is laid out, then take the keyboard.
    const id = requestAnimationFrame(() => {
      if (el.clientWidth > 0 && el.clientHeight > 0) {
        try {
          fitRef.current?.fit();
        } catch {
          // Not laid out.
        }
      }
      if (!searching) t.focus();
    });
    return () => cancelAnimationFrame(id);
  }, [active, searching]);

  const find = (backwards: boolean) => {
    const s = searchRef.current;
    if (!s || !query) return;
    if (backwards) s.findPrevious(query);
    else s.findNext(query);
  };

  return (
    <div ref={pane} className="terminal-pane" data-terminal={terminalId} data-renderer={renderer ?? ""} data-state={state}>
      <div className="terminal-bar">
        <span className="muted small">
          {state === "attaching" && "Connecting…"}
          {state === "ready" && (renderer === "webgl" ? "WebGL" : "DOM renderer")}
          {state === "exited" && `Exited with code ${exitCode}`}
          {state === "error" && "Disconnected"}
        </span>
        <button type="button" className="icon-btn" title="Search (Ctrl+Shift+F)" aria-label="Search in terminal" onClick={() => setSearching((v) => !v)}>
          ⌕
        </button>
      </div>
      {searching && (
        <form
          className="terminal-search"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            find(false);
          }}
        >
          <input
            autoFocus
            value={query}
            placeholder="Find in terminal"
            aria-label="Find in terminal"
            onChange={(e) => {
              setQuery(e.target.value);
              if (e.target.value) searchRef.current?.findNext(e.target.value, { incremental: true });
            }}
            onKeyDown={(e) => {
              if (e.key === "Escape") {
                setSearching(false);
                searchRef.current?.clearDecorations();
                termRef.current?.focus();
              } else if (e.key === "Enter" && e.shiftKey) {
                e.preventDefault();
                find(true);
              }
            }}
          />
          <button type="button" className="btn small" onClick={() => find(true)} aria-label="Previous match">
            ↑
          </button>
          <button type="submit" className="btn small" aria-label="Next match">
            ↓
          </button>
        </form>
      )}
      <div className="terminal-host" ref={host} />
      {error && (
        <div className="terminal-overlay">
          <ErrorBox error={error} compact />
          <button type="button" className="btn small" onClick={() => setAttempt((a) => a + 1)}>
            Reconnect
          </button>
        </div>
      )}
    </div>
  );
}
