//! Workspaces across nodes: named `NODE/NAME`, by id, or by `NAME` where that is
//! unique; created, listed, renamed, stopped, restarted and removed through each
//! node's agent. What was last seen is cached for the app's first paint.

use std::collections::BTreeMap;
use std::time::Duration;

use sam_protocol::{CreateWorkspace, Workspace, WorkspaceStatus, name_key};
use serde::{Deserialize, Serialize};

use super::{Progress, Sam};
use crate::agent_client::NodeClient;
use crate::error::{Error, Result, code};
use crate::nodes::{NodeRecord, NodeStatus};

/// A workspace as the CLI and app show it: the contract's, plus its node.
#[derive(ts_rs::TS, Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    #[serde(flatten)]
    pub workspace: Workspace,
    /// The node's id.
    pub node: String,
}

/// What `sam ws create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewWorkspace {
    pub name: String,
    pub image: Option<String>,
    pub repository: Option<String>,
    pub branch: Option<String>,
    /// Handed to the agent for the clone only; never stored here.
    pub git_token: Option<String>,
    pub env: BTreeMap<String, String>,
}

/// A resolved workspace: its node, a client for it, and the workspace.
pub struct Located {
    pub node: NodeRecord,
    pub client: NodeClient,
    pub workspace: Workspace,
}

impl Sam {
    async fn running_nodes(&self) -> Result<Vec<NodeRecord>> {
        Ok(self
            .store()
            .nodes()
            .await?
            .into_iter()
            .filter(|n| {
                !matches!(
                    n.status,
                    NodeStatus::Stopped | NodeStatus::Deleting | NodeStatus::Provisioning
                )
            })
            .collect())
    }

