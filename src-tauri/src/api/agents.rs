//! The built-in agents (CONTRACT §1: `claude`, `codex`, `gemini`) from a person's
//! point of view: which ones a workspace's image has, which are ready to start a
//! session (an API key in the keychain, or a login their CLI keeps in the home
//! volume), and how to set one up — a key ([`Sam::set_agent_key`]) or the agent's
//! own login command in a terminal ([`Sam::open_login_terminal`]).
//!
//! Invariant: a key is a secret. It goes to the secret store and, at a session's
//! start, into that session's create request (api/sessions.rs) — never into
//! SQLite, a log, an error, an answer or a command line.

use sam_protocol::Terminal;
use serde::Serialize;

use super::Sam;
use super::exec::{ExecOutput, ExecRequest};
use super::settings::agent_key_secret;
use super::terminals::NewTerminal;
use crate::error::{Error, Result};

/// What SAM knows about one built-in agent.
#[derive(Debug)]
pub struct BuiltinAgent {
    pub name: &'static str,
    /// The ACP adapter the node runs for it (CONTRACT §1).
    pub adapter: &'static str,
    /// The variables its adapter reads an API key from; the first is the one SAM
    /// sets. (codex-acp also accepts `OPENAI_API_KEY`.)
    pub key_vars: &'static [&'static str],
    /// Its own CLI's login, run in a terminal tab ("Log in").
    pub login: &'static [&'static str],
    /// What that login leaves under the user's home (kept by the home volume).
    pub login_file: &'static str,
}

pub const BUILTIN_AGENTS: &[BuiltinAgent] = &[
    BuiltinAgent {
        name: "claude",
        adapter: "claude-code-acp",
        key_vars: &["ANTHROPIC_API_KEY"],
        login: &["claude", "/login"],
        login_file: ".claude/.credentials.json",
    },
    BuiltinAgent {
        name: "codex",
        adapter: "codex-acp",
        key_vars: &["CODEX_API_KEY", "OPENAI_API_KEY"],
        login: &["codex", "login", "--device-auth"],
        login_file: ".codex/auth.json",
    },
    BuiltinAgent {
        name: "gemini",
        adapter: "gemini",
        key_vars: &["GEMINI_API_KEY"],
        login: &["gemini"],
        login_file: ".gemini/oauth_creds.json",
    },
];

pub fn builtin(name: &str) -> Option<&'static BuiltinAgent> {
    BUILTIN_AGENTS.iter().find(|a| a.name == name)
}

/// The variables `agent` reads its key from (the first is the one SAM sets).
pub fn agent_key_vars(agent: &str) -> Option<&'static [&'static str]> {
    builtin(agent).map(|a| a.key_vars)
}

fn not_builtin(agent: &str) -> Error {
    let names: Vec<&str> = BUILTIN_AGENTS.iter().map(|a| a.name).collect();
    Error::invalid(format!(
        "{agent:?} is not a built-in agent; SAM knows {}.",
        names.join(", ")
    ))
}

/// Whether a session of the agent can start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// A key is stored or its CLI is logged in.
    Ready,
    /// In the image, but neither a key nor a login: "Add key" or "Log in".
    NeedsSetup,
    /// The workspace's image does not have its adapter.
    Missing,
}

/// One built-in agent in one workspace, for the new-session picker.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct AgentReadiness {
    pub name: String,
    pub state: AgentState,
    /// The image has its ACP adapter on `PATH`.
    pub installed: bool,
    pub key_stored: bool,
    /// Its CLI's login state is in the workspace's home.
    pub logged_in: bool,
    /// The variable a stored key is passed as.
    pub key_variable: String,
    /// "Log in" runs this in a terminal tab.
    pub login_command: Vec<String>,
    /// The image has that login command.
    pub login_available: bool,
    /// The state in words.
    pub summary: String,
}

