//! Agent sessions (CONTRACT §4–5, §7 "Agent session"): the registry, each
//! session's conversation (`seq`, history, prompt queue, open permission
//! requests) and its attachments (one interactive, any number of watchers).
//!
//! A session's state lives behind one lock. Every conversation frame is made under
//! it (next `seq`, appended to history, broadcast), and an attach subscribes and
//! copies history under it, so replay and live frames neither overlap nor leave a
//! gap. Claiming the interactive slot also happens under it, before the socket is
//! upgraded: of two racing attaches exactly one wins, and stop-versus-attach ends
//! one of the contract's two ways — stop first (`409 session_not_running`), or
//! attach first (the socket gets `session.stopped`, then close 1000).
//!
//! The agent process and the protocol live in [`acp`], behind commands and events.

pub mod acp;
pub mod history;
pub mod routes;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sam_protocol::{
    AgentSession, CreateSession, ErrorCode, EventLevel, EventType, Limits, Prompt, RequestId,
    SESSION_MAX_LABEL_CHARS, SessionFrame, SessionFrameBody, SessionStatus, StopReason, Timestamp,
};
use serde_json::{Value, json};
use tokio::sync::{RwLock, broadcast, mpsc, oneshot};

use crate::config::AgentCommand;
use crate::docker::Engine;
use crate::error::ApiError;
use crate::events::{EventLog, NewEvent};
use crate::store::Store;
use crate::workspaces::{EndReason, Workspaces};
use acp::{FromAcp, ToAcp};
use history::{Frame, History};

/// Idempotency keys are honoured for this long.
const IDEMPOTENCY_SECS: i64 = 24 * 60 * 60;
const MAX_ENV_ENTRIES: usize = 64;
const MAX_ENV_BYTES: usize = 32 * 1024;
/// Live frames a socket may fall behind before it catches up from history.
const LIVE_BACKLOG: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Session {
    pub id: String,
    pub workspace_id: String,
    pub label: String,
    pub agent: Option<String>,
    pub created_at: Timestamp,
    state: Mutex<State>,
    live: broadcast::Sender<Frame>,
    to_acp: Mutex<Option<mpsc::UnboundedSender<ToAcp>>>,
}

struct State {
    status: SessionStatus,
    stop_reason: Option<StopReason>,
    error: Option<String>,
    stopped_at: Option<Timestamp>,
    history: History,
    interactive: Option<(u64, oneshot::Sender<()>)>,
    watchers: u32,
    next_attach: u64,
    queue: VecDeque<Prompt>,
    turn: bool,
    /// Open permission requests: key → the option ids offered.
    pending: BTreeMap<u64, Vec<String>>,
}

impl State {
    fn is_over(&self) -> bool {
        matches!(self.status, SessionStatus::Stopped | SessionStatus::Error)
    }
}

impl Session {
    pub fn info(&self) -> AgentSession {
        let s = lock(&self.state);
        AgentSession {
            id: self.id.clone(),
            workspace_id: self.workspace_id.clone(),
            label: self.label.clone(),
            agent: self.agent.clone(),
            status: s.status,
            attached: s.interactive.is_some(),
            watchers: s.watchers,
            created_at: self.created_at,
            stopped_at: s.stopped_at,
            stop_reason: s.stop_reason,
            error: s.error.clone(),
        }
    }

    /// Makes the next conversation frame (under the state lock).
    fn push(&self, state: &mut State, body: SessionFrameBody) -> Frame {
        let seq = state.history.head() + 1;
        let json = serde_json::to_string(&SessionFrame { seq, body }).unwrap_or_default();
        let frame = Frame::new(seq, Arc::from(json));
        state.history.append(frame.clone());
        let _ = self.live.send(frame.clone());
        frame
    }

    /// A frame about one socket: carries the head `seq`, is not kept.
    fn socket_frame(&self, body: SessionFrameBody) -> String {
        let seq = lock(&self.state).history.head();
        serde_json::to_string(&SessionFrame { seq, body }).unwrap_or_default()
    }

