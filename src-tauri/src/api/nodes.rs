//! Nodes: add (through a provider), list and show (probing each agent for health
//! and counts), stop, start and remove (asking the agent to stop every workspace
//! before the provider acts), and what a stop or remove would end.

use std::time::Duration;

use sam_protocol::{EventLevel, EventType, LimitsPatch, NodeStopPlan, PatchNode, WorkspaceCounts};

use super::{Progress, Sam, pick};
use crate::error::{Error, Result, code};
use crate::nodes::{Health, Node, NodeRecord, NodeStatus, Provider, health, validate_name};
use crate::providers::NodeProvider;
use crate::providers::hetzner::{self, AddHetzner, Hetzner, HetznerOptions};
use crate::providers::local::Local;
use crate::providers::ssh::{self, AddSsh, ConfirmHostKey, Ssh};

/// How long the CLI's health probe waits.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl Sam {
    pub async fn node_record(&self, name_or_id: &str) -> Result<NodeRecord> {
        let nodes = self.store().nodes().await?;
        pick(&nodes, name_or_id, "node", |n| &n.id, |n| &n.name)
            .cloned()
            .map_err(|e| {
                if e.is(code::NOT_FOUND) {
                    e.hint("`sam node ls` lists the nodes.")
                } else {
                    e
                }
            })
    }

    /// A node as shown, after probing its agent (`GET /node`, short timeout).
    pub async fn node_view(&self, record: NodeRecord) -> Node {
        self.probed_view(record).await.0
    }

    /// A node as shown and, when its agent could not be asked, why. A node whose
    /// agent presents another certificate than the pinned one is `unhealthy` at
    /// once (not a blip to wait out); the reason names both fingerprints.
    pub async fn probed_view(&self, record: NodeRecord) -> (Node, Option<Error>) {
        let mut record = record;
        if matches!(
            record.status,
            NodeStatus::Stopped | NodeStatus::Deleting | NodeStatus::Provisioning
        ) {
            return (record.view(WorkspaceCounts::default(), None), None);
        }
        let mut probe = match self.client(&record).await {
            Ok(c) => tokio::time::timeout(PROBE_TIMEOUT, c.node()).await.ok(),
            Err(e) => Some(Err(e)),
        };
        // This computer's agent died (a crash, a reboot): start it again — unless
        // it is down for a moment because it is being upgraded.
        if record.provider == Provider::Local
            && record.status == NodeStatus::Running
            && !matches!(probe, Some(Ok(_)))
            && !self.is_upgrading(&record.id)
            && self.revive_local(&mut record).await
        {
            probe = match self.client(&record).await {
                Ok(c) => tokio::time::timeout(PROBE_TIMEOUT, c.node()).await.ok(),
                Err(e) => Some(Err(e)),
            };
        }
        match probe {
            Some(Ok(info)) => {
                self.seen(&record.id, &info).await;
                if let Some(change) = self.set_health(&record.id, Health::Healthy).await {
                    tracing::info!(node = %change.node_name, "healthy");
                }
                record.last_seen_at = Some(crate::now());
                record.saw_agent(&info);
                record.health = Some(Health::Healthy);
                (record.view(info.workspaces, Some(info.limits)), None)
            }
            Some(Err(e)) if e.is(code::CERTIFICATE_CHANGED) => {
                self.set_health(&record.id, Health::Unhealthy).await;
                record.health = Some(Health::Unhealthy);
                (record.view(WorkspaceCounts::default(), None), Some(e))
            }
            other => {
                let why = match other {
                    Some(Err(e)) => e,
                    _ => Error::new(
                        code::UNREACHABLE,
                        format!(
                            "The node's agent did not answer within {} s.",
                            PROBE_TIMEOUT.as_secs()
                        ),
                    ),
                };
                let since = record
                    .last_seen_at
                    .and_then(|t| (crate::now() - t).to_std().ok());
                let judged = health::judge(since, self.stale_after().await, true);
                // A failed probe is "unhealthy" only once the node is also overdue;
                // a blip within the stale window shows as stale.
                let judged = match (judged, since) {
                    (Health::Unhealthy, Some(d)) if d < self.stale_after().await * 3 => {
                        Health::Stale
                    }
                    (h, _) => h,
                };
                self.set_health(&record.id, judged).await;
                record.health = Some(judged);
                (record.view(WorkspaceCounts::default(), None), Some(why))
            }
        }
    }

    /// Starts this computer's agent again when nothing answers on its port.
    /// Answers whether it was started.
    pub async fn revive_local(&self, record: &mut NodeRecord) -> bool {
        let port = record
            .provider_ids
            .get("port")
            .and_then(|p| p.as_u64())
            .unwrap_or(crate::providers::local::DEFAULT_PORT as u64);
        if crate::providers::local::agent_pid(port).is_some() {
            return false;
        }
        match Local.start(self, record, &super::Quiet).await {
            Ok(()) => {
                let _ = self.store().update_node(record).await;
                self.record_event(
                    Some(&record.id),
                    EventType::Other("node.restarted".into()),
                    EventLevel::Warn,
                    format!(
                        "The agent of {} had stopped; SAM started it again.",
                        record.name
                    ),
                )
                .await;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "the local agent could not be started again");
                false
            }
        }
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>> {
        let records = self.store().nodes().await?;
        let views = records.into_iter().map(|r| self.node_view(r));
        Ok(futures::future::join_all(views).await)
    }

    pub async fn show_node(&self, name_or_id: &str) -> Result<Node> {
        let record = self.node_record(name_or_id).await?;
        Ok(self.node_view(record).await)
    }

    /// `show_node`, and why the agent could not be asked (for a warning).
    pub async fn inspect_node(&self, name_or_id: &str) -> Result<(Node, Option<Error>)> {
        let record = self.node_record(name_or_id).await?;
        Ok(self.probed_view(record).await)
    }

    async fn check_node_limit(&self) -> Result<()> {
        let max = self
            .setting_u32("max-nodes", "MAX_NODES_PER_USER", 10)
            .await;
        let count = self.store().nodes().await?.len() as u32;
        if count >= max {
            return Err(Error::new(
                code::LIMIT_REACHED,
                format!("You already have {count} nodes, the limit."),
            )
            .hint("Remove a node, or raise the limit: `sam settings set max-nodes N`."));
        }
        Ok(())
    }

    /// Pushes the workspace/session limits to a node's agent (`PATCH /node`).
    pub async fn push_limits(&self, record: &NodeRecord) -> Result<()> {
        let patch = PatchNode {
            limits: LimitsPatch {
                max_workspaces: Some(
                    self.setting_u32("max-workspaces", "MAX_WORKSPACES_PER_NODE", 10)
                        .await,
                ),
                max_sessions_per_workspace: Some(
                    self.setting_u32("max-sessions", "MAX_AGENT_SESSIONS_PER_WORKSPACE", 5)
                        .await,
                ),
            },
        };
        self.client(record)
            .await?
            .patch_node(&patch)
            .await
            .map(|_| ())
    }

    /// Stores a node a provider made, and tells its agent the limits.
    async fn adopt(&self, record: NodeRecord, progress: &dyn Progress) -> Result<Node> {
        self.store().insert_node(&record).await?;
        Ok(self.welcome(record, progress).await)
    }

    /// Tells a stored node's agent the limits and records that it was added.
    async fn welcome(&self, record: NodeRecord, progress: &dyn Progress) -> Node {
        progress.step("Applying the workspace and session limits.");
        if let Err(e) = self.push_limits(&record).await {
            tracing::warn!(error = %e.message, "limits not applied");
        }
        self.record_event(
            Some(&record.id),
            EventType::Other("node.added".into()),
            EventLevel::Info,
            format!(
                "Added node {} ({}).",
                record.name,
                provider_word(record.provider)
            ),
        )
        .await;
        self.node_view(record).await
    }

    /// `sam node add local`: this computer.
    pub async fn add_local(&self, name: &str, progress: &dyn Progress) -> Result<Node> {
        validate_name(name)?;
        if let Some(existing) = self
            .store()
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.provider == Provider::Local)
        {
            return Err(Error::new(
                code::CONFLICT,
                format!("This computer is already the node {:?}.", existing.name),
            )
            .hint("`sam node show` it; a computer is one node."));
        }
        self.check_node_limit().await?;
        let record = Local.create(self, name, progress).await?;
        self.adopt(record, progress).await
    }

    /// `sam node add ssh`: a server reached over SSH. The name is checked before
    /// anything is contacted; a failure part-way leaves nothing on the server and
    /// nothing stored. `confirm` asks about a host key seen for the first time
    /// (none: refuse, naming the fingerprint).
    pub async fn add_ssh(
        &self,
        name: &str,
        spec: AddSsh,
        confirm: Option<Box<ConfirmHostKey>>,
        progress: &dyn Progress,
    ) -> Result<Node> {
        validate_name(name)?;
        if self.store().nodes().await?.iter().any(|n| n.name == name) {
            return Err(Error::new(
                code::CONFLICT,
                format!("There is a node named {name:?} already."),
            )
            .hint("Pick another name with --name, or remove that node first (`sam node rm`)."));
        }
        self.check_node_limit().await?;
        let record = Ssh::adding(spec, confirm)
            .create(self, name, progress)
            .await?;
        // Storing is the only step of `adopt` that can fail; if it does, the
        // server is cleaned up again.
        match self.adopt(record.clone(), progress).await {
            Ok(node) => Ok(node),
            Err(e) => {
                progress.step("Undoing what was made on the server.");
                if let Err(undo) = Ssh::existing().delete(self, &record, progress).await {
                    tracing::warn!(error = %undo.message, "undoing the SSH install failed");
                }
                Err(e)
            }
        }
    }

    /// `sam node add hetzner`: a server made in the person's Hetzner Cloud project.
    /// The name, the server type (x86 only) and the node limit are checked before
    /// anything is contacted, the offer (type, location, image, a free server name)
    /// before anything is made; a failure part-way deletes what was made in
    /// Hetzner Cloud and stores nothing (providers/hetzner.rs).
    pub async fn add_hetzner(
        &self,
        name: &str,
        spec: AddHetzner,
        progress: &dyn Progress,
    ) -> Result<Node> {
        validate_name(name)?;
        hetzner::check_request(name, &spec)?;
        if self.store().nodes().await?.iter().any(|n| n.name == name) {
            return Err(Error::new(
                code::CONFLICT,
                format!("There is a node named {name:?} already."),
            )
            .hint("Pick another name with --name, or remove that node first (`sam node rm`)."));
        }
        self.check_node_limit().await?;
        // The provider stores the node as `provisioning` while it works.
        let record = Hetzner::adding(spec).create(self, name, progress).await?;
        match self.store().update_node(&record).await {
            Ok(()) => Ok(self.welcome(record, progress).await),
            Err(e) => {
                progress.step("Undoing what was made in Hetzner Cloud.");
                if let Err(undo) = Hetzner::existing().delete(self, &record, progress).await {
                    tracing::warn!(error = %undo.message, "undoing the Hetzner node failed");
                    return Err(e.hint(format!(
                        "SAM could not delete the server it made ({}): `sam node rm {name}` tries again.",
                        undo.message.trim_end_matches('.')
                    )));
                }
                let _ = self.store().delete_node(&record.id).await;
                Err(e)
            }
        }
    }

    /// Server types (Arm ones marked unavailable), locations and images a Hetzner
    /// node can be made of.
    pub async fn hetzner_options(&self) -> Result<HetznerOptions> {
        hetzner::options(self).await
    }

    /// The SSH host key `host:port` presents, for a person to confirm.
    pub async fn ssh_host_key(&self, host: &str, port: u16) -> Result<String> {
        ssh::scan_host_key(host, port).await
    }

    /// Forgets a node without touching its machine (for a server that is gone):
    /// whatever runs there is left as it is.
    pub async fn forget_node(&self, name_or_id: &str) -> Result<NodeRecord> {
        let record = self.node_record(name_or_id).await?;
        self.unwatch_node(&record.id);
        self.store().delete_node(&record.id).await?;
        self.record_event(
            None,
            EventType::Other("node.forgotten".into()),
            EventLevel::Warn,
            format!(
                "Forgot node {} ({}) without removing anything from it.",
                record.name, record.address
            ),
        )
        .await;
        Ok(record)
    }

    /// What stopping or removing a node would end (the agent's dry run).
    pub async fn node_stop_plan(&self, name_or_id: &str) -> Result<NodeStopPlan> {
        let record = self.node_record(name_or_id).await?;
        if record.status == NodeStatus::Stopped {
            return Ok(NodeStopPlan {
                workspaces: vec![],
                sessions: vec![],
            });
        }
        self.client(&record).await?.stop_plan().await
    }

    pub async fn stop_node(&self, name_or_id: &str, progress: &dyn Progress) -> Result<Node> {
        let mut record = self.node_record(name_or_id).await?;
        if record.status == NodeStatus::Stopped {
            return Ok(self.node_view(record).await);
        }
        // Check SSH (host key, login) or the Hetzner API (token, server) before
        // the workspaces are stopped, so a refusal there leaves the node as it was.
        if record.provider == Provider::Ssh {
            ssh::preflight(&record).await?;
        }
        if record.provider == Provider::Hetzner && !hetzner::preflight(self, &record).await? {
            return Err(Error::not_found(format!(
                "The Hetzner Cloud server of node {} no longer exists.",
                record.name
            ))
            .hint(format!(
                "`sam node rm {}` removes the node (and its firewall and SSH key).",
                record.name
            )));
        }
        record.status = NodeStatus::Stopping;
        self.store().update_node(&record).await?;
        progress.step("Stopping every workspace on the node.");
        let client = self.client(&record).await?;
        if let Err(e) = client.stop_node().await {
            record.status = NodeStatus::Running;
            self.store().update_node(&record).await?;
            return Err(e);
        }
        let result = match record.provider {
            Provider::Local => Local.stop(self, &mut record, progress).await,
            Provider::Ssh => Ssh::existing().stop(self, &mut record, progress).await,
            Provider::Hetzner => Hetzner::existing().stop(self, &mut record, progress).await,
        };
        record.status = if result.is_ok() {
            NodeStatus::Stopped
        } else {
            NodeStatus::Error
        };
        record.health = None;
        self.store().update_node(&record).await?;
        result?;
        self.record_event(
            Some(&record.id),
            EventType::Other("node.stopped".into()),
            EventLevel::Info,
            format!("Stopped node {}.", record.name),
        )
        .await;
        Ok(self.node_view(record).await)
    }

    pub async fn start_node(&self, name_or_id: &str, progress: &dyn Progress) -> Result<Node> {
        let mut record = self.node_record(name_or_id).await?;
        let result = match record.provider {
            Provider::Local => Local.start(self, &mut record, progress).await,
            Provider::Ssh => Ssh::existing().start(self, &mut record, progress).await,
            Provider::Hetzner => Hetzner::existing().start(self, &mut record, progress).await,
        };
        record.status = if result.is_ok() {
            NodeStatus::Running
        } else {
            NodeStatus::Error
        };
        self.store().update_node(&record).await?;
        result?;
        if let Err(e) = self.push_limits(&record).await {
            tracing::warn!(error = %e.message, "limits not applied");
        }
        self.record_event(
            Some(&record.id),
            EventType::Other("node.started".into()),
            EventLevel::Info,
            format!("Started node {}.", record.name),
        )
        .await;
        // An agent older than this desktop's is upgraded now (api/upgrade.rs).
        if let Ok(client) = self.client(&record).await
            && let Ok(info) = client.node().await
        {
            self.upgrade_if_older(&record.id, &info, progress).await;
            record = self.node_record(&record.id).await?;
        }
        Ok(self.node_view(record).await)
    }

    /// Removes a node: its workspaces are deleted first (when the agent answers),
    /// then the provider undoes what it made, then SAM forgets the node.
    pub async fn remove_node(
        &self,
        name_or_id: &str,
        progress: &dyn Progress,
    ) -> Result<NodeRecord> {
        let mut record = self.node_record(name_or_id).await?;
        if record.provider == Provider::Ssh {
            ssh::preflight(&record).await?;
        }
        if record.provider == Provider::Hetzner {
            hetzner::preflight(self, &record).await?;
        }
        if record.status != NodeStatus::Stopped
            && let Ok(client) = self.client(&record).await
            && let Ok(workspaces) = client.workspaces().await
        {
            for ws in &workspaces {
                progress.step(&format!("Deleting workspace {}.", ws.display_name));
                client.delete_workspace(&ws.id).await?;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while !client
                .workspaces()
                .await
                .map(|w| w.is_empty())
                .unwrap_or(true)
            {
                if tokio::time::Instant::now() > deadline {
                    return Err(Error::new(
                        code::PROVIDER,
                        "The node's workspaces were not deleted within 2 minutes.",
                    )
                    .hint("Look at `sam events NODE`, then try again."));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        record.status = NodeStatus::Deleting;
        self.store().update_node(&record).await?;
        self.unwatch_node(&record.id);
        let result = match record.provider {
            Provider::Local => Local.delete(self, &record, progress).await,
            Provider::Ssh => Ssh::existing().delete(self, &record, progress).await,
            Provider::Hetzner => Hetzner::existing().delete(self, &record, progress).await,
        };
        if let Err(e) = result {
            record.status = NodeStatus::Error;
            self.store().update_node(&record).await?;
            return Err(e);
        }
        self.store().delete_node(&record.id).await?;
        Ok(record)
    }
}

fn provider_word(p: Provider) -> &'static str {
    match p {
        Provider::Local => "this computer",
        Provider::Ssh => "SSH",
        Provider::Hetzner => "Hetzner Cloud",
    }
}
