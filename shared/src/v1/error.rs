//! CONTRACT §3: every error is `{"error": "<code>", "message": "<sentence>"}`.

use serde::{Deserialize, Serialize};

/// The contract's error codes. Unknown codes from a newer agent deserialize as
/// [`ErrorCode::Other`] so an older desktop still shows the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    WorkspaceNotFound,
    SessionNotFound,
    TerminalNotFound,
    WorkspaceNotRunning,
    WorkspaceBusy,
    Conflict,
    PortTimeout,
    SessionNotRunning,
    SessionAlreadyAttached,
    WorkspaceLimitReached,
    SessionLimitReached,
    PayloadTooLarge,
    PortUnreachable,
    DockerUnavailable,
    /// Anything else: a server error without a more specific code.
    Internal,
    #[serde(untagged)]
    Other(String),
}

impl ErrorCode {
    /// The HTTP status the contract pairs with this code.
    pub fn status(&self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest => 400,
            Unauthorized => 401,
            Forbidden => 403,
            NotFound | WorkspaceNotFound | SessionNotFound | TerminalNotFound => 404,
            WorkspaceNotRunning
            | WorkspaceBusy
            | Conflict
            | SessionNotRunning
            | SessionAlreadyAttached
            | WorkspaceLimitReached
            | SessionLimitReached => 409,
            PayloadTooLarge => 413,
            PortUnreachable => 502,
            DockerUnavailable => 503,
            PortTimeout => 504,
            Internal | Other(_) => 500,
        }
    }

    pub fn as_str(&self) -> &str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            NotFound => "not_found",
            WorkspaceNotFound => "workspace_not_found",
            SessionNotFound => "session_not_found",
            TerminalNotFound => "terminal_not_found",
            WorkspaceNotRunning => "workspace_not_running",
            WorkspaceBusy => "workspace_busy",
            Conflict => "conflict",
            PortTimeout => "port_timeout",
            SessionNotRunning => "session_not_running",
            SessionAlreadyAttached => "session_already_attached",
            WorkspaceLimitReached => "workspace_limit_reached",
            SessionLimitReached => "session_limit_reached",
            PayloadTooLarge => "payload_too_large",
            PortUnreachable => "port_unreachable",
            DockerUnavailable => "docker_unavailable",
            Internal => "internal",
            Other(s) => s,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub error: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}
