//! `sam term …`, `sam exec …` and `sam forward …` (CLI.md "Terminals and
//! commands", "Ports and events"; docs/cli.md has the decisions).
//!
//! The library hands over raw bytes; this module puts them on the local terminal:
//! `sam term` in raw mode on a tty (restored on every way out, a panic included),
//! detached with Ctrl-] d; `sam exec` with stdout and stderr kept apart.

use std::io::{IsTerminal, Read};

use clap::Args;
use sam_desktop::api::exec::{ExecOutput, ExecRequest};
use sam_desktop::api::forward::ForwardEvent;
use sam_desktop::api::terminals::{NewTerminal, TerminalConnection, TerminalOutput};
use sam_desktop::error::code;
use sam_desktop::{Error, Sam};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::Outcome;
use crate::output::{self, Out, ago};

#[derive(Args)]
pub struct TermArgs {
    /// The workspace (NODE/NAME, id, or a unique NAME).
    pub ws: String,
    /// Attach to this terminal instead of starting a new one.
    #[arg(long, value_name = "TID", conflicts_with_all = ["list", "kill"])]
    pub attach: Option<String>,
    /// List the workspace's terminals.
    #[arg(long, conflicts_with = "kill")]
    pub list: bool,
    /// Kill a terminal's process (an exited terminal is removed from the list).
    #[arg(long, value_name = "TID")]
    pub kill: Option<String>,
    /// What to run instead of the login shell (after `--`).
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["attach", "list", "kill"])]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct ExecArgs {
    /// The workspace (NODE/NAME, id, or a unique NAME).
    pub ws: String,
    /// Environment for the command: K=V, or K alone to pass sam's own value of K
    /// (so it is not in the shell's history or `ps`).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// The working directory: relative to the project folder, or absolute.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// The command and its arguments (after `--`; no shell: use `sh -c '…'`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct ForwardArgs {
    /// The workspace (NODE/NAME, id, or a unique NAME).
    pub ws: String,
    /// The port inside the workspace.
    pub port: u16,
    /// The port on 127.0.0.1 (0 or absent: a free one, printed).
    pub local_port: Option<u16>,
}

/// A process status as an exit status byte.
fn status_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

/// Reads stdin on a thread of its own (a blocking read must not hold up the
/// runtime, nor its shutdown); chunks arrive as they are read, `None` at its end.
fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    let spawned = std::thread::Builder::new()
        .name("sam-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot read stdin");
    }
    rx
}

/// Writes to stdout or stderr; once a write fails (a closed pipe), further output
/// is dropped rather than ending the command early.
struct Sink<W> {
    w: W,
    broken: bool,
}

impl<W: tokio::io::AsyncWrite + Unpin> Sink<W> {
    fn new(w: W) -> Self {
        Sink { w, broken: false }
    }

    async fn put(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        if self.w.write_all(bytes).await.is_err() || self.w.flush().await.is_err() {
            self.broken = true;
        }
    }
}

// ---- sam term ----

pub async fn term(sam: &Sam, out: &Out, a: TermArgs) -> Result<Outcome, Error> {
    if a.list {
        let list = sam.list_terminals(&a.ws).await?;
        out.list(&list, &["ID", "SIZE", "STATUS", "CREATED"], |t| {
            vec![
                t.id.clone(),
                format!("{}x{}", t.cols, t.rows),
                match (t.exited, t.exit_code) {
                    (false, _) => "running".into(),
                    (true, Some(c)) => format!("exited ({c})"),
                    (true, None) => "exited".into(),
                },
                ago(Some(t.created_at)),
            ]
        });
        return Ok(Outcome::Done);
    }
    if let Some(tid) = &a.kill {
        return kill(sam, out, &a.ws, tid).await;
    }
    let interactive = cfg!(unix) && std::io::stdin().is_terminal();
    let (cols, rows) = window_size().unwrap_or((80, 24));
    let (tid, fresh) = match a.attach {
        Some(tid) => (tid, false),
        None => {
            let new = NewTerminal {
                cols,
                rows,
                command: (!a.command.is_empty()).then_some(a.command),
            };
            (sam.create_terminal(&a.ws, new).await?.id, true)
        }
    };
    let conn = match sam.attach_terminal(&a.ws, &tid).await {
        Ok(c) => c,
        Err(e) => {
            // A terminal nobody can reach is not left behind.
            if fresh {
                let _ = sam.kill_terminal(&a.ws, &tid).await;
            }
            return Err(e);
        }
    };
    if interactive {
        interactive_term(conn, &a.ws).await
    } else {
        piped_term(conn, &a.ws).await
    }
}

