//! Local port forwards (CLI.md "Ports and events"; CONTRACT §7 "TCP tunnel"):
//! `127.0.0.1:LOCAL` on this computer to a port inside a workspace. Each accepted
//! connection gets its own tunnel WebSocket, `/workspaces/{id}/ports/{port}/tcp`,
//! and bytes are pumped both ways, raw, until either side closes. The app uses it
//! for "open in browser", the CLI for `sam forward`.
//!
//! The tunnel has no half-close: when the local client ends its sending side, the
//! workspace's answer is still relayed until the workspace closes the connection,
//! or sends nothing for [`HALF_CLOSE_IDLE`] (as `socat` gives the other direction a
//! grace period).
//!
//! Invariant: a [`Forward`] runs until it is dropped or stopped; then the listener
//! closes and every open tunnel ends.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use sam_protocol::{Workspace, WorkspaceStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::Sam;
use crate::agent_client::{NodeClient, Scope};
use crate::error::{Error, Result, code};

/// Bytes read from a local connection per frame (the agent reads 64 KiB too).
const CHUNK: usize = 64 * 1024;
/// After the local client's end of sending: how long the workspace may stay quiet
/// before the connection is closed.
pub const HALF_CLOSE_IDLE: Duration = Duration::from_secs(5);
/// Notices kept for a caller that does not read them (older ones are dropped).
const EVENT_BUFFER: usize = 64;

/// What happens on a forward's connections (for a status line or a toast).
#[derive(Debug, Clone)]
pub enum ForwardEvent {
    /// A local client connected and its tunnel is open.
    Opened { peer: SocketAddr },
    /// A connection could not be tunnelled (nothing listens in the workspace, the
    /// workspace stopped, the node is unreachable); the local connection was closed.
    Failed {
        peer: Option<SocketAddr>,
        error: Error,
    },
}

/// A running forward; dropping it stops it.
pub struct Forward {
    local: SocketAddr,
    port: u16,
    workspace: Workspace,
    cancel: CancellationToken,
    events: mpsc::Receiver<ForwardEvent>,
}

impl Forward {
    /// The bound local address (`127.0.0.1:LOCAL`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The port inside the workspace.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The workspace as it was when the forward started.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The next notice; `None` once the forward has stopped.
    pub async fn next_event(&mut self) -> Option<ForwardEvent> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => None,
            e = self.events.recv() => e,
        }
    }

    /// Stops listening and ends every open tunnel.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Sam {
    /// Listens on `127.0.0.1:local_port` (0 picks a free port; see
    /// [`Forward::local_addr`]) and tunnels each connection to `port` inside the
    /// workspace, until the answer is dropped.
    pub async fn forward(&self, ws: &str, port: u16, local_port: u16) -> Result<Forward> {
        if port == 0 {
            return Err(Error::invalid(
                "The workspace port must be between 1 and 65535.",
            ));
        }
        let l = self.locate(ws).await?;
        if l.workspace.status != WorkspaceStatus::Running {
            return Err(Error::new(
                "workspace_not_running",
                format!(
                    "The workspace {} is not running, so nothing can be forwarded to it.",
                    l.workspace.display_name
                ),
            )
            .hint("Start it with `sam ws restart WS`."));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, local_port))
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => Error::new(
                    code::CONFLICT,
                    format!("127.0.0.1:{local_port} is already in use on this computer."),
                )
                .hint("Pick another LOCAL_PORT, or 0 for a free one."),
                _ => Error::internal(format!("Cannot listen on 127.0.0.1:{local_port}: {e}")),
            })?;
        let local = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let (events_tx, events) = mpsc::channel(EVENT_BUFFER);
        let target = Target {
            client: l.client,
            path: format!("/workspaces/{}/ports/{port}/tcp", l.workspace.id),
            workspace_id: l.workspace.id.clone(),
        };
        tokio::spawn(accept_loop(listener, target, events_tx, cancel.clone()));
        Ok(Forward {
            local,
            port,
            workspace: l.workspace,
            cancel,
            events,
        })
    }
}

#[derive(Clone)]
struct Target {
    client: NodeClient,
    path: String,
    workspace_id: String,
}

fn notify(events: &mpsc::Sender<ForwardEvent>, event: ForwardEvent) {
    // A caller that does not read notices never slows the forward down.
    let _ = events.try_send(event);
}

async fn accept_loop(
    listener: TcpListener,
    target: Target,
    events: mpsc::Sender<ForwardEvent>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let target = target.clone();
                let events = events.clone();
                let cancel = cancel.child_token();
                tokio::spawn(async move {
                    match open(&target).await {
                        Ok(socket) => {
                            notify(&events, ForwardEvent::Opened { peer });
                            pump(tcp, socket, cancel).await;
                        }
                        Err(error) => notify(
                            &events,
                            ForwardEvent::Failed {
                                peer: Some(peer),
                                error,
                            },
                        ),
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: say so, breathe, go on.
                notify(
                    &events,
                    ForwardEvent::Failed {
                        peer: None,
                        error: Error::internal(format!("Cannot accept a connection: {e}")),
                    },
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn open(target: &Target) -> Result<crate::agent_client::WsStream> {
    target
        .client
        .websocket(&target.path, Scope::Workspace(&target.workspace_id))
        .await
}

/// Pumps bytes both ways until either side closes (see the module docs for the
/// local client's half-close), or the forward stops.
async fn pump(tcp: TcpStream, socket: crate::agent_client::WsStream, cancel: CancellationToken) {
    let _ = tcp.set_nodelay(true);
    let (mut local_read, mut local_write) = tcp.into_split();
    let (mut sink, mut stream) = socket.split();
    let local_done = AtomicBool::new(false);
    {
        // Local → workspace; ends at the local client's end of sending.
        let up = async {
            let mut buf = BytesMut::with_capacity(CHUNK);
            loop {
                buf.reserve(CHUNK);
                match local_read.read_buf(&mut buf).await {
                    Ok(0) => {
                        local_done.store(true, Ordering::SeqCst);
                        // The answer may still come: the down side decides.
                        return std::future::pending::<()>().await;
                    }
                    Ok(_) => {
                        if sink
                            .send(Message::Binary(buf.split().freeze()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    // Reset by the local client: nobody is left to answer.
                    Err(_) => return,
                }
            }
        };
        // Workspace → local; ends when the workspace closes.
        let down = async {
            loop {
                let next = match tokio::time::timeout(HALF_CLOSE_IDLE, stream.next()).await {
                    Ok(next) => next,
                    Err(_) if local_done.load(Ordering::SeqCst) => return,
                    Err(_) => continue,
                };
                match next {
                    Some(Ok(Message::Binary(data))) => {
                        if local_write.write_all(&data).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        let _ = local_write.shutdown().await;
                        return;
                    }
                    Some(Ok(_)) => {}
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = up => {}
            _ = down => {}
        }
    }
    let _ = local_write.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Close(None))).await;
}
