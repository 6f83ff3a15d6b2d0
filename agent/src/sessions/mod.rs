//! Agent sessions (CONTRACT §4–5, §7 "Agent session"), as the agent sees them.
//!
//! Each live session runs in its own holder process (`holders::session`): the ACP
//! client, the conversation (`core`), the attachments. So a crash, restart or
//! upgrade of the agent ends no session; a restarted agent adopts the holders it
//! finds. The agent keeps what must outlive a holder: the sessions' records in
//! SQLite, idempotency keys, limits, and history readable from the data dir.

pub mod acp;
pub mod core;
pub mod history;
pub mod routes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sam_protocol::{
    AgentSession, CreateSession, ErrorCode, EventLevel, EventType, Limits, SESSION_MAX_LABEL_CHARS,
    SessionFrame, SessionFrameBody, SessionStatus, StopReason,
};
use tokio::sync::{RwLock, mpsc};
use tokio_util::codec::Framed;

use crate::config::AgentCommand;
use crate::error::ApiError;
use crate::events::{EventLog, NewEvent};
use crate::holders::session::{AttachRequest, HolderEvent, Refusal, SessionSpec};
use crate::holders::wire::{Codec, Msg, VERSION};
use crate::store::Store;
use crate::workspaces::{EndReason, Workspaces};
use history::{Frame, History};

/// Idempotency keys are honoured for this long.
const IDEMPOTENCY_SECS: i64 = 24 * 60 * 60;
const MAX_ENV_ENTRIES: usize = 64;
const MAX_ENV_BYTES: usize = 32 * 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_live(s: SessionStatus) -> bool {
    matches!(s, SessionStatus::Starting | SessionStatus::Running)
}

/// A session the agent knows: its last known state, and its holder while it has one.
struct Entry {
    info: AgentSession,
    control: Option<mpsc::UnboundedSender<Msg>>,
    /// A stop asked for before the holder was connected (a create still running).
    stop_requested: Option<StopReason>,
    /// Bumped on every state the holder reports.
    version: u64,
    /// Sockets this agent relays to the session: (interactive, watchers). What
    /// `attached` and `watchers` say comes from here, not from the holder, whose
    /// reports travel on another connection and may trail a socket's close.
    relays: (usize, usize),
}

/// An attach the holder accepted: the connection the socket relays to, and the
/// first frame (`session.attached`), already read.
pub struct Attached {
    pub conn: Framed<tokio::net::UnixStream, Codec>,
    pub first: bytes::Bytes,
    /// Counts the socket as attached until dropped.
    pub relay: Relay,
}

/// One socket relayed to a session, counted in its `attached` / `watchers`
/// while this lives.
pub struct Relay {
    sessions: Sessions,
    sid: String,
    watch: bool,
}

impl Relay {
    fn count(&self, delta: isize) {
        if let Some(e) = lock(&self.sessions.inner.by_id).get_mut(&self.sid) {
            let n = if self.watch {
                &mut e.relays.1
            } else {
                &mut e.relays.0
            };
            *n = n.saturating_add_signed(delta);
            e.apply_relays();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.count(-1);
    }
}

impl Entry {
    fn apply_relays(&mut self) {
        self.info.attached = self.relays.0 > 0;
        self.info.watchers = u32::try_from(self.relays.1).unwrap_or(u32::MAX);
    }
}

#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    events: EventLog,
    workspaces: Workspaces,
    agents: BTreeMap<String, AgentCommand>,
    default_agent: String,
    limits: Arc<RwLock<Limits>>,
    node_id: String,
    data_dir: PathBuf,
    history_dir: PathBuf,
    by_id: Mutex<HashMap<String, Entry>>,
    /// Serialises creates: limits and idempotency keys are checked and taken at once.
    create: tokio::sync::Mutex<()>,
}

fn session_not_found(sid: &str) -> ApiError {
    ApiError::new(
        ErrorCode::SessionNotFound,
        format!("There is no agent session {sid:?} in this workspace."),
    )
}

