//! The default workspace image, sam-workspace:latest (images/workspace), with the
//! real ACP adapters of the built-in agents, and the home volume that keeps what
//! agent CLIs write under the user's home (issue #10, parts 1 and 2).
//!
//! Nothing here reaches a vendor: every workspace that runs a real adapter is cut
//! off its network (`docker network disconnect`: only loopback is left), and
//! Codex is pointed, through `~/.codex/config.toml` (`openai_base_url`), at the
//! scripted model server of tests/fixtures (`model-server`), run inside the
//! workspace's container on 127.0.0.1.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::default_image::*;
use common::*;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use sam_protocol::{Workspace, WorkspaceStatus};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Real adapters start Node.js or a large binary: give them time.
const SESSION_WAIT: Duration = Duration::from_secs(90);

/// An agent with the built-in agents only (claude, codex, gemini).
async fn start_agent() -> Agent {
    Agent::start().await
}

async fn default_workspace(agent: &Agent, name: &str) -> Workspace {
    let ws = agent
        .create(json!({"displayName": name, "image": workspace_image()}))
        .await;
    agent.wait_for(&ws.id, WorkspaceStatus::Running).await
}

async fn lifecycle(agent: &Agent, ws: &str, what: &str, then: WorkspaceStatus) {
    let (s, body) = agent
        .send_json(Method::POST, &format!("/workspaces/{ws}/{what}"), json!({}))
        .await;
    assert_eq!(s, 202, "{what}: {body}");
    agent.wait_for(ws, then).await;
}

// ---------------------------------------------------------------- sessions

fn sessions_path(ws: &str) -> String {
    format!("/workspaces/{ws}/agent-sessions")
}

async fn create_session(agent: &Agent, ws: &str, body: Value) -> String {
    let (s, session) = agent
        .send_json(Method::POST, &sessions_path(ws), body)
        .await;
    assert_eq!(s, 201, "create session: {session}");
    session["id"].as_str().expect("id").to_string()
}

