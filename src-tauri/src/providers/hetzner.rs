//! Hetzner Cloud: a server SAM makes with the person's API token, then
//! bootstraps over SSH as it does any server (`bootstrap.rs`).
//!
//! `create`, step by step — every step after the first write is undone on a
//! failure, so no server is left billing:
//! 1. Checks, before anything is made: the server type (x86 only: Arm `cax…` types
//!    are refused, there is no agent for them yet), the location, the image, and
//!    that no server in the project has the name.
//! 2. A `provisioning` node record, so a crash part-way leaves something `sam node
//!    rm` can clean up (it deletes what the record names and whatever carries the
//!    node's label `sam-node=<node-id>`). The record holds ids, never a key.
//! 3. The node's own SSH key pair (ed25519, made here): the private key goes to the
//!    secret store as `ssh-key:<node-id>`, the public key to Hetzner as an SSH key
//!    resource `sam-<node-id>`.
//! 4. A firewall `sam-<node-id>`: inbound TCP 22 (SSH) and the agent's port, nothing
//!    else (outbound is open).
//! 5. The server (named as the node, labelled, with the key and the firewall) and
//!    cloud-init user data (`cloud_init.rs`) that installs Docker and carries a
//!    **one-time SSH host key** made here, whose fingerprint SAM pins. Waits for the
//!    create action and for `running`.
//! 6. SSH to root@IPv4:22 — verified against the one-time key, so the very first
//!    connection is not trust-on-first-use. Waits for cloud-init (Docker), checks
//!    the server (Linux x86_64, Docker up).
//! 7. Over that verified channel the server makes **fresh host keys** itself
//!    (`ssh-keygen`, then sshd reloads) and prints the new fingerprint; SAM
//!    reconnects pinning it and forgets the one-time key (it lived in memory and in
//!    the user data only, never in SQLite or the secret store). The user data
//!    Hetzner keeps therefore holds no key the server still uses.
//! 8. `bootstrap::bootstrap`: the agent uploaded, its TLS key made on the server
//!    (`sam-agent tls-init`), started, `/health` answered with the pinned
//!    certificate.
//!
//! `stop` (after the agent stopped every workspace): an ACPI shutdown, and a
//! power-off if the server is not off within a minute — a powered-off server is
//! still billed ([`STILL_BILLED`]). `start`: power on, SSH with the pinned host key,
//! start the agent if it does not answer, wait for `/health`. `delete`: the server,
//! the firewall, the SSH key (recorded ids and anything labelled for the node), then
//! the `ssh-key:<node-id>` secret.
//!
//! Recorded in `providerIds`: `serverId`, `serverName`, `sshKeyId`, `sshKeyName`,
//! `firewallId`, `firewallName`, `serverType`, `location`, `image`, `ipv4`, `ipv6`,
//! `user` (root), `host`, `port` (22), `hostKey` (the rotated host key's
//! fingerprint), and the install's `installDir`, `agentPort`, `service`, `unit` /
//! `pid`.

pub mod api;
pub mod cloud_init;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hcloud::models;
use russh::keys::{HashAlg, PrivateKey};
use sam_protocol::NodeInfo;
use serde::Serialize;
use serde_json::json;

use self::api::{Cloud, Failure, TokenSource};
use super::bootstrap::{
    self, DEFAULT_AGENT_PORT, HostKey, Install, Remote, SshTarget, UNSUPPORTED_SERVER,
};
use super::{AgentFile, NodeProvider};
use crate::api::settings::HETZNER_TOKEN;
use crate::api::{Progress, Sam};
use crate::error::{Error, Result, code};
use crate::nodes::{Health, NodeRecord, NodeStatus, Provider};

pub const DEFAULT_SERVER_TYPE: &str = "cx22";
pub const DEFAULT_LOCATION: &str = "fsn1";
pub const DEFAULT_IMAGE: &str = "debian-12";
/// No token in `HCLOUD_TOKEN` or the secret store.
pub const NO_TOKEN: &str = "hetzner_token_missing";
/// What `sam node stop` (and the app) say after a Hetzner node is stopped.
pub const STILL_BILLED: &str = "A powered-off Hetzner Cloud server is still billed (its disk and IPv4 address are kept); `sam node rm` deletes it.";

/// The label every resource made for a node carries (`sam-node=<node-id>`).
pub const NODE_LABEL: &str = "sam-node";
/// How long a new or powered-on server has to answer on SSH.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long cloud-init has to install Docker.
const CLOUD_INIT_TIMEOUT: Duration = Duration::from_secs(900);
/// How long a Hetzner action (create, power, delete) may take.
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an ACPI shutdown has before the power is cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// The secret-store key of a node's SSH private key.
pub fn ssh_key_secret(node_id: &str) -> String {
    format!("ssh-key:{node_id}")
}

/// What `sam node add hetzner` was given.
#[derive(Debug, Clone)]
pub struct AddHetzner {
    pub server_type: String,
    pub location: String,
    pub image: String,
    /// The agent's port on the server; default 7420.
    pub agent_port: Option<u16>,
}

impl Default for AddHetzner {
    fn default() -> Self {
        AddHetzner {
            server_type: DEFAULT_SERVER_TYPE.into(),
            location: DEFAULT_LOCATION.into(),
            image: DEFAULT_IMAGE.into(),
            agent_port: None,
        }
    }
}

