//! The router: every route of CONTRACT §5 and §7, behind authentication.

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, middleware};
use sam_protocol::Health;
use serde::Deserialize;

use crate::auth::{self, NodeAccess};
use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::{exec, files, node, ports, sessions, terminals, workspaces};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/node", get(node::get).patch(node::patch))
        .route("/node/stop", post(node::stop))
        .route("/events", get(workspaces::routes::node_events))
        .route("/events/ws", get(events_ws))
        .route(
            "/workspaces",
            get(workspaces::routes::list).post(workspaces::routes::create),
        )
        .route(
            "/workspaces/{id}",
            get(workspaces::routes::get)
                .patch(workspaces::routes::rename)
                .delete(workspaces::routes::delete),
        )
        .route("/workspaces/{id}/stop", post(workspaces::routes::stop))
        .route(
            "/workspaces/{id}/restart",
            post(workspaces::routes::restart),
        )
        .route("/workspaces/{id}/events", get(workspaces::routes::events))
        .route(
            "/workspaces/{id}/terminals",
            get(terminals::routes::list).post(terminals::routes::create),
        )
        .route(
            "/workspaces/{id}/terminals/{tid}",
            axum::routing::delete(terminals::routes::delete),
        )
        .route(
            "/workspaces/{id}/terminals/{tid}/ws",
            get(terminals::routes::socket),
        )
        .route("/workspaces/{id}/exec/ws", get(exec::socket))
        .route(
            "/workspaces/{id}/agent-sessions",
            get(sessions::routes::list).post(sessions::routes::create),
        )
        .route(
            "/workspaces/{id}/agent-sessions/{sid}",
            get(sessions::routes::get),
        )
        .route(
            "/workspaces/{id}/agent-sessions/{sid}/history",
            get(sessions::routes::history),
        )
        .route(
            "/workspaces/{id}/agent-sessions/{sid}/stop",
            post(sessions::routes::stop),
        )
        .route(
            "/workspaces/{id}/agent-sessions/{sid}/ws",
            get(sessions::routes::socket),
        )
        .route("/workspaces/{id}/ports", get(ports::proxy::list))
        .route("/workspaces/{id}/ports/{port}", any(ports::proxy::http))
        .route("/workspaces/{id}/ports/{port}/", any(ports::proxy::http))
        .route(
            "/workspaces/{id}/ports/{port}/tcp",
            get(ports::proxy::tunnel),
        )
        .route(
            "/workspaces/{id}/ports/{port}/{*path}",
            any(ports::proxy::http),
        )
        .route(
            "/workspaces/{id}/files",
            get(files::routes::get)
                .put(files::routes::put)
                .delete(files::routes::delete),
        )
        .route("/workspaces/{id}/files/mkdir", post(files::routes::mkdir))
        .route("/workspaces/{id}/files/move", post(files::routes::rename))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn(close_after_refused_body))
        .with_state(state)
}

/// An error answer to a request that came with a body says `Connection: close`.
///
/// Such answers (401, 413, …) are often sent before the body was read; hyper then
/// closes the connection once the answer is out, and a client that was not told so
/// would reuse it from its pool and see its next request fail.
async fn close_after_refused_body(request: axum::extract::Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    let mut response = next.run(request).await;
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: crate::VERSION.into(),
        build: state.build.known(),
    })
}

async fn not_found(request: axum::extract::Request) -> ApiError {
    ApiError::not_found(format!(
        "There is no route {} {}.",
        request.method(),
        request.uri().path()
    ))
}

#[derive(Deserialize)]
struct StreamQuery {
    since: Option<String>,
}

async fn events_ws(
    _: NodeAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let upgrade =
        upgrade.map_err(|e| ApiError::bad_request(format!("This route is a WebSocket: {e}.")))?;
    let since = q.since.filter(|s| !s.is_empty());
    Ok(upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| crate::events::stream::serve(state, socket, since)))
}
