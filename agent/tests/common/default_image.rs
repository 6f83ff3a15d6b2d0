//! The default workspace image (sam-workspace:latest) with Codex pointed at the
//! scripted model server of tests/fixtures, for the tests and the benchmarks
//! that run real ACP adapters. Nothing reaches a vendor: a workspace is cut off
//! its network ([`isolate`]) and the model server runs inside its container on
//! 127.0.0.1.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{docker, docker_exec, fixture_image};

/// A dummy API key: proves the session's `env` reaches the vendor's API (the
/// model server refuses any other), and must show up nowhere else.
pub const KEY: &str = "sk-sam-test-7f3c9a1e-not-a-real-key";
pub const SCRIPTED: &str = "Scripted reply from the local model server.";
pub const MODEL_PORT: u16 = 18999;

pub fn workspace_image() -> String {
    std::env::var("SAM_WORKSPACE_IMAGE").unwrap_or_else(|_| "sam-workspace:latest".into())
}

pub fn container(ws: &str) -> String {
    format!("sam-ws-{ws}")
}

pub fn home_volume(ws: &str) -> String {
    format!("sam-ws-{ws}-home")
}

/// `sh -c script` in the workspace as its user (dev), stdout and stderr.
pub fn sh(ws: &str, script: &str) -> String {
    let (ok, out) = docker_exec(ws, None, script);
    assert!(ok, "{script}: {out}");
    out
}

/// Leaves the container with loopback only, so nothing in it reaches a vendor
/// (it stays so across a restart), and name lookups failing at once.
pub fn isolate(ws: &str) {
    let name = container(ws);
    let (ok, out) = docker(&["network", "disconnect", &name, &name]);
    assert!(ok, "network disconnect: {out}");
    assert_eq!(sh(ws, "ls /sys/class/net").trim(), "lo");
    fail_lookups_fast(ws);
}

/// Off its network, the container still asks Docker's DNS (127.0.0.11), which
/// no longer answers: each lookup waits for its timeout, and codex-acp waits
/// 10 s at start for one. Pointed at a closed port, lookups fail at once, as
/// with `--network none`. Docker writes the file again on every start.
pub fn fail_lookups_fast(ws: &str) {
    let (ok, out) = docker_exec(
        ws,
        Some("root"),
        "echo 'nameserver 127.0.0.1' > /etc/resolv.conf",
    );
    assert!(ok, "resolv.conf: {out}");
}

/// Copies the fixture `model-server` (a static binary from the fixtures image)
/// into the workspace's container.
pub fn install_model_server(ws: &str) {
    let (ok, id) = docker(&["create", &fixture_image(), "/bin/true"]);
    assert!(ok, "docker create: {id}");
    let id = id.trim().to_string();
    let mut out = Command::new("docker")
        .args(["cp", &format!("{id}:/usr/local/bin/model-server"), "-"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker cp out");
    let status = Command::new("docker")
        .args(["cp", "-", &format!("{}:/usr/local/bin/", container(ws))])
        .stdin(out.stdout.take().expect("stdout"))
        .status()
        .expect("docker cp in");
    assert!(out.wait().expect("wait").success());
    assert!(status.success(), "docker cp into the workspace");
    let _ = docker(&["rm", "-f", &id]);
}

/// Starts the model server in the workspace (`docker exec -d`), on 127.0.0.1.
pub fn start_model_server(ws: &str) {
    let _ = docker_exec(ws, None, "rm -f /tmp/model-server.log");
    let (ok, out) = docker(&[
        "exec",
        "-d",
        "-e",
        &format!("MODEL_SERVER_KEY={KEY}"),
        &container(ws),
        "model-server",
        "--listen",
        &format!("127.0.0.1:{MODEL_PORT}"),
        "--reply",
        SCRIPTED,
        "--log",
        "/tmp/model-server.log",
    ]);
    assert!(ok, "start the model server: {out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !model_log(ws).contains("listening") {
        assert!(Instant::now() < deadline, "the model server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn model_log(ws: &str) -> String {
    docker_exec(ws, None, "cat /tmp/model-server.log 2>/dev/null").1
}

/// Points Codex (the built-in OpenAI provider) at the model server.
pub fn configure_codex(ws: &str) {
    sh(
        ws,
        &format!(
            "mkdir -p ~/.codex && printf 'openai_base_url = \"http://127.0.0.1:{MODEL_PORT}/v1\"\\n' > ~/.codex/config.toml"
        ),
    );
}
