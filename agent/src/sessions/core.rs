//! One agent session's conversation: `seq`, history, prompt queue, open permission
//! requests, attachments — and the rules of CONTRACT §7. It runs inside the
//! session's holder process (`holders::session`), so it outlives the agent.
//!
//! A session's state lives behind one lock. Every conversation frame is made under
//! it (next `seq`, appended to history, broadcast), and an attach subscribes and
//! copies history under it, so replay and live frames neither overlap nor leave a
//! gap. Claiming the interactive slot also happens under it: of two racing attaches
//! exactly one wins, and stop-versus-attach ends one of the contract's two ways —
//! stop first (`409 session_not_running`), or attach first (the socket gets
//! `session.stopped`, then close 1000).
//!
//! Side effects outside the conversation (recording the session's state, events)
//! go to a [`Sink`]: the holder forwards them to the agent.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sam_protocol::{
    AgentSession, ErrorCode, EventLevel, EventType, Prompt, RequestId, SessionFrame,
    SessionFrameBody, SessionStatus, StopReason, Timestamp,
};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::acp::{FromAcp, ToAcp};
use super::history::{Frame, History};

/// Live frames a socket may fall behind before it catches up from history.
const LIVE_BACKLOG: usize = 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a session reports what is not part of its conversation.
pub trait Sink: Send + Sync + 'static {
    /// The session's resource changed (status, attachment).
    fn changed(&self, info: AgentSession);
    /// Something to record as a node event.
    fn event(&self, kind: EventType, level: EventLevel, message: String, detail: Option<Value>);
}

pub struct Session {
    pub id: String,
    pub workspace_id: String,
    pub label: String,
    pub agent: Option<String>,
    pub created_at: Timestamp,
    state: Mutex<State>,
    pub live: broadcast::Sender<Frame>,
    to_acp: Mutex<Option<mpsc::UnboundedSender<ToAcp>>>,
    sink: Arc<dyn Sink>,
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

/// How a socket attaches.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AttachMode {
    pub takeover: bool,
    pub watch: bool,
}

/// A claimed attachment; dropping it releases the claim.
pub struct Ticket {
    pub session: Arc<Session>,
    pub mode: AttachMode,
    attach_id: u64,
    pub kicked: Option<oneshot::Receiver<()>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        {
            let mut s = lock(&self.session.state);
            if self.mode.watch {
                s.watchers = s.watchers.saturating_sub(1);
            } else if s
                .interactive
                .as_ref()
                .is_some_and(|(id, _)| *id == self.attach_id)
            {
                s.interactive = None;
            } else {
                return;
            }
        }
        self.session.sink.changed(self.session.info());
    }
}

