//! Terminals survive a sam-agent crash, restart or upgrade: their holders own the
//! PTYs. Real Docker, real processes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(agent: &Agent, path: &str) -> Socket {
    let mut request = agent.ws_url(path).into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("connect")
        .0
}

async fn terminal(agent: &Agent, ws: &str, command: Option<&str>) -> String {
    let mut body = json!({"cols": 80, "rows": 24});
    if let Some(c) = command {
        body["command"] = json!(["sh", "-c", c]);
    }
    let (s, t) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{ws}/terminals"),
            body,
        )
        .await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_str().unwrap().to_string()
}

/// Everything up to `ready` (the replay), then reads live output for `live`.
async fn replay_and_live(socket: &mut Socket, live: Duration) -> (Vec<u8>, Vec<u8>) {
    let mut replay = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("frame")
            .unwrap()
            .unwrap()
        {
            Message::Binary(b) => replay.extend_from_slice(&b),
            Message::Text(t) if t.contains("\"ready\"") => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut after = Vec::new();
    let deadline = tokio::time::Instant::now() + live;
    while let Ok(Some(Ok(Message::Binary(b)))) =
        tokio::time::timeout_at(deadline, socket.next()).await
    {
        after.extend_from_slice(&b);
    }
    (replay, after)
}

fn numbers(bytes: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("n ")?.parse().ok())
        .collect()
}

fn holders_of(agent: &Agent) -> Vec<Value> {
    let dir = agent.data_dir().join("holders");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                .collect()
        })
        .unwrap_or_default()
}

const COUNTER: &str = "i=0; while :; do echo \"n $i\"; i=$((i+1)); sleep 0.02; done";

