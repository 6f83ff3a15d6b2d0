//! The ACP client host: runs an agent process inside the workspace container (a
//! Docker exec with stdio, no TTY) and speaks the Agent Client Protocol to it with
//! the `agent-client-protocol` crate.
//!
//! It knows nothing of sockets or history: it takes [`ToAcp`] commands and emits
//! [`FromAcp`] events (the seam a holder process can sit behind). The session layer
//! (`super`) turns events into frames.
//!
//! Ordering rule of the crate: handlers run inside its dispatch loop, so none of
//! them waits for anything slow. A permission request's responder is parked in a
//! table and answered later from the command loop; `terminal/wait_for_exit`
//! answers from a spawned task.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    AuthenticateRequest, CancelNotification, ClientCapabilities, ContentBlock,
    CreateTerminalRequest, CreateTerminalResponse, FileSystemCapabilities, InitializeRequest,
    KillTerminalRequest, KillTerminalResponse, NewSessionRequest, PromptRequest,
    ReadTextFileRequest, ReadTextFileResponse, ReleaseTerminalRequest, ReleaseTerminalResponse,
    RequestPermissionOutcome, RequestPermissionRequest, RequestPermissionResponse,
    SelectedPermissionOutcome, SessionNotification, TerminalExitStatus, TerminalOutputRequest,
    TerminalOutputResponse, WaitForTerminalExitRequest, WaitForTerminalExitResponse,
    WriteTextFileRequest, WriteTextFileResponse,
};
use agent_client_protocol::{ByteStreams, Client, ErrorCode, UntypedMessage};
use bollard::models::ExecConfig;
use bytes::BytesMut;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::docker::{Engine, Tail, next_frame};
use crate::files::Folder;
use crate::process_group::ExecGroup;

/// Commands from the session layer.
#[derive(Debug)]
pub enum ToAcp {
    Prompt(Vec<Value>),
    Cancel,
    Permission { key: u64, option_id: String },
    Stop,
}

/// What happened, for the session layer to record.
#[derive(Debug)]
pub enum FromAcp {
    /// The handshake is done: prompts may flow.
    Ready,
    Update(Value),
    Permission {
        key: u64,
        tool_call: Value,
        options: Value,
    },
    /// A waiting permission request was answered `cancelled` (turn cancelled).
    PermissionCancelled {
        key: u64,
    },
    TurnEnd(String),
    PromptError(String),
    /// The handshake failed; the process is being ended.
    Failed(String),
    /// The agent process is gone: its exit code (None: unknown) and last stderr.
    Exited {
        code: Option<i64>,
        stderr: String,
    },
}

pub struct Launch {
    pub engine: Engine,
    pub container: String,
    pub user: Option<String>,
    pub workdir: String,
    pub argv: Vec<String>,
    /// Environment for the agent process only (API keys). Never logged.
    pub env: BTreeMap<String, String>,
    /// The project folder on the host, and who owns what is written there.
    pub folder: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// Starts the agent process and its protocol task.
pub fn start(
    launch: Launch,
) -> (
    mpsc::UnboundedSender<ToAcp>,
    mpsc::UnboundedReceiver<FromAcp>,
) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(launch, cmd_rx, ev_tx));
    (cmd_tx, ev_rx)
}

/// Stderr lines kept for error messages.
const STDERR_TAIL: usize = 8 * 1024;

