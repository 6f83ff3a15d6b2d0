//! `sam session …`: start, list, show, stop agent sessions, read their history,
//! attach to their conversation, and send one prompt (CLI.md "Agent sessions").

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};

use clap::{Args, Subcommand};
use sam_desktop::api::sessions::{
    AttachOptions, NewSession, PermissionChoice, SessionConnection, first_choice,
    permission_choices, tool_title,
};
use sam_desktop::{Error, Sam};
use sam_protocol::{
    AgentSession, Prompt, RequestId, SessionClientFrame, SessionFrame, SessionFrameBody,
    SessionStatus,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::Outcome;
use crate::output::{Out, Steps, ago, word};

/// `prompt` exits with this when the turn ended for another reason than `end_turn`.
const EXIT_OTHER_STOP: u8 = 3;

#[derive(Subcommand)]
pub enum SessionCmd {
    /// Start an agent session in a workspace (waits for the agent's handshake).
    New(NewArgs),
    /// List a workspace's agent sessions.
    Ls { ws: String },
    /// The built-in agents of a workspace: in its image, key stored, logged in.
    Agents { ws: String },
    /// Show one session.
    Show { sid: String },
    /// Stop a session (its history stays readable).
    Stop { sid: String },
    /// Print a session's conversation so far (running or ended).
    History {
        sid: String,
        /// Only frames after this `seq`.
        #[arg(long)]
        since: Option<u64>,
    },
    /// Print the conversation (history, then live); on a terminal, type prompts.
    Attach(AttachArgs),
    /// Send one prompt, print the streamed answer, return at the turn's end.
    Prompt(PromptArgs),
}

#[derive(Args)]
pub struct NewArgs {
    /// The workspace: NODE/NAME, its id, or a NAME unique across nodes.
    pub ws: String,
    /// A configured agent of the node (claude, codex, gemini, …); the node's
    /// default without it or a command.
    #[arg(long, conflicts_with = "command")]
    pub agent: Option<String>,
    #[arg(long)]
    pub label: Option<String>,
    /// Environment for the agent process (API keys); `--env K` alone takes K's
    /// value from sam's own environment.
    #[arg(long = "env", value_name = "K[=V]")]
    pub env: Vec<String>,
    /// Any ACP agent in the image, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct AttachArgs {
    pub sid: String,
    /// Take the interactive attachment from whoever holds it.
    #[arg(long, conflicts_with = "watch")]
    pub takeover: bool,
    /// Only read along (never conflicts with the window).
    #[arg(long)]
    pub watch: bool,
    /// Replay only the frames after this `seq`.
    #[arg(long)]
    pub since: Option<u64>,
}

#[derive(Args)]
pub struct PromptArgs {
    pub sid: String,
    /// The prompt; `-` reads it from stdin.
    pub text: String,
    /// Take the interactive attachment from whoever holds it.
    #[arg(long)]
    pub takeover: bool,
    /// Answer permission requests with their first allow option.
    #[arg(long, conflicts_with = "reject")]
    pub allow: bool,
    /// Answer permission requests with their first reject option.
    #[arg(long)]
    pub reject: bool,
}

pub async fn run(sam: &Sam, out: &Out, cmd: SessionCmd) -> Result<Outcome, Error> {
    match cmd {
        SessionCmd::New(a) => {
            let env = env_values(&a.env)?;
            let new = NewSession {
                agent: a.agent,
                command: (!a.command.is_empty()).then_some(a.command),
                label: a.label,
                env,
            };
            let s = sam.new_session(&a.ws, new, true, &Steps).await?;
            out.one(&s, || human(&s));
        }
        SessionCmd::Ls { ws } => {
            let list = sam.list_sessions(&ws).await?;
            out.list(
                &list,
                &["ID", "LABEL", "AGENT", "STATUS", "ATTACHED", "CREATED"],
                |s| {
                    vec![
                        s.id.clone(),
                        s.label.clone(),
                        s.agent.clone().unwrap_or_else(|| "-".into()),
                        status_words(s),
                        attached_words(s),
                        ago(Some(s.created_at)),
                    ]
                },
            );
        }
        SessionCmd::Agents { ws } => {
            let list = sam.agents(&ws).await?;
            out.list(&list, &["AGENT", "STATE", "KEY", "LOGIN", "NEXT"], |a| {
                vec![
                    a.name.clone(),
                    word(&a.state),
                    if a.key_stored { "stored" } else { "-" }.into(),
                    if a.logged_in { "yes" } else { "-" }.into(),
                    a.summary.clone(),
                ]
            });
        }
        SessionCmd::Show { sid } => {
            let s = sam.show_session(&sid).await?;
            out.one(&s, || human(&s));
        }
        SessionCmd::Stop { sid } => {
            let s = sam.show_session(&sid).await?;
            if matches!(s.status, SessionStatus::Starting | SessionStatus::Running) {
                eprintln!(
                    "Stopping agent session {} ({}) ends its agent process{}; its history stays readable.",
                    s.label,
                    s.id,
                    if s.attached {
                        " and detaches the client attached to it"
                    } else {
                        ""
                    }
                );
                out.confirm("Stopping the session")?;
            }
            let s = sam.stop_session(&sid).await?;
            out.one(&s, || human(&s));
        }
        SessionCmd::History { sid, since } => {
            let frames = sam.session_history(&sid, since).await?;
            if out.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&frames).unwrap_or_default()
                );
            } else {
                let mut r = Render::new(false);
                for f in &frames {
                    r.frame(f);
                }
                r.finish();
            }
        }
        SessionCmd::Attach(a) => return attach(sam, out, a).await,
        SessionCmd::Prompt(a) => return prompt(sam, out, a).await,
    }
    Ok(Outcome::Done)
}

