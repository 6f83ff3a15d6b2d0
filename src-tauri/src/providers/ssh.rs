//! SSH: any Linux x86_64 server the person can log in to with a key. The desktop
//! connects with russh, checks the host key (trust on first use: the person
//! confirms the fingerprint, or passes it with `--accept-host-key`; a key that
//! changes later is refused with both fingerprints), and bootstraps `sam-agent`
//! there (`bootstrap.rs`): TLS pair made on the server, fingerprint pinned.
//!
//! Recorded in `providerIds`: `user`, `host`, `port`, `hostKey` (the SSH host key
//! fingerprint), `identity` (the *path* of the key file — the key stays in the
//! person's file), `agentPort`, `installDir`, `service` (`systemd` | `process`),
//! `unit` (systemd) or `pid` (process).

use std::path::{Path, PathBuf};

use sam_protocol::NodeInfo;
use serde_json::json;

use super::bootstrap::{self, DEFAULT_AGENT_PORT, HostKey, Install, Remote, SshTarget};
use super::{AgentFile, NodeProvider};
use crate::api::{Progress, Sam};
use crate::error::{Error, Result, code};
use crate::nodes::{Health, NodeRecord, NodeStatus, Provider};

/// Asks the person whether to trust a host key seen for the first time
/// (`host:port`, fingerprint) → yes or no. Absent: nobody to ask, so refuse.
pub type ConfirmHostKey = dyn Fn(&str, &str) -> bool + Send + Sync;

/// What `sam node add ssh` was given.
#[derive(Debug, Clone)]
pub struct AddSsh {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The key file; default `~/.ssh/id_ed25519`, else `~/.ssh/id_rsa`.
    pub identity: Option<PathBuf>,
    /// The host key fingerprint the person expects (`SHA256:…`).
    pub accept_host_key: Option<String>,
    /// The agent's port on the server; default 7420.
    pub agent_port: Option<u16>,
}

/// `~/…` as the person means it, as ssh reads `-i ~/…` (the app's field is
/// not expanded by a shell).
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// Splits `USER@HOST` (`HOST` alone: the local user name, as `ssh` does).
pub fn parse_destination(dest: &str) -> Result<(String, String)> {
    let (user, host) = match dest.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h.to_string()),
        None => (
            std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_default(),
            dest.to_string(),
        ),
    };
    let host = host.trim().to_string();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let host_ok = !bare.is_empty()
        && (bare.parse::<std::net::IpAddr>().is_ok()
            || bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
    if user.is_empty() || user.contains(char::is_whitespace) || !host_ok {
        return Err(Error::invalid(format!(
            "{dest:?} is not an SSH destination: use USER@HOST."
        ))
        .hint("For example `sam node add ssh root@203.0.113.7`."));
    }
    Ok((user, bare.to_string()))
}

/// A node name from a host (`203.0.113.7`, `box.example.com`; other characters become `-`).
pub fn default_name(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let name = name.trim_start_matches('-').to_string();
    if name.is_empty() { "ssh".into() } else { name }
}

fn normalize_fingerprint(fp: &str) -> Result<String> {
    let fp = fp.trim();
    let body = fp.strip_prefix("SHA256:").unwrap_or("");
    if body.len() != 43
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    {
        return Err(Error::invalid(format!(
            "--accept-host-key {fp:?} is not a SHA256 fingerprint."
        ))
        .hint("Pass it as `ssh-keygen -lf` prints it: SHA256: and 43 characters."));
    }
    Ok(fp.to_string())
}

/// The SSH provider. `Ssh::adding(..)` creates; `Ssh::existing()` acts on a
/// recorded node.
pub struct Ssh {
    add: Option<AddSsh>,
    confirm: Option<Box<ConfirmHostKey>>,
}

impl Ssh {
    pub fn adding(spec: AddSsh, confirm: Option<Box<ConfirmHostKey>>) -> Ssh {
        Ssh {
            add: Some(spec),
            confirm,
        }
    }

    pub fn existing() -> Ssh {
        Ssh {
            add: None,
            confirm: None,
        }
    }
}

/// The SSH side of a recorded node.
struct Recorded {
    target: SshTarget,
    host_key: String,
    install: Install,
}