fn session_not_running(sid: &str) -> ApiError {
    ApiError::new(
        ErrorCode::SessionNotRunning,
        format!("The agent session {sid} has stopped."),
    )
}

impl Sessions {
    #[allow(clippy::too_many_arguments)]
    pub async fn load(
        store: Store,
        events: EventLog,
        workspaces: Workspaces,
        agents: BTreeMap<String, AgentCommand>,
        default_agent: String,
        limits: Arc<RwLock<Limits>>,
        node_id: String,
        data_dir: &std::path::Path,
    ) -> Result<Self, crate::store::StoreError> {
        let history_dir = data_dir.join("sessions");
        if let Err(e) = std::fs::create_dir_all(&history_dir) {
            tracing::error!(error = %e, "cannot create the session history folder");
        }
        let this = Sessions {
            inner: Arc::new(Inner {
                store: store.clone(),
                events,
                workspaces,
                agents,
                default_agent,
                limits,
                node_id,
                data_dir: data_dir.to_path_buf(),
                history_dir,
                by_id: Mutex::new(HashMap::new()),
                create: tokio::sync::Mutex::new(()),
            }),
        };
        for info in store.sessions().await? {
            lock(&this.inner.by_id).insert(
                info.id.clone(),
                Entry {
                    info,
                    control: None,
                    stop_requested: None,
                    version: 0,
                    relays: (0, 0),
                },
            );
        }
        this.adopt_holders().await;
        // Live sessions whose holder is gone ended with it.
        let orphans: Vec<AgentSession> = lock(&this.inner.by_id)
            .values()
            .filter(|e| e.control.is_none() && is_live(e.info.status))
            .map(|e| e.info.clone())
            .collect();
        for info in orphans {
            this.lost(
                &info.id,
                "The session's holder process is gone, so the agent process ended with it.",
            )
            .await;
        }
        Ok(this)
    }

    fn history_path(&self, sid: &str) -> PathBuf {
        self.inner.history_dir.join(format!("{sid}.history"))
    }