/// `--env K=V` and `--env K` (K's value from sam's own environment).
fn env_values(pairs: &[String]) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut map = std::collections::BTreeMap::new();
    for p in pairs {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let v = std::env::var(p).map_err(|_| {
                    Error::invalid(format!(
                        "--env {p}: the variable {p} is not set in sam's environment."
                    ))
                    .hint(format!("Export {p} first, or pass --env {p}=VALUE."))
                })?;
                (p.clone(), v)
            }
        };
        if k.is_empty() {
            return Err(Error::invalid(format!(
                "--env {:?} names no variable.",
                p.split('=').next().unwrap_or_default()
            )));
        }
        map.insert(k, v);
    }
    Ok(map)
}

fn status_words(s: &AgentSession) -> String {
    if s.permission_pending && s.status == SessionStatus::Running {
        return "waiting for you".into();
    }
    match s.stop_reason {
        Some(r) if !matches!(s.status, SessionStatus::Starting | SessionStatus::Running) => {
            format!("{} ({})", word(&s.status), word(&r))
        }
        _ => word(&s.status),
    }
}

fn attached_words(s: &AgentSession) -> String {
    match (s.attached, s.watchers) {
        (false, 0) => "no".into(),
        (true, 0) => "yes".into(),
        (a, w) => format!("{}, {w} watching", if a { "yes" } else { "no" }),
    }
}

