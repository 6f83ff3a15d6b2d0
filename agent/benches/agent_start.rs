//! `bench/agent-start`: from "Start session" (the create request) to the first
//! `agent.output` of the built-in `codex` agent in the default image, through
//! sam-agent, beside the same adapter (`codex-acp`) started by hand in the same
//! container over `docker exec -i` stdio: that is the adapter's own start-up
//! and turn, the rest is sam-agent's. Codex answers from the scripted model
//! server inside the container (no network, see tests/common/default_image.rs).
//! Rounds alternate the two paths so both see the same warm caches.
//!
//! Not a test: figures vary with the machine; read them, do not assert them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::default_image::*;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Milliseconds from the start to each milestone of one round.
#[derive(Default, Clone, Copy)]
struct Milestones {
    /// The adapter answered `initialize` and `session/new` (through sam-agent:
    /// the queued prompt went out, which it does the moment the session runs).
    ready: f64,
    /// The first `agent.output` (`session/update`) after the prompt went out.
    first_output: f64,
    /// The first chunk of the answer (`agent_message_chunk`).
    first_chunk: f64,
    /// The turn ended.
    turn_end: f64,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Through sam-agent: create, attach, prompt at once (queued until the session
/// runs), read to the turn's end, stop.
async fn through_sam(agent: &Agent, ws: &str) -> Milestones {
    let t = Instant::now();
    let path = format!("/workspaces/{ws}/agent-sessions");
    let (s, session) = agent
        .send_json(
            reqwest::Method::POST,
            &path,
            json!({"agent": "codex", "env": {"CODEX_API_KEY": KEY}}),
        )
        .await;
    assert_eq!(s, 201, "create session: {session}");
    let sid = session["id"].as_str().expect("id").to_string();
    let mut request = agent
        .ws_url(&format!("{path}/{sid}/ws"))
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token())
            .parse()
            .expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("attach");
    socket
        .send(Message::Text(
            json!({"type": "prompt", "text": "Say the scripted words."})
                .to_string()
                .into(),
        ))
        .await
        .expect("prompt");
    let mut m = Milestones::default();
    let mut prompted = false;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(90), socket.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            panic!("the session socket ended early: {next:?}");
        };
        let f: Value = serde_json::from_str(&text).expect("JSON frame");
        match f["type"].as_str() {
            Some("user.prompt") => {
                m.ready = ms(t);
                prompted = true;
            }
            Some("agent.output") if prompted => {
                if m.first_output == 0.0 {
                    m.first_output = ms(t);
                }
                if m.first_chunk == 0.0 && f["update"]["sessionUpdate"] == "agent_message_chunk" {
                    m.first_chunk = ms(t);
                }
            }
            Some("agent.turn_end") => {
                m.turn_end = ms(t);
                break;
            }
            Some("agent.error" | "session.stopped") => panic!("the session failed: {f}"),
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    let (s, body) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("{path}/{sid}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "stop session: {body}");
    m
}

/// `codex-acp` by hand over `docker exec -i` stdio (JSON-RPC lines), as the
/// workspace's user in its folder, the key in the exec's environment only.
fn directly(ws: &str, folder: &str) -> Milestones {
    let container = container(ws);
    let t = Instant::now();
    let mut child = Command::new("docker")
        .args(["exec", "-i", "-w", folder, "-e", "CODEX_API_KEY"])
        .args([container.as_str(), "codex-acp"])
        .env("CODEX_API_KEY", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker exec");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").expect("write");
        stdin.flush().expect("flush");
    };
    let mut next = || -> Value {
        let line = lines.next().expect("codex-acp ended early").expect("read");
        serde_json::from_str(&line).expect("JSON-RPC line")
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": 1,
            "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}, "terminal": true},
        }}),
    );
    while next()["id"] != 1 {}
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "session/new",
        "params": {"cwd": folder, "mcpServers": []}}));
    let session_id = loop {
        let v = next();
        if v["id"] == 2 {
            break v["result"]["sessionId"].clone();
        }
    };
    let mut m = Milestones {
        ready: ms(t),
        ..Milestones::default()
    };
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "session/prompt", "params": {
            "sessionId": session_id,
            "prompt": [{"type": "text", "text": "Say the scripted words."}],
        }}),
    );
    loop {
        let v = next();
        if v["id"] == 3 && v.get("method").is_none() {
            assert!(v.get("error").is_none(), "the prompt failed: {v}");
            m.turn_end = ms(t);
            break;
        }
        match (v["method"].as_str(), v.get("id")) {
            (Some("session/update"), None) => {
                if m.first_output == 0.0 {
                    m.first_output = ms(t);
                }
                if m.first_chunk == 0.0
                    && v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
                {
                    m.first_chunk = ms(t);
                }
            }
            // A request to the client (none is expected for this prompt).
            (Some(_), Some(id)) => send(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "not offered by the bench"}})),
            _ => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Ending the docker CLI does not end what it started in the container.
    let (ok, out) = docker_exec(
        ws,
        None,
        "for p in $(grep -l 'codex-ac[p]' /proc/[0-9]*/cmdline | cut -d/ -f3); do kill -9 $p; done",
    );
    assert!(ok, "ending codex-acp: {out}");
    m
}