async fn kill(sam: &Sam, out: &Out, ws: &str, tid: &str) -> Result<Outcome, Error> {
    let list = sam.list_terminals(ws).await?;
    let t = list.iter().find(|t| t.id == tid).ok_or_else(|| {
        Error::new(
            "terminal_not_found",
            format!("There is no terminal {tid:?} in workspace {ws}."),
        )
        .hint(format!("`sam term {ws} --list` lists its terminals."))
    })?;
    if t.exited {
        eprintln!("Removing terminal {tid} in {ws} (its process has exited) from the list.");
    } else {
        eprintln!(
            "Killing terminal {tid} in {ws} (started {}) ends its process.",
            ago(Some(t.created_at))
        );
    }
    out.confirm("Killing the terminal")?;
    sam.kill_terminal(ws, tid).await?;
    out.one(&json!({"id": tid, "deleted": true}), || {
        format!("Killed terminal {tid}.")
    });
    Ok(Outcome::Done)
}

/// How an interactive session ended.
enum Ended {
    Exit(i32),
    Detached(u8),
    Lost(Option<String>),
}

fn lost(ws: &str, tid: &str, message: Option<String>) -> Error {
    Error::new(
        code::UNREACHABLE,
        message.unwrap_or_else(|| "The terminal connection ended before the terminal did.".into()),
    )
    .hint(format!(
        "The terminal may live on: `sam term {ws} --attach {tid}` re-attaches."
    ))
}

/// stdin is not a terminal: send it as it comes, print the output until the
/// terminal exits, and exit with its status. stdin's end sends nothing (a terminal
/// has no end of input; a script ends with `exit`).
async fn piped_term(conn: TerminalConnection, ws: &str) -> Result<Outcome, Error> {
    let tid = conn.terminal_id.clone();
    let (input, mut output) = conn.into_parts();
    let mut stdin = stdin_chunks();
    let mut stdin_open = true;
    let mut stdout = Sink::new(tokio::io::stdout());
    let mut last_error = None;
    loop {
        tokio::select! {
            item = output.recv() => match item {
                Some(TerminalOutput::Bytes(b)) => stdout.put(&b).await,
                Some(TerminalOutput::Ready) => {}
                Some(TerminalOutput::Exit(code)) => {
                    input.close().await;
                    return Ok(Outcome::Code(status_byte(code)));
                }
                Some(TerminalOutput::Error(m)) => last_error = Some(m),
                None => return Err(lost(ws, &tid, last_error)),
            },
            chunk = stdin.recv(), if stdin_open => match chunk {
                Some(bytes) => {
                    if input.send(&bytes).await.is_err() {
                        stdin_open = false;
                    }
                }
                None => stdin_open = false,
            },
        }
    }
}

#[cfg(not(unix))]
async fn interactive_term(conn: TerminalConnection, ws: &str) -> Result<Outcome, Error> {
    // Raw mode is Unix-only for now (see docs/cli.md); a console gets line mode.
    piped_term(conn, ws).await
}