fn human(s: &AgentSession) -> String {
    let mut text = format!(
        "{} ({})\n  workspace  {}\n  agent      {}\n  status     {}\n  attached   {}\n  created    {} ({})",
        s.label,
        s.id,
        s.workspace_id,
        s.agent.as_deref().unwrap_or("(command)"),
        status_words(s),
        attached_words(s),
        s.created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ago(Some(s.created_at)),
    );
    if let Some(t) = s.stopped_at {
        text.push_str(&format!(
            "\n  stopped    {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if let Some(e) = &s.error {
        text.push_str(&format!("\n  error      {e}"));
    }
    text
}

// ---- reading the terminal ----

/// Lines typed on stdin, read on a thread of their own; `None` at end of input.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx
                        .send(line.trim_end_matches(['\n', '\r']).to_string())
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// A permission request still waiting for its answer.
struct OpenRequest {
    id: RequestId,
    title: String,
    options: Value,
}

/// Open permission requests, in the order the agent asked.
#[derive(Default)]
struct Requests {
    open: Vec<OpenRequest>,
    /// The one whose question is on the screen.
    asked: Option<RequestId>,
}

impl Requests {
    /// Follows the conversation's permission frames.
    fn track(&mut self, body: &SessionFrameBody) {
        match body {
            SessionFrameBody::AgentPermission {
                request_id,
                tool_call,
                options,
            } => self.open.push(OpenRequest {
                id: request_id.clone(),
                title: tool_title(tool_call)
                    .unwrap_or_else(|| "The agent asks for permission".into()),
                options: options.clone(),
            }),
            SessionFrameBody::AgentPermissionResolved { request_id, .. } => {
                self.resolved(request_id)
            }
            SessionFrameBody::SessionStopped { .. } => {
                self.open.clear();
                self.asked = None;
            }
            _ => {}
        }
    }

    fn resolved(&mut self, id: &RequestId) {
        self.open.retain(|r| &r.id != id);
        if self.asked.as_ref() == Some(id) {
            self.asked = None;
        }
    }

    /// The next request to ask about, if none is being asked.
    fn next_question(&mut self) -> Option<&OpenRequest> {
        if self.asked.is_some() {
            return None;
        }
        let first = self.open.first()?;
        self.asked = Some(first.id.clone());
        Some(first)
    }

    fn current(&self) -> Option<&OpenRequest> {
        let id = self.asked.as_ref()?;
        self.open.iter().find(|r| &r.id == id)
    }
}

/// Puts a permission question on stderr.
fn ask(r: &OpenRequest) {
    let choices = permission_choices(&r.options);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\nThe agent asks for permission: {}", r.title);
    for (i, c) in choices.iter().enumerate() {
        let _ = writeln!(err, "  {}) {} [{}]", i + 1, c.name, c.kind);
    }
    let _ = write!(err, "Answer (1-{}, y = allow, n = reject): ", choices.len());
    let _ = err.flush();
}

/// A typed answer: a number, an option id or name, or y / n.
fn parse_answer(line: &str, options: &Value) -> Option<PermissionChoice> {
    let choices = permission_choices(options);
    let a = line.trim();
    if let Ok(n) = a.parse::<usize>() {
        return choices.get(n.checked_sub(1)?).cloned();
    }
    match a.to_lowercase().as_str() {
        "y" | "yes" => return first_choice(options, true),
        "n" | "no" => return first_choice(options, false),
        _ => {}
    }
    choices
        .into_iter()
        .find(|c| c.option_id == a || c.name.eq_ignore_ascii_case(a))
}

// ---- attach ----

async fn attach(sam: &Sam, out: &Out, a: AttachArgs) -> Result<Outcome, Error> {
    let opts = AttachOptions {
        takeover: a.takeover,
        watch: a.watch,
        since: a.since,
    };
    let mut conn = match sam.attach_session(&a.sid, opts).await {
        Ok(c) => c,
        // An ended session: its conversation is still there to print.
        Err(e) if e.is("session_not_running") => {
            let s = sam.show_session(&a.sid).await?;
            let frames = sam.session_history(&a.sid, a.since).await?;
            let mut r = Render::new(false);
            for f in &frames {
                if out.json {
                    println!("{}", serde_json::to_string(f).unwrap_or_default());
                } else {
                    r.frame(f);
                }
            }
            r.finish();
            match (&s.error, s.stop_reason) {
                (Some(e), _) => eprintln!("The session has ended: {e}"),
                (None, Some(r)) => eprintln!("The session has stopped ({}).", word(&r)),
                (None, None) => eprintln!("The session has stopped."),
            }
            return Ok(Outcome::Done);
        }
        Err(e) => return Err(e),
    };
    let typing = !a.watch && std::io::stdin().is_terminal();
    let mut lines = typing.then(stdin_lines);
    let mut render = Render::new(false);
    let mut requests = Requests::default();
    let mut replayed = false;
    let mut head = 0;
    let mut stopped = false;
    let mut taken_over = false;
    let sid = conn.session().id.clone();
    loop {
        tokio::select! {
            frame = conn.recv() => {
                let Some(frame) = frame? else { break };
                if out.json {
                    println!("{}", serde_json::to_string(&frame).unwrap_or_default());
                } else {
                    render.frame(&frame);
                }
                match &frame.body {
                    SessionFrameBody::Attached { watch, .. } => {
                        head = frame.seq;
                        replayed = head <= a.since.unwrap_or(0);
                        let how = if *watch { "Watching" } else { "Attached to" };
                        let keys = if typing { " Type a prompt and Enter; /cancel ends the turn, Ctrl-D detaches." } else { "" };
                        eprintln!("{how} session {sid}.{keys}");
                    }
                    SessionFrameBody::Detached { .. } => taken_over = true,
                    SessionFrameBody::SessionStopped { .. } => stopped = true,
                    _ => {}
                }
                requests.track(&frame.body);
                if !replayed && frame.body.is_conversation() && frame.seq >= head {
                    replayed = true;
                }
                if typing && replayed && let Some(r) = requests.next_question() {
                    render.finish();
                    ask(r);
                }
            }
            line = async { lines.as_mut()?.recv().await }, if lines.is_some() => {
                let Some(line) = line else {
                    // End of input (Ctrl-D): detach; the session lives on.
                    conn.close().await;
                    eprintln!("Detached; the session keeps running.");
                    return Ok(Outcome::Done);
                };
                if let Some(r) = requests.current() {
                    match parse_answer(&line, &r.options) {
                        Some(choice) => {
                            let id = r.id.clone();
                            conn.send(SessionClientFrame::PermissionResponse { request_id: id.clone(), option_id: choice.option_id })?;
                            requests.resolved(&id);
                            if let Some(next) = requests.next_question() { ask(next); }
                        }
                        None => ask(r),
                    }
                    continue;
                }
                match line.trim() {
                    "" => {}
                    "/cancel" => conn.send(SessionClientFrame::Cancel)?,
                    _ => conn.send(SessionClientFrame::Prompt(Prompt { text: Some(line), content: None }))?,
                }
            }
        }
    }
    render.finish();
    if taken_over {
        return Err(Error::new(
            "taken_over",
            format!("Another client took over session {sid}."),
        )
        .hint("`sam session attach SID --takeover` takes it back; --watch reads along."));
    }
    if !stopped {
        return Err(Error::new(
            "node_unreachable",
            format!("The connection to session {sid} closed."),
        ));
    }
    Ok(Outcome::Done)
}

// ---- prompt ----

async fn prompt(sam: &Sam, out: &Out, a: PromptArgs) -> Result<Outcome, Error> {
    let text = if a.text == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        a.text.clone()
    };
    if text.trim().is_empty() {
        return Err(Error::invalid("The prompt is empty."));
    }
    let opts = AttachOptions {
        takeover: a.takeover,
        watch: false,
        since: None,
    };
    // `prompt` handles Ctrl-C itself (main.rs): before the prompt is sent it just ends.
    let attached = tokio::select! {
        r = sam.attach_session(&a.sid, opts) => r,
        _ = tokio::signal::ctrl_c() => return Ok(Outcome::Code(130)),
    };
    let conn = attached.map_err(|e| {
        if e.is("session_already_attached") {
            e.hint("Pass --takeover to take the session over from the client attached to it.")
        } else {
            e
        }
    })?;
    let answer = if a.allow {
        Some(true)
    } else if a.reject {
        Some(false)
    } else {
        None
    };
    let terminal = a.text != "-" && std::io::stdin().is_terminal();
    turn(conn, out, text, answer, terminal).await
}

/// Sends the prompt and follows its turn to the end.
async fn turn(
    mut conn: SessionConnection,
    out: &Out,
    text: String,
    answer: Option<bool>,
    terminal: bool,
) -> Result<Outcome, Error> {
    let sid = conn.session().id.clone();
    let mut render = Render::new(true);
    let mut requests = Requests::default();
    let mut lines: Option<mpsc::UnboundedReceiver<String>> = None;
    let mut head = 0;
    let mut replayed = false;
    let mut mine = false;
    let mut sent = false;
    let mut last_error: Option<String> = None;
    let mut interrupted = false;
    loop {
        tokio::select! {
            // Ctrl-C: the first cancels this turn (exit 130 at its end); a second one,
            // or one before the turn began, leaves at once.
            _ = tokio::signal::ctrl_c() => {
                render.finish();
                if !mine || interrupted {
                    if sent && !mine {
                        eprintln!("The prompt stays queued in the session.");
                    } else if interrupted {
                        eprintln!("The turn goes on in the session.");
                    }
                    return Ok(Outcome::Code(130));
                }
                interrupted = true;
                conn.send(SessionClientFrame::Cancel)?;
                eprintln!("Cancelling the turn (Ctrl-C again leaves it running).");
            }
            frame = conn.recv() => {
                let Some(frame) = frame? else {
                    render.finish();
                    return Err(Error::new("node_unreachable", format!("The connection to session {sid} closed before the turn ended.")));
                };
                let live = replayed || frame.seq > head;
                match &frame.body {
                    SessionFrameBody::Attached { .. } => {
                        head = frame.seq;
                        replayed = head == 0;
                    }
                    SessionFrameBody::UserPrompt(p) if live && !mine && p.text.as_deref() == Some(text.as_str()) => {
                        mine = true;
                    }
                    _ => {}
                }
                if mine {
                    if out.json {
                        println!("{}", serde_json::to_string(&frame).unwrap_or_default());
                    } else {
                        render.frame(&frame);
                    }
                }
                requests.track(&frame.body);
                if !replayed && frame.body.is_conversation() && frame.seq >= head {
                    replayed = true;
                }
                if live {
                    match &frame.body {
                        SessionFrameBody::AgentTurnEnd { stop_reason } if mine => {
                            render.finish();
                            conn.close().await;
                            if stop_reason == "end_turn" {
                                return Ok(Outcome::Done);
                            }
                            if interrupted {
                                return Ok(Outcome::Code(130));
                            }
                            eprintln!("stop reason: {stop_reason}");
                            return Ok(Outcome::Code(EXIT_OTHER_STOP));
                        }
                        SessionFrameBody::AgentError { message } if mine => {
                            render.finish();
                            conn.close().await;
                            return Err(Error::new("agent_error", message.clone()));
                        }
                        SessionFrameBody::AgentError { message } => last_error = Some(message.clone()),
                        SessionFrameBody::SessionStopped { reason } => {
                            render.finish();
                            let why = last_error.map(|m| format!(": {m}")).unwrap_or_default();
                            return Err(Error::new("session_not_running", format!("The session stopped ({}) before the turn ended{why}", word(reason)))
                                .hint("`sam session history SID` shows its conversation; `sam session new WS` starts another."));
                        }
                        SessionFrameBody::Detached { .. } => {
                            render.finish();
                            return Err(Error::new("taken_over", format!("Another client took over session {sid} during the turn; it goes on there.")));
                        }
                        SessionFrameBody::Error { message } => {
                            render.finish();
                            return Err(Error::new("refused", format!("The agent refused a frame: {message}")));
                        }
                        _ => {}
                    }
                }
                // A permission request blocks this turn (or an earlier one it waits
                // behind): answer it as told, ask, or fail.
                while replayed && let Some(r) = requests.next_question() {
                    match answer {
                        Some(allow) => {
                            let Some(choice) = first_choice(&r.options, allow) else {
                                let offered: Vec<String> = permission_choices(&r.options).into_iter().map(|c| format!("{} [{}]", c.option_id, c.kind)).collect();
                                return Err(Error::new("no_such_option", format!(
                                    "The agent asks for permission ({}) but offers no {} option: {}.",
                                    r.title, if allow { "allow" } else { "reject" }, offered.join(", ")
                                )).hint("Answer it in `sam session attach SID`."));
                            };
                            let id = r.id.clone();
                            conn.send(SessionClientFrame::PermissionResponse { request_id: id.clone(), option_id: choice.option_id })?;
                            requests.resolved(&id);
                        }
                        None if terminal => {
                            render.finish();
                            ask(r);
                            if lines.is_none() {
                                lines = Some(stdin_lines());
                            }
                        }
                        None => {
                            render.finish();
                            return Err(Error::new("confirmation_needed", format!(
                                "The agent waits for a permission answer ({}), and there is no terminal to ask on.", r.title
                            )).hint("Pass --allow or --reject, or answer it in `sam session attach SID`."));
                        }
                    }
                }
                // The prompt goes once the history is read and what waited is
                // answered (or asked about): a prompt that cannot be followed
                // through is never left queued.
                if replayed && !sent {
                    sent = true;
                    conn.send(SessionClientFrame::Prompt(Prompt { text: Some(text.clone()), content: None }))?;
                }
            }
            line = async { lines.as_mut()?.recv().await }, if lines.is_some() => {
                let Some(line) = line else {
                    return Err(Error::new("cancelled", "The permission question got no answer (end of input).")
                        .hint("Answer it in `sam session attach SID`; the turn waits for it."));
                };
                if let Some(r) = requests.current() {
                    match parse_answer(&line, &r.options) {
                        Some(choice) => {
                            let id = r.id.clone();
                            conn.send(SessionClientFrame::PermissionResponse { request_id: id.clone(), option_id: choice.option_id })?;
                            requests.resolved(&id);
                            if let Some(next) = requests.next_question() {
                                ask(next);
                            }
                        }
                        None => ask(r),
                    }
                }
            }
        }
    }
}

// ---- rendering ----

/// What a writer was last streaming, so kinds of text start on their own line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Nothing,
    Message,
    Thought,
}

