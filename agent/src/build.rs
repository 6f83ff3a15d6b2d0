//! Which build of `sam-agent` this is: the first 16 hex digits of the SHA-256 of
//! the agent's own executable (`/proc/self/exe`). Every build of one version says
//! the same `version`; `build` tells them apart, so the desktop can tell an agent
//! that is not the one it ships (docs/protocol.md, "Extensions").
//!
//! Hashed once, in the background from start-up on (a blocking task), so start-up
//! does not wait for it. `GET /node` (and the heartbeats) wait for that one
//! computation when they come first — a desktop must never see an agent without a
//! build and take it for an older one; `GET /health` says it only once known.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use sam_protocol::BUILD_HEX_DIGITS;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// This process's build id, computed at most once.
#[derive(Clone, Default)]
pub struct Build(Arc<OnceCell<Option<String>>>);

impl Build {
    /// Starts hashing the executable in the background.
    pub fn start(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            me.get().await;
        });
    }

    /// The build id if it is known already (`GET /health` never waits).
    pub fn known(&self) -> Option<String> {
        self.0.get().cloned().flatten()
    }

    /// The build id; `None` when the executable cannot be read (logged once).
    pub async fn get(&self) -> Option<String> {
        self.0
            .get_or_init(|| async {
                match tokio::task::spawn_blocking(|| hash_file(Path::new("/proc/self/exe"))).await
                {
                    Ok(Ok(build)) => {
                        tracing::info!(%build, "build identified");
                        Some(build)
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot read this agent's executable; its build is unknown");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "hashing this agent's executable failed");
                        None
                    }
                }
            })
            .await
            .clone()
    }
}

/// The build id of the executable at `path`: the first [`BUILD_HEX_DIGITS`] hex
/// digits of its SHA-256 (what the desktop computes for the binary it installs).
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..BUILD_HEX_DIGITS]
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_the_start_of_the_files_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223…
        assert_eq!(hash_file(&path).unwrap(), "ba7816bf8f01cfea");
        assert!(hash_file(&dir.path().join("missing")).is_err());
    }
}
