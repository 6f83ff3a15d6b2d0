// The built UI (dist/) in Debian's Chromium with the control plane faked behind
// Tauri's IPC. `node browser-tests/run.mjs [name filter…]`. Screenshots go to
// test-artifacts/.
import assert from "node:assert/strict";

import { calls, launch, openApp, runAll, shot, test } from "./harness.mjs";

const text = (page, sel) => page.locator(sel).innerText();

/** The sidebar row of a node or workspace, by its exact name. */
const side = (page, name) => page.locator(".sidebar .tree-label", { hasText: new RegExp(`^\\s*${name}\\s*!?$`) });

/**
 * Records, from now on, the text of every progress step that is ever the
 * running one. A MutationObserver sees every commit, so a step shorter than a
 * frame on a loaded machine is not missed (polling for it once raced and lost).
 */
function watchSteps(page) {
  return page.evaluate(() => {
    const seen = (window.__stepsSeen = []);
    const record = () => {
      for (const e of document.querySelectorAll(".step.running")) seen.push(e.textContent);
    };
    new MutationObserver(record).observe(document.body, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ["class"],
      characterData: true,
    });
    record();
  });
}

/** Waits until a step containing `text` has been the running one (see watchSteps). */
function runningStep(page, text) {
  return page.waitForFunction((t) => (window.__stepsSeen ?? []).some((s) => s.includes(t)), text);
}

/** Concatenates the raw bodies of every terminal_input call (Uint8Array → bytes). */
async function typedBytes(page) {
  return page.evaluate(() =>
    window.__sam
      .callsOf("terminal_input")
      .map((c) => new TextDecoder().decode(c.args))
      .join(""),
  );
}

test("nodes list: health badges and last seen", async ({ open }) => {
  const page = await open();
  const table = page.locator("[data-testid=nodes-table]");
  await table.waitFor();
  const row = (name) => table.locator(`tr[data-node="${name}"]`);
  assert.equal(await row("this-computer").locator(".badge").innerText(), "healthy");
  assert.equal(await row("this-computer").locator(".badge").getAttribute("data-tone"), "ok");
  assert.equal(await row("build-box").locator(".badge").innerText(), "stale");
  assert.equal(await row("build-box").locator(".badge").getAttribute("data-tone"), "warn");
  assert.equal(await row("hetzner-old").locator(".badge").innerText(), "unhealthy");
  assert.equal(await row("hetzner-old").locator(".badge").getAttribute("data-tone"), "bad");
  assert.match(await row("build-box").locator("[data-testid=last-seen]").innerText(), /^last seen 1m ago$/);
  assert.match(await row("hetzner-old").locator("[data-testid=last-seen]").innerText(), /^last seen 2\dm ago$/);
  assert.match(await row("this-computer").locator("[data-testid=last-seen]").innerText(), /^last seen (just now|\d+s ago)$/);
  assert.match(await row("this-computer").innerText(), /2 of 10 workspaces \(1 running\)/);
  assert.equal(await text(page, "[data-testid=node-count]"), "3 of 10 nodes");
  // A health change pushed by the control plane moves the badge at once.
  await page.evaluate(() =>
    window.__sam.signal({
      type: "health",
      change: { nodeId: "n-build", nodeName: "build-box", from: "stale", to: "healthy", at: new Date().toISOString() },
    }),
  );
  await row("build-box").locator(".badge", { hasText: "healthy" }).waitFor();
  await page.evaluate(() =>
    window.__sam.signal({
      type: "health",
      change: { nodeId: "n-local", nodeName: "this-computer", from: "healthy", to: "stale", at: new Date().toISOString() },
    }),
  );
  await page.locator(".notice", { hasText: "this-computer is stale." }).waitFor();
  await shot(page, "01-nodes-list");
});

test("first run: empty state, then add this computer", async ({ open }) => {
  const page = await open("empty");
  await page.locator(".empty", { hasText: "No nodes yet" }).waitFor();
  await shot(page, "02-nodes-empty");
  await page.getByRole("button", { name: "Add a node" }).last().click();
  const dialog = page.locator("[data-testid=add-node]");
  await dialog.waitFor();
  assert.equal(await dialog.getByRole("tab", { name: "This computer" }).getAttribute("aria-selected"), "true");
  await dialog.getByRole("button", { name: "Add this computer" }).click();
  await dialog.locator("[data-testid=add-node-done]").waitFor();
  assert.deepEqual((await calls(page, "add_local_node")).map((c) => c.args.name), ["this-computer"]);
  await shot(page, "03-add-local-done");
  await dialog.getByRole("button", { name: "Open this-computer" }).click();
  await page.locator("#node-title", { hasText: "this-computer" }).waitFor();
  await page.locator(".empty", { hasText: "No workspaces yet" }).waitFor();
});

