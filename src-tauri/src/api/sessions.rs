//! Agent sessions (CONTRACT §4 session resource, §5 agent-sessions rows, §7 "Agent
//! session"): started in a workspace, listed, shown, stopped, their history read,
//! and attached to over the session WebSocket as typed [`SessionFrame`]s.
//!
//! Session ids are global: a session is found by asking every running node's
//! workspaces for their sessions (O(workspaces), concurrently).
//!
//! Invariant: `env` values are secrets (API keys). They travel in the create
//! request's body only: never logged, never stored here, never part of an error or
//! a `Debug` output. An agent named with `--agent` gets its stored agent key
//! (`sam settings agent-key NAME`) as the variable its ACP adapter reads
//! ([`agent_key_vars`]); an explicit `env` entry for it wins.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sam_protocol::{
    AgentSession, CreateSession, SessionClientFrame, SessionFrame, SessionStatus, Workspace,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::agents::agent_key_vars;
use super::settings::agent_key_secret;
use super::{Progress, Sam};
use crate::agent_client::{NodeClient, Scope};
use crate::error::{Error, Result, code};
use crate::nodes::{NodeRecord, NodeStatus};

/// How long `new_session` waits for the ACP handshake.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Frames of one history page.
const HISTORY_PAGE: u32 = 1000;
/// Live frames the connection buffers before it stops reading the socket.
const FRAME_BUFFER: usize = 1024;

/// What `sam session new` asks for.
#[derive(Clone, Default)]
pub struct NewSession {
    /// A configured agent of the node (`claude`, `codex`, …).
    pub agent: Option<String>,
    /// Or any ACP agent in the image, as an argv.
    pub command: Option<Vec<String>>,
    pub label: Option<String>,
    /// For the agent process only. Values are secrets.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("agent", &self.agent)
            .field("command", &self.command)
            .field("label", &self.label)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A session found by its id: where it lives, and a client for that node.
#[derive(Clone)]
pub struct FoundSession {
    pub node: NodeRecord,
    pub client: NodeClient,
    pub workspace: Workspace,
    pub session: AgentSession,
}

/// How to attach (CONTRACT §7): `takeover` takes the interactive attachment from
/// whoever holds it; `watch` only reads; `since` replays history after that `seq`
/// (all of it without).
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    pub takeover: bool,
    pub watch: bool,
    pub since: Option<u64>,
}

/// One permission option of an `agent.permission` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionChoice {
    pub option_id: String,
    pub name: String,
    /// `allow_once`, `allow_always`, `reject_once`, `reject_always`.
    pub kind: String,
}

