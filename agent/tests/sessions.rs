//! Agent sessions (CONTRACT §4–5 agent-session rows, §7 "Agent session") with the
//! scripted fixture ACP agent (tests/fixtures `fixture-agent`), a real Docker
//! engine and real WebSockets.
//!
//! Every socket goes through [`Client`], which checks the `seq` rules on every frame
//! it reads: conversation frames strictly grow, frames about the socket carry a
//! `seq` no lower than what the socket has already seen.

mod common;

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

const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- set-up helpers

/// An agent with the fixture ACP agent configured (and so the default agent).
async fn start(extra: &[&str]) -> Agent {
    let mut args = vec!["--agent".to_string(), "fixture=fixture-agent".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Agent::start_with(Options { args, env: vec![] }).await
}

/// A running workspace from the fixtures image: (id, projectPath).
async fn workspace(agent: &Agent, name: &str) -> (String, String) {
    let ws = agent
        .create(json!({"displayName": name, "image": fixture_image()}))
        .await;
    let ws = agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    (ws.id, ws.project_path)
}

fn sessions_path(ws: &str) -> String {
    format!("/workspaces/{ws}/agent-sessions")
}

async fn create_session(agent: &Agent, ws: &str, body: Value) -> (u16, Value) {
    agent
        .send_json(Method::POST, &sessions_path(ws), body)
        .await
}

async fn create_keyed(agent: &Agent, ws: &str, key: &str, body: Value) -> (u16, Value) {
    let r = agent
        .req(Method::POST, &sessions_path(ws))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Creates a session (201) and waits until it runs; returns its id.
async fn running_session(agent: &Agent, ws: &str, body: Value) -> String {
    let (s, session) = create_session(agent, ws, body).await;
    assert_eq!(s, 201, "create session: {session}");
    let sid = session["id"].as_str().expect("id").to_string();
    wait_status(agent, ws, &sid, "running").await;
    sid
}

async fn session(agent: &Agent, ws: &str, sid: &str) -> Value {
    let (s, body) = agent
        .get_json(&format!("{}/{sid}", sessions_path(ws)))
        .await;
    assert_eq!(s, 200, "GET session: {body}");
    body
}

/// Polls the session until `pred` holds (panics after 20 s).
async fn wait_session(
    agent: &Agent,
    ws: &str,
    sid: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = session(agent, ws, sid).await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "session never {what}: {s}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_status(agent: &Agent, ws: &str, sid: &str, status: &str) -> Value {
    let s = wait_session(agent, ws, sid, status, |s| {
        s["status"] == status || (status == "running" && s["status"] != "starting")
    })
    .await;
    assert_eq!(s["status"], status, "{s}");
    s
}

async fn stop_session(agent: &Agent, ws: &str, sid: &str) -> Value {
    let (s, body) = agent
        .send_json(
            Method::POST,
            &format!("{}/{sid}/stop", sessions_path(ws)),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "stop session: {body}");
    body
}

async fn history(agent: &Agent, ws: &str, sid: &str, query: &str) -> Value {
    let (s, body) = agent
        .get_json(&format!("{}/{sid}/history{query}", sessions_path(ws)))
        .await;
    assert_eq!(s, 200, "history{query}: {body}");
    assert!(body["more"].is_boolean(), "{body}");
    body
}

fn frames_of(page: &Value) -> Vec<Value> {
    page["frames"].as_array().expect("frames").clone()
}

/// The workspace's events, newest first.
async fn events(agent: &Agent, ws: &str) -> Vec<Value> {
    let (s, body) = agent
        .get_json(&format!("/workspaces/{ws}/events?limit=500"))
        .await;
    assert_eq!(s, 200, "{body}");
    body["events"].as_array().expect("events").clone()
}

/// Waits for an event matching `pred` (events are recorded within moments).
async fn wait_event(agent: &Agent, ws: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = events(agent, ws).await;
        if let Some(e) = all.iter().find(|e| pred(e)) {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "no event {what} among {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_event(e: &Value, kind: &str, sid: &str) -> bool {
    e["type"] == kind && e["sessionId"] == sid
}

/// The text the agent said (message chunks), concatenated.
fn said(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| {
            f["type"] == "agent.output" && f["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .filter_map(|f| f["update"]["content"]["text"].as_str())
        .collect()
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| f["seq"].as_u64().expect("seq"))
        .collect()
}

fn conversation(f: &Value) -> bool {
    !matches!(
        f["type"].as_str(),
        Some("session.attached" | "session.detached" | "error")
    )
}

fn close_code(frame: &Option<tungstenite::protocol::CloseFrame>) -> Option<u16> {
    frame.as_ref().map(|f| u16::from(f.code))
}

/// Refuses to find `needle` in `hay` (a credential), naming where it leaked.
fn assert_absent(hay: &str, needle: &str, place: &str) {
    assert!(!hay.contains(needle), "the secret leaked into {place}");
}

// ---------------------------------------------------------------- the socket client

/// Upgrades with a node token; an HTTP refusal comes back as (status, body).
async fn try_socket(
    agent: &Agent,
    ws: &str,
    sid: &str,
    query: &str,
) -> Result<Socket, (u16, Value)> {
    let mut request = agent
        .ws_url(&format!("{}/{sid}/ws{query}", sessions_path(ws)))
        .into_client_request()
        .unwrap();
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
        Err(e) => panic!("attach {sid}{query}: {e}"),
    }
}

struct Client {
    socket: Socket,
    /// The `session.attached` frame.
    attached: Value,
    /// Highest conversation `seq` read so far.
    last: u64,
    /// Every frame read after `session.attached`.
    seen: Vec<Value>,
}

impl Client {
    async fn try_open(
        agent: &Agent,
        ws: &str,
        sid: &str,
        query: &str,
    ) -> Result<Client, (u16, Value)> {
        let socket = try_socket(agent, ws, sid, query).await?;
        let mut client = Client {
            socket,
            attached: Value::Null,
            last: 0,
            seen: vec![],
        };
        let first = client.read().await.expect("a first frame");
        assert_eq!(first["type"], "session.attached", "{first}");
        assert_eq!(first["sessionId"], sid, "{first}");
        assert_eq!(first["watch"], query.contains("watch=true"), "{first}");
        assert_eq!(
            first["takeover"],
            query.contains("takeover=true"),
            "{first}"
        );
        assert!(first["seq"].is_u64(), "{first}");
        client.attached = first;
        client.seen.clear();
        Ok(client)
    }

    async fn open(agent: &Agent, ws: &str, sid: &str, query: &str) -> Client {
        match Self::try_open(agent, ws, sid, query).await {
            Ok(c) => c,
            Err((s, body)) => panic!("attach {sid}{query}: {s} {body}"),
        }
    }

    /// Attaches interactively, waiting (up to 5 s) for an earlier socket that closed to
    /// be let go of.
    async fn reopen(agent: &Agent, ws: &str, sid: &str, query: &str) -> Client {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Self::try_open(agent, ws, sid, query).await {
                Ok(c) => return c,
                Err((409, body))
                    if body["error"] == "session_already_attached" && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((s, body)) => panic!("reattach {sid}{query}: {s} {body}"),
            }
        }
    }

    /// The next text frame, or `Err(close code)` once the socket closes.
    async fn read(&mut self) -> Result<Value, Option<u16>> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame within 20 s");
            let msg = match msg {
                None | Some(Err(_)) => return Err(None),
                Some(Ok(m)) => m,
            };
            match msg {
                Message::Text(t) => {
                    let f: Value = serde_json::from_str(&t).expect("frames are JSON");
                    let seq = f["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {f}"));
                    if conversation(&f) {
                        // Replay starts at the first frame after `since`; from then on
                        // every conversation frame takes a higher seq.
                        if !self.attached.is_null() {
                            assert!(seq > self.last, "seq {seq} after {}: {f}", self.last);
                        }
                        self.last = seq;
                    } else if !self.attached.is_null() {
                        assert!(
                            seq >= self.last,
                            "socket frame with seq {seq} below {}: {f}",
                            self.last
                        );
                    }
                    self.seen.push(f.clone());
                    return Ok(f);
                }
                Message::Close(frame) => return Err(close_code(&frame)),
                Message::Binary(_) => panic!("session frames are text"),
                _ => {}
            }
        }
    }

    async fn next(&mut self) -> Value {
        match self.read().await {
            Ok(f) => f,
            Err(code) => panic!("socket closed ({code:?}); seen {:#?}", self.seen),
        }
    }

    /// Frames up to and including the first of type `kind`.
    async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut frames = vec![];
        loop {
            let f = self.next().await;
            let done = f["type"] == kind;
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    /// Frames until the socket closes, and its close code.
    async fn until_closed(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut frames = vec![];
        loop {
            match self.read().await {
                Ok(f) => frames.push(f),
                Err(code) => return (frames, code),
            }
        }
    }

    async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    async fn prompt(&mut self, text: &str) {
        self.send(json!({"type": "prompt", "text": text})).await;
    }

    /// Prompts and returns the turn's frames (through `agent.turn_end`).
    async fn turn(&mut self, text: &str) -> Vec<Value> {
        self.prompt(text).await;
        let frames = self.until("agent.turn_end").await;
        assert_eq!(frames[0]["type"], "user.prompt", "{frames:#?}");
        assert_eq!(frames[0]["text"], text);
        frames
    }

    /// An `error` frame in answer to a bad client frame.
    async fn expect_error(&mut self) -> Value {
        let f = self.next().await;
        assert_eq!(f["type"], "error", "{f}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()), "{f}");
        f
    }

    /// Closes from this end and waits for the server's close.
    async fn close(mut self) {
        let _ = self.socket.close(None).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn prompt_streams_the_answer() {
    let agent = start(&[]).await;
    let (ws, project) = workspace(&agent, "acp").await;
    let sid = running_session(&agent, &ws, json!({"agent": "fixture"})).await;
    let mut c = Client::open(&agent, &ws, &sid, "").await;
    assert_eq!(c.attached["seq"], 0, "a new session's head is 0");

    // The handshake: ACP v1 with every client capability, then session/new in the
    // project folder without MCP servers.
    let init: Value = serde_json::from_str(&said(&c.turn("init").await)).unwrap();
    assert_eq!(init["protocolVersion"], 1, "{init}");
    let caps = &init["clientCapabilities"];
    assert_eq!(caps["fs"]["readTextFile"], true, "{init}");
    assert_eq!(caps["fs"]["writeTextFile"], true, "{init}");
    assert_eq!(caps["terminal"], true, "{init}");
    let new: Value = serde_json::from_str(&said(&c.turn("cwd").await)).unwrap();
    assert_eq!(new["cwd"], project.as_str(), "{new}");
    assert_eq!(new["mcpServers"], json!([]), "{new}");

    let frames = c.turn("echo hi there").await;
    assert_eq!(said(&frames), "You said: hi there.");
    assert_eq!(frames.last().unwrap()["stopReason"], "end_turn");
    let s = seqs(&frames);
    assert_eq!(s[0], 7, "after two turns of three frames");
    assert_eq!(s, (7..7 + s.len() as u64).collect::<Vec<_>>(), "contiguous");

    // Thoughts and plans pass through as ACP updates, unchanged.
    let frames = c.turn("think hard").await;
    assert!(
        frames
            .iter()
            .any(|f| f["update"]["sessionUpdate"] == "agent_thought_chunk"
                && f["update"]["content"]["text"] == "Thinking about hard"),
        "{frames:#?}"
    );
    let frames = c.turn("plan").await;
    let plan = frames
        .iter()
        .find(|f| f["update"]["sessionUpdate"] == "plan")
        .expect("a plan update");
    assert_eq!(plan["update"]["entries"][0]["content"], "Do the thing");

    // A prompt as ACP content blocks is recorded as such and reaches the agent.
    c.send(json!({"type": "prompt", "content": [{"type": "text", "text": "echo blocks"}]}))
        .await;
    let frames = c.until("agent.turn_end").await;
    assert_eq!(frames[0]["type"], "user.prompt");
    assert_eq!(frames[0]["content"][0]["text"], "echo blocks");
    assert_eq!(said(&frames), "You said: blocks.");
    agent.delete(&ws).await;
}

#[tokio::test]
async fn create_get_list_stop_limits_and_bad_requests() {
    let agent = start(&["--max-sessions-per-workspace", "2"]).await;
    let (ws, _) = workspace(&agent, "manager").await;

    // Neither agent nor command: the node's default agent (the first --agent).
    let (s, a) = create_session(&agent, &ws, json!({"label": "  first  "})).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["status"], "starting", "{a}");
    assert_eq!(a["agent"], "fixture");
    assert_eq!(a["label"], "first", "the label is trimmed");
    assert_eq!(a["workspaceId"], ws.as_str());
    assert_eq!(a["attached"], false);
    assert_eq!(a["watchers"], 0);
    assert!(a["createdAt"].is_string(), "{a}");
    assert!(a.get("stoppedAt").is_none_or(Value::is_null), "{a}");
    let a = a["id"].as_str().unwrap().to_string();
    wait_status(&agent, &ws, &a, "running").await;

    // A command session: agent null, the label from the command.
    let (s, b) = create_session(&agent, &ws, json!({"command": ["fixture-agent"]})).await;
    assert_eq!(s, 201, "{b}");
    assert!(b["agent"].is_null(), "{b}");
    assert_eq!(b["label"], "fixture-agent");
    let b = b["id"].as_str().unwrap().to_string();
    wait_status(&agent, &ws, &b, "running").await;

    // The limit counts sessions starting or running.
    let (s, body) = create_session(&agent, &ws, json!({"agent": "fixture"})).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("session_limit_reached")),
        "{body}"
    );

    let (s, list) = agent.get_json(&sessions_path(&ws)).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()], "oldest first");
    assert_eq!(session(&agent, &ws, &a).await["status"], "running");

    // Stop, twice: the same answer.
    let stopped = stop_session(&agent, &ws, &a).await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert_eq!(stopped["stopReason"], "user_stop");
    assert!(stopped["stoppedAt"].is_string(), "{stopped}");
    assert!(stopped.get("error").is_none_or(Value::is_null), "{stopped}");
    let again = stop_session(&agent, &ws, &a).await;
    assert_eq!(again, stopped, "stopping a stopped session changes nothing");
    let frames = frames_of(&history(&agent, &ws, &a, "").await);
    assert_eq!(frames.last().unwrap()["type"], "session.stopped");
    assert_eq!(frames.last().unwrap()["reason"], "user_stop");
    assert_eq!(
        frames
            .iter()
            .filter(|f| f["type"] == "session.stopped")
            .count(),
        1,
        "one session.stopped"
    );

    // A stopped session frees its place; a label of exactly 128 characters is fine.
    let label = "é".repeat(128);
    let (s, c) = create_session(&agent, &ws, json!({"label": label})).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["label"], label.as_str());
    let c = c["id"].as_str().unwrap().to_string();

    // Events: created and stopped, with the session's id.
    for sid in [&a, &b, &c] {
        wait_event(&agent, &ws, "session.created", |e| {
            is_event(e, "session.created", sid)
        })
        .await;
    }
    let e = wait_event(&agent, &ws, "session.stopped", |e| {
        is_event(e, "session.stopped", &a)
    })
    .await;
    assert_eq!(e["level"], "info", "{e}");
    assert_eq!(e["workspaceId"], ws.as_str());
    assert_eq!(e["detail"]["reason"], "user_stop", "{e}");

    // Unknown session ids, on every route.
    let unknown = format!("{}/nope", sessions_path(&ws));
    for path in [unknown.clone(), format!("{unknown}/history")] {
        let (s, body) = agent.get_json(&path).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (404, Some("session_not_found")),
            "{path}: {body}"
        );
    }
    let (s, body) = agent
        .send_json(Method::POST, &format!("{unknown}/stop"), json!({}))
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (404, Some("session_not_found")),
        "{body}"
    );
    let err = Client::try_open(&agent, &ws, "nope", "")
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (err.0, err.1["error"].as_str()),
        (404, Some("session_not_found")),
        "{err:?}"
    );
    // A session is only reachable through its own workspace.
    let (s, body) = agent
        .get_json(&format!("/workspaces/nope/agent-sessions/{a}"))
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (404, Some("workspace_not_found")),
        "{body}"
    );

    // Bad bodies: 400 invalid_request, before any limit.
    let mut env_too_many = serde_json::Map::new();
    for i in 0..65 {
        env_too_many.insert(format!("V{i}"), json!("x"));
    }
    let bad = [
        json!({"label": "x".repeat(129)}),
        json!({"label": "tab\there"}),
        json!({"agent": "nope"}),
        json!({"agent": "fixture", "command": ["fixture-agent"]}),
        json!({"command": []}),
        json!({"env": {"1BAD": "x"}}),
        json!({"env": {"A-B": "x"}}),
        json!({"env": {"": "x"}}),
        json!({"env": {"A B": "x"}}),
        json!({"env": {"OK": "nul\u{0}"}}),
        json!({"env": env_too_many}),
        json!({"env": {"BIG": "x".repeat(33 * 1024)}}),
        json!({"env": "A=B"}),
        json!({"command": "fixture-agent"}),
    ];
    for body in bad {
        let (s, answer) = create_session(&agent, &ws, body.clone()).await;
        assert_eq!(
            (s, answer["error"].as_str()),
            (400, Some("invalid_request")),
            "{body} → {answer}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let (s, answer) = create_session(&agent, &ws, json!({"agent": "nope"})).await;
    assert!(
        answer["message"].as_str().unwrap().contains("nope"),
        "{s} {answer}"
    );
    let r = agent
        .req(Method::POST, &sessions_path(&ws))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Valid env names are fine (at the limit: 64 entries).
    let mut env_max = serde_json::Map::new();
    for i in 0..64 {
        env_max.insert(format!("_V{i}"), json!("x"));
    }
    stop_session(&agent, &ws, &b).await;
    let (s, body) = create_session(&agent, &ws, json!({"env": env_max})).await;
    assert_eq!(s, 201, "{body}");
    agent.delete(&ws).await;
}

#[tokio::test]
async fn idempotency_keys_hold_under_concurrency_and_across_a_restart() {
    let mut agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "idem").await;

    // Five parallel creates with one key: one session, one 201.
    let answers = futures::future::join_all((0..5).map(|i| {
        create_keyed(
            &agent,
            &ws,
            "key-1",
            json!({"label": format!("try {i}"), "agent": "fixture"}),
        )
    }))
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let replayed = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 4), "{answers:#?}");
    let first = answers.iter().find(|(s, _)| *s == 201).unwrap().1.clone();
    let sid = first["id"].as_str().unwrap().to_string();
    for (_, body) in &answers {
        assert_eq!(body["id"], sid.as_str(), "{answers:#?}");
        assert_eq!(body["label"], first["label"], "the first create's session");
    }
    let (_, list) = agent.get_json(&sessions_path(&ws)).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    wait_status(&agent, &ws, &sid, "running").await;

    // The same key again, whatever the body says (env included): the same session.
    let (s, again) = create_keyed(
        &agent,
        &ws,
        "key-1",
        json!({"label": "other", "command": ["fixture-agent"], "env": {"X": "y"}}),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["id"], sid.as_str());
    assert_eq!(again["label"], first["label"]);
    assert_eq!(again["status"], "running");

    // Another key, or none: new sessions.
    let (s, other) = create_keyed(&agent, &ws, "key-2", json!({})).await;
    assert_eq!(s, 201, "{other}");
    assert_ne!(other["id"], sid.as_str());
    let (s1, n1) = create_session(&agent, &ws, json!({})).await;
    let (s2, n2) = create_session(&agent, &ws, json!({})).await;
    assert_eq!((s1, s2), (201, 201));
    assert_ne!(n1["id"], n2["id"]);
    // The key is remembered after the session stopped.
    stop_session(&agent, &ws, &sid).await;
    let (s, again) = create_keyed(&agent, &ws, "key-1", json!({})).await;
    assert_eq!(
        (s, again["id"].as_str()),
        (200, Some(sid.as_str())),
        "{again}"
    );
    assert_eq!(again["status"], "stopped");

    // Across a restart, for at least 24 hours: the key is made 23 hours old while the
    // agent is down.
    agent.kill();
    {
        let url = format!(
            "sqlite://{}?mode=rw",
            agent.data_dir().join("agent.db").display()
        );
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .expect("open the agent's store");
        let old = (chrono::Utc::now() - chrono::Duration::hours(23)).to_rfc3339();
        let changed = sqlx::query("UPDATE idempotency_keys SET created_at = ? WHERE key = 'key-1'")
            .bind(old)
            .execute(&pool)
            .await
            .expect("age the key")
            .rows_affected();
        assert_eq!(changed, 1);
        pool.close().await;
    }
    agent.spawn().await;
    agent.wait_for(&ws, WorkspaceStatus::Running).await;
    let (s, again) = create_keyed(&agent, &ws, "key-1", json!({})).await;
    assert_eq!(
        (s, again["id"].as_str()),
        (200, Some(sid.as_str())),
        "{again}"
    );
    let (s, again) = create_keyed(&agent, &ws, "key-2", json!({})).await;
    assert_eq!(
        (s, again["id"].as_str()),
        (200, other["id"].as_str()),
        "{again}"
    );
    // Bad keys are refused.
    let (s, body) = create_keyed(&agent, &ws, &"k".repeat(256), json!({})).await;
    assert_eq!(s, 400, "{body}");
    agent.delete(&ws).await;
}

