//! "This computer": `sam-agent` on 127.0.0.1 as a detached process that outlives the
//! app (workspaces and sessions keep running when the window closes). A running
//! agent that trusts this installation is reused; one that died is started again;
//! one that does not trust us is named in the error, never killed. An upgrade
//! restarts it from the desktop's binary, the previous one kept aside until the
//! new one answers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sam_protocol::NodeInfo;
use sha2::{Digest, Sha256};

use super::{AgentFile, NodeProvider, also};
use crate::agent_client::NodeClient;
use crate::api::{Progress, Sam};
use crate::error::{Error, Result, code};
use crate::nodes::{NodeRecord, NodeStatus, Provider};

pub const DEFAULT_PORT: u16 = 7420;

pub struct Local;

/// The loopback port: `SAM_LOCAL_AGENT_PORT`, else 7420.
pub fn port() -> u16 {
    std::env::var("SAM_LOCAL_AGENT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(DEFAULT_PORT)
}

/// The local node's id: derived from the installation key, so an agent this
/// installation started earlier is recognised (it trusts the same key).
pub fn node_id(sam: &Sam) -> String {
    let digest = Sha256::digest(sam.identity().public_pem().as_bytes());
    format!("local-{}", hex(&digest[..4]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dir(sam: &Sam) -> PathBuf {
    sam.dir().join("local-node")
}

fn address(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// What is on the port: our agent, nothing, or someone else's.
enum Found {
    Ours(sam_protocol::NodeInfo),
    Nothing,
    Foreign(String),
}

async fn probe(client: &NodeClient) -> Found {
    if client.health().await.is_err() {
        return Found::Nothing;
    }
    match client.node().await {
        Ok(info) => Found::Ours(info),
        Err(e) => Found::Foreign(e.message),
    }
}

/// Heartbeats often enough that a node is judged stale on time: a third of the
/// stale threshold, at most every 10 s.
pub async fn heartbeat_seconds(sam: &Sam) -> u64 {
    (sam.stale_after().await.as_secs() / 3).clamp(1, 10)
}

async fn spawn(sam: &Sam, id: &str, port: u16, binary: &Path) -> Result<u32> {
    let dir = dir(sam);
    std::fs::create_dir_all(dir.join("data"))?;
    let key = dir.join("trusted.pub.pem");
    std::fs::write(&key, sam.identity().public_pem())?;
    std::fs::write(dir.join("node-id"), id)?;
    let logs = sam.dir().join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("local-agent.log"))?;
    let max_ws = sam
        .setting_u32("max-workspaces", "MAX_WORKSPACES_PER_NODE", 10)
        .await;
    let max_sessions = sam
        .setting_u32("max-sessions", "MAX_AGENT_SESSIONS_PER_WORKSPACE", 5)
        .await;
    let mut cmd = std::process::Command::new(binary);
    // A cleaned environment: the desktop's own variables never reach the agent.
    cmd.env_clear();
    for keep in ["PATH", "DOCKER_HOST", "RUST_LOG"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.arg("serve")
        .args(["--node-id", id])
        .arg("--trusted-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--max-workspaces", &max_ws.to_string()])
        .args(["--max-sessions-per-workspace", &max_sessions.to_string()])
        .args([
            "--heartbeat-seconds",
            &heartbeat_seconds(sam).await.to_string(),
        ]);
    if let Ok(Some(image)) = sam.store().setting("default-image").await {
        cmd.args(["--default-image", &image]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own session: the agent outlives this process and its terminal.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| {
        Error::internal(format!("Cannot start {}: {e}", binary.display()))
            .hint("Check SAM_AGENT_BINARY points at a sam-agent built for this machine.")
    })?;
    let pid = child.id();
    // Not waited for: it is detached on purpose. Reap it if it dies while we run.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(pid)
}

/// Reuses a running agent, or starts one; waits until it answers.
async fn ensure_running(
    sam: &Sam,
    id: &str,
    port: u16,
    progress: &dyn Progress,
) -> Result<(sam_protocol::NodeInfo, Option<u32>)> {
    let client = NodeClient::new(id, &address(port), None, sam.identity())?;
    match probe(&client).await {
        Found::Ours(info) => {
            progress.step(&format!(
                "Reusing the agent already running on 127.0.0.1:{port}."
            ));
            return Ok((info, None));
        }
        Found::Foreign(why) => return Err(foreign(port, &why)),
        Found::Nothing => {}
    }
    progress.step(&format!("Starting sam-agent on 127.0.0.1:{port}."));
    let pid = spawn(sam, id, port, &super::agent_binary()?).await?;
    Ok((wait_answering(sam, &client, port, pid).await?, Some(pid)))
}

/// Waits (20 s) until our agent, just started as `pid`, answers on the port;
/// fails at once when that process ends.
async fn wait_answering(sam: &Sam, client: &NodeClient, port: u16, pid: u32) -> Result<NodeInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let log = sam.dir().join("logs").join("local-agent.log");
    loop {
        match probe(client).await {
            Found::Ours(info) => return Ok(info),
            Found::Foreign(why) => return Err(foreign(port, &why)),
            Found::Nothing if !alive(pid) => {
                return Err(Error::new(
                    code::PROVIDER,
                    "The local sam-agent stopped right after it started.",
                )
                .hint(format!("Its log is {}.", log.display())));
            }
            Found::Nothing if tokio::time::Instant::now() > deadline => {
                return Err(Error::new(
                    code::UNREACHABLE,
                    "The local sam-agent did not start within 20 s.",
                )
                .hint(format!("Its log is {}.", log.display())));
            }
            Found::Nothing => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Checks that the agent binary at `path` runs here and is `version`.
fn check_runs(path: &Path, version: &str) -> Result<()> {
    let want = format!("sam-agent {version}");
    let bad = |why: String| {
        Error::new(
            code::PROVIDER,
            format!("The new sam-agent {} does not run: {why}.", path.display()),
        )
        .hint("Point SAM_AGENT_BINARY (or put beside sam) a sam-agent built for this machine.")
    };
    let out = std::process::Command::new(path)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|e| bad(e.to_string()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    let said = said.lines().next().unwrap_or_default().trim();
    if !out.status.success() {
        return Err(bad(format!("`--version` failed ({})", out.status)));
    }
    if said != want {
        return Err(bad(format!("`--version` says {said:?}, not {want:?}")));
    }
    Ok(())
}

/// Copies what runs as `pid` (its `/proc/PID/exe`, there even when the file was
/// rebuilt or removed since) to `to`, through a temporary file and a rename (`to`
/// may be the running executable itself).
fn keep_copy(pid: u32, to: &Path) -> std::io::Result<()> {
    let part = to.with_extension("part");
    std::fs::copy(format!("/proc/{pid}/exe"), &part)?;
    std::fs::rename(&part, to)
}

fn foreign(port: u16, why: &str) -> Error {
    Error::new(
        code::NOT_TRUSTED,
        format!("An agent already runs on 127.0.0.1:{port} and does not trust this installation ({why})."),
    )
    .hint(format!(
        "SAM does not stop it for you: stop it yourself (`ss -ltnp 'sport = :{port}'` shows its process), or use another port with SAM_LOCAL_AGENT_PORT."
    ))
}

impl NodeProvider for Local {
    async fn create(&self, sam: &Sam, name: &str, progress: &dyn Progress) -> Result<NodeRecord> {
        let id = node_id(sam);
        let port = port();
        let (info, pid) = ensure_running(sam, &id, port, progress).await?;
        Ok(NodeRecord {
            id,
            name: name.to_string(),
            provider: Provider::Local,
            address: address(port),
            cert_fingerprint: None,
            provider_ids: serde_json::json!({"port": port, "pid": pid}),
            status: NodeStatus::Running,
            health: Some(crate::nodes::Health::Healthy),
            last_seen_at: Some(crate::now()),
            agent_version: Some(info.version.clone()),
            agent_build: info.build.clone(),
            last_event_id: None,
            created_at: crate::now(),
        })
    }

    async fn stop(&self, _sam: &Sam, node: &mut NodeRecord, progress: &dyn Progress) -> Result<()> {
        let port = node
            .provider_ids
            .get("port")
            .and_then(|p| p.as_u64())
            .unwrap_or(DEFAULT_PORT as u64);
        if let Some(pid) = agent_pid(port) {
            progress.step("Stopping the local sam-agent.");
            terminate(pid).await;
        }
        Ok(())
    }

    async fn start(&self, sam: &Sam, node: &mut NodeRecord, progress: &dyn Progress) -> Result<()> {
        let port = node
            .provider_ids
            .get("port")
            .and_then(|p| p.as_u64())
            .unwrap_or(DEFAULT_PORT as u64) as u16;
        let (info, pid) = ensure_running(sam, &node.id, port, progress).await?;
        node.saw_agent(&info);
        if let Some(pid) = pid {
            node.provider_ids["pid"] = serde_json::json!(pid);
        }
        Ok(())
    }

    /// Restarts this computer's agent from `agent`: the running one is copied
    /// aside first (`local-node/sam-agent.previous`, from `/proc/PID/exe`, so even
    /// a binary rebuilt in place since can come back) and started again if the new
    /// one does not come up with `agent.build`.
    async fn upgrade(
        &self,
        sam: &Sam,
        node: &mut NodeRecord,
        agent: &AgentFile,
        progress: &dyn Progress,
    ) -> Result<NodeInfo> {
        use crate::nodes::upgrade::describe;
        let port = node
            .provider_ids
            .get("port")
            .and_then(|p| p.as_u64())
            .unwrap_or(DEFAULT_PORT as u64) as u16;
        let unchanged = "Nothing was changed: the agent keeps running.";
        let checked = agent.path.clone();
        let version = agent.version.clone();
        tokio::task::spawn_blocking(move || check_runs(&checked, &version))
            .await
            .map_err(|e| Error::internal(format!("Checking the new sam-agent failed: {e}")))?
            .map_err(|e| also(e, unchanged))?;
        let client = NodeClient::new(&node.id, &address(port), None, sam.identity())?;
        let previous = dir(sam).join("sam-agent.previous");
        // Without a running agent there is nothing to go back to (and a copy
        // left by an upgrade that was cut short is not one).
        let _ = std::fs::remove_file(&previous);
        if let Some(pid) = agent_pid(port as u64) {
            keep_copy(pid, &previous).map_err(|e| {
                Error::internal(format!(
                    "Cannot keep a copy of the running sam-agent in {}: {e}. {unchanged}",
                    previous.display()
                ))
            })?;
            progress.step(&format!(
                "Stopping the local sam-agent (pid {pid}); terminals and agent sessions stay in their holder processes."
            ));
            terminate(pid).await;
        }
        progress.step(&format!("Starting the new sam-agent on 127.0.0.1:{port}."));
        let started = async {
            let pid = spawn(sam, &node.id, port, &agent.path).await?;
            let info = wait_answering(sam, &client, port, pid).await?;
            if info.build.as_deref() != Some(agent.build.as_str()) {
                return Err(Error::new(
                    code::PROVIDER,
                    format!(
                        "After the restart the local agent reports {}, not {}.",
                        describe(&info.version, info.build.as_deref()),
                        describe(&agent.version, Some(&agent.build))
                    ),
                ));
            }
            Ok((info, pid))
        }
        .await;
        let failed = match started {
            Ok((info, pid)) => {
                node.provider_ids["pid"] = serde_json::json!(pid);
                let _ = std::fs::remove_file(&previous);
                return Ok(info);
            }
            Err(e) => e,
        };
        tracing::warn!(error = %failed.message, "the new local agent did not come up; rolling back");
        if !previous.exists() {
            return Err(failed);
        }
        progress.step("The new agent did not come up; starting the previous one again.");
        if let Some(pid) = agent_pid(port as u64) {
            terminate(pid).await;
        }
        let back = async {
            let pid = spawn(sam, &node.id, port, &previous).await?;
            Ok::<_, Error>((wait_answering(sam, &client, port, pid).await?, pid))
        }
        .await;
        match back {
            Ok((info, pid)) => {
                node.provider_ids["pid"] = serde_json::json!(pid);
                Err(also(
                    failed,
                    &format!(
                        "SAM started the previous sam-agent again: {} runs.",
                        describe(&info.version, info.build.as_deref())
                    ),
                ))
            }
            Err(undo) => Err(also(
                failed,
                &format!(
                    "Starting the previous sam-agent ({}) failed too: {}",
                    previous.display(),
                    undo.message
                ),
            )
            .hint("`sam node start` starts this desktop's agent again.")),
        }
    }

    async fn delete(&self, sam: &Sam, node: &NodeRecord, progress: &dyn Progress) -> Result<()> {
        let mut node = node.clone();
        self.stop(sam, &mut node, progress).await?;
        let dir = dir(sam);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(())
    }
}

/// The pid of the `sam-agent` listening on 127.0.0.1:`port`, from /proc.
#[cfg(target_os = "linux")]
pub fn agent_pid(port: u64) -> Option<u32> {
    // The socket inode listening on the port…
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local = f.get(1)?;
        let (addr, p) = local.split_once(':')?;
        (addr == "0100007F" && u64::from_str_radix(p, 16).ok()? == port && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let needle = format!("socket:[{inode}]");
    // …and the process holding it, if it is a sam-agent.
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle));
        if holds {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("sam-agent") {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(not(target_os = "linux"))]
pub fn agent_pid(_port: u64) -> Option<u32> {
    None
}

/// SIGTERM, then up to 10 s for the agent to leave (it exits 0 within 10 s).
async fn terminate(pid: u32) {
    #[cfg(unix)]
    {
        let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
            return;
        };
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        for _ in 0..200 {
            // A zombie is gone for our purposes.
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}
