//! Terminals of a workspace (CONTRACT §5 terminal rows, §7 "Terminal"): listed,
//! created, killed, and attached to over the terminal WebSocket.
//!
//! Invariant: terminal bytes stay raw end to end. A binary frame from the agent
//! becomes one [`TerminalOutput::Bytes`] holding the frame's own `bytes::Bytes`
//! (no copy, no JSON, no base64), and input given to [`TerminalInput::send`] leaves
//! as binary frames. Only the control frames (`resize`, `ready`, `exit`, `error`)
//! are JSON. The library never prints: the CLI writes the bytes to its tty, the app
//! hands them to an `ipc::Channel`.
//!
//! One socket task per connection owns the WebSocket, split in halves that run
//! concurrently, so input that the agent is slow to take never stops output from
//! being read (and the other way round). The same task serves the exec socket
//! (`exec.rs`) through [`Decode`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use sam_protocol::{
    CreateTerminal, TERMINAL_MAX_DIMENSION, Terminal, TerminalClientFrame, TerminalServerFrame,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Sam;
use crate::agent_client::{Scope, WsStream};
use crate::error::{Error, Result, code};

/// Input is sent in binary frames of at most this size (the agent closes the socket
/// on frames over 1 MiB).
pub(crate) const INPUT_CHUNK: usize = 64 * 1024;
/// Output items buffered before the socket is no longer read (the agent then
/// closes a viewer that stays behind with 1013; a re-attach replays the ring).
const OUTPUT_BUFFER: usize = 256;
/// Input frames queued before `send` waits.
const INPUT_BUFFER: usize = 64;
/// How long a close we started may wait for the agent's answer.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What `sam term` and the app's "new terminal" ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTerminal {
    pub cols: u16,
    pub rows: u16,
    /// An argv; `None` runs the user's login shell.
    pub command: Option<Vec<String>>,
}

/// What a terminal connection delivers, in order: the scrollback as `Bytes`,
/// `Ready`, then live `Bytes`; `Exit` when the process ends (then the stream ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalOutput {
    /// Terminal output, exactly as the process wrote it.
    Bytes(Bytes),
    /// The scrollback has been replayed; what follows is live.
    Ready,
    /// The process ended with this status (128 + signal when killed).
    Exit(i32),
    /// The agent refused a frame (the connection stays open), or — as the last
    /// item — the connection ended without an `Exit`.
    Error(String),
}

fn valid_size(cols: u16, rows: u16) -> Result<()> {
    let ok = |n: u16| (1..=TERMINAL_MAX_DIMENSION).contains(&n);
    if ok(cols) && ok(rows) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "A terminal's size must be 1 to {TERMINAL_MAX_DIMENSION} columns and rows; {cols}x{rows} is not."
        )))
    }
}

fn terminal_hint(e: Error, ws: &str) -> Error {
    match e.code.as_str() {
        "terminal_not_found" => e.hint(format!("`sam term {ws} --list` lists its terminals.")),
        _ => e,
    }
}

impl Sam {
    /// The workspace's terminals, running and exited.
    pub async fn list_terminals(&self, ws: &str) -> Result<Vec<Terminal>> {
        let l = self.locate(ws).await?;
        l.client.terminals(&l.workspace.id).await
    }

    /// Starts a terminal (the login shell, or `command`) in a running workspace.
    pub async fn create_terminal(&self, ws: &str, new: NewTerminal) -> Result<Terminal> {
        valid_size(new.cols, new.rows)?;
        if let Some(cmd) = &new.command
            && (cmd.is_empty() || cmd.iter().any(|a| a.contains('\0')))
        {
            return Err(Error::invalid(
                "A terminal's command must be a non-empty argv without NUL bytes.",
            ));
        }
        let l = self.locate(ws).await?;
        let req = CreateTerminal {
            cols: new.cols,
            rows: new.rows,
            command: new.command,
        };
        l.client.create_terminal(&l.workspace.id, &req).await
    }

    /// Kills a terminal's process and removes it from the list (an exited one is
    /// only removed).
    pub async fn kill_terminal(&self, ws: &str, tid: &str) -> Result<()> {
        let l = self.locate(ws).await?;
        l.client
            .delete_terminal(&l.workspace.id, tid)
            .await
            .map_err(|e| terminal_hint(e, ws))
    }

