//! Harness for the control plane's end-to-end tests: the real `sam` binary with its
//! own state folder and secrets file, a real local `sam-agent` on a free loopback
//! port, and real Docker.
#![allow(dead_code)]

pub mod ssh;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const SAM: &str = env!("CARGO_BIN_EXE_sam");

/// The busybox test image the test script builds.
pub fn test_image() -> String {
    std::env::var("SAM_TEST_IMAGE").unwrap_or_else(|_| "sam-test-busybox:latest".into())
}

pub fn fixture_image() -> String {
    std::env::var("SAM_FIXTURE_IMAGE").unwrap_or_else(|_| "sam-test-fixtures:latest".into())
}

/// The `sam-agent` binary beside the test binaries (built once if missing).
pub fn agent_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("SAM_AGENT_BINARY") {
            return PathBuf::from(p);
        }
        // target/debug/deps/<test> → target/debug/sam-agent
        let exe = std::env::current_exe().expect("test exe");
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        let agent = dir.join("sam-agent");
        if !agent.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = Command::new(cargo)
                .args(["build", "-p", "sam-agent"])
                .status()
                .expect("cargo build -p sam-agent")
                .success();
            assert!(ok, "building sam-agent failed");
        }
        agent
    })
    .clone()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One installation of the desktop: a state folder, a port for its local agent.
pub struct Desktop {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub env: Vec<(String, String)>,
}

impl Desktop {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        Desktop {
            dir,
            port,
            env: Vec::new(),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `sam ARGS…` with this installation's environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(SAM);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SAM_DESKTOP_DIR", self.state())
            .env("SAM_SECRET_STORE", "file")
            .env("SAM_LOCAL_AGENT_PORT", self.port.to_string())
            .env("SAM_AGENT_BINARY", agent_binary())
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `sam`, answering (status, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.cmd(args).output().expect("run sam");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `sam` and expects success; answers stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "sam {args:?} failed: {err}");
        out
    }

    /// `sam --json ARGS…` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("sam {args:?} printed no JSON ({e}): {out}"))
    }

    /// Adds this computer with the test image as default.
    pub fn add_local(&self) -> serde_json::Value {
        self.ok(&["settings", "set", "default-image", &test_image()]);
        self.json(&["node", "add", "local", "--name", "here"])
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        // Stop the local agent this installation started, and what it made.
        if let Some(pid) = local_agent_pid(self.port) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let node_dir = self.state().join("local-node").join("data");
        if node_dir.exists() {
            // Node id = local-<hash>: remove containers labelled with it.
            if let Ok(id) = std::fs::read_to_string(self.state().join("local-node").join("node-id"))
            {
                cleanup_node(id.trim());
            }
        }
    }
}

fn local_agent_pid(port: u16) -> Option<u32> {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("ss -ltnpH 'sport = :{port}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2"),
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Removes every Docker object labelled for `node`.
pub fn cleanup_node(node: &str) {
    let label = format!("label=dev.sam.node={node}");
    let list = |args: &[&str]| -> Vec<String> {
        let out = Command::new("docker")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    };
    for c in list(&["ps", "-aq", "--filter", &label]) {
        let _ = Command::new("docker").args(["rm", "-f", &c]).output();
    }
    for n in list(&["network", "ls", "-q", "--filter", &label]) {
        let _ = Command::new("docker").args(["network", "rm", &n]).output();
    }
    for v in list(&["volume", "ls", "-q", "--filter", &label]) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &v])
            .output();
    }
}