test("add an SSH node: host key prompt, then progress", async ({ open }) => {
  const page = await open("stepMs=120");
  await page.getByRole("button", { name: "Add node" }).click();
  const dialog = page.locator("[data-testid=add-node]");
  // This computer is a node already, so the dialog starts at SSH.
  assert.equal(await dialog.getByRole("tab", { name: "SSH server" }).getAttribute("aria-selected"), "true");
  await dialog.getByLabel("Server (user@host)").fill("deploy@203.0.113.7");
  assert.equal(await dialog.getByLabel("Node name").inputValue(), "203.0.113.7".replace(/[^A-Za-z0-9._-]/g, "-"));
  await dialog.getByLabel("Node name").fill("edge-1");
  await dialog.getByLabel("Port").fill("2222");
  await dialog.getByRole("button", { name: "Connect and install" }).click();
  const ask = dialog.locator("[data-testid=host-key]");
  await ask.waitFor();
  assert.match(await ask.innerText(), /SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8/);
  await shot(page, "04-add-ssh-host-key");
  assert.equal(await dialog.locator(".step.failed").count(), 0, "an unknown host key is a question, not a failure");
  await watchSteps(page);
  await ask.getByRole("button", { name: "Trust this key and connect" }).click();
  await runningStep(page, "Uploading sam-agent");
  await shot(page, "05-add-ssh-progress");
  await dialog.locator("[data-testid=add-node-done]").waitFor();
  const c = (await calls(page, "add_ssh_node")).map((x) => x.args);
  assert.equal(c.length, 2);
  assert.equal(c[0].target, "deploy@203.0.113.7");
  assert.equal(c[0].port, 2222);
  assert.equal(c[0].name, "edge-1");
  assert.equal(c[0].acceptHostKey, undefined);
  assert.equal(c[1].acceptHostKey, "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8");
  const steps = await dialog.locator(".step").allInnerTexts();
  assert.ok(steps.some((s) => s.includes("Waiting for the agent at https://203.0.113.7:7420.")), steps.join("\n"));
  assert.equal(await dialog.locator(".step.done").count(), steps.length);
  await dialog.getByRole("button", { name: "Close" }).last().click();
  await page.locator('tr[data-node="edge-1"] .badge', { hasText: "healthy" }).waitFor();
});

test("add a Hetzner node: token, server type, location, progress", async ({ open }) => {
  const token = "hz-test-token-4c1d9f0e";
  const page = await open("stepMs=150");
  await page.getByRole("button", { name: "Add node" }).click();
  const dialog = page.locator("[data-testid=add-node]");
  await dialog.getByRole("tab", { name: "Hetzner Cloud" }).click();
  await dialog.locator("[data-testid=hetzner-token]").waitFor();
  await dialog.getByLabel("Hetzner API token").fill(token);
  await dialog.getByRole("button", { name: "Save token" }).click();
  const form = dialog.locator("[data-testid=add-hetzner]");
  await form.getByLabel("Server type").waitFor();
  await form.getByLabel("Node name").fill("hz-2");
  await form.getByLabel("Server type").selectOption("cx32");
  await form.getByLabel("Location").selectOption("hel1");
  await form.getByLabel("Image").selectOption("debian-12");
  assert.match(await form.innerText(), /4 vCPU · 8 GB RAM · 80 GB disk · x86/);
  await watchSteps(page);
  await form.getByRole("button", { name: "Create server" }).click();
  await runningStep(page, "Installing Docker");
  assert.ok((await form.locator(".step.done").count()) >= 3);
  await shot(page, "06-add-hetzner-progress");
  await dialog.locator("[data-testid=add-node-done]").waitFor();
  const [args] = (await calls(page, "add_hetzner_node")).map((x) => x.args);
  assert.equal(args.name, "hz-2");
  assert.equal(args.serverType, "cx32");
  assert.equal(args.location, "hel1");
  assert.equal(args.image, "debian-12");
  assert.equal(typeof args.progress, "object");
  assert.deepEqual((await calls(page, "set_hetzner_token")).map((x) => x.args), [{ token }]);
  assert.ok(await page.evaluate((t) => window.__sam.keychainHas(t), token));
  assert.ok(!(await page.content()).includes(token), "the token must not stay in the page");
  await shot(page, "07-add-hetzner-done");
});