/// `docker exec -i CONTAINER true`: what the direct path pays for the docker
/// CLI and the exec itself, before the adapter runs.
fn bare_exec(container: &str) -> f64 {
    let t = Instant::now();
    let status = Command::new("docker")
        .args(["exec", "-i", container, "true"])
        .stdin(Stdio::null())
        .status()
        .expect("docker exec");
    assert!(status.success());
    ms(t)
}

fn image_size_mb(image: &str) -> f64 {
    let (ok, out) = docker(&["image", "inspect", "-f", "{{.Size}}", image]);
    assert!(ok, "docker image inspect {image}: {out}");
    out.trim().parse::<f64>().unwrap_or(0.0) / 1e6
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let image = workspace_image();
    let agent = Agent::start_with(Options {
        args: vec![],
        env: vec![("RUST_LOG".into(), "warn".into())],
    })
    .await;
    let ws = agent
        .create(json!({"displayName": "agent start bench", "image": image}))
        .await;
    let ws = agent
        .wait_for(&ws.id, sam_protocol::WorkspaceStatus::Running)
        .await;
    let id = ws.id.as_str();
    isolate(id);
    install_model_server(id);
    start_model_server(id);
    configure_codex(id);

    // One unmeasured round each: the first start reads the adapter from disk.
    through_sam(&agent, id).await;
    let (name, folder) = (container(id), ws.project_path.clone());
    let run_direct = || {
        let (ws, folder) = (id.to_string(), folder.clone());
        tokio::task::spawn_blocking(move || directly(&ws, &folder))
    };
    run_direct().await.expect("direct round");
    let mut sam = Vec::new();
    let mut own = Vec::new();
    let mut exec = Vec::new();
    for round in 0..rounds {
        if round % 2 == 0 {
            sam.push(through_sam(&agent, id).await);
            own.push(run_direct().await.expect("direct round"));
        } else {
            own.push(run_direct().await.expect("direct round"));
            sam.push(through_sam(&agent, id).await);
        }
        exec.push(bare_exec(&name));
    }
    agent.delete(id).await;

    let exec = median(exec.into_iter());
    let row = |what: &str, pick: fn(&Milestones) -> f64| {
        let (s, o) = (median(sam.iter().map(pick)), median(own.iter().map(pick)));
        println!(
            "| {what} | {s:.0} ms | {o:.0} ms | {:.0} ms | {:.0} % |",
            o - exec,
            100.0 * (o - exec) / s
        );
    };
    println!("## Agent start: codex in {image} ({rounds} rounds, medians)\n");
    println!(
        "| from \"Start session\" to … | through sam-agent | codex-acp by hand (`docker exec -i`) | the adapter's own (by hand − `docker exec` of `true`, {exec:.0} ms) | adapter's share |"
    );
    println!("|---|---:|---:|---:|---:|");
    row("the adapter ready (`initialize`, `session/new`)", |m| {
        m.ready
    });
    row("**the first `agent.output`** (goal < 2 s)", |m| {
        m.first_output
    });
    row("the first chunk of the answer", |m| m.first_chunk);
    row("the end of the turn", |m| m.turn_end);
    println!();
    println!("Default image `{image}`: {:.0} MB.", image_size_mb(&image));
}
