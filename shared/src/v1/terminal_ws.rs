//! CONTRACT §7: control frames of the terminal and exec WebSockets. Terminal bytes
//! travel as binary frames and never pass through these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest accepted terminal size in either dimension.
pub const TERMINAL_MAX_DIMENSION: u16 = 1000;
/// A WebSocket frame over this closes the terminal socket with 1009.
pub const TERMINAL_MAX_FRAME_BYTES: usize = 1 << 20;
/// Exec output frames start with this byte for stdout…
pub const EXEC_STREAM_STDOUT: u8 = 1;
/// …and this one for stderr.
pub const EXEC_STREAM_STDERR: u8 = 2;

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalClientFrame {
    Resize { cols: u16, rows: u16 },
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalServerFrame {
    /// The scrollback has been replayed; live output follows.
    Ready,
    /// The process ended: its status, or 128 + signal.
    Exit { code: i32 },
    /// A bad client frame; the socket stays open.
    Error { message: String },
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecClientFrame {
    Start {
        command: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
    },
    Eof,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecServerFrame {
    Exit { code: i32 },
    Error { message: String },
}
