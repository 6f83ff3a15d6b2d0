//! Tauri commands (docs/app-commands.md): each looks up state, calls `Sam`, and
//! converts. Nothing here decides what the library should.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tauri::ipc::{Channel, InvokeBody, InvokeResponseBody, Request};
use tauri::{State, Wry};
use tauri_plugin_opener::OpenerExt;

use super::{AppState, AttachedTerminal, UiSignal, lock};
use crate::api::agents::AgentReadiness;
use crate::api::output_window::{OutputCredit, relay};
use crate::api::sessions::{AttachOptions, NewSession};
use crate::api::terminals::{NewTerminal, TerminalOutput};
use crate::api::workspaces::{NewWorkspace, WorkspaceView};
use crate::api::{Deleted, Progress};
use crate::error::{Error, Result, code};
use crate::nodes::Node;
use crate::providers::hetzner::{AddHetzner, HetznerOptions};
use crate::providers::ssh::{self, AddSsh};
use sam_protocol::{
    AgentSession, Event, FileEntry, NodeStopPlan, Port, SessionClientFrame, SessionFrame, Terminal,
    TerminalServerFrame,
};

pub fn handler() -> impl Fn(tauri::ipc::Invoke<Wry>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        list_nodes,
        add_local_node,
        add_ssh_node,
        hetzner_options,
        add_hetzner_node,
        node_stop_plan,
        stop_node,
        start_node,
        upgrade_node,
        remove_node,
        node_events,
        list_workspaces,
        create_workspace,
        rename_workspace,
        stop_workspace,
        restart_workspace,
        remove_workspace,
        workspace_events,
        list_terminals,
        open_terminal,
        attach_terminal,
        terminal_ack,
        terminal_input,
        resize_terminal,
        detach_terminal,
        kill_terminal,
        list_sessions,
        list_agents,
        set_agent_key,
        clear_agent_key,
        open_login_terminal,
        new_session,
        attach_session,
        send_session_frame,
        detach_session,
        stop_session,
        list_folder,
        read_text_file,
        write_text_file,
        list_ports,
        open_port,
        get_settings,
        set_setting,
        set_hetzner_token,
        clear_hetzner_token,
        subscribe,
    ]
}

/// Long work's steps go to the UI on a channel.
struct ChannelProgress(Channel<String>);

impl Progress for ChannelProgress {
    fn step(&self, message: &str) {
        let _ = self.0.send(message.to_string());
    }
}

// ---- nodes ----

#[tauri::command]
async fn list_nodes(state: State<'_, AppState>) -> Result<Vec<Node>> {
    state.sam.list_nodes().await
}

#[tauri::command]
async fn add_local_node(
    state: State<'_, AppState>,
    name: String,
    progress: Channel<String>,
) -> Result<Node> {
    let node = state
        .sam
        .add_local(&name, &ChannelProgress(progress))
        .await?;
    state.sam.watch_node(&node.id);
    Ok(node)
}

/// Adds a server over SSH. Without `accept_host_key` (the fingerprint the
/// person trusts), an unseen host key comes back as `host_key_unknown` with the
/// fingerprint as the hint, for the UI to ask about; nothing is changed then.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
async fn add_ssh_node(
    state: State<'_, AppState>,
    target: String,
    port: Option<u16>,
    identity: Option<String>,
    name: String,
    accept_host_key: Option<String>,
    progress: Channel<String>,
) -> Result<Node> {
    let (user, host) = ssh::parse_destination(&target)?;
    let spec = AddSsh {
        user,
        host,
        port: port.unwrap_or(22),
        identity: identity
            .filter(|i| !i.trim().is_empty())
            .map(|i| PathBuf::from(i.trim())),
        accept_host_key,
        agent_port: None,
    };
    let seen: Arc<Mutex<Option<(String, String)>>> = Arc::default();
    let confirm: Box<ssh::ConfirmHostKey> = {
        let seen = seen.clone();
        Box::new(move |where_: &str, fingerprint: &str| {
            *lock(&seen) = Some((where_.to_string(), fingerprint.to_string()));
            false
        })
    };
    let result = state
        .sam
        .add_ssh(&name, spec, Some(confirm), &ChannelProgress(progress))
        .await;
    let node = match (result, lock(&seen).take()) {
        (Ok(node), _) => node,
        (Err(e), Some((where_, fingerprint))) if e.is(code::CANCELLED) => {
            return Err(Error::new(
                code::HOST_KEY_UNKNOWN,
                format!("The SSH server {where_} presents a host key SAM has not seen before."),
            )
            .hint(fingerprint));
        }
        (Err(e), _) => return Err(e),
    };
    state.sam.watch_node(&node.id);
    Ok(node)
}

