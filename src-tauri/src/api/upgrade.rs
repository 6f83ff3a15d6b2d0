//! Upgrading a node's `sam-agent` to the one this desktop ships: explicitly
//! (`sam node upgrade`), and on its own when SAM meets an older agent — `sam node
//! start`, and the app's node streams on their first heartbeat. Whether to
//! upgrade is `nodes::upgrade::decide` (pure); how is the provider's
//! (`NodeProvider::upgrade`: upload, check, swap, restart, roll back on failure).
//!
//! Invariants: one upgrade of a node at a time, across every SAM process of this
//! installation (a lock file per node in the state folder; a second one waits,
//! then finds the node up to date); never a downgrade without `force`; a failed
//! upgrade leaves the previous agent running and is not retried on its own by the
//! same process.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use sam_protocol::{Event, EventLevel, EventType, NodeInfo};

use super::{Progress, Sam};
use crate::error::{Error, Result, code};
use crate::nodes::stream::NodeSignal;
use crate::nodes::upgrade::{Decision, decide, describe};
use crate::nodes::{Node, NodeRecord, NodeStatus, Provider};
use crate::providers::hetzner::Hetzner;
use crate::providers::local::Local;
use crate::providers::ssh::Ssh;
use crate::providers::{AgentFile, NodeProvider, own_agent};

/// How long an upgrade waits for another one of the same node to finish.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// What this process remembers about upgrades (in `Sam`).
#[derive(Default)]
pub(crate) struct Upgrades {
    /// Nodes being upgraded now (their streams do not judge health meanwhile).
    running: Mutex<HashSet<String>>,
    /// Automatic upgrades tried, and newer agents warned about: each once.
    tried: Mutex<HashSet<String>>,
}

impl Upgrades {
    fn first_time(&self, key: String) -> bool {
        self.tried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
    }
}

/// Marks a node as being upgraded while it lives.
struct Busy {
    sam: Sam,
    node_id: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.sam
            .inner
            .upgrades
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.node_id);
    }
}

/// An exclusive `flock` on the node's lock file, released when dropped (closed).
struct NodeLock {
    _file: std::fs::File,
}

