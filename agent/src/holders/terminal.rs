//! The holder process of one terminal (`sam-agent hold-terminal`): starts the
//! Docker exec, keeps the scrollback ring, and serves its unix socket to the agent
//! (any number of viewer connections and control connections).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::Framed;

use super::wire::{Codec, Msg, VERSION};
use super::{Info, Meta, TerminalSpec, meta_path, socket_path};
use crate::docker::{ContainerState, Engine};
use crate::terminals::{Launch, Output, Terminal};

/// Replay goes out in messages of at most this size.
const REPLAY_CHUNK: usize = 256 * 1024;

/// Entry point of `sam-agent hold-terminal --data-dir DIR` (spec on stdin).
pub async fn main(data_dir: PathBuf) -> ExitCode {
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    if stdin.read_line(&mut line).await.is_err() {
        println!("error: no terminal spec on stdin");
        return ExitCode::FAILURE;
    }
    let spec: TerminalSpec = match serde_json::from_str(&line) {
        Ok(s) => s,
        Err(e) => {
            println!("error: the terminal spec is not valid: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&data_dir, spec).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Before "ready" this line is what the agent reports.
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(data_dir: &Path, spec: TerminalSpec) -> Result<(), String> {
    let engine = Engine::new();
    let launch = Launch {
        container: spec.container.clone(),
        user: spec.user.clone(),
        workdir: spec.workdir.clone(),
        argv: spec.argv.clone(),
        cols: spec.cols,
        rows: spec.rows,
    };
    let terminal = Terminal::start(
        engine.clone(),
        spec.id.clone(),
        spec.workspace.clone(),
        launch,
    )
    .await
    .map_err(|e| format!("cannot start the terminal: {e}"))?;
    let sock = socket_path(data_dir, &spec.id);
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).map_err(|e| format!("cannot serve {}: {e}", sock.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600));
    }
    let meta = Meta {
        version: VERSION,
        kind: "terminal".into(),
        node: spec.node.clone(),
        workspace: spec.workspace.clone(),
        id: spec.id.clone(),
        container: spec.container.clone(),
        created_at: terminal.created_at,
        pid: std::process::id(),
    };
    let meta_file = meta_path(data_dir, &spec.id);
    let tmp = meta_file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&meta).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &meta_file))
        .map_err(|e| format!("cannot write {}: {e}", meta_file.display()))?;
    println!("ready");

    let released = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let (t, r, w) = (terminal.clone(), released.clone(), wake.clone());
                    tokio::spawn(async move { serve(t, stream, r, w).await });
                }
            }
            _ = tick.tick() => {}
            _ = wake.notified() => {}
        }
        if terminal.info().exited {
            let gone = released.load(Ordering::SeqCst)
                || !matches!(
                    engine.container_state(&spec.container).await,
                    Ok(ContainerState::Running)
                );
            if gone {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&meta_file);
    Ok(())
}

fn info(terminal: &Terminal) -> Msg {
    let i = terminal.info();
    let body = Info {
        cols: i.cols,
        rows: i.rows,
        exit_code: i.exit_code,
    };
    Msg::Info(serde_json::to_vec(&body).unwrap_or_default().into())
}

/// One connection from the agent.
async fn serve(
    terminal: Arc<Terminal>,
    stream: UnixStream,
    released: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let mut conn = Framed::new(stream, Codec);
    let viewer = match conn.next().await {
        Some(Ok(Msg::Hello { version, viewer })) if version == VERSION => viewer,
        Some(Ok(Msg::Hello { version, .. })) => {
            let _ = conn
                .send(Msg::Error(format!(
                    "holder speaks version {VERSION}, not {version}"
                )))
                .await;
            return;
        }
        _ => return,
    };
    let (replay, exited, mut live) = terminal.attach();
    if viewer {
        for chunk in replay.chunks(REPLAY_CHUNK) {
            if conn
                .feed(Msg::Output(bytes::Bytes::copy_from_slice(chunk)))
                .await
                .is_err()
            {
                return;
            }
        }
        if conn.send(Msg::Ready).await.is_err() {
            return;
        }
    } else if conn.send(info(&terminal)).await.is_err() {
        return;
    }
    if let Some(code) = exited {
        let _ = conn.send(Msg::Exit(code)).await;
        if viewer {
            return;
        }
    }
    loop {
        tokio::select! {
            out = live.recv() => match out {
                Ok(Output::Bytes(b)) => {
                    if viewer && conn.send(Msg::Output(b)).await.is_err() { return; }
                }
                Ok(Output::Exit(code)) => {
                    wake.notify_one();
                    if conn.send(Msg::Exit(code)).await.is_err() || viewer { return; }
                }
                Err(RecvError::Lagged(_)) => {
                    if viewer {
                        let _ = conn.send(Msg::TooSlow).await;
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = conn.next() => match incoming {
                Some(Ok(Msg::Input(b))) => { let _ = terminal.write(&b).await; }
                Some(Ok(Msg::Resize { cols, rows })) => {
                    if let Err(e) = terminal.resize(cols, rows).await {
                        let _ = conn.send(Msg::Error(format!("resize failed: {e}"))).await;
                    }
                }
                Some(Ok(Msg::Kill)) => terminal.kill().await,
                Some(Ok(Msg::Release)) => {
                    released.store(true, Ordering::SeqCst);
                    wake.notify_one();
                }
                Some(Ok(Msg::InfoRequest)) => {
                    if conn.send(info(&terminal)).await.is_err() { return; }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}