test("create a workspace from a repository, with progress", async ({ open }) => {
  const page = await open("stepMs=150");
  await side(page, "this-computer").click();
  await page.locator("#node-title", { hasText: "this-computer" }).waitFor();
  await page.locator("[data-testid=ws-limit]", { hasText: "2 of 10 workspaces" }).waitFor();
  await page.locator("[data-testid=events] .event").first().waitFor();
  await shot(page, "08-node-screen");
  await page.getByRole("button", { name: "New workspace" }).click();
  const dialog = page.locator("[data-testid=create-workspace]");
  await dialog.getByLabel("Name").fill("scratch");
  await dialog.getByRole("radio", { name: "A git repository" }).click();
  await dialog.getByLabel("Repository URL").fill("https://github.com/example/scratch.git");
  await dialog.getByLabel("Branch (optional)").fill("dev");
  await watchSteps(page);
  await dialog.getByRole("button", { name: "Create workspace" }).click();
  await runningStep(page, "Cloning https://github.com/example/scratch.git (dev).");
  await shot(page, "09-create-workspace-progress");
  await page.locator(".ws-title h1", { hasText: "scratch" }).waitFor();
  const [args] = (await calls(page, "create_workspace")).map((x) => x.args);
  assert.equal(args.node, "n-local");
  assert.equal(args.name, "scratch");
  assert.equal(args.repository, "https://github.com/example/scratch.git");
  assert.equal(args.branch, "dev");
  assert.equal(args.image, undefined);
  await side(page, "scratch").waitFor();
});

test("terminal: tabs, typing reaches terminal_input, output renders (WebGL)", async ({ open }) => {
  const page = await open("terminal");
  await side(page, "api").click();
  // The terminal that outlived the window comes back as a tab, its scrollback replayed.
  const kept = page.locator('.terminal-pane[data-terminal="t-kept"]');
  await kept.and(page.locator('[data-state="ready"]')).waitFor();
  const renderer = await kept.getAttribute("data-renderer");
  assert.ok(renderer === "webgl" || renderer === "dom", renderer);

  await page.getByRole("button", { name: "+ Terminal" }).click();
  const tab2 = page.locator(".tab", { hasText: "Terminal 2" });
  await tab2.waitFor();
  const pane = page.locator(".tab-page:not(.hidden) .terminal-pane");
  await pane.and(page.locator('[data-state="ready"]')).waitFor();
  const before = await pane.locator(".terminal-host").screenshot();
  await page.keyboard.type("echo hello");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => window.__sam.callsOf("terminal_input").length > 0);
  await page.waitForFunction(
    () => window.__sam.callsOf("terminal_input").map((c) => new TextDecoder().decode(c.args)).join("").endsWith("\r"),
  );
  assert.equal(await typedBytes(page), "echo hello\r");
  const input = await calls(page, "terminal_input");
  const tid = await pane.getAttribute("data-terminal");
  for (const c of input) assert.deepEqual(c.headers, { workspace: "w-api", terminal: tid });
  // The bytes the node echoed are on screen.
  await page.waitForTimeout(150);
  const after = await pane.locator(".terminal-host").screenshot();
  assert.ok(!before.equals(after), "the terminal shows the output");
  // What xterm parsed goes back as acknowledgements (the app's output window).
  await page.waitForFunction((t) => {
    const parsed = document.querySelector(`.terminal-pane[data-terminal="${t}"]`)?.getAttribute("data-bytes-written");
    const acked = window.__sam
      .callsOf("terminal_ack")
      .filter((c) => c.args.terminal === t)
      .reduce((n, c) => n + c.args.bytes, 0);
    return acked > 0 && String(acked) === parsed;
  }, tid);
  assert.ok((await calls(page, "resize_terminal")).length > 0, "the terminal told the node its size");
  await shot(page, "10-terminal-webgl");

  // Keyboard shortcuts: new tab, previous/next, close.
  await page.keyboard.press("Control+Shift+T");
  await page.locator(".tab", { hasText: "Terminal 3" }).waitFor();
  assert.match(await page.locator(".tab.active").innerText(), /Terminal 3/);
  await page.keyboard.press("Control+Shift+Tab");
  assert.match(await page.locator(".tab.active").innerText(), /Terminal 2/);
  await page.keyboard.press("Control+Tab");
  assert.match(await page.locator(".tab.active").innerText(), /Terminal 3/);
  await page.keyboard.press("Control+Shift+W");
  await page.locator(".tab", { hasText: "Terminal 3" }).waitFor({ state: "detached" });
  assert.equal((await calls(page, "kill_terminal")).length, 1);
  assert.equal(await typedBytes(page), "echo hello\r", "shortcuts never reach the shell");
  // Search in the terminal.
  await page.keyboard.press("Control+Shift+F");
  await page.getByLabel("Find in terminal").waitFor();
  await page.keyboard.press("Escape");
  // The help lists the shortcuts.
  await page.locator(".tabstrip [data-testid=shortcuts-help]").hover();
  await page.locator(".tabstrip .help-pop", { hasText: "Ctrl+Shift+T" }).waitFor();
  // Not clipped: the middle of the popup is the popup.
  assert.ok(
    await page.evaluate(() => {
      const r = document.querySelector(".tabstrip .help-pop").getBoundingClientRect();
      return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)?.closest(".help-pop") !== null;
    }),
    "the shortcuts help shows",
  );
  await shot(page, "11-shortcuts-help");
});

