//! CONTRACT §4 (events) and §7 (the node stream `/events/ws`).

use serde::{Deserialize, Serialize};

use super::{NodeInfo, Timestamp};

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    Info,
    Warn,
    Error,
}

/// Event types. The set is open: a type this build does not know is kept as
/// [`EventType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "workspace.creating")]
    WorkspaceCreating,
    #[serde(rename = "workspace.progress")]
    WorkspaceProgress,
    #[serde(rename = "workspace.running")]
    WorkspaceRunning,
    #[serde(rename = "workspace.stopping")]
    WorkspaceStopping,
    #[serde(rename = "workspace.stopped")]
    WorkspaceStopped,
    #[serde(rename = "workspace.restarting")]
    WorkspaceRestarting,
    #[serde(rename = "workspace.renamed")]
    WorkspaceRenamed,
    #[serde(rename = "workspace.error")]
    WorkspaceError,
    #[serde(rename = "workspace.deleting")]
    WorkspaceDeleting,
    #[serde(rename = "workspace.deleted")]
    WorkspaceDeleted,
    #[serde(rename = "session.created")]
    SessionCreated,
    #[serde(rename = "session.permission_requested")]
    SessionPermissionRequested,
    #[serde(rename = "session.permission_resolved")]
    SessionPermissionResolved,
    #[serde(rename = "session.error")]
    SessionError,
    #[serde(rename = "session.stopped")]
    SessionStopped,
    #[serde(rename = "node.started")]
    NodeStarted,
    #[serde(rename = "node.stopping")]
    NodeStopping,
    #[serde(rename = "node.limits")]
    NodeLimits,
    #[serde(rename = "node.docker")]
    NodeDocker,
    // Kept by the desktop only (health transitions, provisioning).
    #[serde(rename = "node.healthy")]
    NodeHealthy,
    #[serde(rename = "node.stale")]
    NodeStale,
    #[serde(rename = "node.unhealthy")]
    NodeUnhealthy,
    #[serde(untagged)]
    Other(String),
}

impl EventType {
    pub fn as_str(&self) -> &str {
        use EventType::*;
        match self {
            WorkspaceCreating => "workspace.creating",
            WorkspaceProgress => "workspace.progress",
            WorkspaceRunning => "workspace.running",
            WorkspaceStopping => "workspace.stopping",
            WorkspaceStopped => "workspace.stopped",
            WorkspaceRestarting => "workspace.restarting",
            WorkspaceRenamed => "workspace.renamed",
            WorkspaceError => "workspace.error",
            WorkspaceDeleting => "workspace.deleting",
            WorkspaceDeleted => "workspace.deleted",
            SessionCreated => "session.created",
            SessionPermissionRequested => "session.permission_requested",
            SessionPermissionResolved => "session.permission_resolved",
            SessionError => "session.error",
            SessionStopped => "session.stopped",
            NodeStarted => "node.started",
            NodeStopping => "node.stopping",
            NodeLimits => "node.limits",
            NodeDocker => "node.docker",
            NodeHealthy => "node.healthy",
            NodeStale => "node.stale",
            NodeUnhealthy => "node.unhealthy",
            Other(s) => s,
        }
    }
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Opaque; sorts in creation order on one node.
    pub id: String,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub kind: EventType,
    pub level: EventLevel,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub message: String,
    /// A free JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    pub created_at: Timestamp,
}

/// `GET /events`, `GET /workspaces/{id}/events`: newest first.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// Text frames of `/events/ws`, server to client.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeStreamFrame {
    Heartbeat {
        at: Timestamp,
        node: Box<NodeInfo>,
    },
    Event {
        event: Box<Event>,
    },
    /// The `since` given is not known here: every kept event follows.
    Reset,
}