/// Waits until the session leaves `starting`; answers it.
async fn settled(agent: &Agent, ws: &str, sid: &str) -> Value {
    let deadline = Instant::now() + SESSION_WAIT;
    loop {
        let (s, body) = agent
            .get_json(&format!("{}/{sid}", sessions_path(ws)))
            .await;
        assert_eq!(s, 200, "{body}");
        if body["status"] != "starting" {
            return body;
        }
        assert!(Instant::now() < deadline, "session still starting: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop_session(agent: &Agent, ws: &str, sid: &str) {
    let (s, body) = agent
        .send_json(
            Method::POST,
            &format!("{}/{sid}/stop", sessions_path(ws)),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "stop session: {body}");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn attach(agent: &Agent, ws: &str, sid: &str) -> Socket {
    let mut request = agent
        .ws_url(&format!("{}/{sid}/ws", sessions_path(ws)))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("attach");
    socket
}

/// Prompts and reads frames through `agent.turn_end` (or an `agent.error`).
async fn turn(socket: &mut Socket, text: &str) -> Vec<Value> {
    socket
        .send(Message::Text(
            json!({"type": "prompt", "text": text}).to_string().into(),
        ))
        .await
        .expect("send");
    let mut frames = Vec::new();
    loop {
        let msg = tokio::time::timeout(SESSION_WAIT, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no turn end; frames {frames:#?}"));
        let Some(Ok(Message::Text(t))) = msg else {
            panic!("socket ended ({msg:?}); frames {frames:#?}");
        };
        let f: Value = serde_json::from_str(&t).expect("JSON");
        let end = matches!(f["type"].as_str(), Some("agent.turn_end" | "agent.error"));
        frames.push(f);
        if end {
            return frames;
        }
    }
}

/// The text the agent said (message chunks), concatenated.
fn said(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| {
            f["type"] == "agent.output" && f["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .filter_map(|f| f["update"]["content"]["text"].as_str())
        .collect()
}

/// A codex turn that must end well, answered by the model server.
async fn codex_turn(agent: &Agent, ws: &str, sid: &str) {
    let mut socket = attach(agent, ws, sid).await;
    let frames = turn(&mut socket, "Say the scripted words.").await;
    let end = frames.last().expect("frames");
    assert_eq!(end["type"], "agent.turn_end", "{frames:#?}");
    assert_eq!(end["stopReason"], "end_turn", "{frames:#?}");
    assert!(said(&frames).contains(SCRIPTED), "{frames:#?}");
    assert!(
        frames.iter().any(|f| f["type"] == "agent.output"
            && f["update"]["content"]["text"].as_str() == Some(SCRIPTED)),
        "an agent.output frame carries the scripted text: {frames:#?}"
    );
    let _ = socket.close(None).await;
}

fn all_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn the_image_carries_node_and_the_adapters_and_the_home_survives_stop_restart() {
    let agent = start_agent().await;
    let ws = default_workspace(&agent, "default image").await;
    let id = ws.id.as_str();

    // Node.js 20 or newer, the adapters and the tools, for user dev.
    let who = sh(id, "id -un; echo \"$HOME\"; pwd");
    let mut lines = who.lines();
    assert_eq!(lines.next(), Some("dev"), "{who}");
    assert_eq!(lines.next(), Some("/home/dev"), "{who}");
    assert_eq!(lines.next(), Some(ws.project_path.as_str()), "{who}");
    let node = sh(id, "node --version");
    let major: u32 = node
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("node --version: {node}"));
    assert!(major >= 20, "Node.js {node}");
    for tool in [
        "claude-code-acp",
        "codex-acp",
        "gemini",
        "npm",
        "git",
        "bash",
        "curl",
        "sudo",
    ] {
        sh(id, &format!("command -v {tool}"));
    }
    assert_eq!(sh(id, "sudo -n id -un").trim(), "root");

    // The home volume: labelled like the others, mounted at dev's home, filled
    // with what the image has there.
    let volume = home_volume(id);
    let (ok, labels) = docker(&["volume", "inspect", "-f", "{{json .Labels}}", &volume]);
    assert!(ok, "no home volume: {labels}");
    let labels: Value = serde_json::from_str(labels.trim()).expect("labels");
    assert_eq!(labels["dev.sam.node"], agent.node_id.as_str(), "{labels}");
    assert_eq!(labels["dev.sam.workspace"], id, "{labels}");
    let (_, mounts) = docker(&["inspect", "-f", "{{json .Mounts}}", &container(id)]);
    let mounts: Value = serde_json::from_str(mounts.trim()).expect("mounts");
    assert!(
        mounts.as_array().expect("mounts").iter().any(|m| {
            m["Type"] == "volume" && m["Name"] == volume.as_str() && m["Destination"] == "/home/dev"
        }),
        "{mounts:#}"
    );
    assert_eq!(
        sh(id, "stat -c %U ~ ~/.bashrc").trim(),
        "dev\ndev",
        "the image's dotfiles, owned by dev"
    );
    let (_, probes) = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("name={}-probe", container(id)),
    ]);
    assert_eq!(probes.trim(), "", "the probe container is gone");

    // A fake login survives stop and restart, and lives on the volume.
    sh(
        id,
        "mkdir -p ~/.codex && printf 'fake-login' > ~/.codex/auth.json && chmod 600 ~/.codex/auth.json",
    );
    lifecycle(&agent, id, "stop", WorkspaceStatus::Stopped).await;
    lifecycle(&agent, id, "restart", WorkspaceStatus::Running).await;
    assert_eq!(sh(id, "cat ~/.codex/auth.json"), "fake-login");
    let (_, mountpoint) = docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &volume]);
    let on_volume = std::path::Path::new(mountpoint.trim()).join(".codex/auth.json");
    assert_eq!(
        std::fs::read_to_string(&on_volume).expect("the login is on the home volume"),
        "fake-login"
    );
    // Restarting a running workspace keeps it too.
    lifecycle(&agent, id, "restart", WorkspaceStatus::Running).await;
    assert_eq!(sh(id, "cat ~/.codex/auth.json"), "fake-login");

    // Deleting the workspace removes the home volume with the rest.
    agent.delete(id).await;
    let (exists, _) = docker(&["volume", "inspect", &volume]);
    assert!(!exists, "the home volume outlived its workspace");
    assert_eq!(
        agent.docker_leftovers(),
        (vec![], vec![], vec![]),
        "leftovers"
    );
}

#[tokio::test]
async fn failed_creates_and_orphans_leave_no_home_volume() {
    let agent = start_agent().await;
    // A create that fails after the container exists (postCreateCommand fails).
    let dir = tempfile::tempdir().expect("tempdir");
    let devcontainer = json!({"image": workspace_image(), "postCreateCommand": "exit 3"});
    let repo = git_repo(
        &dir.path().join("repo"),
        &[(".devcontainer/devcontainer.json", &devcontainer.to_string())],
    );
    let ws = agent
        .create(json!({"displayName": "fails", "repository": repo}))
        .await;
    let failed = agent.wait_for(&ws.id, WorkspaceStatus::Error).await;
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or("")
            .contains("postCreateCommand"),
        "{failed:?}"
    );
    assert_eq!(
        docker_labelled(&format!("dev.sam.workspace={}", ws.id)),
        (vec![], vec![], vec![]),
        "a failed create leaves nothing behind"
    );
    let (exists, _) = docker(&["volume", "inspect", &home_volume(&ws.id)]);
    assert!(!exists);

    // A home volume no workspace owns (left by a crash) is reaped.
    let orphan = home_volume("zzzzzzzzzzzz");
    let (ok, out) = docker(&[
        "volume",
        "create",
        "--label",
        &format!("dev.sam.node={}", agent.node_id),
        "--label",
        "dev.sam.workspace=zzzzzzzzzzzz",
        &orphan,
    ]);
    assert!(ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker(&["volume", "inspect", &orphan]).0 {
        assert!(Instant::now() < deadline, "the orphaned home volume stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn codex_completes_a_turn_against_a_local_model_and_its_login_survives_restart() {
    let agent = start_agent().await;
    let ws = default_workspace(&agent, "codex").await;
    let id = ws.id.as_str();
    isolate(id);
    install_model_server(id);
    start_model_server(id);
    configure_codex(id);

    // Without a key: the session ends in error, naming the variable to set.
    let sid = create_session(&agent, id, json!({"agent": "codex"})).await;
    let s = settled(&agent, id, &sid).await;
    assert_eq!(s["status"], "error", "{s}");
    let error = s["error"].as_str().unwrap_or_default();
    eprintln!("codex without a key: {error}");
    assert!(error.contains("CODEX_API_KEY"), "{s}");
    assert!(!model_log(id).contains("POST"), "no turn was tried");

    // With the key in the session's env: a whole turn, answered by the model
    // server, which saw the key.
    let sid = create_session(
        &agent,
        id,
        json!({"agent": "codex", "label": "codex with a key", "env": {"CODEX_API_KEY": KEY}}),
    )
    .await;
    let s = settled(&agent, id, &sid).await;
    assert_eq!(s["status"], "running", "{s}");
    codex_turn(&agent, id, &sid).await;
    let log = model_log(id);
    assert!(log.contains("POST /v1/responses auth=ok"), "{log}");
    assert!(
        !log.contains("auth=wrong") && !log.contains("auth=missing"),
        "{log}"
    );
    stop_session(&agent, id, &sid).await;

    // The key went nowhere but the agent process (and Codex's own login file,
    // which is what makes the login last).
    let (_, events) = agent
        .get_json(&format!("/workspaces/{id}/events?limit=500"))
        .await;
    assert!(
        !events.to_string().contains(KEY),
        "the key is in the events"
    );
    let (_, sessions) = agent.get_json(&sessions_path(id)).await;
    assert!(
        !sessions.to_string().contains(KEY),
        "the key is in a session"
    );
    assert!(!agent.log().contains(KEY), "the key is in the agent's log");
    let mut files = Vec::new();
    all_files(&agent.data_dir(), &mut files);
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "the key is in {}",
            file.display()
        );
    }
    sh(id, "test -s ~/.codex/auth.json");

    // Codex's stored login survives a stop and restart: a session without the
    // key completes a turn.
    lifecycle(&agent, id, "stop", WorkspaceStatus::Stopped).await;
    lifecycle(&agent, id, "restart", WorkspaceStatus::Running).await;
    assert_eq!(sh(id, "ls /sys/class/net").trim(), "lo");
    fail_lookups_fast(id);
    start_model_server(id);
    let sid = create_session(&agent, id, json!({"agent": "codex"})).await;
    let s = settled(&agent, id, &sid).await;
    assert_eq!(s["status"], "running", "{s}");
    codex_turn(&agent, id, &sid).await;
    assert!(model_log(id).contains("POST /v1/responses auth=ok"));
    stop_session(&agent, id, &sid).await;
    // codex-acp is a Node.js script that starts a native binary: neither is
    // left running once its session stopped.
    let adapters = || {
        sh(
            id,
            // (The pattern does not match its own command line.)
            "grep -l 'codex-ac[p]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while adapters().trim() != "0" {
        assert!(
            Instant::now() < deadline,
            "codex-acp processes outlived their sessions: {}",
            sh(id, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.delete(id).await;
}

/// Claude's and Gemini's adapters start as dev and answer `initialize`; what
/// follows without credentials is theirs to say (observed with
/// claude-code-acp 0.16.2 and gemini-cli 0.61.0, no network): Claude's
/// `session/new` succeeds (it needs credentials only for a prompt, which is not
/// sent here), Gemini's asks for authentication in its own words — and with
/// `GEMINI_API_KEY` in the session's env (its `env_var` method) it runs.
#[tokio::test]
async fn claude_and_gemini_adapters_start_in_the_image() {
    let agent = start_agent().await;
    let ws = default_workspace(&agent, "claude and gemini").await;
    let id = ws.id.as_str();
    isolate(id);
    for (name, env, expect) in [
        ("claude", json!({}), Ok(())),
        ("gemini", json!({}), Err("Gemini API key is missing")),
        ("gemini", json!({"GEMINI_API_KEY": KEY}), Ok(())),
    ] {
        let sid = create_session(&agent, id, json!({"agent": name, "env": env})).await;
        let s = settled(&agent, id, &sid).await;
        let names: Vec<&String> = env
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        eprintln!(
            "{name} (env {names:?}): {} {}",
            s["status"],
            s["error"].as_str().unwrap_or("")
        );
        match expect {
            Ok(()) => {
                assert_eq!(s["status"], "running", "{name}: {s}");
                stop_session(&agent, id, &sid).await;
            }
            Err(words) => {
                assert_eq!(s["status"], "error", "{name}: {s}");
                let error = s["error"].as_str().unwrap_or_default();
                assert!(error.contains(words), "{name}: {s}");
                // What the adapter offers instead (its authMethods).
                assert!(error.contains("gemini api key"), "{name}: {s}");
            }
        }
    }
    agent.delete(id).await;
}

#[tokio::test]
async fn a_missing_adapter_names_the_agent_and_what_the_image_needs() {
    let agent = start_agent().await;
    let ws = agent.running("no node").await;
    for (name, command, package) in [
        (
            "claude",
            "claude-code-acp",
            "@zed-industries/claude-code-acp",
        ),
        ("codex", "codex-acp", "@zed-industries/codex-acp"),
        ("gemini", "gemini", "@google/gemini-cli"),
    ] {
        let sid = create_session(&agent, &ws.id, json!({"agent": name})).await;
        let s = settled(&agent, &ws.id, &sid).await;
        assert_eq!(s["status"], "error", "{s}");
        let error = s["error"].as_str().unwrap_or_default();
        for needle in [name, command, package, "sam-workspace:latest"] {
            assert!(
                error.contains(needle),
                "{name}: {needle:?} missing in {error:?}"
            );
        }
    }
}

/// Building the default image again changes nothing: `sam_build_workspace_image`
/// skips an image whose inputs are unchanged, and the build script itself, run
/// directly, reuses the base, the fetched packages and every layer, ending with
/// the very same image.
#[tokio::test]
async fn the_image_build_is_idempotent() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf();
    let image_id = || {
        let (ok, id) = docker(&["image", "inspect", "-f", "{{.Id}}", &workspace_image()]);
        assert!(ok, "{id}");
        id.trim().to_string()
    };
    let run = |script: &str| {
        let out = Command::new("bash")
            .args(["-c", script])
            .current_dir(&root)
            .output()
            .expect("bash");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{script}: {text}");
        text
    };
    // Builds only when scripts/test has not (inputs changed since).
    run(". scripts/lib.sh && sam_build_workspace_image");
    let before = image_id();
    let again = run(". scripts/lib.sh && sam_build_workspace_image");
    assert!(again.contains("is up to date"), "{again}");
    assert_eq!(image_id(), before);

    let rebuilt = run("images/workspace/build");
    assert!(rebuilt.contains("(reused sam-workspace-base:"), "{rebuilt}");
    assert!(!rebuilt.contains("fetching"), "{rebuilt}");
    assert_eq!(
        image_id(),
        before,
        "a rebuild made another image: {rebuilt}"
    );
    let again = run(". scripts/lib.sh && sam_build_workspace_image");
    assert!(again.contains("is up to date"), "{again}");
}