/// `SAM_HCLOUD_ENDPOINT`, else the `hcloud-endpoint` setting, else the real API.
pub async fn endpoint(sam: &Sam) -> String {
    if let Some(e) = std::env::var("SAM_HCLOUD_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
    {
        return e.trim().to_string();
    }
    match sam.store().setting("hcloud-endpoint").await {
        Ok(Some(e)) if !e.trim().is_empty() => e.trim().to_string(),
        _ => api::DEFAULT_ENDPOINT.to_string(),
    }
}

/// The API with the person's token: `HCLOUD_TOKEN` beats the stored one.
pub async fn cloud(sam: &Sam) -> Result<Cloud> {
    let endpoint = endpoint(sam).await;
    if let Some(t) = std::env::var("HCLOUD_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        return Cloud::new(&endpoint, t, TokenSource::Env);
    }
    match sam.secrets().get(HETZNER_TOKEN).await? {
        Some(t) if !t.trim().is_empty() => {
            Cloud::new(&endpoint, t.trim().to_string(), TokenSource::Stored)
        }
        _ => Err(Error::new(NO_TOKEN, "No Hetzner Cloud API token is set.").hint(
            "Create a Read & Write API token in the Hetzner Cloud Console (your project → Security → API tokens), then store it with `sam settings hetzner-token` (it reads the token from stdin) or set HCLOUD_TOKEN.",
        )),
    }
}

/// A server name Hetzner takes: a hostname (RFC 1123), letters, digits, `-`,
/// dots between labels.
fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn arm_refused(server_type: &str) -> Error {
    Error::new(
        UNSUPPORTED_SERVER,
        format!(
            "The server type {server_type} is an Arm64 (Ampere) machine; this SAM has an agent for x86_64 only."
        ),
    )
    .hint("No agent for arm64 is available yet: pick an x86 type such as cx22, cpx21 or ccx13 (`sam node hetzner-options` lists them).")
}

/// The checks that need no network: the name as a server name, the server type's
/// family (Arm `cax…` is refused), plain values.
pub fn check_request(name: &str, spec: &AddHetzner) -> Result<()> {
    if !valid_server_name(name) {
        return Err(Error::invalid(format!(
            "{name:?} cannot name a Hetzner Cloud server: use letters, digits and '-' (not first or last), with dots between parts."
        ))
        .hint("Pick another --name, e.g. `dev-1`."));
    }
    if spec.server_type.to_ascii_lowercase().starts_with("cax") {
        return Err(arm_refused(&spec.server_type));
    }
    for (what, v) in [
        ("--server-type", &spec.server_type),
        ("--location", &spec.location),
        ("--image", &spec.image),
    ] {
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(
                Error::invalid(format!("{what} {v:?} is not a Hetzner name.")).hint(
                    "`sam node hetzner-options` lists the server types, locations and images.",
                ),
            );
        }
    }
    Ok(())
}

fn labels(node_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (NODE_LABEL.to_string(), node_id.to_string()),
        ("managed-by".to_string(), "sam".to_string()),
    ])
}

fn new_node_id() -> String {
    let bytes: [u8; 4] = rand::random();
    format!(
        "hz-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A fresh ed25519 key pair (OS randomness).
fn new_ed25519(comment: &str) -> PrivateKey {
    let seed: [u8; 32] = rand::random();
    let mut key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &seed,
    ));
    key.set_comment(comment);
    key
}

fn openssh_private(key: &PrivateKey) -> Result<String> {
    key.to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map(|z| z.to_string())
        .map_err(|e| Error::internal(format!("Cannot encode an SSH key: {e}")))
}

fn openssh_public(key: &PrivateKey) -> Result<String> {
    key.public_key()
        .to_openssh()
        .map_err(|e| Error::internal(format!("Cannot encode an SSH key: {e}")))
}

/// The firewall: SSH and the agent's port in, from anywhere (the desktop's
/// address is not known and may change); nothing else in.
fn firewall_rules(agent_port: u16) -> Vec<models::Rule> {
    [(22, "SSH (SAM)"), (agent_port, "sam-agent")]
        .into_iter()
        .map(|(port, what)| models::Rule {
            description: Some(Some(what.to_string())),
            destination_ips: None,
            direction: models::rule::Direction::In,
            port: Some(Some(port.to_string())),
            protocol: models::rule::Protocol::Tcp,
            source_ips: Some(vec!["0.0.0.0/0".into(), "::/0".into()]),
        })
        .collect()
}

/// Waits until a Hetzner action has finished; its error becomes ours.
async fn wait_action(cloud: &Cloud, action: &models::Action, what: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + ACTION_TIMEOUT;
    let mut action = action.clone();
    let mut pause = Duration::from_millis(250);
    loop {
        match action.status {
            models::action::Status::Success => return Ok(()),
            models::action::Status::Error => {
                let (c, m) = action
                    .error
                    .as_ref()
                    .map(|e| (e.code.clone(), e.message.clone()))
                    .unwrap_or_else(|| ("unknown".into(), "no reason given".into()));
                return Err(Error::new(
                    code::PROVIDER,
                    format!(
                        "Hetzner Cloud could not {what}: {} ({c}).",
                        m.trim_end_matches('.')
                    ),
                )
                .hint("Try again later, or with another --location or --server-type."));
            }
            models::action::Status::Running => {}
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::new(
                code::PROVIDER,
                format!(
                    "Hetzner Cloud did not finish ({what}) within {} minutes.",
                    ACTION_TIMEOUT.as_secs() / 60
                ),
            )
            .hint("Look at the server in the Hetzner Cloud Console, then try again."));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(2));
        let resp: models::GetActionResponse = cloud
            .get(&format!("/actions/{}", action.id), &[])
            .await
            .map_err(|f| cloud.error(&format!("follow the action ({what})"), f))?;
        action = *resp.action;
    }
}

async fn get_server(cloud: &Cloud, id: i64) -> std::result::Result<models::Server, Failure> {
    let resp: models::GetServerResponse = cloud.get(&format!("/servers/{id}"), &[]).await?;
    resp.server.map(|s| *s).ok_or_else(|| Failure::Api {
        status: 404,
        code: "not_found".into(),
        message: format!("server {id} not found"),
    })
}

