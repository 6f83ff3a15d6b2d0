//! Providers make a machine run `sam-agent` and hand back how to reach it.
//! One trait, one implementation per kind: `local` ("This computer"), `ssh` and
//! `hetzner`. The node API (`api::nodes`) owns the order of things (ask the agent
//! to stop every workspace before a provider powers anything off); providers own
//! the machine.

pub mod bootstrap;
pub mod hetzner;
pub mod local;
pub mod ssh;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sam_protocol::NodeInfo;

use crate::api::{Progress, Sam};
use crate::error::{Error, Result};
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
    /// Replaces the node's running agent by `agent` and restarts it the way it
    /// runs; answers what the new agent says once it reports `agent.build`. On
    /// any failure the previous agent is left (or put back) running, and the
    /// error says which. Terminals and sessions live in holder processes, so a
    /// restart ends none of them.
    fn upgrade(
        &self,
        sam: &Sam,
        node: &mut NodeRecord,
        agent: &AgentFile,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<NodeInfo>> + Send;
}

/// The `sam-agent` to run or upload: `SAM_AGENT_BINARY`, else the one beside this
/// program.
pub fn agent_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SAM_AGENT_BINARY").filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("sam-agent");
    if beside.exists() {
        return Ok(beside);
    }
    Err(
        Error::not_found(format!("No sam-agent was found beside {}.", exe.display()))
            .hint("Build it (`cargo build --release -p sam-agent`) or set SAM_AGENT_BINARY."),
    )
}

/// The `sam-agent` this desktop installs on nodes, and which build it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFile {
    pub path: PathBuf,
    /// sam-agent's version: the workspace's, the same as this program's.
    pub version: String,
    /// What the agent will report as its `build`: the start of the file's SHA-256.
    pub build: String,
}

/// This desktop's agent ([`agent_binary`]) with its build. The hash is kept while
/// the file's size and modification time stay the same, so asking often (every
/// node stream that connects) reads the file once.
pub async fn own_agent() -> Result<AgentFile> {
    let path = agent_binary()?;
    tokio::task::spawn_blocking(move || {
        let build = build_of(&path)?;
        Ok(AgentFile {
            path,
            version: env!("CARGO_PKG_VERSION").to_string(),
            build,
        })
    })
    .await
    .map_err(|e| Error::internal(format!("Hashing the sam-agent binary failed: {e}")))?
}

/// `e` with `more` said after its message.
pub(crate) fn also(mut e: Error, more: &str) -> Error {
    e.message = format!("{} {more}", e.message.trim_end());
    e
}

/// The build id of the agent binary at `path` (as the agent computes its own).
fn build_of(path: &Path) -> Result<String> {
    let (_, hex) = sha256_of(path).map_err(|e| {
        Error::not_found(format!(
            "Cannot read the sam-agent binary {}: {e}.",
            path.display()
        ))
        .hint("Build it (`cargo build --release -p sam-agent`) or point SAM_AGENT_BINARY at one.")
    })?;
    Ok(hex[..sam_protocol::BUILD_HEX_DIGITS].to_string())
}

/// A file's size and SHA-256 (hex). The last answer is kept while the file's
/// size and modification time stay the same: the agent binary is hashed for its
/// build (every node stream that connects asks) and again to check an upload of
/// it, and is read once.
pub(crate) fn sha256_of(path: &Path) -> std::io::Result<(u64, String)> {
    type Seen = (PathBuf, u64, Option<std::time::SystemTime>, String);
    static LAST: Mutex<Option<Seen>> = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some((p, len, modified, hex)) = LAST.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        && (p, len, modified) == (&key.0, &key.1, &key.2)
    {
        return Ok((*len, hex.clone()));
    }
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some((key.0, size, key.2, hex.clone()));
    Ok((size, hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_the_start_of_the_sha256_and_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sam-agent");
        std::fs::write(&path, b"abc").unwrap();
        // SHA-256("abc") = ba7816bf8f01cfea…, as the agent computes its own.
        assert_eq!(build_of(&path).unwrap(), "ba7816bf8f01cfea");
        // Another file of the same size: the cache notices (modification time).
        std::fs::write(&path, b"abd").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        assert_ne!(build_of(&path).unwrap(), "ba7816bf8f01cfea");
        let e = build_of(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.message.contains("Cannot read the sam-agent binary"),
            "{e:?}"
        );
    }
}
