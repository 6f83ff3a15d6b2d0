//! Secrets: the installation's signing key, Hetzner tokens, SSH keys, agent keys.
//!
//! Invariant: the only module that touches them at rest. They live in the platform
//! keychain (the Secret Service on Linux desktops) or, where none is reachable (a
//! headless server), in one file in the state folder with mode 0600 (CLI.md).
//! Never in SQLite, logs, or command lines.
//!
//! `SAM_SECRET_STORE` picks a backend: `auto` (default), `secret-service`, `file`,
//! or `keyutils` — the Linux kernel keyring, which works without a desktop session
//! but keeps secrets in RAM only and loses them at reboot, so it is never chosen
//! automatically (losing the installation key would orphan every node).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyring_core::api::CredentialStore;

use crate::error::{Error, Result, code};

const SERVICE: &str = "dev.sam.desktop";

#[derive(Clone)]
pub struct Secrets {
    backend: Arc<Backend>,
}

enum Backend {
    Keyring {
        store: Arc<CredentialStore>,
        name: &'static str,
    },
    File {
        path: PathBuf,
    },
}

fn store_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(code::SECRET_STORE, format!("The secret store failed to {what}: {e}"))
        .hint("Unlock your keychain, or set SAM_SECRET_STORE=file to keep secrets in a 0600 file in the state folder.")
}

impl Secrets {
    /// Picks the backend (see the module docs).
    pub fn open(state_dir: &Path) -> Result<Self> {
        let choice = std::env::var("SAM_SECRET_STORE").unwrap_or_else(|_| "auto".into());
        let file = || Backend::File {
            path: state_dir.join("secrets.json"),
        };
        let backend = match choice.as_str() {
            "file" => file(),
            "auto" => match secret_service() {
                Ok(b) => b,
                Err(e) => {
                    tracing::info!(reason = %e.message, "no keychain reachable; secrets go to a 0600 file");
                    file()
                }
            },
            "secret-service" => secret_service()?,
            "keyutils" => keyutils()?,
            other => {
                return Err(Error::invalid(format!(
                    "SAM_SECRET_STORE={other:?} is not a secret store."
                ))
                .hint("Use auto, secret-service, keyutils or file."));
            }
        };
        Ok(Secrets {
            backend: Arc::new(backend),
        })
    }

    /// Where secrets are kept, in words (for `settings show` and the app).
    pub fn describe(&self) -> String {
        match self.backend.as_ref() {
            Backend::Keyring { name, .. } => name.to_string(),
            Backend::File { path } => format!(
                "file {} (mode 0600; no keychain was reachable)",
                path.display()
            ),
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self.backend.as_ref(), Backend::File { .. })
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        let backend = self.backend.clone();
        let key = key.to_string();
        blocking(move || backend.get(&key)).await
    }

    pub async fn set(&self, key: &str, value: &str) -> Result<()> {
        let backend = self.backend.clone();
        let (key, value) = (key.to_string(), value.to_string());
        blocking(move || backend.set(&key, &value)).await
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        let backend = self.backend.clone();
        let key = key.to_string();
        blocking(move || backend.delete(&key)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("The secret store task failed: {e}")))?
}