test("terminal: DOM renderer when WebGL is unavailable", async ({ base }) => {
  const browser = await launch(["--disable-3d-apis", "--disable-webgl"]);
  let page;
  try {
    page = await openApp(browser.context, base, "terminal");
    await side(page, "api").click();
    const pane = page.locator('.terminal-pane[data-terminal="t-kept"]');
    await pane.and(page.locator('[data-state="ready"]')).waitFor();
    assert.equal(await pane.getAttribute("data-renderer"), "dom");
    await pane.locator(".xterm-rows", { hasText: "12 passed (kept on the node)" }).waitFor();
    await pane.locator(".xterm-helper-textarea").focus();
    await page.keyboard.type("echo from-dom");
    await page.keyboard.press("Enter");
    await pane.locator(".xterm-rows div", { hasText: /^from-dom\s*$/ }).waitFor();
    assert.equal(await typedBytes(page), "echo from-dom\r");
    await shot(page, "12-terminal-dom-fallback");
    if (page.problems.length) throw new Error(page.problems.join("\n"));
  } finally {
    await page?.close();
    await browser.close();
  }
});

test("agent session: streamed chunks, permission prompt answered", async ({ open }) => {
  const page = await open("stepMs=120");
  await side(page, "api").click();
  // The running session comes back as a tab with its history.
  await page.locator(".tab", { hasText: "Fix the login test" }).click();
  await page.locator(".msg.agent", { hasText: "The test expects a 302 redirect" }).waitFor();
  await page.getByRole("button", { name: "+ Agent" }).click();
  const dialog = page.locator("[data-testid=new-session]");
  await dialog.getByLabel("Label (optional)").fill("Login fix");
  await dialog.getByRole("button", { name: "Start session" }).click();
  await page.locator(".tab.active", { hasText: "Login fix" }).waitFor();
  const chat = page.locator(".tab-page:not(.hidden) .session");
  await chat.getByLabel("Message to the agent").fill("Please fix the login test.");
  await chat.getByLabel("Message to the agent").press("Enter");
  await page.locator('.tab-page:not(.hidden) .session[data-running="true"]').waitFor();
  await chat.getByRole("button", { name: "Cancel" }).waitFor();
  // Chunks stream into one message.
  await chat.locator(".msg.agent", { hasText: "I found it:" }).waitFor();
  await chat.locator(".msg.agent", { hasText: "Here is the change:" }).waitFor();
  assert.equal(await chat.locator(".msg.agent").count(), 1);
  assert.match(await chat.locator(".msg.agent").innerText(), /I found it: login\(\) returns 200, but the test expects a redirect\.\s+Here is the change:/);
  assert.equal(await chat.locator(".msg.agent strong").innerText(), "200");
  // The thought is there, collapsed.
  const thought = chat.locator("details.thought");
  assert.equal(await thought.getAttribute("open"), null);
  assert.ok(!(await thought.locator(".pre").isVisible()));
  // The plan and the tool call with its diff.
  assert.equal(await chat.locator(".plan li").count(), 3);
  assert.equal(await chat.locator('.plan li[data-status="in_progress"]').innerText(), "◐ Make login() redirect");
  const diff = chat.locator(".tool [data-testid=diff]").first();
  await diff.waitFor();
  assert.match(await diff.locator("tr.del").innerText(), /return 200;/);
  assert.match(await diff.locator("tr.add").innerText(), /return 302;/);
  // The permission prompt with the offered options.
  const prompt = chat.locator(".permission", { hasText: "Edit src/login.ts" });
  await prompt.getByRole("button", { name: "Allow once" }).waitFor();
  assert.deepEqual(await prompt.getByRole("button").allInnerTexts(), ["Allow once", "Always allow", "Reject"]);
  await page.locator(".tab.active .waiting", { hasText: "waiting for you" }).waitFor();
  await shot(page, "13-session-permission");
  await prompt.getByRole("button", { name: "Allow once" }).click();
  await prompt.locator("[data-testid=permission-answer]", { hasText: "Answered: Allow once." }).waitFor();
  await chat.locator(".msg.agent", { hasText: "Done. The login test passes now." }).waitFor();
  await chat.getByRole("button", { name: "Cancel" }).waitFor({ state: "detached" });
  await chat.locator(".tool .pill", { hasText: "completed" }).waitFor();
  await page.locator(".tab.active .waiting").waitFor({ state: "detached" });
  const sent = (await calls(page, "send_session_frame")).map((c) => c.args.frame);
  assert.deepEqual(sent, [
    { type: "prompt", text: "Please fix the login test." },
    { type: "permission.response", requestId: 1, optionId: "allow-once" },
  ]);
  await shot(page, "14-session-done");

  // Cancel while a turn runs.
  await chat.getByLabel("Message to the agent").fill("And the signup test?");
  await chat.getByLabel("Message to the agent").press("Enter");
  await chat.getByRole("button", { name: "Cancel" }).click();
  await chat.locator(".turn-end", { hasText: "Turn cancelled." }).waitFor();
  assert.deepEqual((await calls(page, "send_session_frame")).map((c) => c.args.frame).at(-1), { type: "cancel" });
});