#[tokio::test]
async fn refresh_and_reattach_see_the_whole_history_which_survives_a_restart() {
    let mut agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "history").await;
    let sid = running_session(&agent, &ws, json!({})).await;
    let mut c = Client::open(&agent, &ws, &sid, "").await;

    // More frames and bytes than the in-memory tail holds.
    for i in 0..14 {
        let frames = c.turn(&format!("echo number {i}")).await;
        assert_eq!(said(&frames), format!("You said: number {i}."));
    }
    let big = "y".repeat(100_000);
    let frames = c.turn(&format!("echo {big}")).await;
    assert_eq!(said(&frames), format!("You said: {big}."));
    let seen = c.seen.clone();
    let n = seen.len() as u64;
    assert!(n > 70, "{n} frames");
    assert_eq!(seqs(&seen), (1..=n).collect::<Vec<_>>(), "contiguous seqs");

    // A refresh: close, attach again, get every frame exactly as it was.
    c.close().await;
    let mut c = Client::reopen(&agent, &ws, &sid, "").await;
    assert_eq!(c.attached["seq"], n, "session.attached carries the head");
    let mut replay = vec![];
    for _ in 0..n {
        replay.push(c.next().await);
    }
    assert_eq!(replay, seen, "the replay is the conversation, unchanged");
    // Then live frames continue the count.
    let frames = c.turn("echo after").await;
    assert_eq!(frames[0]["seq"], n + 1);
    let n = c.last;

    // A restarted client: only what it missed.
    let mut c2 = Client::open(
        &agent,
        &ws,
        &sid,
        &format!("?takeover=true&since={}", n - 3),
    )
    .await;
    let detached = c.next().await;
    assert_eq!(detached["type"], "session.detached");
    let got: Vec<Value> = vec![c2.next().await, c2.next().await, c2.next().await];
    assert_eq!(seqs(&got), vec![n - 2, n - 1, n]);
    // At or above the head: nothing replayed; the next frame is live.
    for since in [n, n + 100] {
        c2.close().await;
        c2 = Client::reopen(&agent, &ws, &sid, &format!("?since={since}")).await;
        let frames = c2.turn("echo live").await;
        assert_eq!(
            frames[0]["seq"],
            c2.attached["seq"].as_u64().unwrap() + 1,
            "{frames:#?}"
        );
    }
    let head = c2.last;

    // GET …/history: pages with since/limit and `more`.
    let all = frames_of(&history(&agent, &ws, &sid, "").await);
    assert_eq!(seqs(&all), (1..=head).collect::<Vec<_>>());
    assert_eq!(
        all[..seen.len()],
        seen[..],
        "history = what the socket sent"
    );
    let page = history(&agent, &ws, &sid, "?since=0&limit=10").await;
    assert_eq!(seqs(&frames_of(&page)), (1..=10).collect::<Vec<_>>());
    assert_eq!(page["more"], true);
    let page = history(&agent, &ws, &sid, &format!("?since=10&limit={}", head - 10)).await;
    assert_eq!(seqs(&frames_of(&page)), (11..=head).collect::<Vec<_>>());
    assert_eq!(page["more"], false);
    let page = history(&agent, &ws, &sid, &format!("?since={}", head - 1)).await;
    assert_eq!(seqs(&frames_of(&page)), vec![head]);
    let page = history(&agent, &ws, &sid, &format!("?since={head}")).await;
    assert_eq!((frames_of(&page).len(), &page["more"]), (0, &json!(false)));
    for q in ["?limit=0", "?limit=10001", "?since=abc", "?since=-1"] {
        let (s, body) = agent
            .get_json(&format!("{}/{sid}/history{q}", sessions_path(&ws)))
            .await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{q}: {body}"
        );
    }
    let bad = Client::try_open(&agent, &ws, &sid, "?since=x&takeover=true")
        .await
        .err();
    assert_eq!(bad.map(|e| e.0), Some(400));
    c2.close().await;

    // sam-agent restarts (a crash): the session lives on in its holder, with its
    // whole history, and takes the next prompt with the next seq.
    agent.restart().await;
    let s = session(&agent, &ws, &sid).await;
    assert_eq!(s["status"], "running", "{s}");
    let after = frames_of(&history(&agent, &ws, &sid, "?limit=10000").await);
    assert_eq!(after, all, "the history is the same after the restart");
    let mut c3 = Client::open(&agent, &ws, &sid, &format!("?since={head}")).await;
    c3.prompt("echo after the restart").await;
    let turn = c3.until("agent.turn_end").await;
    let turn_seqs: Vec<u64> = turn.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(
        turn_seqs.iter().all(|q| *q > head),
        "seq goes on from the head: {turn_seqs:?}"
    );
    assert!(
        turn.iter()
            .any(|f| f["update"]["content"]["text"] == "after the restart"),
        "{turn:?}"
    );
    c3.close().await;
    agent.delete(&ws).await;
}

