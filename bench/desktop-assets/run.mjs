// bench/desktop's measurements, run under Xvfb + a private D-Bus session by
// bench/desktop (which builds, sets the environment up and cleans up):
//
//  1. cold start: the release binary exec'd, timed to its first painted window
//     from outside (coldstart.py polls the X server) — fresh state folders, then
//     later starts with the bench's node and workspace;
//  2. the real app over WebDriver (tauri-driver + WebKitWebDriver): a terminal
//     tab cats a known payload and xterm's write-callback counter on the pane
//     (data-bytes-written) times it, then 5 tabs stream output while the memory
//     of the app and its WebKit processes is sampled;
//  3. the same bytes from a plain WebSocket on 127.0.0.1 into xterm.js in
//     Chromium (the issue's baseline) and in a bare WebKitGTK view (the app's
//     engine without Tauri), with the app's renderer, terminal size and
//     average chunk size.
//
// Speed is measured, never asserted: this exits non-zero only when something
// broke. Prints the table on stdout and writes results.json to SAM_BENCH_OUT.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { cpus, loadavg } from "node:os";
import { extname, join, normalize } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const env = process.env;
const here = import.meta.dirname;
const root = join(here, "..", "..");
const APP = env.SAM_APP;
const CLI = env.SAM_CLI;
const WORK = env.SAM_BENCH_WORK;
const OUT = env.SAM_BENCH_OUT;
assert.ok(APP && CLI && WORK && OUT && env.SAM_DESKTOP_DIR, "run by bench/desktop, which sets the environment");
mkdirSync(OUT, { recursive: true });

const num = (v, d) => (v === undefined || v === "" ? d : Number(v));
const cfg = {
  freshStarts: num(env.FRESH_STARTS, 3),
  laterStarts: num(env.LATER_STARTS, 5),
  payloadMB: num(env.PAYLOAD_MB, 32),
  runs: num(env.THROUGHPUT_RUNS, 3),
  terminals: num(env.TERMINALS, 5),
  rssSeconds: num(env.RSS_SECONDS, 20),
  warmupSeconds: num(env.RSS_WARMUP_SECONDS, 5),
};
const WS = "this-computer/bench";
const PAYLOAD_PATH = "/tmp/sam-bench-payload";
const log = (...a) => console.log("==>", ...a);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cli = (args, opts = {}) =>
  execFileSync(CLI, args, { encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], maxBuffer: 1 << 26, ...opts });
const freePort = () =>
  new Promise((ok, no) => {
    const s = createNetServer();
    s.on("error", no);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

// ---------------------------------------------------------------- payload

/**
 * Build-log-like text: ~100-byte lines, every fourth with colour escapes, no
 * line longer than the terminal (no wrapping). `file` goes into the workspace;
 * `shown` is what the TTY turns it into (onlcr: \n → \r\n), the bytes xterm gets.
 */
function makePayload(bytes) {
  const lines = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const id = String(i).padStart(8, "0");
    const line =
      i % 4 === 3
        ? `${id} \x1b[32mok\x1b[0m test module_${i % 31}::case_${i % 97} finished in \x1b[1;33m${i % 1000}\x1b[0m ms (the quick brown fox)\n`
        : `${id} Compiling crate-${i % 97} v0.${i % 13}.${i % 7} (/src/path/to/module_${i % 31}.rs) abcdefghijklmnopqrstuvwxyz\n`;
    lines.push(line);
    n += line.length;
  }
  lines.push("sam-bench-end\n");
  const file = Buffer.from(lines.join(""), "latin1");
  const shown = Buffer.from(lines.join("").replaceAll("\n", "\r\n"), "latin1");
  return { file, shown };
}

// ---------------------------------------------------------------- /proc

function procs() {
  const out = new Map();
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(p), { pid: Number(p), ppid: Number(rest[1]), state: rest[0], comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) });
    } catch {
      // gone
    }
  }
  return out;
}

function environOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
  } catch {
    return [];
  }
}

/** The app processes of this run: sam-desktop with our state folder. */
function appPids() {
  const mark = `SAM_DESKTOP_DIR=${env.SAM_DESKTOP_DIR}`;
  return [...procs().values()].filter((p) => p.comm === "sam-desktop" && p.state !== "Z" && environOf(p.pid).includes(mark)).map((p) => p.pid);
}

function descendants(pid, table = procs()) {
  const out = [];
  const todo = [pid];
  while (todo.length) {
    const parent = todo.pop();
    for (const p of table.values()) {
      if (p.ppid === parent && p.state !== "Z") {
        out.push(p);
        todo.push(p.pid);
      }
    }
  }
  return out;
}

function kb(file, key) {
  try {
    const m = readFileSync(file, "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** PSS (smaps_rollup) and RSS (status VmRSS) of the app and its WebKit processes, in kB, by process name. */
function memory(appPid) {
  const table = procs();
  const app = table.get(appPid);
  if (!app) return null;
  const members = [app, ...descendants(appPid, table)].filter((p) => !p.comm.startsWith("sam-agent"));
  const by = {};
  let pss = 0;
  let rss = 0;
  for (const p of members) {
    const pp = kb(`/proc/${p.pid}/smaps_rollup`, "Pss");
    const rr = kb(`/proc/${p.pid}/status`, "VmRSS");
    pss += pp;
    rss += rr;
    by[p.comm] = by[p.comm] ?? { pss: 0, rss: 0, n: 0 };
    by[p.comm].pss += pp;
    by[p.comm].rss += rr;
    by[p.comm].n += 1;
  }
  return { pss, rss, by };
}

/** The node's agent (not counted): whatever listens on its port, and its children. */
function agentMemory(port) {
  let pid = null;
  try {
    const ss = execFileSync("ss", ["-ltnpH", `sport = :${port}`], { encoding: "utf8" });
    pid = Number(ss.match(/pid=(\d+)/)?.[1]);
  } catch {
    return null;
  }
  if (!pid) return null;
  const table = procs();
  const members = [table.get(pid), ...descendants(pid, table)].filter(Boolean);
  return { pss: members.reduce((a, p) => a + kb(`/proc/${p.pid}/smaps_rollup`, "Pss"), 0), n: members.length };
}

// ---------------------------------------------------------------- 1. cold start

function coldStart(extraEnv) {
  const out = execFileSync("/usr/bin/python3", [join(here, "coldstart.py"), APP, "30"], {
    env: { ...env, ...extraEnv },
    encoding: "utf8",
  });
  return JSON.parse(out.trim().split("\n").pop());
}

function xdg(dir) {
  return { XDG_CONFIG_HOME: join(dir, "config"), XDG_DATA_HOME: join(dir, "data"), XDG_CACHE_HOME: join(dir, "cache") };
}

async function coldStarts() {
  const fresh = [];
  for (let i = 0; i < cfg.freshStarts; i++) {
    const dir = mkdtempSync(join(WORK, "fresh-"));
    const e = { SAM_DESKTOP_DIR: join(dir, "state"), ...xdg(join(dir, "xdg")) };
    // No local agent on this first start: only the setting that says so exists.
    cli(["settings", "set", "auto-local", "false"], { env: { ...env, ...e } });
    const r = coldStart(e);
    log(`first start ${i + 1}: window mapped ${r.mapped} s, painted ${r.painted} s`);
    fresh.push(r);
    await sleep(500);
  }
  const later = [];
  if (cfg.laterStarts === 0) return { fresh, later };
  coldStart({}); // warms this state's WebKit folders; not counted
  await sleep(500);
  for (let i = 0; i < cfg.laterStarts; i++) {
    const r = coldStart({});
    log(`later start ${i + 1}: window mapped ${r.mapped} s, painted ${r.painted} s`);
    later.push(r);
    await sleep(500);
  }
  return { fresh, later };
}

// ---------------------------------------------------------------- 2. the app over WebDriver

const W3C_ELEMENT = "element-6066-11e4-a52e-4f735466cecc";

async function appSession(payload) {
  const port = await freePort();
  const nativePort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const wd = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json).slice(0, 400)}`);
    return json.value;
  };
  const driver = spawn("tauri-driver", ["--port", String(port), "--native-port", String(nativePort)], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const result = {};
  let sessionId = null;
  try {
    for (let i = 0; ; i++) {
      try {
        await fetch(`${base}/status`);
        break;
      } catch {
        assert.ok(i < 100, "tauri-driver did not start");
        await sleep(100);
      }
    }
    ({ sessionId } = await wd("POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application: APP } } },
    }));
    const s = (p) => `/session/${sessionId}${p}`;
    await wd("POST", s("/timeouts"), { script: 600000 });
    const find = async (using, value, timeoutMs = 30000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          const el = await wd("POST", s("/element"), { using, value });
          return el[W3C_ELEMENT] ?? el.ELEMENT ?? Object.values(el)[0];
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`not found: ${value} (${e.message})`);
          await sleep(200);
        }
      }
    };
    const css = (sel, t) => find("css selector", sel, t);
    const click = async (id) => wd("POST", s(`/element/${id}/click`), {});
    const type = async (id, text) => wd("POST", s(`/element/${id}/value`), { text });
    const attr = async (id, name) => wd("GET", s(`/element/${id}/attribute/${name}`));
    const exec = (script, args = []) => wd("POST", s("/execute/sync"), { script, args });
    const execAsync = (script, args = []) => wd("POST", s("/execute/async"), { script, args });
    const shot = async (name) => {
      const png = await wd("GET", s("/screenshot"));
      writeFileSync(join(OUT, `${name}.png`), Buffer.from(png, "base64"));
    };
    const active = ".tab-page:not(.hidden)";
    /** Waits until the active pane's byte counter has not moved for `quietMs`. */
    const settle = async (pane, quietMs = 700, timeoutMs = 120000) => {
      const deadline = Date.now() + timeoutMs;
      let last = null;
      let since = Date.now();
      for (;;) {
        const v = await attr(pane, "data-bytes-written");
        if (v !== last) {
          last = v;
          since = Date.now();
        } else if (Date.now() - since >= quietMs) {
          return Number(v || 0);
        }
        assert.ok(Date.now() < deadline, "the terminal kept printing");
        await sleep(100);
      }
    };
    const appPid = async () => {
      for (let i = 0; i < 50; i++) {
        const pids = appPids();
        if (pids.length === 1) return pids[0];
        await sleep(100);
      }
      throw new Error(`expected one sam-desktop process of this run, found ${appPids().length}`);
    };
    const sampleMemory = async (pid, seconds) => {
      const samples = [];
      const end = Date.now() + seconds * 1000;
      while (Date.now() < end) {
        const m = memory(pid);
        if (m) samples.push({ t: Date.now(), ...m });
        await sleep(500);
      }
      return samples;
    };

    // The workspace made by bench/desktop, from the sidebar.
    const wsButton = await find(
      "xpath",
      "//nav[contains(@class,'sidebar')]//button[contains(@class,'tree-label')][.//span[normalize-space()='bench']]",
      60000,
    );
    await click(wsButton);
    await find("xpath", "//*[contains(@class,'ws-title')]//h1[contains(normalize-space(),'bench')]", 30000);
    const pid = await appPid();
    await sleep(2000);
    result.idle = await sampleMemory(pid, 3);

    // Throughput: one tab, echo off (so the first bytes after the command are
    // the payload), the payload cat'ed `runs` times.
    await click(await find("xpath", "//button[normalize-space()='+ Terminal']"));
    const pane = await css(`${active} .terminal-pane[data-state=ready]`, 60000);
    const input = await css(`${active} .xterm-helper-textarea`);
    await type(input, "stty -echo\n");
    await settle(pane);
    const measureSrc = readFileSync(join(here, "measure.js"), "utf8");
    result.runs = [];
    for (let i = 0; i < cfg.runs; i++) {
      await exec(
        `${measureSrc}\nwindow.__samBench = samBenchMeasure(document.querySelector(${JSON.stringify(`${active} .terminal-pane`)}), arguments[0]); return window.__samBench.b0;`,
        [payload.shown.length],
      );
      await type(input, `cat ${PAYLOAD_PATH}\n`);
      const r = await execAsync(
        `const done = arguments[arguments.length - 1];
        const b = window.__samBench;
        const timer = setTimeout(() => {
          const p = document.querySelector(${JSON.stringify(`${active} .terminal-pane`)});
          done({ error: "no end in 180 s", state: p && p.getAttribute("data-state"),
                 counted: Number(p && p.getAttribute("data-bytes-written")) - b.b0, chunks: b.chunks,
                 overlay: (document.querySelector(".terminal-overlay") || {}).textContent });
        }, 180000);
        b.done.then((r) => { clearTimeout(timer); done(r); }, (e) => done({ error: String(e) }));`,
      );
      assert.ok(!r.error, `measuring in the window failed: ${JSON.stringify(r)}`);
      const after = await settle(pane);
      r.extra = after - (await exec("return window.__samBench.b0;")) - payload.shown.length;
      log(`app run ${i + 1}: ${(r.bytes / r.ms / 1000).toFixed(1)} MB/s (${r.chunks} chunks, ${r.extra} bytes besides the payload)`);
      result.runs.push(r);
    }
    result.renderer = await attr(pane, "data-renderer");
    result.view = await exec(`
      const host = document.querySelector(${JSON.stringify(`${active} .terminal-host`)});
      const cs = getComputedStyle(host);
      const screen = host.querySelector(".xterm-screen");
      return {
        theme: document.documentElement.dataset.theme || "dark",
        box: { "box-sizing": cs.boxSizing, width: cs.width, height: cs.height,
               "padding-top": cs.paddingTop, "padding-right": cs.paddingRight,
               "padding-bottom": cs.paddingBottom, "padding-left": cs.paddingLeft },
        screen: screen ? [screen.clientWidth, screen.clientHeight] : null,
        dpr: devicePixelRatio,
      };`);
    await shot("throughput");

    // Memory: `terminals` tabs, each with a full scrollback (10000 lines), each
    // printing the date as fast as the shell can loop.
    const stream = "seq 1 12000; while :; do date; done\n";
    await type(input, stream);
    for (let k = 2; k <= cfg.terminals; k++) {
      await click(await find("xpath", "//button[normalize-space()='+ Terminal']"));
      await find("xpath", `(//div[contains(@class,'tab-page')])[${k}][not(contains(@class,'hidden'))]//div[contains(@class,'terminal-pane')][@data-state='ready']`, 60000);
      await type(await css(`${active} .xterm-helper-textarea`), stream);
    }
    const panes = await exec("return document.querySelectorAll('.terminal-pane[data-state=ready]').length;");
    assert.equal(panes, cfg.terminals, "not every terminal tab is attached");
    await sleep(cfg.warmupSeconds * 1000);
    result.memory = await sampleMemory(pid, cfg.rssSeconds);
    result.scrolled = await exec(
      "return [...document.querySelectorAll('.terminal-pane')].map((p) => Number(p.getAttribute('data-bytes-written') || 0));",
    );
    result.agent = agentMemory(env.SAM_LOCAL_AGENT_PORT);
    await shot("five-terminals");
  } catch (e) {
    if (sessionId) {
      const png = await wd("GET", `/session/${sessionId}/screenshot`).catch(() => null);
      if (png) writeFileSync(join(OUT, "failure.png"), Buffer.from(png, "base64"));
    }
    throw e;
  } finally {
    if (sessionId) await wd("DELETE", `/session/${sessionId}`).catch(() => {});
    driver.kill();
    await new Promise((r) => (driver.exitCode !== null ? r() : driver.on("exit", r)));
    // WebDriver ends the app; make sure of it (our state folder's only).
    for (let i = 0; i < 50 && appPids().length; i++) await sleep(100);
    for (const p of appPids()) {
      for (const d of descendants(p)) process.kill(d.pid, "SIGKILL");
      process.kill(p, "SIGKILL");
    }
  }
  return result;
}