#[tauri::command]
async fn hetzner_options(state: State<'_, AppState>) -> Result<HetznerOptions> {
    state.sam.hetzner_options().await
}

#[tauri::command]
async fn add_hetzner_node(
    state: State<'_, AppState>,
    name: String,
    server_type: String,
    location: String,
    image: String,
    progress: Channel<String>,
) -> Result<Node> {
    let spec = AddHetzner {
        server_type,
        location,
        image,
        agent_port: None,
    };
    let node = state
        .sam
        .add_hetzner(&name, spec, &ChannelProgress(progress))
        .await?;
    state.sam.watch_node(&node.id);
    Ok(node)
}

#[tauri::command]
async fn node_stop_plan(state: State<'_, AppState>, node: String) -> Result<NodeStopPlan> {
    state.sam.node_stop_plan(&node).await
}

#[tauri::command]
async fn stop_node(
    state: State<'_, AppState>,
    node: String,
    progress: Channel<String>,
) -> Result<Node> {
    state.sam.stop_node(&node, &ChannelProgress(progress)).await
}

#[tauri::command]
async fn start_node(
    state: State<'_, AppState>,
    node: String,
    progress: Channel<String>,
) -> Result<Node> {
    state
        .sam
        .start_node(&node, &ChannelProgress(progress))
        .await
}

#[tauri::command]
async fn upgrade_node(
    state: State<'_, AppState>,
    node: String,
    force: Option<bool>,
    progress: Channel<String>,
) -> Result<Node> {
    state
        .sam
        .upgrade_node(&node, force.unwrap_or(false), &ChannelProgress(progress))
        .await
}

#[tauri::command]
async fn remove_node(
    state: State<'_, AppState>,
    node: String,
    progress: Channel<String>,
) -> Result<Deleted> {
    let removed = state
        .sam
        .remove_node(&node, &ChannelProgress(progress))
        .await?;
    Ok(Deleted::new(removed.id))
}

#[tauri::command]
async fn node_events(
    state: State<'_, AppState>,
    node: String,
    limit: Option<u32>,
) -> Result<Vec<Event>> {
    let record = state.sam.node_record(&node).await?;
    let limit = limit.unwrap_or(100).clamp(1, 500);
    let client = state.sam.client(&record).await?;
    let mut events = client
        .events(None, limit, None)
        .await
        .map(|p| p.events)
        .unwrap_or_default();
    // The desktop's own events about the node (health, provisioning).
    events.extend(
        state
            .sam
            .store()
            .events(Some(&record.id), None, limit as i64)
            .await?
            .into_iter()
            .filter(|e| e.id.starts_with("desktop-")),
    );
    events.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    events.truncate(limit as usize);
    Ok(events)
}

// ---- workspaces ----

#[tauri::command]
async fn list_workspaces(
    state: State<'_, AppState>,
    node: Option<String>,
) -> Result<Vec<WorkspaceView>> {
    state.sam.list_workspaces(node.as_deref()).await
}

#[tauri::command]
#[allow(clippy::too_many_arguments)]
async fn create_workspace(
    state: State<'_, AppState>,
    node: String,
    name: String,
    image: Option<String>,
    repository: Option<String>,
    branch: Option<String>,
    progress: Channel<String>,
) -> Result<WorkspaceView> {
    let empty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let new = NewWorkspace {
        name,
        image: empty(image),
        repository: empty(repository),
        branch: empty(branch),
        ..Default::default()
    };
    state
        .sam
        .create_workspace(&node, new, true, &ChannelProgress(progress))
        .await
}

