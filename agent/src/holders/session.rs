//! The holder process of one agent session (`sam-agent hold-session`): runs the
//! ACP client host and the session's conversation (`sessions::core`) and serves
//! its unix socket to the agent — a control connection (state changes, events,
//! stop) and one connection per attached socket (the frames, verbatim).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sam_protocol::{
    AgentSession, EventLevel, EventType, SessionFrameBody, SessionStatus, StopReason,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::Framed;

use super::wire::{Codec, Msg, VERSION};
use crate::docker::{ContainerState, Engine};
use crate::sessions::acp;
use crate::sessions::core::{AttachMode, Session, Sink, lock};

/// Events kept while no agent listens.
const EVENT_QUEUE: usize = 1000;

/// What a session holder is asked to run (on stdin: it carries the agent's
/// credentials, which never go on a command line).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    pub node: String,
    pub session: AgentSession,
    pub container: String,
    pub user: Option<String>,
    pub workdir: String,
    pub argv: Vec<String>,
    pub env: std::collections::BTreeMap<String, String>,
    pub folder: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub history: PathBuf,
}

/// An event for the agent to record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolderEvent {
    pub kind: EventType,
    pub level: EventLevel,
    pub message: String,
    pub detail: Option<Value>,
}

/// Attach parameters sent by the agent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AttachRequest {
    pub takeover: bool,
    pub watch: bool,
    pub since: u64,
}

/// Why an attach was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    pub code: sam_protocol::ErrorCode,
    pub message: String,
}

pub fn socket_path(data_dir: &Path, id: &str) -> PathBuf {
    super::dir(data_dir).join(format!("s-{id}.sock"))
}

pub fn meta_path(data_dir: &Path, id: &str) -> PathBuf {
    super::dir(data_dir).join(format!("s-{id}.json"))
}

/// Forwards state changes and events to whichever agent is connected; keeps
/// them while none is.
#[derive(Default)]
struct Outbox {
    queue: Mutex<VecDeque<Msg>>,
    ready: Notify,
}

impl Outbox {
    fn put(&self, msg: Msg) {
        let mut q = lock(&self.queue);
        if q.len() >= EVENT_QUEUE {
            q.pop_front();
        }
        q.push_back(msg);
        drop(q);
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<Msg> {
        lock(&self.queue).drain(..).collect()
    }
}

impl Sink for Outbox {
    fn changed(&self, info: AgentSession) {
        self.put(Msg::Info(
            serde_json::to_vec(&info).unwrap_or_default().into(),
        ));
    }

    fn event(&self, kind: EventType, level: EventLevel, message: String, detail: Option<Value>) {
        let e = HolderEvent {
            kind,
            level,
            message,
            detail,
        };
        self.put(Msg::Event(
            serde_json::to_vec(&e).unwrap_or_default().into(),
        ));
    }
}

/// Entry point of `sam-agent hold-session --data-dir DIR` (spec on stdin).
pub async fn main(data_dir: PathBuf) -> ExitCode {
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    if stdin.read_line(&mut line).await.is_err() {
        println!("error: no session spec on stdin");
        return ExitCode::FAILURE;
    }
    let spec: SessionSpec = match serde_json::from_str(&line) {
        Ok(s) => s,
        Err(e) => {
            println!("error: the session spec is not valid: {e}");
            return ExitCode::FAILURE;
        }
    };
    drop(line);
    match run(&data_dir, spec).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(data_dir: &Path, spec: SessionSpec) -> Result<(), String> {
    let outbox = Arc::new(Outbox::default());
    let session = Session::new(&spec.session, spec.history.clone(), outbox.clone())
        .map_err(|e| format!("cannot open the session history: {e}"))?;
    let sock = socket_path(data_dir, &spec.session.id);
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).map_err(|e| format!("cannot serve {}: {e}", sock.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600));
    }
    let meta = super::Meta {
        version: VERSION,
        kind: "session".into(),
        node: spec.node.clone(),
        workspace: spec.session.workspace_id.clone(),
        id: spec.session.id.clone(),
        container: spec.container.clone(),
        created_at: spec.session.created_at,
        pid: std::process::id(),
    };
    let meta_file = meta_path(data_dir, &spec.session.id);
    let tmp = meta_file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&meta).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &meta_file))
        .map_err(|e| format!("cannot write {}: {e}", meta_file.display()))?;

    let engine = Engine::new();
    let (to_acp, from_acp) = acp::start(acp::Launch {
        engine: engine.clone(),
        container: spec.container.clone(),
        user: spec.user.clone(),
        workdir: spec.workdir.clone(),
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        folder: spec.folder.clone(),
        uid: spec.uid,
        gid: spec.gid,
    });
    tokio::spawn(session.clone().run(to_acp, from_acp));
    println!("ready");

    let released = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let (s, o, r, w) = (session.clone(), outbox.clone(), released.clone(), wake.clone());
                    tokio::spawn(async move { serve(s, o, stream, r, w).await });
                }
            }
            _ = tick.tick() => {}
            _ = wake.notified() => {}
        }
        if session.is_over() {
            let gone = released.load(Ordering::SeqCst)
                || !matches!(
                    engine.container_state(&spec.container).await,
                    Ok(ContainerState::Running)
                );
            if gone {
                // Let attached sockets see the end before the socket goes.
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&meta_file);
    Ok(())
}