// ---------------------------------------------------------------- 3. baselines

const MIME = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".map": "application/json" };

/** Static files (this folder, xterm from src-ui/node_modules), the payload over a WebSocket, /result. */
function startServer(payload) {
  let resolveResult;
  let results = new Promise((r) => (resolveResult = r));
  const xtermDir = join(root, "src-ui", "node_modules", "@xterm");
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "POST" && url.pathname === "/result") {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        res.end("ok");
        resolveResult(JSON.parse(body));
      });
      return;
    }
    let file = null;
    if (url.pathname.startsWith("/xterm/")) file = join(xtermDir, normalize(url.pathname.slice(7)).replace(/^(\.\.[/\\])+/, ""));
    else if (["/baseline.html", "/baseline.mjs", "/measure.js"].includes(url.pathname)) file = join(here, url.pathname);
    try {
      const body = readFileSync(file);
      res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  server.on("upgrade", async (req, socket) => {
    const chunk = Math.max(1, Number(new URL(req.url, "http://x").searchParams.get("chunk")) || 65536);
    const accept = createHash("sha1").update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    socket.setNoDelay(true);
    socket.on("error", () => {});
    socket.on("data", (d) => {
      // The client's close frame (opcode 8): answer it and end.
      if ((d[0] & 0x0f) === 8) socket.end(Buffer.from([0x88, 0]));
    });
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    for (let o = 0; o < payload.length && !socket.destroyed; o += chunk) {
      const data = payload.subarray(o, Math.min(o + chunk, payload.length));
      let head;
      if (data.length < 126) head = Buffer.from([0x82, data.length]);
      else if (data.length < 65536) {
        head = Buffer.alloc(4);
        head[0] = 0x82;
        head[1] = 126;
        head.writeUInt16BE(data.length, 2);
      } else {
        head = Buffer.alloc(10);
        head[0] = 0x82;
        head[1] = 127;
        head.writeBigUInt64BE(BigInt(data.length), 2);
      }
      socket.write(head);
      if (!socket.write(data)) await new Promise((r) => socket.once("drain", r));
    }
  });
  return new Promise((ok) =>
    server.listen(0, "127.0.0.1", () =>
      ok({
        url: `http://127.0.0.1:${server.address().port}`,
        next: async (timeoutMs) => {
          const r = await Promise.race([results, sleep(timeoutMs).then(() => ({ ok: false, error: "no result in time" }))]);
          results = new Promise((res) => (resolveResult = res));
          return r;
        },
        close: () => new Promise((r) => server.close(r)),
      }),
    ),
  );
}

