//! `/workspaces/{id}/terminals…`: list, create, delete, and the terminal socket.

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sam_protocol::{
    CreateTerminal, ErrorCode, TERMINAL_MAX_DIMENSION, TERMINAL_MAX_FRAME_BYTES,
    TerminalClientFrame, TerminalList, TerminalServerFrame,
};

use super::Held;
use crate::auth::WorkspaceAccess;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// Close code for a viewer that fell too far behind (it may reconnect: the ring
/// replays what it missed, up to its size).
const CLOSE_TOO_SLOW: u16 = 1013;

fn check_size(cols: u16, rows: u16) -> Result<(), String> {
    let ok = |n: u16| (1..=TERMINAL_MAX_DIMENSION).contains(&n);
    if ok(cols) && ok(rows) {
        Ok(())
    } else {
        Err(format!(
            "cols and rows must each be between 1 and {TERMINAL_MAX_DIMENSION}"
        ))
    }
}

pub async fn list(
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    Ok(Json(TerminalList {
        terminals: state.terminals.list(&access.id),
    }))
}

pub async fn create(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateTerminal>,
) -> Result<impl IntoResponse, ApiError> {
    check_size(body.cols, body.rows).map_err(ApiError::bad_request)?;
    if let Some(cmd) = &body.command
        && (cmd.is_empty() || cmd.iter().any(|a| a.contains('\0')))
    {
        return Err(ApiError::bad_request(
            "command must be a non-empty argv without NUL bytes",
        ));
    }
    let target = state.workspaces.exec_target(&access.id).await?;
    let argv = match body.command {
        Some(cmd) => cmd,
        None => {
            let shell = super::login_shell(target.pid, target.user.as_deref().unwrap_or(""));
            vec![shell, "-l".into()]
        }
    };
    let id = crate::workspaces::new_id();
    let spec = crate::holders::TerminalSpec {
        node: state.config.node_id.clone(),
        workspace: access.id.clone(),
        id: id.clone(),
        container: target.container,
        user: target.user,
        workdir: target.workdir,
        argv,
        cols: body.cols,
        rows: body.rows,
    };
    let terminal = state
        .terminals_host
        .start(&spec)
        .await
        .map_err(|e| ApiError::internal(format!("terminal {id}: {e}")))?;
    let info = terminal.info();
    state.terminals.insert(terminal);
    Ok((StatusCode::CREATED, Json(info)))
}

pub async fn delete(
    access: WorkspaceAccess,
    Path((_, tid)): Path<(String, String)>,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    let terminal = state
        .terminals
        .remove(&access.id, &tid)
        .ok_or_else(|| terminal_not_found(&tid))?;
    terminal.kill_and_release();
    terminal.wait_exit(std::time::Duration::from_secs(2)).await;
    Ok(StatusCode::NO_CONTENT)
}

fn terminal_not_found(tid: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TerminalNotFound,
        format!("There is no terminal {tid:?} in this workspace."),
    )
}

pub async fn socket(
    access: WorkspaceAccess,
    Path((_, tid)): Path<(String, String)>,
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    let terminal = state
        .terminals
        .get(&access.id, &tid)
        .ok_or_else(|| terminal_not_found(&tid))?;
    let upgrade =
        upgrade.map_err(|e| ApiError::bad_request(format!("This route is a WebSocket: {e}.")))?;
    let shutdown = state.shutdown.clone();
    Ok(upgrade
        // One byte over the contract's limit is let through, so the handler can
        // answer it with 1009 itself; anything larger is cut off by the codec.
        .max_message_size(TERMINAL_MAX_FRAME_BYTES + 1)
        .max_frame_size(TERMINAL_MAX_FRAME_BYTES + 1)
        .on_upgrade(move |socket| view(terminal, socket, shutdown)))
}

fn control(frame: &TerminalServerFrame) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(frame).unwrap_or_default(),
    ))
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
    crate::exec::drain_until_closed(socket).await;
}

/// One viewer: the holder sends the scrollback, `ready`, then live output; input
/// and resizes go back. Frames are relayed as they come (bytes stay bytes).
async fn view(
    terminal: std::sync::Arc<Held>,
    mut socket: WebSocket,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use crate::holders::wire::Msg;
    use futures::{SinkExt, StreamExt};

    let mut holder = match terminal.view().await {
        Ok(h) => h,
        Err(_) => {
            // The holder is gone: report what is known, as for an exited terminal.
            let _ = socket.send(control(&TerminalServerFrame::Ready)).await;
            let code = terminal.info().exit_code.unwrap_or(super::HOLDER_LOST_EXIT);
            let _ = socket
                .send(control(&TerminalServerFrame::Exit { code }))
                .await;
            close(&mut socket, 1000, "exited").await;
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                close(&mut socket, 1001, "agent shutting down").await;
                return;
            }
            from_holder = holder.next() => match from_holder {
                Some(Ok(Msg::Output(b))) => {
                    if socket.send(Message::Binary(b)).await.is_err() { return; }
                }
                Some(Ok(Msg::Ready)) => {
                    if socket.send(control(&TerminalServerFrame::Ready)).await.is_err() { return; }
                }
                Some(Ok(Msg::Exit(code))) => {
                    let _ = socket.send(control(&TerminalServerFrame::Exit { code })).await;
                    close(&mut socket, 1000, "exited").await;
                    return;
                }
                Some(Ok(Msg::TooSlow)) => {
                    close(&mut socket, CLOSE_TOO_SLOW, "viewer too slow; reconnect to catch up").await;
                    return;
                }
                Some(Ok(Msg::Error(message))) => {
                    if socket.send(control(&TerminalServerFrame::Error { message })).await.is_err() { return; }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    // The holder went without an exit: the terminal is over.
                    let _ = socket
                        .send(control(&TerminalServerFrame::Error { message: "the terminal's holder process ended".into() }))
                        .await;
                    let _ = socket.send(control(&TerminalServerFrame::Exit { code: super::HOLDER_LOST_EXIT })).await;
                    close(&mut socket, 1000, "exited").await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if data.len() > TERMINAL_MAX_FRAME_BYTES {
                        close(&mut socket, 1009, "frame over 1 MiB").await;
                        return;
                    }
                    if holder.send(Msg::Input(data)).await.is_err() {
                        continue;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if text.len() > TERMINAL_MAX_FRAME_BYTES {
                        close(&mut socket, 1009, "frame over 1 MiB").await;
                        return;
                    }
                    let reply = match serde_json::from_str::<TerminalClientFrame>(&text) {
                        Ok(TerminalClientFrame::Resize { cols, rows }) => match check_size(cols, rows) {
                            Ok(()) => {
                                terminal.note_size(cols, rows);
                                let _ = holder.send(Msg::Resize { cols, rows }).await;
                                None
                            }
                            Err(e) => Some(e),
                        },
                        Err(e) => Some(format!("not a terminal control frame: {e}")),
                    };
                    if let Some(message) = reply
                        && socket.send(control(&TerminalServerFrame::Error { message })).await.is_err()
                    {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    // Over-size frames end here (the codec refuses them).
                    tracing::debug!(terminal = %terminal.id, error = %e, "viewer socket error");
                    close(&mut socket, 1009, "frame too large or malformed").await;
                    return;
                }
            },
        }
    }
}