fn recorded(node: &NodeRecord) -> Result<Recorded> {
    let ids = &node.provider_ids;
    let text = |k: &str| ids.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let missing = || {
        Error::internal(format!(
            "The node {} has no SSH details recorded.",
            node.name
        ))
    };
    let target = SshTarget {
        user: text("user").ok_or_else(missing)?,
        host: text("host").ok_or_else(missing)?,
        port: ids
            .get("port")
            .and_then(|v| v.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(22),
        identity: text("identity").ok_or_else(missing)?.into(),
    };
    Ok(Recorded {
        target,
        host_key: text("hostKey").ok_or_else(missing)?,
        install: Install::from_ids(&node.id, ids)?,
    })
}

/// Connects to a recorded node with its pinned host key; errors name the node.
async fn connect(node: &NodeRecord, r: &Recorded) -> Result<Remote> {
    Remote::connect(&r.target, HostKey::Pinned(&r.host_key))
        .await
        .map_err(|e| {
            if e.is(code::HOST_KEY_CHANGED) {
                let hint = e.hint.clone().unwrap_or_default().replace(
                    "remove the node and add it again",
                    &format!(
                        "remove the node (`sam node rm {} --forget`; its agent and files stay in {} on the server, for you to remove) and add it again",
                        node.name, r.install.dir
                    ),
                );
                Error {
                    hint: Some(hint),
                    ..e
                }
            } else if e.is(code::UNREACHABLE) {
                e.hint(format!(
                    "Check that the server is up and reachable. If it is gone for good, `sam node rm {} --forget` makes SAM forget the node.",
                    node.name
                ))
            } else {
                e
            }
        })
}

/// Checks a recorded node's SSH side (host key, login) before work that would be
/// left half-done if SSH failed afterwards (stop, remove).
pub async fn preflight(node: &NodeRecord) -> Result<()> {
    let r = recorded(node)?;
    connect(node, &r).await?.close().await;
    Ok(())
}

/// The host key a server presents, for a person to confirm.
pub async fn scan_host_key(host: &str, port: u16) -> Result<String> {
    bootstrap::scan_host_key(host, port).await
}

fn new_node_id() -> String {
    let bytes: [u8; 4] = rand::random();
    format!(
        "ssh-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl NodeProvider for Ssh {
    async fn create(&self, sam: &Sam, name: &str, progress: &dyn Progress) -> Result<NodeRecord> {
        let spec = self.add.as_ref().ok_or_else(|| {
            Error::internal("The SSH provider was asked to create without a destination.")
        })?;
        let identity = match &spec.identity {
            Some(p) => {
                let p = expand_home(p);
                std::path::absolute(&p).unwrap_or(p)
            }
            None => bootstrap::default_identity()?,
        };
        let target = SshTarget {
            user: spec.user.clone(),
            host: spec.host.clone(),
            port: spec.port,
            identity,
        };
        let agent_port = spec.agent_port.unwrap_or(DEFAULT_AGENT_PORT);
        let where_ = format!("{}:{}", bootstrap::host_for_url(&target.host), target.port);

        // Trust on first use: the key the person named, or the one they confirm.
        let accepted = match &spec.accept_host_key {
            Some(fp) => normalize_fingerprint(fp)?,
            None => {
                progress.step(&format!("Asking {where_} for its SSH host key."));
                let seen = bootstrap::scan_host_key(&target.host, target.port).await?;
                match &self.confirm {
                    Some(ask) if ask(&where_, &seen) => seen,
                    Some(_) => {
                        return Err(Error::new(code::CANCELLED, "Nothing was changed."));
                    }
                    None => {
                        return Err(bootstrap::unknown_host_key(
                            &target.host,
                            target.port,
                            &seen,
                        ));
                    }
                }
            }
        };
        progress.step(&format!("Connecting to {} as {}.", where_, target.user));
        let remote = Remote::connect(&target, HostKey::Accept(&accepted)).await?;
        let result = async {
            let facts = remote.facts().await?;
            facts.check_supported(&target)?;
            if !facts.docker {
                progress.step(&format!(
                    "Warning: Docker is not reachable for {} on the server; workspaces cannot start until it is (install Docker, or add the user to the docker group).",
                    target.user
                ));
            }
            let address = bootstrap::agent_address(&target.host, agent_port);
            if bootstrap::port_answers(&target.host, agent_port).await {
                return Err(Error::new(
                    code::CONFLICT,
                    format!("Port {agent_port} on {} is in use already (another sam-agent, or another program).", target.host),
                )
                .hint("Pick another port for this node's agent with --agent-port (or SAM_SSH_AGENT_PORT)."));
            }
            let id = new_node_id();
            let install = Install::plan(&id, &facts, agent_port)?;
            let done = bootstrap::bootstrap(sam, &remote, &install, &address, progress).await?;
            progress.step(&format!(
                "The agent answers; its certificate {} is pinned.",
                done.fingerprint
            ));
            let mut ids = json!({
                "user": target.user,
                "host": target.host,
                "port": target.port,
                "hostKey": accepted,
                "identity": target.identity.display().to_string(),
            });
            if let (Some(obj), Some(more)) = (ids.as_object_mut(), install.ids().as_object()) {
                obj.extend(more.clone());
            }
            if let Some(pid) = done.pid {
                ids["pid"] = json!(pid);
            }
            Ok(NodeRecord {
                id,
                name: name.to_string(),
                provider: Provider::Ssh,
                address,
                cert_fingerprint: Some(done.fingerprint),
                provider_ids: ids,
                status: NodeStatus::Running,
                health: Some(Health::Healthy),
                last_seen_at: Some(crate::now()),
                agent_version: Some(done.info.version.clone()),
                agent_build: done.info.build.clone(),
                last_event_id: None,
                created_at: crate::now(),
            })
        }
        .await;
        remote.close().await;
        result
    }

    async fn stop(&self, _sam: &Sam, node: &mut NodeRecord, progress: &dyn Progress) -> Result<()> {
        let r = recorded(node)?;
        let remote = connect(node, &r).await?;
        progress.step("Stopping sam-agent on the server.");
        let result = r.install.stop(&remote).await;
        remote.close().await;
        if result.is_ok()
            && let Some(ids) = node.provider_ids.as_object_mut()
        {
            ids.remove("pid");
        }
        result
    }

    async fn start(&self, sam: &Sam, node: &mut NodeRecord, progress: &dyn Progress) -> Result<()> {
        let r = recorded(node)?;
        let fingerprint = node.cert_fingerprint.clone().ok_or_else(|| {
            Error::internal(format!("The node {} has no pinned certificate.", node.name))
        })?;
        let remote = connect(node, &r).await?;
        let result =
            bootstrap::start_agent(sam, &remote, &r.install, node, &fingerprint, progress).await;
        remote.close().await;
        result.map_err(|e| {
            if e.is(code::CERTIFICATE_CHANGED) {
                Error {
                    hint: Some(format!(
                        "The agent on the server now has another TLS certificate; SAM stopped it again. If that was done on purpose, remove the node (`sam node rm {}`) and add it again.",
                        node.name
                    )),
                    ..e
                }
            } else {
                e
            }
        })
    }

    async fn upgrade(
        &self,
        sam: &Sam,
        node: &mut NodeRecord,
        agent: &AgentFile,
        progress: &dyn Progress,
    ) -> Result<NodeInfo> {
        let r = recorded(node)?;
        let fingerprint = node.cert_fingerprint.clone().ok_or_else(|| {
            Error::internal(format!("The node {} has no pinned certificate.", node.name))
        })?;
        progress.step(&format!("Connecting to {} over SSH.", r.target.label()));
        let remote = connect(node, &r).await?;
        let result = bootstrap::upgrade(
            sam,
            &remote,
            &r.install,
            &node.address,
            &fingerprint,
            agent,
            progress,
        )
        .await;
        remote.close().await;
        let done = result?;
        if let Some(pid) = done.pid {
            node.provider_ids["pid"] = json!(pid);
        }
        Ok(done.info)
    }

    async fn delete(&self, _sam: &Sam, node: &NodeRecord, progress: &dyn Progress) -> Result<()> {
        let r = recorded(node)?;
        let remote = connect(node, &r).await?;
        progress.step(&format!(
            "Removing sam-agent and {} from the server.",
            r.install.dir
        ));
        let result = r.install.remove(&remote).await;
        remote.close().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(
            parse_destination("root@10.0.0.1").unwrap(),
            ("root".into(), "10.0.0.1".into())
        );
        assert_eq!(
            parse_destination("me@[::1]").unwrap(),
            ("me".into(), "::1".into())
        );
        assert_eq!(
            parse_destination("a@b@box.example").unwrap(),
            ("a@b".into(), "box.example".into())
        );
        assert!(parse_destination("root@").is_err());
        assert!(parse_destination("root@bad host").is_err());
    }

    #[test]
    fn names_and_fingerprints() {
        assert_eq!(default_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(default_name("::1"), "1");
        assert_eq!(default_name("box.example.com"), "box.example.com");
        let fp = "SHA256:pGmYE4BAHKFG57LOYXl5U6nR6zfE1k+L/bC0LzNba8A";
        assert_eq!(normalize_fingerprint(&format!(" {fp} ")).unwrap(), fp);
        assert!(normalize_fingerprint("pGmYE4BAHKFG57LOYXl5U6nR6zfE1k+L/bC0LzNba8A").is_err());
        assert!(normalize_fingerprint("SHA256:short").is_err());
    }
}
