//! `GET /events/ws`: replay after `since`, then live events, with heartbeats.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use sam_protocol::NodeStreamFrame;
use tokio::sync::broadcast::error::RecvError;

use super::Since;
use crate::state::AppState;

/// Replay reads the log in pages of this many events.
const REPLAY_PAGE: i64 = 500;

enum Flow {
    Continue,
    Closed,
}

async fn send(socket: &mut WebSocket, frame: &NodeStreamFrame) -> Flow {
    let text = match serde_json::to_string(frame) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a node stream frame");
            return Flow::Continue;
        }
    };
    match socket.send(Message::Text(Utf8Bytes::from(text))).await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Closed,
    }
}

/// Sends every stored event after `last`, returning the last seq sent.
async fn replay(state: &AppState, socket: &mut WebSocket, mut last: i64) -> Option<i64> {
    loop {
        let page = match state.events.after(last, REPLAY_PAGE).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "event replay failed");
                return None;
            }
        };
        let n = page.len() as i64;
        for (seq, event) in page {
            let frame = NodeStreamFrame::Event {
                event: Box::new(event),
            };
            if let Flow::Closed = send(socket, &frame).await {
                return None;
            }
            last = seq;
        }
        if n < REPLAY_PAGE {
            return Some(last);
        }
    }
}

pub async fn serve(state: AppState, mut socket: WebSocket, since: Option<String>) {
    // Subscribe before replaying, so nothing recorded meanwhile is missed; live
    // events at or below the last replayed seq are skipped.
    let mut live = state.events.subscribe();
    let since_given = since.is_some();
    let mut last = match since {
        None => match state.events.head().await {
            Ok(head) => head,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event log");
                return;
            }
        },
        Some(since) => match state.events.resolve_since(&since).await {
            Ok(Since::After(seq)) => seq,
            Ok(Since::Unknown) => {
                if let Flow::Closed = send(&mut socket, &NodeStreamFrame::Reset).await {
                    return;
                }
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot resolve since");
                return;
            }
        },
    };
    if since_given {
        match replay(&state, &mut socket, last).await {
            Some(seq) => last = seq,
            None => return,
        }
    }

    let period = Duration::from_secs(state.config.heartbeat_seconds);
    let mut heartbeat = tokio::time::interval(period);
    let shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            _ = heartbeat.tick() => {
                let node = state.node_info().await;
                let frame = NodeStreamFrame::Heartbeat { at: crate::now(), node: Box::new(node) };
                if let Flow::Closed = send(&mut socket, &frame).await { return; }
            }
            received = live.recv() => match received {
                Ok(event) => {
                    let seq = state.events.seq_of(&event.id).unwrap_or(i64::MAX);
                    if seq <= last { continue; }
                    last = seq;
                    if let Flow::Closed = send(&mut socket, &NodeStreamFrame::Event { event: Box::new(event) }).await { return; }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow for the live channel: catch up from the log.
                    match replay(&state, &mut socket, last).await {
                        Some(seq) => last = seq,
                        None => return,
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                // Client frames carry nothing on this stream; pings are answered by axum.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
