//! CONTRACT §1: flags and environment. Parse (clap), then validate into a [`Config`]
//! once; every failure here is a one-line message and exit status 2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use jsonwebtoken::DecodingKey;

pub const DEFAULT_IMAGE: &str = "sam-workspace:latest";

#[derive(Debug, Parser)]
#[command(name = "sam-agent", version, about = "The SAM node agent")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the node agent API.
    Serve(ServeArgs),
    /// Make this node's TLS key and self-signed certificate (kept if present);
    /// prints the certificate's SHA256 fingerprint.
    TlsInit(crate::tls::TlsInitArgs),
    /// Hold one terminal (started by the agent, not by people): its spec comes on
    /// stdin; it serves a unix socket in the data dir's `holders/`.
    #[command(hide = true)]
    HoldTerminal {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Hold one agent session (started by the agent, not by people).
    #[command(hide = true)]
    HoldSession {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// This node's id, as the desktop knows it (the `node` claim of tokens).
    #[arg(long, env = "SAM_NODE_ID")]
    pub node_id: String,
    /// PEM file with the desktop's Ed25519 public key (SPKI `PUBLIC KEY`).
    #[arg(long, env = "SAM_TRUSTED_KEY")]
    pub trusted_key: PathBuf,
    /// Where the agent keeps its state.
    #[arg(long, env = "SAM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to listen on. Plain HTTP only on loopback.
    #[arg(long, env = "SAM_LISTEN", default_value = "127.0.0.1:7420")]
    pub listen: String,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "SAM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "SAM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    #[arg(long, env = "MAX_WORKSPACES_PER_NODE", default_value_t = 10)]
    pub max_workspaces: u32,
    #[arg(long, env = "MAX_AGENT_SESSIONS_PER_WORKSPACE", default_value_t = 5)]
    pub max_sessions_per_workspace: u32,
    #[arg(long, env = "SAM_HEARTBEAT_SECONDS", default_value_t = 10)]
    pub heartbeat_seconds: u64,
    /// Image for workspaces that name none.
    #[arg(long, env = "SAM_DEFAULT_IMAGE", default_value = DEFAULT_IMAGE)]
    pub default_image: String,
    /// An ACP agent, `NAME=COMMAND` (split like a shell line, no shell run).
    #[arg(
        long = "agent",
        value_name = "NAME=COMMAND",
        env = "SAM_AGENTS",
        value_delimiter = '\n'
    )]
    pub agents: Vec<String>,
}

/// How an agent command is run: argv, split once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    pub name: String,
    pub argv: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: String,
    pub trusted_key: DecodingKey,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_workspaces: u32,
    pub max_sessions_per_workspace: u32,
    pub heartbeat_seconds: u64,
    pub default_image: String,
    /// Configured agents: the built-ins, overridden and extended by `--agent`.
    pub agents: BTreeMap<String, AgentCommand>,
    /// The first `--agent` given, else `claude`.
    pub default_agent: String,
}

/// A configuration problem: one line, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

const BUILTIN_AGENTS: &[(&str, &str)] = &[
    ("claude", "claude-code-acp"),
    ("codex", "codex-acp"),
    ("gemini", "gemini --experimental-acp"),
];

