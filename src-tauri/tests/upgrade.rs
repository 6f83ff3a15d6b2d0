//! Upgrading a node's sam-agent to the desktop's own, end to end: an SSH node on a
//! real OpenSSH server (per test: its own sshd, `$HOME`, agent port) and this
//! computer's node, both on real Docker. A node is added with an "old" agent (the
//! real binary with bytes appended: a valid ELF of the same version, another
//! build), a terminal prints a marker, then the desktop's agent is the real one:
//! `sam node upgrade`, `sam node start` and the app's node stream replace the
//! agent; the terminal lives on (its holder outlives the agent) and a re-attach
//! replays the marker and takes input. Failing upgrades (a binary that does not
//! run on the server; one that runs but cannot serve) leave the old agent running
//! and say why. Hetzner nodes take the same path once logged in
//! (`bootstrap::upgrade`), so they are not tested again here.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ssh::Sshd;
use common::*;
use sha2::{Digest, Sha256};

/// The build id the agent reports for a file: the start of its SHA-256.
fn build_of(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read the binary");
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..16].to_string()
}

fn short(build: &str) -> &str {
    &build[..8]
}

/// A copy of the agent `from` as `name` beside it, changed by `change`.
fn agent_copy(from: &Path, name: &str, change: impl FnOnce(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let bytes = std::fs::read(from).expect("read sam-agent");
    let path = from.with_file_name(name);
    std::fs::write(&path, change(bytes)).expect("write the copy");
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

/// The desktop's agent for a test: a private copy of the real one, so a rebuild
/// of the shared target folder meanwhile does not change it under the test.
fn new_agent(dir: &Path) -> PathBuf {
    let path = dir.join("sam-agent");
    std::fs::copy(agent_binary(), &path).expect("copy sam-agent");
    path
}

/// The "old" agent: the same program and version, another build.
fn old_agent(real: &Path) -> PathBuf {
    let old = agent_copy(real, "sam-agent-old", |mut b| {
        b.extend_from_slice(b"\nan older build of sam-agent\n");
        b
    });
    assert_ne!(build_of(&old), build_of(real));
    old
}

/// An agent whose `--version` works but whose `serve` does not exist (every
/// "serve" in the file spelt "zerve"), so it fails only once restarted.
fn agent_that_cannot_serve(real: &Path) -> PathBuf {
    let path = agent_copy(real, "sam-agent-noserve", |b| {
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i..].starts_with(b"serve") {
                out.extend_from_slice(b"zerve");
                i += 5;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    });
    let version = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success(), "the patched agent runs --version");
    let serve = std::process::Command::new(&path)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(!serve.status.success(), "the patched agent cannot serve");
    path
}

/// `sam ARGS…` with `agent` as the desktop's sam-agent.
fn run_as(d: &Desktop, agent: &Path, args: &[&str]) -> (i32, String, String) {
    let out = d
        .cmd(args)
        .env("SAM_AGENT_BINARY", agent)
        .output()
        .expect("run sam");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_as(d: &Desktop, agent: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = run_as(d, agent, &all);
    assert_eq!(code, 0, "sam {args:?} failed: {err}");
    (
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}): {out}")),
        err,
    )
}

/// Adds an SSH node on `sshd` with `agent` uploaded.
fn add_ssh(sshd: &Sshd, name: &str, agent: &Path) -> (Desktop, serde_json::Value) {
    let d = Desktop::new();
    d.ok(&["settings", "set", "default-image", &test_image()]);
    let port = free_port().to_string();
    let sshd_port = sshd.port.to_string();
    let key = sshd.client_key();
    let fp = sshd.host_fingerprint();
    let (node, _) = json_as(
        &d,
        agent,
        &[
            "node",
            "add",
            "ssh",
            "root@127.0.0.1",
            "--port",
            &sshd_port,
            "--identity",
            key.to_str().unwrap(),
            "--name",
            name,
            "--agent-port",
            &port,
            "--accept-host-key",
            &fp,
        ],
    );
    (d, node)
}