    /// Connects to a terminal: its scrollback, then live output; input and resizes
    /// go back on the same connection. The terminal lives on when the connection
    /// closes.
    pub async fn attach_terminal(&self, ws: &str, tid: &str) -> Result<TerminalConnection> {
        let l = self.locate(ws).await?;
        let path = format!("/workspaces/{}/terminals/{tid}/ws", l.workspace.id);
        let socket = l
            .client
            .websocket(&path, Scope::Workspace(&l.workspace.id))
            .await
            .map_err(|e| terminal_hint(e, ws))?;
        let (tx, output) = spawn_socket(socket, TerminalDecoder::default());
        Ok(TerminalConnection {
            terminal_id: tid.to_string(),
            output,
            input: TerminalInput { tx },
        })
    }
}

/// An open terminal connection. `output` is the stream of what the terminal shows;
/// `input` (cheap to clone) types, resizes and closes. Dropping both closes the
/// connection; the terminal itself lives on.
pub struct TerminalConnection {
    pub terminal_id: String,
    pub output: OutputStream<TerminalOutput>,
    pub input: TerminalInput,
}

impl TerminalConnection {
    pub async fn send(&self, bytes: &[u8]) -> Result<()> {
        self.input.send(bytes).await
    }

    pub async fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        self.input.resize(cols, rows).await
    }

    pub async fn close(&self) {
        self.input.close().await
    }

    /// The halves, for callers that read and write from different tasks.
    pub fn into_parts(self) -> (TerminalInput, OutputStream<TerminalOutput>) {
        (self.input, self.output)
    }
}

fn connection_closed() -> Error {
    Error::new(code::UNREACHABLE, "The connection has closed.")
}

/// Typing, resizing and closing one terminal connection; cheap to clone.
#[derive(Clone)]
pub struct TerminalInput {
    tx: mpsc::Sender<Message>,
}

impl TerminalInput {
    /// Sends keystrokes (any bytes) to the terminal.
    pub async fn send(&self, bytes: &[u8]) -> Result<()> {
        send_binary(&self.tx, bytes).await
    }

    /// Sets the terminal's size (the last resize from any viewer wins).
    pub async fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        valid_size(cols, rows)?;
        let frame = serde_json::to_string(&TerminalClientFrame::Resize { cols, rows })
            .map_err(Error::internal)?;
        self.tx
            .send(Message::Text(frame.into()))
            .await
            .map_err(|_| connection_closed())
    }

    /// Closes the connection normally (a detach: the terminal lives on). The output
    /// stream ends once the agent has answered.
    pub async fn close(&self) {
        let _ = self.tx.send(Message::Close(None)).await;
    }
}

/// Queues `bytes` as binary frames of at most [`INPUT_CHUNK`].
pub(crate) async fn send_binary(tx: &mpsc::Sender<Message>, bytes: &[u8]) -> Result<()> {
    for chunk in bytes.chunks(INPUT_CHUNK) {
        tx.send(Message::Binary(Bytes::copy_from_slice(chunk)))
            .await
            .map_err(|_| connection_closed())?;
    }
    Ok(())
}

/// The items of one connection, in the order the agent sent them; ends when the
/// connection does.
pub struct OutputStream<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> OutputStream<T> {
    pub(crate) fn from_receiver(rx: mpsc::Receiver<T>) -> Self {
        OutputStream { rx }
    }

    /// The next item, or `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next item if one has arrived already.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Stream for OutputStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

/// How a socket ended.
pub(crate) enum Ending {
    /// The agent closed it (with its close frame, if it sent one).
    Closed(Option<CloseFrame>),
    /// We closed it ([`TerminalInput::close`] and friends).
    ClosedHere,
    /// It broke (reset, protocol error).
    Broken(String),
}

/// Turns one socket's frames into items.
pub(crate) trait Decode: Send + 'static {
    type Item: Send + 'static;
    /// A text or binary frame from the agent; `None` when it yields nothing.
    fn frame(&mut self, message: Message) -> Option<Self::Item>;
    /// The socket ended; an item to end the stream with, if any.
    fn end(&mut self, how: Ending) -> Option<Self::Item>;
}