test("agent session held elsewhere: take over", async ({ open }) => {
  const page = await open("held=s-login");
  await side(page, "api").click();
  await page.locator(".tab", { hasText: "Fix the login test" }).click();
  const ask = page.locator("[data-testid=takeover]");
  await ask.waitFor();
  await shot(page, "15-session-takeover");
  await ask.getByRole("button", { name: "Take over" }).click();
  await page.locator(".msg.agent", { hasText: "The test expects a 302 redirect" }).waitFor();
  const attaches = (await calls(page, "attach_session")).map((c) => c.args.takeover);
  assert.deepEqual(attaches.slice(-2), [false, true]);
  await ask.waitFor({ state: "detached" });
});

test("new session: the agent picker, codex set up with a key, then started", async ({ open }) => {
  const key = "sk-codex-browser-5f2a91";
  const page = await open("stepMs=80");
  await side(page, "api").click();
  await page.getByRole("button", { name: "+ Agent" }).click();
  const dialog = page.locator("[data-testid=new-session]");
  const option = (a) => dialog.locator(`.agent-option[data-agent="${a}"]`);
  await option("claude").filter({ hasText: "Ready — logged in" }).waitFor();
  assert.match(await option("codex").innerText(), /Needs setup/);
  assert.match(await option("gemini").innerText(), /Not in this image/);
  assert.ok(await option("gemini").getByRole("radio").isDisabled());
  assert.ok(await option("claude").getByRole("radio").isChecked());
  await shot(page, "15a-new-session-picker");
  await option("codex").click();
  const setup = dialog.locator("[data-testid=agent-setup]");
  await setup.waitFor();
  assert.match(await setup.innerText(), /codex login --device-auth/);
  await setup.getByLabel("CODEX_API_KEY").fill(key);
  await shot(page, "15b-new-session-codex-setup");
  await setup.getByRole("button", { name: "Save key" }).click();
  await option("codex").filter({ hasText: "Ready — API key stored" }).waitFor();
  await setup.waitFor({ state: "detached" });
  assert.ok(!(await page.content()).includes(key), "the key is not in the page");
  assert.deepEqual((await calls(page, "set_agent_key")).map((c) => c.args), [{ agent: "codex", key }]);
  await dialog.getByLabel("Label (optional)").fill("Codex refactor");
  await dialog.getByRole("button", { name: "Start session" }).click();
  await page.locator(".tab.active", { hasText: "Codex refactor" }).waitFor();
  await dialog.waitFor({ state: "detached" });
  assert.deepEqual((await calls(page, "new_session")).map((c) => c.args), [
    { workspace: "w-api", agent: "codex", label: "Codex refactor" },
  ]);
  const chat = page.locator(".tab-page:not(.hidden) .session");
  await page.waitForFunction(() => !document.querySelector(".tab-page:not(.hidden) .session textarea")?.disabled);
  assert.equal(await chat.locator("[data-testid=session-fix]").count(), 0);
  // The sessions panel lists it, running, beside the seeded one.
  await page.getByRole("tab", { name: "Sessions" }).click();
  const list = page.locator("[data-testid=sessions]");
  await list.locator(".session-row", { hasText: "Codex refactor" }).locator(".badge", { hasText: "running" }).waitFor();
  assert.match(await list.locator(".session-row", { hasText: "Codex refactor" }).innerText(), /codex/);
  await list.locator(".session-row", { hasText: "Fix the login test" }).waitFor();
  await shot(page, "15c-sessions-panel");
});

