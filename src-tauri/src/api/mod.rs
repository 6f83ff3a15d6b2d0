//! The control plane's API: what the `sam` CLI and the Tauri commands call. One
//! [`Sam`] per process, cheap to clone.
//!
//! Invariant: the library never prints. Long work reports through a
//! [`Progress`] sink the caller gives (stderr for the CLI, a channel for the app).

pub mod agents;
pub mod exec;
pub mod files;
pub mod forward;
pub mod nodes;
pub mod output_window;
pub mod sessions;
pub mod settings;
pub mod terminals;
pub mod upgrade;
pub mod workspaces;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sam_protocol::{Event, EventLevel, EventType, NodeInfo};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::agent_client::NodeClient;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::nodes::stream::{HealthChange, NodeSignal, health_event};
use crate::nodes::{Health, NodeRecord};
use crate::secrets::Secrets;
use crate::store::Store;

/// What `rm` answers: `{"id": …, "deleted": true}` (CLI.md).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

impl Deleted {
    pub fn new(id: impl Into<String>) -> Self {
        Deleted {
            id: id.into(),
            deleted: true,
        }
    }
}

/// What the app's window hears about without asking (its `subscribe` channel).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UiSignal {
    Health {
        change: crate::nodes::stream::HealthChange,
    },
    #[serde(rename_all = "camelCase")]
    Event {
        node_id: String,
        event: Box<sam_protocol::Event>,
    },
    /// An agent waits for its person.
    #[serde(rename_all = "camelCase")]
    Permission {
        node_id: String,
        event: Box<sam_protocol::Event>,
    },
}

/// Where long work reports its steps.
pub trait Progress: Send + Sync {
    fn step(&self, message: &str);
}

/// A sink that drops everything.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str) {}
}

#[derive(Clone)]
pub struct Sam {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    store: Store,
    secrets: Secrets,
    identity: Arc<Identity>,
    signals: broadcast::Sender<NodeSignal>,
    watchers: Mutex<HashMap<String, CancellationToken>>,
    upgrades: upgrade::Upgrades,
}

impl Sam {
    /// Opens the state folder, the database and the secret store.
    pub async fn open() -> Result<Sam> {
        let dir = crate::paths::ensure_state_dir()?;
        Self::open_at(&dir).await
    }

    pub async fn open_at(dir: &Path) -> Result<Sam> {
        let store = Store::open(dir).await?;
        let secrets = Secrets::open(dir)?;
        let identity = Arc::new(Identity::load_or_create(&secrets).await?);
        let (signals, _) = broadcast::channel(256);
        Ok(Sam {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                store,
                secrets,
                identity,
                signals,
                watchers: Mutex::new(HashMap::new()),
                upgrades: upgrade::Upgrades::default(),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }

    pub fn identity(&self) -> Arc<Identity> {
        self.inner.identity.clone()
    }

    pub async fn client(&self, record: &NodeRecord) -> Result<NodeClient> {
        NodeClient::new(
            &record.id,
            &record.address,
            record.cert_fingerprint.as_deref(),
            self.identity(),
        )
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NodeSignal> {
        self.inner.signals.subscribe()
    }

    /// Follows every node's event stream (the app; the CLI probes instead).
    pub async fn watch_nodes(&self) -> Result<()> {
        for node in self.store().nodes().await? {
            self.watch_node(&node.id);
        }
        Ok(())
    }

    pub fn watch_node(&self, node_id: &str) {
        let mut watchers = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if watchers.contains_key(node_id) {
            return;
        }
        let cancel = CancellationToken::new();
        watchers.insert(node_id.to_string(), cancel.clone());
        tokio::spawn(crate::nodes::stream::follow(
            self.clone(),
            node_id.to_string(),
            self.inner.signals.clone(),
            cancel,
        ));
    }

    pub fn unwatch_node(&self, node_id: &str) {
        let mut watchers = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = watchers.remove(node_id) {
            c.cancel();
        }
    }

    /// `NODE_HEARTBEAT_STALE_SECONDS`, else the `stale-seconds` setting, else 30.
    pub async fn stale_after(&self) -> Duration {
        Duration::from_secs(
            self.setting_u32("stale-seconds", "NODE_HEARTBEAT_STALE_SECONDS", 30)
                .await as u64,
        )
    }

    /// The environment beats settings, settings beat defaults.
    pub async fn setting_u32(&self, key: &str, env: &str, default: u32) -> u32 {
        if let Some(v) = std::env::var(env).ok().and_then(|v| v.parse().ok()) {
            return v;
        }
        match self.store().setting(key).await {
            Ok(Some(v)) => v.parse().unwrap_or(default),
            _ => default,
        }
    }

    /// A heartbeat or a successful probe: the node was seen now.
    pub async fn seen(&self, node_id: &str, info: &NodeInfo) {
        if let Ok(Some(mut n)) = self.store().node(node_id).await {
            n.last_seen_at = Some(crate::now());
            n.saw_agent(info);
            let _ = self.store().update_node(&n).await;
        }
    }

    /// Records a health judgement; answers the transition if it was one.
    pub async fn set_health(&self, node_id: &str, health: Health) -> Option<HealthChange> {
        let mut n = self.store().node(node_id).await.ok()??;
        if n.health == Some(health) {
            return None;
        }
        let change = HealthChange {
            node_id: n.id.clone(),
            node_name: n.name.clone(),
            from: n.health,
            to: health,
            at: crate::now(),
        };
        n.health = Some(health);
        let _ = self.store().update_node(&n).await;
        let _ = self
            .store()
            .insert_event(Some(node_id), &health_event(&change), false)
            .await;
        Some(change)
    }

    pub async fn record_agent_event(&self, node_id: &str, event: &Event) {
        if let Err(e) = self.store().insert_event(Some(node_id), event, true).await {
            tracing::warn!(error = %e.message, "cannot store an agent event");
            return;
        }
        if let Ok(Some(mut n)) = self.store().node(node_id).await {
            n.last_event_id = Some(event.id.clone());
            let _ = self.store().update_node(&n).await;
        }
    }

    /// One of the desktop's own events (provisioning steps, node changes).
    pub async fn record_event(
        &self,
        node_id: Option<&str>,
        kind: EventType,
        level: EventLevel,
        message: String,
    ) {
        let event = Event {
            id: String::new(),
            kind,
            level,
            node_id: node_id.unwrap_or_default().to_string(),
            workspace_id: None,
            session_id: None,
            message,
            detail: None,
            created_at: crate::now(),
        };
        if let Err(e) = self.store().insert_event(node_id, &event, false).await {
            tracing::warn!(error = %e.message, "cannot store an event");
        }
    }
}

/// Looks a thing up by id or name among `items`; several matches is ambiguous.
pub(crate) fn pick<'a, T>(
    items: &'a [T],
    wanted: &str,
    what: &str,
    id: impl Fn(&T) -> &str,
    name: impl Fn(&T) -> &str,
) -> Result<&'a T> {
    if let Some(t) = items.iter().find(|t| id(t) == wanted) {
        return Ok(t);
    }
    let named: Vec<&T> = items.iter().filter(|t| name(t) == wanted).collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::not_found(format!("There is no {what} {wanted:?}."))),
        _ => Err(Error::new(
            crate::error::code::AMBIGUOUS,
            format!("Several {what}s are named {wanted:?}."),
        )
        .hint("Use its id, or NODE/NAME.")),
    }
}
