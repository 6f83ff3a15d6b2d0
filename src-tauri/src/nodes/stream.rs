//! Follows one node's `/events/ws`: stores its events (resuming with `since`, so
//! none is lost across reconnects), judges health from its heartbeats, and records
//! every health transition as an event and on the `changes` channel (the tray and
//! notifications listen there).

use std::time::{Duration, Instant};

use futures::StreamExt;
use sam_protocol::{Event, EventLevel, EventType, NodeStreamFrame};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use super::{Health, NodeStatus, health};
use crate::api::Sam;

/// A health transition, for notifications.
#[derive(ts_rs::TS, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthChange {
    pub node_id: String,
    pub node_name: String,
    pub from: Option<Health>,
    pub to: Health,
    pub at: sam_protocol::Timestamp,
}

/// What a node stream tells listeners (the app forwards these to the UI).
#[derive(Debug, Clone)]
pub enum NodeSignal {
    Health(HealthChange),
    Event(Box<Event>),
}

/// Runs until `cancel`: connect, follow, reconnect with back-off.
pub async fn follow(
    sam: Sam,
    node_id: String,
    signals: broadcast::Sender<NodeSignal>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let stale = sam.stale_after().await;
    // Start from what the store last saw, so a fresh watcher does not call a
    // healthy node unhealthy before its first heartbeat arrives.
    let mut last_heartbeat: Option<Instant> = match sam.store().node(&node_id).await {
        Ok(Some(n)) => n
            .last_seen_at
            .and_then(|t| (crate::now() - t).to_std().ok())
            .and_then(|ago| Instant::now().checked_sub(ago)),
        _ => None,
    };
    let mut failing = false;
    let mut backoff = Duration::from_millis(500);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let Ok(Some(record)) = sam.store().node(&node_id).await else {
            return;
        };
        if matches!(record.status, NodeStatus::Stopped | NodeStatus::Deleting) {
            // A node stopped on purpose raises no alarm; look again later.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
            }
        }
        let path = match &record.last_event_id {
            Some(id) => format!("/events/ws?since={id}"),
            None => "/events/ws".to_string(),
        };
        let socket = match sam.client(&record).await {
            Ok(client) => {
                client
                    .websocket(&path, crate::agent_client::Scope::Node)
                    .await
            }
            Err(e) => Err(e),
        };
        let mut socket = match socket {
            Ok(s) => {
                backoff = Duration::from_millis(500);
                s
            }
            Err(e) => {
                tracing::debug!(node = %record.name, error = %e.message, "event stream unavailable");
                failing = true;
                judge(&sam, &node_id, last_heartbeat, stale, failing, &signals).await;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(15));
                continue;
            }
        };
        // The first heartbeat of each connection says which agent answers: an
        // older one than this desktop's is upgraded (in the background; the
        // restart ends this connection and the next one sees the new agent).
        let mut agent_checked = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    judge(&sam, &node_id, last_heartbeat, stale, failing, &signals).await;
                }
                msg = socket.next() => match msg {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<NodeStreamFrame>(&text) {
                        Ok(NodeStreamFrame::Heartbeat { node, .. }) => {
                            last_heartbeat = Some(Instant::now());
                            failing = false;
                            sam.seen(&node_id, &node).await;
                            judge(&sam, &node_id, last_heartbeat, stale, failing, &signals).await;
                            if !agent_checked {
                                agent_checked = true;
                                let (sam, node_id) = (sam.clone(), node_id.clone());
                                tokio::spawn(async move {
                                    sam.upgrade_if_older(&node_id, &node, &crate::api::Quiet).await;
                                });
                            }
                        }
                        Ok(NodeStreamFrame::Event { event }) => {
                            sam.record_agent_event(&node_id, &event).await;
                            let _ = signals.send(NodeSignal::Event(event));
                        }
                        Ok(NodeStreamFrame::Reset) => {}
                        Err(e) => tracing::warn!(error = %e, "unknown node stream frame"),
                    },
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        failing = true;
                        break;
                    }
                },
            }
        }
    }
}

async fn judge(
    sam: &Sam,
    node_id: &str,
    last_heartbeat: Option<Instant>,
    stale: Duration,
    failing: bool,
    signals: &broadcast::Sender<NodeSignal>,
) {
    // An agent restarting for an upgrade is not a failing node.
    if sam.is_upgrading(node_id) {
        return;
    }
    let now_health = health::judge(last_heartbeat.map(|t| t.elapsed()), stale, failing);
    if let Some(change) = sam.set_health(node_id, now_health).await {
        let _ = signals.send(NodeSignal::Health(change));
    }
}

/// The desktop's own event for a health transition.
pub fn health_event(change: &HealthChange) -> Event {
    let (kind, level, word) = match change.to {
        Health::Healthy => (EventType::NodeHealthy, EventLevel::Info, "healthy"),
        Health::Stale => (
            EventType::NodeStale,
            EventLevel::Warn,
            "stale: no heartbeat lately",
        ),
        Health::Unhealthy => (
            EventType::NodeUnhealthy,
            EventLevel::Error,
            "unhealthy: unreachable or failing",
        ),
    };
    Event {
        id: String::new(),
        kind,
        level,
        node_id: change.node_id.clone(),
        workspace_id: None,
        session_id: None,
        message: format!("Node {} is {word}.", change.node_name),
        detail: Some(serde_json::json!({"from": change.from, "to": change.to})),
        created_at: change.at,
    }
}
