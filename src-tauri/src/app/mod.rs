//! The Tauri app: one window over the same library as `sam`. Built only with the
//! `app` feature (WebKitGTK and a built UI needed), so the library and the CLI
//! build and test without them.
//!
//! Invariant: commands are thin (look up state, call `Sam`, convert); streams use
//! `ipc::Channel` (terminal bytes raw, never JSON or base64 per chunk).

mod commands;
mod tray;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tauri::Manager;
use tauri::ipc::Channel;
use tauri_plugin_notification::NotificationExt;

use crate::Sam;
use crate::api::Quiet;
use crate::api::forward::Forward;
use crate::api::output_window::OutputCredit;
use crate::api::sessions::SessionSender;
use crate::api::terminals::TerminalInput;
use crate::nodes::stream::NodeSignal;

/// What the window's commands share.
pub struct AppState {
    pub sam: Sam,
    /// Attached terminals by `workspace/terminal`: where keystrokes go, and
    /// where the view's acknowledgements of output go.
    terminals: Mutex<HashMap<String, AttachedTerminal>>,
    /// Attached sessions by id: where client frames go.
    sessions: Mutex<HashMap<String, SessionSender>>,
    /// Local forwards by `workspace:port`, kept while the app runs.
    forwards: Mutex<HashMap<String, Forward>>,
    /// The UI's signal channels (health changes, events).
    listeners: Mutex<Vec<Channel<UiSignal>>>,
}

/// A terminal attached in the window.
struct AttachedTerminal {
    input: TerminalInput,
    output: Arc<OutputCredit>,
}

impl AttachedTerminal {
    /// Ends this attachment: its relay, and the connection (the terminal lives on).
    async fn close(self) {
        self.output.close();
        self.input.close().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use crate::api::UiSignal;

pub fn run() {
    let sam = match tauri::async_runtime::block_on(Sam::open()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", e.message);
            if let Some(h) = &e.hint {
                eprintln!("hint: {h}");
            }
            std::process::exit(1);
        }
    };
    let state = AppState {
        sam: sam.clone(),
        terminals: Mutex::new(HashMap::new()),
        sessions: Mutex::new(HashMap::new()),
        forwards: Mutex::new(HashMap::new()),
        listeners: Mutex::new(Vec::new()),
    };
    let log_dir = sam.dir().join("logs");
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.show();
                let _ = w.set_focus();
            }
        }))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(
            tauri_plugin_log::Builder::new()
                .level(log::LevelFilter::Info)
                .target(tauri_plugin_log::Target::new(
                    tauri_plugin_log::TargetKind::Folder {
                        path: log_dir,
                        file_name: Some("app".into()),
                    },
                ))
                .build(),
        )
        .manage(state)
        .invoke_handler(commands::handler())
        // Closing the window hides it: work in flight (a Hetzner server being
        // made, a forward, the node streams and their notifications) carries on,
        // and the tray's "Open SAM" — or starting SAM again — shows it as it was.
        // "Quit SAM" in the tray ends the app.
        .on_window_event(|window, event| {
            if let tauri::WindowEvent::CloseRequested { api, .. } = event
                && window.label() == "main"
            {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .setup(move |app| {
            tray::install(app.handle())?;
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move { background(handle).await });
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("error: the window could not run: {e}");
        std::process::exit(1);
    }
}

/// This computer as a node on first run; every node's stream followed; health
/// changes and waiting agents turned into notifications, tray updates and UI
/// signals.
async fn background(app: tauri::AppHandle) {
    let state = app.state::<AppState>();
    let sam = state.sam.clone();
    let first_run = sam
        .store()
        .nodes()
        .await
        .map(|n| n.is_empty())
        .unwrap_or(false);
    let auto_local = sam.show_settings().await.is_ok_and(|s| s.auto_local);
    if first_run
        && auto_local
        && let Err(e) = sam.add_local("this-computer", &Quiet).await
    {
        tracing::warn!(error = %e.message, "this computer was not added");
    }
    let mut signals = sam.subscribe();
    if let Err(e) = sam.watch_nodes().await {
        tracing::warn!(error = %e.message, "node streams not started");
    }
    tray::refresh(&app).await;
    loop {
        let signal = match signals.recv().await {
            Ok(s) => s,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if let Some(notice) = crate::notifications::decide(&signal) {
            let _ = app
                .notification()
                .builder()
                .title(&notice.title)
                .body(&notice.body)
                .show();
        }
        let ui = match &signal {
            NodeSignal::Health(change) => {
                tray::refresh(&app).await;
                UiSignal::Health {
                    change: change.clone(),
                }
            }
            NodeSignal::Event(event)
                if event.kind == sam_protocol::EventType::SessionPermissionRequested =>
            {
                UiSignal::Permission {
                    node_id: event.node_id.clone(),
                    event: event.clone(),
                }
            }
            NodeSignal::Event(event) => UiSignal::Event {
                node_id: event.node_id.clone(),
                event: event.clone(),
            },
        };
        lock(&state.listeners).retain(|ch| ch.send(ui.clone()).is_ok());
    }
}
