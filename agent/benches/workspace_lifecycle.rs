//! `bench/workspace-lifecycle`: sam-agent against plain `docker run`/`docker stop` of
//! the same image, side by side in one run. Prints a Markdown table (medians).
//!
//! Not a test: figures vary with the machine; read them, do not assert them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use sam_protocol::{EventPage, NodeStreamFrame};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Waits on the node stream for `kind` about workspace `id`.
async fn wait_event<S>(stream: &mut S, id: &str, kind: &str)
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    while let Some(Ok(msg)) = stream.next().await {
        if let Ok(text) = msg.to_text()
            && let Ok(NodeStreamFrame::Event { event }) = serde_json::from_str(text)
            && event.workspace_id.as_deref() == Some(id)
        {
            if event.kind.as_str() == kind {
                return;
            }
            assert!(
                event.kind.as_str() != "workspace.error",
                "{}",
                event.message
            );
        }
    }
    panic!("the event stream ended");
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let pss = rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (rss, pss)
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let image = test_image();
    let agent = Agent::start_with(Options {
        args: vec!["--max-workspaces".into(), "100".into()],
        env: vec![("RUST_LOG".into(), "warn".into())],
    })
    .await;

    let mut request = agent.ws_url("/events/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("events ws");
    let (_, mut stream) = socket.split();

    let keep_alive = "trap 'exit 0' 15; while sleep 1 & wait $!; do :; done";
    let mut docker_equivalent = vec![];
    let (mut sam_create, mut sam_stop, mut docker_create, mut docker_stop) =
        (vec![], vec![], vec![], vec![]);
    for i in 0..rounds {
        // sam-agent: POST /workspaces → workspace.running; POST stop → workspace.stopped.
        let t = Instant::now();
        let ws = agent
            .create(json!({"displayName": format!("bench {i}"), "image": image}))
            .await;
        wait_event(&mut stream, &ws.id, "workspace.running").await;
        sam_create.push(ms(t.elapsed()));
        let t = Instant::now();
        let (s, _) = agent
            .send_json(
                reqwest::Method::POST,
                &format!("/workspaces/{}/stop", ws.id),
                json!({}),
            )
            .await;
        assert_eq!(s, 202);
        wait_event(&mut stream, &ws.id, "workspace.stopped").await;
        sam_stop.push(ms(t.elapsed()));
        agent.delete(&ws.id).await;

        // docker CLI: run -d (returns once started) and stop, same image and command.
        let name = format!("sam-bench-{}-{i}", agent.node_id);
        let t = Instant::now();
        let ok = Command::new("docker")
            .args([
                "run",
                "-d",
                "--name",
                &name,
                "--label",
                &format!("dev.sam.node={}", agent.node_id),
            ])
            .args(["--entrypoint", "/bin/sh", &image, "-c", keep_alive])
            .output()
            .expect("docker run")
            .status
            .success();
        assert!(ok);
        docker_create.push(ms(t.elapsed()));
        let t = Instant::now();
        assert!(
            Command::new("docker")
                .args(["stop", &name])
                .output()
                .unwrap()
                .status
                .success()
        );
        docker_stop.push(ms(t.elapsed()));
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();

        // docker CLI doing what a workspace is: network + volume, then run on them.
        let t = Instant::now();
        let label = format!("dev.sam.node={}", agent.node_id);
        let docker_ok = |args: &[&str]| {
            assert!(
                Command::new("docker")
                    .args(args)
                    .output()
                    .unwrap()
                    .status
                    .success(),
                "docker {args:?}"
            );
        };
        docker_ok(&["network", "create", "--label", &label, &name]);
        docker_ok(&["volume", "create", "--label", &label, &name]);
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--network",
            &name,
            "--mount",
            &format!("type=volume,src={name},dst=/workspaces/x"),
            "--entrypoint",
            "/bin/sh",
            &image,
            "-c",
            keep_alive,
        ]);
        docker_equivalent.push(ms(t.elapsed()));
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let _ = Command::new("docker")
            .args(["network", "rm", &name])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", &name])
            .output();
    }

    // Where the time of one create goes: the agent's own step events.
    let ws = agent.running("timeline").await;
    let (_, page) = agent
        .get_json(&format!("/workspaces/{}/events?limit=50", ws.id))
        .await;
    let page: EventPage = serde_json::from_value(page).unwrap();
    let mut events = page.events;
    events.reverse();
    let t0 = events.first().map(|e| e.created_at).unwrap();
    let mut timeline = String::new();
    for e in &events {
        timeline.push_str(&format!(
            "| +{} ms | {} | {} |\n",
            (e.created_at - t0).num_milliseconds(),
            e.kind.as_str(),
            e.message
        ));
    }
    agent.delete(&ws.id).await;

    // Idle memory with 10 running workspaces.
    let mut ids = vec![];
    for i in 0..10 {
        ids.push(agent.running(&format!("idle {i}")).await.id);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let pid = agent.child.as_ref().expect("agent").id();
    let (rss, pss) = rss_kib(pid);
    for id in &ids {
        agent.delete(id).await;
    }

    // Start to first /health answer.
    let mut starts = vec![];
    for _ in 0..rounds {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(AGENT);
        cmd.env_clear()
            .env("RUST_LOG", "warn")
            .arg("serve")
            .args(["--node-id", "bench-start"])
            .arg("--trusted-key")
            .arg(agent.dir.path().join("trusted.pem"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::null());
        let http = reqwest::Client::new();
        let t = Instant::now();
        let mut child = cmd.spawn().expect("spawn");
        loop {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .await
                && r.status() == 200
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        starts.push(ms(t.elapsed()));
        let _ = child.kill();
        let _ = child.wait();
    }

    let (sc, ss, dc, ds) = (
        median(&mut sam_create),
        median(&mut sam_stop),
        median(&mut docker_create),
        median(&mut docker_stop),
    );
    println!("## Workspace lifecycle ({rounds} rounds, image {image}, medians)\n");
    println!("| step | sam-agent | docker CLI | ratio | goal |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| create → running | {sc:.0} ms | {dc:.0} ms (`docker run -d`) | {:.2}× | ≤ 1.25× |",
        sc / dc
    );
    let de = median(&mut docker_equivalent);
    println!(
        "| create → running, same network + volume | {sc:.0} ms | {de:.0} ms (`docker network create` + `volume create` + `run -d`) | {:.2}× | |",
        sc / de
    );
    println!(
        "| stop → stopped | {ss:.0} ms | {ds:.0} ms (`docker stop`) | {:.2}× | |",
        ss / ds
    );
    println!();
    println!("| figure | measured | goal |");
    println!("|---|---:|---|");
    println!(
        "| agent idle RSS, 10 running workspaces | {:.1} MB (PSS {:.1} MB) | < 15 MB |",
        rss as f64 / 1024.0,
        pss as f64 / 1024.0
    );
    println!(
        "| agent start → first `/health` answer | {:.0} ms (median of {rounds}) | < 100 ms |",
        median(&mut starts)
    );
    println!("\nOne create, step by step (the agent's own events):\n");
    println!("| at | event | message |\n|---|---|---|\n{timeline}");
}
