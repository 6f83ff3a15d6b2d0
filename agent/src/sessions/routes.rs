//! `/workspaces/{id}/agent-sessions…`: HTTP handlers and the session socket.

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use sam_protocol::{
    CLOSE_CODE_TAKEN_OVER, CreateSession, HEADER_IDEMPOTENCY_KEY, SESSION_MAX_CLIENT_FRAME_BYTES,
    SessionClientFrame, SessionFrameBody, SessionList,
};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{AttachMode, Sessions, Ticket};
use crate::auth::WorkspaceAccess;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

const HISTORY_DEFAULT: usize = 1000;
const HISTORY_MAX: usize = 10_000;

pub async fn list(
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    Ok(Json(SessionList {
        sessions: state.sessions.list(&access.id),
    }))
}

pub async fn create(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<impl IntoResponse, ApiError> {
    let key = match headers.get(HEADER_IDEMPOTENCY_KEY) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key must be printable ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let (session, created) = state.sessions.create(&access.id, body, key).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(session)))
}

pub async fn get(
    access: WorkspaceAccess,
    Path((_, sid)): Path<(String, String)>,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    Ok(Json(state.sessions.get(&access.id, &sid)?.info()))
}

pub async fn stop(
    access: WorkspaceAccess,
    Path((_, sid)): Path<(String, String)>,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    Ok(Json(state.sessions.stop(&access.id, &sid).await?))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

pub async fn history(
    access: WorkspaceAccess,
    Path((_, sid)): Path<(String, String)>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    let limit = q.limit.unwrap_or(HISTORY_DEFAULT);
    if !(1..=HISTORY_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {HISTORY_MAX}"
        )));
    }
    let sessions = state.sessions.clone();
    let (sid2, ws) = (sid.clone(), access.id.clone());
    let (frames, more) = tokio::task::spawn_blocking(move || {
        sessions.history(&ws, &sid2, q.since.unwrap_or(0), limit)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Sessions::history_json(&frames, more),
    ))
}

fn flag(value: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match value {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

#[derive(Deserialize)]
pub struct AttachQuery {
    takeover: Option<String>,
    watch: Option<String>,
    since: Option<u64>,
}

pub async fn socket(
    access: WorkspaceAccess,
    Path((_, sid)): Path<(String, String)>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<AttachQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    let mode = AttachMode {
        takeover: flag(q.takeover.as_deref(), "takeover")?,
        watch: flag(q.watch.as_deref(), "watch")?,
    };
    let upgrade =
        upgrade.map_err(|e| ApiError::bad_request(format!("This route is a WebSocket: {e}.")))?;
    // The claim is taken before upgrading, so refusals are plain HTTP answers and
    // two racing attaches cannot both win. If the upgrade never completes, the
    // dropped ticket gives the claim back.
    let ticket = state.sessions.claim(&access.id, &sid, mode)?;
    let sessions = state.sessions.clone();
    let shutdown = state.shutdown.clone();
    let since = q.since.unwrap_or(0);
    Ok(upgrade
        .max_message_size(SESSION_MAX_CLIENT_FRAME_BYTES + 1)
        .max_frame_size(SESSION_MAX_CLIENT_FRAME_BYTES + 1)
        .on_upgrade(move |socket| attached(sessions, ticket, socket, since, shutdown)))
}

/// Sends a close frame and waits (briefly) for the client's, so the frame is not lost
/// to a reset while the client is still sending (an over-size frame).
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
    crate::exec::drain_until_closed(socket).await;
}

async fn send_text(socket: &mut WebSocket, text: &str) -> bool {
    socket
        .send(Message::Text(Utf8Bytes::from(text)))
        .await
        .is_ok()
}

async fn attached(
    sessions: Sessions,
    mut ticket: Ticket,
    mut socket: WebSocket,
    since: u64,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let session = ticket.session.clone();
    let (mut live, replay, head) = {
        let s = super::lock(&session.state);
        let live = session.live.subscribe();
        let replay = s.history.since(since, usize::MAX);
        (live, replay, s.history.head())
    };
    let attached = session.socket_frame(SessionFrameBody::Attached {
        session_id: session.id.clone(),
        takeover: ticket.mode.takeover,
        watch: ticket.mode.watch,
    });
    if !send_text(&mut socket, &attached).await {
        return;
    }
    // A `since` at or above the head replays nothing; live frames follow all the same.
    let mut last = since.min(head);
    match replay {
        Ok(frames) => {
            for f in frames {
                if !send_text(&mut socket, &f.json).await {
                    return;
                }
                last = f.seq;
                if f.is_stop {
                    close(&mut socket, 1000, "session stopped").await;
                    return;
                }
            }
        }
        Err(e) => {
            tracing::error!(session = %session.id, error = %e, "history replay failed");
            close(&mut socket, 1011, "history unavailable").await;
            return;
        }
    }
    let mut kicked = ticket.kicked.take();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                close(&mut socket, 1001, "agent shutting down").await;
                return;
            }
            _ = async { match kicked.as_mut() { Some(rx) => { let _ = rx.await; } None => std::future::pending().await } } => {
                let detached = session.socket_frame(SessionFrameBody::Detached { reason: "takeover".into() });
                let _ = send_text(&mut socket, &detached).await;
                close(&mut socket, CLOSE_CODE_TAKEN_OVER, "taken over").await;
                return;
            }
            frame = live.recv() => match frame {
                Ok(f) => {
                    if f.seq <= last { continue; }
                    if !send_text(&mut socket, &f.json).await { return; }
                    last = f.seq;
                    if f.is_stop {
                        close(&mut socket, 1000, "session stopped").await;
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too far behind the live channel: catch up from history.
                    let frames = super::lock(&session.state).history.since(last, usize::MAX);
                    let Ok(frames) = frames else { close(&mut socket, 1011, "history unavailable").await; return };
                    for f in frames {
                        if !send_text(&mut socket, &f.json).await { return; }
                        last = f.seq;
                        if f.is_stop {
                            close(&mut socket, 1000, "session stopped").await;
                            return;
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if text.len() > SESSION_MAX_CLIENT_FRAME_BYTES {
                        close(&mut socket, 1009, "frame over 8 MiB").await;
                        return;
                    }
                    let reply = if ticket.mode.watch {
                        Err("a watcher cannot send frames; attach without watch=true to take part".to_string())
                    } else {
                        match serde_json::from_str::<SessionClientFrame>(&text) {
                            Ok(frame) => sessions.client_frame(&session, frame),
                            Err(e) => Err(format!("not a session frame: {e}")),
                        }
                    };
                    if let Err(message) = reply {
                        let error = session.socket_frame(SessionFrameBody::Error { message });
                        if !send_text(&mut socket, &error).await { return; }
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    if data.len() > SESSION_MAX_CLIENT_FRAME_BYTES {
                        close(&mut socket, 1009, "frame over 8 MiB").await;
                        return;
                    }
                    let error = session.socket_frame(SessionFrameBody::Error { message: "session frames are JSON text".into() });
                    if !send_text(&mut socket, &error).await { return; }
                }
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    close(&mut socket, 1009, "frame too large or malformed").await;
                    return;
                }
            },
        }
    }
}