/// stdin is a terminal: raw mode, the window's size (now and on SIGWINCH), the
/// bytes both ways; Ctrl-] d detaches and the terminal lives on.
#[cfg(unix)]
async fn interactive_term(conn: TerminalConnection, ws: &str) -> Result<Outcome, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut winch = signal(SignalKind::window_change())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let tid = conn.terminal_id.clone();
    let (input, mut output) = conn.into_parts();
    eprintln!("Terminal {tid} in {ws}: Ctrl-] d detaches.");
    let raw = tty::RawMode::enter()
        .map_err(|e| Error::internal(format!("Cannot put the terminal in raw mode: {e}")))?;
    if let Some((cols, rows)) = window_size() {
        let _ = input.resize(cols, rows).await;
    }
    let mut stdin = stdin_chunks();
    let mut stdin_open = true;
    let mut keys = DetachKeys::default();
    let mut stdout = Sink::new(tokio::io::stdout());
    let mut last_error = None;
    let ended = loop {
        tokio::select! {
            item = output.recv() => match item {
                Some(TerminalOutput::Bytes(b)) => stdout.put(&b).await,
                Some(TerminalOutput::Ready) => {}
                Some(TerminalOutput::Exit(code)) => break Ended::Exit(code),
                Some(TerminalOutput::Error(m)) => last_error = Some(m),
                None => break Ended::Lost(last_error),
            },
            chunk = stdin.recv(), if stdin_open => match chunk {
                Some(bytes) => {
                    let (send, detach) = keys.feed(&bytes);
                    if !send.is_empty() {
                        let _ = input.send(&send).await;
                    }
                    if detach {
                        break Ended::Detached(0);
                    }
                }
                None => stdin_open = false,
            },
            _ = winch.recv() => {
                if let Some((cols, rows)) = window_size() {
                    let _ = input.resize(cols, rows).await;
                }
            }
            _ = terminate.recv() => break Ended::Detached(128 + 15),
            _ = hangup.recv() => break Ended::Detached(128 + 1),
        }
    };
    drop(raw);
    match ended {
        Ended::Exit(code) => Ok(Outcome::Code(status_byte(code))),
        Ended::Detached(status) => {
            input.close().await;
            // The agent answers the close at once; its end is the detach's.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                while output.recv().await.is_some() {}
            })
            .await;
            eprintln!(
                "\nDetached from terminal {tid}; it lives on. Re-attach: sam term {ws} --attach {tid}"
            );
            Ok(Outcome::Code(status))
        }
        Ended::Lost(message) => Err(lost(ws, &tid, message)),
    }
}

/// Ctrl-], the detach prefix.
const DETACH_PREFIX: u8 = 0x1d;

/// Ctrl-] then `d` detaches; Ctrl-] then Ctrl-] sends one Ctrl-]; Ctrl-] then any
/// other key sends both (the prefix waits for the next key).
#[derive(Default)]
struct DetachKeys {
    pending: bool,
}

impl DetachKeys {
    /// The bytes to send for `input`, and whether to detach (what follows the
    /// detach keys in the same read is dropped).
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut send = Vec::with_capacity(input.len() + 1);
        for &b in input {
            if self.pending {
                self.pending = false;
                match b {
                    b'd' => return (send, true),
                    DETACH_PREFIX => send.push(DETACH_PREFIX),
                    _ => send.extend_from_slice(&[DETACH_PREFIX, b]),
                }
            } else if b == DETACH_PREFIX {
                self.pending = true;
            } else {
                send.push(b);
            }
        }
        (send, false)
    }
}

/// The local terminal's size (stdout's, else stdin's, else stderr's), within the
/// contract's limits.
#[cfg(unix)]
fn window_size() -> Option<(u16, u16)> {
    use std::os::fd::AsFd;
    let try_fd = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_col > 0 && w.ws_row > 0)
            .map(|w| {
                let max = sam_protocol::TERMINAL_MAX_DIMENSION;
                (w.ws_col.min(max), w.ws_row.min(max))
            })
    };
    try_fd(std::io::stdout().as_fd())
        .or_else(|| try_fd(std::io::stdin().as_fd()))
        .or_else(|| try_fd(std::io::stderr().as_fd()))
}

#[cfg(not(unix))]
fn window_size() -> Option<(u16, u16)> {
    None
}

/// Raw mode for the local terminal, undone on drop and by a panic.
#[cfg(unix)]
mod tty {
    use std::sync::{Mutex, Once};

    use rustix::termios::{OptionalActions, Termios, tcgetattr, tcsetattr};

    /// The settings to restore, while raw mode is on.
    static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

    pub struct RawMode(());

    impl RawMode {
        pub fn enter() -> std::io::Result<RawMode> {
            let stdin = std::io::stdin();
            let saved = tcgetattr(&stdin)?;
            let mut raw = saved.clone();
            raw.make_raw();
            *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(saved);
            restore_on_panic();
            tcsetattr(&stdin, OptionalActions::Now, &raw)?;
            Ok(RawMode(()))
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            restore();
        }
    }

    fn restore() {
        let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = saved {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &t);
        }
    }

    /// A panic restores the terminal before its message is printed.
    fn restore_on_panic() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
    }
}

// ---- sam exec ----

