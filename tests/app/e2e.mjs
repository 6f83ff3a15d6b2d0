// The real SAM window under Xvfb, driven over WebDriver (tauri-driver +
// WebKitWebDriver), against a real local node on Docker: add this computer,
// create a workspace, open a terminal, type a command and see it run, stop the
// workspace after the confirmation. A screenshot is kept.
//
//   node tests/app/e2e.mjs   (scripts/app-test sets the environment up)
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const app = process.env.SAM_APP;
const sam = process.env.SAM_CLI;
const artifacts = process.env.SAM_ARTIFACTS;
const port = Number(process.env.WEBDRIVER_PORT || 4444);
assert.ok(app && sam && artifacts, "SAM_APP, SAM_CLI and SAM_ARTIFACTS are set by scripts/app-test");
mkdirSync(artifacts, { recursive: true });

const W3C_ELEMENT = "element-6066-11e4-a52e-4f735466cecc";
const base = `http://127.0.0.1:${port}`;

async function wd(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json).slice(0, 400)}`);
  return json.value;
}

const driver = spawn("tauri-driver", ["--port", String(port)], { stdio: ["ignore", "inherit", "inherit"] });
process.on("exit", () => driver.kill());
for (let i = 0; ; i++) {
  try {
    await fetch(`${base}/status`);
    break;
  } catch {
    assert.ok(i < 100, "tauri-driver did not start");
    await sleep(100);
  }
}

const started = Date.now();
const { sessionId } = await wd("POST", "/session", {
  capabilities: { alwaysMatch: { "tauri:options": { application: app } } },
});
const s = (p) => `/session/${sessionId}${p}`;
const find = async (using, value, timeoutMs = 30000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const el = await wd("POST", s("/element"), { using, value });
      const id = el[W3C_ELEMENT] ?? el.ELEMENT ?? Object.values(el)[0];
      if (!id) throw new Error(`odd element ${JSON.stringify(el)}`);
      return id;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`not found: ${value} (${e.message})`);
      await sleep(200);
    }
  }
};
const css = (sel, t) => find("css selector", sel, t);
const button = (label, t) => find("xpath", `//button[normalize-space()='${label}' or @aria-label='${label}']`, t);
const click = async (id) => wd("POST", s(`/element/${id}/click`), {});
const type = async (id, text) => wd("POST", s(`/element/${id}/value`), { text });
const textOf = async (id) => wd("GET", s(`/element/${id}/text`));
const shot = async (name) => {
  const png = await wd("GET", s("/screenshot"));
  writeFileSync(`${artifacts}/${name}.png`, Buffer.from(png, "base64"));
};
const waitFor = async (what, check, timeoutMs = 60000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(250);
  }
};
const cli = (...args) => execFileSync(sam, args, { encoding: "utf8" });

try {
  assert.equal(await wd("GET", s("/title")), "SAM");
  console.log(`window up in ${Date.now() - started} ms`);

  // Add this computer.
  await click(await button("Add a node"));
  await css("[data-testid=add-node]");
  await click(await button("Add this computer"));
  await css("[data-testid=add-node-done]", 60000);
  await shot("01-this-computer-added");
  await click(await button("Open this-computer"));
  await css("#node-title");

  // Create a workspace.
  await click(await button("New workspace"));
  await css("[data-testid=create-workspace]");
  const name = await find("xpath", "//*[@data-testid='create-workspace']//div[contains(@class,'field')][label[normalize-space()='Name']]/input");
  await type(name, "e2e");
  await click(await button("Create workspace"));
  await waitFor("the workspace screen", async () => (await textOf(await css(".ws-title h1", 2000))).includes("e2e"), 120000);
  await shot("02-workspace");

  // A terminal: type, and the command runs in the workspace.
  await click(await button("+ Terminal"));
  const pane = await css(".tab-page:not(.hidden) .terminal-pane[data-state=ready]", 60000);
  const input = await css(".tab-page:not(.hidden) .xterm-helper-textarea");
  await type(input, "echo sam-e2e-$((6*7)) | tee /tmp/e2e-proof\n");
  await waitFor("the command's output", async () => cli("exec", "this-computer/e2e", "--", "cat", "/tmp/e2e-proof").includes("sam-e2e-42"), 30000);
  const renderer = await wd("GET", s(`/element/${pane}/attribute/data-renderer`));
  if (renderer === "dom") {
    await waitFor("the output on screen", async () => (await textOf(await css(".tab-page:not(.hidden) .xterm-rows", 2000))).includes("sam-e2e-42"), 15000);
  }
  await sleep(300);
  await shot("03-terminal");

  // Stop the workspace, after the confirmation.
  await click(await find("xpath", "//button[normalize-space()='Stop']"));
  const confirm = await css("[data-testid=workspace-confirm] [data-testid=confirmation]");
  assert.match(await textOf(confirm), /e2e/);
  await shot("04-stop-confirmation");
  await click(await button("Stop workspace"));
  await waitFor("the workspace to stop", async () => JSON.parse(cli("--json", "ws", "show", "this-computer/e2e")).status === "stopped", 60000);
  await shot("05-stopped");

  // Closing the window hides it; the app keeps running (the tray, node streams
  // and work in flight), and starting SAM again brings the same window back.
  const [handle] = await wd("GET", s("/window/handles"));
  execFileSync("/usr/bin/python3", [new URL("./close-window.py", import.meta.url).pathname]);
  await sleep(1000);
  const closeWindow = () => execFileSync("/usr/bin/python3", [new URL("./close-window.py", import.meta.url).pathname]);
  assert.throws(closeWindow, "the window is still shown after it was closed");
  const pids = execFileSync("pgrep", ["-f", app], { encoding: "utf8" }).trim().split("\n");
  assert.ok(pids.length >= 1, "the app ended when its window was closed");
  const second = spawn(app, [], { stdio: "ignore" });
  const secondExit = new Promise((r) => second.on("exit", r));
  await Promise.race([secondExit, sleep(10000)]);
  assert.notEqual(second.exitCode, null, "a second start should hand over to the running app and end");
  await wd("POST", s("/window"), { handle }).catch(() => {});
  await waitFor("the window again", async () => (await textOf(await css(".ws-title h1", 2000))).includes("e2e"), 15000);
  await shot("06-reopened");
  console.log("app end-to-end: all steps passed");
} catch (e) {
  await shot("failure").catch(() => {});
  throw e;
} finally {
  await wd("DELETE", s("")).catch(() => {});
  driver.kill();
}
