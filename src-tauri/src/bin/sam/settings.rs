//! `sam settings …`

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use sam_desktop::Sam;
use sam_desktop::api::settings::{HETZNER_TOKEN, agent_key_secret};

use crate::Outcome;
use crate::output::Out;

#[derive(Subcommand)]
pub enum SettingsCmd {
    /// Show the settings in force and where secrets are kept.
    Show,
    /// Store the Hetzner Cloud API token (read from stdin, never echoed).
    HetznerToken {
        #[arg(long)]
        clear: bool,
    },
    /// Store an agent's API key (read from stdin, never echoed).
    AgentKey {
        name: String,
        #[arg(long)]
        clear: bool,
    },
    /// Set a value: stale-seconds, max-nodes, max-workspaces, max-sessions, hcloud-endpoint, theme, default-image.
    Set { key: String, value: String },
}

/// A secret from stdin: one line, no echo on a terminal.
fn read_secret(what: &str) -> Result<String, sam_desktop::Error> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        eprint!("{what}: ");
        #[cfg(unix)]
        {
            use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
            let fd = std::io::stdin();
            let old = tcgetattr(&fd).map_err(sam_desktop::Error::internal)?;
            let mut quiet = old.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(&fd, OptionalActions::Now, &quiet);
            let mut line = String::new();
            let read = stdin.read_line(&mut line);
            let _ = tcsetattr(&fd, OptionalActions::Now, &old);
            eprintln!();
            read?;
            line
        }
        #[cfg(not(unix))]
        {
            let mut line = String::new();
            stdin.read_line(&mut line)?;
            line
        }
    } else {
        let mut all = String::new();
        stdin.lock().take(64 * 1024).read_to_string(&mut all)?;
        all
    };
    let value = value.trim().to_string();
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(sam_desktop::Error::invalid(format!(
            "The {what} read from stdin is empty or has spaces."
        )));
    }
    Ok(value)
}

pub async fn run(sam: &Sam, out: &Out, cmd: SettingsCmd) -> Result<Outcome, sam_desktop::Error> {
    match cmd {
        SettingsCmd::Show => {
            let s = sam.show_settings().await?;
            let v = serde_json::to_value(&s).unwrap_or_default();
            out.one(&s, || {
                v.as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                format!(
                                    "{k:<16} {}",
                                    v.as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| v.to_string())
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        SettingsCmd::HetznerToken { clear } => {
            if clear {
                sam.secrets().delete(HETZNER_TOKEN).await?;
                eprintln!(
                    "The Hetzner token was removed from {}.",
                    sam.secrets().describe()
                );
            } else {
                let token = read_secret("Hetzner Cloud API token")?;
                sam.secrets().set(HETZNER_TOKEN, &token).await?;
                eprintln!(
                    "The Hetzner token is stored in {}.",
                    sam.secrets().describe()
                );
            }
        }
        SettingsCmd::AgentKey { name, clear } => {
            agent_key_secret(&name)?;
            if clear {
                sam.clear_agent_key(&name).await?;
                eprintln!("The {name} key was removed.");
            } else {
                let value = read_secret(&format!("{name} API key"))?;
                sam.set_agent_key(&name, &value).await?;
                eprintln!("The {name} key is stored in {}.", sam.secrets().describe());
            }
        }
        SettingsCmd::Set { key, value } => {
            sam.set_setting(&key, &value).await?;
            eprintln!("{key} = {value}");
        }
    }
    Ok(Outcome::Done)
}
