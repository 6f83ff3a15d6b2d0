//! `bench/terminal`: keystroke echo, bulk output and 100 concurrent terminals,
//! through sam-agent's terminal WebSocket, through OpenSSH (`ssh -tt` to a loopback
//! sshd running `docker exec -it … sh`), and the floor (`docker exec -it` under a
//! local PTY), against the same container, side by side in one run.
//!
//! Not a test: figures vary with the machine; read them, do not assert them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One interactive terminal, whatever carries it.
enum Session {
    Pty {
        writer: Box<dyn Write + Send>,
        rx: mpsc::Receiver<Vec<u8>>,
        _child: Box<dyn portable_pty::Child + Send + Sync>,
        _master: Box<dyn portable_pty::MasterPty + Send>,
    },
    Ws(Box<WsStream>),
}

impl Session {
    fn pty(argv: &[&str]) -> Session {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(argv[0]);
        cmd.args(&argv[1..]);
        let child = pair.slave.spawn_command(cmd).expect("spawn under a pty");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let (tx, rx) = mpsc::channel(1024);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Session::Pty {
            writer,
            rx,
            _child: child,
            _master: pair.master,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        match self {
            Session::Pty { writer, .. } => {
                writer.write_all(bytes).expect("write");
                writer.flush().expect("flush");
            }
            Session::Ws(ws) => ws
                .send(Message::Binary(bytes.to_vec().into()))
                .await
                .expect("send"),
        }
    }

    /// The next chunk of output (None: closed).
    async fn recv(&mut self) -> Option<Vec<u8>> {
        match self {
            Session::Pty { rx, .. } => rx.recv().await,
            Session::Ws(ws) => loop {
                match ws.next().await? {
                    Ok(Message::Binary(b)) => return Some(b.to_vec()),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                }
            },
        }
    }

    /// Reads until nothing arrives for `quiet`.
    async fn settle(&mut self, quiet: Duration) {
        while let Ok(Some(_)) = tokio::time::timeout(quiet, self.recv()).await {}
    }

    /// Reads until `needle` has been seen; returns the bytes read.
    async fn until(&mut self, needle: &[u8]) -> u64 {
        let mut total = 0u64;
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(120), self.recv())
                .await
                .expect("output within 120 s")
                .expect("session open");
            total += chunk.len() as u64;
            tail.extend_from_slice(&chunk);
            if tail.windows(needle.len()).any(|w| w == needle) {
                return total;
            }
            let keep = tail.len().saturating_sub(needle.len());
            tail.drain(..keep);
        }
    }

    /// Turns the remote side into an echoing `cat` (no line discipline in the way).
    async fn start_echo(&mut self) {
        self.settle(Duration::from_millis(500)).await;
        self.send(b"stty -icanon -echo; echo RE''ADY; exec cat\n")
            .await;
        self.until(b"READY").await;
        self.settle(Duration::from_millis(200)).await;
    }

    /// `n` keystrokes, each waiting for its echo; milliseconds each.
    async fn echo_rtts(&mut self, n: usize) -> Vec<f64> {
        let mut rtts = Vec::with_capacity(n);
        for i in 0..n {
            let key = b'a' + (i % 26) as u8;
            let t = Instant::now();
            self.send(&[key]).await;
            loop {
                let chunk = self.recv().await.expect("echo");
                if chunk.contains(&key) {
                    break;
                }
            }
            rtts.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        rtts
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A throwaway sshd on loopback, and the ssh argv prefix that reaches it.
struct Sshd {
    child: std::process::Child,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keygen = |path: &std::path::Path| {
        assert!(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .unwrap()
                .success()
        );
    };
    keygen(&d.join("host"));
    keygen(&d.join("client"));
    std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nUsePAM no\n\
         StrictModes no\nPermitRootLogin yes\nPrintMotd no\nPrintLastLog no\nMaxSessions 200\nMaxStartups 200\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sshd (apt install openssh-server)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let args = vec![
        "ssh".into(),
        "-tt".into(),
        "-q".into(),
        "-p".into(),
        port.to_string(),
        "-i".into(),
        d.join("client").display().to_string(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "root@127.0.0.1".into(),
    ];
    Sshd {
        child,
        args,
        _dir: dir,
    }
}

async fn sam_session(agent: &Agent, ws: &str) -> Session {
    let (s, t) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{ws}/terminals"),
            json!({"cols": 80, "rows": 24}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let tid = t["id"].as_str().unwrap();
    let mut request = agent
        .ws_url(&format!("/workspaces/{ws}/terminals/{tid}/ws"))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("terminal ws");
    Session::Ws(Box::new(socket))
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Sam,
    /// The same WebSocket through a build of sam-agent from before holders
    /// (`SAM_BASELINE_AGENT`), whose terminals the agent process owned itself.
    SamNoHolders,
    Ssh,
    DockerExec,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Sam => "sam-agent WebSocket (holders)",
            Path::SamNoHolders => "sam-agent WebSocket, build without holders",
            Path::Ssh => "OpenSSH (ssh -tt → docker exec -it)",
            Path::DockerExec => "floor: docker exec -it",
        }
    }
}

async fn open(path: Path, agent: &Agent, ws: &str, container: &str, ssh: &Sshd) -> Session {
    match path {
        Path::Sam | Path::SamNoHolders => sam_session(agent, ws).await,
        Path::Ssh => {
            let mut argv: Vec<&str> = ssh.args.iter().map(String::as_str).collect();
            argv.extend(["docker", "exec", "-it", container, "sh"]);
            Session::pty(&argv)
        }
        Path::DockerExec => Session::pty(&["docker", "exec", "-it", container, "sh"]),
    }
}

#[tokio::main]
async fn main() {
    let keystrokes: usize = std::env::var("KEYSTROKES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let bulk_mb: u64 = std::env::var("BULK_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let concurrent: usize = std::env::var("CONCURRENT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let reattach_terminals: usize = std::env::var("REATTACH_TERMINALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let quiet = || Options {
        args: vec![],
        env: vec![("RUST_LOG".into(), "warn".into())],
    };
    let agent = Agent::start_with(quiet()).await;
    let ws = agent.running("bench").await;
    let container = format!("sam-ws-{}", ws.id);
    let big = format!(
        "head -c {} /dev/zero | tr '\\0' a | fold -w 99 > /tmp/big",
        bulk_mb * 1_000_000
    );
    let (ok, out) = docker_exec(&ws.id, None, &big);
    assert!(ok, "{out}");
    // The baseline build, on its own workspace with the same file.
    let baseline = match std::env::var_os("SAM_BASELINE_AGENT") {
        Some(bin) => {
            let b = Agent::start_binary(Some(bin.into()), quiet()).await;
            let bws = b.running("bench-baseline").await;
            let (ok, out) = docker_exec(&bws.id, None, &big);
            assert!(ok, "{out}");
            Some((b, bws))
        }
        None => None,
    };
    let ssh = sshd();
    let mut paths = vec![Path::Sam];
    if baseline.is_some() {
        paths.push(Path::SamNoHolders);
    }
    paths.extend([Path::Ssh, Path::DockerExec]);

    let mut rows = Vec::new();
    for path in paths {
        let (agent, ws, container) = match (&baseline, path) {
            (Some((b, bws)), Path::SamNoHolders) => (b, bws, format!("sam-ws-{}", bws.id)),
            _ => (&agent, &ws, container.clone()),
        };
        // Keystroke echo.
        let mut s = open(path, agent, &ws.id, &container, &ssh).await;
        s.start_echo().await;
        let mut rtts = s.echo_rtts(keystrokes).await;
        let (p50, p99) = (percentile(&mut rtts, 0.5), percentile(&mut rtts, 0.99));
        drop(s);

        // Bulk output.
        let mut s = open(path, agent, &ws.id, &container, &ssh).await;
        s.settle(Duration::from_millis(500)).await;
        let t = Instant::now();
        s.send(b"cat /tmp/big; echo SAM''DONE\n").await;
        let bytes = s.until(b"SAMDONE").await;
        let mbps = bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
        drop(s);

        // Concurrent terminals, each echoing.
        let mut sessions = Vec::new();
        for _ in 0..concurrent {
            sessions.push(open(path, agent, &ws.id, &container, &ssh).await);
        }
        futures::future::join_all(sessions.iter_mut().map(|s| s.start_echo())).await;
        let all = futures::future::join_all(sessions.iter_mut().map(|s| s.echo_rtts(20))).await;
        let mut all: Vec<f64> = all.into_iter().flatten().collect();
        let p99_concurrent = percentile(&mut all, 0.99);
        drop(sessions);
        rows.push((path, p50, p99, mbps, p99_concurrent));
        eprintln!("{}: done", path.name());
    }

    println!(
        "## Terminal ({keystrokes} keystrokes, {bulk_mb} MB bulk, {concurrent} concurrent terminals × 20 keystrokes)\n"
    );
    println!("| path | echo p50 | echo p99 | bulk output | {concurrent} terminals, echo p99 |");
    println!("|---|---:|---:|---:|---:|");
    for (path, p50, p99, mbps, p99c) in &rows {
        println!(
            "| {} | {p50:.2} ms | {p99:.2} ms | {mbps:.0} MB/s | {p99c:.2} ms |",
            path.name()
        );
    }
    let sam = rows.iter().find(|r| r.0 == Path::Sam).unwrap();
    let ssh_row = rows.iter().find(|r| r.0 == Path::Ssh).unwrap();
    println!();
    println!("| goal | measured | met |");
    println!("|---|---:|---|");
    println!(
        "| echo p99 no worse than OpenSSH | {:.2} vs {:.2} ms | {} |",
        sam.2,
        ssh_row.2,
        if sam.2 <= ssh_row.2 { "yes" } else { "no" }
    );
    println!(
        "| bulk ≥ 1.5× OpenSSH | {:.2}× | {} |",
        sam.3 / ssh_row.3,
        if sam.3 >= 1.5 * ssh_row.3 {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "| {concurrent}-terminal echo p99 < 25 ms | {:.2} ms | {} |",
        sam.4,
        if sam.4 < 25.0 { "yes" } else { "no" }
    );
    if let Some(old) = rows.iter().find(|r| r.0 == Path::SamNoHolders) {
        println!(
            "| holders: echo p99 within 10 % of the build without | {:.2} vs {:.2} ms ({:+.0} %) | {} |",
            sam.2,
            old.2,
            (sam.2 / old.2 - 1.0) * 100.0,
            if sam.2 <= old.2 * 1.10 { "yes" } else { "no" }
        );
        println!(
            "| holders: bulk within 10 % of the build without | {:.0} vs {:.0} MB/s ({:+.0} %) | {} |",
            sam.3,
            old.3,
            (sam.3 / old.3 - 1.0) * 100.0,
            if sam.3 >= old.3 * 0.90 { "yes" } else { "no" }
        );
    }
    agent.delete(&ws.id).await;
    if let Some((b, bws)) = &baseline {
        b.delete(&bws.id).await;
    }

    let (health, all) = reattach(reattach_terminals).await;
    println!();
    println!("## Re-attach after `kill -9` ({reattach_terminals} terminals streaming output)\n");
    println!("| from the new agent's start to | measured |");
    println!("|---|---:|");
    println!("| `/health` answers | {health:.0} ms |");
    println!(
        "| all {reattach_terminals} terminals re-attached (scrollback replayed, `ready`) | {all:.0} ms |"
    );
    println!();
    println!(
        "| goal | measured | met |\n|---|---:|---|\n| all terminals re-attachable < 1 s | {all:.0} ms | {} |",
        if all < 1000.0 { "yes" } else { "no" }
    );
}

/// `n` terminals printing a line every 50 ms; `kill -9` of the agent; a new one
/// started: milliseconds until `/health` answers, and until every terminal has
/// been re-attached (scrollback replayed up to its `ready`).
async fn reattach(n: usize) -> (f64, f64) {
    let mut agent = Agent::start_with(Options {
        args: vec![],
        env: vec![("RUST_LOG".into(), "warn".into())],
    })
    .await;
    let ws = agent.running("reattach").await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let (s, t) = agent
            .send_json(
                reqwest::Method::POST,
                &format!("/workspaces/{}/terminals", ws.id),
                json!({"cols": 80, "rows": 24, "command": ["sh", "-c", "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.05; done"]}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    agent.spawn().await;
    let health = started.elapsed().as_secs_f64() * 1000.0;
    let attach = |tid: String| {
        let agent = &agent;
        let ws = ws.id.clone();
        async move {
            let mut request = agent
                .ws_url(&format!("/workspaces/{ws}/terminals/{tid}/ws"))
                .into_client_request()
                .unwrap();
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {}", agent.node_token()).parse().unwrap(),
            );
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("terminal ws after the restart");
            let mut replayed = 0usize;
            loop {
                match socket.next().await {
                    Some(Ok(Message::Binary(b))) => replayed += b.len(),
                    Some(Ok(Message::Text(t))) if t.contains("\"ready\"") => break,
                    Some(Ok(_)) => {}
                    other => panic!("terminal {tid} after the restart: {other:?}"),
                }
            }
            assert!(replayed > 0, "terminal {tid}: nothing replayed");
            let _ = socket.send(Message::Close(None)).await;
        }
    };
    futures::future::join_all(ids.into_iter().map(attach)).await;
    let all = started.elapsed().as_secs_f64() * 1000.0;
    agent.delete(&ws.id).await;
    (health, all)
}