test("a session that needs a key: the error, Add key, a new session", async ({ open }) => {
  const page = await open("stepMs=80");
  await side(page, "api").click();
  await page.getByRole("button", { name: "+ Agent" }).click();
  const dialog = page.locator("[data-testid=new-session]");
  await dialog.locator('.agent-option[data-agent="codex"]').click();
  await dialog.locator("[data-testid=needs-setup-warning]").waitFor();
  await dialog.getByLabel("Label (optional)").fill("No key yet");
  await dialog.getByRole("button", { name: "Start session" }).click();
  await page.locator(".tab.active", { hasText: "No key yet" }).waitFor();
  const chat = page.locator(".tab-page:not(.hidden) .session");
  await chat.locator(".error-message", { hasText: "Authentication required: set CODEX_API_KEY" }).waitFor();
  const fix = chat.locator("[data-testid=session-fix]");
  await fix.getByRole("button", { name: "Log in" }).waitFor();
  await fix.getByRole("button", { name: "Add key" }).click();
  await shot(page, "15d-session-needs-key");
  await fix.getByLabel("CODEX_API_KEY").fill("sk-codex-later-0b7e");
  await fix.getByRole("button", { name: "Save key" }).click();
  await fix.getByRole("button", { name: "Start a new session" }).click();
  await page.locator(".tab.active", { hasText: "No key yet" }).waitFor();
  const labels = (await calls(page, "new_session")).map((c) => c.args);
  assert.deepEqual(labels, [
    { workspace: "w-api", agent: "codex", label: "No key yet" },
    { workspace: "w-api", agent: "codex", label: "No key yet" },
  ]);
  assert.equal(await page.locator(".tab", { hasText: "No key yet" }).count(), 2);
  await page.waitForFunction(() => !document.querySelector(".tab-page:not(.hidden) .session textarea")?.disabled);
  assert.ok(!(await page.content()).includes("sk-codex-later-0b7e"));
});

test("files: tree, editor, save calls write_text_file", async ({ open }) => {
  const page = await open();
  await side(page, "api").click();
  const files = page.locator("[data-testid=files]");
  await files.locator('[data-path="src"]').click();
  await files.locator('[data-path="src/util"]').waitFor();
  await files.locator('[data-path="src/login.ts"]').click();
  const editor = page.locator('.editor-pane[data-path="src/login.ts"]');
  await editor.locator(".cm-content", { hasText: "return 200;" }).waitFor();
  // Syntax highlighting loaded (TypeScript): keywords get their own spans.
  await editor.locator(".cm-line span").first().waitFor();
  await editor.locator(".cm-content").click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("// checked\n");
  assert.equal(await editor.getAttribute("data-dirty"), "true");
  await page.locator(".tab.active .dirty-dot").waitFor();
  await page.keyboard.press("Control+S");
  await editor.locator("[data-testid=save-state]", { hasText: "Saved" }).waitFor();
  const writes = (await calls(page, "write_text_file")).map((c) => c.args);
  assert.equal(writes.length, 1);
  assert.equal(writes[0].workspace, "w-api");
  assert.equal(writes[0].path, "src/login.ts");
  assert.equal(writes[0].content, "export function login(user: string): number {\n  return 200;\n}\n// checked\n");
  assert.equal(await editor.getAttribute("data-dirty"), "false");
  await shot(page, "16-files-editor");
});