/// Waits until the server has `status`.
async fn wait_server(
    cloud: &Cloud,
    id: i64,
    status: models::server::Status,
    within: Duration,
) -> Result<models::Server> {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(250);
    loop {
        let server = get_server(cloud, id)
            .await
            .map_err(|f| cloud.error("look at the server", f))?;
        if server.status == status {
            return Ok(server);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::new(
                code::PROVIDER,
                format!(
                    "The server {} is {:?}, not {:?}, after {} s.",
                    server.name,
                    server.status,
                    status,
                    within.as_secs()
                ),
            )
            .hint("Look at the server in the Hetzner Cloud Console, then try again."));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(2));
    }
}

fn ipv4(server: &models::Server) -> Result<String> {
    server
        .public_net
        .ipv4
        .as_ref()
        .map(|ip| ip.ip.clone())
        .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .ok_or_else(|| {
            Error::new(
                code::PROVIDER,
                format!("The server {} has no public IPv4 address.", server.name),
            )
        })
}

/// Whether another host key than the expected one is worth waiting out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OtherKey {
    /// Refuse at once: the key is known for sure (a first boot: cloud-init writes
    /// it before sshd starts; a recorded node).
    Refuse,
    /// Right after the host keys were replaced, sshd may not have reloaded yet:
    /// the old (just verified) key may still show for a moment. Never accepted.
    Wait,
}