impl Session {
    pub fn new(
        info: &AgentSession,
        history: PathBuf,
        sink: Arc<dyn Sink>,
    ) -> std::io::Result<Arc<Self>> {
        let history = History::open(history)?;
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        Ok(Arc::new(Session {
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
            sink,
        }))
    }

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
            permission_pending: !s.pending.is_empty() && !s.is_over(),
        }
    }

    pub fn is_over(&self) -> bool {
        lock(&self.state).is_over()
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
    pub fn socket_frame(&self, body: SessionFrameBody) -> String {
        let seq = lock(&self.state).history.head();
        serde_json::to_string(&SessionFrame { seq, body }).unwrap_or_default()
    }

    /// Subscribes to live frames and copies history after `since`, atomically;
    /// also answers the head `seq` at that moment.
    pub fn subscribe_since(
        &self,
        since: u64,
    ) -> (broadcast::Receiver<Frame>, std::io::Result<Vec<Frame>>, u64) {
        let s = lock(&self.state);
        let rx = self.live.subscribe();
        (rx, s.history.since(since, usize::MAX), s.history.head())
    }

    pub fn history_since(&self, since: u64) -> std::io::Result<Vec<Frame>> {
        lock(&self.state).history.since(since, usize::MAX)
    }

    fn send_acp(&self, cmd: ToAcp) {
        if let Some(tx) = lock(&self.to_acp).as_ref() {
            let _ = tx.send(cmd);
        }
    }

    fn event(&self, kind: EventType, level: EventLevel, message: String, detail: Option<Value>) {
        self.sink.event(kind, level, message, detail);
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

    /// Runs the protocol host's events into frames and state until the process ends.
    pub async fn run(
        self: Arc<Self>,
        to_acp: mpsc::UnboundedSender<ToAcp>,
        mut from_acp: mpsc::UnboundedReceiver<FromAcp>,
    ) {
        *lock(&self.to_acp) = Some(to_acp);
        // Stopped while the process was being started: end it at once.
        if self.is_over() {
            self.send_acp(ToAcp::Stop);
            lock(&self.to_acp).take();
        }
        let mut failure: Option<String> = None;
        let mut ready = false;
        while let Some(event) = from_acp.recv().await {
            match event {
                FromAcp::Ready => {
                    ready = true;
                    {
                        let mut s = lock(&self.state);
                        if s.status != SessionStatus::Starting {
                            continue;
                        }
                        s.status = SessionStatus::Running;
                    }
                    self.sink.changed(self.info());
                    self.drive();
                }
                FromAcp::Update(update) => {
                    let mut s = lock(&self.state);
                    if !s.is_over() {
                        self.push(&mut s, SessionFrameBody::AgentOutput { update });
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
                        let mut s = lock(&self.state);
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
                        self.push(
                            &mut s,
                            SessionFrameBody::AgentPermission {
                                request_id: RequestId::Number(key as i64),
                                tool_call,
                                options,
                            },
                        );
                    }
                    self.sink.changed(self.info());
                    self.event(
                        EventType::SessionPermissionRequested,
                        EventLevel::Warn,
                        title,
                        Some(json!({"requestId": key})),
                    );
                }
                FromAcp::PermissionCancelled { key } => {
                    let resolved = {
                        let mut s = lock(&self.state);
                        let open = s.pending.remove(&key).is_some();
                        if open {
                            self.push(
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
                        self.sink.changed(self.info());
                        self.event(
                            EventType::SessionPermissionResolved,
                            EventLevel::Info,
                            "The permission request was cancelled.".into(),
                            Some(json!({"requestId": key, "outcome": "cancelled"})),
                        );
                    }
                }
                FromAcp::TurnEnd(stop_reason) => {
                    {
                        let mut s = lock(&self.state);
                        if s.is_over() {
                            continue;
                        }
                        s.turn = false;
                        self.push(&mut s, SessionFrameBody::AgentTurnEnd { stop_reason });
                    }
                    self.drive();
                }
                FromAcp::PromptError(message) => {
                    {
                        let mut s = lock(&self.state);
                        if s.is_over() {
                            continue;
                        }
                        s.turn = false;
                        self.push(
                            &mut s,
                            SessionFrameBody::AgentError {
                                message: message.clone(),
                            },
                        );
                    }
                    self.event(EventType::SessionError, EventLevel::Error, message, None);
                    self.drive();
                }
                FromAcp::Failed(message) => {
                    failure = Some(message);
                    self.send_acp(ToAcp::Stop);
                }
                FromAcp::Exited { code, stderr } => {
                    let message = match (&failure, code) {
                        (Some(m), _) => Some(with_stderr(m, &stderr)),
                        (None, Some(0)) if !ready => Some(with_stderr(
                            "The agent process exited before completing the ACP handshake",
                            &stderr,
                        )),
                        (None, Some(0)) => None,
                        (None, Some(127)) => Some(with_stderr(&self.missing_command(), &stderr)),
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
                        None => self.finish(SessionStatus::Stopped, StopReason::AgentExit, None),
                        Some(m) => self.finish(SessionStatus::Error, StopReason::Error, Some(m)),
                    }
                    break;
                }
            }
        }
    }

    /// What a missing agent command means, naming the agent when it is a known one.
    fn missing_command(&self) -> String {
        let package = match self.agent.as_deref() {
            Some("claude") => Some(("claude-code-acp", "@zed-industries/claude-code-acp")),
            Some("codex") => Some(("codex-acp", "@zed-industries/codex-acp")),
            Some("gemini") => Some(("gemini", "@google/gemini-cli")),
            _ => None,
        };
        match (self.agent.as_deref(), package) {
            (Some(agent), Some((program, npm))) => format!(
                "The workspace's image has no {program}, which the {agent} agent needs: use sam-workspace:latest, or add the npm package {npm} (and Node.js 20 or newer) to the image"
            ),
            (Some(agent), None) => {
                format!("The workspace's image has no command for the {agent} agent")
            }
            (None, _) => "The agent command was not found in the workspace's image".into(),
        }
    }

    /// Ends a session once: records why, sends `session.stopped`, ends the process.
    pub fn finish(&self, status: SessionStatus, reason: StopReason, error: Option<String>) {
        {
            let mut s = lock(&self.state);
            if s.is_over() {
                return;
            }
            if let Some(message) = &error {
                self.push(
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
            self.push(&mut s, SessionFrameBody::SessionStopped { reason });
            s.history.close();
        }
        self.send_acp(ToAcp::Stop);
        lock(&self.to_acp).take();
        self.sink.changed(self.info());
        let (level, message) = match &error {
            Some(e) => (
                EventLevel::Error,
                format!("Agent session {:?} ended: {e}", self.label),
            ),
            None => (
                EventLevel::Info,
                format!(
                    "Agent session {:?} stopped ({}).",
                    self.label,
                    reason_str(reason)
                ),
            ),
        };
        self.event(
            EventType::SessionStopped,
            level,
            message,
            Some(json!({"reason": reason})),
        );
    }

    /// Takes an attachment, or answers why not (`code`, message).
    pub fn claim(self: &Arc<Self>, mode: AttachMode) -> Result<Ticket, (ErrorCode, String)> {
        let mut s = lock(&self.state);
        if s.is_over() {
            return Err((
                ErrorCode::SessionNotRunning,
                format!("The agent session {} has stopped.", self.id),
            ));
        }
        let attach_id = s.next_attach;
        s.next_attach += 1;
        let mut kicked = None;
        if mode.watch {
            s.watchers += 1;
        } else {
            if s.interactive.is_some() && !mode.takeover {
                return Err((
                    ErrorCode::SessionAlreadyAttached,
                    "Another client is attached to this session; attach with takeover=true to take it over, or watch=true to read along.".into(),
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
        self.sink.changed(self.info());
        Ok(Ticket {
            session: self.clone(),
            mode,
            attach_id,
            kicked,
        })
    }

    /// A client frame from the interactive attachment. `Err` is the `error` frame's message.
    pub fn client_frame(&self, frame: sam_protocol::SessionClientFrame) -> Result<(), String> {
        use sam_protocol::SessionClientFrame as C;
        match frame {
            C::Prompt(prompt) => {
                let empty_text = prompt.text.as_deref().is_none_or(|t| t.trim().is_empty());
                let empty_content = prompt.content.as_ref().is_none_or(Vec::is_empty);
                if empty_text && empty_content {
                    return Err("a prompt needs text or content".into());
                }
                {
                    let mut s = lock(&self.state);
                    if s.is_over() {
                        return Err("the session has stopped".into());
                    }
                    s.queue.push_back(prompt);
                }
                self.drive();
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
                    let mut s = lock(&self.state);
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
                    self.push(
                        &mut s,
                        SessionFrameBody::AgentPermissionResolved {
                            request_id: RequestId::Number(key as i64),
                            option_id: Some(option_id.clone()),
                            outcome: None,
                        },
                    );
                }
                self.send_acp(ToAcp::Permission {
                    key,
                    option_id: option_id.clone(),
                });
                self.sink.changed(self.info());
                self.event(
                    EventType::SessionPermissionResolved,
                    EventLevel::Info,
                    format!("Permission answered: {option_id}."),
                    Some(json!({"requestId": key, "optionId": option_id})),
                );
                Ok(())
            }
            C::Cancel => {
                if self.is_over() {
                    return Err("the session has stopped".into());
                }
                self.send_acp(ToAcp::Cancel);
                Ok(())
            }
        }
    }
}

pub fn reason_str(reason: StopReason) -> String {
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
