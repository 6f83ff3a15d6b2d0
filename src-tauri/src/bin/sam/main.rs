//! `sam`: the command line over the SAM control plane (CLI.md, docs/cli.md).
//!
//! Parse (clap), run one command against the library, and leave through one exit
//! path: 0 done, 1 failed (`error:` and `hint:` on stderr), 2 usage, 130
//! interrupted; `exec` and `session prompt` add their own.

mod events;
mod nodes;
mod output;
mod sessions;
mod settings;
mod terminals;
mod workspaces;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sam_desktop::{Error, Sam};

#[derive(Parser)]
#[command(
    name = "sam",
    version,
    about = "SAM: run coding agents in workspaces on your own machines"
)]
pub struct Cli {
    /// Print JSON (listings as arrays, `events` as one object per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Answer yes to confirmations (stop, delete).
    #[arg(long, global = true)]
    pub yes: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Nodes: this computer, SSH servers, Hetzner Cloud servers.
    #[command(subcommand)]
    Node(nodes::NodeCmd),
    /// Workspaces on nodes.
    #[command(subcommand)]
    Ws(workspaces::WsCmd),
    /// Events of all nodes, a node, or a workspace.
    Events(events::EventsArgs),
    /// Agent sessions: start, list, attach, prompt, stop.
    #[command(subcommand)]
    Session(sessions::SessionCmd),
    /// Settings and secrets.
    #[command(subcommand)]
    Settings(settings::SettingsCmd),
    /// Terminals in a workspace: start or attach (Ctrl-] d detaches), list, kill.
    Term(terminals::TermArgs),
    /// Run one command in a workspace (stdin, stdout, stderr and status passed through).
    Exec(terminals::ExecArgs),
    /// Forward 127.0.0.1:LOCAL_PORT to a port in a workspace, until Ctrl-C.
    Forward(terminals::ForwardArgs),
}

/// How a command ended, when not with a plain success or failure.
pub enum Outcome {
    Done,
    Code(u8),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return output::fail(&Error::internal(format!("Cannot start: {e}"))),
    };
    // `exec` fails with 125 (CLI.md); `forward` ends on Ctrl-C by design (exit 0).
    let exec = matches!(cli.command, Command::Exec(_));
    // `session prompt` turns its first Ctrl-C into a cancel of its turn.
    let own_interrupt = matches!(
        cli.command,
        Command::Forward(_) | Command::Session(sessions::SessionCmd::Prompt(_))
    );
    let result = runtime.block_on(async {
        if own_interrupt {
            return run(cli).await;
        }
        tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => Ok(Outcome::Code(130)),
        }
    });
    // Background tasks (sockets) end with the runtime; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Code(c)) => ExitCode::from(c),
        Err(e) if exec => {
            output::fail(&e);
            ExitCode::from(125)
        }
        Err(e) => output::fail(&e),
    }
}

async fn run(cli: Cli) -> Result<Outcome, Error> {
    let sam = Sam::open().await?;
    let out = output::Out {
        json: cli.json,
        yes: cli.yes,
    };
    match cli.command {
        Command::Node(cmd) => nodes::run(&sam, &out, cmd).await,
        Command::Ws(cmd) => workspaces::run(&sam, &out, cmd).await,
        Command::Events(args) => events::run(&sam, &out, args).await,
        Command::Session(cmd) => sessions::run(&sam, &out, cmd).await,
        Command::Settings(cmd) => settings::run(&sam, &out, cmd).await,
        Command::Term(args) => terminals::term(&sam, &out, args).await,
        Command::Exec(args) => terminals::exec(&sam, args).await,
        Command::Forward(args) => terminals::forward(&sam, &out, args).await,
    }
}