#[tokio::test]
async fn one_interactive_attachment_takeover_and_watchers() {
    let agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "attach").await;
    let sid = running_session(&agent, &ws, json!({})).await;

    let mut a = Client::open(&agent, &ws, &sid, "").await;
    let err = Client::try_open(&agent, &ws, &sid, "")
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (err.0, err.1["error"].as_str()),
        (409, Some("session_already_attached")),
        "{err:?}"
    );
    let err = Client::try_open(&agent, &ws, &sid, "?takeover=false")
        .await
        .err()
        .expect("refused");
    assert_eq!(err.0, 409);

    // Watchers: never 409, not `attached`, counted.
    let mut w1 = Client::open(&agent, &ws, &sid, "?watch=true").await;
    let mut w2 = Client::open(&agent, &ws, &sid, "?watch=true").await;
    let s = session(&agent, &ws, &sid).await;
    assert_eq!(
        (&s["attached"], &s["watchers"]),
        (&json!(true), &json!(2)),
        "{s}"
    );

    // A watcher that sends gets `error` and stays; nothing reaches the conversation.
    w1.send(json!({"type": "prompt", "text": "echo from a watcher"}))
        .await;
    let e = w1.expect_error().await;
    assert_eq!(e["seq"], 0);
    w1.send(json!({"type": "cancel"})).await;
    w1.expect_error().await;

    // Everyone sees the same frames.
    let turn = a.turn("echo one").await;
    assert_eq!(turn[0]["seq"], 1, "the watcher's prompt was not recorded");
    assert_eq!(w1.until("agent.turn_end").await, turn);
    assert_eq!(w2.until("agent.turn_end").await, turn);

    // Takeover: the old socket is told, then closed with 4001; watchers stay.
    let head = turn.last().unwrap()["seq"].as_u64().unwrap();
    let mut b = Client::open(&agent, &ws, &sid, &format!("?takeover=true&since={head}")).await;
    let detached = a.next().await;
    assert_eq!(detached["type"], "session.detached");
    assert_eq!(detached["reason"], "takeover");
    assert_eq!(detached["seq"], turn.last().unwrap()["seq"]);
    let (rest, code) = a.until_closed().await;
    assert!(rest.is_empty(), "{rest:#?}");
    assert_eq!(code, Some(4001));
    let s = session(&agent, &ws, &sid).await;
    assert_eq!(
        (&s["attached"], &s["watchers"]),
        (&json!(true), &json!(2)),
        "{s}"
    );
    let turn = b.turn("echo two").await;
    assert_eq!(w1.until("agent.turn_end").await, turn);
    assert_eq!(w2.until("agent.turn_end").await, turn);
    // A takeover with nobody attached just attaches.
    b.close().await;
    wait_session(&agent, &ws, &sid, "detached", |s| s["attached"] == false).await;
    let b = Client::open(&agent, &ws, &sid, "?takeover=true").await;
    b.close().await;

    // Watchers leaving are counted down.
    w1.close().await;
    w2.close().await;
    let s = wait_session(&agent, &ws, &sid, "unwatched", |s| {
        s["watchers"] == 0 && s["attached"] == false
    })
    .await;
    assert_eq!(s["status"], "running");

    // Two attaches at once, without takeover: exactly one wins, every time.
    for round in 0..10 {
        let (x, y) = tokio::join!(
            Client::try_open(&agent, &ws, &sid, ""),
            Client::try_open(&agent, &ws, &sid, "")
        );
        let (winner, loser) = match (x, y) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (Ok(_), Ok(_)) => panic!("round {round}: both attached"),
            (Err(l1), Err(l2)) => panic!("round {round}: both refused: {l1:?} {l2:?}"),
        };
        assert_eq!(
            (loser.0, loser.1["error"].as_str()),
            (409, Some("session_already_attached"))
        );
        assert_eq!(session(&agent, &ws, &sid).await["attached"], true);
        winner.close().await;
        wait_session(&agent, &ws, &sid, "detached", |s| s["attached"] == false).await;
    }

    // A watcher of a stopped session: not running.
    let mut w = Client::open(&agent, &ws, &sid, "?watch=true").await;
    stop_session(&agent, &ws, &sid).await;
    let (frames, code) = w.until_closed().await;
    assert_eq!(frames.last().unwrap()["type"], "session.stopped");
    assert_eq!(code, Some(1000));
    let err = Client::try_open(&agent, &ws, &sid, "?watch=true")
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (err.0, err.1["error"].as_str()),
        (409, Some("session_not_running"))
    );
    let err = Client::try_open(&agent, &ws, &sid, "?takeover=maybe")
        .await
        .err()
        .expect("refused");
    assert_eq!(err.0, 400);
    agent.delete(&ws).await;
}