    /// Adopts every session holder found in the data dir.
    async fn adopt_holders(&self) {
        for found in crate::holders::scan(&self.inner.data_dir) {
            let Ok(meta) = found else { continue };
            if meta.kind != "session" || meta.node != self.inner.node_id {
                continue;
            }
            let known = lock(&self.inner.by_id).contains_key(&meta.id);
            let socket = crate::holders::session::socket_path(&self.inner.data_dir, &meta.id);
            match self.connect_control(&meta.id, &socket).await {
                Ok(tx) if known => {
                    if let Some(e) = lock(&self.inner.by_id).get_mut(&meta.id) {
                        e.control = Some(tx);
                    }
                }
                Ok(tx) => {
                    // A holder for a session this agent has no record of: end it.
                    let _ = tx.send(Msg::Stop(
                        serde_json::to_vec(&StopReason::Error)
                            .unwrap_or_default()
                            .into(),
                    ));
                    let _ = tx.send(Msg::Release);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&socket);
                    let _ = std::fs::remove_file(crate::holders::session::meta_path(
                        &self.inner.data_dir,
                        &meta.id,
                    ));
                    tracing::warn!(session = %meta.id, error = %e, "a session holder could not be adopted");
                }
            }
        }
    }

    /// Opens a holder's control connection and follows it: state changes are
    /// recorded, events logged; if it goes before its session ended, that is said.
    async fn connect_control(
        &self,
        sid: &str,
        socket: &std::path::Path,
    ) -> std::io::Result<mpsc::UnboundedSender<Msg>> {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let mut conn = Framed::new(stream, Codec);
        conn.send(Msg::Hello {
            version: VERSION,
            viewer: false,
        })
        .await?;
        let first = tokio::time::timeout(Duration::from_secs(5), conn.next())
            .await
            .map_err(|_| std::io::Error::other("the session holder did not answer"))?;
        let info: AgentSession = match first {
            Some(Ok(Msg::Info(json))) => {
                serde_json::from_slice(&json).map_err(std::io::Error::other)?
            }
            _ => {
                return Err(std::io::Error::other(
                    "the session holder answered nonsense",
                ));
            }
        };
        self.update(info).await;
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let this = self.clone();
        let sid = sid.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(m) => { if conn.send(m).await.is_err() { break; } }
                        None => return,
                    },
                    msg = conn.next() => match msg {
                        Some(Ok(Msg::Info(json))) => {
                            if let Ok(info) = serde_json::from_slice::<AgentSession>(&json) {
                                let over = !is_live(info.status);
                                this.update(info).await;
                                if over {
                                    let _ = conn.send(Msg::Release).await;
                                }
                            }
                        }
                        Some(Ok(Msg::Event(json))) => {
                            if let Ok(e) = serde_json::from_slice::<HolderEvent>(&json) {
                                this.record(&sid, e).await;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                }
            }
            let live = {
                let mut by_id = lock(&this.inner.by_id);
                match by_id.get_mut(&sid) {
                    Some(e) => {
                        e.control = None;
                        is_live(e.info.status)
                    }
                    None => false,
                }
            };
            if live {
                this.lost(&sid, "The session's holder process ended unexpectedly.")
                    .await;
            }
        });
        Ok(tx)
    }

    /// Records a holder's new state of a session.
    async fn update(&self, info: AgentSession) {
        let info = {
            let mut by_id = lock(&self.inner.by_id);
            match by_id.get_mut(&info.id) {
                Some(e) => {
                    e.info = info;
                    e.apply_relays();
                    e.version += 1;
                    e.info.clone()
                }
                None => return,
            }
        };
        if let Err(e) = self.inner.store.put_session(&info).await {
            tracing::error!(session = %info.id, error = %e, "cannot record a session");
        }
    }

    async fn record(&self, sid: &str, e: HolderEvent) {
        let workspace = lock(&self.inner.by_id)
            .get(sid)
            .map(|e| e.info.workspace_id.clone());
        let mut event = NewEvent::info(e.kind, e.message).level(e.level);
        event.workspace_id = workspace;
        event.session_id = Some(sid.to_string());
        event.detail = e.detail;
        self.inner.events.record(event).await;
    }

    /// A live session whose holder is gone: it ended, and its history says why.
    async fn lost(&self, sid: &str, why: &str) {
        let info = {
            let mut by_id = lock(&self.inner.by_id);
            let Some(e) = by_id.get_mut(sid) else { return };
            if !is_live(e.info.status) {
                return;
            }
            e.info.status = SessionStatus::Error;
            e.info.stop_reason = Some(StopReason::Error);
            e.info.error = Some(why.to_string());
            e.info.stopped_at = Some(crate::now());
            e.info.attached = false;
            e.info.watchers = 0;
            e.info.clone()
        };
        match History::open(self.history_path(sid)) {
            Ok(mut h) => {
                for body in [
                    SessionFrameBody::AgentError {
                        message: why.to_string(),
                    },
                    SessionFrameBody::SessionStopped {
                        reason: StopReason::Error,
                    },
                ] {
                    let seq = h.head() + 1;
                    let json =
                        serde_json::to_string(&SessionFrame { seq, body }).unwrap_or_default();
                    h.append(Frame::new(seq, Arc::from(json)));
                }
            }
            Err(e) => {
                tracing::error!(session = sid, error = %e, "cannot close a session's history")
            }
        }
        if let Err(e) = self.inner.store.put_session(&info).await {
            tracing::error!(session = sid, error = %e, "cannot record a session");
        }
        let mut event = NewEvent::info(
            EventType::SessionStopped,
            format!("Agent session {:?} ended: {why}", info.label),
        )
        .level(EventLevel::Error)
        .workspace(&info.workspace_id);
        event.session_id = Some(sid.to_string());
        event.detail = Some(serde_json::json!({"reason": StopReason::Error}));
        self.inner.events.record(event).await;
    }

    pub fn get(&self, workspace: &str, sid: &str) -> Result<AgentSession, ApiError> {
        lock(&self.inner.by_id)
            .get(sid)
            .filter(|e| e.info.workspace_id == workspace)
            .map(|e| e.info.clone())
            .ok_or_else(|| session_not_found(sid))
    }

    /// The session as its holder has it now (attachments change outside the agent).
    pub async fn get_fresh(&self, workspace: &str, sid: &str) -> Result<AgentSession, ApiError> {
        let asked = {
            let by_id = lock(&self.inner.by_id);
            let e = by_id
                .get(sid)
                .filter(|e| e.info.workspace_id == workspace)
                .ok_or_else(|| session_not_found(sid))?;
            e.control
                .as_ref()
                .filter(|_| is_live(e.info.status))
                .and_then(|c| c.send(Msg::InfoRequest).ok())
                .map(|()| e.version)
        };
        if let Some(before) = asked {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while lock(&self.inner.by_id)
                .get(sid)
                .is_some_and(|e| e.version == before && e.control.is_some())
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        self.get(workspace, sid)
    }

    /// Every session of a workspace, each as its holder has it now.
    pub async fn list_fresh(&self, workspace: &str) -> Vec<AgentSession> {
        let ids: Vec<String> = self.list(workspace).into_iter().map(|s| s.id).collect();
        futures::future::join_all(ids.iter().map(|id| self.get_fresh(workspace, id)))
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn list(&self, workspace: &str) -> Vec<AgentSession> {
        let mut list: Vec<AgentSession> = lock(&self.inner.by_id)
            .values()
            .filter(|e| e.info.workspace_id == workspace)
            .map(|e| e.info.clone())
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list
    }

    /// Sessions `starting` or `running` (what the limit counts, what a stop ends).
    pub fn active(&self, workspace: Option<&str>) -> Vec<AgentSession> {
        lock(&self.inner.by_id)
            .values()
            .filter(|e| workspace.is_none_or(|w| e.info.workspace_id == w))
            .filter(|e| is_live(e.info.status))
            .map(|e| e.info.clone())
            .collect()
    }

    // ---- create ----

    /// Creates a session (`true`), or returns the one an idempotency key already
    /// made (`false`).
    pub async fn create(
        &self,
        workspace: &str,
        req: CreateSession,
        idempotency_key: Option<String>,
    ) -> Result<(AgentSession, bool), ApiError> {
        if let Some(key) = &idempotency_key
            && (key.is_empty() || key.len() > 255 || key.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(
                "Idempotency-Key must be 1 to 255 printable characters",
            ));
        }
        let label = req.label.as_deref().map(str::trim).unwrap_or("");
        if label.chars().count() > SESSION_MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "label must be at most {SESSION_MAX_LABEL_CHARS} characters, without control characters"
            )));
        }
        let (agent, argv) = match (&req.agent, &req.command) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("give agent or command, not both"));
            }
            (None, Some(cmd)) => {
                if cmd.is_empty() || cmd.iter().any(|a| a.contains('\0')) {
                    return Err(ApiError::bad_request(
                        "command must be a non-empty argv without NUL bytes",
                    ));
                }
                (None, cmd.clone())
            }
            (agent, None) => {
                let name = agent
                    .clone()
                    .unwrap_or_else(|| self.inner.default_agent.clone());
                let found = self.inner.agents.get(&name).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "There is no agent {name:?} on this node; it knows {}.",
                        self.inner
                            .agents
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                (Some(name), found.argv.clone())
            }
        };
        let env = req.env.clone().unwrap_or_default();
        crate::extract::validate_env(&env, MAX_ENV_ENTRIES, MAX_ENV_BYTES)?;
        let label = if label.is_empty() {
            agent
                .clone()
                .unwrap_or_else(|| argv[0].rsplit('/').next().unwrap_or("agent").to_string())
        } else {
            label.to_string()
        };

        let target = self.inner.workspaces.exec_target(workspace).await?;
        let (folder, uid, gid) = self.inner.workspaces.project_folder(workspace).await?;

        let guard = self.inner.create.lock().await;
        if let Some(key) = &idempotency_key
            && let Some(sid) = self
                .inner
                .store
                .idempotent_session(workspace, key, IDEMPOTENCY_SECS)
                .await?
            && let Ok(existing) = self.get(workspace, &sid)
        {
            return Ok((existing, false));
        }
        let max = self.inner.limits.read().await.max_sessions_per_workspace;
        let active = self.active(Some(workspace)).len() as u32;
        if active >= max {
            return Err(ApiError::new(
                ErrorCode::SessionLimitReached,
                format!(
                    "This workspace already runs {active} agent sessions, its limit; stop one or raise the limit."
                ),
            ));
        }
        let info = AgentSession {
            id: crate::workspaces::new_id(),
            workspace_id: workspace.to_string(),
            label,
            agent: agent.clone(),
            status: SessionStatus::Starting,
            attached: false,
            watchers: 0,
            created_at: crate::now(),
            stopped_at: None,
            stop_reason: None,
            error: None,
            permission_pending: false,
        };
        self.inner.store.put_session(&info).await?;
        if let Some(key) = &idempotency_key {
            self.inner
                .store
                .put_idempotency_key(workspace, key, &info.id)
                .await?;
        }
        lock(&self.inner.by_id).insert(
            info.id.clone(),
            Entry {
                info: info.clone(),
                control: None,
                stop_requested: None,
                version: 0,
                relays: (0, 0),
            },
        );
        drop(guard);

        let mut event = NewEvent::info(
            EventType::SessionCreated,
            format!(
                "Started agent session {:?} ({}).",
                info.label,
                agent.as_deref().unwrap_or(&argv[0])
            ),
        )
        .workspace(workspace);
        event.session_id = Some(info.id.clone());
        self.inner.events.record(event).await;

        let spec = SessionSpec {
            node: self.inner.node_id.clone(),
            session: info.clone(),
            container: target.container,
            user: target.user,
            workdir: target.workdir,
            argv,
            env,
            folder,
            uid,
            gid,
            history: self.history_path(&info.id),
        };
        let started = match crate::holders::spawn(
            "hold-session",
            &self.inner.data_dir,
            &format!("s-{}", info.id),
            &spec,
        )
        .await
        {
            Ok(()) => {
                let socket = crate::holders::session::socket_path(&self.inner.data_dir, &info.id);
                self.connect_control(&info.id, &socket)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match started {
            Ok(tx) => {
                if let Some(e) = lock(&self.inner.by_id).get_mut(&info.id) {
                    // A stop that came while the holder was starting goes out now.
                    if let Some(reason) = e.stop_requested.take() {
                        let _ = tx.send(Msg::Stop(
                            serde_json::to_vec(&reason).unwrap_or_default().into(),
                        ));
                    }
                    e.control = Some(tx);
                }
            }
            Err(e) => {
                self.lost(&info.id, &format!("The session could not be started: {e}"))
                    .await
            }
        }
        Ok((self.get(workspace, &info.id).unwrap_or(info), true))
    }

    /// Asks a session's holder to end it and waits (briefly) until it has.
    async fn end(&self, sid: &str, reason: StopReason) {
        {
            let mut by_id = lock(&self.inner.by_id);
            let Some(e) = by_id.get_mut(sid) else { return };
            if !is_live(e.info.status) {
                return;
            }
            match &e.control {
                Some(control) => {
                    let _ = control.send(Msg::Stop(
                        serde_json::to_vec(&reason).unwrap_or_default().into(),
                    ));
                }
                // Its holder is still starting: the stop goes out once it answers.
                None => {
                    e.stop_requested.get_or_insert(reason);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let live = lock(&self.inner.by_id)
                .get(sid)
                .is_some_and(|e| is_live(e.info.status));
            if !live || tokio::time::Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(&self, workspace: &str, sid: &str) -> Result<AgentSession, ApiError> {
        self.get(workspace, sid)?;
        self.end(sid, StopReason::UserStop).await;
        self.get(workspace, sid)
    }

    /// A workspace stops, restarts or goes (or the node stops): its sessions end.
    pub async fn end_workspace(&self, workspace: &str, why: EndReason) {
        let reason = match why {
            EndReason::Stop | EndReason::Delete => StopReason::WorkspaceStop,
            EndReason::Restart => StopReason::WorkspaceRestart,
            EndReason::NodeStop => StopReason::NodeStop,
        };
        let ids: Vec<String> = lock(&self.inner.by_id)
            .values()
            .filter(|e| e.info.workspace_id == workspace)
            .map(|e| e.info.id.clone())
            .collect();
        futures::future::join_all(ids.iter().map(|id| self.end(id, reason))).await;
        if why == EndReason::Delete {
            {
                let mut by_id = lock(&self.inner.by_id);
                for id in &ids {
                    by_id.remove(id);
                    let _ = std::fs::remove_file(self.history_path(id));
                }
            }
            if let Err(e) = self.inner.store.delete_sessions_of(workspace).await {
                tracing::error!(workspace, error = %e, "cannot forget a deleted workspace's sessions");
            }
        }
    }

    // ---- attaching ----

    /// Claims an attachment from the session's holder (before the socket is
    /// upgraded, so refusals are HTTP answers).
    pub async fn claim(
        &self,
        workspace: &str,
        sid: &str,
        takeover: bool,
        watch: bool,
        since: u64,
    ) -> Result<Attached, ApiError> {
        let info = self.get(workspace, sid)?;
        if !is_live(info.status) {
            return Err(session_not_running(sid));
        }
        let socket = crate::holders::session::socket_path(&self.inner.data_dir, sid);
        let gone = |_| session_not_running(sid);
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(gone)?;
        let mut conn = Framed::new(stream, Codec);
        let request = AttachRequest {
            takeover,
            watch,
            since,
        };
        conn.send(Msg::Hello {
            version: VERSION,
            viewer: true,
        })
        .await
        .map_err(gone)?;
        conn.send(Msg::Attach(
            serde_json::to_vec(&request).unwrap_or_default().into(),
        ))
        .await
        .map_err(gone)?;
        // The holder answers a refusal, or the attached frame.
        match tokio::time::timeout(Duration::from_secs(10), conn.next()).await {
            Ok(Some(Ok(Msg::Refused(json)))) => {
                let r: Refusal = serde_json::from_slice(&json).map_err(ApiError::internal)?;
                Err(ApiError::new(r.code, r.message))
            }
            Ok(Some(Ok(Msg::Frame(first)))) => {
                let relay = Relay {
                    sessions: self.clone(),
                    sid: sid.to_string(),
                    watch,
                };
                relay.count(1);
                Ok(Attached { conn, first, relay })
            }
            _ => Err(session_not_running(sid)),
        }
    }

    pub fn history(
        &self,
        workspace: &str,
        sid: &str,
        since: u64,
        limit: usize,
    ) -> Result<(Vec<Frame>, bool), ApiError> {
        self.get(workspace, sid)?;
        let mut frames =
            history::read_frames(&self.history_path(sid), since).map_err(ApiError::internal)?;
        let more = frames.len() > limit;
        frames.truncate(limit);
        Ok((frames, more))
    }

    /// Answers for `GET …/history`, as raw JSON (frames are already serialised).
    pub fn history_json(frames: &[Frame], more: bool) -> String {
        let mut out = String::from("{\"frames\":[");
        for (i, f) in frames.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&f.json);
        }
        out.push_str("],\"more\":");
        out.push_str(if more { "true" } else { "false" });
        out.push('}');
        out
    }
}
