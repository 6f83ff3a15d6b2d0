//! CONTRACT §2: Ed25519 JWTs, scopes and routing headers.
//!
//! Order of checks: [`authenticate`] runs on every request before routing (no or bad
//! token → 401 on any path, known or not); the router then answers 404 for unknown
//! routes; the [`NodeAccess`] / [`WorkspaceAccess`] extractors of matched routes check
//! scope and routing headers (403); handlers then look the resource up (404).

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sam_protocol::{
    Claims, HEADER_NODE_ID, HEADER_WORKSPACE_ID, Scope, TOKEN_AUDIENCE, TOKEN_ISSUER,
    TOKEN_LEEWAY_SECS, TOKEN_MAX_LIFETIME_SECS,
};

use crate::error::ApiError;
use crate::state::AppState;

/// Verifies tokens against the one trusted key.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    node_id: String,
}

impl TokenVerifier {
    pub fn new(key: DecodingKey, node_id: String) -> Self {
        // Only EdDSA: `none`, HS*, RS*, ES* fail the algorithm check before any
        // signature is looked at.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_audience(&[TOKEN_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
        validation.leeway = TOKEN_LEEWAY_SECS as u64;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Self {
            key,
            validation,
            node_id,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
                ApiError::unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "The token has expired.",
                    ErrorKind::InvalidIssuer => "The token was not issued by sam-desktop.",
                    ErrorKind::InvalidAudience => "The token is not meant for sam-agent.",
                    ErrorKind::InvalidSignature => {
                        "The token is not signed by this node's trusted key."
                    }
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        "Only EdDSA (Ed25519) tokens are accepted."
                    }
                    ErrorKind::MissingRequiredClaim(_) => "The token lacks a required claim.",
                    _ => "The token is malformed.",
                })
            })?;
        let claims = data.claims;
        if claims.node != self.node_id {
            return Err(ApiError::unauthorized("The token is for another node."));
        }
        // Checked: `exp - iat` of hostile values overflows (a panic in debug builds,
        // a negative "lifetime" that would pass in release ones).
        if claims
            .exp
            .checked_sub(claims.iat)
            .is_none_or(|lifetime| lifetime > TOKEN_MAX_LIFETIME_SECS)
        {
            return Err(ApiError::unauthorized(
                "The token lives longer than 24 hours; mint a shorter one.",
            ));
        }
        let now = chrono::Utc::now().timestamp();
        if claims.iat > now + TOKEN_LEEWAY_SECS {
            return Err(ApiError::unauthorized(
                "The token was issued in the future.",
            ));
        }
        if claims.scope == Scope::Workspace && claims.workspace.is_none() {
            return Err(ApiError::unauthorized(
                "A workspace-scoped token must name its workspace.",
            ));
        }
        Ok(claims)
    }
}

/// Middleware on the whole router: authenticates every request but `GET /health`.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET && request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::unauthorized("A bearer token is required.").into_response();
    };
    match state.verifier.verify(token) {
        Ok(claims) => {
            request.extensions_mut().insert(Arc::new(claims));
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

fn claims(parts: &Parts) -> Result<Arc<Claims>, ApiError> {
    parts
        .extensions
        .get::<Arc<Claims>>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("A bearer token is required."))
}

fn header_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// Routing headers: when present they must name this node and the path's workspace.
fn check_routing_headers(
    parts: &Parts,
    node_id: &str,
    path_workspace: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(node) = header_value(parts, HEADER_NODE_ID)
        && node != node_id
    {
        return Err(ApiError::forbidden(
            "The X-SAM-Node-Id header names another node.",
        ));
    }
    if let (Some(header_ws), Some(path_ws)) =
        (header_value(parts, HEADER_WORKSPACE_ID), path_workspace)
        && header_ws != path_ws
    {
        return Err(ApiError::forbidden(
            "The X-SAM-Workspace-Id header names another workspace than the path.",
        ));
    }
    Ok(())
}

async fn path_workspace(parts: &mut Parts, state: &AppState) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.to_string())
}

/// A route that needs a node-scoped token.
pub struct NodeAccess;

impl FromRequestParts<AppState> for NodeAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = claims(parts)?;
        let ws = path_workspace(parts, state).await;
        check_routing_headers(parts, &state.config.node_id, ws.as_deref())?;
        if claims.scope != Scope::Node {
            return Err(ApiError::forbidden(
                "This route needs a node-scoped token; a workspace token does not reach it.",
            ));
        }
        Ok(NodeAccess)
    }
}

/// A route about the workspace `{id}` in the path: a node token, or a workspace
/// token for that workspace.
pub struct WorkspaceAccess {
    pub id: String,
}

impl FromRequestParts<AppState> for WorkspaceAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = claims(parts)?;
        let id = path_workspace(parts, state)
            .await
            .ok_or_else(|| ApiError::bad_request("The path names no workspace."))?;
        check_routing_headers(parts, &state.config.node_id, Some(&id))?;
        if claims.scope == Scope::Workspace && claims.workspace.as_deref() != Some(id.as_str()) {
            return Err(ApiError::forbidden(
                "The token is scoped to another workspace.",
            ));
        }
        Ok(WorkspaceAccess { id })
    }
}