#[tokio::test]
async fn stop_racing_attach_ends_one_allowed_way_50_times() {
    let agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "race").await;
    let (mut stop_won, mut attach_won) = (0, 0);
    for i in 0..50u64 {
        let sid = running_session(&agent, &ws, json!({})).await;
        let attach = async {
            tokio::time::sleep(Duration::from_micros((i % 5) * 400)).await;
            match Client::try_open(&agent, &ws, &sid, "").await {
                Err(refused) => Err(refused),
                Ok(mut c) => Ok(c.until_closed().await),
            }
        };
        let stop = async {
            tokio::time::sleep(Duration::from_micros(((i / 5) % 5) * 400)).await;
            stop_session(&agent, &ws, &sid).await
        };
        let (attached, stopped) = tokio::time::timeout(WAIT, async { tokio::join!(attach, stop) })
            .await
            .unwrap_or_else(|_| panic!("round {i} hung"));
        assert_eq!(stopped["status"], "stopped");
        assert_eq!(stopped["stopReason"], "user_stop");
        match attached {
            Err((status, body)) => {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (409, Some("session_not_running")),
                    "round {i}: {body}"
                );
                stop_won += 1;
            }
            Ok((frames, code)) => {
                let last = frames
                    .last()
                    .unwrap_or_else(|| panic!("round {i}: no frames"));
                assert_eq!(last["type"], "session.stopped", "round {i}: {frames:#?}");
                assert_eq!(last["reason"], "user_stop");
                assert_eq!(code, Some(1000), "round {i}");
                attach_won += 1;
            }
        }
        let s = session(&agent, &ws, &sid).await;
        assert_eq!(
            s["attached"], false,
            "round {i}: no attachment lingers: {s}"
        );
    }
    eprintln!("stop won {stop_won}, attach won {attach_won}");
    assert_eq!(stop_won + attach_won, 50);
    agent.delete(&ws).await;
}