/// The options of an `agent.permission` frame (ACP `PermissionOption`s), in order.
pub fn permission_choices(options: &Value) -> Vec<PermissionChoice> {
    options
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|o| {
                    let id = o.get("optionId")?.as_str()?.to_string();
                    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
                    Some(PermissionChoice {
                        name: if text("name").is_empty() {
                            id.clone()
                        } else {
                            text("name").to_string()
                        },
                        kind: text("kind").to_string(),
                        option_id: id,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first option that allows (`allow_*`) or rejects (`reject_*`).
pub fn first_choice(options: &Value, allow: bool) -> Option<PermissionChoice> {
    let prefix = if allow { "allow_" } else { "reject_" };
    permission_choices(options)
        .into_iter()
        .find(|c| c.kind.starts_with(prefix))
}

/// A tool call's title (ACP `ToolCall` / `ToolCallUpdate`), for people.
pub fn tool_title(tool_call: &Value) -> Option<String> {
    tool_call
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn is_live(status: SessionStatus) -> bool {
    matches!(status, SessionStatus::Starting | SessionStatus::Running)
}

/// Socket refusals in the CLI's words.
fn attach_error(e: Error, sid: &str) -> Error {
    if e.is("session_not_running") {
        e.hint("`sam session history SID` shows its conversation; `sam session new WS` starts another.")
    } else if e.is("session_already_attached") {
        Error::new(
            "session_already_attached",
            format!("Another client is attached to session {sid}."),
        )
        .hint("Take it over with --takeover, or read along with --watch.")
    } else {
        e
    }
}

impl Sam {
    /// Starts an agent session in a workspace (`NODE/NAME`, id, or unique `NAME`).
    /// With `wait`, returns once the agent's handshake is done (`running`), or fails
    /// with the agent's own words when it ends `error`.
    pub async fn new_session(
        &self,
        ws: &str,
        new: NewSession,
        wait: bool,
        progress: &dyn Progress,
    ) -> Result<AgentSession> {
        if new.agent.is_some() && new.command.is_some() {
            return Err(Error::invalid("Give an agent or a command, not both."));
        }
        if new.command.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::invalid("The agent command is empty."));
        }
        let located = self.locate(ws).await?;
        let mut env = new.env;
        let mut key_used = false;
        if let Some(agent) = &new.agent
            && let Some(vars) = agent_key_vars(agent)
            && !vars.iter().any(|v| env.contains_key(*v))
            && let Some(key) = self.secrets().get(&agent_key_secret(agent)?).await?
        {
            env.insert(vars[0].to_string(), key);
            key_used = true;
        }
        let req = CreateSession {
            label: new.label,
            agent: new.agent.clone(),
            command: new.command,
            env: (!env.is_empty()).then_some(env),
        };
        // One key for this create: a retry after a lost answer gets the same session.
        let key = format!("sam-{:032x}", rand::random::<u128>());
        let ws_id = located.workspace.id.clone();
        let created = match located
            .client
            .create_session(&ws_id, &req, Some(&key))
            .await
        {
            Err(e) if e.is(code::UNREACHABLE) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                located
                    .client
                    .create_session(&ws_id, &req, Some(&key))
                    .await?
            }
            other => other?,
        };
        if !wait || created.status != SessionStatus::Starting {
            return Ok(created);
        }
        progress.step(&format!(
            "Starting agent session {} ({}) in {}.",
            created.label, created.id, located.workspace.display_name
        ));
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let s = located.client.session(&ws_id, &created.id).await?;
            match s.status {
                SessionStatus::Starting if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                SessionStatus::Error => {
                    let said = s
                        .error
                        .clone()
                        .unwrap_or_else(|| "The agent failed to start.".into());
                    let mut e = Error::new(
                        "session_error",
                        format!("Agent session {} did not start: {said}", s.id),
                    );
                    let builtin = new.agent.as_deref().and_then(super::agents::builtin);
                    e = match (builtin, key_used) {
                        (Some(a), false) if said.to_lowercase().contains("authentic") => e
                            .hint(format!(
                                "Store its API key with `sam settings agent-key {name}` (passed as {var}), or log in once in the workspace: `sam term {ws} -- {login}`.",
                                name = a.name,
                                var = a.key_vars[0],
                                login = a.login.join(" "),
                            )),
                        (Some(a), true) if said.to_lowercase().contains("authentic") => e
                            .hint(format!(
                                "{vendor} refused the stored key: store another with `sam settings agent-key {name}`.",
                                vendor = a.name,
                                name = a.name,
                            )),
                        _ => e.hint(format!(
                            "`sam session history {}` shows what it said.",
                            s.id
                        )),
                    };
                    return Err(e);
                }
                _ => return Ok(s),
            }
        }
    }

    /// The sessions of one workspace, oldest first.
    pub async fn list_sessions(&self, ws: &str) -> Result<Vec<AgentSession>> {
        let l = self.locate(ws).await?;
        l.client.sessions(&l.workspace.id).await
    }

    /// Finds a session by its id on any running node.
    pub async fn find_session(&self, sid: &str) -> Result<FoundSession> {
        let sid = sid.trim();
        if sid.is_empty() {
            return Err(Error::invalid("A session id is empty."));
        }
        let nodes: Vec<NodeRecord> = self
            .store()
            .nodes()
            .await?
            .into_iter()
            .filter(|n| {
                !matches!(
                    n.status,
                    NodeStatus::Stopped | NodeStatus::Deleting | NodeStatus::Provisioning
                )
            })
            .collect();
        let searches = nodes.into_iter().map(|record| async move {
            let name = record.name.clone();
            (name, self.find_session_on(record, sid).await)
        });
        let mut silent = Vec::new();
        for result in futures::future::join_all(searches).await {
            match result {
                (_, Ok(Some(found))) => return Ok(found),
                (_, Ok(None)) => {}
                (name, Err(e)) => {
                    tracing::info!(node = %name, error = %e.message, "not searched for the session");
                    silent.push(name);
                }
            }
        }
        let e = Error::new(
            "session_not_found",
            format!("There is no agent session {sid:?}."),
        );
        Err(if silent.is_empty() {
            e.hint("`sam session ls WS` lists a workspace's sessions.")
        } else {
            e.hint(format!(
                "These nodes did not answer, and it may be on one of them: {}.",
                silent.join(", ")
            ))
        })
    }

    async fn find_session_on(&self, record: NodeRecord, sid: &str) -> Result<Option<FoundSession>> {
        let client = self.client(&record).await?;
        let workspaces = client.workspaces().await?;
        let per_ws = workspaces.into_iter().map(|w| {
            let client = client.clone();
            async move {
                let sessions = client.sessions(&w.id).await.ok()?;
                let s = sessions.into_iter().find(|s| s.id == sid)?;
                Some((w, s))
            }
        });
        let hit = futures::future::join_all(per_ws)
            .await
            .into_iter()
            .flatten()
            .next();
        Ok(hit.map(|(workspace, session)| FoundSession {
            node: record,
            client,
            workspace,
            session,
        }))
    }

    pub async fn show_session(&self, sid: &str) -> Result<AgentSession> {
        Ok(self.find_session(sid).await?.session)
    }

    /// Stops a session (`stopped`, `user_stop`); a stopped one stays as it is.
    pub async fn stop_session(&self, sid: &str) -> Result<AgentSession> {
        let f = self.find_session(sid).await?;
        if !is_live(f.session.status) {
            return Ok(f.session);
        }
        f.client.stop_session(&f.workspace.id, &f.session.id).await
    }

    /// The session's conversation frames after `since` (all without), oldest first;
    /// readable whether it runs or has ended.
    pub async fn session_history(
        &self,
        sid: &str,
        since: Option<u64>,
    ) -> Result<Vec<SessionFrame>> {
        let f = self.find_session(sid).await?;
        let mut frames = Vec::new();
        let mut since = since.unwrap_or(0);
        loop {
            let page = f
                .client
                .history(&f.workspace.id, &f.session.id, since, HISTORY_PAGE)
                .await?;
            let last = page.frames.last().map(|fr| fr.seq);
            frames.extend(page.frames);
            match last {
                Some(seq) if page.more && seq > since => since = seq,
                _ => break,
            }
        }
        Ok(frames)
    }

    /// Attaches to a session's socket: interactively (one holder; `takeover` takes
    /// it), or as a watcher. Frames arrive typed; client frames go out through
    /// [`SessionConnection::sender`].
    pub async fn attach_session(
        &self,
        sid: &str,
        opts: AttachOptions,
    ) -> Result<SessionConnection> {
        if opts.takeover && opts.watch {
            return Err(Error::invalid(
                "A watcher never holds the attachment: give --takeover or --watch, not both.",
            ));
        }
        let f = self.find_session(sid).await?;
        let mut path = format!(
            "/workspaces/{}/agent-sessions/{}/ws?takeover={}&watch={}",
            f.workspace.id, f.session.id, opts.takeover, opts.watch
        );
        if let Some(since) = opts.since {
            path.push_str(&format!("&since={since}"));
        }
        let socket = f
            .client
            .websocket(&path, Scope::Workspace(&f.workspace.id))
            .await
            .map_err(|e| attach_error(e, &f.session.id))?;
        Ok(SessionConnection::start(f, socket))
    }
}

/// Sends client frames on an attached session's socket; cheap to clone.
#[derive(Clone)]
pub struct SessionSender {
    tx: mpsc::UnboundedSender<Outgoing>,
}

enum Outgoing {
    Frame(SessionClientFrame),
    Close,
}

impl SessionSender {
    /// Queues a frame; fails once the socket has closed.
    pub fn send(&self, frame: SessionClientFrame) -> Result<()> {
        self.tx
            .send(Outgoing::Frame(frame))
            .map_err(|_| Error::new(code::UNREACHABLE, "The session's connection has closed."))
    }

    /// Closes the socket normally (the attachment is released).
    pub fn close(&self) {
        let _ = self.tx.send(Outgoing::Close);
    }
}

/// An attached session socket: typed frames in, client frames out.
pub struct SessionConnection {
    /// The session as found before attaching.
    pub found: FoundSession,
    frames: mpsc::Receiver<Result<SessionFrame>>,
    sender: SessionSender,
    task: tokio::task::JoinHandle<()>,
}

impl SessionConnection {
    fn start(found: FoundSession, socket: crate::agent_client::WsStream) -> Self {
        let (frames_tx, frames) = mpsc::channel(FRAME_BUFFER);
        let (tx, rx) = mpsc::unbounded_channel();
        let node = found.node.name.clone();
        let task = tokio::spawn(pump(socket, frames_tx, rx, node));
        SessionConnection {
            found,
            frames,
            sender: SessionSender { tx },
            task,
        }
    }

    pub fn session(&self) -> &AgentSession {
        &self.found.session
    }

    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    pub fn send(&self, frame: SessionClientFrame) -> Result<()> {
        self.sender.send(frame)
    }

    /// The next frame; `Ok(None)` once the socket closed normally (after
    /// `session.stopped`, a takeover's `session.detached`, or [`Self::close`]).
    pub async fn recv(&mut self) -> Result<Option<SessionFrame>> {
        self.frames.recv().await.transpose()
    }

    /// Closes the socket normally and waits (briefly) for it to go.
    pub async fn close(mut self) {
        self.sender.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
    }
}

impl Drop for SessionConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Moves frames between the socket and the connection's channels.
async fn pump(
    socket: crate::agent_client::WsStream,
    frames: mpsc::Sender<Result<SessionFrame>>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    node: String,
) {
    let (mut sink, mut stream) = socket.split();
    let lost = |why: String| {
        Error::new(
            code::UNREACHABLE,
            format!("The connection to the session on {node} was lost: {why}"),
        )
        .hint("Attach again: `sam session attach SID` replays what was missed.")
    };
    loop {
        tokio::select! {
            out = outgoing.recv() => match out {
                Some(Outgoing::Frame(frame)) => {
                    let text = match serde_json::to_string(&frame) {
                        Ok(t) => t,
                        Err(e) => {
                            let _ = frames.send(Err(Error::internal(format!("Cannot encode a session frame: {e}")))).await;
                            continue;
                        }
                    };
                    if let Err(e) = sink.send(Message::text(text)).await {
                        let _ = frames.send(Err(lost(e.to_string()))).await;
                        return;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    // Drain until the server's close (or a short while).
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(m)) = stream.next().await {
                            if matches!(m, Message::Close(_)) { break; }
                        }
                    }).await;
                    return;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<SessionFrame>(&text) {
                    Ok(frame) => {
                        if frames.send(Ok(frame)).await.is_err() {
                            return;
                        }
                    }
                    // A frame type of a newer agent: skipped (unknown fields are ignored too).
                    Err(e) => tracing::debug!(error = %e, "skipped a session frame"),
                },
                Some(Ok(Message::Close(close))) => {
                    let code = close.as_ref().map(|c| u16::from(c.code)).unwrap_or(1005);
                    match code {
                        1000 | 1005 | sam_protocol::CLOSE_CODE_TAKEN_OVER => {}
                        1001 => {
                            let _ = frames.send(Err(Error::new(code::UNREACHABLE, format!("The agent on {node} is shutting down; the session ends with it.")))).await;
                        }
                        other => {
                            let reason = close.map(|c| c.reason.to_string()).unwrap_or_default();
                            let _ = frames.send(Err(lost(format!("closed with {other} {reason}")))).await;
                        }
                    }
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = frames.send(Err(lost(e.to_string()))).await;
                    return;
                }
                None => {
                    let _ = frames.send(Err(lost("the socket ended without a close".into()))).await;
                    return;
                }
            },
        }
    }
}
