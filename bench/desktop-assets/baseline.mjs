// The baseline: the same bytes as the app's terminal shows, from a plain
// WebSocket on 127.0.0.1 straight into an xterm.js Terminal set up like the
// app's (src-ui/src/terminal/TerminalView.tsx: same options, fit + search
// addons, WebGL or DOM renderer as the app got, the same host size and theme),
// timed by the same measure.js. Results are POSTed to /result.
//
// Query: renderer=webgl|dom, theme=dark|light, box=<JSON of the host's size
// and padding>, runs=N, bytes=<bytes per run>, chunk=<bytes per message>.
import { Terminal } from "/xterm/xterm/lib/xterm.mjs";
import { FitAddon } from "/xterm/addon-fit/lib/addon-fit.mjs";
import { SearchAddon } from "/xterm/addon-search/lib/addon-search.mjs";
import { WebglAddon } from "/xterm/addon-webgl/lib/addon-webgl.mjs";

const darkTheme = {
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
const lightTheme = {
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

const q = new URLSearchParams(location.search);
const report = (body) => fetch("/result", { method: "POST", body: JSON.stringify(body) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const want = q.get("renderer") || "webgl";
  const runs = Number(q.get("runs") || 3);
  const expected = Number(q.get("bytes"));
  const chunk = Number(q.get("chunk") || 65536);
  const box = JSON.parse(q.get("box") || "{}");
  const pane = document.querySelector(".terminal-pane");
  const host = document.querySelector(".terminal-host");
  for (const [k, v] of Object.entries(box)) host.style.setProperty(k, v);

  const term = new Terminal({
    fontFamily: 'ui-monospace, "JetBrains Mono", "Cascadia Code", Menlo, Consolas, "DejaVu Sans Mono", monospace',
    fontSize: 13,
    lineHeight: 1.15,
    cursorBlink: true,
    scrollback: 10000,
    allowProposedApi: true,
    theme: q.get("theme") === "light" ? lightTheme : darkTheme,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.loadAddon(new SearchAddon());
  term.open(host);
  let renderer = "dom";
  if (want === "webgl") {
    try {
      const a = new WebglAddon();
      a.onContextLoss(() => {
        a.dispose();
        renderer = "dom (WebGL context lost)";
      });
      term.loadAddon(a);
      renderer = "webgl";
    } catch {
      renderer = "dom";
    }
  }
  fit.fit();
  term.focus();

  let written = 0;
  const results = [];
  for (let i = 0; i < runs; i++) {
    await sleep(300);
    const st = samBenchMeasure(pane, expected);
    const ws = new WebSocket(`ws://${location.host}/stream?chunk=${chunk}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => {
      const bytes = new Uint8Array(ev.data);
      term.write(bytes, () => {
        written += bytes.length;
        pane.setAttribute("data-bytes-written", String(written));
      });
    };
    const failed = new Promise((_, no) => {
      ws.onerror = () => no(new Error("the WebSocket failed"));
    });
    results.push(await Promise.race([st.done, failed]));
    ws.close();
  }
  const screen = host.querySelector(".xterm-screen");
  await report({
    ok: true,
    renderer,
    cols: term.cols,
    rows: term.rows,
    screen: screen ? [screen.clientWidth, screen.clientHeight] : null,
    runs: results,
    userAgent: navigator.userAgent,
  });
}

main().catch((e) => report({ ok: false, error: String(e && e.stack ? e.stack : e) }));