/// One of stdout / stderr, with where its cursor stands.
struct Writer {
    err: bool,
    color: bool,
    at_line_start: bool,
    stream: Stream,
}

impl Writer {
    fn new(err: bool) -> Self {
        let terminal = if err {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Writer {
            err,
            color: terminal && std::env::var_os("NO_COLOR").is_none(),
            at_line_start: true,
            stream: Stream::Nothing,
        }
    }

    fn write(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if self.err {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(s.as_bytes());
            let _ = e.flush();
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(s.as_bytes());
            let _ = o.flush();
        }
        let plain = s.trim_end_matches("\x1b[0m");
        if let Some(c) = plain.chars().last() {
            self.at_line_start = c == '\n';
        }
    }

    fn newline(&mut self) {
        if !self.at_line_start {
            self.write("\n");
        }
    }

    /// A whole line of its own, styled (an ANSI SGR code) on a terminal.
    fn line(&mut self, style: &str, s: &str) {
        self.newline();
        self.stream = Stream::Nothing;
        if self.color && !style.is_empty() {
            self.write(&format!("\x1b[{style}m{s}\x1b[0m\n"));
        } else {
            self.write(&format!("{s}\n"));
        }
    }

    /// Streamed text of one kind; a new kind starts on a new line.
    fn stream(&mut self, kind: Stream, s: &str) {
        if self.stream != kind {
            self.newline();
            self.stream = kind;
            if kind == Stream::Thought {
                self.write(&self.styled("2", "thinking: "));
            }
        }
        if kind == Stream::Thought {
            let text = self.styled("2", s);
            self.write(&text);
        } else {
            self.write(s);
        }
    }

    fn styled(&self, style: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{style}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Prints a conversation for people. `split` (for `prompt`): the agent's answer
/// on stdout, everything else (thoughts, tool calls, plans, permissions) on stderr.
struct Render {
    split: bool,
    out: Writer,
    err: Writer,
    /// Tool call titles by id, for their updates.
    tools: HashMap<String, String>,
}

const BOLD: &str = "1";
const DIM: &str = "2";
const RED: &str = "31";
const YELLOW: &str = "33";
const CYAN: &str = "36";

impl Render {
    fn new(split: bool) -> Self {
        Render {
            split,
            out: Writer::new(false),
            err: Writer::new(true),
            tools: HashMap::new(),
        }
    }

    fn side(&mut self) -> &mut Writer {
        if self.split {
            &mut self.err
        } else {
            &mut self.out
        }
    }

    fn side_line(&mut self, s: &str) {
        self.side().line(CYAN, s);
    }

    /// Ends any open line.
    fn finish(&mut self) {
        self.out.newline();
        self.err.newline();
        self.out.stream = Stream::Nothing;
        self.err.stream = Stream::Nothing;
    }

    fn frame(&mut self, f: &SessionFrame) {
        match &f.body {
            SessionFrameBody::Attached { .. } => {}
            SessionFrameBody::Detached { .. } => self
                .err
                .line(YELLOW, "Another client took over this session."),
            SessionFrameBody::Error { message } => self
                .err
                .line(YELLOW, &format!("warning: the agent said: {message}")),
            SessionFrameBody::UserPrompt(p) => {
                if !self.split {
                    self.out.line(BOLD, &format!("> {}", prompt_text(p)));
                }
            }
            SessionFrameBody::AgentOutput { update } => self.update(update),
            SessionFrameBody::AgentPermission {
                tool_call, options, ..
            } => {
                let title = tool_title(tool_call).unwrap_or_else(|| "(no title)".into());
                let choices: Vec<String> = permission_choices(options)
                    .iter()
                    .map(|c| format!("{} [{}]", c.name, c.kind))
                    .collect();
                let w = self.side();
                w.line(YELLOW, &format!("permission requested: {title}"));
                w.line(YELLOW, &format!("  options: {}", choices.join(", ")));
            }
            SessionFrameBody::AgentPermissionResolved {
                option_id, outcome, ..
            } => {
                let what = match (option_id, outcome) {
                    (Some(o), _) => format!("permission answered: {o}"),
                    (None, Some(o)) => format!("permission {o}"),
                    (None, None) => "permission resolved".into(),
                };
                self.side().line(YELLOW, &what);
            }
            SessionFrameBody::AgentTurnEnd { stop_reason } => {
                self.finish();
                if stop_reason != "end_turn" && !self.split {
                    self.out.line(DIM, &format!("(turn ended: {stop_reason})"));
                }
            }
            SessionFrameBody::AgentError { message } => {
                if !self.split {
                    self.out.line(RED, &format!("error: {message}"));
                } else {
                    self.finish();
                }
            }
            SessionFrameBody::SessionStopped { reason } => {
                let w = self.side();
                w.line(DIM, &format!("(session stopped: {})", word(reason)));
            }
        }
    }

    /// One ACP `session/update` (CONTRACT: passed through unchanged).
    fn update(&mut self, u: &Value) {
        let kind = u.get("sessionUpdate").and_then(Value::as_str).unwrap_or("");
        let text = || content_text(u.get("content").unwrap_or(&Value::Null));
        match kind {
            "agent_message_chunk" => {
                let t = text();
                self.out.stream(Stream::Message, &t);
            }
            "agent_thought_chunk" => {
                let t = text();
                self.side().stream(Stream::Thought, &t);
            }
            "user_message_chunk" if !self.split => {
                self.out.line(BOLD, &format!("> {}", text()));
            }
            "tool_call" => {
                let id = str_field(u, "toolCallId");
                let title = str_field(u, "title");
                let kind = u.get("kind").and_then(Value::as_str);
                let status = u.get("status").and_then(Value::as_str).unwrap_or("pending");
                self.tools.insert(id, title.clone());
                let kind = kind.map(|k| format!(" ({k})")).unwrap_or_default();
                self.side_line(&format!("tool: {title}{kind} [{status}]"));
            }
            "tool_call_update" => {
                let id = str_field(u, "toolCallId");
                if let Some(t) = u.get("title").and_then(Value::as_str) {
                    self.tools.insert(id.clone(), t.to_string());
                }
                if let Some(status) = u.get("status").and_then(Value::as_str) {
                    let title = self.tools.get(&id).cloned().unwrap_or(id);
                    self.side_line(&format!("tool: {title} [{status}]"));
                }
            }
            "plan" => {
                let entries = u
                    .get("entries")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let w = self.side();
                w.line(CYAN, "plan:");
                for e in entries {
                    let mark = match e.get("status").and_then(Value::as_str) {
                        Some("completed") => "[x]",
                        Some("in_progress") => "[>]",
                        _ => "[ ]",
                    };
                    w.line(CYAN, &format!("  {mark} {}", str_field(&e, "content")));
                }
            }
            // Commands, modes and other updates are not part of the conversation's text.
            _ => {}
        }
    }
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The text of an ACP content block (others named in brackets).
fn content_text(c: &Value) -> String {
    match c.get("type").and_then(Value::as_str) {
        Some("text") => str_field(c, "text"),
        Some("resource_link") => format!("[{}]", str_field(c, "uri")),
        Some(other) => format!("[{other}]"),
        None => String::new(),
    }
}

fn prompt_text(p: &Prompt) -> String {
    if let Some(t) = &p.text {
        return t.clone();
    }
    p.content
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(content_text)
        .collect::<Vec<_>>()
        .join(" ")
}
