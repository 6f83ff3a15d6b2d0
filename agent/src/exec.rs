//! `GET /workspaces/{id}/exec/ws`: one command without a terminal (what `sam exec`
//! uses). stdin from binary frames; stdout/stderr back as binary frames whose first
//! byte names the stream (1, 2), as Kubernetes' exec channels do; then `exit`.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use bollard::models::ExecConfig;
use bytes::{Buf, BytesMut};
use sam_protocol::{ExecClientFrame, ExecServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::WorkspaceAccess;
use crate::error::ApiError;
use crate::state::AppState;
use crate::workspaces::ExecTarget;

/// Client frames (stdin) may be up to this size.
const MAX_FRAME: usize = 1 << 20;

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
    let (mut out, mut stdin) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut stdin_open = true;
    loop {
        tokio::select! {
            n = out.read_buf(&mut buf) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        // Docker's stream: 8-byte headers [stream, 0, 0, 0, len (BE u32)].
                        while buf.len() >= 8 {
                            let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
                            if buf.len() < 8 + len { break; }
                            let stream = buf[0];
                            buf.advance(8);
                            let payload = buf.split_to(len);
                            if stream == 0 { continue; }
                            let mut out = Vec::with_capacity(len + 1);
                            out.push(stream);
                            out.extend_from_slice(&payload);
                            if socket.send(Message::Binary(out.into())).await.is_err() { return; }
                        }
                        buf.reserve(64 * 1024);
                    }
                }
            }
            incoming = socket.recv(), if stdin_open => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if stdin.write_all(&data).await.is_err() { stdin_open = false; }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ExecClientFrame>(&t) {
                    Ok(ExecClientFrame::Eof) => {
                        let _ = stdin.shutdown().await;
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
    let code = exit_code(&state, &exec_id).await;
    let _ = socket.send(frame(&ExecServerFrame::Exit { code })).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn exit_code(state: &AppState, exec_id: &str) -> i32 {
    for _ in 0..100 {
        match state.engine.inspect_exec(exec_id).await {
            Ok(s) if !s.running => return s.exit_code.map(|c| c as i32).unwrap_or(126),
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            Err(_) => break,
        }
    }
    126
}