/// Connects as soon as the server's sshd answers (it boots), checking the host
/// key against `expected`.
async fn connect_when_up(
    target: &SshTarget,
    key: &PrivateKey,
    expected: &str,
    within: Duration,
    other_key: OtherKey,
) -> Result<Remote> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let e = match Remote::connect_with_key(target, key.clone(), HostKey::Pinned(expected)).await
        {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let waiting = e.is(code::UNREACHABLE)
            || (other_key == OtherKey::Wait && e.is(code::HOST_KEY_CHANGED));
        if !waiting || tokio::time::Instant::now() > deadline {
            return Err(e);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Waits until cloud-init is done on the server (where it ran at boot).
async fn wait_cloud_init(remote: &Remote, progress: &dyn Progress) -> Result<()> {
    let deadline = tokio::time::Instant::now() + CLOUD_INIT_TIMEOUT;
    let mut said = false;
    loop {
        let out = remote
            .run(
                "asking cloud-init how far it is",
                "if [ -d /run/cloud-init ] && command -v cloud-init >/dev/null 2>&1; then \
                   cloud-init status 2>/dev/null | sed -n 's/^status: *//p' | head -n 1; \
                 else echo absent; fi",
            )
            .await?;
        match out.trim() {
            "done" | "absent" | "disabled" => return Ok(()),
            s @ ("error" | "degraded done" | "degraded") => {
                progress.step(&format!(
                    "Warning: cloud-init ended with status {s:?} (/var/log/cloud-init-output.log on the server tells why); checking Docker anyway."
                ));
                return Ok(());
            }
            _ => {}
        }
        if !said {
            progress.step("Waiting for cloud-init on the server to install Docker.");
            said = true;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::new(
                code::PROVIDER,
                format!(
                    "cloud-init on {} did not finish within {} minutes.",
                    remote.target.label(),
                    CLOUD_INIT_TIMEOUT.as_secs() / 60
                ),
            )
            .hint("Hetzner's package mirrors may be slow right now: try again later."));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Makes the server replace its SSH host keys (every type it has, ed25519
/// always) and reload sshd; answers the new ed25519 fingerprint. Runs on a
/// connection verified against the previous key, so the answer can be trusted.
const ROTATE_HOST_KEYS: &str = r#"set -e
umask 077
cd /etc/ssh
types=
for f in ssh_host_*_key; do
  [ -f "$f" ] || continue
  t=${f#ssh_host_}; t=${t%_key}
  rm -f "$f" "$f.pub"
  case "$t" in ed25519|ecdsa|rsa) types="$types $t" ;; esac
done
case " $types " in *" ed25519 "*) ;; *) types="$types ed25519" ;; esac
for t in $types; do
  if [ "$t" = rsa ]; then bits="-b 3072"; else bits=; fi
  ssh-keygen -q -t "$t" $bits -N '' -f "ssh_host_${t}_key" </dev/null
done
ssh-keygen -l -E sha256 -f ssh_host_ed25519_key.pub
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service
else
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  pidfile=$("$sshd" -T 2>/dev/null | awk '$1 == "pidfile" { print $2 }')
  kill -HUP "$(cat "${pidfile:-/run/sshd.pid}")"
fi
"#;

async fn rotate_host_keys(remote: &Remote) -> Result<String> {
    let out = remote
        .run("making new SSH host keys", ROTATE_HOST_KEYS)
        .await?;
    out.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(str::to_string)
        .ok_or_else(|| {
            Error::new(
                code::PROVIDER,
                format!(
                    "ssh-keygen on {} printed no fingerprint.",
                    remote.target.label()
                ),
            )
        })
}

fn server_id(node: &NodeRecord) -> Result<i64> {
    node.provider_ids
        .get("serverId")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| {
            Error::internal(format!(
                "The node {} has no Hetzner server recorded.",
                node.name
            ))
        })
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
    Ok(Recorded {
        target: SshTarget {
            user: text("user").unwrap_or_else(|| "root".into()),
            host: text("host").ok_or_else(missing)?,
            port: ids
                .get("port")
                .and_then(|v| v.as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(22),
            identity: PathBuf::new(),
        },
        host_key: text("hostKey").ok_or_else(missing)?,
        install: Install::from_ids(&node.id, ids)?,
    })
}

/// The node's SSH private key from the secret store.
async fn node_key(sam: &Sam, node: &NodeRecord) -> Result<PrivateKey> {
    let text = sam
        .secrets()
        .get(&ssh_key_secret(&node.id))
        .await?
        .ok_or_else(|| {
            Error::new(
                code::SECRET_STORE,
                format!(
                    "The SSH key of node {} is not in the secret store ({}).",
                    node.name,
                    sam.secrets().describe()
                ),
            )
            .hint(format!(
                "Without it SAM cannot log in to the server. `sam node rm {}` deletes the server; add a new node afterwards.",
                node.name
            ))
        })?;
    russh::keys::decode_secret_key(&text, None).map_err(|e| {
        Error::internal(format!(
            "The stored SSH key of {} is damaged: {e}",
            node.name
        ))
    })
}

/// Adds the node's name to SSH errors on a recorded node.
fn ssh_error(node: &NodeRecord, e: Error) -> Error {
    if e.is(code::HOST_KEY_CHANGED) {
        Error {
            hint: Some(format!(
                "SAM recorded the host key the server made for itself when it was added. If the server was rebuilt on purpose, `sam node rm {}` deletes it and a new node can be added; otherwise someone may be intercepting the connection.",
                node.name
            )),
            ..e
        }
    } else if e.is(code::UNREACHABLE) {
        e.hint(format!(
            "The server is on, but SSH does not answer: look at it in the Hetzner Cloud Console (its console shows the boot). `sam node rm {}` deletes it.",
            node.name
        ))
    } else {
        e
    }
}

/// Something SAM made for a node, to be deleted.
fn collect(into: &mut Vec<i64>, recorded: Option<i64>, found: impl IntoIterator<Item = i64>) {
    for id in recorded.into_iter().chain(found) {
        if !into.contains(&id) {
            into.push(id);
        }
    }
}

/// Deletes the node's server, firewall and SSH key in Hetzner Cloud: the ids in
/// `ids` and anything labelled `sam-node=<node-id>`. Gone already is fine.
async fn delete_resources(
    cloud: &Cloud,
    node_id: &str,
    ids: &serde_json::Value,
    progress: &dyn Progress,
) -> Result<()> {
    let selector = vec![("label_selector", format!("{NODE_LABEL}={node_id}"))];
    let id_of = |k: &str| ids.get(k).and_then(|v| v.as_i64());
    let gone = |f: &Failure| f.api_code() == Some("not_found");

    let mut servers = Vec::new();
    let found = cloud
        .list::<models::ListServersResponse>("/servers", &selector)
        .await
        .map_err(|f| cloud.error("list the node's servers", f))?;
    collect(&mut servers, id_of("serverId"), found.iter().map(|s| s.id));
    for id in servers {
        progress.step(&format!("Deleting the server {id}."));
        // A server busy with an action (its creation, a power action) is locked
        // until that ends.
        let deadline = tokio::time::Instant::now() + ACTION_TIMEOUT;
        loop {
            match cloud.delete(&format!("/servers/{id}")).await {
                Ok(body) => {
                    if let Ok(resp) = serde_json::from_str::<models::DeleteServerResponse>(&body)
                        && let Some(action) = resp.action
                    {
                        wait_action(cloud, &action, "delete the server").await?;
                    }
                    break;
                }
                Err(f) if gone(&f) => break,
                Err(f)
                    if f.api_code() == Some("locked") && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(f) => return Err(cloud.error("delete the server", f)),
            }
        }
    }

    let mut firewalls = Vec::new();
    let found = cloud
        .list::<models::ListFirewallsResponse>("/firewalls", &selector)
        .await
        .map_err(|f| cloud.error("list the node's firewalls", f))?;
    collect(
        &mut firewalls,
        id_of("firewallId"),
        found.iter().map(|f| f.id),
    );
    for id in firewalls {
        progress.step(&format!("Deleting the firewall {id}."));
        // A firewall is released by its server's deletion a little later.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match cloud.delete(&format!("/firewalls/{id}")).await {
                Ok(_) => break,
                Err(f) if gone(&f) => break,
                Err(f)
                    if f.api_code() == Some("resource_in_use")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(f) => return Err(cloud.error("delete the firewall", f)),
            }
        }
    }

    let mut keys = Vec::new();
    let found = cloud
        .list::<models::ListSshKeysResponse>("/ssh_keys", &selector)
        .await
        .map_err(|f| cloud.error("list the node's SSH keys", f))?;
    collect(&mut keys, id_of("sshKeyId"), found.iter().map(|k| k.id));
    for id in keys {
        progress.step(&format!("Deleting the SSH key {id}."));
        match cloud.delete(&format!("/ssh_keys/{id}")).await {
            Ok(_) => {}
            Err(f) if gone(&f) => {}
            Err(f) => return Err(cloud.error("delete the SSH key", f)),
        }
    }
    Ok(())
}

/// Checks a recorded node's Hetzner side (the token works; the server, if one is
/// recorded, exists) before work that would be left half-done if the API failed
/// afterwards (stop, remove). Answers whether the server exists.
pub async fn preflight(sam: &Sam, node: &NodeRecord) -> Result<bool> {
    let cloud = cloud(sam).await?;
    match node.provider_ids.get("serverId").and_then(|v| v.as_i64()) {
        Some(id) => match get_server(&cloud, id).await {
            Ok(_) => Ok(true),
            Err(f) if f.api_code() == Some("not_found") => Ok(false),
            Err(f) => Err(cloud.error("look at the node's server", f)),
        },
        None => cloud
            .list::<models::ListServersResponse>(
                "/servers",
                &[("label_selector", format!("{NODE_LABEL}={}", node.id))],
            )
            .await
            .map(|s| !s.is_empty())
            .map_err(|f| cloud.error("list the node's servers", f)),
    }
}

/// The Hetzner provider. `Hetzner::adding(..)` creates; `Hetzner::existing()`
/// acts on a recorded node.
pub struct Hetzner {
    add: Option<AddHetzner>,
}

impl Hetzner {
    pub fn adding(spec: AddHetzner) -> Hetzner {
        Hetzner { add: Some(spec) }
    }

    pub fn existing() -> Hetzner {
        Hetzner { add: None }
    }
}

/// The two key pairs a new node gets.
struct Keys {
    /// The node's SSH key (its private half goes to the secret store).
    client: PrivateKey,
    /// The one-time host key (memory and user data only).
    host: PrivateKey,
}

/// Checks with the API that the server can be made as asked, before anything is.
async fn check_offer(cloud: &Cloud, name: &str, spec: &AddHetzner) -> Result<()> {
    let hint = "`sam node hetzner-options` lists the server types, locations and images.";
    let types = cloud
        .list::<models::ListServerTypesResponse>(
            "/server_types",
            &[("name", spec.server_type.clone())],
        )
        .await
        .map_err(|f| cloud.error("look up the server type", f))?;
    let st = types
        .into_iter()
        .find(|t| t.name == spec.server_type)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Hetzner Cloud has no server type {:?}.",
                spec.server_type
            ))
            .hint(hint)
        })?;
    if st.architecture != models::Architecture::X86 {
        return Err(arm_refused(&st.name));
    }
    let locations = cloud
        .list::<models::ListLocationsResponse>("/locations", &[("name", spec.location.clone())])
        .await
        .map_err(|f| cloud.error("look up the location", f))?;
    if !locations.iter().any(|l| l.name == spec.location) {
        return Err(Error::invalid(format!(
            "Hetzner Cloud has no location {:?}.",
            spec.location
        ))
        .hint(hint));
    }
    let offered = if st.locations.is_empty() {
        st.prices.iter().any(|p| p.location == spec.location)
    } else {
        st.locations.iter().any(|l| l.name == spec.location)
    };
    if !offered {
        return Err(Error::invalid(format!(
            "The server type {} is not offered in {}.",
            st.name, spec.location
        ))
        .hint(hint));
    }
    let images = cloud
        .list::<models::ListImagesResponse>(
            "/images",
            &[("name", spec.image.clone()), ("architecture", "x86".into())],
        )
        .await
        .map_err(|f| cloud.error("look up the image", f))?;
    if !images.iter().any(|i| {
        i.name.as_deref() == Some(spec.image.as_str())
            && i.status == models::image::Status::Available
            && i.architecture == models::Architecture::X86
    }) {
        return Err(
            Error::invalid(format!("Hetzner Cloud has no x86 image {:?}.", spec.image)).hint(hint),
        );
    }
    let taken = cloud
        .list::<models::ListServersResponse>("/servers", &[("name", name.to_string())])
        .await
        .map_err(|f| cloud.error("look for a server with that name", f))?;
    if taken.iter().any(|s| s.name == name) {
        return Err(Error::new(
            code::CONFLICT,
            format!("There is a server named {name:?} in your Hetzner Cloud project already."),
        )
        .hint("Pick another name with --name (Hetzner wants server names unique in a project)."));
    }
    Ok(())
}

