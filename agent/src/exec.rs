//! `GET /workspaces/{id}/exec/ws`: one command without a terminal (what `sam exec`
//! uses). stdin from binary frames; stdout/stderr back as binary frames whose first
//! byte names the stream (1, 2), as Kubernetes' exec channels do; then `exit`.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use bollard::models::ExecConfig;
use bytes::BytesMut;
use sam_protocol::{ExecClientFrame, ExecServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::error::TrySendError;

use crate::auth::WorkspaceAccess;
use crate::error::ApiError;
use crate::state::AppState;
use crate::workspaces::ExecTarget;

/// Client frames (stdin) may be up to this size.
const MAX_FRAME: usize = 1 << 20;
/// stdin frames queued for the process before the socket is no longer read.
const STDIN_BACKLOG: usize = 8;

pub async fn socket(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let target = state.workspaces.exec_target(&access.id).await?;
    let upgrade =
        upgrade.map_err(|e| ApiError::bad_request(format!("This route is a WebSocket: {e}.")))?;
    Ok(upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| run(state, target, socket)))
}

fn frame(f: &ExecServerFrame) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(f).unwrap_or_default(),
    ))
}

async fn fail(mut socket: WebSocket, message: String) {
    let _ = socket
        .send(frame(&ExecServerFrame::Error { message }))
        .await;
    let _ = socket.send(Message::Close(None)).await;
    drain_until_closed(&mut socket).await;
}

fn valid_env(env: &std::collections::BTreeMap<String, String>) -> bool {
    env.iter().all(|(k, v)| {
        k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !v.contains('\0')
    })
}

async fn run(state: AppState, target: ExecTarget, mut socket: WebSocket) {
    // The first frame says what to run.
    let start = match socket.recv().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<ExecClientFrame>(&t),
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
        Some(Ok(_)) => {
            return fail(
                socket,
                "the first frame must be {\"type\":\"start\",…}".into(),
            )
            .await;
        }
    };
    let (command, env, cwd) = match start {
        Ok(ExecClientFrame::Start { command, env, cwd }) => (command, env.unwrap_or_default(), cwd),
        Ok(_) => return fail(socket, "the first frame must be start".into()).await,
        Err(e) => return fail(socket, format!("not an exec frame: {e}")).await,
    };
    if command.is_empty() || command.iter().any(|a| a.contains('\0')) {
        return fail(
            socket,
            "command must be a non-empty argv without NUL bytes".into(),
        )
        .await;
    }
    if !valid_env(&env) {
        return fail(socket, "env names must match [A-Za-z_][A-Za-z0-9_]*".into()).await;
    }
    let workdir = match cwd {
        Some(c) if c.starts_with('/') => c,
        Some(c) => format!("{}/{c}", target.workdir),
        None => target.workdir.clone(),
    };
    let config = ExecConfig {
        cmd: Some(command),
        user: target.user.clone(),
        working_dir: Some(workdir),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        ..Default::default()
    };
    let engine = &state.engine;
    let exec_id = match engine.create_exec(&target.container, config).await {
        Ok(id) => id,
        Err(e) => return fail(socket, format!("cannot run the command: {e}")).await,
    };
    let stream = match engine.start_exec_raw(&exec_id, false).await {
        Ok(s) => s,
        Err(e) => return fail(socket, format!("cannot run the command: {e}")).await,
    };
    let (mut out, stdin) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut stdin_open = true;
    // stdin is written by a task of its own, so output keeps flowing while a
    // process that echoes its input (`cat`) is fed more than the pipes hold. The
    // channel is small and the socket is not read while it is full: bounded memory.
    let (stdin_tx, stdin_rx) = tokio::sync::mpsc::channel::<Option<bytes::Bytes>>(STDIN_BACKLOG);
    let writer = tokio::spawn(write_stdin(stdin, stdin_rx));
    let mut unsent: Option<Option<bytes::Bytes>> = None;
    // Docker's own message when the process could not be started, held back until
    // the exec's end tells whether it ran (see `start_failure`).
    let mut held: Option<bytes::Bytes> = None;
    let mut forwarded = false;
    loop {
        tokio::select! {
            n = out.read_buf(&mut buf) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        while let Some((stream, payload)) = crate::docker::next_frame(&mut buf) {
                            if stream == 0 { continue; }
                            if !forwarded && stream == 1 && payload.starts_with(DOCKER_START_FAILED) {
                                held = Some(payload);
                                forwarded = true;
                                continue;
                            }
                            forwarded = true;
                            if let Some(h) = held.take()
                                && socket.send(output(1, &h)).await.is_err()
                            {
                                return;
                            }
                            if socket.send(output(stream, &payload)).await.is_err() { return; }
                        }
                        buf.reserve(64 * 1024);
                    }
                }
            }
            permit = stdin_tx.reserve(), if unsent.is_some() => match permit {
                Ok(permit) => permit.send(unsent.take().flatten()),
                Err(_) => { unsent = None; stdin_open = false; }
            },
            incoming = socket.recv(), if stdin_open && unsent.is_none() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if let Err(e) = stdin_tx.try_send(Some(data)) {
                        match e {
                            TrySendError::Full(item) => unsent = Some(item),
                            TrySendError::Closed(_) => stdin_open = false,
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ExecClientFrame>(&t) {
                    Ok(ExecClientFrame::Eof) => {
                        if let Err(TrySendError::Full(item)) = stdin_tx.try_send(None) {
                            unsent = Some(item);
                        }
                        stdin_open = false;
                    }
                    _ => {
                        let message = "expected binary stdin or {\"type\":\"eof\"}".to_string();
                        if socket.send(frame(&ExecServerFrame::Error { message })).await.is_err() { return; }
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    writer.abort();
    let (mut code, started) = exit_code(&state, &exec_id).await;
    if let Some(message) = held {
        // Docker's text is not the command's output: it goes to stderr.
        if !started {
            code = start_failure(&message);
        }
        let stream = if started { 1 } else { 2 };
        if socket.send(output(stream, &message)).await.is_err() {
            return;
        }
    }
    let _ = socket.send(frame(&ExecServerFrame::Exit { code })).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("exited"),
        })))
        .await;
    drain_until_closed(&mut socket).await;
}