impl Config {
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let node_id = args.node_id.trim().to_string();
        if node_id.is_empty()
            || node_id.len() > 64
            || !node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(err(format!(
                "--node-id {:?} is not valid: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                args.node_id
            )));
        }

        let trusted_key = load_trusted_key(&args.trusted_key)?;

        let listen: SocketAddr = args.listen.parse().map_err(|_| {
            err(format!(
                "--listen {:?} is not an address: use IP:PORT, for example 127.0.0.1:7420",
                args.listen
            ))
        })?;

        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => {
                for (flag, path) in [("--tls-cert", &cert), ("--tls-key", &key)] {
                    std::fs::metadata(path)
                        .map_err(|e| err(format!("{flag} {}: {e}", path.display())))?;
                }
                Some((cert, key))
            }
            (None, None) => None,
            (Some(_), None) => return Err(err("--tls-cert needs --tls-key as well")),
            (None, Some(_)) => return Err(err("--tls-key needs --tls-cert as well")),
        };
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(err(format!(
                "refusing to serve plain HTTP on {listen}: off loopback the agent needs --tls-cert and --tls-key"
            )));
        }

        if !(1..=3600).contains(&args.heartbeat_seconds) {
            return Err(err("--heartbeat-seconds must be between 1 and 3600"));
        }
        if args.max_workspaces == 0 || args.max_sessions_per_workspace == 0 {
            return Err(err(
                "--max-workspaces and --max-sessions-per-workspace must be at least 1",
            ));
        }
        let default_image = args.default_image.trim().to_string();
        if default_image.is_empty() || default_image.contains(char::is_whitespace) {
            return Err(err(format!(
                "--default-image {:?} is not an image reference",
                args.default_image
            )));
        }

        let mut agents: BTreeMap<String, AgentCommand> = BTreeMap::new();
        for (name, line) in BUILTIN_AGENTS {
            agents.insert(name.to_string(), parse_agent(&format!("{name}={line}"))?);
        }
        let mut default_agent = None;
        for spec in args.agents.iter().filter(|s| !s.trim().is_empty()) {
            let agent = parse_agent(spec)?;
            default_agent.get_or_insert_with(|| agent.name.clone());
            agents.insert(agent.name.clone(), agent);
        }

        std::fs::create_dir_all(&args.data_dir).map_err(|e| {
            err(format!(
                "--data-dir {} cannot be created: {e}",
                args.data_dir.display()
            ))
        })?;

        Ok(Self {
            node_id,
            trusted_key,
            data_dir: args.data_dir,
            listen,
            tls,
            max_workspaces: args.max_workspaces,
            max_sessions_per_workspace: args.max_sessions_per_workspace,
            heartbeat_seconds: args.heartbeat_seconds,
            default_image,
            agents,
            default_agent: default_agent.unwrap_or_else(|| "claude".into()),
        })
    }
}

fn load_trusted_key(path: &std::path::Path) -> Result<DecodingKey, ConfigError> {
    let pem =
        std::fs::read(path).map_err(|e| err(format!("--trusted-key {}: {e}", path.display())))?;
    let bad = || {
        err(format!(
            "--trusted-key {} does not hold an Ed25519 public key as a PEM PUBLIC KEY block",
            path.display()
        ))
    };
    let text = std::str::from_utf8(&pem).map_err(|_| bad())?;
    if !text.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(bad());
    }
    DecodingKey::from_ed_pem(&pem).map_err(|_| bad())
}

/// `NAME=COMMAND`, COMMAND split like a POSIX shell line.
pub fn parse_agent(spec: &str) -> Result<AgentCommand, ConfigError> {
    let (name, command) = spec
        .split_once('=')
        .ok_or_else(|| err(format!("--agent {spec:?} must look like NAME=COMMAND")))?;
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(format!(
            "--agent {spec:?}: the name must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        )));
    }
    let argv = shell_words::split(command)
        .map_err(|e| err(format!("--agent {spec:?}: cannot split the command: {e}")))?;
    if argv.is_empty() {
        return Err(err(format!("--agent {spec:?}: the command is empty")));
    }
    Ok(AgentCommand {
        name: name.to_string(),
        argv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_agent_commands_like_a_shell() {
        let a = parse_agent(r#"fixture=/usr/bin/agent --flag "two words" 'x y'"#).unwrap();
        assert_eq!(a.name, "fixture");
        assert_eq!(a.argv, ["/usr/bin/agent", "--flag", "two words", "x y"]);
        assert!(parse_agent("noequals").is_err());
        assert!(parse_agent("=cmd").is_err());
        assert!(parse_agent("x=").is_err());
        assert!(parse_agent("x='unterminated").is_err());
    }
}