async fn run(
    launch: Launch,
    cmds: mpsc::UnboundedReceiver<ToAcp>,
    events: mpsc::UnboundedSender<FromAcp>,
) {
    let engine = launch.engine.clone();
    let config = ExecConfig {
        cmd: Some(launch.argv.clone()),
        user: launch.user.clone(),
        working_dir: Some(launch.workdir.clone()),
        env: Some(launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        ..Default::default()
    };
    let started = match engine.create_exec(&launch.container, config).await {
        Ok(id) => match engine.start_exec_raw(&id, false).await {
            Ok(stream) => Ok((id, stream)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (exec_id, stream) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = events.send(FromAcp::Failed(format!(
                "The agent process could not be started: {e}."
            )));
            let _ = events.send(FromAcp::Exited {
                code: None,
                stderr: String::new(),
            });
            return;
        }
    };
    // Its process group: what the agent starts ends with the session.
    let group = ExecGroup::of_exec(&engine, &exec_id).await;
    let (mut raw_out, raw_in) = tokio::io::split(stream);
    let stderr = Arc::new(Mutex::new(Tail::new(STDERR_TAIL)));

    // Demultiplex Docker's stream: stdout feeds the protocol, stderr the tail.
    let (mut stdout_tx, stdout_rx) = tokio::io::duplex(256 * 1024);
    let tail = stderr.clone();
    // Docker's own message when it could not start the process arrives first on
    // stdout: it is no protocol, it goes with stderr and explains the exit.
    let start_failed = Arc::new(Mutex::new(None::<bytes::Bytes>));
    let failed = start_failed.clone();
    let demux = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut first = true;
        loop {
            buf.reserve(64 * 1024);
            match raw_out.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while let Some((stream, payload)) = next_frame(&mut buf) {
                        if stream == 1
                            && std::mem::take(&mut first)
                            && payload.starts_with(crate::exec::DOCKER_START_FAILED)
                        {
                            lock(&tail).push(&payload);
                            *lock(&failed) = Some(payload);
                        } else if stream == 2 {
                            lock(&tail).push(&payload);
                        } else if stream == 1 && stdout_tx.write_all(&payload).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let _ = stdout_tx.shutdown().await;
    });

    let host = Host {
        events: events.clone(),
        engine: engine.clone(),
        container: launch.container.clone(),
        user: launch.user.clone(),
        workdir: launch.workdir.clone(),
        folder: launch.folder.clone(),
        uid: launch.uid,
        gid: launch.gid,
        permissions: Arc::new(Mutex::new(HashMap::new())),
        next_key: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        terminals: Arc::new(Mutex::new(HashMap::new())),
    };
    let transport = ByteStreams::new(raw_in.compat_write(), stdout_rx.compat());
    let result = connect(host.clone(), transport, launch.env.clone(), cmds).await;
    if let Err(e) = result {
        tracing::debug!(error = %e.message, "ACP connection ended with an error");
    }
    host.release_terminals().await;
    // The process may still run (a stop, or a handshake refused), or have left
    // processes of its own behind: end them all.
    if let Some(group) = &group {
        group.end().await;
    }
    let _ = demux.await;
    let mut code = exit_code(&engine, &exec_id).await;
    if let Some(message) = lock(&start_failed).as_ref()
        && code == Some(126)
    {
        // Docker says 126 whatever the cause; the shell's 127 when it is missing.
        code = Some(i64::from(crate::exec::start_failure(message)));
    }
    let stderr = lock(&stderr).text();
    let _ = events.send(FromAcp::Exited { code, stderr });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn exit_code(engine: &Engine, exec_id: &str) -> Option<i64> {
    for _ in 0..100 {
        match engine.inspect_exec(exec_id).await {
            Ok(s) if !s.running => return s.exit_code,
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return None,
        }
    }
    None
}

type Responder = agent_client_protocol::v1::Responder<RequestPermissionResponse>;

/// What the protocol handlers share.
#[derive(Clone)]
struct Host {
    events: mpsc::UnboundedSender<FromAcp>,
    engine: Engine,
    container: String,
    user: Option<String>,
    workdir: String,
    folder: PathBuf,
    uid: u32,
    gid: u32,
    /// Permission requests waiting for their person, by key.
    permissions: Arc<Mutex<HashMap<u64, Responder>>>,
    next_key: Arc<std::sync::atomic::AtomicU64>,
    terminals: Arc<Mutex<HashMap<String, Arc<AcpTerminal>>>>,
}

fn acp_error(message: impl Into<String>) -> agent_client_protocol::Error {
    agent_client_protocol::Error::invalid_params().data(Value::String(message.into()))
}

impl Host {
    /// A container path inside the project folder → the path relative to it.
    fn project_relative(&self, path: &Path) -> Result<String, agent_client_protocol::Error> {
        let root = Path::new(&self.workdir);
        let rel = path.strip_prefix(root).map_err(|_| {
            acp_error(format!(
                "{} is outside the workspace's project folder {}",
                path.display(),
                root.display()
            ))
        })?;
        Ok(rel.to_string_lossy().into_owned())
    }

    fn folder(&self) -> Result<Folder, agent_client_protocol::Error> {
        Folder::open(&self.folder, self.uid, self.gid)
            .map_err(|e| acp_error(format!("the project folder cannot be opened: {e}")))
    }

    fn read_text(&self, req: &ReadTextFileRequest) -> Result<String, agent_client_protocol::Error> {
        let rel = self.project_relative(&req.path)?;
        let folder = self.folder()?;
        let text = match folder.read(&rel).map_err(|e| acp_error(e.to_string()))? {
            crate::files::Read::File { mut file, len } => {
                if len > crate::files::FILE_LIMIT as u64 {
                    return Err(acp_error("the file is larger than 16 MiB"));
                }
                let mut s = String::new();
                std::io::Read::read_to_string(&mut file, &mut s)
                    .map_err(|e| acp_error(format!("not a text file: {e}")))?;
                s
            }
            crate::files::Read::Dir(_) => return Err(acp_error("the path is a folder")),
        };
        let start = req.line.unwrap_or(1).max(1) as usize - 1;
        if start == 0 && req.limit.is_none() {
            return Ok(text);
        }
        let lines = text.split_inclusive('\n').skip(start);
        Ok(match req.limit {
            Some(n) => lines.take(n as usize).collect(),
            None => lines.collect(),
        })
    }

    fn write_text(&self, req: &WriteTextFileRequest) -> Result<(), agent_client_protocol::Error> {
        let rel = self.project_relative(&req.path)?;
        self.folder()?
            .write(&rel, req.content.as_bytes())
            .map_err(|e| acp_error(e.to_string()))
    }

    /// Answers a parked permission request.
    fn answer(&self, key: u64, option_id: Option<String>) {
        let Some(responder) = lock(&self.permissions).remove(&key) else {
            return;
        };
        let outcome = match option_id {
            Some(id) => RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(id)),
            None => RequestPermissionOutcome::Cancelled,
        };
        let _ = responder.respond(RequestPermissionResponse::new(outcome));
    }

    /// A cancelled turn: every waiting permission request is answered `cancelled`.
    fn cancel_permissions(&self) {
        let keys: Vec<u64> = lock(&self.permissions).keys().copied().collect();
        for key in keys {
            self.answer(key, None);
            let _ = self.events.send(FromAcp::PermissionCancelled { key });
        }
    }

    async fn release_terminals(&self) {
        let all: Vec<Arc<AcpTerminal>> = lock(&self.terminals).drain().map(|(_, t)| t).collect();
        for t in all {
            t.kill().await;
        }
    }
}

/// Runs the protocol until the session stops or the process goes.
async fn connect(
    host: Host,
    transport: ByteStreams<
        impl futures::AsyncWrite + Send + 'static,
        impl futures::AsyncRead + Send + 'static,
    >,
    env: BTreeMap<String, String>,
    mut cmds: mpsc::UnboundedReceiver<ToAcp>,
) -> Result<(), agent_client_protocol::Error> {
    let h = host.clone();
    let on_update = async move |n: SessionNotification, _cx| {
        let _ = h.events.send(FromAcp::Update(
            serde_json::to_value(&n.update).unwrap_or(Value::Null),
        ));
        Ok(())
    };
    let h = host.clone();
    let on_permission = async move |r: RequestPermissionRequest, responder: Responder, _cx| {
        let key = h.next_key.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        lock(&h.permissions).insert(key, responder);
        let _ = h.events.send(FromAcp::Permission {
            key,
            tool_call: serde_json::to_value(&r.tool_call).unwrap_or(Value::Null),
            options: serde_json::to_value(&r.options).unwrap_or(Value::Null),
        });
        Ok(())
    };
    let h = host.clone();
    let on_read =
        async move |r: ReadTextFileRequest,
                    responder: agent_client_protocol::v1::Responder<ReadTextFileResponse>,
                    _cx| {
            let h = h.clone();
            // File I/O off the dispatch loop.
            let result = tokio::task::spawn_blocking(move || h.read_text(&r))
                .await
                .unwrap_or_else(|e| Err(acp_error(e.to_string())));
            responder.respond_with_result(result.map(ReadTextFileResponse::new))
        };
    let h = host.clone();
    let on_write =
        async move |r: WriteTextFileRequest,
                    responder: agent_client_protocol::v1::Responder<WriteTextFileResponse>,
                    _cx| {
            let h = h.clone();
            let result = tokio::task::spawn_blocking(move || h.write_text(&r))
                .await
                .unwrap_or_else(|e| Err(acp_error(e.to_string())));
            responder.respond_with_result(result.map(|()| WriteTextFileResponse::new()))
        };
    let h = host.clone();
    let on_create_terminal =
        async move |r: CreateTerminalRequest,
                    responder: agent_client_protocol::v1::Responder<CreateTerminalResponse>,
                    _cx| {
            let h = h.clone();
            tokio::spawn(async move {
                let result = AcpTerminal::start(&h, r).await;
                let _ = responder.respond_with_result(result.map(CreateTerminalResponse::new));
            });
            Ok(())
        };
    let h = host.clone();
    let on_output =
        async move |r: TerminalOutputRequest,
                    responder: agent_client_protocol::v1::Responder<TerminalOutputResponse>,
                    _cx| {
            let t = lock(&h.terminals).get(&r.terminal_id.to_string()).cloned();
            match t {
                Some(t) => {
                    let (output, truncated) = t.output();
                    let mut response = TerminalOutputResponse::new(output, truncated);
                    response.exit_status = t.exit.borrow().clone();
                    responder.respond(response)
                }
                None => responder.respond_with_result(Err(acp_error("no such terminal"))),
            }
        };
    let h = host.clone();
    let on_wait = async move |r: WaitForTerminalExitRequest,
                              responder: agent_client_protocol::v1::Responder<
        WaitForTerminalExitResponse,
    >,
                              _cx| {
        let t = lock(&h.terminals).get(&r.terminal_id.to_string()).cloned();
        match t {
            Some(t) => {
                let mut exit = t.exit.clone();
                tokio::spawn(async move {
                    let status = loop {
                        if let Some(s) = exit.borrow().clone() {
                            break Ok(s);
                        }
                        if exit.changed().await.is_err() {
                            break Err(acp_error("the terminal was released"));
                        }
                    };
                    let _ =
                        responder.respond_with_result(status.map(WaitForTerminalExitResponse::new));
                });
                Ok(())
            }
            None => responder.respond_with_result(Err(acp_error("no such terminal"))),
        }
    };
    let h = host.clone();
    let on_kill =
        async move |r: KillTerminalRequest,
                    responder: agent_client_protocol::v1::Responder<KillTerminalResponse>,
                    _cx| {
            let t = lock(&h.terminals).get(&r.terminal_id.to_string()).cloned();
            tokio::spawn(async move {
                match t {
                    Some(t) => {
                        t.kill().await;
                        let _ = responder.respond(KillTerminalResponse::new());
                    }
                    None => {
                        let _ = responder.respond_with_result(Err(acp_error("no such terminal")));
                    }
                }
            });
            Ok(())
        };
    let h = host.clone();
    let on_release =
        async move |r: ReleaseTerminalRequest,
                    responder: agent_client_protocol::v1::Responder<ReleaseTerminalResponse>,
                    _cx| {
            let t = lock(&h.terminals).remove(&r.terminal_id.to_string());
            tokio::spawn(async move {
                if let Some(t) = t {
                    t.kill().await;
                }
                let _ = responder.respond(ReleaseTerminalResponse::new());
            });
            Ok(())
        };

    let main = host.clone();
    Client
        .v1()
        .name("sam-agent")
        .on_receive_notification(on_update, agent_client_protocol::on_receive_notification!())
        .on_receive_request(on_permission, agent_client_protocol::on_receive_request!())
        .on_receive_request(on_read, agent_client_protocol::on_receive_request!())
        .on_receive_request(on_write, agent_client_protocol::on_receive_request!())
        .on_receive_request(on_create_terminal, agent_client_protocol::on_receive_request!())
        .on_receive_request(on_output, agent_client_protocol::on_receive_request!())
        .on_receive_request(on_wait, agent_client_protocol::on_receive_request!())
        .on_receive_request(on_kill, agent_client_protocol::on_receive_request!())
        .on_receive_request(on_release, agent_client_protocol::on_receive_request!())
        .connect_with(transport, async move |cx| {
            let host = main;
            // A stop during the handshake (an agent that never answers) ends it too.
            let handshake = async {
                // Handshake: initialize, and wait for its answer before anything else.
                let capabilities = ClientCapabilities::new()
                    .fs(FileSystemCapabilities::new().read_text_file(true).write_text_file(true))
                    .terminal(true);
                let init = InitializeRequest::new(ProtocolVersion::V1).client_capabilities(capabilities);
                // Sent untyped so the agent's `authMethods` arrive whole (the typed
                // schema drops the `vars` of `env_var` methods).
                let init: Value = match cx
                    .send_request(UntypedMessage::new("initialize", init)?)
                    .block_task()
                    .await
                {
                    Ok(v) => v,
                    Err(e) if gone(&e) => return Ok(None),
                    Err(e) => {
                        let _ = host.events.send(FromAcp::Failed(format!(
                            "The agent did not complete the ACP handshake: {}.",
                            describe(&e)
                        )));
                        return Ok(None);
                    }
                };
                let auth_methods = init.get("authMethods").and_then(Value::as_array).cloned().unwrap_or_default();
                let new_session = || cx.send_request(NewSessionRequest::new(PathBuf::from(&host.workdir))).block_task();
                let session_id = match new_session().await {
                    Ok(r) => r.session_id,
                    Err(e) if e.code == ErrorCode::AUTH_REQUIRED => {
                        let usable = auth_methods.iter().find(|m| {
                            m.get("type").and_then(Value::as_str) == Some("env_var")
                                && m.get("vars").and_then(Value::as_array).is_some_and(|vars| {
                                    !vars.is_empty()
                                        && vars.iter().all(|v| {
                                            v.get("name").and_then(Value::as_str).is_some_and(|n| env.contains_key(n))
                                        })
                                })
                        });
                        let retried = match usable.and_then(|m| m.get("id")).and_then(Value::as_str) {
                            Some(method) => {
                                match cx.send_request(AuthenticateRequest::new(method.to_string())).block_task().await {
                                    Ok(_) => new_session().await,
                                    Err(e) => Err(e),
                                }
                            }
                            None => Err(e),
                        };
                        match retried {
                            Ok(r) => r.session_id,
                            Err(e) if gone(&e) => return Ok(None),
                            Err(e) => {
                                let _ = host.events.send(FromAcp::Failed(auth_message(&e, &auth_methods)));
                                return Ok(None);
                            }
                        }
                    }
                    Err(e) if gone(&e) => return Ok(None),
                    Err(e) => {
                        let _ = host.events.send(FromAcp::Failed(format!(
                            "The agent refused to start a session: {}.",
                            describe(&e)
                        )));
                        return Ok(None);
                    }
                };
                Ok::<_, agent_client_protocol::Error>(Some(session_id))
            };
            let session_id = tokio::select! {
                r = handshake => match r? {
                    Some(id) => id,
                    None => return Ok(()),
                },
                () = stopped(&mut cmds) => return Ok(()),
            };
            let _ = host.events.send(FromAcp::Ready);

            loop {
                // The agent's output closing (it exited or crashed) ends the
                // connection: `Exited` then says how the process ended.
                let cmd = tokio::select! {
                    cmd = cmds.recv() => cmd,
                    () = cx.incoming_closed() => return Ok(()),
                };
                let blocks = match cmd {
                    None | Some(ToAcp::Stop) => return Ok(()),
                    Some(ToAcp::Cancel) => {
                        host.cancel_permissions();
                        continue;
                    }
                    Some(ToAcp::Permission { key, option_id }) => {
                        host.answer(key, Some(option_id));
                        continue;
                    }
                    Some(ToAcp::Prompt(blocks)) => blocks,
                };
                let blocks: Vec<ContentBlock> = match serde_json::from_value(Value::Array(blocks)) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = host.events.send(FromAcp::PromptError(format!("The prompt's content is not valid ACP content: {e}")));
                        continue;
                    }
                };
                let turn = cx.send_request(PromptRequest::new(session_id.clone(), blocks)).block_task();
                tokio::pin!(turn);
                loop {
                    tokio::select! {
                        result = &mut turn => {
                            let event = match result {
                                Ok(r) => FromAcp::TurnEnd(
                                    serde_json::to_value(r.stop_reason)
                                        .ok()
                                        .and_then(|v| v.as_str().map(str::to_string))
                                        .unwrap_or_else(|| "end_turn".into()),
                                ),
                                // The process went during the turn: `Exited` says how.
                                Err(e) if gone(&e) => return Ok(()),
                                Err(e) => FromAcp::PromptError(describe(&e)),
                            };
                            let _ = host.events.send(event);
                            break;
                        }
                        cmd = cmds.recv() => match cmd {
                            None | Some(ToAcp::Stop) => return Ok(()),
                            Some(ToAcp::Cancel) => {
                                cx.send_notification(CancelNotification::new(session_id.clone()))?;
                                host.cancel_permissions();
                            }
                            Some(ToAcp::Permission { key, option_id }) => host.answer(key, Some(option_id)),
                            Some(ToAcp::Prompt(_)) => {
                                // The session layer queues prompts during a turn.
                                let _ = host.events.send(FromAcp::PromptError("A turn is already running.".into()));
                            }
                        },
                    }
                }
            }
        })
        .await
}

