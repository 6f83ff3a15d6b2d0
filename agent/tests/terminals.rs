//! Terminals through the real agent, real Docker and real WebSockets (CONTRACT §5
//! terminal rows, §7 terminal socket).
//!
//! Markers are printed with shell arithmetic (`echo m-$((40+2))` prints `m-42`), so
//! the terminal's echo of the typed line never matches what is looked for.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use sam_protocol::WorkspaceStatus;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const MIB: usize = 1 << 20;
/// The agent's scrollback ring (agent/src/terminals/mod.rs `RING_BYTES`).
const RING: usize = 2 * MIB;
const WAIT: Duration = Duration::from_secs(20);

/// Upgrades `path` with a node token; an HTTP refusal comes back as (status, body).
async fn try_connect(agent: &Agent, path: &str) -> Result<Socket, (u16, Value)> {
    let mut request = agent.ws_url(path).into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("connect {path}: {e}"),
    }
}

pub async fn connect(agent: &Agent, path: &str) -> Socket {
    match try_connect(agent, path).await {
        Ok(s) => s,
        Err((status, body)) => panic!("connect {path}: {status} {body}"),
    }
}

async fn create_terminal(agent: &Agent, ws: &str, body: Value) -> String {
    let (s, t) = agent
        .send_json(Method::POST, &format!("/workspaces/{ws}/terminals"), body)
        .await;
    assert_eq!(s, 201, "create terminal: {t}");
    // (A command that cannot start may already be listed as exited.)
    t["id"].as_str().expect("id").to_string()
}

async fn shell(agent: &Agent, ws: &str) -> String {
    let id = create_terminal(agent, ws, json!({"cols": 80, "rows": 24})).await;
    let listed = list(agent, ws).await;
    let t = listed
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("listed");
    assert_eq!(t["exited"], false, "{t}");
    id
}

async fn list(agent: &Agent, ws: &str) -> Vec<Value> {
    let (s, body) = agent.get_json(&format!("/workspaces/{ws}/terminals")).await;
    assert_eq!(s, 200, "{body}");
    body["terminals"].as_array().expect("terminals").clone()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let n = s.chars().count();
    if n > 2000 {
        format!("…{}", s.chars().skip(n - 2000).collect::<String>())
    } else {
        s.into_owned()
    }
}

fn close_code(frame: &Option<tungstenite::protocol::CloseFrame>) -> Option<u16> {
    frame.as_ref().map(|f| u16::from(f.code))
}

/// One viewer of a terminal: what it got, byte for byte, and its control frames.
struct Viewer {
    socket: Socket,
    /// Everything received as binary, replay included.
    all: Vec<u8>,
    /// Received output not yet consumed by [`Viewer::until`].
    pending: Vec<u8>,
    controls: VecDeque<Value>,
    closed: Option<Option<u16>>,
}

impl Viewer {
    /// Connects and reads the replay up to `ready`; returns the viewer and the replay.
    async fn open(agent: &Agent, ws: &str, tid: &str) -> (Viewer, Vec<u8>) {
        let socket = connect(agent, &format!("/workspaces/{ws}/terminals/{tid}/ws")).await;
        let mut v = Viewer {
            socket,
            all: Vec::new(),
            pending: Vec::new(),
            controls: VecDeque::new(),
            closed: None,
        };
        let ready = v.control().await;
        assert_eq!(ready, json!({"type": "ready"}), "first control frame");
        let replay = std::mem::take(&mut v.pending);
        (v, replay)
    }

