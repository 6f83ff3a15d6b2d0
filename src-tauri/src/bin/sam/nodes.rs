//! `sam node …`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use sam_desktop::Sam;
use sam_desktop::nodes::{Node, Provider};
use sam_desktop::providers::hetzner::{
    AddHetzner, DEFAULT_IMAGE, DEFAULT_LOCATION, DEFAULT_SERVER_TYPE, STILL_BILLED,
};
use sam_desktop::providers::ssh::{AddSsh, ConfirmHostKey, default_name, parse_destination};
use serde_json::json;

use crate::Outcome;
use crate::output::{Out, Steps, ago, word};

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Add a node.
    #[command(subcommand)]
    Add(AddCmd),
    /// List nodes with their health.
    Ls,
    /// Show one node.
    Show { node: String },
    /// Stop every workspace on the node, then the node.
    Stop { node: String },
    /// Start a stopped node (and upgrade its agent if it is older than this one's).
    Start { node: String },
    /// Replace the node's sam-agent by this SAM's when it is older; terminals and
    /// agent sessions live on.
    Upgrade {
        node: String,
        /// Install this SAM's agent even when the node's is the same or newer.
        #[arg(long)]
        force: bool,
    },
    /// List the Hetzner Cloud server types, locations and images a node can use.
    HetznerOptions,
    /// Delete the node's workspaces and remove the node.
    Rm {
        node: String,
        /// Only make SAM forget the node (for a server that is gone): nothing on
        /// the server is stopped or removed.
        #[arg(long)]
        forget: bool,
    },
}

#[derive(Subcommand)]
pub enum AddCmd {
    /// This computer.
    Local(LocalArgs),
    /// A Linux x86_64 server you can log in to with an SSH key.
    Ssh(SshArgs),
    /// A new server in your Hetzner Cloud project (token: HCLOUD_TOKEN or
    /// `sam settings hetzner-token`).
    Hetzner(HetznerArgs),
}

#[derive(Args)]
pub struct HetznerArgs {
    /// The node's name, also the server's name in Hetzner Cloud.
    #[arg(long)]
    pub name: String,
    /// The server type (x86 only; `sam node hetzner-options` lists them).
    #[arg(long, default_value = DEFAULT_SERVER_TYPE)]
    pub server_type: String,
    /// The location (data centre site).
    #[arg(long, default_value = DEFAULT_LOCATION)]
    pub location: String,
    /// The system image.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// The agent's TCP port on the server (the firewall opens it and SSH only).
    #[arg(long, env = "SAM_HETZNER_AGENT_PORT", default_value_t = 7420)]
    pub agent_port: u16,
}

#[derive(Args)]
pub struct SshArgs {
    /// USER@HOST (HOST alone: your local user name).
    pub destination: String,
    /// The SSH port.
    #[arg(long, default_value_t = 22)]
    pub port: u16,
    /// The private key to log in with [default: ~/.ssh/id_ed25519, else ~/.ssh/id_rsa].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The node's name [default: the host].
    #[arg(long)]
    pub name: Option<String>,
    /// Trust this host key (as `ssh-keygen -lf` prints it) without asking.
    #[arg(long, value_name = "SHA256:…")]
    pub accept_host_key: Option<String>,
    /// The agent's TCP port on the server.
    #[arg(long, env = "SAM_SSH_AGENT_PORT", default_value_t = 7420)]
    pub agent_port: u16,
}

/// On a terminal: shows a host key seen for the first time and asks.
fn ask_host_key() -> Option<Box<ConfirmHostKey>> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    Some(Box::new(|place: &str, fingerprint: &str| {
        eprintln!(
            "The SSH server {place} presents the host key\n  {fingerprint}\nSAM has not seen it before. Compare it with the server's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` there)."
        );
        eprint!("Trust it and continue? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim(), "y" | "Y" | "yes")
    }))
}

#[derive(Args)]
pub struct LocalArgs {
    #[arg(long, default_value = "this-computer")]
    pub name: String,
}

fn human(n: &Node) -> String {
    format!(
        "{} ({})\n  provider   {}\n  address    {}\n  status     {}\n  health     {}\n  last seen  {}\n  agent      {}\n  workspaces {} ({} running)\n  cert       {}",
        n.name,
        n.id,
        word(&n.provider),
        n.address,
        word(&n.status),
        n.health.map(|h| word(&h)).unwrap_or_else(|| "-".into()),
        ago(n.last_seen_at),
        match &n.agent_version {
            Some(v) => sam_desktop::nodes::upgrade::describe(v, n.agent_build.as_deref()),
            None => "-".into(),
        },
        n.workspaces.total,
        n.workspaces.running,
        n.cert_fingerprint.as_deref().unwrap_or("- (loopback)"),
    )
}

/// What stopping or removing a node ends, in words.
async fn plan_words(sam: &Sam, node: &str, verb: &str) -> Result<String, sam_desktop::Error> {
    let plan = sam.node_stop_plan(node).await?;
    let mut text = String::new();
    if plan.workspaces.is_empty() && plan.sessions.is_empty() {
        text.push_str(&format!(
            "{verb} {node}: no running workspace or session will stop."
        ));
    } else {
        text.push_str(&format!("{verb} {node} stops:\n"));
        for w in &plan.workspaces {
            text.push_str(&format!("  workspace {} ({})\n", w.display_name, w.id));
        }
        for s in &plan.sessions {
            text.push_str(&format!(
                "  agent session {} ({}) in workspace {}\n",
                s.label, s.id, s.workspace_id
            ));
        }
    }
    Ok(text)
}

