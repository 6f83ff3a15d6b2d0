//! Nodes as the control plane knows them: the stored record, the view the CLI and
//! UI show, and health (`health.rs`, pure) judged from the agent's heartbeats
//! (`stream.rs` follows each node's `/events/ws`).

pub mod health;
pub mod stream;
pub mod upgrade;

use sam_protocol::{Limits, Timestamp, WorkspaceCounts};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(ts_rs::TS, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Local,
    Ssh,
    Hetzner,
}

#[derive(ts_rs::TS, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Provisioning,
    Running,
    Stopping,
    Stopped,
    Deleting,
    Error,
}

#[derive(ts_rs::TS, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Stale,
    Unhealthy,
}

/// What the store keeps about a node (never a secret).
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub id: String,
    pub name: String,
    pub provider: Provider,
    /// `http://127.0.0.1:PORT` for a loopback agent, else `https://HOST:PORT`.
    pub address: String,
    pub cert_fingerprint: Option<String>,
    /// Provider details: SSH user/host/port/host key; Hetzner server, firewall, key.
    pub provider_ids: Value,
    pub status: NodeStatus,
    pub health: Option<Health>,
    pub last_seen_at: Option<Timestamp>,
    pub agent_version: Option<String>,
    /// The agent's build (`build` of `GET /node`): which executable of that version.
    pub agent_build: Option<String>,
    /// The last agent event stored, for `/events/ws?since=`.
    pub last_event_id: Option<String>,
    pub created_at: Timestamp,
}

/// A node as `sam node ls/show --json` and the app show it (CLI.md).
#[derive(ts_rs::TS, Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    pub name: String,
    pub provider: Provider,
    pub address: String,
    pub status: NodeStatus,
    /// `None` for a node stopped on purpose (no health alarm for it).
    pub health: Option<Health>,
    pub last_seen_at: Option<Timestamp>,
    pub agent_version: Option<String>,
    /// The agent's build: the start of its executable's SHA-256 (absent when the
    /// agent does not say; docs/protocol.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_build: Option<String>,
    pub cert_fingerprint: Option<String>,
    pub workspaces: WorkspaceCounts,
    pub limits: Option<Limits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_ids: Option<Value>,
}

impl NodeRecord {
    /// Records what the agent says it is (version and build).
    pub fn saw_agent(&mut self, info: &sam_protocol::NodeInfo) {
        self.agent_version = Some(info.version.clone());
        self.agent_build = info.build.clone();
    }

    pub fn view(&self, workspaces: WorkspaceCounts, limits: Option<Limits>) -> Node {
        Node {
            id: self.id.clone(),
            name: self.name.clone(),
            provider: self.provider,
            address: self.address.clone(),
            status: self.status,
            health: if matches!(self.status, NodeStatus::Stopped) {
                None
            } else {
                self.health
            },
            last_seen_at: self.last_seen_at,
            agent_version: self.agent_version.clone(),
            agent_build: self.agent_build.clone(),
            cert_fingerprint: self.cert_fingerprint.clone(),
            workspaces,
            limits,
            provider_ids: (!self.provider_ids.is_null()
                && self.provider_ids.as_object().is_some_and(|o| !o.is_empty()))
            .then(|| self.provider_ids.clone()),
        }
    }
}

/// Checks a node name: 1–64 characters, letters, digits, `.`, `_`, `-`.
pub fn validate_name(name: &str) -> crate::error::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(crate::error::Error::invalid(format!(
            "{name:?} is not a valid node name: use 1 to 64 letters, digits, '.', '_' or '-'."
        )))
    }
}
