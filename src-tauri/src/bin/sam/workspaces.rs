//! `sam ws …`

use clap::{Args, Subcommand};
use sam_desktop::Sam;
use sam_desktop::api::workspaces::{NewWorkspace, WorkspaceView};
use serde_json::json;

use crate::Outcome;
use crate::output::{Out, Steps, env_pairs, word};

#[derive(Subcommand)]
pub enum WsCmd {
    /// Create a workspace (waits until it runs unless --no-wait).
    Create(CreateArgs),
    /// List workspaces (of one node, or of all).
    Ls { node: Option<String> },
    /// Show one workspace (NODE/NAME, id, or a unique NAME).
    Show { ws: String },
    /// Rename a workspace (its project folder keeps its path).
    Rename { ws: String, name: String },
    /// Stop a workspace; its files are kept.
    Stop { ws: String },
    /// Start a stopped workspace, or restart a running one.
    Restart { ws: String },
    /// Delete a workspace with its files.
    Rm { ws: String },
}

#[derive(Args)]
pub struct CreateArgs {
    pub node: String,
    pub name: String,
    #[arg(long)]
    pub image: Option<String>,
    #[arg(long = "repo")]
    pub repo: Option<String>,
    #[arg(long, requires = "repo")]
    pub branch: Option<String>,
    /// Name of an environment variable holding a git token for the clone.
    #[arg(long, requires = "repo")]
    pub git_token_env: Option<String>,
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    #[arg(long)]
    pub no_wait: bool,
}

fn human(w: &WorkspaceView) -> String {
    let ws = &w.workspace;
    let mut s = format!(
        "{} ({})\n  node     {}\n  status   {}\n  image    {}\n  folder   {}",
        ws.display_name,
        ws.id,
        w.node,
        word(&ws.status),
        ws.image,
        ws.project_path
    );
    if let Some(r) = &ws.repository {
        s.push_str(&format!(
            "\n  repo     {r}{}",
            ws.branch
                .as_ref()
                .map(|b| format!(" ({b})"))
                .unwrap_or_default()
        ));
    }
    if let Some(e) = &ws.error {
        s.push_str(&format!("\n  error    {e}"));
    }
    s
}

pub async fn run(sam: &Sam, out: &Out, cmd: WsCmd) -> Result<Outcome, sam_desktop::Error> {
    match cmd {
        WsCmd::Create(a) => {
            let git_token = match &a.git_token_env {
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    sam_desktop::Error::invalid(format!(
                        "The environment variable {var} (--git-token-env) is not set."
                    ))
                })?),
                None => None,
            };
            let new = NewWorkspace {
                name: a.name,
                image: a.image,
                repository: a.repo,
                branch: a.branch,
                git_token,
                env: env_pairs(&a.env)?,
            };
            let w = sam
                .create_workspace(&a.node, new, !a.no_wait, &Steps)
                .await?;
            out.one(&w, || human(&w));
        }
        WsCmd::Ls { node } => {
            let list = sam.list_workspaces(node.as_deref()).await?;
            out.list(&list, &["NAME", "NODE", "STATUS", "IMAGE", "ID"], |w| {
                vec![
                    w.workspace.display_name.clone(),
                    w.node.clone(),
                    word(&w.workspace.status),
                    w.workspace.image.clone(),
                    w.workspace.id.clone(),
                ]
            });
        }
        WsCmd::Show { ws } => {
            let w = sam.show_workspace(&ws).await?;
            out.one(&w, || human(&w));
        }
        WsCmd::Rename { ws, name } => {
            let w = sam.rename_workspace(&ws, &name).await?;
            out.one(&w, || human(&w));
        }
        WsCmd::Stop { ws } => {
            let w = sam.show_workspace(&ws).await?;
            let sessions = sam
                .workspace_sessions_running(&ws)
                .await
                .unwrap_or_default();
            eprintln!(
                "Stopping workspace {} stops its terminals{}; its files are kept.",
                w.workspace.display_name,
                if sessions == 0 {
                    String::new()
                } else {
                    format!(" and {sessions} agent session(s)")
                }
            );
            out.confirm("Stopping the workspace")?;
            let w = sam.stop_workspace(&ws, true, &Steps).await?;
            out.one(&w, || human(&w));
        }
        WsCmd::Restart { ws } => {
            let w = sam.restart_workspace(&ws, true, &Steps).await?;
            out.one(&w, || human(&w));
        }
        WsCmd::Rm { ws } => {
            let w = sam.show_workspace(&ws).await?;
            eprintln!(
                "Deleting workspace {} ({}) removes its container, volume and network: its files are gone.",
                w.workspace.display_name, w.workspace.id
            );
            out.confirm("Deleting the workspace")?;
            let w = sam.remove_workspace(&ws, &Steps).await?;
            out.one(&json!({"id": w.workspace.id, "deleted": true}), || {
                format!("Deleted workspace {}.", w.workspace.display_name)
            });
        }
    }
    Ok(Outcome::Done)
}
