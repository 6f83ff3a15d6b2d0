//! The one place that turns failures into CONTRACT §3 answers.
//!
//! Invariant: every error a client sees is built here, as `{error, message}` with the
//! contract's code and status. Internal details (paths, Docker's words when they would
//! leak internals) go to the log, never into an answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sam_protocol::{ErrorBody, ErrorCode};

use crate::docker::DockerError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn workspace_not_found(id: &str) -> Self {
        Self::new(
            ErrorCode::WorkspaceNotFound,
            format!("There is no workspace {id:?} on this node."),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    }

    /// A failure the client cannot act on: logged in full, answered generically.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            ErrorCode::Internal,
            "The agent failed to handle the request; its log has the details.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

impl From<DockerError> for ApiError {
    fn from(e: DockerError) -> Self {
        match e {
            DockerError::Unavailable(_) => Self::new(
                ErrorCode::DockerUnavailable,
                "The container engine cannot be reached on this node; start Docker and try again.",
            ),
            DockerError::NotFound(what) => {
                Self::not_found(format!("{what} was not found in Docker."))
            }
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}