    fn send_acp(&self, cmd: ToAcp) {
        if let Some(tx) = lock(&self.to_acp).as_ref() {
            let _ = tx.send(cmd);
        }
    }

    /// Sends the next queued prompt when the agent is free.
    fn drive(&self) {
        let mut s = lock(&self.state);
        if s.status != SessionStatus::Running || s.turn {
            return;
        }
        let Some(prompt) = s.queue.pop_front() else {
            return;
        };
        s.turn = true;
        let blocks = match (&prompt.content, &prompt.text) {
            (Some(content), _) => content.clone(),
            (None, Some(text)) => vec![json!({"type": "text", "text": text})],
            (None, None) => Vec::new(),
        };
        self.push(&mut s, SessionFrameBody::UserPrompt(prompt));
        drop(s);
        self.send_acp(ToAcp::Prompt(blocks));
    }
}

/// How a socket attaches.
#[derive(Debug, Clone, Copy)]
pub struct AttachMode {
    pub takeover: bool,
    pub watch: bool,
}

/// A claimed attachment; dropping it releases the claim (also when the upgrade
/// never completes).
pub struct Ticket {
    pub session: Arc<Session>,
    pub mode: AttachMode,
    attach_id: u64,
    pub kicked: Option<oneshot::Receiver<()>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = lock(&self.session.state);
        if self.mode.watch {
            s.watchers = s.watchers.saturating_sub(1);
        } else if s
            .interactive
            .as_ref()
            .is_some_and(|(id, _)| *id == self.attach_id)
        {
            s.interactive = None;
        }
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
    engine: Engine,
    agents: BTreeMap<String, AgentCommand>,
    default_agent: String,
    limits: Arc<RwLock<Limits>>,
    history_dir: PathBuf,
    by_id: Mutex<HashMap<String, Arc<Session>>>,
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
        engine: Engine,
        agents: BTreeMap<String, AgentCommand>,
        default_agent: String,
        limits: Arc<RwLock<Limits>>,
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
                engine,
                agents,
                default_agent,
                limits,
                history_dir,
                by_id: Mutex::new(HashMap::new()),
                create: tokio::sync::Mutex::new(()),
            }),
        };
        // Sessions end with the agent process that hosted them (until holders keep
        // them alive across a restart); their history stays readable.
        for mut info in store.sessions().await? {
            let was_live = matches!(
                info.status,
                SessionStatus::Starting | SessionStatus::Running
            );
            if was_live {
                info.status = SessionStatus::Error;
                info.stop_reason = Some(StopReason::Error);
                info.error =
                    Some("sam-agent restarted, and the agent process ended with it.".into());
                info.stopped_at = Some(crate::now());
                store.put_session(&info).await?;
            }
            let session = this.make(&info);
            if was_live {
                let mut s = lock(&session.state);
                let message = info.error.clone().unwrap_or_default();
                session.push(&mut s, SessionFrameBody::AgentError { message });
                session.push(
                    &mut s,
                    SessionFrameBody::SessionStopped {
                        reason: StopReason::Error,
                    },
                );
                s.history.close();
            }
            lock(&this.inner.by_id).insert(info.id.clone(), session);
        }
        Ok(this)
    }

    fn history_path(&self, sid: &str) -> PathBuf {
        self.inner.history_dir.join(format!("{sid}.history"))
    }

    fn make(&self, info: &AgentSession) -> Arc<Session> {
        let history = History::open(self.history_path(&info.id)).unwrap_or_else(|e| {
            tracing::error!(session = %info.id, error = %e, "cannot read session history");
            History::open(PathBuf::from("/dev/null")).expect("an empty history")
        });
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        Arc::new(Session {
            id: info.id.clone(),
            workspace_id: info.workspace_id.clone(),
            label: info.label.clone(),
            agent: info.agent.clone(),
            created_at: info.created_at,
            state: Mutex::new(State {
                status: info.status,
                stop_reason: info.stop_reason,
                error: info.error.clone(),
                stopped_at: info.stopped_at,
                history,
                interactive: None,
                watchers: 0,
                next_attach: 1,
                queue: VecDeque::new(),
                turn: false,
                pending: BTreeMap::new(),
            }),
            live,
            to_acp: Mutex::new(None),
        })
    }

    pub fn get(&self, workspace: &str, sid: &str) -> Result<Arc<Session>, ApiError> {
        lock(&self.inner.by_id)
            .get(sid)
            .filter(|s| s.workspace_id == workspace)
            .cloned()
            .ok_or_else(|| session_not_found(sid))
    }

    pub fn list(&self, workspace: &str) -> Vec<AgentSession> {
        let mut list: Vec<AgentSession> = lock(&self.inner.by_id)
            .values()
            .filter(|s| s.workspace_id == workspace)
            .map(|s| s.info())
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list
    }

    /// Sessions `starting` or `running` (what the limit counts, what a stop ends).
    pub fn active(&self, workspace: Option<&str>) -> Vec<AgentSession> {
        lock(&self.inner.by_id)
            .values()
            .filter(|s| workspace.is_none_or(|w| s.workspace_id == w))
            .map(|s| s.info())
            .filter(|i| matches!(i.status, SessionStatus::Starting | SessionStatus::Running))
            .collect()
    }

    async fn persist(&self, session: &Session) {
        if let Err(e) = self.inner.store.put_session(&session.info()).await {
            tracing::error!(session = %session.id, error = %e, "cannot record a session");
        }
    }

    async fn event(
        &self,
        session: &Session,
        kind: EventType,
        level: EventLevel,
        message: String,
        detail: Option<Value>,
    ) {
        let mut event = NewEvent::info(kind, message)
            .level(level)
            .workspace(&session.workspace_id);
        event.session_id = Some(session.id.clone());
        event.detail = detail;
        self.inner.events.record(event).await;
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
        validate_env(&env)?;
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
            return Ok((existing.info(), false));
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
        };
        self.inner.store.put_session(&info).await?;
        if let Some(key) = &idempotency_key {
            self.inner
                .store
                .put_idempotency_key(workspace, key, &info.id)
                .await?;
        }
        let session = self.make(&info);
        lock(&self.inner.by_id).insert(info.id.clone(), session.clone());
        drop(guard);

        self.event(
            &session,
            EventType::SessionCreated,
            EventLevel::Info,
            format!(
                "Started agent session {:?} ({}).",
                session.label,
                agent.as_deref().unwrap_or(&argv[0])
            ),
            None,
        )
        .await;
        let (to_acp, from_acp) = acp::start(acp::Launch {
            engine: self.inner.engine.clone(),
            container: target.container,
            user: target.user,
            workdir: target.workdir,
            argv,
            env,
            folder,
            uid,
            gid,
        });
        *lock(&session.to_acp) = Some(to_acp);
        // Stopped while the process was being started (a stop right after create):
        // `finish` found no channel to tell, so the process is ended here.
        if lock(&session.state).is_over() {
            session.send_acp(ToAcp::Stop);
            lock(&session.to_acp).take();
        }
        let this = self.clone();
        let s = session.clone();
        tokio::spawn(async move { this.pump(s, from_acp).await });
        Ok((info, true))
    }

    /// Turns the protocol's events into frames, state and node events.
    async fn pump(&self, session: Arc<Session>, mut from_acp: mpsc::UnboundedReceiver<FromAcp>) {
        let mut failure: Option<String> = None;
        let mut ready = false;
        while let Some(event) = from_acp.recv().await {
            match event {
                FromAcp::Ready => {
                    ready = true;
                    {
                        let mut s = lock(&session.state);
                        if s.status != SessionStatus::Starting {
                            continue;
                        }
                        s.status = SessionStatus::Running;
                    }
                    self.persist(&session).await;
                    session.drive();
                }
                FromAcp::Update(update) => {
                    let mut s = lock(&session.state);
                    if !s.is_over() {
                        session.push(&mut s, SessionFrameBody::AgentOutput { update });
                    }
                }
                FromAcp::Permission {
                    key,
                    tool_call,
                    options,
                } => {
                    let title = tool_call
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or("The agent asks for permission")
                        .to_string();
                    {
                        let mut s = lock(&session.state);
                        if s.is_over() {
                            continue;
                        }
                        let offered = options
                            .as_array()
                            .map(|o| {
                                o.iter()
                                    .filter_map(|x| {
                                        x.get("optionId")
                                            .and_then(Value::as_str)
                                            .map(str::to_string)
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        s.pending.insert(key, offered);
                        session.push(
                            &mut s,
                            SessionFrameBody::AgentPermission {
                                request_id: RequestId::Number(key as i64),
                                tool_call,
                                options,
                            },
                        );
                    }
                    self.event(
                        &session,
                        EventType::SessionPermissionRequested,
                        EventLevel::Warn,
                        title,
                        Some(json!({"requestId": key})),
                    )
                    .await;
                }
                FromAcp::PermissionCancelled { key } => {
                    let resolved = {
                        let mut s = lock(&session.state);
                        let open = s.pending.remove(&key).is_some();
                        if open {
                            session.push(
                                &mut s,
                                SessionFrameBody::AgentPermissionResolved {
                                    request_id: RequestId::Number(key as i64),
                                    option_id: None,
                                    outcome: Some("cancelled".into()),
                                },
                            );
                        }
                        open
                    };
                    if resolved {
                        self.event(
                            &session,
                            EventType::SessionPermissionResolved,
                            EventLevel::Info,
                            "The permission request was cancelled.".into(),
                            Some(json!({"requestId": key, "outcome": "cancelled"})),
                        )
                        .await;
                    }
                }
                FromAcp::TurnEnd(stop_reason) => {
                    {
                        let mut s = lock(&session.state);
                        if s.is_over() {
                            continue;
                        }
                        s.turn = false;
                        session.push(&mut s, SessionFrameBody::AgentTurnEnd { stop_reason });
                    }
                    session.drive();
                }
                FromAcp::PromptError(message) => {
                    {
                        let mut s = lock(&session.state);
                        if s.is_over() {
                            continue;
                        }
                        s.turn = false;
                        session.push(
                            &mut s,
                            SessionFrameBody::AgentError {
                                message: message.clone(),
                            },
                        );
                    }
                    self.event(
                        &session,
                        EventType::SessionError,
                        EventLevel::Error,
                        message,
                        None,
                    )
                    .await;
                    session.drive();
                }
                FromAcp::Failed(message) => {
                    failure = Some(message);
                    session.send_acp(ToAcp::Stop);
                }
                FromAcp::Exited { code, stderr } => {
                    let message = match (&failure, code) {
                        (Some(m), _) => Some(with_stderr(m, &stderr)),
                        (None, Some(0)) if !ready => Some(with_stderr(
                            "The agent process exited before completing the ACP handshake",
                            &stderr,
                        )),
                        (None, Some(0)) => None,
                        (None, Some(127)) => Some(with_stderr(
                            "The agent command was not found in the workspace's image",
                            &stderr,
                        )),
                        (None, Some(126)) => Some(with_stderr(
                            "The agent command cannot be run in the workspace",
                            &stderr,
                        )),
                        (None, Some(c)) if c > 128 => Some(with_stderr(
                            &format!("The agent process was killed by signal {}", c - 128),
                            &stderr,
                        )),
                        (None, Some(c)) => Some(with_stderr(
                            &format!("The agent process exited with status {c}"),
                            &stderr,
                        )),
                        (None, None) => Some(with_stderr("The agent process ended", &stderr)),
                    };
                    match message {
                        None => {
                            self.finish(
                                &session,
                                SessionStatus::Stopped,
                                StopReason::AgentExit,
                                None,
                            )
                            .await
                        }
                        Some(m) => {
                            self.finish(&session, SessionStatus::Error, StopReason::Error, Some(m))
                                .await
                        }
                    }
                    break;
                }
            }
        }
    }

    /// Ends a session once: records why, sends `session.stopped`, ends the process.
    async fn finish(
        &self,
        session: &Arc<Session>,
        status: SessionStatus,
        reason: StopReason,
        error: Option<String>,
    ) {
        {
            let mut s = lock(&session.state);
            if s.is_over() {
                return;
            }
            if let Some(message) = &error {
                session.push(
                    &mut s,
                    SessionFrameBody::AgentError {
                        message: message.clone(),
                    },
                );
            }
            s.status = status;
            s.stop_reason = Some(reason);
            s.error = error.clone();
            s.stopped_at = Some(crate::now());
            s.queue.clear();
            s.pending.clear();
            session.push(&mut s, SessionFrameBody::SessionStopped { reason });
            s.history.close();
        }
        session.send_acp(ToAcp::Stop);
        lock(&session.to_acp).take();
        self.persist(session).await;
        let (level, message) = match &error {
            Some(e) => (
                EventLevel::Error,
                format!("Agent session {:?} ended: {e}", session.label),
            ),
            None => (
                EventLevel::Info,
                format!(
                    "Agent session {:?} stopped ({}).",
                    session.label,
                    reason_str(reason)
                ),
            ),
        };
        self.event(
            session,
            EventType::SessionStopped,
            level,
            message,
            Some(json!({"reason": reason})),
        )
        .await;
    }

    pub async fn stop(&self, workspace: &str, sid: &str) -> Result<AgentSession, ApiError> {
        let session = self.get(workspace, sid)?;
        self.finish(&session, SessionStatus::Stopped, StopReason::UserStop, None)
            .await;
        Ok(session.info())
    }

    /// A workspace stops, restarts or goes (or the node stops): its sessions end.
    pub async fn end_workspace(&self, workspace: &str, why: EndReason) {
        let reason = match why {
            EndReason::Stop | EndReason::Delete => StopReason::WorkspaceStop,
            EndReason::Restart => StopReason::WorkspaceRestart,
            EndReason::NodeStop => StopReason::NodeStop,
        };
        let sessions: Vec<Arc<Session>> = lock(&self.inner.by_id)
            .values()
            .filter(|s| s.workspace_id == workspace)
            .cloned()
            .collect();
        for s in &sessions {
            self.finish(s, SessionStatus::Stopped, reason, None).await;
        }
        if why == EndReason::Delete {
            {
                let mut by_id = lock(&self.inner.by_id);
                for s in &sessions {
                    by_id.remove(&s.id);
                    let _ = std::fs::remove_file(self.history_path(&s.id));
                }
            }
            if let Err(e) = self.inner.store.delete_sessions_of(workspace).await {
                tracing::error!(workspace, error = %e, "cannot forget a deleted workspace's sessions");
            }
        }
    }

    // ---- attaching ----

    pub fn claim(&self, workspace: &str, sid: &str, mode: AttachMode) -> Result<Ticket, ApiError> {
        let session = self.get(workspace, sid)?;
        let mut s = lock(&session.state);
        if s.is_over() {
            return Err(session_not_running(sid));
        }
        let attach_id = s.next_attach;
        s.next_attach += 1;
        let mut kicked = None;
        if mode.watch {
            s.watchers += 1;
        } else {
            if s.interactive.is_some() && !mode.takeover {
                return Err(ApiError::new(
                    ErrorCode::SessionAlreadyAttached,
                    "Another client is attached to this session; attach with takeover=true to take it over, or watch=true to read along.",
                ));
            }
            if let Some((_, kick)) = s.interactive.take() {
                let _ = kick.send(());
            }
            let (tx, rx) = oneshot::channel();
            s.interactive = Some((attach_id, tx));
            kicked = Some(rx);
        }
        drop(s);
        Ok(Ticket {
            session,
            mode,
            attach_id,
            kicked,
        })
    }

    pub fn history(
        &self,
        workspace: &str,
        sid: &str,
        since: u64,
        limit: usize,
    ) -> Result<(Vec<Frame>, bool), ApiError> {
        let session = self.get(workspace, sid)?;
        let s = lock(&session.state);
        let mut frames = s
            .history
            .since(since, limit + 1)
            .map_err(ApiError::internal)?;
        let more = frames.len() > limit;
        frames.truncate(limit);
        Ok((frames, more))
    }

    /// A client frame from the interactive attachment. `Err` is the `error` frame's message.
    pub fn client_frame(
        &self,
        session: &Arc<Session>,
        frame: sam_protocol::SessionClientFrame,
    ) -> Result<(), String> {
        use sam_protocol::SessionClientFrame as C;
        match frame {
            C::Prompt(prompt) => {
                let empty_text = prompt.text.as_deref().is_none_or(|t| t.trim().is_empty());
                let empty_content = prompt.content.as_ref().is_none_or(Vec::is_empty);
                if empty_text && empty_content {
                    return Err("a prompt needs text or content".into());
                }
                {
                    let mut s = lock(&session.state);
                    if s.is_over() {
                        return Err("the session has stopped".into());
                    }
                    s.queue.push_back(prompt);
                }
                session.drive();
                Ok(())
            }
            C::PermissionResponse {
                request_id,
                option_id,
            } => {
                let key = match &request_id {
                    RequestId::Number(n) if *n >= 0 => *n as u64,
                    RequestId::String(s) => s
                        .parse()
                        .map_err(|_| format!("no open permission request {s:?}"))?,
                    RequestId::Number(n) => return Err(format!("no open permission request {n}")),
                };
                {
                    let mut s = lock(&session.state);
                    let offered = s
                        .pending
                        .get(&key)
                        .ok_or_else(|| format!("no open permission request {key}"))?;
                    if !offered.contains(&option_id) {
                        return Err(format!(
                            "option {option_id:?} was not offered; the offered ones are {offered:?}"
                        ));
                    }
                    s.pending.remove(&key);
                    session.push(
                        &mut s,
                        SessionFrameBody::AgentPermissionResolved {
                            request_id: RequestId::Number(key as i64),
                            option_id: Some(option_id.clone()),
                            outcome: None,
                        },
                    );
                }
                session.send_acp(ToAcp::Permission {
                    key,
                    option_id: option_id.clone(),
                });
                let this = self.clone();
                let s = session.clone();
                tokio::spawn(async move {
                    this.event(
                        &s,
                        EventType::SessionPermissionResolved,
                        EventLevel::Info,
                        format!("Permission answered: {option_id}."),
                        Some(json!({"requestId": key, "optionId": option_id})),
                    )
                    .await;
                });
                Ok(())
            }
            C::Cancel => {
                if lock(&session.state).is_over() {
                    return Err("the session has stopped".into());
                }
                session.send_acp(ToAcp::Cancel);
                Ok(())
            }
        }
    }
}

fn reason_str(reason: StopReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A message with the agent's last stderr lines, if it left any.
fn with_stderr(message: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = &lines[lines.len().saturating_sub(5)..];
    if last.is_empty() {
        format!("{message}.")
    } else {
        format!("{message}. Its last output: {}", last.join(" | "))
    }
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if env.len() > MAX_ENV_ENTRIES {
        return Err(ApiError::bad_request(format!(
            "env has more than {MAX_ENV_ENTRIES} entries"
        )));
    }
    let mut bytes = 0;
    for (k, v) in env {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::bad_request(format!(
                "env name {k:?} is not a valid variable name"
            )));
        }
        if v.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "env {k} contains a NUL byte"
            )));
        }
        bytes += k.len() + v.len();
    }
    if bytes > MAX_ENV_BYTES {
        return Err(ApiError::bad_request("env is larger than 32 KiB"));
    }
    Ok(())
}

impl Sessions {
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
