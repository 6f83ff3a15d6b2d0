//! `bench/sessions`: prompt → first `agent.output` through sam-agent's session
//! socket, against the same fixture agent driven directly over `docker exec -i`
//! stdio (the agent's own latency, with the same container path); and sam-agent's
//! memory per idle session. Prints a Markdown table.
//!
//! Not a test: figures vary with the machine; read them, do not assert them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * 0.99).round() as usize]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The fixture agent over plain stdio: JSON-RPC by hand, timing prompt → first update.
fn direct(container: &str, rounds: usize) -> Vec<f64> {
    let mut child = Command::new("docker")
        .args(["exec", "-i", container, "fixture-agent"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker exec");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    };
    let until_id = |id: u64, lines: &mut std::io::Lines<_>| loop {
        let l: String = lines.next().unwrap().unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        if v["id"] == id {
            return v;
        }
    };
    send(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1,"clientCapabilities":{}}}),
    );
    until_id(1, &mut lines);
    send(
        json!({"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"/","mcpServers":[]}}),
    );
    until_id(2, &mut lines);
    let mut out = vec![];
    for i in 0..rounds {
        let id = 10 + i as u64;
        let t = Instant::now();
        send(
            json!({"jsonrpc":"2.0","id":id,"method":"session/prompt","params":{"sessionId":"fixture-session","prompt":[{"type":"text","text":"echo x"}]}}),
        );
        loop {
            let v: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
            if v["method"] == "session/update" {
                out.push(t.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        until_id(id, &mut lines);
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let idle: usize = std::env::var("IDLE_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let agent = Agent::start_with(Options {
        args: vec!["--max-sessions-per-workspace".into(), "1000".into()],
        env: vec![("RUST_LOG".into(), "warn".into())],
    })
    .await;
    let ws = agent
        .create(json!({"displayName": "bench", "image": fixture_image()}))
        .await;
    let ws = agent
        .wait_for(&ws.id, sam_protocol::WorkspaceStatus::Running)
        .await;
    let container = format!("sam-ws-{}", ws.id);

    // Through sam-agent.
    let (s, session) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{}/agent-sessions", ws.id),
            json!({"command": ["fixture-agent"]}),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    let sid = session["id"].as_str().unwrap();
    let mut request = agent
        .ws_url(&format!("/workspaces/{}/agent-sessions/{sid}/ws", ws.id))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut sam = vec![];
    for _ in 0..rounds {
        let t = Instant::now();
        socket
            .send(Message::Text(
                json!({"type":"prompt","text":"echo x"}).to_string().into(),
            ))
            .await
            .unwrap();
        let mut first = None;
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else {
                panic!("socket closed")
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == "agent.output" && first.is_none() {
                first = Some(t.elapsed().as_secs_f64() * 1000.0);
            }
            if v["type"] == "agent.turn_end" {
                break;
            }
        }
        sam.push(first.unwrap());
    }
    drop(socket);

    // Directly.
    let container2 = container.clone();
    let mut own = tokio::task::spawn_blocking(move || direct(&container2, rounds))
        .await
        .unwrap();

    // Memory per idle session.
    let pid = agent.child.as_ref().unwrap().id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    for _ in 0..idle {
        let (s, body) = agent
            .send_json(
                reqwest::Method::POST,
                &format!("/workspaces/{}/agent-sessions", ws.id),
                json!({"command": ["fixture-agent"]}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
    // Let every handshake finish.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_kib(pid);
    let per_session_kib = (after.saturating_sub(before)) as f64 / idle as f64;

    let (sm, sp) = (median(&mut sam), p99(&mut sam));
    let (om, op) = (median(&mut own), p99(&mut own));
    println!("## Agent sessions ({rounds} prompts, fixture agent, medians)\n");
    println!("| path | prompt → first output, median | p99 |");
    println!("|---|---:|---:|");
    println!("| sam-agent session socket | {sm:.2} ms | {sp:.2} ms |");
    println!("| fixture agent directly (`docker exec -i` stdio) | {om:.2} ms | {op:.2} ms |");
    println!(
        "| **overhead** (goal < 5 ms median) | **{:.2} ms** | |",
        sm - om
    );
    println!();
    println!("| figure | measured | goal |");
    println!("|---|---:|---|");
    println!(
        "| sam-agent memory per idle session ({idle} sessions) | {:.0} KiB | < 1 MB |",
        per_session_kib
    );
    agent.delete(&ws.id).await;
}
