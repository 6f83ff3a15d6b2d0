//! Agent sessions end to end through the `sam` CLI: a real local agent, real Docker,
//! the scripted ACP agent of the fixtures image (`fixture-agent`, run as a command
//! session).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// This computer with one running workspace on the fixtures image; answers its id.
fn workspace(d: &Desktop, name: &str) -> String {
    d.add_local();
    let ws = d.json(&["ws", "create", "here", name, "--image", &fixture_image()]);
    assert_eq!(ws["status"], "running", "{ws}");
    ws["id"].as_str().unwrap().to_string()
}

fn new_fixture_session(d: &Desktop, ws: &str) -> Value {
    let s = d.json(&[
        "session",
        "new",
        ws,
        "--label",
        "scripted",
        "--",
        "fixture-agent",
    ]);
    assert_eq!(s["status"], "running", "{s}");
    s
}

/// Stdout lines of a child, read on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a child to exit, killing it after `timeout`.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every file under `dir` (but the secrets file) that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() && p.file_name().is_some_and(|n| n != "secrets.json") {
            let mut bytes = Vec::new();
            if std::fs::File::open(&p)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .is_ok()
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn sessions_prompts_permissions_history_attach_and_stop() {
    let d = Desktop::new();
    let ws_id = workspace(&d, "agents");

    // `new` waits for the handshake and prints the contract's session.
    let s = new_fixture_session(&d, "here/agents");
    let sid = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["workspaceId"], ws_id.as_str());
    assert_eq!(s["label"], "scripted");
    assert!(s["agent"].is_null(), "a command session names no agent");
    assert_eq!(s["attached"], false);

    // One prompt: the streamed answer on stdout, exit 0 at end_turn.
    let (code, out, err) = d.run(&["session", "prompt", &sid, "echo hi"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), "You said: hi.");

    // Thoughts and plans go to stderr; the answer alone to stdout.
    let (code, out, err) = d.run(&["session", "prompt", &sid, "think hard"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), "Thought about hard.");
    assert!(err.contains("Thinking about hard"), "{err}");
    let (code, _, err) = d.run(&["session", "prompt", &sid, "plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Do the thing"), "{err}");

    // Permission requests: --allow, --reject, neither without a terminal.
    let (code, out, err) = d.run(&["session", "prompt", &sid, "permission", "--allow"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("permission: allow"), "{out}");
    let (code, out, err) = d.run(&["session", "prompt", &sid, "permission", "--reject"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("permission: reject"), "{out}");
    let (code, _, err) = d.run(&["session", "prompt", &sid, "permission"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: ") && err.contains("no terminal"),
        "{err}"
    );
    assert!(err.contains("hint: ") && err.contains("--allow"), "{err}");
    // The request still waits: another prompt without an answer is refused before
    // it is sent (nothing is left queued) …
    let (code, _, err) = d.run(&["session", "prompt", &sid, "echo never"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--allow"), "{err}");
    // … and with one, the waiting request is answered and the prompt runs.
    let (code, out, err) = d.run(&["session", "prompt", &sid, "echo next", "--reject"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), "You said: next.");

    // A prompt the agent answers with an error: exit 1, its message on stderr.
    let (code, _, err) = d.run(&["session", "prompt", &sid, "fail"]);
    assert_eq!(code, 1);
    assert!(err.contains("scripted failure"), "{err}");
    // The session takes the next prompt.
    let (code, out, _) = d.run(&["session", "prompt", &sid, "echo again"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim_end(), "You said: again.");

    // ls / show.
    let list = d.json(&["session", "ls", "agents"]);
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], sid.as_str());
    assert_eq!(listed[0]["status"], "running");
    let shown = d.json(&["session", "show", &sid]);
    assert_eq!(shown["id"], sid.as_str());
    assert_eq!(shown["workspaceId"], ws_id.as_str());
    let (code, _, err) = d.run(&["session", "show", "nosuchsession"]);
    assert_eq!(code, 1);
    assert!(err.contains("no agent session"), "{err}");

    // History: the whole conversation in order, and after a `seq`.
    let history = d.json(&["session", "history", &sid]);
    let frames = history.as_array().unwrap();
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let prompts: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "user.prompt")
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        prompts,
        [
            "echo hi",
            "think hard",
            "plan",
            "permission",
            "permission",
            "permission",
            "echo next",
            "fail",
            "echo again"
        ],
        "a refused prompt is never sent"
    );
    assert!(frames.iter().any(|f| f["type"] == "agent.error"));
    let middle = seqs[seqs.len() / 2];
    let later = d.json(&["session", "history", &sid, "--since", &middle.to_string()]);
    let later = later.as_array().unwrap();
    assert!(!later.is_empty());
    assert!(later.iter().all(|f| f["seq"].as_u64().unwrap() > middle));
    assert_eq!(later.last(), frames.last());
    let (code, out, _) = d.run(&["session", "history", &sid]);
    assert_eq!(code, 0);
    assert!(
        out.contains("> echo hi") && out.contains("You said: hi."),
        "{out}"
    );

    // attach --json --watch: `session.attached`, then the history, one frame a line.
    let mut watcher = d
        .cmd(&["--json", "session", "attach", &sid, "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut watcher);
    let mut seen = Vec::new();
    while seen.len() < frames.len() + 1 {
        let line = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("attach --watch printed only {seen:?}"));
        seen.push(serde_json::from_str::<Value>(&line).expect("a JSON frame per line"));
    }
    assert_eq!(seen[0]["type"], "session.attached");
    assert_eq!(seen[0]["watch"], true);
    assert_eq!(&seen[1..], frames, "the replay is the history");
    let _ = watcher.kill();
    let _ = watcher.wait();

    // Attached elsewhere: `prompt` refuses without --takeover and works with it.
    let mut holder = d
        .cmd(&["session", "attach", &sid])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the attachment", || {
        d.json(&["session", "show", &sid])["attached"] == true
    });
    let (code, _, err) = d.run(&["session", "prompt", &sid, "echo blocked"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("hint: ") && err.contains("--takeover"),
        "{err}"
    );
    let (code, out, err) = d.run(&["session", "prompt", &sid, "echo mine", "--takeover"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), "You said: mine.");
    let code = wait_for(&mut holder, Duration::from_secs(15));
    let mut held_err = String::new();
    holder
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut held_err)
        .unwrap();
    assert_eq!(code, Some(1), "the old holder leaves when taken over");
    assert!(held_err.contains("took over"), "{held_err}");

    // Ctrl-C during `prompt` cancels its turn: exit 130 once the agent stopped.
    let mut slow = d
        .cmd(&["session", "prompt", &sid, "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = slow.stdout.take().unwrap();
    let mut first = [0u8; 4];
    stdout.read_exact(&mut first).expect("the turn streams");
    assert_eq!(&first, b"tick");
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &slow.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    assert_eq!(wait_for(&mut slow, Duration::from_secs(15)), Some(130));
    let mut slow_err = String::new();
    slow.stderr
        .take()
        .unwrap()
        .read_to_string(&mut slow_err)
        .unwrap();
    assert!(slow_err.contains("Cancelling"), "{slow_err}");
    let history = d.json(&["session", "history", &sid]);
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "agent.turn_end", "{last}");
    assert_eq!(last["stopReason"], "cancelled");

    // Stop: asks first (no terminal, no --yes: refused); idempotent.
    let (code, _, err) = d.run(&["session", "stop", &sid]);
    assert_eq!(code, 1);
    assert!(err.contains("hint: Pass --yes"), "{err}");
    let stopped = d.json(&["--yes", "session", "stop", &sid]);
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["stopReason"], "user_stop");
    let again = d.json(&["session", "stop", &sid]);
    assert_eq!(
        again["status"], "stopped",
        "stopping a stopped session is fine"
    );

    // A stopped session: prompts are refused; attach prints its conversation.
    let (code, _, err) = d.run(&["session", "prompt", &sid, "echo late"]);
    assert_eq!(code, 1);
    assert!(err.contains("stopped"), "{err}");
    let (code, out, err) = d.run(&["--json", "session", "attach", &sid]);
    assert_eq!(code, 0, "{err}");
    let replay: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replay.last().unwrap()["type"], "session.stopped");
    assert_eq!(replay.last().unwrap()["reason"], "user_stop");

    // An agent that crashes mid-turn: exit 1 with its words; the session ends `error`.
    let crashing = new_fixture_session(&d, "agents");
    let cid = crashing["id"].as_str().unwrap();
    let (code, _, err) = d.run(&["session", "prompt", cid, "crash"]);
    assert_eq!(code, 1);
    assert!(err.contains("error: "), "{err}");
    assert!(err.contains("crashing on purpose"), "{err}");
    let shown = d.json(&["session", "show", cid]);
    assert_eq!(shown["status"], "error");

    let list = d.json(&["session", "ls", "agents"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[test]
fn session_env_and_agent_keys_reach_the_agent_only() {
    let d = Desktop::new();
    let ws_id = workspace(&d, "secrets");
    let secret = format!("s3cret-{}", std::process::id());
    // The expected value is spelled in two pieces: it never appears whole outside
    // the environment variable.
    let gate = r#"test "$MYKEY" = "s3cret-""PID" && exec fixture-agent || exit 9"#
        .replace("PID", &std::process::id().to_string());
    let mut outputs = String::new();

    // `--env K` takes the value from sam's own environment: not set → refused.
    let (code, _, err) = d.run(&[
        "session", "new", "secrets", "--env", "MYKEY", "--", "sh", "-c", &gate,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("MYKEY") && err.contains("not set"), "{err}");

    // Set: the agent process gets it (the gate lets it run only then).
    let run = |extra: &[(&str, &str)], args: &[&str]| {
        let mut cmd = d.cmd(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(
        &[("MYKEY", &secret)],
        &[
            "--json", "session", "new", "secrets", "--env", "MYKEY", "--", "sh", "-c", &gate,
        ],
    );
    assert_eq!(code, 0, "{err}");
    outputs.push_str(&out);
    outputs.push_str(&err);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["status"], "running");
    let sid = s["id"].as_str().unwrap().to_string();
    let (code, out, err) = d.run(&["session", "prompt", &sid, "echo with key"]);
    assert_eq!(code, 0, "{err}");
    outputs.push_str(&out);
    outputs.push_str(&err);

    // Without the value the gate closes: the session ends `error`, and `new` says so.
    let (code, out, err) = run(
        &[("MYKEY", "wrong")],
        &[
            "session", "new", "secrets", "--env", "MYKEY", "--", "sh", "-c", &gate,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("status 9"), "{err}");

    // A named agent gets its stored key as the variable its adapter reads
    // (codex → CODEX_API_KEY). The image's `codex-acp` checks the key's hash.
    let agent_key = format!("sk-test-{}", std::process::id());
    let mut set = d
        .cmd(&["settings", "agent-key", "codex"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = set.stdin.take().unwrap();
        writeln!(stdin, "{agent_key}").unwrap();
    }
    let o = set.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hash = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(agent_key.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let script = format!(
        "#!/bin/sh\nh=$(printf %s \"$CODEX_API_KEY\" | sha256sum | cut -d' ' -f1)\n[ \"$h\" = \"{hash}\" ] && exec fixture-agent\necho \"not the stored key\" >&2\nexit 9\n"
    );
    let installed = std::process::Command::new("docker")
        .args([
            "exec",
            "-u",
            "0",
            &format!("sam-ws-{ws_id}"),
            "sh",
            "-c",
            &format!(
                "cat > /usr/local/bin/codex-acp <<'EOF'\n{script}EOF\nchmod 755 /usr/local/bin/codex-acp"
            ),
        ])
        .status()
        .unwrap();
    assert!(installed.success());
    let (code, out, err) = d.run(&["--json", "session", "new", "secrets", "--agent", "codex"]);
    assert_eq!(code, 0, "{err}");
    outputs.push_str(&out);
    outputs.push_str(&err);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["agent"], "codex");
    assert_eq!(s["status"], "running");
    let (code, out, _) = d.run(&["session", "prompt", s["id"].as_str().unwrap(), "echo codex"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim_end(), "You said: codex.");
    // An explicit --env beats the stored key.
    let (code, _, err) = d.run(&[
        "session",
        "new",
        "secrets",
        "--agent",
        "codex",
        "--env",
        "CODEX_API_KEY=something-else",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not the stored key"), "{err}");

    // Neither value is printed, nor kept anywhere in the state folder (the desktop's
    // SQLite, logs, the local agent's data) outside the secret store.
    for needle in [&secret, &agent_key] {
        assert!(!outputs.contains(needle.as_str()), "printed: {outputs}");
        let found = files_holding(&d.state(), needle);
        assert!(found.is_empty(), "{needle} found in {found:?}");
    }
    let db = std::fs::read(d.state().join("sam.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
}
