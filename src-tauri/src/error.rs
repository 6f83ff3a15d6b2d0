//! The desktop's one error type: a code the UI and scripts branch on, a sentence
//! for people, and where there is one, the next step (`hint`).
//!
//! Codes are the agent contract's (`workspace_busy`, `session_already_attached`, …)
//! when an agent said no, plus the desktop's own below. Mapped once: agent answers
//! in `agent_client`, I/O and library errors at their boundary.

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Desktop codes (agent codes pass through as the agent wrote them).
pub mod code {
    pub const INVALID_INPUT: &str = "invalid_input";
    pub const NOT_FOUND: &str = "not_found";
    pub const AMBIGUOUS: &str = "ambiguous";
    pub const CONFLICT: &str = "conflict";
    pub const LIMIT_REACHED: &str = "limit_reached";
    pub const UNREACHABLE: &str = "node_unreachable";
    pub const CERTIFICATE_CHANGED: &str = "certificate_changed";
    pub const HOST_KEY_CHANGED: &str = "host_key_changed";
    pub const HOST_KEY_UNKNOWN: &str = "host_key_unknown";
    pub const NOT_TRUSTED: &str = "not_trusted";
    pub const SECRET_STORE: &str = "secret_store";
    pub const PROVIDER: &str = "provider";
    pub const CANCELLED: &str = "cancelled";
    pub const CONFIRMATION_NEEDED: &str = "confirmation_needed";
    pub const INTERNAL: &str = "internal";
}

#[derive(ts_rs::TS, Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Error {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_INPUT, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(code::NOT_FOUND, message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(code::INTERNAL, message.to_string())
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::internal(format!("The local database failed: {e}"))
            .hint("Check that the state folder is writable (SAM_DESKTOP_DIR).")
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal(format!("A local file operation failed: {e}"))
    }
}
