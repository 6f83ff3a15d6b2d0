//! Test harness: a real `sam-agent` process on loopback, a real Docker engine, and
//! tokens minted with a throwaway Ed25519 key.
#![allow(dead_code)]

pub mod default_image;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sam_protocol::{Claims, Workspace, WorkspaceStatus};
use serde_json::{Value, json};

pub const AGENT: &str = env!("CARGO_BIN_EXE_sam-agent");

/// The small busybox image the test script builds.
pub fn test_image() -> String {
    std::env::var("SAM_TEST_IMAGE").unwrap_or_else(|_| "sam-test-busybox:latest".into())
}

/// The test image plus the fixture programs of tests/fixtures (`ws-echo`, …), which
/// the test script builds.
pub fn fixture_image() -> String {
    std::env::var("SAM_FIXTURE_IMAGE").unwrap_or_else(|_| "sam-test-fixtures:latest".into())
}

pub fn new_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

pub fn public_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("encode public key")
}

pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let der = key.to_pkcs8_der().expect("pkcs8");
    let enc = EncodingKey::from_ed_der(der.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &enc).expect("sign")
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Options for starting an agent.
#[derive(Clone, Default)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Which `sam-agent` binary an [`Agent`] runs: this build's, unless a bench
/// compares with another build (`Agent::start_binary`).
fn binary_or_this(binary: Option<PathBuf>) -> PathBuf {
    binary.unwrap_or_else(|| PathBuf::from(AGENT))
}

pub struct Agent {
    pub binary: PathBuf,
    pub child: Option<Child>,
    pub node_id: String,
    pub port: u16,
    pub key: SigningKey,
    pub dir: tempfile::TempDir,
    pub options: Options,
    pub http: reqwest::Client,
}

impl Agent {
    pub async fn start() -> Agent {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Agent {
        Self::start_binary(None, options).await
    }

    /// An agent running `binary` (another build of sam-agent) instead of this one.
    pub async fn start_binary(binary: Option<PathBuf>, options: Options) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = new_key();
        std::fs::write(dir.path().join("trusted.pem"), public_pem(&key)).expect("write key");
        let node_id = format!("test-{:08x}", rand::random::<u32>());
        let mut agent = Agent {
            binary: binary_or_this(binary),
            child: None,
            node_id,
            port: free_port(),
            key,
            dir,
            options,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        };
        agent.spawn().await;
        agent
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The command line this agent runs with.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .arg("serve")
            .args(["--node-id", &self.node_id])
            .arg("--trusted-key")
            .arg(self.dir.path().join("trusted.pem"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--default-image", &test_image()])
            .args(["--heartbeat-seconds", "1"])
            .args(&self.options.args);
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("log");
        let child = self
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn sam-agent");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(self.url("/health")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("sam-agent exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sam-agent did not answer /health: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut c = self.child.take().expect("running");
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let status = c.wait().expect("wait");
        (status, started.elapsed())
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub fn node_token(&self) -> String {
        let now = unix_now();
        sign(&self.key, &json!(Claims::node(&self.node_id, now, 300)))
    }

    pub fn workspace_token(&self, ws: &str) -> String {
        let now = unix_now();
        sign(
            &self.key,
            &json!(Claims::workspace(&self.node_id, ws, now, 300)),
        )
    }

    /// A request with a node token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.node_token())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let r = self
            .req(method, path)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST /workspaces and return the 202 answer.
    pub async fn create(&self, body: Value) -> Workspace {
        let (status, ws) = self
            .send_json(reqwest::Method::POST, "/workspaces", body)
            .await;
        assert_eq!(status, 202, "create answered {ws}");
        serde_json::from_value(ws).expect("workspace")
    }

    pub async fn workspace(&self, id: &str) -> Workspace {
        let (status, ws) = self.get_json(&format!("/workspaces/{id}")).await;
        assert_eq!(status, 200, "get answered {ws}");
        serde_json::from_value(ws).expect("workspace")
    }

    /// Polls until the workspace reaches `status` (panics on another settled state).
    pub async fn wait_for(&self, id: &str, status: WorkspaceStatus) -> Workspace {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ws = self.workspace(id).await;
            if ws.status == status {
                return ws;
            }
            if !ws.status.is_transitional() && ws.status != status && Instant::now() > deadline {
                panic!(
                    "workspace {id} is {:?} ({:?}), wanted {status:?}",
                    ws.status, ws.error
                );
            }
            assert!(
                Instant::now() < deadline,
                "workspace {id} stuck in {:?}; log: {}",
                ws.status,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a workspace from the test image and waits until it runs.
    pub async fn running(&self, name: &str) -> Workspace {
        let ws = self
            .create(json!({"displayName": name, "image": test_image()}))
            .await;
        self.wait_for(&ws.id, WorkspaceStatus::Running).await
    }

    /// Deletes and waits until the workspace is gone.
    pub async fn delete(&self, id: &str) {
        let r = self
            .req(reqwest::Method::DELETE, &format!("/workspaces/{id}"))
            .send()
            .await
            .expect("send");
        assert_eq!(
            r.status(),
            202,
            "delete answered {}",
            r.text().await.unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _) = self.get_json(&format!("/workspaces/{id}")).await;
            if status == 404 {
                return;
            }
            assert!(Instant::now() < deadline, "workspace {id} not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Names of Docker objects labelled for this node: (containers, networks, volumes).
    pub fn docker_leftovers(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        docker_labelled(&format!("dev.sam.node={}", self.node_id))
    }
}

pub fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn docker_labelled(label: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let list = |args: &[&str]| -> Vec<String> {
        let (_, out) = docker(args);
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    };
    let filter = format!("label={label}");
    (
        list(&["ps", "-aq", "--filter", &filter]),
        list(&["network", "ls", "-q", "--filter", &filter]),
        list(&["volume", "ls", "-q", "--filter", &filter]),
    )
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        // Whatever a failed test left behind goes, so runs do not pile up. Twice:
        // Docker may still finish requests the killed agent had in flight.
        for pass in 0..2 {
            if pass == 1 {
                std::thread::sleep(Duration::from_millis(500));
            }
            let (containers, networks, volumes) = self.docker_leftovers();
            for c in containers {
                let _ = docker(&["rm", "-f", &c]);
            }
            for n in networks {
                let _ = docker(&["network", "rm", &n]);
            }
            for v in volumes {
                let _ = docker(&["volume", "rm", "-f", &v]);
            }
        }
    }
}

/// Runs `sh -c script` in a workspace's container as `user`, returning stdout.
pub fn docker_exec(ws: &str, user: Option<&str>, script: &str) -> (bool, String) {
    let name = format!("sam-ws-{ws}");
    let mut args = vec!["exec"];
    if let Some(u) = user {
        args.extend(["-u", u]);
    }
    args.extend([name.as_str(), "sh", "-c", script]);
    docker(&args)
}

/// Makes a local git repository with `files` committed on branch `main`.
pub fn git_repo(dir: &Path, files: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git")
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "init"]);
    format!("file://{}", dir.display())
}