/// Starts the socket task: answers the queue for outgoing messages and the items.
pub(crate) fn spawn_socket<D: Decode>(
    socket: WsStream,
    decoder: D,
) -> (mpsc::Sender<Message>, OutputStream<D::Item>) {
    let (in_tx, in_rx) = mpsc::channel(INPUT_BUFFER);
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_BUFFER);
    tokio::spawn(run_socket(socket, decoder, in_rx, out_tx));
    (in_tx, OutputStream::from_receiver(out_rx))
}

async fn run_socket<D: Decode>(
    socket: WsStream,
    mut decoder: D,
    mut input: mpsc::Receiver<Message>,
    out: mpsc::Sender<D::Item>,
) {
    let (mut sink, mut stream) = socket.split();
    let closing = AtomicBool::new(false);
    let ending = {
        let reader = async {
            let mut close_frame = None;
            loop {
                match stream.next().await {
                    Some(Ok(Message::Close(frame))) => close_frame = frame,
                    Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => {
                        if let Some(item) = decoder.frame(m)
                            && out.send(item).await.is_err()
                        {
                            return None;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        use tokio_tungstenite::tungstenite::Error as WsError;
                        return Some(match e {
                            WsError::ConnectionClosed | WsError::AlreadyClosed => {
                                Ending::Closed(close_frame)
                            }
                            e => Ending::Broken(e.to_string()),
                        });
                    }
                    None => return Some(Ending::Closed(close_frame)),
                }
            }
        };
        let writer = async {
            while let Some(message) = input.recv().await {
                let close = matches!(message, Message::Close(_));
                if close {
                    closing.store(true, Ordering::SeqCst);
                }
                if sink.send(message).await.is_err() {
                    break;
                }
                if close {
                    // The agent answers a close at once; do not wait for ever.
                    tokio::time::sleep(CLOSE_WAIT).await;
                    return Some(Ending::ClosedHere);
                }
            }
            // Nothing more to send (or the socket broke: the reader says how).
            std::future::pending().await
        };
        tokio::select! {
            e = reader => e,
            e = writer => e,
            // The caller dropped the output: the connection is no longer wanted.
            _ = out.closed() => None,
        }
    };
    let ending = match ending {
        Some(Ending::Closed(_)) if closing.load(Ordering::SeqCst) => Ending::ClosedHere,
        Some(e) => e,
        None => {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Close(None))).await;
            return;
        }
    };
    if let Some(item) = decoder.end(ending) {
        let _ = out.send(item).await;
    }
}

/// A close frame in words, for an error.
pub(crate) fn close_words(frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(f) if !f.reason.is_empty() => format!("{} ({})", f.reason, u16::from(f.code)),
        Some(f) => format!("code {}", u16::from(f.code)),
        None => "no reason given".into(),
    }
}

#[derive(Default)]
struct TerminalDecoder {
    exited: bool,
}

impl Decode for TerminalDecoder {
    type Item = TerminalOutput;

    fn frame(&mut self, message: Message) -> Option<TerminalOutput> {
        match message {
            Message::Binary(b) => Some(TerminalOutput::Bytes(b)),
            Message::Text(t) => match serde_json::from_str::<TerminalServerFrame>(&t) {
                Ok(TerminalServerFrame::Ready) => Some(TerminalOutput::Ready),
                Ok(TerminalServerFrame::Exit { code }) => {
                    self.exited = true;
                    Some(TerminalOutput::Exit(code))
                }
                Ok(TerminalServerFrame::Error { message }) => Some(TerminalOutput::Error(message)),
                // A control frame of a newer agent: not ours to act on.
                Err(e) => {
                    tracing::debug!(error = %e, "unknown terminal control frame");
                    None
                }
            },
            _ => None,
        }
    }

    fn end(&mut self, how: Ending) -> Option<TerminalOutput> {
        if self.exited {
            return None;
        }
        match how {
            Ending::ClosedHere => None,
            Ending::Closed(frame) => {
                let normal = frame.as_ref().is_none_or(|f| f.code == CloseCode::Normal);
                Some(TerminalOutput::Error(if normal {
                    "The node closed the terminal connection.".into()
                } else {
                    format!(
                        "The node closed the terminal connection: {}.",
                        close_words(&frame)
                    )
                }))
            }
            Ending::Broken(e) => Some(TerminalOutput::Error(format!(
                "The terminal connection broke: {e}."
            ))),
        }
    }
}
