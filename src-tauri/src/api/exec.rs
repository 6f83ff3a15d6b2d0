//! One command in a workspace without a terminal, over the exec socket (CONTRACT
//! §7 "Exec"): stdin in, stdout and stderr out as separate chunks, then the exit
//! status. What `sam exec` uses.
//!
//! Invariant: `env` values may be secrets. They travel in the start frame only:
//! never logged, never part of an error or a `Debug` output.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::SinkExt;
use sam_protocol::{EXEC_STREAM_STDERR, EXEC_STREAM_STDOUT, ExecClientFrame, ExecServerFrame};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::Sam;
use super::terminals::{Decode, Ending, OutputStream, close_words, send_binary, spawn_socket};
use crate::agent_client::Scope;
use crate::error::{Error, Result, code};

/// What to run.
#[derive(Clone, Default)]
pub struct ExecRequest {
    /// The argv (no shell: give `sh -c '…'` for one).
    pub command: Vec<String>,
    /// Extra environment for the command. Values may be secrets.
    pub env: BTreeMap<String, String>,
    /// The working directory; relative to the project folder unless absolute.
    pub cwd: Option<String>,
}

impl std::fmt::Debug for ExecRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecRequest")
            .field("command", &self.command)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .finish()
    }
}

/// What a running command delivers: its output in the order it was written, then
/// `Exit` (after all output), then the stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The command's status: 127 when it was not found, 126 when it could not run.
    Exit(i32),
    /// The agent could not run it, or the connection ended without an `Exit`.
    Error(String),
}

fn valid_env_name(k: &str) -> bool {
    k.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Sam {
    /// Runs one command in a running workspace. Its stdin stays open until
    /// [`ExecInput::eof`].
    pub async fn exec(&self, ws: &str, req: ExecRequest) -> Result<ExecConnection> {
        if req.command.is_empty() {
            return Err(Error::invalid("Give the command to run."));
        }
        if req.command.iter().any(|a| a.contains('\0')) {
            return Err(Error::invalid("A command argument contains a NUL byte."));
        }
        if let Some(k) = req.env.keys().find(|k| !valid_env_name(k)) {
            return Err(Error::invalid(format!(
                "{k:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)."
            )));
        }
        if req.env.values().any(|v| v.contains('\0')) {
            return Err(Error::invalid(
                "An environment variable's value contains a NUL byte.",
            ));
        }
        let l = self.locate(ws).await?;
        let path = format!("/workspaces/{}/exec/ws", l.workspace.id);
        let mut socket = l
            .client
            .websocket(&path, Scope::Workspace(&l.workspace.id))
            .await?;
        let start = ExecClientFrame::Start {
            command: req.command,
            env: (!req.env.is_empty()).then_some(req.env),
            cwd: req.cwd,
        };
        let start = serde_json::to_string(&start).map_err(Error::internal)?;
        socket
            .send(Message::Text(start.into()))
            .await
            .map_err(|e| {
                Error::new(
                    code::UNREACHABLE,
                    format!("Cannot start the command on the node: {e}."),
                )
            })?;
        let (tx, output) = spawn_socket(socket, ExecDecoder::default());
        Ok(ExecConnection {
            output,
            input: ExecInput { tx },
        })
    }
}

/// A running command: `output` streams what it writes, `input` feeds its stdin.
pub struct ExecConnection {
    pub output: OutputStream<ExecOutput>,
    pub input: ExecInput,
}

impl ExecConnection {
    pub async fn send(&self, bytes: &[u8]) -> Result<()> {
        self.input.send(bytes).await
    }

    pub async fn eof(&self) -> Result<()> {
        self.input.eof().await
    }

    pub fn into_parts(self) -> (ExecInput, OutputStream<ExecOutput>) {
        (self.input, self.output)
    }
}

/// The command's stdin; cheap to clone.
#[derive(Clone)]
pub struct ExecInput {
    tx: mpsc::Sender<Message>,
}

impl ExecInput {
    /// Writes to the command's stdin.
    pub async fn send(&self, bytes: &[u8]) -> Result<()> {
        send_binary(&self.tx, bytes).await
    }

    /// Closes the command's stdin.
    pub async fn eof(&self) -> Result<()> {
        let frame = serde_json::to_string(&ExecClientFrame::Eof).map_err(Error::internal)?;
        self.tx
            .send(Message::Text(frame.into()))
            .await
            .map_err(|_| Error::new(code::UNREACHABLE, "The command's connection has closed."))
    }

    /// Closes the connection (the command may go on running in the workspace).
    pub async fn close(&self) {
        let _ = self.tx.send(Message::Close(None)).await;
    }
}

#[derive(Default)]
struct ExecDecoder {
    /// An `exit` or `error` was delivered: the connection's end says nothing new.
    settled: bool,
}

impl Decode for ExecDecoder {
    type Item = ExecOutput;

    fn frame(&mut self, message: Message) -> Option<ExecOutput> {
        match message {
            Message::Binary(b) => match b.first() {
                Some(&EXEC_STREAM_STDOUT) => Some(ExecOutput::Stdout(b.slice(1..))),
                Some(&EXEC_STREAM_STDERR) => Some(ExecOutput::Stderr(b.slice(1..))),
                _ => None,
            },
            Message::Text(t) => match serde_json::from_str::<ExecServerFrame>(&t) {
                Ok(ExecServerFrame::Exit { code }) => {
                    self.settled = true;
                    Some(ExecOutput::Exit(code))
                }
                Ok(ExecServerFrame::Error { message }) => {
                    self.settled = true;
                    Some(ExecOutput::Error(message))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "unknown exec control frame");
                    None
                }
            },
            _ => None,
        }
    }

    fn end(&mut self, how: Ending) -> Option<ExecOutput> {
        if self.settled {
            return None;
        }
        Some(ExecOutput::Error(match how {
            Ending::ClosedHere => "The connection was closed before the command ended.".into(),
            Ending::Closed(frame) => format!(
                "The node closed the connection before the command ended: {}.",
                close_words(&frame)
            ),
            Ending::Broken(e) => format!("The connection broke before the command ended: {e}."),
        }))
    }
}