#[tauri::command]
async fn rename_workspace(
    state: State<'_, AppState>,
    workspace: String,
    name: String,
) -> Result<WorkspaceView> {
    state.sam.rename_workspace(&workspace, &name).await
}

#[tauri::command]
async fn stop_workspace(state: State<'_, AppState>, workspace: String) -> Result<WorkspaceView> {
    state
        .sam
        .stop_workspace(&workspace, true, &crate::api::Quiet)
        .await
}

#[tauri::command]
async fn restart_workspace(state: State<'_, AppState>, workspace: String) -> Result<WorkspaceView> {
    state
        .sam
        .restart_workspace(&workspace, true, &crate::api::Quiet)
        .await
}

#[tauri::command]
async fn remove_workspace(state: State<'_, AppState>, workspace: String) -> Result<Deleted> {
    let w = state
        .sam
        .remove_workspace(&workspace, &crate::api::Quiet)
        .await?;
    Ok(Deleted::new(w.workspace.id))
}

#[tauri::command]
async fn workspace_events(
    state: State<'_, AppState>,
    workspace: String,
    limit: Option<u32>,
) -> Result<Vec<Event>> {
    let l = state.sam.locate(&workspace).await?;
    let page = l
        .client
        .events(
            Some(&l.workspace.id),
            limit.unwrap_or(100).clamp(1, 500),
            None,
        )
        .await?;
    Ok(page.events)
}

// ---- terminals ----

fn terminal_key(workspace: &str, terminal: &str) -> String {
    format!("{workspace}/{terminal}")
}

#[tauri::command]
async fn list_terminals(state: State<'_, AppState>, workspace: String) -> Result<Vec<Terminal>> {
    state.sam.list_terminals(&workspace).await
}

#[tauri::command]
async fn open_terminal(
    state: State<'_, AppState>,
    workspace: String,
    cols: u16,
    rows: u16,
) -> Result<Terminal> {
    state
        .sam
        .create_terminal(
            &workspace,
            NewTerminal {
                cols,
                rows,
                command: None,
            },
        )
        .await
}

/// "Log in": a terminal tab running the agent's own login command.
#[tauri::command]
async fn open_login_terminal(
    state: State<'_, AppState>,
    workspace: String,
    agent: String,
    cols: u16,
    rows: u16,
) -> Result<Terminal> {
    state
        .sam
        .open_login_terminal(&workspace, &agent, cols, rows)
        .await
}

/// Relays one terminal: output bytes raw on `output`, control frames on `events`;
/// at most a window of output unacknowledged by `terminal_ack` (see
/// `api::output_window`).
#[tauri::command]
async fn attach_terminal(
    state: State<'_, AppState>,
    workspace: String,
    terminal: String,
    output: Channel<InvokeResponseBody>,
    events: Channel<TerminalServerFrame>,
) -> Result<()> {
    let conn = state.sam.attach_terminal(&workspace, &terminal).await?;
    let (input, stream) = conn.into_parts();
    let credit = Arc::new(OutputCredit::default());
    let attached = AttachedTerminal {
        input,
        output: credit.clone(),
    };
    let key = terminal_key(&workspace, &terminal);
    if let Some(old) = lock(&state.terminals).insert(key, attached) {
        // A second attach from the window replaces the first.
        tauri::async_runtime::spawn(old.close());
    }
    tauri::async_runtime::spawn(async move {
        relay(stream, &credit, |item| {
            match item {
                TerminalOutput::Bytes(b) => output.send(InvokeResponseBody::Raw(b.into())),
                TerminalOutput::Ready => events.send(TerminalServerFrame::Ready),
                TerminalOutput::Exit(code) => events.send(TerminalServerFrame::Exit { code }),
                TerminalOutput::Error(message) => {
                    events.send(TerminalServerFrame::Error { message })
                }
            }
            .is_ok()
        })
        .await;
    });
    Ok(())
}