#[tokio::test]
async fn permissions_wait_for_a_late_attach_and_cancel_resolves_them() {
    let agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "perm").await;
    let sid = running_session(&agent, &ws, json!({})).await;

    let mut a = Client::open(&agent, &ws, &sid, "").await;
    a.prompt("permission").await;
    let asked = a.until("agent.permission").await;
    let p = asked.last().unwrap().clone();
    assert_eq!(p["toolCall"]["title"], "Run a dangerous command", "{p}");
    let options: Vec<&str> = p["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["optionId"].as_str().unwrap())
        .collect();
    assert_eq!(options, vec!["allow", "reject"]);
    let rid = p["requestId"].clone();
    assert!(rid.is_string() || rid.is_number(), "{p}");
    let e = wait_event(&agent, &ws, "permission_requested", |e| {
        is_event(e, "session.permission_requested", &sid)
    })
    .await;
    assert_eq!(e["level"], "warn");
    assert_eq!(e["message"], "Run a dangerous command");
    // The session says it waits for a person (the list's "waiting for you").
    assert_eq!(session(&agent, &ws, &sid).await["permissionPending"], true);

    // Nobody attached: the request waits.
    a.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let open = frames_of(&history(&agent, &ws, &sid, "").await);
    assert_eq!(
        open.last().unwrap()["type"],
        "agent.permission",
        "{open:#?}"
    );
    assert_eq!(session(&agent, &ws, &sid).await["status"], "running");

    // A late attach sees the open request in the replay and answers it.
    let mut b = Client::reopen(&agent, &ws, &sid, "").await;
    let replay: Vec<Value> = {
        let mut v = vec![];
        for _ in 0..open.len() {
            v.push(b.next().await);
        }
        v
    };
    assert_eq!(replay, open);

    // Bad answers: an unknown request, an option not offered. The request stays open.
    b.send(json!({"type": "permission.response", "requestId": 9999, "optionId": "allow"}))
        .await;
    b.expect_error().await;
    b.send(json!({"type": "permission.response", "requestId": "no-such", "optionId": "allow"}))
        .await;
    b.expect_error().await;
    b.send(json!({"type": "permission.response", "requestId": rid, "optionId": "always"}))
        .await;
    let e = b.expect_error().await;
    assert!(e["message"].as_str().unwrap().contains("always"), "{e}");
    b.send(json!({"type": "permission.response", "requestId": rid}))
        .await;
    b.expect_error().await;

    b.send(json!({"type": "permission.response", "requestId": rid, "optionId": "allow"}))
        .await;
    let frames = b.until("agent.turn_end").await;
    assert_eq!(
        frames[0]["type"], "agent.permission_resolved",
        "{frames:#?}"
    );
    assert_eq!(frames[0]["requestId"], rid);
    assert_eq!(frames[0]["optionId"], "allow");
    assert_eq!(said(&frames), "permission: allow");
    assert_eq!(frames.last().unwrap()["stopReason"], "end_turn");
    let e = wait_event(&agent, &ws, "permission_resolved", |e| {
        is_event(e, "session.permission_resolved", &sid)
    })
    .await;
    assert_eq!(e["level"], "info");
    assert_eq!(e["detail"]["optionId"], "allow", "{e}");
    assert_eq!(e["detail"]["requestId"], rid, "{e}");
    assert!(
        session(&agent, &ws, &sid)
            .await
            .get("permissionPending")
            .is_none(),
        "answered: no longer waiting"
    );
    // Answering it twice: it is no longer open.
    b.send(json!({"type": "permission.response", "requestId": rid, "optionId": "allow"}))
        .await;
    b.expect_error().await;

    // Rejecting works the same way.
    b.prompt("permission").await;
    let p = b.until("agent.permission").await.last().unwrap().clone();
    b.send(
        json!({"type": "permission.response", "requestId": p["requestId"], "optionId": "reject"}),
    )
    .await;
    assert_eq!(said(&b.until("agent.turn_end").await), "permission: reject");

    // Cancel while a request waits: it is answered `cancelled`, the turn ends promptly.
    b.prompt("permission").await;
    let p = b.until("agent.permission").await.last().unwrap().clone();
    let t = Instant::now();
    b.send(json!({"type": "cancel"})).await;
    let frames = b.until("agent.turn_end").await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let resolved = frames
        .iter()
        .find(|f| f["type"] == "agent.permission_resolved")
        .expect("resolved");
    assert_eq!(resolved["requestId"], p["requestId"]);
    assert_eq!(resolved["outcome"], "cancelled");
    assert!(resolved.get("optionId").is_none(), "{resolved}");
    assert_eq!(frames.last().unwrap()["stopReason"], "cancelled");
    let e = wait_event(&agent, &ws, "permission cancelled", |e| {
        is_event(e, "session.permission_resolved", &sid) && e["detail"]["outcome"] == "cancelled"
    })
    .await;
    assert_eq!(e["detail"]["requestId"], p["requestId"]);

    // Cancel a long turn: it ends with `cancelled` in well under 2 s.
    b.prompt("slow").await;
    b.until("agent.output").await;
    let t = Instant::now();
    b.send(json!({"type": "cancel"})).await;
    let frames = b.until("agent.turn_end").await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(frames.last().unwrap()["stopReason"], "cancelled");
    assert_eq!(
        said(&b.turn("echo still here").await),
        "You said: still here."
    );

    // A request open when the session is stopped: the stop does not wait for it.
    b.prompt("permission").await;
    b.until("agent.permission").await;
    b.close().await;
    let t = Instant::now();
    let stopped = stop_session(&agent, &ws, &sid).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(stopped["status"], "stopped");
    let all = frames_of(&history(&agent, &ws, &sid, "").await);
    assert_eq!(all.last().unwrap()["type"], "session.stopped");
    agent.delete(&ws).await;
}