pub async fn run(sam: &Sam, out: &Out, cmd: NodeCmd) -> Result<Outcome, sam_desktop::Error> {
    match cmd {
        NodeCmd::Add(AddCmd::Local(a)) => {
            let node = sam.add_local(&a.name, &Steps).await?;
            out.one(&node, || human(&node));
        }
        NodeCmd::Add(AddCmd::Ssh(a)) => {
            let (user, host) = parse_destination(&a.destination)?;
            let name = a.name.clone().unwrap_or_else(|| default_name(&host));
            let spec = AddSsh {
                user,
                host,
                port: a.port,
                identity: a.identity,
                accept_host_key: a.accept_host_key,
                agent_port: Some(a.agent_port),
            };
            let node = sam.add_ssh(&name, spec, ask_host_key(), &Steps).await?;
            out.one(&node, || human(&node));
        }
        NodeCmd::Add(AddCmd::Hetzner(a)) => {
            let spec = AddHetzner {
                server_type: a.server_type,
                location: a.location,
                image: a.image,
                agent_port: Some(a.agent_port),
            };
            let node = sam.add_hetzner(&a.name, spec, &Steps).await?;
            out.one(&node, || human(&node));
        }
        NodeCmd::HetznerOptions => {
            let o = sam.hetzner_options().await?;
            if out.json {
                out.one(&o, String::new);
            } else {
                let plain = Out {
                    json: false,
                    yes: out.yes,
                };
                println!("SERVER TYPES");
                plain.list(
                    &o.server_types,
                    &[
                        "NAME",
                        "ARCH",
                        "CPU",
                        "CORES",
                        "MEMORY",
                        "DISK",
                        "LOCATIONS",
                        "AVAILABLE",
                    ],
                    |t| {
                        vec![
                            t.name.clone(),
                            t.architecture.clone(),
                            t.cpu_type.clone(),
                            t.cores.to_string(),
                            format!("{} GB", t.memory_gb),
                            format!("{} GB", t.disk_gb),
                            t.locations.join(","),
                            match &t.unavailable_reason {
                                None => "yes".into(),
                                Some(why) => format!("no ({why})"),
                            },
                        ]
                    },
                );
                println!("\nLOCATIONS");
                plain.list(
                    &o.locations,
                    &["NAME", "CITY", "COUNTRY", "NETWORK ZONE"],
                    |l| {
                        vec![
                            l.name.clone(),
                            l.city.clone(),
                            l.country.clone(),
                            l.network_zone.clone(),
                        ]
                    },
                );
                println!("\nIMAGES");
                plain.list(&o.images, &["NAME", "DESCRIPTION", "ARCH"], |i| {
                    vec![
                        i.name.clone(),
                        i.description.clone(),
                        i.architecture.clone(),
                    ]
                });
            }
        }
        NodeCmd::Ls => {
            let nodes = sam.list_nodes().await?;
            out.list(
                &nodes,
                &[
                    "NAME",
                    "PROVIDER",
                    "STATUS",
                    "HEALTH",
                    "LAST SEEN",
                    "WORKSPACES",
                    "ADDRESS",
                ],
                |n| {
                    vec![
                        n.name.clone(),
                        word(&n.provider),
                        word(&n.status),
                        n.health.map(|h| word(&h)).unwrap_or_else(|| "-".into()),
                        ago(n.last_seen_at),
                        format!("{}/{}", n.workspaces.running, n.workspaces.total),
                        n.address.clone(),
                    ]
                },
            );
        }
        NodeCmd::Show { node } => {
            let (n, problem) = sam.inspect_node(&node).await?;
            if let Some(e) = problem {
                eprintln!("warning: {}", e.message);
                if let Some(h) = &e.hint {
                    eprintln!("hint: {h}");
                }
            }
            out.one(&n, || human(&n));
        }
        NodeCmd::Stop { node } => {
            let words = plan_words(sam, &node, "Stopping").await?;
            eprintln!("{}", words.trim_end());
            let hetzner = sam.node_record(&node).await?.provider == Provider::Hetzner;
            if hetzner {
                eprintln!("{STILL_BILLED}");
            }
            out.confirm("Stopping the node")?;
            let n = sam.stop_node(&node, &Steps).await?;
            if hetzner {
                eprintln!("warning: {STILL_BILLED}");
            }
            out.one(&n, || human(&n));
        }
        NodeCmd::Start { node } => {
            let n = sam.start_node(&node, &Steps).await?;
            out.one(&n, || human(&n));
        }
        NodeCmd::Upgrade { node, force } => {
            let n = sam.upgrade_node(&node, force, &Steps).await?;
            out.one(&n, || human(&n));
        }
        NodeCmd::Rm { node, forget: true } => {
            let record = sam.node_record(&node).await?;
            eprintln!(
                "Forgetting {}: SAM stops managing it; nothing on {} is stopped or removed.",
                record.name, record.address
            );
            out.confirm("Forgetting the node")?;
            let forgotten = sam.forget_node(&node).await?;
            out.one(
                &json!({"id": forgotten.id, "deleted": true, "forgotten": true}),
                || format!("Forgot node {}.", forgotten.name),
            );
        }
        NodeCmd::Rm {
            node,
            forget: false,
        } => {
            let words = plan_words(sam, &node, "Removing")
                .await
                .unwrap_or_else(|_| format!("Removing {node}."));
            eprintln!(
                "{}\nEvery workspace on it is deleted with its files.",
                words.trim_end()
            );
            out.confirm("Removing the node")?;
            let removed = sam.remove_node(&node, &Steps).await?;
            out.one(&json!({"id": removed.id, "deleted": true}), || {
                format!("Removed node {}.", removed.name)
            });
        }
    }
    Ok(Outcome::Done)
}