/// The view has taken in `bytes` more of a terminal's output (xterm.js parsed it).
/// (Async: a plain command would run on the window's main thread.)
#[tauri::command]
async fn terminal_ack(
    state: State<'_, AppState>,
    workspace: String,
    terminal: String,
    bytes: u32,
) -> Result<()> {
    if let Some(t) = lock(&state.terminals).get(&terminal_key(&workspace, &terminal)) {
        t.output.ack(bytes as usize);
    }
    Ok(())
}

/// Keystrokes: the raw request body, ids in the headers.
#[tauri::command]
async fn terminal_input(state: State<'_, AppState>, request: Request<'_>) -> Result<()> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| Error::invalid(format!("terminal_input needs a {name} header")))
    };
    let key = terminal_key(&header("workspace")?, &header("terminal")?);
    let InvokeBody::Raw(bytes) = request.body() else {
        return Err(Error::invalid(
            "terminal_input takes the keystrokes as a raw body",
        ));
    };
    let input = lock(&state.terminals).get(&key).map(|t| t.input.clone());
    match input {
        Some(i) => i.send(bytes).await,
        None => Err(
            Error::not_found("That terminal is not attached in this window.")
                .hint("Re-open its tab."),
        ),
    }
}

#[tauri::command]
async fn resize_terminal(
    state: State<'_, AppState>,
    workspace: String,
    terminal: String,
    cols: u16,
    rows: u16,
) -> Result<()> {
    let input = lock(&state.terminals)
        .get(&terminal_key(&workspace, &terminal))
        .map(|t| t.input.clone());
    match input {
        Some(i) => i.resize(cols, rows).await,
        None => Ok(()),
    }
}

#[tauri::command]
async fn detach_terminal(
    state: State<'_, AppState>,
    workspace: String,
    terminal: String,
) -> Result<()> {
    let attached = lock(&state.terminals).remove(&terminal_key(&workspace, &terminal));
    if let Some(t) = attached {
        t.close().await;
    }
    Ok(())
}

#[tauri::command]
async fn kill_terminal(
    state: State<'_, AppState>,
    workspace: String,
    terminal: String,
) -> Result<()> {
    let attached = lock(&state.terminals).remove(&terminal_key(&workspace, &terminal));
    if let Some(t) = attached {
        t.output.close();
    }
    state.sam.kill_terminal(&workspace, &terminal).await
}

// ---- sessions ----

#[tauri::command]
async fn list_sessions(state: State<'_, AppState>, workspace: String) -> Result<Vec<AgentSession>> {
    state.sam.list_sessions(&workspace).await
}

#[tauri::command]
async fn new_session(
    state: State<'_, AppState>,
    workspace: String,
    agent: Option<String>,
    label: Option<String>,
) -> Result<AgentSession> {
    let new = NewSession {
        agent,
        label,
        ..Default::default()
    };
    state
        .sam
        .new_session(&workspace, new, false, &crate::api::Quiet)
        .await
}

#[tauri::command]
async fn attach_session(
    state: State<'_, AppState>,
    workspace: String,
    session: String,
    takeover: bool,
    frames: Channel<SessionFrame>,
) -> Result<()> {
    let _ = workspace;
    let mut conn = state
        .sam
        .attach_session(
            &session,
            AttachOptions {
                takeover,
                watch: false,
                since: None,
            },
        )
        .await?;
    if let Some(old) = lock(&state.sessions).insert(session.clone(), conn.sender()) {
        old.close();
    }
    tauri::async_runtime::spawn(async move {
        while let Ok(Some(frame)) = conn.recv().await {
            if frames.send(frame).is_err() {
                break;
            }
        }
    });
    Ok(())
}

#[tauri::command]
async fn send_session_frame(
    state: State<'_, AppState>,
    session: String,
    frame: SessionClientFrame,
) -> Result<()> {
    let sender = lock(&state.sessions).get(&session).cloned();
    match sender {
        Some(s) => s.send(frame),
        None => Err(
            Error::not_found("That session is not attached in this window.").hint("Open it again."),
        ),
    }
}

