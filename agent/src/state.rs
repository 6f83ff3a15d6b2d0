//! Shared state of the agent: a `Clone` bundle of `Arc`s handed to every handler.

use std::sync::Arc;

use sam_protocol::{DockerStatus, Limits, NodeInfo, Timestamp};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenVerifier;
use crate::config::Config;
use crate::events::EventLog;
use crate::store::Store;
use crate::workspaces::Workspaces;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub verifier: Arc<TokenVerifier>,
    pub store: Store,
    pub events: EventLog,
    pub workspaces: Workspaces,
    /// Limits in force: the flags, or what `PATCH /node` set since.
    pub limits: Arc<RwLock<Limits>>,
    pub engine: crate::docker::Engine,
    pub terminals: crate::terminals::Terminals,
    /// Starts and adopts the holder processes that own terminals.
    pub terminals_host: crate::holders::TerminalHost,
    pub sessions: crate::sessions::Sessions,
    /// Docker as last seen by the monitor.
    pub docker: Arc<RwLock<DockerStatus>>,
    /// This executable's build id (`build` of `GET /node` and `/health`).
    pub build: crate::build::Build,
    pub started_at: Timestamp,
    /// Cancelled on SIGTERM/SIGINT: long-lived sockets close.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub async fn node_info(&self) -> NodeInfo {
        let (cpu, memory, disk) = crate::node::system(&self.config.data_dir);
        NodeInfo {
            node_id: self.config.node_id.clone(),
            version: crate::VERSION.to_string(),
            started_at: self.started_at,
            docker: self.docker.read().await.clone(),
            limits: *self.limits.read().await,
            workspaces: self.workspaces.counts().await,
            cpu,
            memory,
            disk,
            build: self.build.get().await,
        }
    }
}