#[tokio::test]
async fn bad_client_frames_get_errors_and_prompts_queue_behind_the_turn() {
    let agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "frames").await;
    let sid = running_session(&agent, &ws, json!({})).await;
    let mut c = Client::open(&agent, &ws, &sid, "").await;
    c.turn("echo first").await;
    let head = c.last;

    // Each bad frame: an `error` with the head seq; the socket stays open.
    for bad in [
        "not json".to_string(),
        "[1,2]".to_string(),
        json!({"type": "dance"}).to_string(),
        json!({"text": "no type"}).to_string(),
        json!({"type": "prompt"}).to_string(),
        json!({"type": "prompt", "text": "   "}).to_string(),
        json!({"type": "prompt", "content": []}).to_string(),
        json!({"type": "permission.response", "requestId": 1, "optionId": "allow"}).to_string(),
    ] {
        c.socket
            .send(Message::Text(bad.clone().into()))
            .await
            .unwrap();
        let e = c.expect_error().await;
        assert_eq!(e["seq"], head, "{bad} → {e}");
    }
    c.socket
        .send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    c.expect_error().await;
    // ACP content that is not valid: the turn fails with agent.error, the session lives.
    c.send(json!({"type": "prompt", "content": [{"type": "no-such-block"}]}))
        .await;
    let frames = c.until("agent.error").await;
    assert_eq!(frames[0]["type"], "user.prompt");

    // Prompts sent during a turn are queued and run, in order, after it.
    c.prompt("delay 400").await;
    c.prompt("echo second").await;
    c.prompt("echo third").await;
    let mut frames = c.until("agent.turn_end").await;
    frames.extend(c.until("agent.turn_end").await);
    frames.extend(c.until("agent.turn_end").await);
    let order: Vec<(String, String)> = frames
        .iter()
        .filter(|f| f["type"] == "user.prompt" || f["type"] == "agent.turn_end")
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_string(),
                f["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |t: &str, x: &str| (t.to_string(), x.to_string());
    assert_eq!(
        order,
        vec![
            expect("user.prompt", "delay 400"),
            expect("agent.turn_end", ""),
            expect("user.prompt", "echo second"),
            expect("agent.turn_end", ""),
            expect("user.prompt", "echo third"),
            expect("agent.turn_end", ""),
        ]
    );
    assert_eq!(said(&frames), "doneYou said: second.You said: third.");

    // Up to 8 MiB a frame is fine (a big prompt)…
    let big = format!("delay 0 {}", "x".repeat(7 * MIB));
    let frames = c.turn(&big).await;
    assert_eq!(said(&frames), "done");
    // …one over 8 MiB closes the socket with 1009 (one byte over, or far over), and
    // the session lives on.
    for size in [8 * MIB + 1, 12 * MIB] {
        let mut big = json!({"type": "prompt", "text": ""}).to_string();
        big.insert_str(big.len() - 2, &"x".repeat(size - big.len()));
        assert_eq!(big.len(), size);
        let _ = c.socket.send(Message::Text(big.into())).await;
        let (frames, code) = c.until_closed().await;
        assert!(frames.is_empty(), "{frames:#?}");
        assert_eq!(code, Some(1009), "{size}");
        c = Client::reopen(&agent, &ws, &sid, "?since=1000000").await;
    }
    assert_eq!(said(&c.turn("echo alive").await), "You said: alive.");
    assert_eq!(session(&agent, &ws, &sid).await["status"], "running");
    c.close().await;
    agent.delete(&ws).await;
}

#[tokio::test]
async fn files_and_terminals_stay_inside_the_workspace() {
    let agent = start(&[]).await;
    let (ws, project) = workspace(&agent, "tools").await;
    let sid = running_session(&agent, &ws, json!({})).await;
    let mut c = Client::open(&agent, &ws, &sid, "").await;

    // session/new got the project folder as cwd: a terminal runs there.
    let frames = c.turn("terminal pwd").await;
    assert_eq!(said(&frames), format!("terminal exit Some(0): {project}"));

    let frames = c
        .turn(&format!("write {project}/notes/a.txt hello world"))
        .await;
    assert_eq!(said(&frames), format!("Wrote {project}/notes/a.txt."));
    assert!(
        frames
            .iter()
            .any(|f| f["update"]["sessionUpdate"] == "tool_call"),
        "{frames:#?}"
    );
    let (ok, out) = docker_exec(&ws, None, &format!("cat {project}/notes/a.txt"));
    assert!(ok, "{out}");
    assert_eq!(out, "hello world");
    let frames = c.turn(&format!("read {project}/notes/a.txt")).await;
    assert_eq!(said(&frames), "read: hello world");

    // Outside the project folder: refused, nothing written.
    let (ok, out) = docker_exec(&ws, None, &format!("ln -s /etc {project}/etc-link"));
    assert!(ok, "{out}");
    for (path, probe) in [
        ("/etc/x".to_string(), "/etc/x"),
        (format!("{project}/../../etc/y"), "/etc/y"),
        ("/workspaces/other/../../etc/z".to_string(), "/etc/z"),
        (format!("{project}/etc-link/w"), "/etc/w"),
        ("relative.txt".to_string(), "relative.txt"),
    ] {
        let frames = c.turn(&format!("write {path} evil")).await;
        let text = said(&frames);
        assert!(text.starts_with("write failed"), "{path}: {text}");
        let (exists, _) = docker_exec(&ws, None, &format!("test -e {probe}"));
        assert!(!exists, "{probe} was written");
    }
    for path in [
        "/etc/passwd".to_string(),
        format!("{project}/etc-link/passwd"),
        format!("{project}/missing"),
    ] {
        let text = said(&c.turn(&format!("read {path}")).await);
        assert!(text.starts_with("read failed"), "{path}: {text}");
    }

    // terminal/*: the command runs in the container; output and exit code come back.
    let frames = c.turn("terminal echo hi; exit 4").await;
    assert_eq!(said(&frames), "terminal exit Some(4): hi");
    // Both streams are kept (their interleaving is the engine's).
    let text = said(&c.turn("terminal echo out; echo err >&2").await);
    assert!(text.starts_with("terminal exit Some(0): "), "{text}");
    assert!(text.contains("out") && text.contains("err"), "{text}");
    c.close().await;
    agent.delete(&ws).await;
}

