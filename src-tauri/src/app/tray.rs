//! The tray icon: "Open SAM", one line per node with its health, "Quit". On Linux
//! a tray icon gets no clicks (only its menu works) and stock GNOME shows none, so
//! nothing is reachable only from here.

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

use super::AppState;

const TRAY_ID: &str = "sam";

fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

fn menu(app: &AppHandle, nodes: &[crate::nodes::NodeRecord]) -> tauri::Result<Menu<tauri::Wry>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(
        app,
        "open",
        "Open SAM",
        true,
        None::<&str>,
    )?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    if nodes.is_empty() {
        menu.append(&MenuItem::with_id(
            app,
            "none",
            "No nodes yet",
            false,
            None::<&str>,
        )?)?;
    }
    for n in nodes {
        let health = match (n.status, n.health) {
            (crate::nodes::NodeStatus::Stopped, _) => "stopped".to_string(),
            (_, Some(h)) => serde_json::to_value(h)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            (_, None) => "unknown".into(),
        };
        let item = MenuItem::with_id(
            app,
            format!("node:{}", n.id),
            format!("{} — {health}", n.name),
            true,
            None::<&str>,
        )?;
        menu.append(&item)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        "quit",
        "Quit SAM",
        true,
        None::<&str>,
    )?)?;
    Ok(menu)
}

pub fn install(app: &AppHandle) -> tauri::Result<()> {
    let menu = menu(app, &[])?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .menu(&menu)
        .tooltip("SAM")
        .on_menu_event(|app, event| match event.id.as_ref() {
            "quit" => app.exit(0),
            // "Open SAM", or a node: bring the window up.
            _ => show_window(app),
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}

/// Rebuilds the menu from the nodes as stored (after a health change).
pub async fn refresh(app: &AppHandle) {
    let state = app.state::<AppState>();
    let nodes = state.sam.store().nodes().await.unwrap_or_default();
    if let (Some(tray), Ok(menu)) = (app.tray_by_id(TRAY_ID), menu(app, &nodes)) {
        let _ = tray.set_menu(Some(menu));
    }
}
