//! Terminals: a PTY in a workspace container (a Docker exec with a TTY), its
//! scrollback ring, and any number of viewers (CONTRACT §7, terminal socket).
//!
//! A terminal lives in the registry, not in a socket: closing a socket never ends
//! it; its process exiting, `DELETE`, or its workspace stopping does. One reader
//! task per terminal pushes each output chunk into the ring and onto a broadcast
//! channel under one lock; a viewer subscribes and copies the ring under the same
//! lock, so replay and live output neither overlap nor leave a gap.
//!
//! [`Terminal`] (the exec, the ring, the viewers' broadcast) runs inside a holder
//! process (`crate::holders`), so a terminal outlives the agent. The agent knows
//! each terminal as a [`Held`]: the holder's socket, plus what its control
//! connection last said (size, exit).

pub mod ring;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::ExecConfig;
use bytes::{Bytes, BytesMut};
use sam_protocol::{Terminal as TerminalInfo, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::broadcast;

use crate::docker::{DockerError, Engine, RawStream};
use ring::Ring;

/// Scrollback kept per terminal (the contract asks for at least 1 MiB).
pub const RING_BYTES: usize = 2 << 20;
/// Output chunks a viewer may fall behind before it is disconnected.
const VIEWER_BACKLOG: usize = 256;
/// Once the slowest viewer is this many chunks behind, the reader waits for it
/// (and the process, its PTY full, for the reader): output goes at the pace of
/// the viewers that keep reading, as over ssh, instead of closing a viewer that
/// is merely slower than a flood (a window busy drawing, a slow link).
const PACE_AT: usize = VIEWER_BACKLOG / 2;
/// A viewer that makes no room for this long is stuck, not slow: output goes on
/// without waiting (that viewer then falls behind and is closed with 1013) until
/// the viewers are caught up again.
const PACE_LIMIT: Duration = Duration::from_secs(2);
/// Largest read from the PTY at once.
const READ_CHUNK: usize = 64 * 1024;

/// What viewers receive, in order.
#[derive(Debug, Clone)]
pub enum Output {
    Bytes(Bytes),
    Exit(i32),
}

struct Screen {
    ring: Ring,
    exit: Option<i32>,
}

pub struct Terminal {
    pub id: String,
    pub workspace_id: String,
    pub created_at: Timestamp,
    exec_id: String,
    engine: Engine,
    size: Mutex<(u16, u16)>,
    screen: Mutex<Screen>,
    live: broadcast::Sender<Output>,
    input: tokio::sync::Mutex<WriteHalf<RawStream>>,
}

/// Where and as whom a terminal's process runs.
pub struct Launch {
    pub container: String,
    pub user: Option<String>,
    pub workdir: String,
    pub argv: Vec<String>,
    pub cols: u16,
    pub rows: u16,
}

/// Waits while the slowest viewer is more than [`PACE_AT`] chunks behind, at most
/// [`PACE_LIMIT`]; answers whether a viewer is stuck (then no waiting until the
/// viewers are caught up again). `len()` is what the slowest receiver has not
/// yet seen, so with no viewer (or only quick ones) this never waits.
async fn pace(live: &broadcast::Sender<Output>, stuck: bool) -> bool {
    if live.len() <= PACE_AT {
        return false;
    }
    if stuck {
        return true;
    }
    let deadline = tokio::time::Instant::now() + PACE_LIMIT;
    while live.len() > PACE_AT {
        if tokio::time::Instant::now() >= deadline {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain
    // copies), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Terminal {
    /// Starts the process and its reader task.
    pub async fn start(
        engine: Engine,
        id: String,
        workspace_id: String,
        launch: Launch,
    ) -> Result<Arc<Terminal>, DockerError> {
        let config = ExecConfig {
            cmd: Some(launch.argv),
            user: launch.user,
            working_dir: Some(launch.workdir),
            env: Some(vec![
                "TERM=xterm-256color".into(),
                "COLORTERM=truecolor".into(),
            ]),
            tty: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec_id = engine.create_exec(&launch.container, config).await?;
        let stream = engine.start_exec_raw(&exec_id, true).await?;
        let (mut reader, writer) = tokio::io::split(stream);
        let (live, _) = broadcast::channel(VIEWER_BACKLOG);
        let terminal = Arc::new(Terminal {
            id,
            workspace_id,
            created_at: crate::now(),
            exec_id,
            engine,
            size: Mutex::new((launch.cols, launch.rows)),
            screen: Mutex::new(Screen {
                ring: Ring::new(RING_BYTES),
                exit: None,
            }),
            live,
            input: tokio::sync::Mutex::new(writer),
        });
        if let Err(e) = terminal.resize(launch.cols, launch.rows).await {
            tracing::debug!(terminal = %terminal.id, error = %e, "first resize failed");
        }
        let t = terminal.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let mut stuck = false;
            loop {
                buf.reserve(READ_CHUNK);
                match reader.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let chunk = buf.split().freeze();
                        {
                            let mut screen = lock(&t.screen);
                            screen.ring.push(&chunk);
                            let _ = t.live.send(Output::Bytes(chunk));
                        }
                        stuck = pace(&t.live, stuck).await;
                    }
                }
            }
            let code = t.exit_code().await;
            let mut screen = lock(&t.screen);
            screen.exit = Some(code);
            let _ = t.live.send(Output::Exit(code));
        });
        Ok(terminal)
    }

    /// The exit status once the process is gone: its own, or 128 + signal.
    async fn exit_code(&self) -> i32 {
        for _ in 0..50 {
            match self.engine.inspect_exec(&self.exec_id).await {
                Ok(s) if !s.running => {
                    if s.pid.is_none() {
                        // Never started: Docker's message is the whole output.
                        let output = lock(&self.screen).ring.to_vec();
                        if output.starts_with(crate::exec::DOCKER_START_FAILED) {
                            return crate::exec::start_failure(&output);
                        }
                    }
                    return s.exit_code.map(|c| c as i32).unwrap_or(128 + 9);
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => break,
            }
        }
        128 + 9
    }

    pub fn info(&self) -> TerminalInfo {
        let (cols, rows) = *lock(&self.size);
        let exit = lock(&self.screen).exit;
        TerminalInfo {
            id: self.id.clone(),
            cols,
            rows,
            created_at: self.created_at,
            exited: exit.is_some(),
            exit_code: exit,
        }
    }

    /// The scrollback and a subscription to what follows it, taken atomically.
    pub fn attach(&self) -> (Vec<u8>, Option<i32>, broadcast::Receiver<Output>) {
        let screen = lock(&self.screen);
        let rx = self.live.subscribe();
        (screen.ring.to_vec(), screen.exit, rx)
    }

    pub async fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut input = self.input.lock().await;
        input.write_all(data).await?;
        input.flush().await
    }

    pub async fn resize(&self, cols: u16, rows: u16) -> Result<(), DockerError> {
        *lock(&self.size) = (cols, rows);
        self.engine.resize_exec(&self.exec_id, cols, rows).await
    }

    /// Ends the process: SIGHUP to its process group, SIGKILL if it lingers.
    pub async fn kill(&self) {
        let Ok(state) = self.engine.inspect_exec(&self.exec_id).await else {
            return;
        };
        let Some(pid) = state.pid.filter(|_| state.running) else {
            return;
        };
        let signal = |sig| {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process_group(pid, sig);
                let _ = rustix::process::kill_process(pid, sig);
            }
        };
        signal(rustix::process::Signal::HUP);
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if lock(&self.screen).exit.is_some() {
                return;
            }
        }
        signal(rustix::process::Signal::KILL);
    }
}

