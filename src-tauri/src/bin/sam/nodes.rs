//! `sam node …`

use clap::{Args, Subcommand};
use sam_desktop::Sam;
use sam_desktop::nodes::Node;
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
    /// Start a stopped node.
    Start { node: String },
    /// Delete the node's workspaces and remove the node.
    Rm { node: String },
}

#[derive(Subcommand)]
pub enum AddCmd {
    /// This computer.
    Local(LocalArgs),
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
        n.agent_version.as_deref().unwrap_or("-"),
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
            let n = sam.show_node(&node).await?;
            out.one(&n, || human(&n));
        }
        NodeCmd::Stop { node } => {
            let words = plan_words(sam, &node, "Stopping").await?;
            eprintln!("{}", words.trim_end());
            out.confirm("Stopping the node")?;
            let n = sam.stop_node(&node, &Steps).await?;
            out.one(&n, || human(&n));
        }
        NodeCmd::Start { node } => {
            let n = sam.start_node(&node, &Steps).await?;
            out.one(&n, || human(&n));
        }
        NodeCmd::Rm { node } => {
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