fn info_msg(session: &Session) -> Msg {
    Msg::Info(
        serde_json::to_vec(&session.info())
            .unwrap_or_default()
            .into(),
    )
}

async fn serve(
    session: Arc<Session>,
    outbox: Arc<Outbox>,
    stream: UnixStream,
    released: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let mut conn = Framed::new(stream, Codec);
    let viewer = match conn.next().await {
        Some(Ok(Msg::Hello { version, viewer })) if version == VERSION => viewer,
        Some(Ok(Msg::Hello { version, .. })) => {
            let _ = conn
                .send(Msg::Error(format!(
                    "holder speaks version {VERSION}, not {version}"
                )))
                .await;
            return;
        }
        _ => return,
    };
    if viewer {
        attach(session, conn).await;
        return;
    }
    // Control: state now, then changes and events as they come.
    if conn.send(info_msg(&session)).await.is_err() {
        return;
    }
    loop {
        for msg in outbox.take() {
            if conn.send(msg).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = outbox.ready.notified() => {}
            incoming = conn.next() => match incoming {
                Some(Ok(Msg::Stop(json))) => {
                    let reason: StopReason = serde_json::from_slice(&json).unwrap_or(StopReason::UserStop);
                    session.finish(SessionStatus::Stopped, reason, None);
                    wake.notify_one();
                }
                Some(Ok(Msg::InfoRequest)) => {
                    if conn.send(info_msg(&session)).await.is_err() { return; }
                }
                Some(Ok(Msg::Release)) => {
                    released.store(true, Ordering::SeqCst);
                    wake.notify_one();
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

/// One attached session socket, relayed by the agent: claim, replay, live frames,
/// client frames (CONTRACT §7).
async fn attach(session: Arc<Session>, mut conn: Framed<UnixStream, Codec>) {
    let request: AttachRequest = match conn.next().await {
        Some(Ok(Msg::Attach(json))) => match serde_json::from_slice(&json) {
            Ok(r) => r,
            Err(_) => return,
        },
        _ => return,
    };
    let mode = AttachMode {
        takeover: request.takeover,
        watch: request.watch,
    };
    let mut ticket = match session.claim(mode) {
        Ok(t) => t,
        Err((code, message)) => {
            let refusal = Refusal { code, message };
            let _ = conn
                .send(Msg::Refused(
                    serde_json::to_vec(&refusal).unwrap_or_default().into(),
                ))
                .await;
            return;
        }
    };
    let text = |s: String| Msg::Frame(Bytes::from(s));
    let (mut live, replay, head) = session.subscribe_since(request.since);
    let attached = session.socket_frame(SessionFrameBody::Attached {
        session_id: session.id.clone(),
        takeover: mode.takeover,
        watch: mode.watch,
    });
    if conn.send(text(attached)).await.is_err() {
        return;
    }
    // A `since` at or above the head replays nothing; live frames follow all the same.
    let mut last = request.since.min(head);
    let frames = match replay {
        Ok(f) => f,
        Err(_) => {
            let _ = conn.send(Msg::Close(1011)).await;
            return;
        }
    };
    for f in frames {
        if conn
            .feed(Msg::Frame(Bytes::copy_from_slice(f.json.as_bytes())))
            .await
            .is_err()
        {
            return;
        }
        last = f.seq;
        if f.is_stop {
            let _ = conn.send(Msg::Close(1000)).await;
            return;
        }
    }
    if conn.flush().await.is_err() {
        return;
    }
    let mut kicked = ticket.kicked.take();
    loop {
        tokio::select! {
            _ = async { match kicked.as_mut() { Some(rx) => { let _ = rx.await; } None => std::future::pending().await } } => {
                let detached = session.socket_frame(SessionFrameBody::Detached { reason: "takeover".into() });
                let _ = conn.send(text(detached)).await;
                let _ = conn.send(Msg::Close(sam_protocol::CLOSE_CODE_TAKEN_OVER)).await;
                return;
            }
            frame = live.recv() => match frame {
                Ok(f) => {
                    if f.seq <= last { continue; }
                    if conn.send(Msg::Frame(Bytes::copy_from_slice(f.json.as_bytes()))).await.is_err() { return; }
                    last = f.seq;
                    if f.is_stop {
                        let _ = conn.send(Msg::Close(1000)).await;
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let Ok(frames) = session.history_since(last) else {
                        let _ = conn.send(Msg::Close(1011)).await;
                        return;
                    };
                    for f in frames {
                        if conn.send(Msg::Frame(Bytes::copy_from_slice(f.json.as_bytes()))).await.is_err() { return; }
                        last = f.seq;
                        if f.is_stop {
                            let _ = conn.send(Msg::Close(1000)).await;
                            return;
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = conn.next() => match incoming {
                Some(Ok(Msg::Client(json))) => {
                    let reply = if mode.watch {
                        Err("a watcher cannot send frames; attach without watch=true to take part".to_string())
                    } else if json.first() == Some(&0) {
                        Err("session frames are JSON text".to_string())
                    } else {
                        match serde_json::from_slice::<sam_protocol::SessionClientFrame>(&json) {
                            Ok(frame) => session.client_frame(frame),
                            Err(e) => Err(format!("not a session frame: {e}")),
                        }
                    };
                    if let Err(message) = reply {
                        let error = session.socket_frame(SessionFrameBody::Error { message });
                        if conn.send(text(error)).await.is_err() { return; }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}