fn install_dir(node: &serde_json::Value) -> PathBuf {
    PathBuf::from(
        node["providerIds"]["installDir"]
            .as_str()
            .expect("installDir"),
    )
}

/// The pids of `DIR/bin/sam-agent serve` processes (not the holders).
fn serving(dir: &Path) -> Vec<u32> {
    let want = format!("{}\0serve\0", dir.join("bin/sam-agent").display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let zombie = std::fs::read_to_string(entry.path().join("status")).is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        });
        if String::from_utf8_lossy(&cmdline) == want && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// Reads a child's stdout into a shared buffer.
fn collect(child: &mut Child) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("stdout");
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// Starts a shell terminal in `ws` that prints `MARK-42`, and leaves it running
/// (the `sam term` client is killed, the terminal lives on). Answers its id.
fn terminal_with_marker(d: &Desktop, ws: &str) -> String {
    let mut child = d
        .cmd(&["term", ws, "--", "sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sam term");
    let out = collect(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo MARK-$((40+2))\n").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&out.lock().unwrap()).contains("MARK-42") {
        assert!(Instant::now() < deadline, "the terminal printed no marker");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let list = d.json(&["term", ws, "--list"]);
    let list = list.as_array().expect("terminals");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["exited"], false);
    list[0]["id"].as_str().unwrap().to_string()
}

/// Re-attaches to the terminal: its scrollback replays the marker and it still
/// runs commands.
fn terminal_lives_on(d: &Desktop, ws: &str, tid: &str) {
    let list = d.json(&["term", ws, "--list"]);
    let found = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == tid)
        .unwrap_or_else(|| panic!("terminal {tid} is listed: {list}"));
    assert_eq!(found["exited"], false, "{found}");
    let mut child = d
        .cmd(&["term", ws, "--attach", tid])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sam term --attach");
    let out = collect(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo AFTER-$((1+2)); exit 7\n").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the re-attached terminal did not end: {}",
                String::from_utf8_lossy(&out.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let the reader thread drain what is left.
    std::thread::sleep(Duration::from_millis(100));
    let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert!(
        text.contains("MARK-42"),
        "the scrollback was replayed: {text}"
    );
    assert!(text.contains("AFTER-3"), "the terminal takes input: {text}");
    assert_eq!(status.code(), Some(7), "{text}");
}

#[test]
fn an_ssh_node_is_upgraded_in_place_and_its_terminal_lives_on() {
    let sshd = Sshd::start();
    let scratch = tempfile::tempdir().unwrap();
    let real = new_agent(scratch.path());
    let old = old_agent(&real);
    let (old_build, new_build) = (build_of(&old), build_of(&real));
    let (d, node) = add_ssh(&sshd, "edge-1", &old);
    assert_eq!(node["agentBuild"], old_build.as_str(), "{node}");
    let dir = install_dir(&node);
    assert_eq!(build_of(&dir.join("bin/sam-agent")), old_build);

    d.json(&["ws", "create", "edge-1", "alpha"]);
    let tid = terminal_with_marker(&d, "edge-1/alpha");
    let before = serving(&dir);
    assert_eq!(before.len(), 1, "one agent serves");

    // Nothing is upgraded by listing or showing the node.
    let (shown, _) = json_as(&d, &real, &["node", "show", "edge-1"]);
    assert_eq!(shown["agentBuild"], old_build.as_str());

    let (upgraded, err) = json_as(&d, &real, &["node", "upgrade", "edge-1"]);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        err.contains(&format!(
            "Upgrading sam-agent on edge-1 from {version} (build {}) to {version} (build {})",
            short(&old_build),
            short(&new_build)
        )),
        "{err}"
    );
    assert_eq!(upgraded["agentBuild"], new_build.as_str(), "{upgraded}");
    assert_eq!(upgraded["agentVersion"], version);
    assert_eq!(upgraded["health"], "healthy");
    assert_eq!(upgraded["status"], "running");
    // The server runs the desktop's binary, from the same place; nothing is left
    // beside it.
    assert_eq!(build_of(&dir.join("bin/sam-agent")), new_build);
    assert!(!dir.join("bin/sam-agent.new").exists());
    assert!(!dir.join("bin/sam-agent.old").exists());
    let after = serving(&dir);
    assert_eq!(after.len(), 1, "one agent serves");
    assert_ne!(after, before, "the agent was restarted");
    // The pinned certificate still fits; the record says the new build.
    let (shown, _) = json_as(&d, &real, &["node", "show", "edge-1"]);
    assert_eq!(shown["agentBuild"], new_build.as_str());
    assert_eq!(shown["certFingerprint"], node["certFingerprint"]);

    terminal_lives_on(&d, "edge-1/alpha", &tid);

    // Up to date now: nothing happens.
    let (again, err) = json_as(&d, &real, &["node", "upgrade", "edge-1"]);
    assert!(err.contains("sam-agent on edge-1 is up to date"), "{err}");
    assert_eq!(again["agentBuild"], new_build.as_str());
    assert_eq!(serving(&dir), after, "not restarted");
    let events = d.ok(&["events", "edge-1"]);
    assert!(events.contains("Upgraded sam-agent on edge-1"), "{events}");
}

#[test]
fn failed_upgrades_leave_the_old_agent_running_then_start_upgrades_it() {
    let sshd = Sshd::start();
    let scratch = tempfile::tempdir().unwrap();
    let real = new_agent(scratch.path());
    let old = old_agent(&real);
    let old_build = build_of(&old);
    let (d, node) = add_ssh(&sshd, "edge-2", &old);
    let dir = install_dir(&node);
    let before = serving(&dir);
    assert_eq!(before.len(), 1);
    let untouched = |why: &str| {
        assert_eq!(build_of(&dir.join("bin/sam-agent")), old_build, "{why}");
        let names: Vec<String> = std::fs::read_dir(dir.join("bin"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["sam-agent".to_string()], "{why}");
        let (shown, _) = json_as(&d, &old, &["node", "show", "edge-2"]);
        assert_eq!(shown["health"], "healthy", "{why}: {shown}");
        assert_eq!(shown["agentBuild"], old_build.as_str(), "{why}");
    };

    // Not an ELF at all: refused before SSH is touched.
    let garbage = scratch.path().join("sam-agent-garbage");
    std::fs::write(&garbage, b"#!/bin/sh\necho not an agent\n").unwrap();
    let (code, _, err) = run_as(&d, &garbage, &["node", "upgrade", "edge-2"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not an x86_64 Linux sam-agent"), "{err}");
    assert_eq!(serving(&dir), before);
    untouched("a file that is no agent");

    // An ELF that does not run on the server: the old agent never stopped.
    let broken = agent_copy(&real, "sam-agent-broken", |b| b[..4096].to_vec());
    let (code, _, err) = run_as(&d, &broken, &["node", "upgrade", "edge-2"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: The new sam-agent does not run on root@127.0.0.1")
            && err.contains("Nothing was changed: the agent there keeps running."),
        "{err}"
    );
    assert_eq!(serving(&dir), before, "the old agent was not stopped");
    untouched("a binary that does not run");

    // One that runs but cannot serve: restarted, failed, the old one put back.
    let noserve = agent_that_cannot_serve(&real);
    let (code, _, err) = run_as(&d, &noserve, &["node", "upgrade", "edge-2"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stopped right after it started")
            && err.contains("SAM put the previous sam-agent back")
            && err.contains(&format!("(build {}) runs again", short(&old_build))),
        "{err}"
    );
    assert_eq!(serving(&dir).len(), 1, "the previous agent runs again");
    untouched("an agent that cannot serve");
    let events = d.ok(&["events", "edge-2"]);
    assert!(events.contains("node.upgrade_failed"), "{events}");

    // `sam node start` meets the old agent and upgrades it.
    let (started, err) = json_as(&d, &real, &["node", "start", "edge-2"]);
    assert!(err.contains("Upgrading sam-agent on edge-2"), "{err}");
    assert_eq!(started["agentBuild"], build_of(&real).as_str(), "{started}");
    assert_eq!(started["health"], "healthy");
    assert_eq!(build_of(&dir.join("bin/sam-agent")), build_of(&real));
}

#[test]
fn this_computers_agent_is_upgraded_and_put_back_when_the_new_one_fails() {
    let scratch = tempfile::tempdir().unwrap();
    let real = new_agent(scratch.path());
    let old = old_agent(&real);
    let old_build = build_of(&old);
    let mut d = Desktop::new();
    d.env
        .push(("SAM_AGENT_BINARY".into(), old.display().to_string()));
    let node = d.add_local();
    assert_eq!(node["agentBuild"], old_build.as_str(), "{node}");
    d.json(&["ws", "create", "here", "tt"]);
    let tid = terminal_with_marker(&d, "here/tt");
    let pid = sam_desktop::providers::local::agent_pid(d.port as u64).expect("agent");

    // A new agent that cannot serve: the one that ran is started again.
    let noserve = agent_that_cannot_serve(&real);
    let (code, _, err) = run_as(&d, &noserve, &["node", "upgrade", "here"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("SAM started the previous sam-agent again")
            && err.contains(&format!("(build {}) runs", short(&old_build))),
        "{err}"
    );
    let (shown, _) = json_as(&d, &old, &["node", "show", "here"]);
    assert_eq!(shown["health"], "healthy", "{shown}");
    assert_eq!(shown["agentBuild"], old_build.as_str());
    assert_ne!(
        sam_desktop::providers::local::agent_pid(d.port as u64),
        Some(pid),
        "restarted"
    );

    let (upgraded, err) = json_as(&d, &real, &["node", "upgrade", "here"]);
    assert!(err.contains("Upgrading sam-agent on here from"), "{err}");
    assert_eq!(
        upgraded["agentBuild"],
        build_of(&real).as_str(),
        "{upgraded}"
    );
    assert_eq!(upgraded["health"], "healthy");
    let pid = sam_desktop::providers::local::agent_pid(d.port as u64).expect("agent");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe,
        real.canonicalize().unwrap(),
        "runs the desktop's binary"
    );
    assert!(!d.state().join("local-node/sam-agent.previous").exists());
    terminal_lives_on(&d, "here/tt", &tid);
}

/// The app follows its nodes' event streams; the first heartbeat of an older
/// agent has it upgraded, in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_upgrades_an_older_agent_it_meets_on_a_node_stream() {
    let scratch = tempfile::tempdir().unwrap();
    let real = new_agent(scratch.path());
    let old = old_agent(&real);
    let mut d = Desktop::new();
    d.env
        .push(("SAM_AGENT_BINARY".into(), old.display().to_string()));
    d.add_local();
    d.json(&["ws", "create", "here", "app"]);
    let tid = terminal_with_marker(&d, "here/app");

    // The library in this process, as the app uses it, with the real agent as
    // the desktop's own (only this test of this file uses the library).
    unsafe {
        std::env::set_var("SAM_AGENT_BINARY", &real);
        std::env::set_var("SAM_SECRET_STORE", "file");
    }
    let sam = sam_desktop::Sam::open_at(&d.state()).await.unwrap();
    let record = sam.node_record("here").await.unwrap();
    assert_eq!(record.agent_build.as_deref(), Some(build_of(&old).as_str()));
    sam.watch_node(&record.id);
    let want = build_of(&real);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let record = sam.node_record("here").await.unwrap();
        let client = sam.client(&record).await.unwrap();
        if let Ok(info) = client.node().await
            && info.build.as_deref() == Some(want.as_str())
            && record.agent_build.as_deref() == Some(want.as_str())
            && !sam.is_upgrading(&record.id)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not upgrade the agent"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sam.unwatch_node(&record.id);
    let events = d.ok(&["events", "here"]);
    assert!(events.contains("Upgraded sam-agent on here"), "{events}");
    terminal_lives_on(&d, "here/app", &tid);
}