test("ports: open in browser through a local forward", async ({ open }) => {
  const page = await open();
  await side(page, "api").click();
  await page.getByRole("tab", { name: "Ports" }).click();
  const ports = page.locator("[data-testid=ports]");
  await ports.locator(".port-row").first().waitFor();
  assert.deepEqual(await ports.locator(".port-row .mono").allInnerTexts(), ["3000/tcp", "5432/tcp"]);
  await ports.locator(".port-row", { hasText: "3000/tcp" }).getByRole("button", { name: "Open in browser" }).click();
  await ports.locator(".port-url", { hasText: "http://127.0.0.1:43000" }).waitFor();
  assert.deepEqual((await calls(page, "open_port")).map((c) => c.args), [{ workspace: "w-api", port: 3000 }]);
  await page.getByRole("tab", { name: "Events" }).click();
  await page.locator(".ws-side [data-testid=events] .event", { hasText: "Workspace api is running." }).waitFor();
  await shot(page, "17-ports-events");
});

test("settings: token saved to the keychain and never shown back; theme", async ({ open }) => {
  const token = "hz-secret-9e7c1b55aa";
  const page = await open();
  await page.locator(".sidebar").getByRole("button", { name: "⚙ Settings" }).click();
  const status = page.locator("[data-testid=token-status]");
  assert.match(await status.innerText(), /No token stored/);
  await page.getByLabel("Hetzner API token").fill(token);
  await page.getByRole("button", { name: "Save token" }).click();
  await status.filter({ hasText: "A token is stored" }).waitFor();
  assert.equal(await page.getByLabel("Hetzner API token").inputValue(), "");
  assert.deepEqual((await calls(page, "set_hetzner_token")).map((c) => c.args), [{ token }]);
  assert.ok(await page.evaluate((t) => window.__sam.keychainHas(t), token));
  const html = await page.content();
  assert.ok(!html.includes(token), "the token is not in the page");
  // A limit with a typo is explained before anything is sent.
  const maxNodes = page.locator('[data-setting="max-nodes"]');
  await maxNodes.getByRole("textbox").fill("0");
  await maxNodes.locator(".field-hint", { hasText: "Use a whole number from 1 to 1000." }).waitFor();
  assert.ok(await maxNodes.getByRole("button", { name: "Save" }).isDisabled());
  await maxNodes.getByRole("textbox").fill("12");
  await maxNodes.getByRole("button", { name: "Save" }).click();
  await maxNodes.locator("text=Saved").waitFor();
  assert.deepEqual((await calls(page, "set_setting")).map((c) => c.args), [{ key: "max-nodes", value: "12" }]);
  await shot(page, "18-settings-light");
  // Theme: follows the OS (light here) until set.
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "light");
  await page.getByLabel("Theme").selectOption("dark");
  await page.waitForFunction(() => document.documentElement.dataset.theme === "dark");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(27, 29, 34)");
  await shot(page, "19-settings-dark");
});

test("theme follows the OS when set to system", async ({ base }) => {
  const browser = await launch();
  let page;
  try {
    const context = browser.context;
    page = await openApp(context, base);
    await page.emulateMedia({ colorScheme: "dark" });
    await page.waitForFunction(() => document.documentElement.dataset.theme === "dark");
    await page.locator("[data-testid=nodes-table]").waitFor();
    await shot(page, "20-nodes-dark-os");
    await page.emulateMedia({ colorScheme: "light" });
    await page.waitForFunction(() => document.documentElement.dataset.theme === "light");
    if (page.problems.length) throw new Error(page.problems.join("\n"));
  } finally {
    await page?.close();
    await browser.close();
  }
});