function baselineQuery(p) {
  return new URLSearchParams({
    renderer: p.renderer,
    theme: p.theme,
    box: JSON.stringify(p.box),
    runs: String(p.runs),
    bytes: String(p.bytes),
    chunk: String(p.chunk),
  }).toString();
}

async function baselineChromium(server, p) {
  const { chromium } = await import(join(root, "src-ui", "node_modules", "playwright-core", "index.mjs"));
  const userDataDir = mkdtempSync(join(WORK, "chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: env.CHROMIUM ?? "/usr/bin/chromium",
    headless: false,
    args: [
      "--no-sandbox",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--window-size=1280,800",
      // No GPU under Xvfb: WebGL through SwiftShader, as the app's goes through Mesa's software GL.
      ...(p.renderer === "webgl" ? ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"] : []),
    ],
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => log(`chromium page error: ${e.message}`));
    await page.goto(`${server.url}/baseline.html?${baselineQuery(p)}`);
    const r = await server.next(300000);
    r.browser = `Chromium ${context.browser()?.version() ?? ""}`.trim();
    return r;
  } finally {
    await context.close();
  }
}

async function baselineWebKit(server, p) {
  const child = spawn("/usr/bin/python3", [join(here, "webkit-page.py"), `${server.url}/baseline.html?${baselineQuery(p)}`], {
    stdio: ["ignore", "ignore", "ignore"],
  });
  try {
    return await server.next(300000);
  } finally {
    child.kill();
    await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
  }
}

// ---------------------------------------------------------------- the run

/** MB/s (10^6 bytes) of each run, and their median. */
function mbps(runs) {
  const all = runs.map((r) => r.bytes / r.ms / 1000);
  return { median: median(all), all };
}

async function main() {
  const load = loadavg()[0];
  const startedAt = new Date();
  log(`load average (1 min) at start: ${load.toFixed(2)} on ${cpus().length} cores`);

  // The node and workspace the later starts and the app session use.
  log("adding this computer and the workspace (sam CLI)");
  cli(["node", "add", "local", "--name", "this-computer"]);
  cli(["ws", "create", "this-computer", "bench", "--image", env.SAM_BENCH_IMAGE || "sam-test-busybox:latest"]);
  const payload = makePayload(cfg.payloadMB * 1e6);
  cli(["exec", WS, "--", "sh", "-c", `cat > ${PAYLOAD_PATH}`], { input: payload.file });
  const size = Number(cli(["exec", WS, "--", "sh", "-c", `wc -c < ${PAYLOAD_PATH}`]).trim());
  assert.equal(size, payload.file.length, "the payload did not reach the workspace whole");

  log("cold starts");
  const cold = await coldStarts();

  log("the app over WebDriver: throughput, then memory with terminals streaming");
  const app = await appSession(payload);

  // The streaming terminals end with the workspace's stop, so the baselines run on a quiet machine.
  log("stopping the workspace");
  cli(["ws", "stop", WS, "--yes"]);

  const avgChunk = median(app.runs.map((r) => r.total / r.chunks));
  const params = {
    renderer: app.renderer || "dom",
    theme: app.view.theme,
    box: app.view.box,
    runs: cfg.runs,
    bytes: payload.shown.length,
    chunk: Math.max(1024, Math.round(avgChunk)),
  };
  const server = await startServer(payload.shown);
  let chromium;
  let webkit;
  try {
    log(`baseline: plain WebSocket in Chromium (${params.renderer} renderer, ${params.chunk}-byte messages)`);
    chromium = await baselineChromium(server, params);
    assert.ok(chromium.ok, `the Chromium baseline failed: ${chromium.error}`);
    log("baseline: plain WebSocket in a bare WebKitGTK view");
    webkit = await baselineWebKit(server, params);
    assert.ok(webkit.ok, `the WebKitGTK baseline failed: ${webkit.error}`);
  } finally {
    await server.close();
  }

  // ---- figures (n/a where a phase was skipped, e.g. LATER_STARTS=0)
  const ok = (x) => Number.isFinite(x);
  const f = (x, d) => (ok(x) ? x.toFixed(d) : "n/a");
  const range = (xs, d) => (xs.length ? `${f(Math.min(...xs), d)} … ${f(Math.max(...xs), d)}` : "n/a");
  const verdict = (x, good) => (!ok(x) ? "n/a" : good(x) ? "met" : "MISSED");
  const MB = (k) => k / 1024;
  const laterPaint = cold.later.map((r) => r.painted);
  const freshPaint = cold.fresh.map((r) => r.painted);
  const mem = app.memory;
  const half = mem.slice(Math.floor(mem.length / 2));
  const peakPss = MB(Math.max(...mem.map((m) => m.pss)));
  const steadyPss = MB(median(half.map((m) => m.pss)));
  const peakRss = MB(Math.max(...mem.map((m) => m.rss)));
  const steadyRss = MB(median(half.map((m) => m.rss)));
  const idlePss = MB(median(app.idle.map((m) => m.pss)));
  const idleRss = MB(median(app.idle.map((m) => m.rss)));
  const perProcess = Object.entries(mem[mem.length - 1]?.by ?? {})
    .sort((x, y) => y[1].pss - x[1].pss)
    .map(([name, v]) => `${name}${v.n > 1 ? ` x${v.n}` : ""} ${MB(v.pss).toFixed(0)}`)
    .join(", ");
  const tApp = mbps(app.runs);
  const tChromium = mbps(chromium.runs);
  const tWebkit = mbps(webkit.runs);
  const ratio = tApp.median / tChromium.median;
  const coldMedian = median(laterPaint);

  const lines = [
    "",
    `desktop benchmark (release build, Xvfb 1280x800, ${cpus().length} cores) — ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, load average ${load.toFixed(2)} at start`,
    `cold start to first paint   median ${f(coldMedian, 2)} s (${laterPaint.length} later starts, ${range(laterPaint, 2)}); first start ${f(median(freshPaint), 2)} s (median of ${freshPaint.length}, fresh state)   goal < 1.5 s: ${verdict(coldMedian, (x) => x < 1.5)}`,
    `                            window mapped after ${f(median(cold.later.map((r) => r.mapped)), 2)} s (later starts), ${f(median(cold.fresh.map((r) => r.mapped)), 2)} s (first starts)`,
    `RSS, ${cfg.terminals} terminals streaming  PSS peak ${f(peakPss, 0)} MB, steady ${f(steadyPss, 0)} MB (RSS sum: peak ${f(peakRss, 0)}, steady ${f(steadyRss, 0)})   goal < 200 MB: ${verdict(Math.max(peakPss, steadyPss), (x) => x < 200)}`,
    `                            idle window, no terminal: PSS ${f(idlePss, 0)} MB (RSS sum ${f(idleRss, 0)}); PSS by process: ${perProcess}`,
    `                            not counted: the node's sam-agent and its terminal holders, PSS ${app.agent ? f(MB(app.agent.pss), 0) : "n/a"} MB`,
    `terminal throughput         Tauri channel ${f(tApp.median, 1)} MB/s   plain WebSocket (Chromium) ${f(tChromium.median, 1)} MB/s   ratio ${f(ratio, 2)} (goal >= 1: ${verdict(ratio, (x) => x >= 1)})`,
    `                            plain WebSocket in a bare WebKitGTK view (the app's engine, no Tauri) ${f(tWebkit.median, 1)} MB/s`,
    `                            runs (MB/s): app ${range(tApp.all, 1)}, Chromium ${range(tChromium.all, 1)}, WebKitGTK ${range(tWebkit.all, 1)}; ${(payload.shown.length / 1e6).toFixed(1)} MB a run, median of ${cfg.runs}`,
    `                            renderer: app ${params.renderer}, Chromium ${chromium.renderer}, WebKitGTK ${webkit.renderer}; terminal ${chromium.cols}x${chromium.rows}; app messages ${(avgChunk / 1024).toFixed(1)} KiB on average, baseline messages ${(params.chunk / 1024).toFixed(1)} KiB`,
  ];
  console.log(lines.join("\n"));

  writeFileSync(
    join(OUT, "results.json"),
    JSON.stringify({ startedAt, load, cpus: cpus().length, cfg, cold, app: { ...app, memory: app.memory }, params, chromium, webkit }, null, 2),
  );
  log(`details: ${join(OUT, "results.json")}, screenshots in ${OUT}`);
}

await main();