impl Hetzner {
    /// Steps 3–8 of the module docs; `record` gains each id as it is made (and is
    /// stored, so a crash leaves them findable).
    async fn provision(
        &self,
        sam: &Sam,
        cloud: &Cloud,
        spec: &AddHetzner,
        record: &mut NodeRecord,
        keys: &Keys,
        progress: &dyn Progress,
    ) -> Result<()> {
        let id = record.id.clone();
        let agent_port = spec.agent_port.unwrap_or(DEFAULT_AGENT_PORT);
        let resource_name = format!("sam-{id}");

        sam.secrets()
            .set(&ssh_key_secret(&id), &openssh_private(&keys.client)?)
            .await?;
        progress.step(&format!("Creating the SSH key {resource_name}."));
        let resp: models::CreateSshKeyResponse = cloud
            .post(
                "/ssh_keys",
                &models::CreateSshKeyRequest {
                    labels: Some(labels(&id)),
                    name: resource_name.clone(),
                    public_key: openssh_public(&keys.client)?,
                },
            )
            .await
            .map_err(|f| cloud.error("create the SSH key", f))?;
        record.provider_ids["sshKeyId"] = json!(resp.ssh_key.id);
        record.provider_ids["sshKeyName"] = json!(resp.ssh_key.name);
        sam.store().update_node(record).await?;

        progress.step(&format!(
            "Creating the firewall {resource_name} (SSH and port {agent_port} only)."
        ));
        let resp: models::CreateFirewallResponse = cloud
            .post(
                "/firewalls",
                &models::CreateFirewallRequest {
                    apply_to: None,
                    labels: Some(labels(&id)),
                    name: resource_name.clone(),
                    rules: Some(firewall_rules(agent_port)),
                },
            )
            .await
            .map_err(|f| cloud.error("create the firewall", f))?;
        let firewall = resp.firewall.ok_or_else(|| {
            Error::new(
                code::PROVIDER,
                "Hetzner Cloud created a firewall but did not say which.",
            )
        })?;
        record.provider_ids["firewallId"] = json!(firewall.id);
        record.provider_ids["firewallName"] = json!(firewall.name);
        sam.store().update_node(record).await?;

        let one_time_fp = keys.host.fingerprint(HashAlg::Sha256).to_string();
        let user_data = {
            let private = openssh_private(&keys.host)?;
            let public = openssh_public(&keys.host)?;
            cloud_init::user_data(&cloud_init::OneTimeHostKey {
                private_openssh: &private,
                public_openssh: &public,
            })?
        };
        progress.step(&format!(
            "Creating the server {} ({}, {}, {}).",
            record.name, spec.server_type, spec.location, spec.image
        ));
        let mut request = models::CreateServerRequest::new(
            spec.image.clone(),
            record.name.clone(),
            spec.server_type.clone(),
        );
        request.location = Some(spec.location.clone());
        request.ssh_keys = Some(vec![resource_name.clone()]);
        request.firewalls = Some(vec![models::CreateServerRequestFirewalls {
            firewall: firewall.id,
        }]);
        request.labels = Some(labels(&id));
        request.start_after_create = Some(true);
        request.public_net = Some(Box::new(models::CreateServerRequestPublicNet {
            enable_ipv4: Some(true),
            enable_ipv6: Some(true),
            ipv4: None,
            ipv6: None,
        }));
        request.user_data = Some(user_data);
        let resp: models::CreateServerResponse = cloud
            .post("/servers", &request)
            .await
            .map_err(|f| cloud.error("create the server", f))?;
        drop(request);
        let server_id = resp.server.id;
        record.provider_ids["serverId"] = json!(server_id);
        record.provider_ids["serverName"] = json!(resp.server.name);
        sam.store().update_node(record).await?;

        progress.step("Waiting for Hetzner Cloud to start the server.");
        wait_action(cloud, &resp.action, "create the server").await?;
        for next in &resp.next_actions {
            wait_action(cloud, next, &format!("{} the server", next.command)).await?;
        }
        let server = wait_server(
            cloud,
            server_id,
            models::server::Status::Running,
            BOOT_TIMEOUT,
        )
        .await?;
        let ip = ipv4(&server)?;
        record.provider_ids["ipv4"] = json!(ip);
        record.provider_ids["ipv6"] = json!(server.public_net.ipv6.as_ref().map(|v| v.ip.clone()));
        record.provider_ids["host"] = json!(ip);
        sam.store().update_node(record).await?;

        let target = SshTarget {
            user: "root".into(),
            host: ip.clone(),
            port: 22,
            identity: PathBuf::new(),
        };
        progress.step(&format!(
            "Connecting to root@{ip}:22; its host key must be the one-time key {one_time_fp} from the user data."
        ));
        let first = connect_when_up(&target, &keys.client, &one_time_fp, BOOT_TIMEOUT, OtherKey::Refuse)
            .await
            .map_err(|e| {
                if e.is(code::HOST_KEY_CHANGED) {
                    Error::new(
                        code::HOST_KEY_CHANGED,
                        format!(
                            "The new server {ip} does not present the one-time SSH host key SAM gave it ({one_time_fp}): {}",
                            e.message
                        ),
                    )
                    .hint("SAM refused to log in. Try again; if it happens again, someone may be intercepting connections from this computer.")
                } else {
                    e
                }
            })?;
        let checked = async {
            wait_cloud_init(&first, progress).await?;
            let facts = first.facts().await?;
            facts.check_supported(&target)?;
            if !facts.docker {
                return Err(Error::new(
                    code::PROVIDER,
                    format!("Docker does not run on the new server {ip}, though cloud-init was to install it."),
                )
                .hint("Hetzner's package mirrors may have failed (the server's /var/log/cloud-init-output.log tells); try again."));
            }
            progress.step("Making fresh SSH host keys on the server.");
            let fp = rotate_host_keys(&first).await?;
            Ok((facts, fp))
        }
        .await;
        first.close().await;
        let (facts, host_fp) = checked?;
        if host_fp == one_time_fp {
            return Err(Error::new(
                code::PROVIDER,
                "The server kept its one-time SSH host key.",
            ));
        }
        progress.step(&format!(
            "The server's new host key is {host_fp}; reconnecting with it."
        ));
        let remote = connect_when_up(
            &target,
            &keys.client,
            &host_fp,
            Duration::from_secs(30),
            OtherKey::Wait,
        )
        .await?;
        record.provider_ids["hostKey"] = json!(host_fp);
        let result = async {
            let install = Install::plan(&id, &facts, agent_port)?;
            let address = bootstrap::agent_address(&ip, agent_port);
            let done = bootstrap::bootstrap(sam, &remote, &install, &address, progress).await?;
            progress.step(&format!(
                "The agent answers; its certificate {} is pinned.",
                done.fingerprint
            ));
            if let (Some(obj), Some(more)) = (
                record.provider_ids.as_object_mut(),
                install.ids().as_object(),
            ) {
                obj.extend(more.clone());
            }
            if let Some(pid) = done.pid {
                record.provider_ids["pid"] = json!(pid);
            }
            record.address = address;
            record.cert_fingerprint = Some(done.fingerprint);
            record.saw_agent(&done.info);
            Ok::<(), Error>(())
        }
        .await;
        remote.close().await;
        result?;
        record.status = NodeStatus::Running;
        record.health = Some(Health::Healthy);
        record.last_seen_at = Some(crate::now());
        Ok(())
    }
}