    /// Workspaces of one node or of all, as their agents answer now.
    pub async fn list_workspaces(&self, node: Option<&str>) -> Result<Vec<WorkspaceView>> {
        let nodes = match node {
            Some(n) => vec![self.node_record(n).await?],
            None => self.running_nodes().await?,
        };
        let mut out = Vec::new();
        for record in nodes {
            let client = self.client(&record).await?;
            match client.workspaces().await {
                Ok(list) => {
                    let _ = self.store().cache_workspaces(&record.id, &list).await;
                    out.extend(list.into_iter().map(|w| WorkspaceView {
                        workspace: w,
                        node: record.id.clone(),
                    }));
                }
                // One node down does not hide the others (unless it was the one asked for).
                Err(e) if node.is_none() => {
                    tracing::warn!(node = %record.name, error = %e.message, "not listed")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Finds `NODE/NAME`, an id, or a `NAME` unique across nodes.
    pub async fn locate(&self, spec: &str) -> Result<Located> {
        let (node_part, ws_part) = match spec.split_once('/') {
            Some((n, w)) => (Some(n), w),
            None => (None, spec),
        };
        let nodes = match node_part {
            Some(n) => vec![self.node_record(n).await?],
            None => self.running_nodes().await?,
        };
        let mut found: Vec<Located> = Vec::new();
        for record in nodes {
            let client = self.client(&record).await?;
            let list = match client.workspaces().await {
                Ok(l) => l,
                Err(e) if node_part.is_some() => return Err(e),
                Err(_) => continue,
            };
            let key = name_key(ws_part);
            for w in list {
                if w.id == ws_part || name_key(&w.display_name) == key {
                    found.push(Located {
                        node: record.clone(),
                        client: client.clone(),
                        workspace: w,
                    });
                }
            }
        }
        if let Some(i) = found.iter().position(|l| l.workspace.id == ws_part) {
            return Ok(found.swap_remove(i));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::not_found(format!("There is no workspace {spec:?}."))
                .hint("`sam ws ls` lists the workspaces.")),
            _ => Err(Error::new(
                code::AMBIGUOUS,
                format!("Several workspaces are named {ws_part:?}."),
            )
            .hint("Name it as NODE/NAME, or by its id.")),
        }
    }

    pub async fn show_workspace(&self, spec: &str) -> Result<WorkspaceView> {
        let l = self.locate(spec).await?;
        Ok(WorkspaceView {
            workspace: l.workspace,
            node: l.node.id,
        })
    }

    /// Creates a workspace; with `wait`, follows its progress until it runs.
    pub async fn create_workspace(
        &self,
        node: &str,
        new: NewWorkspace,
        wait: bool,
        progress: &dyn Progress,
    ) -> Result<WorkspaceView> {
        let record = self.node_record(node).await?;
        let client = self.client(&record).await?;
        let req = CreateWorkspace {
            display_name: new.name,
            image: new.image,
            repository: new.repository,
            branch: new.branch,
            env: (!new.env.is_empty()).then_some(new.env),
            git_token: new.git_token,
        };
        let ws = client.create_workspace(&req).await?;
        progress.step(&format!(
            "Creating workspace {} ({}).",
            ws.display_name, ws.id
        ));
        let ws = if wait {
            follow(&client, &ws.id, WorkspaceStatus::Running, progress).await?
        } else {
            ws
        };
        Ok(WorkspaceView {
            workspace: ws,
            node: record.id,
        })
    }

    pub async fn rename_workspace(&self, spec: &str, name: &str) -> Result<WorkspaceView> {
        let l = self.locate(spec).await?;
        let ws = l.client.rename_workspace(&l.workspace.id, name).await?;
        Ok(WorkspaceView {
            workspace: ws,
            node: l.node.id,
        })
    }

    pub async fn stop_workspace(
        &self,
        spec: &str,
        wait: bool,
        progress: &dyn Progress,
    ) -> Result<WorkspaceView> {
        let l = self.locate(spec).await?;
        let mut ws = l.client.stop_workspace(&l.workspace.id).await?;
        if wait {
            ws = follow(&l.client, &ws.id, WorkspaceStatus::Stopped, progress).await?;
        }
        Ok(WorkspaceView {
            workspace: ws,
            node: l.node.id,
        })
    }

    pub async fn restart_workspace(
        &self,
        spec: &str,
        wait: bool,
        progress: &dyn Progress,
    ) -> Result<WorkspaceView> {
        let l = self.locate(spec).await?;
        let mut ws = l.client.restart_workspace(&l.workspace.id).await?;
        if wait {
            ws = follow(&l.client, &ws.id, WorkspaceStatus::Running, progress).await?;
        }
        Ok(WorkspaceView {
            workspace: ws,
            node: l.node.id,
        })
    }

    /// Deletes a workspace and waits until it is gone.
    pub async fn remove_workspace(
        &self,
        spec: &str,
        progress: &dyn Progress,
    ) -> Result<WorkspaceView> {
        let l = self.locate(spec).await?;
        let ws = l.client.delete_workspace(&l.workspace.id).await?;
        progress.step(&format!("Deleting workspace {}.", ws.display_name));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match l.client.workspace(&ws.id).await {
                Err(e) if e.is("workspace_not_found") => break,
                Ok(w) if w.status == WorkspaceStatus::Error => {
                    return Err(Error::new(
                        code::PROVIDER,
                        w.error
                            .unwrap_or_else(|| "Deleting the workspace failed.".into()),
                    ));
                }
                Err(e) if !e.is(code::UNREACHABLE) => return Err(e),
                _ => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::new(
                    code::PROVIDER,
                    "The workspace was not deleted within 2 minutes.",
                ));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Ok(WorkspaceView {
            workspace: ws,
            node: l.node.id,
        })
    }
}

/// Polls a workspace until it reaches `target`, reporting its progress events.
async fn follow(
    client: &NodeClient,
    id: &str,
    target: WorkspaceStatus,
    progress: &dyn Progress,
) -> Result<Workspace> {
    let mut shown = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30 * 60);
    loop {
        if let Ok(page) = client.events(Some(id), 50, None).await {
            for e in page.events.iter().rev() {
                if shown.insert(e.id.clone()) && e.kind.as_str() == "workspace.progress" {
                    progress.step(&e.message);
                }
            }
        }
        let ws = client.workspace(id).await?;
        if ws.status == target {
            return Ok(ws);
        }
        if ws.status == WorkspaceStatus::Error {
            return Err(Error::new("workspace_error", ws.error.unwrap_or_else(|| "The workspace failed.".into()))
                .hint("`sam events WS` shows what happened; fix it, then `sam ws rm` and create it again."));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::new(
                code::PROVIDER,
                "The workspace did not settle within 30 minutes.",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Sam {
    /// Agent sessions `starting` or `running` in a workspace (for confirmations).
    pub async fn workspace_sessions_running(&self, spec: &str) -> Result<usize> {
        let l = self.locate(spec).await?;
        let sessions = l.client.sessions(&l.workspace.id).await?;
        Ok(sessions
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    sam_protocol::SessionStatus::Starting | sam_protocol::SessionStatus::Running
                )
            })
            .count())
    }
}
