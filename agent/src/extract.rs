//! Request decoding that answers in the contract's shape: bodies over their limit
//! are `413 payload_too_large`, malformed JSON or queries `400 invalid_request`.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON bodies: 1 MiB.
pub const JSON_LIMIT: usize = 1 << 20;

/// Reads a whole body up to `limit` bytes.
pub async fn read_body(
    body: Body,
    headers_len: Option<u64>,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    if headers_len.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::bad_request("The request body could not be read.")
        }
    })
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A JSON body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let len = content_length(&req);
        let bytes = read_body(req.into_body(), len, JSON_LIMIT).await?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(format!(
                "The request body is not valid JSON for this call: {e}."
            ))
        })
    }
}

/// Query parameters of type `T`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request(format!("The query string is not valid: {e}.")))
    }
}

/// A request's `env` (for a workspace's container or an agent process): POSIX
/// variable names, no NUL in values, at most `max_entries` entries and
/// `max_bytes` of names and values together.
pub fn validate_env(
    env: &std::collections::BTreeMap<String, String>,
    max_entries: usize,
    max_bytes: usize,
) -> Result<(), ApiError> {
    if env.len() > max_entries {
        return Err(ApiError::bad_request(format!(
            "env has more than {max_entries} entries"
        )));
    }
    let mut bytes = 0;
    for (k, v) in env {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::bad_request(format!(
                "env name {k:?} is not a valid variable name"
            )));
        }
        if v.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "env {k} contains a NUL byte"
            )));
        }
        bytes += k.len() + v.len();
    }
    if bytes > max_bytes {
        return Err(ApiError::bad_request(format!(
            "env is larger than {} KiB",
            max_bytes / 1024
        )));
    }
    Ok(())
}