impl Sam {
    /// `sam node upgrade`: replaces the node's agent by this desktop's when the
    /// node's is older (an older version; the same version with another or no
    /// build), restarting it the way it runs; terminals and agent sessions live
    /// on. A newer agent is not downgraded (a warning says so) unless `force`,
    /// which also reinstalls an agent that is up to date. Answers the node after.
    pub async fn upgrade_node(
        &self,
        name_or_id: &str,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<Node> {
        let record = self.node_record(name_or_id).await?;
        let ours = own_agent().await?;
        let _lock = self.lock_upgrade(&record, progress).await?;
        let _busy = self.mark_upgrading(&record.id);
        // Read again: an upgrade this one waited for may have changed it.
        let record = self.node_record(&record.id).await?;
        if !matches!(record.status, NodeStatus::Running | NodeStatus::Error) {
            let e = Error::new(
                code::CONFLICT,
                format!(
                    "Node {} is {}; only a running node's agent can be upgraded.",
                    record.name,
                    status_word(record.status)
                ),
            );
            return Err(if record.status == NodeStatus::Stopped {
                e.hint(format!(
                    "`sam node start {}` starts it, and upgrades its agent if it is older than this app's.",
                    record.name
                ))
            } else {
                e
            });
        }
        let info = self
            .client(&record)
            .await?
            .node()
            .await
            .map_err(|e| Error {
                message: format!(
                    "SAM cannot ask the agent of {} which build it runs: {}",
                    record.name, e.message
                ),
                ..e
            })?;
        let from = describe(&info.version, info.build.as_deref());
        match decide(
            &info.version,
            info.build.as_deref(),
            &ours.version,
            &ours.build,
        ) {
            Decision::Upgrade(_) => {}
            _ if force => {}
            Decision::UpToDate => {
                progress.step(&format!(
                    "sam-agent on {} is up to date: {from}.",
                    record.name
                ));
                self.seen(&record.id, &info).await;
                return Ok(self.node_view(self.node_record(&record.id).await?).await);
            }
            Decision::NodeNewer | Decision::Incomparable => {
                self.warn_newer(&record, &info, &ours, progress).await;
                return Ok(self.node_view(self.node_record(&record.id).await?).await);
            }
        }
        self.replace_agent(record, &info, &ours, progress).await
    }

    /// What `sam node start` and the app's node streams do on meeting a node's
    /// agent: upgrade it when it is older than this desktop's, warn when it is
    /// newer. Each is tried once per process for a pair of builds, so a failing
    /// upgrade is not retried in a loop (`sam node upgrade` tries again). Failures
    /// are reported as warnings (and events), never as errors: the node works
    /// with the agent it has.
    pub async fn upgrade_if_older(&self, node_id: &str, info: &NodeInfo, progress: &dyn Progress) {
        let ours = match own_agent().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e.message, "no agent binary to compare nodes with");
                return;
            }
        };
        let decision = decide(
            &info.version,
            info.build.as_deref(),
            &ours.version,
            &ours.build,
        );
        let key = format!(
            "{node_id} {} {} {}",
            info.version,
            info.build.as_deref().unwrap_or("-"),
            ours.build
        );
        match decision {
            Decision::UpToDate => {}
            Decision::NodeNewer | Decision::Incomparable => {
                if self.inner.upgrades.first_time(format!("newer {key}"))
                    && let Ok(Some(record)) = self.store().node(node_id).await
                {
                    self.warn_newer(&record, info, &ours, progress).await;
                }
            }
            Decision::Upgrade(_) => {
                if !self.inner.upgrades.first_time(format!("upgrade {key}")) {
                    return;
                }
                if let Err(e) = self.upgrade_node(node_id, false, progress).await {
                    tracing::warn!(node = node_id, error = %e.message, "automatic upgrade failed");
                    progress.step(&format!("Warning: {}", e.message));
                    if let Some(h) = &e.hint {
                        progress.step(&format!("Hint: {h}"));
                    }
                }
            }
        }
    }

    /// Whether the node's agent is being upgraded now, by this process or another
    /// SAM process of this installation (its lock is held): its agent may be down
    /// for a moment, which is neither a failure nor something to revive.
    pub fn is_upgrading(&self, node_id: &str) -> bool {
        use rustix::fs::{FlockOperation, flock};
        if self
            .inner
            .upgrades
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(node_id)
        {
            return true;
        }
        let Ok(file) = std::fs::File::open(self.lock_path(node_id)) else {
            return false;
        };
        // Taken (and let go at once, when `file` closes) unless someone holds it.
        matches!(
            flock(&file, FlockOperation::NonBlockingLockShared),
            Err(rustix::io::Errno::WOULDBLOCK)
        )
    }

    fn lock_path(&self, node_id: &str) -> std::path::PathBuf {
        self.dir()
            .join("locks")
            .join(format!("upgrade-{node_id}.lock"))
    }

    fn mark_upgrading(&self, node_id: &str) -> Busy {
        self.inner
            .upgrades
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.to_string());
        Busy {
            sam: self.clone(),
            node_id: node_id.to_string(),
        }
    }

    /// Takes the node's upgrade lock (`locks/upgrade-<node-id>.lock`), waiting
    /// for an upgrade in another task or SAM process to finish.
    async fn lock_upgrade(&self, record: &NodeRecord, progress: &dyn Progress) -> Result<NodeLock> {
        use rustix::fs::{FlockOperation, flock};
        let path = self.lock_path(&record.id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::internal(format!("Cannot open {}: {e}", path.display())))?;
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let mut told = false;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(NodeLock { _file: file }),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(e) => {
                    return Err(Error::internal(format!(
                        "Cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
            if !told {
                told = true;
                progress.step(&format!(
                    "Another upgrade of {}'s agent is under way; waiting for it to finish.",
                    record.name
                ));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::new(
                    code::CONFLICT,
                    format!(
                        "Another upgrade of {}'s agent has not finished within {} minutes.",
                        record.name,
                        LOCK_WAIT.as_secs() / 60
                    ),
                )
                .hint("Look at `sam events NODE`, then try again."));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The provider's upgrade, recorded: the node's version and build, an event.
    async fn replace_agent(
        &self,
        mut record: NodeRecord,
        info: &NodeInfo,
        ours: &AgentFile,
        progress: &dyn Progress,
    ) -> Result<Node> {
        let from = describe(&info.version, info.build.as_deref());
        let to = describe(&ours.version, Some(&ours.build));
        progress.step(&format!(
            "Upgrading sam-agent on {} from {from} to {to}.",
            record.name
        ));
        let result = match record.provider {
            Provider::Local => Local.upgrade(self, &mut record, ours, progress).await,
            Provider::Ssh => {
                Ssh::existing()
                    .upgrade(self, &mut record, ours, progress)
                    .await
            }
            Provider::Hetzner => {
                Hetzner::existing()
                    .upgrade(self, &mut record, ours, progress)
                    .await
            }
        };
        // What else changed meanwhile (events seen by a stream) is kept: only
        // the agent's fields and the provider's (a new pid) are written.
        let mut fresh = self
            .store()
            .node(&record.id)
            .await?
            .unwrap_or_else(|| record.clone());
        fresh.provider_ids = record.provider_ids.clone();
        match result {
            Ok(new) => {
                fresh.saw_agent(&new);
                fresh.last_seen_at = Some(crate::now());
                self.store().update_node(&fresh).await?;
                self.announce(
                    &fresh.id,
                    "node.upgraded",
                    EventLevel::Info,
                    format!(
                        "Upgraded sam-agent on {} from {from} to {}.",
                        fresh.name,
                        describe(&new.version, new.build.as_deref())
                    ),
                )
                .await;
                progress.step(&format!("sam-agent on {} is now {to}.", fresh.name));
                Ok(self.node_view(fresh).await)
            }
            Err(e) => {
                self.store().update_node(&fresh).await?;
                self.announce(
                    &fresh.id,
                    "node.upgrade_failed",
                    EventLevel::Error,
                    format!(
                        "Upgrading sam-agent on {} from {from} to {to} failed: {}",
                        fresh.name, e.message
                    ),
                )
                .await;
                Err(e)
            }
        }
    }

    /// A node whose agent is newer than this desktop's (or not comparable): said
    /// on `progress` and as a `node.agent_newer` event; nothing is changed.
    async fn warn_newer(
        &self,
        record: &NodeRecord,
        info: &NodeInfo,
        ours: &AgentFile,
        progress: &dyn Progress,
    ) {
        let message = format!(
            "The agent on {} ({}) is newer than this app's ({}), or cannot be compared with it; SAM does not downgrade it.",
            record.name,
            describe(&info.version, info.build.as_deref()),
            describe(&ours.version, Some(&ours.build))
        );
        progress.step(&format!("Warning: {message}"));
        progress.step(&format!(
            "Hint: Update this app; or `sam node upgrade {} --force` installs this app's agent anyway.",
            record.name
        ));
        self.announce(&record.id, "node.agent_newer", EventLevel::Warn, message)
            .await;
    }

    /// One of the desktop's events about a node, stored and told to listeners
    /// (the app's window and notifications).
    async fn announce(&self, node_id: &str, kind: &str, level: EventLevel, message: String) {
        let event = Event {
            id: String::new(),
            kind: EventType::Other(kind.to_string()),
            level,
            node_id: node_id.to_string(),
            workspace_id: None,
            session_id: None,
            message,
            detail: None,
            created_at: crate::now(),
        };
        if let Err(e) = self
            .store()
            .insert_event(Some(node_id), &event, false)
            .await
        {
            tracing::warn!(error = %e.message, "cannot store an event");
        }
        let _ = self.inner.signals.send(NodeSignal::Event(Box::new(event)));
    }
}

fn status_word(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Provisioning => "still being made",
        NodeStatus::Running => "running",
        NodeStatus::Stopping => "stopping",
        NodeStatus::Stopped => "stopped",
        NodeStatus::Deleting => "being removed",
        NodeStatus::Error => "in error",
    }
}