    /// Reads one message; false once the socket is closed.
    async fn pump(&mut self, deadline: Instant) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let msg = tokio::time::timeout_at(deadline.into(), self.socket.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out; controls {:?}, output so far: {}",
                    self.controls,
                    lossy(&self.all)
                )
            });
        match msg {
            Some(Ok(Message::Binary(b))) => {
                self.all.extend_from_slice(&b);
                self.pending.extend_from_slice(&b);
            }
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t)
                    .unwrap_or_else(|e| panic!("server text frame is not JSON ({e}): {t}"));
                self.controls.push_back(v);
            }
            Some(Ok(Message::Close(frame))) => self.closed = Some(close_code(&frame)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => self.closed = Some(None),
        }
        true
    }

    /// Reads until `needle` shows up in the output; returns the output up to its end.
    async fn until(&mut self, needle: &str) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(at) = find(&self.pending, needle.as_bytes()) {
                return self.pending.drain(..at + needle.len()).collect();
            }
            assert!(
                self.pump(deadline).await,
                "socket closed ({:?}) before {needle:?}; controls {:?}; output: {}",
                self.closed,
                self.controls,
                lossy(&self.all)
            );
        }
    }

    /// The next control frame (output read meanwhile stays pending).
    async fn control(&mut self) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = self.controls.pop_front() {
                return v;
            }
            assert!(
                self.pump(deadline).await,
                "socket closed ({:?}) before a control frame; output: {}",
                self.closed,
                lossy(&self.all)
            );
        }
    }

    /// Reads to the close; returns its code.
    async fn closed(&mut self) -> Option<u16> {
        let deadline = Instant::now() + WAIT;
        while self.pump(deadline).await {}
        self.closed.unwrap()
    }

    async fn send(&mut self, msg: Message) {
        self.socket.send(msg).await.expect("send");
    }

    async fn type_(&mut self, s: &str) {
        self.send(Message::Binary(s.as_bytes().to_vec().into()))
            .await;
    }

    async fn text(&mut self, s: &str) {
        self.send(Message::Text(s.into())).await;
    }

    /// Types `echo tag-$((a+b))` and waits for `tag-<a+b>`: the shell is alive and
    /// this viewer both sends and receives.
    async fn roundtrip(&mut self, tag: &str, a: u32, b: u32) {
        self.type_(&format!("echo {tag}-$(({a}+{b}))\n")).await;
        self.until(&format!("{tag}-{}\r\n", a + b)).await;
    }
}