#[cfg(target_os = "linux")]
fn secret_service() -> Result<Backend> {
    let store = zbus_secret_service_keyring_store::Store::new()
        .map_err(|e| store_error("open the Secret Service", e))?;
    let store: Arc<CredentialStore> = store;
    // Probe: a missing entry is fine, an unreachable service is not.
    let entry = store
        .build(SERVICE, "probe", None)
        .map_err(|e| store_error("open the Secret Service", e))?;
    match entry.get_password() {
        Ok(_) | Err(keyring_core::Error::NoEntry) => Ok(Backend::Keyring {
            store,
            name: "the Secret Service (your desktop keychain)",
        }),
        Err(e) => Err(store_error("reach the Secret Service", e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn secret_service() -> Result<Backend> {
    Err(Error::new(
        code::SECRET_STORE,
        "This build has no keychain backend for this platform yet.",
    ))
}

#[cfg(target_os = "linux")]
fn keyutils() -> Result<Backend> {
    let store = linux_keyutils_keyring_store::Store::new()
        .map_err(|e| store_error("open the kernel keyring", e))?;
    let store: Arc<CredentialStore> = store;
    let entry = store
        .build(SERVICE, "probe", None)
        .map_err(|e| store_error("open the kernel keyring", e))?;
    match entry.get_password() {
        Ok(_) | Err(keyring_core::Error::NoEntry) => Ok(Backend::Keyring {
            store,
            name: "the kernel keyring (RAM only: lost at reboot)",
        }),
        Err(e) => Err(store_error("reach the kernel keyring", e)
            .hint("Run inside a session keyring (e.g. `keyctl session - sam …`), or use SAM_SECRET_STORE=file.")),
    }
}

#[cfg(not(target_os = "linux"))]
fn keyutils() -> Result<Backend> {
    Err(Error::new(
        code::SECRET_STORE,
        "The kernel keyring exists on Linux only.",
    ))
}

impl Backend {
    fn get(&self, key: &str) -> Result<Option<String>> {
        match self {
            Backend::Keyring { store, .. } => {
                let entry = store
                    .build(SERVICE, key, None)
                    .map_err(|e| store_error("read a secret", e))?;
                match entry.get_password() {
                    Ok(v) => Ok(Some(v)),
                    Err(keyring_core::Error::NoEntry) => Ok(None),
                    Err(e) => Err(store_error("read a secret", e)),
                }
            }
            Backend::File { path } => Ok(with_file(path, false, |map| Ok(map.get(key).cloned()))?),
        }
    }

    fn set(&self, key: &str, value: &str) -> Result<()> {
        match self {
            Backend::Keyring { store, .. } => store
                .build(SERVICE, key, None)
                .and_then(|e| e.set_password(value))
                .map_err(|e| store_error("store a secret", e)),
            Backend::File { path } => with_file(path, true, |map| {
                map.insert(key.to_string(), value.to_string());
                Ok(())
            }),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self {
            Backend::Keyring { store, .. } => {
                let entry = store
                    .build(SERVICE, key, None)
                    .map_err(|e| store_error("delete a secret", e))?;
                match entry.delete_credential() {
                    Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                    Err(e) => Err(store_error("delete a secret", e)),
                }
            }
            Backend::File { path } => with_file(path, true, |map| {
                map.remove(key);
                Ok(())
            }),
        }
    }
}

/// Reads (and with `write`, rewrites atomically) the secrets file under an
/// exclusive lock, so a CLI and the app never lose each other's changes.
fn with_file<T>(
    path: &Path,
    write: bool,
    f: impl FnOnce(&mut BTreeMap<String, String>) -> Result<T>,
) -> Result<T> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;

    let lock_path = path.with_extension("lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    options.mode(0o600);
    let lock = options
        .open(&lock_path)
        .map_err(|e| store_error("open the secrets file", e))?;
    #[cfg(unix)]
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| store_error("lock the secrets file", e))?;

    let mut map: BTreeMap<String, String> = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            store_error("read the secrets file", e).hint(format!(
                "{} is damaged; move it away to start over (its secrets are lost).",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(store_error("read the secrets file", e)),
    };
    let out = f(&mut map)?;
    if write {
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(true).write(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options
            .open(&tmp)
            .map_err(|e| store_error("write the secrets file", e))?;
        let body = serde_json::to_vec_pretty(&map)
            .map_err(|e| store_error("write the secrets file", e))?;
        file.write_all(&body)
            .and_then(|()| file.sync_all())
            .map_err(|e| store_error("write the secrets file", e))?;
        std::fs::rename(&tmp, path).map_err(|e| store_error("write the secrets file", e))?;
    }
    drop(lock);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets {
            backend: Arc::new(Backend::File {
                path: dir.path().join("secrets.json"),
            }),
        };
        assert_eq!(s.get("a").await.unwrap(), None);
        s.set("a", "one").await.unwrap();
        s.set("b", "two").await.unwrap();
        assert_eq!(s.get("a").await.unwrap().as_deref(), Some("one"));
        s.delete("a").await.unwrap();
        assert_eq!(s.get("a").await.unwrap(), None);
        assert_eq!(s.get("b").await.unwrap().as_deref(), Some("two"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