test("stop node: the confirmation lists exactly the workspaces and sessions", async ({ open }) => {
  const page = await open("stepMs=120");
  await side(page, "this-computer").click();
  await page.getByRole("button", { name: "Stop node" }).click();
  const dialog = page.locator("[data-testid=stop-node]");
  const body = dialog.locator("[data-testid=confirmation]");
  await body.waitFor();
  const t = await body.innerText();
  assert.match(t, /Stopping this-computer stops 1 workspace and 1 agent session:/);
  assert.deepEqual(await body.locator(".confirm-list > li").evaluateAll((els) => els.map((e) => e.firstChild.textContent)), [
    "workspace “api” (running)",
  ]);
  assert.deepEqual(await body.locator(".confirm-list ul li").allInnerTexts(), ["agent session “Fix the login test” (claude)"]);
  assert.ok(!t.includes("web"), "a stopped workspace is not listed");
  assert.match(t, /Then the agent on this computer stops\./);
  await shot(page, "21-stop-node-confirmation");
  await dialog.getByRole("button", { name: "Stop node" }).click();
  await dialog.locator(".step", { hasText: "Stopping every workspace on the node." }).waitFor();
  await dialog.locator("text=this-computer is stopped.").waitFor();
  assert.equal((await calls(page, "stop_node")).length, 1);
  await dialog.getByRole("button", { name: "Close" }).last().click();
  await page.locator("#node-title .badge", { hasText: "stopped" }).waitFor();
  await page.getByRole("button", { name: "Start node" }).waitFor();
  await shot(page, "22-node-stopped");
});

test("upgrade a node's agent: progress, then the new build", async ({ open }) => {
  const page = await open("stepMs=120");
  await side(page, "this-computer").click();
  const version = page.locator("[data-testid=agent-version]");
  assert.equal(await version.innerText(), "0.1.0 (build 65126352)");
  await page.getByRole("button", { name: "Upgrade agent…" }).click();
  const dialog = page.locator("[data-testid=upgrade-agent]");
  await dialog.getByRole("button", { name: "Upgrade agent" }).click();
  await dialog.locator(".step", { hasText: "Restarting sam-agent" }).waitFor();
  await dialog.locator(".step", { hasText: "sam-agent on this-computer is now 0.1.0 (build 71a574d6)." }).waitFor();
  await shot(page, "23-agent-upgraded");
  await page.locator("[data-testid=agent-version]", { hasText: "0.1.0 (build 71a574d6)" }).waitFor();
  await dialog.locator(".dialog-foot").getByRole("button", { name: "Close" }).click();
  await dialog.waitFor({ state: "detached" });
  assert.equal((await calls(page, "upgrade_node")).length, 1);
});

test("workspace: rename, stop with confirmation, start, delete", async ({ open }) => {
  const page = await open();
  await side(page, "api").click();
  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("Name", { exact: true }).fill("api-v2");
  await page.getByRole("button", { name: "Rename" }).last().click();
  await page.locator(".ws-title h1", { hasText: "api-v2" }).waitFor();
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  const dialog = page.locator("[data-testid=workspace-confirm]");
  await dialog.locator("[data-testid=confirmation]").waitFor();
  assert.match(await dialog.innerText(), /Stopping api-v2 ends 1 agent session:/);
  assert.match(await dialog.innerText(), /agent session “Fix the login test” \(claude\)/);
  await shot(page, "23-workspace-stop-confirmation");
  await dialog.getByRole("button", { name: "Stop workspace" }).click();
  await page.locator(".ws-title .badge", { hasText: "stopped" }).waitFor();
  await page.locator(".empty", { hasText: "This workspace is stopped" }).waitFor();
  await page.getByRole("button", { name: "Delete" }).click();
  await dialog.locator("text=This cannot be undone.").waitFor();
  await dialog.getByRole("button", { name: "Delete workspace" }).click();
  await page.locator("#node-title", { hasText: "this-computer" }).waitFor();
  assert.deepEqual((await calls(page, "remove_workspace")).map((c) => c.args), [{ workspace: "w-api" }]);
});

test("errors in words with a next step", async ({ open }) => {
  const page = await open();
  await page.getByRole("button", { name: "Add node" }).click();
  const dialog = page.locator("[data-testid=add-node]");
  await dialog.getByRole("tab", { name: "SSH server" }).click();
  await dialog.getByLabel("Server (user@host)").fill("root@198.51.100.1");
  await dialog.getByLabel("Node name").fill("this-computer");
  await dialog.getByRole("button", { name: "Connect and install" }).click();
  const err = dialog.locator(".error-box");
  await err.waitFor();
  assert.match(await err.innerText(), /There is a node named "this-computer" already\./);
  assert.match(await err.innerText(), /Next step: Pick another name, or remove that node first\./);
  await shot(page, "24-error-next-step");
});

await runAll();