/// After our close frame: read what the client still sends until its close (or a
/// short while). Dropping a socket with unread input makes the kernel reset the
/// connection, which can destroy the exit and close frames before the client
/// reads them.
pub(crate) async fn drain_until_closed(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Feeds the process's stdin; `None` closes it (the client's `eof`).
async fn write_stdin(
    mut stdin: tokio::io::WriteHalf<crate::docker::RawStream>,
    mut rx: tokio::sync::mpsc::Receiver<Option<bytes::Bytes>>,
) {
    while let Some(item) = rx.recv().await {
        match item {
            Some(data) => {
                if stdin.write_all(&data).await.is_err() {
                    return;
                }
            }
            None => {
                let _ = stdin.shutdown().await;
                return;
            }
        }
    }
}

/// How Docker's message starts when it could not start an exec's process. It
/// arrives as stdout, and Docker 20.10 then gives exit code 126 whatever the cause.
pub const DOCKER_START_FAILED: &[u8] = b"OCI runtime exec failed";

/// The shell's code for a process that could not be started: 127 when the
/// program is not there, 126 when it cannot run (not executable, bad directory).
pub fn start_failure(message: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(message);
    let missing_program = text.contains("executable file not found")
        || (text.contains("exec: \"") && text.contains("no such file or directory"));
    if missing_program { 127 } else { 126 }
}

fn output(stream: u8, data: &[u8]) -> Message {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(stream);
    out.extend_from_slice(data);
    Message::Binary(out.into())
}

/// The exit code, and whether the process was started at all.
async fn exit_code(state: &AppState, exec_id: &str) -> (i32, bool) {
    for _ in 0..100 {
        match state.engine.inspect_exec(exec_id).await {
            Ok(s) if !s.running => {
                return (
                    s.exit_code.map(|c| c as i32).unwrap_or(126),
                    s.pid.is_some(),
                );
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            Err(_) => break,
        }
    }
    (126, true)
}