/// Deletes what a failed `create` made (cloud resources, the key secret, the
/// provisioning record); answers the error to report. If the undo fails too, the
/// record stays (status `error`) so `sam node rm` can finish it.
async fn undo(
    sam: &Sam,
    cloud: &Cloud,
    record: &mut NodeRecord,
    e: Error,
    progress: &dyn Progress,
) -> Error {
    progress.step("Undoing: deleting what was made in Hetzner Cloud.");
    let undone = async {
        delete_resources(cloud, &record.id, &record.provider_ids, progress).await?;
        sam.secrets().delete(&ssh_key_secret(&record.id)).await?;
        sam.store().delete_node(&record.id).await
    }
    .await;
    let hint = e.hint.clone().map(|h| format!("{h} ")).unwrap_or_default();
    match undone {
        Ok(()) => Error {
            hint: Some(format!(
                "{hint}Nothing was left behind: SAM deleted what it had made in your Hetzner project."
            )),
            ..e
        },
        Err(undo) => {
            tracing::warn!(error = %undo.message, "undoing a Hetzner node failed");
            record.status = NodeStatus::Error;
            let _ = sam.store().update_node(record).await;
            Error {
                hint: Some(format!(
                    "{hint}SAM could not delete everything it made ({}): `sam node rm {}` tries again; until then look for resources labelled {NODE_LABEL}={} in the Hetzner Cloud Console.",
                    undo.message.trim_end_matches('.'),
                    record.name,
                    record.id
                )),
                ..e
            }
        }
    }
}

