//! `/workspaces/{id}/agent-sessions…`: HTTP handlers and the session socket.

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use sam_protocol::{
    CLOSE_CODE_TAKEN_OVER, CreateSession, HEADER_IDEMPOTENCY_KEY, SESSION_MAX_CLIENT_FRAME_BYTES,
    SessionList,
};
use serde::Deserialize;

use super::{Attached, Sessions};
use crate::auth::WorkspaceAccess;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::holders::wire::Msg;
use crate::state::AppState;

const HISTORY_DEFAULT: usize = 1000;
const HISTORY_MAX: usize = 10_000;

pub async fn list(
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    Ok(Json(SessionList {
        sessions: state.sessions.list_fresh(&access.id).await,
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
    Ok(Json(state.sessions.get_fresh(&access.id, &sid).await?))
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
    let takeover = flag(q.takeover.as_deref(), "takeover")?;
    let watch = flag(q.watch.as_deref(), "watch")?;
    let upgrade =
        upgrade.map_err(|e| ApiError::bad_request(format!("This route is a WebSocket: {e}.")))?;
    // The claim is taken (by the session's holder) before upgrading, so refusals
    // are plain HTTP answers and two racing attaches cannot both win. If the
    // upgrade never completes, the dropped connection gives the claim back.
    let attached = state
        .sessions
        .claim(&access.id, &sid, takeover, watch, q.since.unwrap_or(0))
        .await?;
    let shutdown = state.shutdown.clone();
    Ok(upgrade
        .max_message_size(SESSION_MAX_CLIENT_FRAME_BYTES + 1)
        .max_frame_size(SESSION_MAX_CLIENT_FRAME_BYTES + 1)
        .on_upgrade(move |socket| relay(attached, socket, shutdown)))
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

fn close_reason(code: u16) -> &'static str {
    match code {
        1000 => "session stopped",
        CLOSE_CODE_TAKEN_OVER => "taken over",
        _ => "session unavailable",
    }
}

/// Relays one attached socket to the session's holder: its frames out verbatim,
/// the client's frames in (size-checked here).
async fn relay(
    attached: Attached,
    mut socket: WebSocket,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use futures::{SinkExt, StreamExt};

    let Attached {
        mut conn,
        first,
        relay,
    } = attached;
    let text = |b: bytes::Bytes| Utf8Bytes::try_from(b).map(Message::Text);
    match text(first) {
        Ok(m) => {
            if socket.send(m).await.is_err() {
                return;
            }
        }
        Err(_) => return,
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                close(&mut socket, 1001, "agent shutting down").await;
                return;
            }
            from_holder = conn.next() => match from_holder {
                Some(Ok(Msg::Frame(b))) => {
                    let Ok(m) = text(b) else { continue };
                    if socket.send(m).await.is_err() { return; }
                }
                Some(Ok(Msg::Close(code))) => {
                    // No longer attached from the moment the client can see it.
                    drop(relay);
                    close(&mut socket, code, close_reason(code)).await;
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    close(&mut socket, 1011, "the session's holder went away").await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    if t.len() > SESSION_MAX_CLIENT_FRAME_BYTES {
                        close(&mut socket, 1009, "frame over 8 MiB").await;
                        return;
                    }
                    let bytes: bytes::Bytes = t.into();
                    if conn.send(Msg::Client(bytes)).await.is_err() { return; }
                }
                Some(Ok(Message::Binary(data))) => {
                    if data.len() > SESSION_MAX_CLIENT_FRAME_BYTES {
                        close(&mut socket, 1009, "frame over 8 MiB").await;
                        return;
                    }
                    // A marker the holder answers with "frames are JSON text".
                    if conn.send(Msg::Client(bytes::Bytes::from_static(&[0]))).await.is_err() { return; }
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