#[tokio::test]
async fn agent_failures_crashes_exits_and_missing_commands() {
    let agent = start(&["--agent", "ghost=no-such-acp --flag"]).await;
    let (ws, _) = workspace(&agent, "failures").await;

    // A prompt answered with a JSON-RPC error: agent.error, and the next prompt runs.
    let s1 = running_session(&agent, &ws, json!({})).await;
    let mut c = Client::open(&agent, &ws, &s1, "").await;
    c.prompt("fail").await;
    let frames = c.until("agent.error").await;
    let message = frames.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.ends_with(": scripted failure"), "{message}");
    let e = wait_event(&agent, &ws, "session.error", |e| {
        is_event(e, "session.error", &s1)
    })
    .await;
    assert_eq!(e["level"], "error");
    assert!(
        e["message"].as_str().unwrap().contains("scripted failure"),
        "{e}"
    );
    assert_eq!(said(&c.turn("echo next").await), "You said: next.");
    assert_eq!(session(&agent, &ws, &s1).await["status"], "running");

    // A crash: error, its stderr in the error and an agent.error frame, then
    // session.stopped and a normal close.
    c.prompt("crash").await;
    let (frames, code) = c.until_closed().await;
    assert_eq!(code, Some(1000), "{frames:#?}");
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["user.prompt", "agent.error", "session.stopped"],
        "{frames:#?}"
    );
    assert!(
        frames[1]["message"]
            .as_str()
            .unwrap()
            .contains("crashing on purpose"),
        "{frames:#?}"
    );
    assert_eq!(frames[2]["reason"], "error");
    let s = session(&agent, &ws, &s1).await;
    assert_eq!(
        (&s["status"], &s["stopReason"]),
        (&json!("error"), &json!("error")),
        "{s}"
    );
    assert!(
        s["error"].as_str().unwrap().contains("crashing on purpose"),
        "{s}"
    );
    assert!(s["stoppedAt"].is_string());
    let e = wait_event(&agent, &ws, "session.stopped", |e| {
        is_event(e, "session.stopped", &s1)
    })
    .await;
    assert_eq!(e["level"], "error", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("crashing on purpose"),
        "{e}"
    );

    // A clean exit: stopped, agent_exit, no error.
    let s2 = running_session(
        &agent,
        &ws,
        json!({"env": {"FIXTURE_STDERR": "starting up"}}),
    )
    .await;
    let mut c = Client::open(&agent, &ws, &s2, "").await;
    c.prompt("exit").await;
    let (frames, code) = c.until_closed().await;
    assert_eq!(code, Some(1000));
    assert_eq!(frames.last().unwrap()["type"], "session.stopped");
    assert_eq!(frames.last().unwrap()["reason"], "agent_exit");
    assert!(
        !frames.iter().any(|f| f["type"] == "agent.error"),
        "{frames:#?}"
    );
    let s = session(&agent, &ws, &s2).await;
    assert_eq!(
        (&s["status"], &s["stopReason"]),
        (&json!("stopped"), &json!("agent_exit")),
        "{s}"
    );
    assert!(s.get("error").is_none_or(Value::is_null), "{s}");
    let e = wait_event(&agent, &ws, "session.stopped", |e| {
        is_event(e, "session.stopped", &s2)
    })
    .await;
    assert_eq!(e["level"], "info", "{e}");

    // Commands that do not exist, or fail before the handshake: error, saying why.
    let (st, s3) = create_session(&agent, &ws, json!({"command": ["no-such-agent"]})).await;
    assert_eq!(st, 201, "{s3}");
    let (st, s4) = create_session(&agent, &ws, json!({"agent": "ghost"})).await;
    assert_eq!(st, 201, "{s4}");
    for s in [&s3, &s4] {
        let sid = s["id"].as_str().unwrap();
        let s = wait_session(&agent, &ws, sid, "ended", |s| s["status"] == "error").await;
        assert_eq!(s["stopReason"], "error", "{s}");
        let error = s["error"].as_str().unwrap();
        assert!(error.contains("not found"), "{error}");
        let frames = frames_of(&history(&agent, &ws, sid, "").await);
        let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(types, vec!["agent.error", "session.stopped"], "{frames:#?}");
        assert_eq!(frames[0]["message"].as_str(), Some(error));
    }
    let s = create_session(&agent, &ws, json!({"command": ["true"]}))
        .await
        .1;
    let s = wait_session(&agent, &ws, s["id"].as_str().unwrap(), "ended", |s| {
        s["status"] == "error"
    })
    .await;
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("before completing the ACP handshake"),
        "{s}"
    );
    let s = create_session(&agent, &ws, json!({"command": ["/etc"]}))
        .await
        .1;
    let s = wait_session(&agent, &ws, s["id"].as_str().unwrap(), "ended", |s| {
        s["status"] == "error"
    })
    .await;
    assert!(
        s["error"].as_str().unwrap().contains("cannot be run"),
        "{s}"
    );
    let s5 = create_session(
        &agent,
        &ws,
        json!({"command": ["sh", "-c", "echo boom-on-stderr >&2; exit 5"]}),
    )
    .await
    .1;
    let sid = s5["id"].as_str().unwrap();
    let s = wait_session(&agent, &ws, sid, "ended", |s| s["status"] == "error").await;
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("status 5") && error.contains("boom-on-stderr"),
        "{error}"
    );

    // The node and the workspace carry on: a new session works.
    let s6 = running_session(&agent, &ws, json!({})).await;
    let mut c = Client::open(&agent, &ws, &s6, "").await;
    assert_eq!(said(&c.turn("echo fine").await), "You said: fine.");

    // An idle agent killed from outside: the session ends `error`, saying so.
    let (ok, out) = docker_exec(&ws, None, "kill -9 $(pidof fixture-agent)");
    assert!(ok, "{out}");
    let (frames, code) = c.until_closed().await;
    assert_eq!(code, Some(1000));
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["agent.error", "session.stopped"], "{frames:#?}");
    assert!(
        frames[0]["message"].as_str().unwrap().contains("signal 9"),
        "{frames:#?}"
    );
    let s = session(&agent, &ws, &s6).await;
    assert_eq!(
        (&s["status"], &s["stopReason"]),
        (&json!("error"), &json!("error")),
        "{s}"
    );

    // A prompt sent before the session runs waits for it.
    let (st, slow) = create_session(
        &agent,
        &ws,
        json!({"command": ["sh", "-c", "sleep 0.5; exec fixture-agent"]}),
    )
    .await;
    assert_eq!(st, 201, "{slow}");
    let sid = slow["id"].as_str().unwrap();
    let mut c = Client::open(&agent, &ws, sid, "").await;
    c.prompt("echo early").await;
    assert_eq!(session(&agent, &ws, sid).await["status"], "starting");
    let frames = c.until("agent.turn_end").await;
    assert_eq!(frames[0]["type"], "user.prompt");
    assert_eq!(said(&frames), "You said: early.");
    c.close().await;
    agent.delete(&ws).await;
}