#[tokio::test]
async fn terminals_survive_kill_9_and_an_upgrade() {
    let mut agent = Agent::start().await;
    let ws = agent.running("survive").await;
    let counters = [
        terminal(&agent, &ws.id, Some(COUNTER)).await,
        terminal(&agent, &ws.id, Some(COUNTER)).await,
        terminal(&agent, &ws.id, Some(COUNTER)).await,
    ];
    let shell = terminal(&agent, &ws.id, None).await;
    // What a viewer saw before the crash.
    let mut seen = Vec::new();
    for t in &counters {
        let mut s = connect(&agent, &format!("/workspaces/{}/terminals/{t}/ws", ws.id)).await;
        let (replay, live) = replay_and_live(&mut s, Duration::from_millis(500)).await;
        let mut all = replay;
        all.extend(live);
        seen.push(all);
    }

    agent.kill();
    // Output goes on while no agent runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent.spawn().await;

    let (s, list) = agent
        .get_json(&format!("/workspaces/{}/terminals", ws.id))
        .await;
    assert_eq!(s, 200);
    let list = list["terminals"].as_array().unwrap().clone();
    assert_eq!(
        list.len(),
        4,
        "every terminal is listed after the restart: {list:?}"
    );
    assert!(list.iter().all(|t| t["exited"] == false), "{list:?}");

    for (t, before) in counters.iter().zip(&seen) {
        let mut s = connect(&agent, &format!("/workspaces/{}/terminals/{t}/ws", ws.id)).await;
        let (replay, live) = replay_and_live(&mut s, Duration::from_millis(300)).await;
        // The scrollback holds, byte for byte, what was seen before the crash…
        assert!(
            replay.windows(before.len()).any(|w| w == before.as_slice()),
            "the replay lost bytes seen before the crash"
        );
        // …and what was printed while the agent was down, with no gap.
        let n = numbers(&replay);
        let last_before = *numbers(before).last().unwrap();
        assert!(
            *n.last().unwrap() > last_before + 20,
            "printed while down: {} vs {last_before}",
            n.last().unwrap()
        );
        assert!(
            n.windows(2).all(|w| w[1] == w[0] + 1),
            "a gap in the counter"
        );
        let live_n = numbers(&live);
        assert!(
            !live_n.is_empty() && live_n[0] > *n.last().unwrap(),
            "live output follows the replay"
        );
    }
    // Input works after the restart.
    let mut s = connect(
        &agent,
        &format!("/workspaces/{}/terminals/{shell}/ws", ws.id),
    )
    .await;
    replay_and_live(&mut s, Duration::from_millis(100)).await;
    s.send(Message::Binary(b"echo after-''restart\n".to_vec().into()))
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&out).contains("after-restart") {
        assert!(Instant::now() < deadline, "no echo after the restart");
        if let Ok(Some(Ok(Message::Binary(b)))) =
            tokio::time::timeout(Duration::from_secs(5), s.next()).await
        {
            out.extend_from_slice(&b);
        }
    }

    // An upgrade: a new binary in another place, started after SIGTERM.
    let new_binary = agent.dir.path().join("sam-agent-new");
    std::fs::copy(AGENT, &new_binary).unwrap();
    let (status, _) = agent.terminate();
    assert!(status.success());
    let mut cmd = agent.command();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd = std::process::Command::new(&new_binary);
    cmd.args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(agent.dir.path().join("agent.log"))
        .unwrap();
    agent.child = Some(cmd.stderr(log).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.http.get(agent.url("/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the new agent did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, list) = agent
        .get_json(&format!("/workspaces/{}/terminals", ws.id))
        .await;
    assert_eq!(
        list["terminals"].as_array().unwrap().len(),
        4,
        "after the upgrade: {list}"
    );
    let mut s = connect(
        &agent,
        &format!("/workspaces/{}/terminals/{}/ws", ws.id, counters[0]),
    )
    .await;
    let (replay, _) = replay_and_live(&mut s, Duration::from_millis(100)).await;
    let n = numbers(&replay);
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1));

    // A workspace stop ends every holder.
    let (s, _) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{}/stop", ws.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent
        .wait_for(&ws.id, sam_protocol::WorkspaceStatus::Stopped)
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holders_of(&agent).is_empty() {
        assert!(
            Instant::now() < deadline,
            "holders outlived their workspace: {:?}",
            holders_of(&agent)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn twenty_restarts_under_load_lose_nothing() {
    let mut agent = Agent::start().await;
    let ws = agent.running("restarts").await;
    let t = terminal(&agent, &ws.id, Some(COUNTER)).await;
    let started = Instant::now();
    for _ in 0..20 {
        agent.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;
        agent.spawn().await;
    }
    let expected = (started.elapsed().as_millis() / 40) as usize;
    let mut s = connect(&agent, &format!("/workspaces/{}/terminals/{t}/ws", ws.id)).await;
    let (replay, live) = replay_and_live(&mut s, Duration::from_millis(300)).await;
    let n = numbers(&replay);
    assert!(
        n.len() > expected,
        "the counter ran through the restarts: {} lines, want > {expected}",
        n.len()
    );
    assert!(
        n.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in the counter"
    );
    assert!(!numbers(&live).is_empty(), "still running");
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn a_holder_killed_on_its_own_ends_its_terminal_clearly() {
    let mut agent = Agent::start().await;
    let ws = agent.running("lost").await;
    let t = terminal(&agent, &ws.id, None).await;
    let mut s = connect(&agent, &format!("/workspaces/{}/terminals/{t}/ws", ws.id)).await;
    replay_and_live(&mut s, Duration::from_millis(100)).await;
    let meta = holders_of(&agent)
        .into_iter()
        .find(|m| m["id"] == t.as_str())
        .expect("holder meta");
    let pid = meta["pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    // The viewer is told, in words and with an exit.
    let mut texts = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), s.next()).await {
        if let Message::Text(t) = msg {
            texts.push(t.to_string());
        }
    }
    assert!(
        texts.iter().any(|t| t.contains("holder process ended")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("\"exit\"")), "{texts:?}");
    let (_, list) = agent
        .get_json(&format!("/workspaces/{}/terminals", ws.id))
        .await;
    let entry = list["terminals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == t.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["exited"], true);
    assert_eq!(entry["exitCode"], 129);
    let (_, events) = agent
        .get_json(&format!("/workspaces/{}/events", ws.id))
        .await;
    assert!(
        events
            .to_string()
            .contains("holder process stopped unexpectedly"),
        "{events}"
    );

    // A stale record and another node's holder, found at start-up: clear events,
    // the rest keeps working.
    let holders = agent.data_dir().join("holders");
    std::fs::write(holders.join("t-stalestale12.json"), json!({"version":1,"kind":"terminal","node":agent.node_id,"workspace":ws.id,"id":"stalestale12","container":"x","createdAt":"2026-01-01T00:00:00Z","pid":1}).to_string()).unwrap();
    std::fs::write(holders.join("t-otherother1.json"), json!({"version":1,"kind":"terminal","node":"someone-else","workspace":ws.id,"id":"otherother1","container":"x","createdAt":"2026-01-01T00:00:00Z","pid":1}).to_string()).unwrap();
    std::fs::write(holders.join("t-corrupt.json"), "{ not json").unwrap();
    agent.restart().await;
    let (_, events) = agent.get_json("/events?limit=100").await;
    let text = events.to_string();
    assert!(text.contains("could not be recovered"), "{text}");
    assert!(text.contains("belongs to node"), "{text}");
    assert!(text.contains("could not be read"), "{text}");
    let t2 = terminal(&agent, &ws.id, None).await;
    assert!(!t2.is_empty());
    agent.delete(&ws.id).await;
}

// ---- agent sessions ----

async fn start_with_fixture() -> Agent {
    Agent::start_with(Options {
        args: vec!["--agent".into(), "fixture=fixture-agent".into()],
        env: vec![],
    })
    .await
}

async fn session(agent: &Agent, ws: &str) -> String {
    let (s, body) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{ws}/agent-sessions"),
            json!({"agent": "fixture"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let sid = body["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = agent
            .get_json(&format!("/workspaces/{ws}/agent-sessions/{sid}"))
            .await;
        if s["status"] == "running" {
            return sid;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_frames(socket: &mut Socket, until: &str, within: Duration) -> Vec<Value> {
    let mut out = vec![];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            let done = v["type"] == until;
            out.push(v);
            if done {
                return out;
            }
        }
    }
}

#[tokio::test]
async fn sessions_survive_kill_9_mid_turn_and_permissions_are_asked_again() {
    let mut agent = start_with_fixture().await;
    let ws = agent
        .create(json!({"displayName": "agents", "image": fixture_image()}))
        .await;
    let ws = agent
        .wait_for(&ws.id, sam_protocol::WorkspaceStatus::Running)
        .await;
    let slow = session(&agent, &ws.id).await;
    let asking = session(&agent, &ws.id).await;
    let path = |sid: &str| format!("/workspaces/{}/agent-sessions/{sid}/ws", ws.id);

    // A turn that runs ~3 s, and a permission request waiting for its person.
    let mut a = connect(&agent, &path(&slow)).await;
    a.send(Message::Text(
        json!({"type": "prompt", "text": "delay 2500"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    text_frames(&mut a, "user.prompt", Duration::from_secs(10)).await;
    let mut b = connect(&agent, &path(&asking)).await;
    b.send(Message::Text(
        json!({"type": "prompt", "text": "permission"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let asked = text_frames(&mut b, "agent.permission", Duration::from_secs(10)).await;
    let request_id = asked.last().unwrap()["requestId"].clone();

    agent.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.spawn().await;

    // Both are listed as running; the slow turn finishes and reaches a re-attached
    // client with no gap in seq.
    let (_, list) = agent
        .get_json(&format!("/workspaces/{}/agent-sessions", ws.id))
        .await;
    let list = list["sessions"].as_array().unwrap().clone();
    assert!(list.iter().all(|s| s["status"] == "running"), "{list:?}");
    let mut a = connect(&agent, &path(&slow)).await;
    let frames = text_frames(&mut a, "agent.turn_end", Duration::from_secs(15)).await;
    let seqs: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] != "session.attached")
        .filter_map(|f| f["seq"].as_u64())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap in seq: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f["update"]["content"]["text"] == "done"),
        "{frames:?}"
    );

    // The pending permission request is asked again on re-attach, and answering it works.
    let mut b = connect(&agent, &path(&asking)).await;
    let replay = text_frames(&mut b, "agent.permission", Duration::from_secs(10)).await;
    assert_eq!(replay.last().unwrap()["requestId"], request_id);
    b.send(Message::Text(
        json!({"type": "permission.response", "requestId": request_id, "optionId": "allow"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let answer = text_frames(&mut b, "agent.turn_end", Duration::from_secs(10)).await;
    assert!(
        answer
            .iter()
            .any(|f| f["update"]["content"]["text"] == "permission: allow"),
        "{answer:?}"
    );

    // A stop ends the holder; none is left.
    let (s, _) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{}/agent-sessions/{slow}/stop", ws.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    agent.delete(&ws.id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holders_of(&agent).is_empty() {
        assert!(
            Instant::now() < deadline,
            "holders outlived their workspace: {:?}",
            holders_of(&agent)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn twenty_restarts_with_sessions_lose_nothing_and_a_lost_holder_is_explained() {
    let mut agent = start_with_fixture().await;
    let ws = agent
        .create(json!({"displayName": "agents", "image": fixture_image()}))
        .await;
    let ws = agent
        .wait_for(&ws.id, sam_protocol::WorkspaceStatus::Running)
        .await;
    let sid = session(&agent, &ws.id).await;
    let path = format!("/workspaces/{}/agent-sessions/{sid}/ws", ws.id);
    let mut turns = 0;
    for i in 0..20 {
        // Live frames only (since beyond the head): this round's turn, not old ones.
        let mut c = connect(&agent, &format!("{path}?takeover=true&since=1000000")).await;
        c.send(Message::Text(
            json!({"type": "prompt", "text": format!("echo round {i}")})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        text_frames(&mut c, "agent.turn_end", Duration::from_secs(15)).await;
        turns += 1;
        agent.kill();
        agent.spawn().await;
    }
    let (_, page) = agent
        .get_json(&format!(
            "/workspaces/{}/agent-sessions/{sid}/history?limit=10000",
            ws.id
        ))
        .await;
    let frames = page["frames"].as_array().unwrap();
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        frames
            .iter()
            .filter(|f| f["type"] == "agent.turn_end")
            .count(),
        turns
    );

    // The holder killed on its own: the session ends `error`, saying why.
    let meta = holders_of(&agent)
        .into_iter()
        .find(|m| m["id"] == sid.as_str())
        .expect("session holder");
    std::process::Command::new("kill")
        .args(["-KILL", &meta["pid"].as_u64().unwrap().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = agent
            .get_json(&format!("/workspaces/{}/agent-sessions/{sid}", ws.id))
            .await;
        if s["status"] == "error" {
            assert!(
                s["error"]
                    .as_str()
                    .unwrap()
                    .contains("holder process ended"),
                "{s}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, page) = agent
        .get_json(&format!(
            "/workspaces/{}/agent-sessions/{sid}/history?limit=10000",
            ws.id
        ))
        .await;
    let last = page["frames"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "session.stopped");
    agent.delete(&ws.id).await;
}

/// An upgrade renames the new binary over the running one's path before the
/// restart; terminals opened in between still get their holder (from the
/// running image, not the path).
#[tokio::test]
async fn holders_start_while_the_binary_is_being_replaced() {
    let bin = tempfile::tempdir().unwrap();
    let path = bin.path().join("sam-agent");
    std::fs::copy(AGENT, &path).unwrap();
    let agent = Agent::start_binary(Some(path.clone()), Options::default()).await;
    let ws = agent.running("replaced").await;
    let next = bin.path().join("sam-agent.new");
    std::fs::copy(AGENT, &next).unwrap();
    std::fs::rename(&next, &path).unwrap();
    let t = terminal(&agent, &ws.id, Some("echo still-$((40+2)); sleep 30")).await;
    let mut s = connect(&agent, &format!("/workspaces/{}/terminals/{t}/ws", ws.id)).await;
    let (replay, live) = replay_and_live(&mut s, Duration::from_millis(800)).await;
    let all = [replay, live].concat();
    assert!(
        String::from_utf8_lossy(&all).contains("still-42"),
        "{}",
        String::from_utf8_lossy(&all)
    );
    agent.delete(&ws.id).await;
}
