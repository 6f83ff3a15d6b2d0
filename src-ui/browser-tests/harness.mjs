// The browser-test harness: a static server for dist/ with a strict CSP, Debian's
// Chromium driven by playwright-core (no browser download), the fake control
// plane injected before the app starts, and a tiny test runner.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { chromium } from "playwright-core";

export const root = resolve(import.meta.dirname, "..");
export const dist = join(root, "dist");
export const artifacts = join(root, "test-artifacts");
const mockScript = join(root, "browser-tests", ".build", "mock.js");

/** What Tauri will enforce, near enough: no inline scripts, no eval, no remote origins. */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // xterm.js and CodeMirror add <style> elements at run time (see README.md).
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self' ipc: http://ipc.localhost",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status})`);
}

/** dist/ (built when missing) and the separately built fake; checks the fake stays out of dist/. */
export function prepare() {
  if (!existsSync(join(dist, "index.html"))) run("npm", ["run", "build"]);
  run("npx", ["vite", "build", "--config", "browser-tests/mock.config.ts"]);
  const leaks = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(js|html)$/.test(f)) {
        const text = readFileSync(p, "utf8");
        for (const marker of ["FakeSam", "mockIPC", "__sam", "The fake does not know"]) {
          if (text.includes(marker)) leaks.push(`${p}: ${marker}`);
        }
      }
    }
  };
  walk(dist);
  if (leaks.length) throw new Error(`Test doubles found in the production bundle:\n${leaks.join("\n")}`);
  // Screenshots of this run only.
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
}

export function serve() {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    let path = normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, "");
    if (path === "/" || path === "") path = "/index.html";
    const file = join(dist, path);
    if (!file.startsWith(dist) || !existsSync(file) || statSync(file).isDirectory()) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": types[extname(file)] ?? "application/octet-stream",
      "content-security-policy": CSP,
      "cache-control": "no-store",
    });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

export async function launch(extraArgs = []) {
  const userDataDir = mkdtempSync(join(tmpdir(), "sam-ui-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    colorScheme: "light",
    reducedMotion: "reduce",
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A page with the fake control plane installed before the app's own script,
 * failing the test on any page error, console error or CSP violation.
 */
export async function openApp(context, base, query = "") {
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  await page.addInitScript({ path: mockScript });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  await page.goto(`${base}/index.html${query ? `?${query}` : ""}`);
  await page.waitForSelector(".app");
  page.problems = problems;
  return page;
}

export async function shot(page, name) {
  const file = join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** Calls the fake recorded, by command. */
export function calls(page, cmd) {
  return page.evaluate((c) => window.__sam.callsOf(c).map((x) => ({ args: x.args, headers: x.headers })), cmd);
}

const tests = [];
export function test(name, fn) {
  tests.push({ name, fn });
}

export async function runAll() {
  const started = Date.now();
  prepare();
  const server = await serve();
  const base = `http://127.0.0.1:${server.address().port}`;
  const browser = await launch();
  const results = [];
  const only = process.argv.slice(2);
  try {
    for (const t of tests) {
      if (only.length && !only.some((o) => t.name.includes(o))) continue;
      const t0 = Date.now();
      let page;
      try {
        await t.fn({
          context: browser.context,
          base,
          open: async (query) => (page = await openApp(browser.context, base, query)),
        });
        if (page?.problems.length) throw new Error(page.problems.join("\n"));
        results.push({ name: t.name, ok: true, ms: Date.now() - t0 });
        console.log(`  ✓ ${t.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        if (page) await shot(page, `FAILED-${t.name.replace(/[^a-z0-9]+/gi, "-")}`).catch(() => {});
        results.push({ name: t.name, ok: false, ms: Date.now() - t0, error: e });
        console.log(`  ✗ ${t.name} (${Date.now() - t0} ms)\n${String(e?.stack ?? e).replace(/^/gm, "      ")}`);
        if (page?.problems.length) console.log(page.problems.join("\n").replace(/^/gm, "      "));
      } finally {
        await page?.close().catch(() => {});
      }
    }
  } finally {
    await browser.close();
    server.close();
  }
  const failed = results.filter((r) => !r.ok);
  console.log(
    `\n${results.length - failed.length} passed, ${failed.length} failed, in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${artifacts}`,
  );
  // Repeated last, so a log cut to its tail still says what failed and why.
  for (const f of failed) console.log(`  failed: ${f.name}: ${String(f.error?.message ?? f.error).split("\n")[0]}`);
  if (failed.length || results.length === 0) process.exit(1);
}
