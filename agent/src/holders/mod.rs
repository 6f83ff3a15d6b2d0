//! Holders: small processes of the agent's own binary (`sam-agent hold-terminal`)
//! that own what a person cares about — a terminal's PTY (the Docker exec
//! stream) and its scrollback — and outlive `sam-agent`: a crash, a restart or an
//! upgrade of the agent ends none of them. Docker cannot re-attach to an exec's
//! streams, so the process holding the stream must be one that stays.
//!
//! Each holder serves one unix socket in `<data dir>/holders/`, beside a meta file
//! (JSON) naming its node, workspace and id; a restarted agent finds them there
//! and adopts them (`scan`). A holder goes when its terminal has exited and either
//! the agent released it or its container is no longer running — so none outlives
//! its workspace, even when no agent comes back.

pub mod session;
pub mod terminal;
pub mod wire;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What a holder is asked to hold (sent on its stdin, so nothing of it shows in a
/// process list).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalSpec {
    pub node: String,
    pub workspace: String,
    pub id: String,
    pub container: String,
    pub user: Option<String>,
    pub workdir: String,
    pub argv: Vec<String>,
    pub cols: u16,
    pub rows: u16,
}

/// The meta file beside a holder's socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub version: u8,
    pub kind: String,
    pub node: String,
    pub workspace: String,
    pub id: String,
    pub container: String,
    pub created_at: sam_protocol::Timestamp,
    pub pid: u32,
}

/// What a holder answers to `InfoRequest` (and sends first on a control connection).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub cols: u16,
    pub rows: u16,
    pub exit_code: Option<i32>,
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("holders")
}

pub fn socket_path(data_dir: &Path, id: &str) -> PathBuf {
    dir(data_dir).join(format!("t-{id}.sock"))
}

pub fn meta_path(data_dir: &Path, id: &str) -> PathBuf {
    dir(data_dir).join(format!("t-{id}.json"))
}

#[derive(Debug, thiserror::Error)]
pub enum HolderError {
    #[error("cannot start a holder process: {0}")]
    Spawn(std::io::Error),
    #[error("{0}")]
    Failed(String),
}

/// Starts a holder for `spec` and waits until it serves its socket.
pub async fn spawn_terminal(data_dir: &Path, spec: &TerminalSpec) -> Result<(), HolderError> {
    spawn("hold-terminal", data_dir, &format!("t-{}", spec.id), spec).await
}

/// Starts `sam-agent SUBCOMMAND --data-dir DIR` detached, hands it `spec` on its
/// stdin (nothing of it shows in a process list) and waits for its "ready" line.
/// Its stderr goes to `holders/NAME.log`.
pub async fn spawn(
    subcommand: &str,
    data_dir: &Path,
    name: &str,
    spec: &impl Serialize,
) -> Result<(), HolderError> {
    let holders = dir(data_dir);
    std::fs::create_dir_all(&holders).map_err(HolderError::Spawn)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(holders.join(format!("{name}.log")))
        .map_err(HolderError::Spawn)?;
    // This very binary, even when an upgrade has just renamed another one over
    // its path (then `current_exe()` names a file that is gone): the kernel
    // keeps the running image reachable as /proc/self/exe.
    let exe = Path::new("/proc/self/exe");
    let exe = if exe.exists() {
        exe.to_path_buf()
    } else {
        std::env::current_exe().map_err(HolderError::Spawn)?
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg0("sam-agent")
        .arg(subcommand)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // Its own session: it outlives the agent and the agent's terminal.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(HolderError::Spawn)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| HolderError::Failed("no stdin".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| HolderError::Failed("no stdout".into()))?;
    let spec_json = serde_json::to_vec(spec).map_err(|e| HolderError::Failed(e.to_string()))?;
    stdin
        .write_all(&spec_json)
        .await
        .map_err(HolderError::Spawn)?;
    stdin.write_all(b"\n").await.map_err(HolderError::Spawn)?;
    drop(stdin);
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    // Reap it whenever it ends (it normally outlives this agent).
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    match first {
        Ok(Ok(Some(line))) if line == "ready" => Ok(()),
        Ok(Ok(Some(line))) => Err(HolderError::Failed(
            line.trim_start_matches("error: ").to_string(),
        )),
        Ok(_) => Err(HolderError::Failed(
            "the holder ended before it was ready".into(),
        )),
        Err(_) => Err(HolderError::Failed(
            "the holder did not start within 30 s".into(),
        )),
    }
}

/// The holders' meta files in the data dir (unreadable ones as errors, for events).
pub fn scan(data_dir: &Path) -> Vec<Result<Meta, (PathBuf, String)>> {
    let Ok(entries) = std::fs::read_dir(dir(data_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Meta>(&b).map_err(|e| e.to_string()))
                .map_err(|e| (p.clone(), e))
        })
        .collect()
}