#[tauri::command]
async fn detach_session(state: State<'_, AppState>, session: String) -> Result<()> {
    if let Some(s) = lock(&state.sessions).remove(&session) {
        s.close();
    }
    Ok(())
}

#[tauri::command]
async fn stop_session(
    state: State<'_, AppState>,
    workspace: String,
    session: String,
) -> Result<AgentSession> {
    let _ = workspace;
    state.sam.stop_session(&session).await
}

// ---- files and ports ----

#[tauri::command]
async fn list_folder(
    state: State<'_, AppState>,
    workspace: String,
    path: String,
) -> Result<Vec<FileEntry>> {
    state.sam.list_folder(&workspace, &path).await
}

#[tauri::command]
async fn read_text_file(
    state: State<'_, AppState>,
    workspace: String,
    path: String,
) -> Result<String> {
    let bytes = state.sam.read_file(&workspace, &path).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::invalid(format!("{path} is not a text file.")))
}

#[tauri::command]
async fn write_text_file(
    state: State<'_, AppState>,
    workspace: String,
    path: String,
    content: String,
) -> Result<()> {
    state
        .sam
        .write_file(&workspace, &path, content.into())
        .await
}

#[tauri::command]
async fn list_ports(state: State<'_, AppState>, workspace: String) -> Result<Vec<Port>> {
    state.sam.ports(&workspace).await
}

/// Forwards the port to 127.0.0.1 (once per workspace and port) and opens it.
#[tauri::command]
async fn open_port(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    workspace: String,
    port: u16,
) -> Result<String> {
    let key = format!("{workspace}:{port}");
    let existing = lock(&state.forwards).get(&key).map(|f| f.local_addr());
    let local = match existing {
        Some(addr) => addr,
        None => {
            let forward = state.sam.forward(&workspace, port, 0).await?;
            let addr = forward.local_addr();
            lock(&state.forwards).insert(key, forward);
            addr
        }
    };
    let url = format!("http://{local}/");
    app.opener().open_url(&url, None::<&str>).map_err(|e| {
        Error::internal(format!("The browser could not be opened: {e}"))
            .hint(format!("Open {url} yourself."))
    })?;
    Ok(url)
}

// ---- settings and signals ----

#[tauri::command]
async fn get_settings(state: State<'_, AppState>) -> Result<crate::api::settings::Settings> {
    state.sam.show_settings().await
}

#[tauri::command]
async fn set_setting(state: State<'_, AppState>, key: String, value: String) -> Result<()> {
    state.sam.set_setting(&key, &value).await
}

/// The built-in agents of a workspace, for the new-session picker.
#[tauri::command]
async fn list_agents(state: State<'_, AppState>, workspace: String) -> Result<Vec<AgentReadiness>> {
    state.sam.agents(&workspace).await
}

/// Stored in the keychain; never sent back.
#[tauri::command]
async fn set_agent_key(state: State<'_, AppState>, agent: String, key: String) -> Result<()> {
    state.sam.set_agent_key(&agent, &key).await
}

#[tauri::command]
async fn clear_agent_key(state: State<'_, AppState>, agent: String) -> Result<()> {
    state.sam.clear_agent_key(&agent).await
}

#[tauri::command]
async fn set_hetzner_token(state: State<'_, AppState>, token: String) -> Result<()> {
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Error::invalid("The token is empty or has spaces."));
    }
    state
        .sam
        .secrets()
        .set(crate::api::settings::HETZNER_TOKEN, token)
        .await
}

#[tauri::command]
async fn clear_hetzner_token(state: State<'_, AppState>) -> Result<()> {
    state
        .sam
        .secrets()
        .delete(crate::api::settings::HETZNER_TOKEN)
        .await
}

#[tauri::command]
async fn subscribe(state: State<'_, AppState>, signals: Channel<UiSignal>) -> Result<()> {
    lock(&state.listeners).push(signals);
    Ok(())
}