/// `--env` values: `K=V`, or `K` alone for sam's own value of `K`.
fn exec_env(pairs: &[String]) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut env = std::collections::BTreeMap::new();
    for p in pairs {
        match p.split_once('=') {
            Some((k, v)) => {
                env.insert(k.to_string(), v.to_string());
            }
            None => {
                let v = std::env::var(p).map_err(|_| {
                    Error::invalid(format!(
                        "--env {p}: the variable {p} is not set in sam's environment."
                    ))
                    .hint("Give it as --env K=V, or export it first.")
                })?;
                env.insert(p.clone(), v);
            }
        }
    }
    Ok(env)
}

/// Exits with the command's status; when sam itself fails, says why and exits
/// 125 (as `docker exec` does).
pub async fn exec(sam: &Sam, a: ExecArgs) -> Result<Outcome, Error> {
    match run_exec(sam, a).await {
        Ok(status) => Ok(Outcome::Code(status)),
        Err(e) => {
            output::fail(&e);
            Ok(Outcome::Code(125))
        }
    }
}

async fn run_exec(sam: &Sam, a: ExecArgs) -> Result<u8, Error> {
    let req = ExecRequest {
        command: a.command,
        env: exec_env(&a.env)?,
        cwd: a.cwd,
    };
    let (input, mut output) = sam.exec(&a.ws, req).await?.into_parts();
    let feeder = tokio::spawn(async move {
        let mut stdin = stdin_chunks();
        while let Some(chunk) = stdin.recv().await {
            if input.send(&chunk).await.is_err() {
                return;
            }
        }
        let _ = input.eof().await;
    });
    let mut stdout = Sink::new(tokio::io::stdout());
    let mut stderr = Sink::new(tokio::io::stderr());
    let mut last_error = None;
    while let Some(item) = output.recv().await {
        match item {
            ExecOutput::Stdout(b) => stdout.put(&b).await,
            ExecOutput::Stderr(b) => stderr.put(&b).await,
            ExecOutput::Exit(code) => {
                feeder.abort();
                return Ok(status_byte(code));
            }
            ExecOutput::Error(m) => last_error = Some(m),
        }
    }
    feeder.abort();
    Err(Error::new(
        "exec_failed",
        last_error.unwrap_or_else(|| "The command's connection ended without its status.".into()),
    ))
}

// ---- sam forward ----

/// Prints `Forwarding 127.0.0.1:LOCAL -> WS:PORT` once it listens, then runs
/// until Ctrl-C (exit 0). Connections that cannot be tunnelled are warnings.
pub async fn forward(sam: &Sam, out: &Out, a: ForwardArgs) -> Result<Outcome, Error> {
    let mut f = sam
        .forward(&a.ws, a.port, a.local_port.unwrap_or(0))
        .await?;
    let local = f.local_addr();
    out.one(
        &json!({
            "workspace": f.workspace().id,
            "port": a.port,
            "localAddress": local.to_string(),
            "localPort": local.port(),
        }),
        || format!("Forwarding {local} -> {}:{}", a.ws, a.port),
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Done),
            event = f.next_event() => match event {
                Some(ForwardEvent::Failed { peer, error }) => {
                    let from = peer.map(|p| format!(" from {p}")).unwrap_or_default();
                    eprintln!("warning: a connection{from} was not forwarded: {}", error.message);
                    if let Some(h) = &error.hint {
                        eprintln!("hint: {h}");
                    }
                }
                Some(ForwardEvent::Opened { .. }) => {}
                None => return Ok(Outcome::Done),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DetachKeys;

    #[test]
    fn ctrl_bracket_d_detaches_and_everything_else_passes() {
        let mut k = DetachKeys::default();
        assert_eq!(k.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(k.feed(b"a\x1dd"), (b"a".to_vec(), true));
        // Split across reads.
        let mut k = DetachKeys::default();
        assert_eq!(k.feed(b"x\x1d"), (b"x".to_vec(), false));
        assert_eq!(k.feed(b"d"), (Vec::new(), true));
        // Ctrl-] twice types one; Ctrl-] then another key types both.
        let mut k = DetachKeys::default();
        assert_eq!(k.feed(b"\x1d\x1d"), (vec![0x1d], false));
        assert_eq!(k.feed(b"\x1dq"), (b"\x1dq".to_vec(), false));
        assert_eq!(k.feed(b"D"), (b"D".to_vec(), false));
    }
}