/// Removes a holder's files (its socket, meta and log).
pub fn remove_files(data_dir: &Path, id: &str) {
    let _ = std::fs::remove_file(socket_path(data_dir, id));
    let _ = std::fs::remove_file(meta_path(data_dir, id));
    let _ = std::fs::remove_file(dir(data_dir).join(format!("t-{id}.log")));
}

/// Starts holders for new terminals and adopts the ones a previous agent left.
#[derive(Clone)]
pub struct TerminalHost {
    pub data_dir: PathBuf,
    pub node_id: String,
    pub events: crate::events::EventLog,
}

impl TerminalHost {
    fn on_lost(&self, workspace: String) -> impl FnOnce(String) + Send + 'static {
        let events = self.events.clone();
        move |id| {
            tokio::spawn(async move {
                let mut e = crate::events::NewEvent::info(
                    sam_protocol::EventType::Other("terminal.lost".into()),
                    format!("Terminal {id} ended: its holder process stopped unexpectedly."),
                )
                .level(sam_protocol::EventLevel::Warn)
                .workspace(&workspace);
                e.detail = Some(serde_json::json!({"terminal": id}));
                events.record(e).await;
            });
        }
    }

    /// Starts a holder for `spec` and connects to it.
    pub async fn start(
        &self,
        spec: &TerminalSpec,
    ) -> Result<std::sync::Arc<crate::terminals::Held>, HolderError> {
        spawn_terminal(&self.data_dir, spec).await?;
        crate::terminals::Held::adopt(
            spec.id.clone(),
            spec.workspace.clone(),
            crate::now(),
            socket_path(&self.data_dir, &spec.id),
            self.on_lost(spec.workspace.clone()),
        )
        .await
        .map_err(|e| HolderError::Failed(format!("the terminal's holder does not answer: {e}")))
    }

    /// Adopts the holders found in the data dir. Holders of workspaces `known`
    /// does not hold are ended; unreadable or unreachable ones are cleaned away;
    /// each case leaves an event.
    pub async fn recover(
        &self,
        terminals: &crate::terminals::Terminals,
        known: impl Fn(&str) -> bool,
    ) {
        use crate::events::NewEvent;
        use sam_protocol::{EventLevel, EventType};
        for found in scan(&self.data_dir) {
            let meta = match found {
                Ok(m) if m.kind != "terminal" => continue,
                Ok(m) => m,
                Err((path, why)) => {
                    let _ = std::fs::remove_file(&path);
                    self.events
                        .record(
                            NewEvent::info(
                                EventType::Other("terminal.lost".into()),
                                format!("A terminal holder's record {} could not be read ({why}); it was removed.", path.display()),
                            )
                            .level(EventLevel::Warn),
                        )
                        .await;
                    continue;
                }
            };
            if meta.node != self.node_id {
                self.events
                    .record(
                        NewEvent::info(
                            EventType::Other("terminal.lost".into()),
                            format!(
                                "Terminal {} belongs to node {:?}, not this one; it was left alone.",
                                meta.id, meta.node
                            ),
                        )
                        .level(EventLevel::Warn),
                    )
                    .await;
                continue;
            }
            let socket = socket_path(&self.data_dir, &meta.id);
            let adopted = crate::terminals::Held::adopt(
                meta.id.clone(),
                meta.workspace.clone(),
                meta.created_at,
                socket,
                self.on_lost(meta.workspace.clone()),
            )
            .await;
            match adopted {
                Ok(held) if known(&meta.workspace) => terminals.insert(held),
                Ok(held) => {
                    // A workspace this agent does not have: end it.
                    held.kill_and_release();
                }
                Err(e) => {
                    remove_files(&self.data_dir, &meta.id);
                    self.events
                        .record(
                            NewEvent::info(
                                EventType::Other("terminal.lost".into()),
                                format!(
                                    "Terminal {} could not be recovered: its holder is gone ({e}).",
                                    meta.id
                                ),
                            )
                            .level(EventLevel::Warn)
                            .workspace(&meta.workspace),
                        )
                        .await;
                }
            }
        }
    }
}