/// One `sh` run that reports, per agent, `has NAME` (adapter on PATH), `cli NAME`
/// (login command on PATH) and `login NAME` (login file present and not empty).
const PROBE: &str = r#"for a in "$@"; do
  name=${a%%:*}; rest=${a#*:}; adapter=${rest%%:*}; rest=${rest#*:}; cli=${rest%%:*}; file=${rest#*:}
  command -v "$adapter" >/dev/null 2>&1 && echo "has $name"
  command -v "$cli" >/dev/null 2>&1 && echo "cli $name"
  [ -s "$HOME/$file" ] && echo "login $name"
done
exit 0"#;

/// Longest the probe may take (a slow node answers "unknown", not a hang).
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Most output the probe may send.
const PROBE_LIMIT: usize = 16 * 1024;

fn summary(a: &BuiltinAgent, installed: bool, key: bool, login: bool) -> String {
    match (installed, key, login) {
        (false, _, _) => format!(
            "This workspace's image has no {} (the default image sam-workspace:latest has it).",
            a.adapter
        ),
        (true, true, true) => "Ready: API key stored, and logged in.".into(),
        (true, true, false) => format!("Ready: API key stored (passed as {}).", a.key_vars[0]),
        (true, false, true) => "Ready: logged in.".into(),
        (true, false, false) => format!(
            "Needs an API key ({}) or a login (`{}`).",
            a.key_vars[0],
            a.login.join(" ")
        ),
    }
}

impl Sam {
    /// The built-in agents of a running workspace: in its image or not, key
    /// stored, logged in. One command in the workspace, as its user.
    pub async fn agents(&self, ws: &str) -> Result<Vec<AgentReadiness>> {
        let mut command = vec!["sh".into(), "-c".into(), PROBE.into(), "sh".into()];
        command.extend(
            BUILTIN_AGENTS
                .iter()
                .map(|a| format!("{}:{}:{}:{}", a.name, a.adapter, a.login[0], a.login_file)),
        );
        let conn = self
            .exec(
                ws,
                ExecRequest {
                    command,
                    ..ExecRequest::default()
                },
            )
            .await?;
        let (_input, mut output) = conn.into_parts();
        let mut out = Vec::new();
        let collected = tokio::time::timeout(PROBE_TIMEOUT, async {
            while let Some(item) = output.recv().await {
                match item {
                    ExecOutput::Stdout(b) if out.len() + b.len() <= PROBE_LIMIT => {
                        out.extend_from_slice(&b)
                    }
                    ExecOutput::Stdout(_) | ExecOutput::Stderr(_) => {}
                    ExecOutput::Exit(0) => return Ok(()),
                    ExecOutput::Exit(127) => {
                        return Err(Error::invalid(
                            "This workspace's image has no `sh`, so SAM cannot look for agents in it.",
                        ));
                    }
                    ExecOutput::Exit(n) => {
                        return Err(Error::internal(format!(
                            "Looking for agents in the workspace failed (exit status {n})."
                        )));
                    }
                    ExecOutput::Error(e) => return Err(Error::internal(e)),
                }
            }
            Err(Error::internal(
                "The workspace's connection ended while SAM looked for agents.",
            ))
        })
        .await;
        match collected {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::new(
                    crate::error::code::UNREACHABLE,
                    "Looking for agents in the workspace took too long.",
                )
                .hint("Try again; if the node is busy, wait a moment."));
            }
        }
        let text = String::from_utf8_lossy(&out);
        let said = |what: &str, name: &str| text.lines().any(|l| l == format!("{what} {name}"));
        let mut list = Vec::with_capacity(BUILTIN_AGENTS.len());
        for a in BUILTIN_AGENTS {
            let installed = said("has", a.name);
            let key_stored = self
                .secrets()
                .get(&agent_key_secret(a.name)?)
                .await?
                .is_some();
            let logged_in = said("login", a.name);
            let state = match (installed, key_stored || logged_in) {
                (false, _) => AgentState::Missing,
                (true, true) => AgentState::Ready,
                (true, false) => AgentState::NeedsSetup,
            };
            list.push(AgentReadiness {
                name: a.name.into(),
                state,
                installed,
                key_stored,
                logged_in,
                key_variable: a.key_vars[0].into(),
                login_command: a.login.iter().map(|s| s.to_string()).collect(),
                login_available: said("cli", a.name),
                summary: summary(a, installed, key_stored, logged_in),
            });
        }
        Ok(list)
    }

    /// Stores `agent`'s API key in the secret store (replacing one stored before).
    pub async fn set_agent_key(&self, agent: &str, key: &str) -> Result<()> {
        let secret = agent_key_secret(agent)?;
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::invalid("The key is empty."));
        }
        if key.len() > 4096 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(
                "That is not an API key: it has spaces, line breaks or is too long.",
            ));
        }
        self.secrets().set(&secret, key).await
    }

    /// Forgets `agent`'s stored API key (nothing to do when there is none).
    pub async fn clear_agent_key(&self, agent: &str) -> Result<()> {
        self.secrets().delete(&agent_key_secret(agent)?).await
    }

    /// The built-in agents with a stored key.
    pub async fn agent_keys(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for a in BUILTIN_AGENTS {
            if self
                .secrets()
                .get(&agent_key_secret(a.name)?)
                .await?
                .is_some()
            {
                names.push(a.name.to_string());
            }
        }
        Ok(names)
    }

    /// "Log in": a terminal in the workspace running the agent's own login
    /// command; what it writes under the home stays with the workspace.
    pub async fn open_login_terminal(
        &self,
        ws: &str,
        agent: &str,
        cols: u16,
        rows: u16,
    ) -> Result<Terminal> {
        let a = builtin(agent).ok_or_else(|| not_builtin(agent))?;
        self.create_terminal(
            ws,
            NewTerminal {
                cols,
                rows,
                command: Some(a.login.iter().map(|s| s.to_string()).collect()),
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_a_key_variable_and_a_login() {
        for a in BUILTIN_AGENTS {
            assert!(!a.key_vars.is_empty(), "{}", a.name);
            assert!(!a.login.is_empty(), "{}", a.name);
            assert!(!a.login_file.starts_with('/'), "{}", a.name);
            // The probe splits its arguments on ':'.
            for part in [a.name, a.adapter, a.login[0], a.login_file] {
                assert!(!part.contains(':'), "{part}");
            }
        }
        assert_eq!(agent_key_vars("codex").unwrap()[0], "CODEX_API_KEY");
        assert!(agent_key_vars("nope").is_none());
    }

    #[test]
    fn summaries_name_the_next_step() {
        let codex = builtin("codex").unwrap();
        assert!(summary(codex, false, false, false).contains("no codex-acp"));
        assert!(summary(codex, true, false, false).contains("CODEX_API_KEY"));
        assert!(summary(codex, true, false, false).contains("codex login"));
        assert!(summary(codex, true, true, false).starts_with("Ready"));
        assert!(summary(codex, true, false, true).starts_with("Ready"));
    }
}
