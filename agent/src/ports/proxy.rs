//! `/workspaces/{id}/ports…`: the port list, the HTTP proxy (WebSocket upgrades
//! included) and the raw TCP tunnel. Each request gets its own connection into the
//! container's network namespace; bodies stream both ways.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sam_protocol::{ErrorCode, PortList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ConnectError;
use crate::auth::WorkspaceAccess;
use crate::error::ApiError;
use crate::state::AppState;

/// The app must send its response headers within this time.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// TCP tunnel frames carry at most this many bytes each way.
const TUNNEL_CHUNK: usize = 64 * 1024;

pub async fn list(
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let target = state.workspaces.exec_target(&access.id).await?;
    let ports = super::listening(target.pid).map_err(ApiError::internal)?;
    Ok(Json(PortList { ports }))
}

/// A port as written canonically (digits, no sign, no leading zero), so that the
/// prefix stripped from the path is the one in the request.
fn parse_port(raw: &str) -> Result<u16, ApiError> {
    Some(raw)
        .filter(|r| r.bytes().all(|b| b.is_ascii_digit()) && !r.starts_with('0'))
        .and_then(|r| r.parse::<u16>().ok())
        .filter(|p| *p >= 1)
        .ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not a port between 1 and 65535")))
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Refused(_) => ApiError::new(ErrorCode::PortUnreachable, format!("{e}.")),
            ConnectError::Namespace(err) => ApiError::internal(err),
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and SAM's own: never forwarded.
fn strip_request_headers(headers: &mut HeaderMap, upgrade: bool) {
    let hop = [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
    ];
    for name in hop {
        headers.remove(name);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    headers.remove(header::AUTHORIZATION);
    let sam: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-sam-"))
        .cloned()
        .collect();
    for name in sam {
        headers.remove(name);
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

pub async fn http(
    access: WorkspaceAccess,
    Path(params): Path<Vec<(String, String)>>,
    State(state): State<AppState>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let raw_port = params
        .iter()
        .find(|(k, _)| k == "port")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let port = parse_port(raw_port)?;
    let target = state.workspaces.exec_target(&access.id).await?;
    let prefix = format!("/workspaces/{}/ports/{port}", access.id);

    let stream = super::connect(target.pid, port).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::PortUnreachable,
                    format!("Port {port} closed the connection."),
                )
            })?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });

    let upgrade = is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));

    let (mut parts, body) = request.into_parts();
    let rest = parts
        .uri
        .path()
        .strip_prefix(&prefix)
        .unwrap_or("")
        .to_string();
    let path = if rest.is_empty() {
        "/".to_string()
    } else {
        rest
    };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    parts.uri = path_and_query
        .parse()
        .map_err(|_| ApiError::bad_request("The proxied path is not a valid URI."))?;
    let original_host = parts.headers.get(header::HOST).cloned();
    strip_request_headers(&mut parts.headers, upgrade);
    let host = HeaderValue::from_str(&format!("localhost:{port}")).map_err(ApiError::internal)?;
    parts.headers.insert(header::HOST, host);
    if let Some(h) = original_host {
        parts.headers.insert("x-forwarded-host", h);
    }
    parts.headers.insert(
        "x-forwarded-prefix",
        HeaderValue::from_str(&prefix).map_err(ApiError::internal)?,
    );
    let upstream_request = hyper::Request::from_parts(parts, body);

    let mut response =
        match tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(upstream_request)).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::PortTimeout,
                    format!("The app on port {port} sent no response headers within 60 seconds."),
                ));
            }
            Ok(Err(e)) => {
                return Err(ApiError::new(
                    ErrorCode::PortUnreachable,
                    format!("The app on port {port} closed the connection without answering: {e}."),
                ));
            }
            Ok(Ok(r)) => r,
        };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade) else {
                return;
            };
            let mut client = hyper_util::rt::TokioIo::new(client);
            let mut upstream = hyper_util::rt::TokioIo::new(upstream);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    for name in ["keep-alive", "transfer-encoding", "connection"] {
        parts.headers.remove(name);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

pub async fn tunnel(
    access: WorkspaceAccess,
    Path((_, raw_port)): Path<(String, String)>,
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let port = parse_port(&raw_port)?;
    let target = state.workspaces.exec_target(&access.id).await?;
    let upgrade = upgrade
        .map_err(|e| ApiError::bad_request(format!("The TCP tunnel is a WebSocket: {e}.")))?;
    // Connect before upgrading, so "nothing listens" is a plain 502 answer.
    let stream = super::connect(target.pid, port).await?;
    let shutdown = state.shutdown.clone();
    Ok(upgrade
        .max_message_size(TUNNEL_CHUNK * 16)
        .on_upgrade(move |socket| pump(socket, stream, shutdown)))
}

async fn pump(
    mut socket: WebSocket,
    stream: tokio::net::TcpStream,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (mut read, mut write) = stream.into_split();
    let mut buf = bytes::BytesMut::with_capacity(TUNNEL_CHUNK);
    loop {
        buf.reserve(TUNNEL_CHUNK);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            n = read.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if socket.send(Message::Binary(buf.split().freeze())).await.is_err() {
                        return;
                    }
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if write.write_all(&data).await.is_err() { break; }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = write.shutdown().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