/// A terminal as the agent knows it: held by a holder process (see `holders`),
/// reached over its unix socket. A control connection tells the agent when the
/// process exits (or the holder dies); viewers open their own connections.
pub struct Held {
    pub id: String,
    pub workspace_id: String,
    pub created_at: Timestamp,
    socket: std::path::PathBuf,
    state: Mutex<HeldState>,
    control: tokio::sync::mpsc::UnboundedSender<crate::holders::wire::Msg>,
}

struct HeldState {
    cols: u16,
    rows: u16,
    exit: Option<i32>,
}

/// Exit code reported when a holder vanished without telling (SIGHUP).
pub const HOLDER_LOST_EXIT: i32 = 128 + 1;

/// What a viewer connection to a holder gives.
pub type ViewerConn =
    tokio_util::codec::Framed<tokio::net::UnixStream, crate::holders::wire::Codec>;

impl Held {
    /// Connects to a holder's socket and follows it (its control connection).
    /// `on_lost` runs when the holder goes without reporting an exit.
    pub async fn adopt(
        id: String,
        workspace_id: String,
        created_at: Timestamp,
        socket: std::path::PathBuf,
        on_lost: impl FnOnce(String) + Send + 'static,
    ) -> std::io::Result<Arc<Held>> {
        use crate::holders::wire::{Codec, Msg, VERSION};
        use futures::{SinkExt, StreamExt};

        let stream = tokio::net::UnixStream::connect(&socket).await?;
        let mut conn = tokio_util::codec::Framed::new(stream, Codec);
        conn.send(Msg::Hello {
            version: VERSION,
            viewer: false,
        })
        .await?;
        let first = tokio::time::timeout(Duration::from_secs(5), conn.next())
            .await
            .map_err(|_| std::io::Error::other("the holder did not answer"))?;
        let info: crate::holders::Info = match first {
            Some(Ok(Msg::Info(json))) => {
                serde_json::from_slice(&json).map_err(std::io::Error::other)?
            }
            Some(Ok(Msg::Error(e))) => return Err(std::io::Error::other(e)),
            _ => return Err(std::io::Error::other("the holder answered nonsense")),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
        let held = Arc::new(Held {
            id,
            workspace_id,
            created_at,
            socket,
            state: Mutex::new(HeldState {
                cols: info.cols,
                rows: info.rows,
                exit: info.exit_code,
            }),
            control: tx,
        });
        let weak = Arc::downgrade(&held);
        tokio::spawn(async move {
            let mut reported = false;
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(msg) => { if conn.send(msg).await.is_err() { break; } }
                        None => return,
                    },
                    msg = conn.next() => match msg {
                        Some(Ok(Msg::Exit(code))) => {
                            reported = true;
                            if let Some(h) = weak.upgrade() { lock(&h.state).exit = Some(code); }
                        }
                        Some(Ok(Msg::Info(json))) => {
                            if let (Some(h), Ok(i)) = (weak.upgrade(), serde_json::from_slice::<crate::holders::Info>(&json)) {
                                let mut s = lock(&h.state);
                                (s.cols, s.rows) = (i.cols, i.rows);
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                }
            }
            // The holder went. If it never said the process ended, say so.
            if let Some(h) = weak.upgrade() {
                let mut s = lock(&h.state);
                if s.exit.is_none() {
                    s.exit = Some(HOLDER_LOST_EXIT);
                    drop(s);
                    if !reported {
                        on_lost(h.id.clone());
                    }
                }
            }
        });
        Ok(held)
    }

    pub fn info(&self) -> TerminalInfo {
        let s = lock(&self.state);
        TerminalInfo {
            id: self.id.clone(),
            cols: s.cols,
            rows: s.rows,
            created_at: self.created_at,
            exited: s.exit.is_some(),
            exit_code: s.exit,
        }
    }

    /// Opens a viewer connection: scrollback, `Ready`, then live output.
    pub async fn view(&self) -> std::io::Result<ViewerConn> {
        use crate::holders::wire::{Codec, Msg, VERSION};
        use futures::SinkExt;
        let stream = tokio::net::UnixStream::connect(&self.socket).await?;
        let mut conn = tokio_util::codec::Framed::new(stream, Codec);
        conn.send(Msg::Hello {
            version: VERSION,
            viewer: true,
        })
        .await?;
        Ok(conn)
    }

    /// Records a size a viewer set (the holder applies it).
    pub fn note_size(&self, cols: u16, rows: u16) {
        let mut s = lock(&self.state);
        (s.cols, s.rows) = (cols, rows);
    }

    /// Ends the process and lets the holder go.
    pub fn kill_and_release(&self) {
        let _ = self.control.send(crate::holders::wire::Msg::Kill);
        let _ = self.control.send(crate::holders::wire::Msg::Release);
    }

    /// Waits (briefly) until the process has ended.
    pub async fn wait_exit(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while lock(&self.state).exit.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every terminal on the node, by id.
#[derive(Clone, Default)]
pub struct Terminals {
    by_id: Arc<Mutex<HashMap<String, Arc<Held>>>>,
}

impl Terminals {
    pub fn insert(&self, terminal: Arc<Held>) {
        lock(&self.by_id).insert(terminal.id.clone(), terminal);
    }

    pub fn get(&self, workspace: &str, id: &str) -> Option<Arc<Held>> {
        lock(&self.by_id)
            .get(id)
            .filter(|t| t.workspace_id == workspace)
            .cloned()
    }

    pub fn list(&self, workspace: &str) -> Vec<TerminalInfo> {
        let mut list: Vec<TerminalInfo> = lock(&self.by_id)
            .values()
            .filter(|t| t.workspace_id == workspace)
            .map(|t| t.info())
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list
    }

    pub fn remove(&self, workspace: &str, id: &str) -> Option<Arc<Held>> {
        let mut map = lock(&self.by_id);
        if map.get(id).is_some_and(|t| t.workspace_id == workspace) {
            map.remove(id)
        } else {
            None
        }
    }

    pub fn workspaces(&self) -> Vec<(String, String)> {
        lock(&self.by_id)
            .values()
            .map(|t| (t.id.clone(), t.workspace_id.clone()))
            .collect()
    }

    /// A workspace stops, restarts or goes: its terminals end and leave the list.
    pub async fn end_workspace(&self, workspace: &str) {
        let ended: Vec<Arc<Held>> = {
            let mut map = lock(&self.by_id);
            let ids: Vec<String> = map
                .values()
                .filter(|t| t.workspace_id == workspace)
                .map(|t| t.id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for t in &ended {
            t.kill_and_release();
        }
        futures::future::join_all(ended.iter().map(|t| t.wait_exit(Duration::from_secs(2)))).await;
    }
}

/// The login shell of `user` in the container whose first process is `pid`.
pub fn login_shell(pid: u32, user: &str) -> String {
    crate::passwd::lookup(pid, user)
        .map(|u| u.shell)
        .filter(|shell| {
            shell.starts_with('/')
                && std::fs::symlink_metadata(format!("/proc/{pid}/root{shell}")).is_ok()
                && !shell.ends_with("/nologin")
                && !shell.ends_with("/false")
        })
        .unwrap_or_else(|| "/bin/sh".into())
}