/// The agent's side of the connection closed (its process ended): not an answer
/// of the agent's, so the exit status and stderr explain it instead.
fn gone(e: &agent_client_protocol::Error) -> bool {
    agent_client_protocol::is_incoming_transport_closed(e)
        || agent_client_protocol::is_connection_terminated(e)
}

/// Resolves once the session layer asks to stop (or goes away); other commands
/// cannot arrive before the handshake is done (prompts wait for `running`).
async fn stopped(cmds: &mut mpsc::UnboundedReceiver<ToAcp>) {
    loop {
        match cmds.recv().await {
            None | Some(ToAcp::Stop) => return,
            Some(_) => {}
        }
    }
}

/// "<message>: <data.message>" (the latter where the agent gave one).
fn describe(e: &agent_client_protocol::Error) -> String {
    let detail = e.data.as_ref().and_then(|d| match d {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_string),
        _ => None,
    });
    match detail {
        Some(d) if !d.is_empty() && d != e.message => format!("{}: {d}", e.message),
        _ => e.message.clone(),
    }
}

/// "Authentication required: set CODEX_API_KEY or OPENAI_API_KEY, or log in with ChatGPT".
fn auth_message(e: &agent_client_protocol::Error, methods: &[Value]) -> String {
    let mut vars = Vec::new();
    let mut others = Vec::new();
    for m in methods {
        if m.get("type").and_then(Value::as_str) == Some("env_var") {
            let names: Vec<&str> = m
                .get("vars")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(|x| x.get("name").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if !names.is_empty() {
                vars.push(names.join(" and "));
            }
        } else if let Some(name) = m.get("name").and_then(Value::as_str) {
            others.push(name.to_lowercase());
        }
    }
    let mut ways = Vec::new();
    if !vars.is_empty() {
        ways.push(format!("set {}", vars.join(" or ")));
    }
    ways.extend(others);
    let base = describe(e);
    if ways.is_empty() {
        base
    } else {
        format!("{base}: {}", ways.join(", or "))
    }
}

/// A command the agent runs through `terminal/create`: a Docker exec whose output
/// (stdout and stderr together) is kept up to the agent's byte limit.
struct AcpTerminal {
    exec_id: String,
    /// The command's process group (`None` when it ended at once).
    group: Option<ExecGroup>,
    output: Mutex<(Vec<u8>, bool)>,
    limit: usize,
    exit: watch::Receiver<Option<TerminalExitStatus>>,
}

impl AcpTerminal {
    async fn start(
        host: &Host,
        r: CreateTerminalRequest,
    ) -> Result<String, agent_client_protocol::Error> {
        let mut argv = vec![r.command.clone()];
        argv.extend(r.args.iter().cloned());
        let cwd = r
            .cwd
            .as_ref()
            .map(|c| c.display().to_string())
            .unwrap_or_else(|| host.workdir.clone());
        let config = ExecConfig {
            cmd: Some(argv),
            user: host.user.clone(),
            working_dir: Some(cwd),
            env: Some(
                r.env
                    .iter()
                    .map(|v| format!("{}={}", v.name, v.value))
                    .collect(),
            ),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec_id = host
            .engine
            .create_exec(&host.container, config)
            .await
            .map_err(|e| acp_error(format!("cannot run the command: {e}")))?;
        let stream = host
            .engine
            .start_exec_raw(&exec_id, false)
            .await
            .map_err(|e| acp_error(format!("cannot run the command: {e}")))?;
        let group = ExecGroup::of_exec(&host.engine, &exec_id).await;
        let (tx, rx) = watch::channel(None);
        let terminal = Arc::new(AcpTerminal {
            exec_id: exec_id.clone(),
            group,
            output: Mutex::new((Vec::new(), false)),
            limit: r.output_byte_limit.unwrap_or(1 << 20).min(16 << 20) as usize,
            exit: rx,
        });
        let id = format!("term-{}", crate::workspaces::new_id());
        lock(&host.terminals).insert(id.clone(), terminal.clone());
        let engine = host.engine.clone();
        tokio::spawn(async move {
            let (mut out, _input) = tokio::io::split(stream);
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                buf.reserve(64 * 1024);
                match out.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        while let Some((_, payload)) = next_frame(&mut buf) {
                            terminal.push(&payload);
                        }
                    }
                }
            }
            let code = exit_code(&engine, &terminal.exec_id).await;
            let mut status = TerminalExitStatus::new();
            match code {
                Some(c) if c > 128 && c < 160 => {
                    status.signal = Some(format!("signal {}", c - 128))
                }
                Some(c) => status.exit_code = Some(c as u32),
                None => {}
            }
            let _ = tx.send(Some(status));
        });
        Ok(id)
    }

    fn push(&self, data: &[u8]) {
        let mut out = lock(&self.output);
        out.0.extend_from_slice(data);
        if out.0.len() > self.limit {
            // Keep the end, starting on a character boundary.
            let mut cut = out.0.len() - self.limit;
            while cut < out.0.len() && (out.0[cut] & 0xC0) == 0x80 {
                cut += 1;
            }
            out.0.drain(..cut);
            out.1 = true;
        }
    }

    fn output(&self) -> (String, bool) {
        let out = lock(&self.output);
        (String::from_utf8_lossy(&out.0).into_owned(), out.1)
    }

    async fn kill(&self) {
        if let Some(group) = &self.group {
            group.end().await;
        }
    }
}
