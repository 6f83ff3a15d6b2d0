//! Providers make a machine run `sam-agent` and hand back how to reach it.
//! One trait, one implementation per kind: `local` ("This computer"), `ssh` and
//! `hetzner`. The node API (`api::nodes`) owns the order of things (ask the agent
//! to stop every workspace before a provider powers anything off); providers own
//! the machine.

pub mod bootstrap;
pub mod hetzner;
pub mod local;
pub mod ssh;

use crate::api::{Progress, Sam};
use crate::error::Result;
use crate::nodes::NodeRecord;

pub trait NodeProvider {
    /// Makes the machine run an agent; answers the node as it should be stored.
    fn create(
        &self,
        sam: &Sam,
        name: &str,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<NodeRecord>> + Send;
    /// Stops the machine's agent (or the machine); its workspaces are already stopped.
    fn stop(
        &self,
        sam: &Sam,
        node: &mut NodeRecord,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Starts it again and waits until the agent answers.
    fn start(
        &self,
        sam: &Sam,
        node: &mut NodeRecord,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Removes everything the provider made for the node.
    fn delete(
        &self,
        sam: &Sam,
        node: &NodeRecord,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The `sam-agent` to run or upload: `SAM_AGENT_BINARY`, else the one beside this
/// program.
pub fn agent_binary() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SAM_AGENT_BINARY").filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("sam-agent");
    if beside.exists() {
        return Ok(beside);
    }
    Err(
        crate::error::Error::not_found(format!("No sam-agent was found beside {}.", exe.display()))
            .hint("Build it (`cargo build --release -p sam-agent`) or set SAM_AGENT_BINARY."),
    )
}