impl NodeProvider for Hetzner {
    async fn create(&self, sam: &Sam, name: &str, progress: &dyn Progress) -> Result<NodeRecord> {
        let spec = self.add.as_ref().ok_or_else(|| {
            Error::internal("The Hetzner provider was asked to create without a request.")
        })?;
        check_request(name, spec)?;
        let cloud = cloud(sam).await?;
        progress.step(&format!(
            "Checking {} in {} with {} at Hetzner Cloud ({}).",
            spec.server_type,
            spec.location,
            spec.image,
            cloud.endpoint()
        ));
        check_offer(&cloud, name, spec).await?;

        let id = new_node_id();
        let agent_port = spec.agent_port.unwrap_or(DEFAULT_AGENT_PORT);
        let mut record = NodeRecord {
            id: id.clone(),
            name: name.to_string(),
            provider: Provider::Hetzner,
            address: String::new(),
            cert_fingerprint: None,
            provider_ids: json!({
                "serverType": spec.server_type,
                "location": spec.location,
                "image": spec.image,
                "user": "root",
                "port": 22,
                "agentPort": agent_port,
            }),
            status: NodeStatus::Provisioning,
            health: None,
            last_seen_at: None,
            agent_version: None,
            agent_build: None,
            last_event_id: None,
            created_at: crate::now(),
        };
        sam.store().insert_node(&record).await?;
        let keys = Keys {
            client: new_ed25519(&format!("sam-{id}")),
            host: new_ed25519("sam one-time host key"),
        };
        match self
            .provision(sam, &cloud, spec, &mut record, &keys, progress)
            .await
        {
            Ok(()) => Ok(record),
            Err(e) => Err(undo(sam, &cloud, &mut record, e, progress).await),
        }
        // `keys` (the one-time host key with it) is dropped here: it was never
        // written anywhere but the user data.
    }

    async fn stop(&self, sam: &Sam, node: &mut NodeRecord, progress: &dyn Progress) -> Result<()> {
        let cloud = cloud(sam).await?;
        let id = server_id(node)?;
        let server = get_server(&cloud, id)
            .await
            .map_err(|f| cloud.error("look at the node's server", f))?;
        if server.status != models::server::Status::Off {
            progress.step(&format!("Shutting the server {} down.", server.name));
            let resp: models::ShutdownServerResponse = cloud
                .post_empty(&format!("/servers/{id}/actions/shutdown"))
                .await
                .map_err(|f| cloud.error("shut the server down", f))?;
            wait_action(&cloud, &resp.action, "shut the server down").await?;
            if wait_server(&cloud, id, models::server::Status::Off, SHUTDOWN_GRACE)
                .await
                .is_err()
            {
                progress.step(&format!(
                    "The server did not power off within {} s; cutting the power.",
                    SHUTDOWN_GRACE.as_secs()
                ));
                let resp: models::PowerOffServerResponse = cloud
                    .post_empty(&format!("/servers/{id}/actions/poweroff"))
                    .await
                    .map_err(|f| cloud.error("power the server off", f))?;
                wait_action(&cloud, &resp.action, "power the server off").await?;
                wait_server(&cloud, id, models::server::Status::Off, BOOT_TIMEOUT).await?;
            }
        }
        if let Some(ids) = node.provider_ids.as_object_mut() {
            ids.remove("pid");
        }
        Ok(())
    }

    async fn start(&self, sam: &Sam, node: &mut NodeRecord, progress: &dyn Progress) -> Result<()> {
        let cloud = cloud(sam).await?;
        let id = server_id(node)?;
        let r = recorded(node)?;
        let fingerprint = node.cert_fingerprint.clone().ok_or_else(|| {
            Error::internal(format!("The node {} has no pinned certificate.", node.name))
        })?;
        let key = node_key(sam, node).await?;
        let server = get_server(&cloud, id)
            .await
            .map_err(|f| cloud.error("look at the node's server", f))?;
        if server.status == models::server::Status::Off {
            progress.step(&format!("Powering the server {} on.", server.name));
            let resp: models::PowerOnServerResponse = cloud
                .post_empty(&format!("/servers/{id}/actions/poweron"))
                .await
                .map_err(|f| cloud.error("power the server on", f))?;
            wait_action(&cloud, &resp.action, "power the server on").await?;
        }
        wait_server(&cloud, id, models::server::Status::Running, BOOT_TIMEOUT).await?;
        progress.step(&format!("Connecting to {} over SSH.", r.target.label()));
        let remote = connect_when_up(&r.target, &key, &r.host_key, BOOT_TIMEOUT, OtherKey::Refuse)
            .await
            .map_err(|e| ssh_error(node, e))?;
        let result =
            bootstrap::start_agent(sam, &remote, &r.install, node, &fingerprint, progress).await;
        remote.close().await;
        result
    }

    /// As for SSH nodes (`bootstrap::upgrade`), logged in with the node's own key.
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
        let key = node_key(sam, node).await?;
        progress.step(&format!("Connecting to {} over SSH.", r.target.label()));
        let remote = Remote::connect_with_key(&r.target, key, HostKey::Pinned(&r.host_key))
            .await
            .map_err(|e| ssh_error(node, e))?;
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

    async fn delete(&self, sam: &Sam, node: &NodeRecord, progress: &dyn Progress) -> Result<()> {
        let cloud = cloud(sam).await?;
        delete_resources(&cloud, &node.id, &node.provider_ids, progress).await?;
        sam.secrets().delete(&ssh_key_secret(&node.id)).await
    }
}