#[tokio::test]
async fn echo_resize_working_directory_and_login_shell() {
    let agent = Agent::start().await;
    let ws = agent.running("term").await;
    // Busybox's ash reads /etc/profile as a login shell, and only then.
    let (ok, out) = docker_exec(
        &ws.id,
        None,
        "echo 'export SAM_LOGIN=login-$((1+1))' > /etc/profile",
    );
    assert!(ok, "{out}");

    let tid = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    v.type_("echo hel''lo; stty size\n").await;
    v.until("hello\r\n").await;
    v.until("24 80\r\n").await;

    v.type_("pwd; echo \"[$SAM_LOGIN]\"; id -u\n").await;
    let out = v.until("]\r\n").await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains(&format!("\r\n{}\r\n", ws.project_path)),
        "pwd is the project folder {}: {text}",
        ws.project_path
    );
    assert!(text.contains("[login-2]"), "a login shell: {text}");
    v.until("0\r\n").await;

    // The last resize wins, is seen by the process and is listed.
    v.text(r#"{"type":"resize","cols":100,"rows":30}"#).await;
    v.text(r#"{"type":"resize","cols":132,"rows":43}"#).await;
    v.type_("stty size\n").await;
    v.until("43 132\r\n").await;
    assert!(v.controls.is_empty(), "no error frames: {:?}", v.controls);
    let listed = list(&agent, &ws.id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], tid.as_str());
    assert_eq!(listed[0]["cols"], 132);
    assert_eq!(listed[0]["rows"], 43);
    assert_eq!(listed[0]["exited"], false);
    assert!(listed[0]["createdAt"].is_string(), "{:?}", listed[0]);

    // Created with a size: the PTY has it from the start.
    let tid2 = create_terminal(&agent, &ws.id, json!({"cols": 57, "rows": 11})).await;
    let (mut v2, _) = Viewer::open(&agent, &ws.id, &tid2).await;
    v2.type_("stty size\n").await;
    v2.until("11 57\r\n").await;

    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn a_given_command_runs_as_argv_and_its_exit_is_reported() {
    let agent = Agent::start().await;
    let ws = agent.running("term-argv").await;
    // No shell splits the argv: "a b" stays one argument, `$0` is "zero".
    let tid = create_terminal(
        &agent,
        &ws.id,
        json!({"cols": 80, "rows": 24, "command": [
            "sh", "-c", "printf '<%s>' \"$0\" \"$@\"; echo; pwd; exit 5", "zero", "a b", "c"
        ]}),
    )
    .await;
    let socket = connect(&agent, &format!("/workspaces/{}/terminals/{tid}/ws", ws.id)).await;
    let mut v = Viewer {
        socket,
        all: Vec::new(),
        pending: Vec::new(),
        controls: VecDeque::new(),
        closed: None,
    };
    // Whether the process ended before the socket connected (replay, ready, exit)
    // or after (ready, output, exit), the viewer sees all of it, then a close.
    assert_eq!(v.control().await, json!({"type": "ready"}));
    assert_eq!(v.control().await, json!({"type": "exit", "code": 5}));
    assert_eq!(v.closed().await, Some(1000));
    let text = String::from_utf8_lossy(&v.all);
    assert!(text.contains("<zero><a b><c>\r\n"), "{text}");
    assert!(text.contains(&format!("{}\r\n", ws.project_path)), "{text}");

    // A program that is not there: 127, as a shell says; one that cannot run: 126.
    for (argv, code) in [
        (json!(["no-such-program"]), 127),
        (json!(["/etc/passwd"]), 126),
    ] {
        let tid = create_terminal(
            &agent,
            &ws.id,
            json!({"cols": 80, "rows": 24, "command": argv}),
        )
        .await;
        let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
        assert_eq!(
            v.control().await,
            json!({"type": "exit", "code": code}),
            "{argv}: {}",
            lossy(&v.all)
        );
        let listed = list(&agent, &ws.id).await;
        let t = listed.iter().find(|t| t["id"] == tid.as_str()).unwrap();
        assert_eq!(
            (t["exited"].clone(), t["exitCode"].clone()),
            (json!(true), json!(code))
        );
    }
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn replay_after_reconnect_is_exact_and_comes_before_ready() {
    let agent = Agent::start().await;
    let ws = agent.running("term-replay").await;
    let tid = shell(&agent, &ws.id).await;

    let (mut v1, replay1) = Viewer::open(&agent, &ws.id, &tid).await;
    v1.roundtrip("first", 1, 1).await;
    // Printed while nobody watches: the socket closes at once, the output comes later.
    v1.type_("sleep 1; echo later-$((2+3))\n").await;
    v1.until("later-$((2+3))\r\n").await; // the echo of the typed line
    v1.socket.close(None).await.unwrap();
    // `all` holds the replay too.
    let seen1 = v1.all.clone();
    assert!(seen1.starts_with(&replay1));
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let (mut v2, replay2) = Viewer::open(&agent, &ws.id, &tid).await;
    assert!(
        replay2.starts_with(&seen1),
        "the replay holds what the first viewer saw, byte for byte:\nfirst: {}\nreplay: {}",
        lossy(&seen1),
        lossy(&replay2)
    );
    let missed = &replay2[seen1.len()..];
    assert_eq!(
        count(missed, b"later-5\r\n"),
        1,
        "missed output replayed once: {}",
        lossy(missed)
    );
    assert_eq!(count(&replay2, b"first-2\r\n"), 1, "{}", lossy(&replay2));
    assert_eq!(count(&replay2, b"later-5\r\n"), 1, "{}", lossy(&replay2));
    assert!(v2.pending.is_empty() && v2.controls.is_empty());

    // Nothing happened since: a third viewer gets the very same replay, while the
    // second stays connected; then both see what follows exactly once.
    let (mut v3, replay3) = Viewer::open(&agent, &ws.id, &tid).await;
    assert_eq!(replay3, replay2, "two fresh connects, one scrollback");
    v3.roundtrip("third", 3, 3).await;
    let live2 = v2.until("third-6\r\n").await;
    assert_eq!(count(&live2, b"first-2"), 0, "{}", lossy(&live2));
    let (_, replay4) = Viewer::open(&agent, &ws.id, &tid).await;
    assert_eq!(count(&replay4, b"third-6\r\n"), 1);
    assert_eq!(count(&replay4, b"later-5\r\n"), 1);
    assert!(replay4.starts_with(&replay2));

    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn exit_frame_code_and_exited_terminals_stay_listed() {
    let agent = Agent::start().await;
    let ws = agent.running("term-exit").await;
    let tid = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    v.roundtrip("before", 4, 4).await;
    v.type_("exit 3\n").await;
    assert_eq!(v.control().await, json!({"type": "exit", "code": 3}));
    assert_eq!(v.closed().await, Some(1000), "a normal close after exit");
    assert!(v.controls.is_empty(), "{:?}", v.controls);

    let listed = list(&agent, &ws.id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], tid.as_str());
    assert_eq!(listed[0]["exited"], true, "{:?}", listed[0]);
    assert_eq!(listed[0]["exitCode"], 3, "{:?}", listed[0]);

    // Connecting to an exited terminal: the scrollback, ready, exit, close 1000.
    let (mut again, replay) = Viewer::open(&agent, &ws.id, &tid).await;
    assert_eq!(count(&replay, b"before-8\r\n"), 1, "{}", lossy(&replay));
    assert!(find(&replay, b"exit 3").is_some(), "{}", lossy(&replay));
    assert_eq!(again.control().await, json!({"type": "exit", "code": 3}));
    assert_eq!(again.closed().await, Some(1000));
    assert!(again.pending.is_empty(), "no output after exit");

    // A signal: 128 + its number.
    let tid2 = create_terminal(
        &agent,
        &ws.id,
        json!({"cols": 80, "rows": 24, "command": ["sh", "-c", "echo go; kill -TERM $$; sleep 100"]}),
    )
    .await;
    let socket = connect(
        &agent,
        &format!("/workspaces/{}/terminals/{tid2}/ws", ws.id),
    )
    .await;
    let mut v2 = Viewer {
        socket,
        all: Vec::new(),
        pending: Vec::new(),
        controls: VecDeque::new(),
        closed: None,
    };
    assert_eq!(v2.control().await, json!({"type": "ready"}));
    assert_eq!(
        v2.control().await,
        json!({"type": "exit", "code": 128 + 15})
    );
    assert_eq!(v2.closed().await, Some(1000));

    // DELETE forgets an exited terminal.
    let r = agent
        .req(
            Method::DELETE,
            &format!("/workspaces/{}/terminals/{tid}", ws.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let ids: Vec<Value> = list(&agent, &ws.id)
        .await
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(tid2)]);
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn delete_kills_the_process_and_unlists_the_terminal() {
    let agent = Agent::start().await;
    let ws = agent.running("term-delete").await;
    let tid = create_terminal(
        &agent,
        &ws.id,
        json!({"cols": 80, "rows": 24, "command": ["sh", "-c", "echo up; exec sleep 4242"]}),
    )
    .await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    let running = || docker_exec(&ws.id, None, "ps -o args | grep -c '^sleep 4242'").1;
    assert_eq!(running().trim(), "1", "the process runs");

    let r = agent
        .req(
            Method::DELETE,
            &format!("/workspaces/{}/terminals/{tid}", ws.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The viewer learns the process died of a signal (HUP, else KILL).
    let exit = v.control().await;
    assert_eq!(exit["type"], "exit", "{exit}");
    assert!(
        [128 + 1, 128 + 9].contains(&exit["code"].as_i64().unwrap()),
        "{exit}"
    );
    assert_eq!(v.closed().await, Some(1000));
    assert_eq!(running().trim(), "0", "the process is gone");
    assert!(list(&agent, &ws.id).await.is_empty());

    // Gone for good: its socket, a second DELETE.
    let (status, body) = try_connect(&agent, &format!("/workspaces/{}/terminals/{tid}/ws", ws.id))
        .await
        .map(|_| ())
        .expect_err("connect to a deleted terminal");
    assert_eq!(status, 404);
    assert_eq!(body["error"], "terminal_not_found", "{body}");
    let r = agent
        .req(
            Method::DELETE,
            &format!("/workspaces/{}/terminals/{tid}", ws.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "terminal_not_found", "{body}");
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn workspace_stop_ends_its_terminals() {
    let agent = Agent::start().await;
    let ws = agent.running("term-stop").await;
    let a = shell(&agent, &ws.id).await;
    let b = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &a).await;
    v.roundtrip("alive", 1, 2).await;
    assert_eq!(list(&agent, &ws.id).await.len(), 2);
    let other = agent.running("term-stop-other").await;
    let c = shell(&agent, &other.id).await;

    let (s, body) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{}/stop", ws.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    // The viewer gets an exit (the shell was hung up) and a close.
    let exit = v.control().await;
    assert_eq!(exit["type"], "exit", "{exit}");
    assert!(exit["code"].as_i64().unwrap() > 128, "killed: {exit}");
    assert_eq!(v.closed().await, Some(1000));
    agent.wait_for(&ws.id, WorkspaceStatus::Stopped).await;
    assert!(
        list(&agent, &ws.id).await.is_empty(),
        "ended terminals leave the list"
    );
    for tid in [&a, &b] {
        let (status, body) =
            try_connect(&agent, &format!("/workspaces/{}/terminals/{tid}/ws", ws.id))
                .await
                .map(|_| ())
                .expect_err("connect");
        assert_eq!(status, 404, "{body}");
    }
    // A stopped workspace takes no terminal.
    let (s, body) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{}/terminals", ws.id),
            json!({"cols": 80, "rows": 24}),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"], "workspace_not_running", "{body}");
    // Another workspace's terminal is untouched.
    let listed = list(&agent, &other.id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], c.as_str());
    assert_eq!(listed[0]["exited"], false);

    // After a restart the list is still empty and new terminals work.
    let (s, _) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{}/restart", ws.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    assert!(list(&agent, &ws.id).await.is_empty());
    let d = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &d).await;
    v.roundtrip("again", 2, 2).await;

    // Restarting a running workspace ends its terminals too.
    let (s, _) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{}/restart", ws.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(v.control().await["type"], "exit");
    agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    assert!(list(&agent, &ws.id).await.is_empty());

    agent.delete(&ws.id).await;
    agent.delete(&other.id).await;
}

/// A viewer slower than the output (a window busy drawing, a slow link) is
/// waited for, not closed: it stops reading for 1.5 s at a time while `seq`
/// writes far more than the socket buffers, the ring and the viewer's backlog
/// hold, and still gets every line, in order, and no 1013.
#[tokio::test]
async fn a_slow_viewer_paces_the_output_and_misses_nothing() {
    const LINES: u32 = 1_500_000;
    let agent = Agent::start().await;
    let ws = agent.running("term-pace").await;
    let tid = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    v.roundtrip("ready", 1, 1).await;
    v.type_(&format!("seq 1 {LINES}; echo paced-$((40+2))\n"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reading_since = Instant::now();
    let mut pauses = 0;
    while find(
        &v.pending[v.pending.len().saturating_sub(64)..],
        b"paced-42\r\n",
    )
    .is_none()
    {
        assert!(
            v.pump(deadline).await,
            "closed with {:?} after {} bytes, {pauses} pauses",
            v.closed,
            v.all.len()
        );
        if reading_since.elapsed() > Duration::from_millis(300) {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            pauses += 1;
            reading_since = Instant::now();
        }
    }
    let expected: String = (1..=LINES).map(|n| format!("\r\n{n}")).collect();
    let got = &v.pending;
    assert!(pauses >= 2, "{pauses} pauses: not a flood");
    assert!(
        find(got, expected.as_bytes()).is_some(),
        "a line is missing or out of order ({} bytes, {pauses} pauses)",
        got.len()
    );
    v.roundtrip("after", 2, 3).await;
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn two_viewers_both_see_output_and_both_type() {
    let agent = Agent::start().await;
    let ws = agent.running("term-two").await;
    let tid = shell(&agent, &ws.id).await;
    let (mut a, _) = Viewer::open(&agent, &ws.id, &tid).await;
    let (mut b, _) = Viewer::open(&agent, &ws.id, &tid).await;
    a.roundtrip("from-a", 10, 1).await;
    b.until("from-a-11\r\n").await;
    b.roundtrip("from-b", 20, 2).await;
    a.until("from-b-22\r\n").await;
    // One closing leaves the other (and the terminal) working.
    a.socket.close(None).await.unwrap();
    b.roundtrip("still", 1, 1).await;
    assert!(a.controls.is_empty() && b.controls.is_empty());
    assert_eq!(list(&agent, &ws.id).await[0]["exited"], false);
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn output_bytes_pass_through_untouched() {
    let agent = Agent::start().await;
    let ws = agent.running("term-bytes").await;
    let tid = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    // Bytes 1, 2 and 0 first: what a multiplexing decoder would take for a header.
    v.type_("printf '\\001\\002\\000abc'; printf '\\377\\000\\002\\n'; echo end-$((1+1))\n")
        .await;
    let out = v.until("end-2\r\n").await;
    assert!(
        find(&out, b"\x01\x02\x00abc\xff\x00\x02\r\n").is_some(),
        "{out:?}"
    );
    // And typed bytes reach the process as they are (raw mode, then od).
    v.type_("stty raw -echo; head -c 4 | od -An -tx1; stty sane; echo done-$((2+2))\n")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    v.send(Message::Binary(vec![0x00, 0x01, 0xfe, 0x7f].into()))
        .await;
    let out = v.until("done-4").await;
    assert!(
        String::from_utf8_lossy(&out).contains("00 01 fe 7f"),
        "{}",
        lossy(&out)
    );
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn remote_user_runs_the_terminal() {
    let agent = Agent::start().await;
    let src = tempfile::tempdir().unwrap();
    let devcontainer = format!(
        r#"{{ "image": "{image}", "remoteUser": "dev" }}"#,
        image = test_image()
    );
    let url = git_repo(
        src.path(),
        &[(".devcontainer/devcontainer.json", &devcontainer)],
    );
    let ws = agent
        .create(json!({"displayName": "Dev User", "repository": url}))
        .await;
    let ws = agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    let tid = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    v.type_("echo \"<$(id -u):$(id -un):$(pwd):$HOME>\"\n")
        .await;
    let out = v.until(">\r\n").await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains(&format!("<1000:dev:{}:/home/dev>", ws.project_path)),
        "{text}"
    );
    // A given command runs as that user too.
    let tid = create_terminal(
        &agent,
        &ws.id,
        json!({"cols": 80, "rows": 24, "command": ["id", "-u"]}),
    )
    .await;
    let socket = connect(&agent, &format!("/workspaces/{}/terminals/{tid}/ws", ws.id)).await;
    let mut v = Viewer {
        socket,
        all: Vec::new(),
        pending: Vec::new(),
        controls: VecDeque::new(),
        closed: None,
    };
    assert_eq!(v.control().await, json!({"type": "ready"}));
    assert_eq!(v.control().await, json!({"type": "exit", "code": 0}));
    assert_eq!(String::from_utf8_lossy(&v.all), "1000\r\n");
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_terminal_keeps_running() {
    let agent = Agent::start().await;
    let ws = agent.running("term-bad").await;
    let tid = shell(&agent, &ws.id).await;
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    for bad in [
        r#"{"type":"resize","cols":0,"rows":0}"#,
        r#"{"type":"resize","cols":100000,"rows":24}"#,
        r#"{"type":"resize","cols":1001,"rows":24}"#,
        r#"{"type":"resize","cols":80,"rows":-1}"#,
        r#"{"type":"resize","cols":80}"#,
        r#"{"type":"bogus"}"#,
        "not json at all",
        "",
    ] {
        v.text(bad).await;
        let reply = v.control().await;
        assert_eq!(reply["type"], "error", "{bad}: {reply}");
        assert!(
            !reply["message"].as_str().unwrap_or("").is_empty(),
            "{bad}: {reply}"
        );
    }
    // Still open, still a shell, size unchanged.
    v.type_("stty size\n").await;
    v.until("24 80\r\n").await;
    v.roundtrip("ok", 1, 1).await;
    // The largest sizes are fine.
    v.text(r#"{"type":"resize","cols":1000,"rows":1000}"#).await;
    v.type_("stty size\n").await;
    v.until("1000 1000\r\n").await;
    v.text(r#"{"type":"resize","cols":1,"rows":1}"#).await;
    v.text(r#"{"type":"resize","cols":80,"rows":24}"#).await;
    assert!(v.controls.is_empty(), "{:?}", v.controls);

    // A frame over 1 MiB (binary, then text, then far over) closes that socket with 1009.
    for (what, big) in [
        (
            "binary of 1 MiB + 1",
            Message::Binary(vec![b'x'; MIB + 1].into()),
        ),
        (
            "text of 1 MiB + 1",
            Message::Text("y".repeat(MIB + 1).into()),
        ),
        (
            "binary of 4 MiB",
            Message::Binary(vec![b'z'; 4 * MIB].into()),
        ),
    ] {
        let (mut w, _) = Viewer::open(&agent, &ws.id, &tid).await;
        let _ = w.socket.send(big).await;
        assert_eq!(w.closed().await, Some(1009), "{what}");
        // The terminal and the other viewer keep going; a new viewer works.
        v.roundtrip("after-big", 5, 5).await;
        let (mut n, _) = Viewer::open(&agent, &ws.id, &tid).await;
        n.roundtrip("new", 6, 6).await;
    }
    let listed = list(&agent, &ws.id).await;
    assert_eq!(listed[0]["exited"], false);
    assert_eq!(
        (listed[0]["cols"].clone(), listed[0]["rows"].clone()),
        (json!(80), json!(24))
    );
    let (s, _) = agent.get_json("/health").await;
    assert_eq!(s, 200);
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let agent = Agent::start().await;
    let ws = agent.running("term-refuse").await;
    let path = format!("/workspaces/{}/terminals", ws.id);
    for body in [
        json!({"cols": 0, "rows": 24}),
        json!({"cols": 80, "rows": 0}),
        json!({"cols": 1001, "rows": 24}),
        json!({"cols": 100000, "rows": 24}),
        json!({"cols": 80}),
        json!({"cols": 80, "rows": 24, "command": []}),
        json!({"cols": 80, "rows": 24, "command": "sh"}),
        json!({"cols": 80, "rows": 24, "command": ["sh", "a\u{0}b"]}),
    ] {
        let (s, answer) = agent.send_json(Method::POST, &path, body.clone()).await;
        assert_eq!(s, 400, "{body}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{body}: {answer}");
    }
    assert!(list(&agent, &ws.id).await.is_empty());

    // Unknown terminal, unknown workspace.
    let (status, body) = try_connect(&agent, &format!("{path}/nosuchterminal/ws"))
        .await
        .map(|_| ())
        .expect_err("unknown terminal");
    assert_eq!(
        (status, body["error"].clone()),
        (404, json!("terminal_not_found"))
    );
    let r = agent
        .req(Method::DELETE, &format!("{path}/nosuchterminal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "terminal_not_found"
    );
    let (s, body) = agent.get_json("/workspaces/nosuchws0000/terminals").await;
    assert_eq!(
        (s, body["error"].clone()),
        (404, json!("workspace_not_found"))
    );

    // A terminal of one workspace is not reachable through another.
    let other = agent.running("term-refuse-2").await;
    let tid = shell(&agent, &ws.id).await;
    let (status, body) = try_connect(
        &agent,
        &format!("/workspaces/{}/terminals/{tid}/ws", other.id),
    )
    .await
    .map(|_| ())
    .expect_err("wrong workspace");
    assert_eq!(
        (status, body["error"].clone()),
        (404, json!("terminal_not_found"))
    );
    assert!(list(&agent, &other.id).await.is_empty());

    // A stopped workspace.
    let (s, _) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{}/stop", other.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent.wait_for(&other.id, WorkspaceStatus::Stopped).await;
    let (s, body) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{}/terminals", other.id),
            json!({"cols": 80, "rows": 24}),
        )
        .await;
    assert_eq!(
        (s, body["error"].clone()),
        (409, json!("workspace_not_running")),
        "{body}"
    );
    agent.delete(&ws.id).await;
    agent.delete(&other.id).await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// What a draining reader of a flooded terminal ended with.
#[derive(Debug)]
struct Drained {
    bytes: usize,
    close: Option<Option<u16>>,
    saw_marker: bool,
    /// How long before the end the last output arrived.
    quiet_for: Duration,
}

/// Reads `socket` until it closes, `marker` shows up or `stop` fires, pausing
/// `pause` between messages and keeping only a sliding window of the output.
async fn drain(
    mut socket: Socket,
    pause: Duration,
    marker: &'static [u8],
    stop: impl std::future::Future<Output = ()>,
) -> Drained {
    let mut d = Drained {
        bytes: 0,
        close: None,
        saw_marker: false,
        quiet_for: Duration::ZERO,
    };
    let mut window: Vec<u8> = Vec::new();
    let mut last = Instant::now();
    tokio::pin!(stop);
    loop {
        let msg = tokio::select! {
            m = socket.next() => m,
            _ = &mut stop => break,
        };
        match msg {
            Some(Ok(Message::Binary(b))) => {
                d.bytes += b.len();
                last = Instant::now();
                window.extend_from_slice(&b);
                if find(&window, marker).is_some() {
                    d.saw_marker = true;
                    break;
                }
                let keep = window.len().saturating_sub(64);
                window.drain(..keep);
            }
            Some(Ok(Message::Close(frame))) => {
                d.close = Some(close_code(&frame));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                d.close = Some(None);
                break;
            }
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    d.quiet_for = last.elapsed();
    d
}

#[tokio::test]
async fn a_flood_stays_within_bounds_and_the_terminal_survives() {
    let agent = Agent::start().await;
    let pid = agent.child.as_ref().unwrap().id();
    let ws = agent.running("term-flood").await;
    let tid = shell(&agent, &ws.id).await;

    // A: starts the flood and never reads again. C: reads one frame every 50 ms.
    let (mut a, _) = Viewer::open(&agent, &ws.id, &tid).await;
    let (c, _) = Viewer::open(&agent, &ws.id, &tid).await;
    a.roundtrip("warm", 1, 1).await;
    let baseline = rss_kib(pid);
    let started = Instant::now();
    // `yes` into a pipe writes big blocks, so the terminal gets the most it can carry
    // (`yes` alone writes 2 bytes at a time to a terminal).
    a.type_("yes | cat\n").await;
    const MARK: &[u8] = b"after-42\r\n";
    let (stop_slow, slow_stopped) = tokio::sync::oneshot::channel::<()>();
    let slow = tokio::spawn(drain(c.socket, Duration::from_millis(50), MARK, async {
        let _ = slow_stopped.await;
    }));

    // D reads as fast as it can, to know how much the flood carries.
    let (d, _) = Viewer::open(&agent, &ws.id, &tid).await;
    let fast = tokio::spawn(drain(
        d.socket,
        Duration::ZERO,
        MARK,
        tokio::time::sleep(Duration::from_secs(5)),
    ));
    let mut peak = baseline;
    while started.elapsed() < Duration::from_secs(5) {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A fresh viewer, mid-flood: the ring (full by now, at most its size) quickly.
    let t = Instant::now();
    let (b, replay) = Viewer::open(&agent, &ws.id, &tid).await;
    let replay_time = t.elapsed();
    peak = peak.max(rss_kib(pid));
    assert!(
        replay.len() <= RING && replay.len() >= MIB,
        "replay of {} bytes",
        replay.len()
    );
    assert!(
        count(&replay[replay.len() - 4096..], b"y\r\n") > 1000,
        "the replay is the flood's tail"
    );
    assert!(
        replay_time < Duration::from_secs(5),
        "replay took {replay_time:?}"
    );

    // Ctrl-C from a viewer that keeps reading; the shell answers again. A viewer
    // that falls behind here too is closed with 1013 and replaced.
    let mut b = Some(b);
    let mut stopped = false;
    for attempt in 0..5 {
        let viewer = match b.take() {
            Some(v) => v,
            None => Viewer::open(&agent, &ws.id, &tid).await.0,
        };
        let (mut tx, rx) = viewer.socket.split();
        let reader = tokio::spawn(async move {
            let socket_rx = rx;
            let mut window: Vec<u8> = Vec::new();
            let mut rx = socket_rx;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match tokio::time::timeout_at(deadline.into(), rx.next()).await {
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        window.extend_from_slice(&b);
                        if find(&window, MARK).is_some() {
                            return Ok(());
                        }
                        let keep = window.len().saturating_sub(64);
                        window.drain(..keep);
                    }
                    Ok(Some(Ok(Message::Close(f)))) => return Err(close_code(&f)),
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_)) | None) | Err(_) => return Err(None),
                }
            }
        });
        let writer = async {
            let _ = tx.send(Message::Binary(b"\x03".to_vec().into())).await;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if tx
                    .send(Message::Binary(b"echo after-$((40+2))\n".to_vec().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        };
        let result = tokio::select! {
            r = reader => r.unwrap(),
            _ = writer => Err(None),
        };
        peak = peak.max(rss_kib(pid));
        match result {
            Ok(()) => {
                stopped = true;
                break;
            }
            Err(code) => {
                assert_eq!(code, Some(1013), "attempt {attempt}: closed with {code:?}");
            }
        }
    }
    assert!(stopped, "Ctrl-C and echo through a fresh viewer");
    let flood_time = started.elapsed();
    peak = peak.max(rss_kib(pid));

    let fast = fast.await.unwrap();
    eprintln!("flood: fast viewer {fast:?}");
    assert!(fast.bytes > 0, "{fast:?}");
    assert!(
        fast.close.is_none() || fast.close == Some(Some(1013)),
        "{fast:?}"
    );
    let after = rss_kib(pid);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "flood: agent RSS baseline {baseline} KiB, peak {peak} KiB (+{growth} KiB), after {after} KiB; \
         replay {} bytes in {replay_time:?}; Ctrl-C answered after {flood_time:?}",
        replay.len()
    );
    assert!(
        growth < 64 * 1024,
        "RSS grew by {growth} KiB (baseline {baseline}, peak {peak})"
    );

    // The viewer that never read: once it reads, it was either closed for lagging
    // (1013) or it still gets everything, the new output included.
    let never = drain(
        a.socket,
        Duration::ZERO,
        MARK,
        tokio::time::sleep(Duration::from_secs(30)),
    )
    .await;
    eprintln!("flood: never-reading viewer {never:?}");
    assert!(never.bytes > 0, "{never:?}");
    assert!(
        never.close == Some(Some(1013)) || never.saw_marker,
        "never-reading viewer: {never:?}"
    );
    // The slow one: closed with 1013, caught up, or still getting data.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_slow.send(());
    let slow = slow.await.unwrap();
    eprintln!("flood: slow viewer {slow:?}");
    assert!(slow.bytes > 0, "{slow:?}");
    assert!(
        slow.close == Some(Some(1013))
            || slow.saw_marker
            || (slow.close.is_none() && slow.quiet_for < Duration::from_secs(1)),
        "slow viewer: {slow:?}"
    );
    assert!(rss_kib(pid) < baseline + 64 * 1024);

    // Still alive and listed; a new viewer's echo works.
    let listed = list(&agent, &ws.id).await;
    assert_eq!(listed[0]["exited"], false);
    let (mut v, _) = Viewer::open(&agent, &ws.id, &tid).await;
    v.roundtrip("end", 7, 7).await;
    agent.delete(&ws.id).await;
}
