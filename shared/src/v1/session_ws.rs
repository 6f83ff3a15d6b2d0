//! CONTRACT §7: frames of the agent-session WebSocket.
//!
//! ACP objects (`update`, `toolCall`, `options`, prompt `content`) pass through
//! unchanged as JSON values: this crate does not depend on the ACP crate, and the
//! contract promises them "unchanged".

use serde::{Deserialize, Serialize};

use super::StopReason;

/// Client frames may be up to this size (prompts with images).
pub const SESSION_MAX_CLIENT_FRAME_BYTES: usize = 8 << 20;
/// Longest `label` of a session, in characters.
pub const SESSION_MAX_LABEL_CHARS: usize = 128;
/// WebSocket close code sent to the socket that lost a takeover.
pub const CLOSE_CODE_TAKEN_OVER: u16 = 4001;

/// An ACP permission request id: a string or a number, echoed back as is.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(#[cfg_attr(feature = "ts", ts(type = "number"))] i64),
    String(String),
}

/// A prompt: plain text, or ACP content blocks.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<serde_json::Value>>,
}

/// Every server frame: a `seq` and a typed body.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFrame {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    #[serde(flatten)]
    pub body: SessionFrameBody,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionFrameBody {
    // About one socket: they carry the current head `seq` without taking a new one.
    #[serde(rename = "session.attached", rename_all = "camelCase")]
    Attached {
        session_id: String,
        takeover: bool,
        watch: bool,
    },
    #[serde(rename = "session.detached")]
    Detached { reason: String },
    #[serde(rename = "error")]
    Error { message: String },

    // Part of the conversation: each takes the next `seq` and is kept in history.
    #[serde(rename = "user.prompt")]
    UserPrompt(Prompt),
    #[serde(rename = "agent.output")]
    AgentOutput { update: serde_json::Value },
    #[serde(rename = "agent.permission", rename_all = "camelCase")]
    AgentPermission {
        request_id: RequestId,
        tool_call: serde_json::Value,
        options: serde_json::Value,
    },
    #[serde(rename = "agent.permission_resolved", rename_all = "camelCase")]
    AgentPermissionResolved {
        request_id: RequestId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        option_id: Option<String>,
        /// `"cancelled"` when the request was cancelled instead of answered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
    #[serde(rename = "agent.turn_end", rename_all = "camelCase")]
    AgentTurnEnd { stop_reason: String },
    #[serde(rename = "agent.error")]
    AgentError { message: String },
    #[serde(rename = "session.stopped")]
    SessionStopped { reason: StopReason },
}

impl SessionFrameBody {
    /// Whether this frame is part of the conversation (takes a new `seq`, is kept).
    pub fn is_conversation(&self) -> bool {
        !matches!(
            self,
            Self::Attached { .. } | Self::Detached { .. } | Self::Error { .. }
        )
    }
}

/// Client to server frames.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionClientFrame {
    #[serde(rename = "prompt")]
    Prompt(Prompt),
    #[serde(rename = "permission.response", rename_all = "camelCase")]
    PermissionResponse {
        request_id: RequestId,
        option_id: String,
    },
    #[serde(rename = "cancel")]
    Cancel,
}

/// `GET …/agent-sessions/{sid}/history`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub frames: Vec<SessionFrame>,
    pub more: bool,
}