/// A server type as the UI offers it.
#[derive(ts_rs::TS, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTypeOption {
    pub name: String,
    pub description: String,
    /// `x86` or `arm`.
    pub architecture: String,
    pub cores: i32,
    pub memory_gb: f64,
    pub disk_gb: f64,
    /// `shared` or `dedicated`.
    pub cpu_type: String,
    /// Locations it is offered in.
    pub locations: Vec<String>,
    /// Gross monthly price per location (`"4.5100000000"` in the project's currency).
    pub monthly_prices: Vec<LocationPrice>,
    /// Whether SAM can make a node of it.
    pub available: bool,
    /// Why not, when it cannot.
    pub unavailable_reason: Option<String>,
}

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationPrice {
    pub location: String,
    pub gross: String,
}

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationOption {
    pub name: String,
    pub description: String,
    pub city: String,
    pub country: String,
    pub network_zone: String,
}

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageOption {
    pub name: String,
    pub description: String,
    pub os_flavor: String,
    pub os_version: Option<String>,
    pub architecture: String,
}

/// What a Hetzner node can be made of (`sam node hetzner-options`, the app's
/// "Add node" form).
#[derive(ts_rs::TS, Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HetznerOptions {
    pub server_types: Vec<ServerTypeOption>,
    pub locations: Vec<LocationOption>,
    /// x86 system images (the only ones SAM can use).
    pub images: Vec<ImageOption>,
}

fn enum_word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Lists server types (Arm ones and deprecated ones marked unavailable),
/// locations and x86 system images.
pub async fn options(sam: &Sam) -> Result<HetznerOptions> {
    let cloud = cloud(sam).await?;
    let types = cloud
        .list::<models::ListServerTypesResponse>("/server_types", &[])
        .await
        .map_err(|f| cloud.error("list the server types", f))?;
    let locations = cloud
        .list::<models::ListLocationsResponse>("/locations", &[])
        .await
        .map_err(|f| cloud.error("list the locations", f))?;
    let images = cloud
        .list::<models::ListImagesResponse>(
            "/images",
            &[("type", "system".into()), ("architecture", "x86".into())],
        )
        .await
        .map_err(|f| cloud.error("list the images", f))?;
    Ok(HetznerOptions {
        server_types: types
            .into_iter()
            .map(|t| {
                let reason = if t.architecture != models::Architecture::X86 {
                    Some("arm64: no agent for it yet".to_string())
                } else if t.deprecated == Some(true) || matches!(t.deprecation, Some(Some(_))) {
                    Some("deprecated by Hetzner".to_string())
                } else {
                    None
                };
                ServerTypeOption {
                    architecture: enum_word(&t.architecture),
                    cpu_type: enum_word(&t.cpu_type),
                    locations: if t.locations.is_empty() {
                        t.prices.iter().map(|p| p.location.clone()).collect()
                    } else {
                        t.locations.iter().map(|l| l.name.clone()).collect()
                    },
                    monthly_prices: t
                        .prices
                        .iter()
                        .map(|p| LocationPrice {
                            location: p.location.clone(),
                            gross: p.price_monthly.gross.clone(),
                        })
                        .collect(),
                    available: reason.is_none(),
                    unavailable_reason: reason,
                    name: t.name,
                    description: t.description,
                    cores: t.cores,
                    memory_gb: t.memory,
                    disk_gb: t.disk,
                }
            })
            .collect(),
        locations: locations
            .into_iter()
            .map(|l| LocationOption {
                name: l.name,
                description: l.description,
                city: l.city,
                country: l.country,
                network_zone: l.network_zone,
            })
            .collect(),
        images: images
            .into_iter()
            .filter(|i| i.status == models::image::Status::Available && i.deleted.is_none())
            .filter_map(|i| {
                Some(ImageOption {
                    name: i.name.clone()?,
                    architecture: enum_word(&i.architecture),
                    os_flavor: enum_word(&i.os_flavor),
                    description: i.description,
                    os_version: i.os_version,
                })
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_server_types_are_checked_before_anything() {
        let spec = AddHetzner::default();
        assert!(check_request("dev-1", &spec).is_ok());
        assert!(check_request("a.b", &spec).is_ok());
        for bad in ["under_score", "-x", "x-", "a..b", ""] {
            assert!(check_request(bad, &spec).is_err(), "{bad}");
        }
        let arm = AddHetzner {
            server_type: "cax11".into(),
            ..AddHetzner::default()
        };
        let e = check_request("dev", &arm).unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_SERVER);
        assert!(e.hint.unwrap().contains("x86"));
        let odd = AddHetzner {
            location: "fsn1; rm".into(),
            ..AddHetzner::default()
        };
        assert!(check_request("dev", &odd).is_err());
    }

    #[test]
    fn the_firewall_lets_in_ssh_and_the_agent_only() {
        let rules = firewall_rules(7420);
        let ports: Vec<_> = rules
            .iter()
            .map(|r| r.port.clone().flatten().unwrap())
            .collect();
        assert_eq!(ports, ["22", "7420"]);
        assert!(
            rules
                .iter()
                .all(|r| r.direction == models::rule::Direction::In
                    && r.protocol == models::rule::Protocol::Tcp)
        );
    }

    #[test]
    fn keys_round_trip_through_openssh_text() {
        let key = new_ed25519("c");
        let text = openssh_private(&key).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let back = russh::keys::decode_secret_key(&text, None).unwrap();
        assert_eq!(
            back.fingerprint(HashAlg::Sha256).to_string(),
            key.fingerprint(HashAlg::Sha256).to_string()
        );
        assert!(
            openssh_public(&key)
                .unwrap()
                .starts_with("ssh-ed25519 AAAA")
        );
        assert_ne!(
            new_ed25519("a").fingerprint(HashAlg::Sha256).to_string(),
            new_ed25519("a").fingerprint(HashAlg::Sha256).to_string()
        );
    }
}
