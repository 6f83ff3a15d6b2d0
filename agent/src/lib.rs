//! `sam-agent`: the node agent of SAM (docs/architecture.md has the map).

pub mod app;
pub mod auth;
pub mod build;
pub mod config;
pub mod docker;
pub mod error;
pub mod events;
pub mod exec;
pub mod extract;
pub mod files;
pub mod firewall;
pub mod holders;
pub mod node;
pub mod passwd;
pub mod ports;
pub mod process_group;
pub mod sessions;
pub mod state;
pub mod store;
pub mod terminals;
pub mod tls;
pub mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use axum_server::accept::NoDelayAcceptor;
use chrono::SubsecRound;
use sam_protocol::{DockerStatus, EventLevel, EventType, Limits, Timestamp};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::{EventLog, NewEvent};
use crate::state::AppState;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How often the agent looks at Docker (availability, container states).
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// Now, to the millisecond (what every wire timestamp carries).
pub fn now() -> Timestamp {
    chrono::Utc::now().trunc_subsecs(3)
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the data dir's database cannot be opened: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("the TLS certificate or key cannot be used: {0}")]
    Tls(std::io::Error),
}

/// Builds the state from a validated configuration.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let store = store::Store::open(&config.data_dir).await?;
    let events = EventLog::open(store.clone(), config.node_id.clone()).await?;
    let mut limits = Limits {
        max_workspaces: config.max_workspaces,
        max_sessions_per_workspace: config.max_sessions_per_workspace,
    };
    if let Some(saved) = store.meta("limits").await?
        && let Ok(saved) = serde_json::from_str::<Limits>(&saved)
    {
        limits = saved;
    }
    let limits = Arc::new(RwLock::new(limits));
    let docker = docker::Engine::new();
    let scratch = config.data_dir.join("scratch");
    let workspaces = workspaces::Workspaces::load(
        config.node_id.clone(),
        config.default_image.clone(),
        scratch,
        store.clone(),
        events.clone(),
        docker.clone(),
        limits.clone(),
    )
    .await?;
    let sessions = sessions::Sessions::load(
        store.clone(),
        events.clone(),
        workspaces.clone(),
        config.agents.clone(),
        config.default_agent.clone(),
        limits.clone(),
        config.node_id.clone(),
        &config.data_dir,
    )
    .await?;
    let verifier = auth::TokenVerifier::new(config.trusted_key.clone(), config.node_id.clone());
    let terminals_host = holders::TerminalHost {
        data_dir: config.data_dir.clone(),
        node_id: config.node_id.clone(),
        events: events.clone(),
    };
    let state = AppState {
        config: Arc::new(config),
        verifier: Arc::new(verifier),
        store,
        events,
        workspaces,
        limits,
        engine: docker,
        docker: Arc::new(RwLock::new(DockerStatus {
            available: false,
            version: None,
        })),
        terminals: terminals::Terminals::default(),
        terminals_host,
        sessions,
        build: build::Build::default(),
        started_at: now(),
        shutdown: CancellationToken::new(),
    };
    // Which build this is: hashed in the background, never delaying start-up.
    state.build.start();
    // Terminals a previous agent left running in their holders are adopted.
    let known: std::collections::HashSet<String> = state
        .workspaces
        .list()
        .await
        .into_iter()
        .map(|w| w.id)
        .collect();
    state
        .terminals_host
        .recover(&state.terminals, |ws| known.contains(ws))
        .await;
    // What runs inside a workspace ends before its container stops.
    let sessions = state.sessions.clone();
    state.workspaces.on_end(Arc::new(move |id, reason| {
        let sessions = sessions.clone();
        Box::pin(async move { sessions.end_workspace(&id, reason).await })
    }));
    let terminals = state.terminals.clone();
    state.workspaces.on_end(Arc::new(move |id, _reason| {
        let terminals = terminals.clone();
        Box::pin(async move { terminals.end_workspace(&id).await })
    }));
    Ok(state)
}

/// Watches Docker and reconciles workspaces until shutdown.
async fn monitor(state: AppState) {
    let engine = state.engine.clone();
    let mut first = true;
    loop {
        let status = match engine.version().await {
            Ok(version) => DockerStatus {
                available: true,
                version: Some(version),
            },
            Err(_) => DockerStatus {
                available: false,
                version: None,
            },
        };
        let changed = {
            let mut current = state.docker.write().await;
            let changed = current.available != status.available;
            *current = status.clone();
            changed
        };
        if changed || (first && !status.available) {
            let (level, message) = if status.available {
                (
                    EventLevel::Info,
                    format!(
                        "The container engine is available (Docker {}).",
                        status.version.as_deref().unwrap_or("?")
                    ),
                )
            } else {
                (
                    EventLevel::Error,
                    "The container engine cannot be reached; workspaces cannot change until it is back."
                        .to_string(),
                )
            };
            state
                .events
                .record(NewEvent::info(EventType::NodeDocker, message).level(level))
                .await;
        }
        if status.available {
            if let Err(e) = firewall::ensure_metadata_blocked().await {
                tracing::error!(error = %e, "metadata address not blocked");
            }
            state.workspaces.reconcile().await;
        }
        first = false;
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
    }
}

/// Serves until SIGTERM/SIGINT. Containers are left as they are.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let listen = config.listen;
    let tls = config.tls.clone();
    let state = build_state(config).await?;
    // Look at Docker once before answering anything, so `GET /node` never says
    // "unavailable" for an engine that is there (and the monitor's first look does
    // not record a bogus "came back" event). Bounded: a hung engine delays start-up
    // by at most this, then the monitor takes over.
    if let Ok(Ok(version)) =
        tokio::time::timeout(Duration::from_secs(3), state.engine.version()).await
    {
        *state.docker.write().await = DockerStatus {
            available: true,
            version: Some(version),
        };
    }
    let app = app::router(state.clone());
    let handle = axum_server::Handle::new();

    let std_listener =
        std::net::TcpListener::bind(listen).map_err(|e| StartError::Listen(listen, e))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| StartError::Listen(listen, e))?;

    state
        .events
        .record(NewEvent::info(
            EventType::NodeStarted,
            format!("sam-agent {VERSION} started on {listen}."),
        ))
        .await;
    tokio::spawn(monitor(state.clone()));

    let shutdown = state.shutdown.clone();
    let signal_handle = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
        signal_handle.graceful_shutdown(Some(Duration::from_secs(5)));
    });

    tracing::info!(%listen, tls = tls.is_some(), "sam-agent {VERSION} listening");
    // TCP_NODELAY (NoDelayAcceptor): a session answers a prompt with several
    // frames at once; with Nagle, each after the first waited for the client's
    // delayed ACK (~40 ms).
    let service = app.into_make_service();
    match tls {
        Some((cert, key)) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(StartError::Tls)?;
            axum_server::from_tcp_rustls(std_listener, rustls)
                .map_err(|e| StartError::Listen(listen, e))?
                .map(|tls| tls.acceptor(NoDelayAcceptor::new()))
                .handle(handle)
                .serve(service)
                .await
                .map_err(|e| StartError::Listen(listen, e))
        }
        None => axum_server::from_tcp(std_listener)
            .map_err(|e| StartError::Listen(listen, e))?
            .acceptor(NoDelayAcceptor::new())
            .handle(handle)
            .serve(service)
            .await
            .map_err(|e| StartError::Listen(listen, e)),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
