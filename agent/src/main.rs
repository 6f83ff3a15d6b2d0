//! The `sam-agent` binary: parse, validate (exit 2 on bad configuration), serve.

use std::process::ExitCode;

use clap::Parser;
use sam_agent::config::{Cli, Command, Config};

/// clap's message on one line: what is wrong, without the usage block.
fn one_line(e: &clap::Error) -> String {
    e.render()
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sam-agent tls-init`: the fingerprint on stdout (and nothing else), what was
/// done on stderr; exit 2 on bad input, 1 when the files cannot be written.
fn tls_init(args: &sam_agent::tls::TlsInitArgs) -> ExitCode {
    match sam_agent::tls::init(args) {
        Ok(done) => {
            let what = if done.created {
                "made"
            } else {
                "kept the existing"
            };
            eprintln!(
                "sam-agent: {what} TLS key and certificate in {}",
                args.dir.display()
            );
            println!("{}", done.fingerprint);
            ExitCode::SUCCESS
        }
        Err(e @ sam_agent::tls::TlsError::Invalid(_)) => {
            eprintln!("sam-agent: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("sam-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sam-agent: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::TlsInit(args) => return tls_init(&args),
        Command::HoldTerminal { data_dir } => return hold(data_dir, false),
        Command::HoldSession { data_dir } => return hold(data_dir, true),
    };
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sam-agent: error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sam-agent: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Unusable TLS files are bad configuration: one line and status 2, before the
    // agent opens its database or records that it started.
    if let Some((cert, key)) = &config.tls
        && let Err(e) = runtime.block_on(axum_server::tls_rustls::RustlsConfig::from_pem_file(
            cert, key,
        ))
    {
        eprintln!(
            "sam-agent: error: --tls-cert {} and --tls-key {} cannot be used together as a TLS certificate and key: {e}",
            cert.display(),
            key.display()
        );
        return ExitCode::from(2);
    }
    match runtime.block_on(sam_agent::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sam-agent: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `sam-agent hold-terminal` / `hold-session`: the holder process of one terminal
/// or one agent session.
fn hold(data_dir: std::path::PathBuf, session: bool) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    // One thread: a holder serves one terminal.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            println!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if session {
        runtime.block_on(sam_agent::holders::session::main(data_dir))
    } else {
        runtime.block_on(sam_agent::holders::terminal::main(data_dir))
    }
}