#[tokio::test]
async fn stopping_a_session_ends_an_agent_that_never_answered() {
    let agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "silent").await;
    let (s, body) = create_session(&agent, &ws, json!({"command": ["sleep", "4242"]})).await;
    assert_eq!(s, 201, "{body}");
    let sid = body["id"].as_str().unwrap();
    let running = || {
        docker_exec(
            &ws,
            None,
            "ps -o args | grep -v grep | grep -c 'sleep 4242'",
        )
        .1
    };
    let deadline = Instant::now() + WAIT;
    while running().trim() != "1" {
        assert!(Instant::now() < deadline, "the agent process never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(session(&agent, &ws, sid).await["status"], "starting");
    let stopped = stop_session(&agent, &ws, sid).await;
    assert_eq!(stopped["status"], "stopped");
    let deadline = Instant::now() + Duration::from_secs(5);
    while running().trim() != "0" {
        assert!(
            Instant::now() < deadline,
            "the agent process outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Stopped right after create, while the process starts (an idempotent replay
    // hands out the id while the first create still runs): no process is left.
    for i in 0..10 {
        let key = format!("race-{i}");
        let racer = |delay: u64| {
            let (agent, ws, key) = (&agent, &ws, key.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let (s, body) = create_keyed(agent, ws, &key, json!({})).await;
                assert!(s == 200 || s == 201, "{body}");
                let stopped = stop_session(agent, ws, body["id"].as_str().unwrap()).await;
                assert_eq!(stopped["status"], "stopped");
            }
        };
        tokio::join!(racer(0), racer(1), racer(2), racer(3));
    }
    let agents = || {
        docker_exec(
            &ws,
            None,
            "ps -o args | grep -v grep | grep -c fixture-agent",
        )
        .1
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while agents().trim() != "0" {
        assert!(
            Instant::now() < deadline,
            "agent processes outlived their sessions: {}",
            agents()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An agent that started processes of its own (as codex-acp's Node.js
    // wrapper starts its binary): a stop ends them too, none is left behind.
    let sid = running_session(
        &agent,
        &ws,
        json!({"command": ["sh", "-c", "sleep 4343 & sleep 4344 & exec fixture-agent"]}),
    )
    .await;
    let children = || {
        docker_exec(
            &ws,
            None,
            "ps -o args | grep -v grep | grep -c 'sleep 434[34]'",
        )
        .1
    };
    assert_eq!(children().trim(), "2");
    stop_session(&agent, &ws, &sid).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while children().trim() != "0" {
        assert!(
            Instant::now() < deadline,
            "the agent's own processes outlived its session: {}",
            children()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.delete(&ws).await;
}

#[tokio::test]
async fn authentication_through_env_and_credentials_never_leak() {
    let agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "auth").await;
    let secret = format!("sk-fixture-{:016x}", rand::random::<u64>());
    let other = format!("tok-other-{:016x}", rand::random::<u64>());

    // The agent wants FIXTURE_KEY; the session's env has it: authenticate, then run.
    let env = json!({"FIXTURE_AUTH_VAR": "FIXTURE_KEY", "FIXTURE_KEY": secret});
    let ok = running_session(&agent, &ws, json!({"label": "authed", "env": env})).await;
    let mut c = Client::open(&agent, &ws, &ok, "").await;
    assert_eq!(said(&c.turn("echo authed").await), "You said: authed.");
    c.close().await;
    // With a command too.
    let cmd = running_session(
        &agent,
        &ws,
        json!({"command": ["fixture-agent"], "env": {"FIXTURE_AUTH_VAR": "FIXTURE_KEY", "FIXTURE_KEY": secret}}),
    )
    .await;

    // Without it: the session ends `error`, naming the variable and the other way.
    let (s, bad) = create_session(
        &agent,
        &ws,
        json!({"env": {"FIXTURE_AUTH_VAR": "FIXTURE_KEY", "OTHER_TOKEN": other}}),
    )
    .await;
    assert_eq!(s, 201, "{bad}");
    let bad = bad["id"].as_str().unwrap().to_string();
    let s = wait_session(&agent, &ws, &bad, "ended", |s| s["status"] == "error").await;
    assert_eq!(s["stopReason"], "error");
    let error = s["error"].as_str().unwrap().to_string();
    assert!(error.contains("FIXTURE_KEY"), "{error}");
    assert!(
        error.to_lowercase().contains("log in with fixture"),
        "{error}"
    );
    assert!(error.contains("Authentication required"), "{error}");
    let frames = frames_of(&history(&agent, &ws, &bad, "").await);
    let agent_error = frames
        .iter()
        .find(|f| f["type"] == "agent.error")
        .expect("agent.error");
    assert!(
        agent_error["message"]
            .as_str()
            .unwrap()
            .contains("FIXTURE_KEY")
    );
    assert_eq!(frames.last().unwrap()["type"], "session.stopped");
    assert_eq!(frames.last().unwrap()["reason"], "error");
    let e = wait_event(&agent, &ws, "session.stopped", |e| {
        is_event(e, "session.stopped", &bad)
    })
    .await;
    assert_eq!(e["level"], "error", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("FIXTURE_KEY"),
        "{e}"
    );

    // The secrets appear nowhere: answers, history, events, the log, the data dir.
    stop_session(&agent, &ws, &ok).await;
    stop_session(&agent, &ws, &cmd).await;
    wait_event(&agent, &ws, "session.stopped", |e| {
        is_event(e, "session.stopped", &cmd)
    })
    .await;
    let mut answers = vec![];
    answers.push(agent.get_json(&sessions_path(&ws)).await.1.to_string());
    for sid in [&ok, &cmd, &bad] {
        answers.push(session(&agent, &ws, sid).await.to_string());
        answers.push(history(&agent, &ws, sid, "").await.to_string());
    }
    answers.push(agent.get_json("/events?limit=500").await.1.to_string());
    answers.push(
        agent
            .get_json(&format!("/workspaces/{ws}/events?limit=500"))
            .await
            .1
            .to_string(),
    );
    answers.push(agent.get_json("/node").await.1.to_string());
    for (i, a) in answers.iter().enumerate() {
        assert_absent(a, &secret, &format!("answer {i}"));
        assert_absent(a, &other, &format!("answer {i}"));
    }
    assert_absent(&agent.log(), &secret, "the agent log");
    assert_absent(&agent.log(), &other, "the agent log");
    let mut files = 0;
    let mut stack = vec![agent.data_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                assert_absent(&text, &secret, &path.display().to_string());
                assert_absent(&text, &other, &path.display().to_string());
                files += 1;
            }
        }
    }
    assert!(files >= 2, "the store and the histories were searched");
    agent.delete(&ws).await;
}

#[tokio::test]
async fn workspace_and_node_lifecycle_end_sessions_with_their_reason() {
    let agent = start(&[]).await;
    let (ws, _) = workspace(&agent, "ties").await;

    // Workspace stop.
    let s1 = running_session(&agent, &ws, json!({})).await;
    let mut c = Client::open(&agent, &ws, &s1, "").await;
    let mut w = Client::open(&agent, &ws, &s1, "?watch=true").await;
    let (s, _) = agent
        .send_json(Method::POST, &format!("/workspaces/{ws}/stop"), json!({}))
        .await;
    assert_eq!(s, 202);
    for client in [&mut c, &mut w] {
        let (frames, code) = client.until_closed().await;
        assert_eq!(
            frames.last().unwrap()["type"],
            "session.stopped",
            "{frames:#?}"
        );
        assert_eq!(frames.last().unwrap()["reason"], "workspace_stop");
        assert_eq!(code, Some(1000));
    }
    let s = session(&agent, &ws, &s1).await;
    assert_eq!(
        (&s["status"], &s["stopReason"]),
        (&json!("stopped"), &json!("workspace_stop")),
        "{s}"
    );
    let e = wait_event(&agent, &ws, "session.stopped", |e| {
        is_event(e, "session.stopped", &s1)
    })
    .await;
    assert_eq!(e["detail"]["reason"], "workspace_stop");
    agent.wait_for(&ws, WorkspaceStatus::Stopped).await;
    let (s, body) = create_session(&agent, &ws, json!({})).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("workspace_not_running")),
        "{body}"
    );
    let err = Client::try_open(&agent, &ws, &s1, "")
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (err.0, err.1["error"].as_str()),
        (409, Some("session_not_running"))
    );
    // The stopped session's conversation stays readable, with the workspace stopped.
    let frames = frames_of(&history(&agent, &ws, &s1, "").await);
    assert_eq!(frames.last().unwrap()["reason"], "workspace_stop");

    // Restart of a stopped workspace, then of a running one.
    let (s, _) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{ws}/restart"),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent.wait_for(&ws, WorkspaceStatus::Running).await;
    let s2 = running_session(&agent, &ws, json!({})).await;
    let mut c = Client::open(&agent, &ws, &s2, "").await;
    assert_eq!(
        said(&c.turn("echo before restart").await),
        "You said: before restart."
    );
    let (s, _) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{ws}/restart"),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    let (frames, code) = c.until_closed().await;
    assert_eq!(
        frames.last().unwrap()["reason"],
        "workspace_restart",
        "{frames:#?}"
    );
    assert_eq!(code, Some(1000));
    let s = session(&agent, &ws, &s2).await;
    assert_eq!(
        (&s["status"], &s["stopReason"]),
        (&json!("stopped"), &json!("workspace_restart")),
        "{s}"
    );
    agent.wait_for(&ws, WorkspaceStatus::Running).await;

    // Node stop: the dry run lists the active sessions and changes nothing.
    let s3 = running_session(&agent, &ws, json!({})).await;
    let (s, plan) = agent
        .send_json(Method::POST, "/node/stop?dryRun=true", json!({}))
        .await;
    assert_eq!(s, 200, "{plan}");
    let listed: Vec<&str> = plan["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![s3.as_str()], "{plan}");
    assert_eq!(plan["sessions"][0]["status"], "running");
    assert!(plan["workspaces"].to_string().contains(&ws), "{plan}");
    assert_eq!(session(&agent, &ws, &s3).await["status"], "running");
    let mut c = Client::open(&agent, &ws, &s3, "").await;
    let (s, body) = agent.send_json(Method::POST, "/node/stop", json!({})).await;
    assert_eq!(s, 200, "{body}");
    let (frames, code) = c.until_closed().await;
    assert_eq!(frames.last().unwrap()["reason"], "node_stop", "{frames:#?}");
    assert_eq!(code, Some(1000));
    let s = session(&agent, &ws, &s3).await;
    assert_eq!(
        (&s["status"], &s["stopReason"]),
        (&json!("stopped"), &json!("node_stop")),
        "{s}"
    );
    agent.delete(&ws).await;
}

#[tokio::test]
async fn many_sessions_run_at_once_in_and_across_workspaces() {
    let agent = start(&["--max-sessions-per-workspace", "4"]).await;
    let ((w1, _), (w2, _)) = tokio::join!(workspace(&agent, "many-1"), workspace(&agent, "many-2"));
    let agent = &agent;
    let creates = [&w1, &w1, &w1, &w1, &w2, &w2, &w2, &w2]
        .map(|ws| async move { (ws.clone(), running_session(agent, ws, json!({})).await) });
    let sessions = futures::future::join_all(creates).await;
    let (s, body) = create_session(agent, &w1, json!({})).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("session_limit_reached"))
    );
    for ws in [&w1, &w2] {
        let (_, list) = agent.get_json(&sessions_path(ws)).await;
        assert_eq!(list["sessions"].as_array().unwrap().len(), 4, "{list}");
    }
    // Every session holds its own conversation, all at the same time.
    let turns = sessions
        .iter()
        .enumerate()
        .map(|(i, (ws, sid))| async move {
            let mut c = Client::open(agent, ws, sid, "").await;
            let mut text = String::new();
            for round in 0..3 {
                text += &said(&c.turn(&format!("echo s{i} r{round}")).await);
            }
            c.close().await;
            text
        });
    let texts = futures::future::join_all(turns).await;
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(
            text,
            &format!("You said: s{i} r0.You said: s{i} r1.You said: s{i} r2."),
            "session {i}"
        );
    }
    for (ws, sid) in &sessions {
        let frames = frames_of(&history(agent, ws, sid, "").await);
        assert_eq!(frames.len(), 15, "three turns of five frames each");
    }
    futures::future::join(agent.delete(&w1), agent.delete(&w2)).await;
}
