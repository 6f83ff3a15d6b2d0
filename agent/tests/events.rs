//! The event log (CONTRACT §4 events, §5 `GET /events`) and the node stream
//! `/events/ws` (§7), against a real agent and Docker engine.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use reqwest::Method;
use sam_protocol::{Event, EventLevel, EventPage, EventType, NodeInfo, WorkspaceStatus};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn page(agent: &Agent, path: &str) -> EventPage {
    let (status, body) = agent.get_json(path).await;
    assert_eq!(status, 200, "GET {path} answered {body}");
    let obj = body.as_object().expect("object");
    assert!(
        obj.contains_key("nextCursor"),
        "nextCursor is always present: {body}"
    );
    serde_json::from_value(body).expect("EventPage")
}

/// Every event of the node (or a workspace), newest first, in one page.
async fn all_events(agent: &Agent, workspace: Option<&str>) -> Vec<Event> {
    let path = match workspace {
        Some(id) => format!("/workspaces/{id}/events?limit=500"),
        None => "/events?limit=500".to_string(),
    };
    let p = page(agent, &path).await;
    assert!(p.next_cursor.is_none(), "fewer than 500 events expected");
    p.events
}

/// Pages through `base` (which already has `?limit=…`) until `nextCursor` is null.
async fn page_through(agent: &Agent, base: &str, limit: usize) -> Vec<Event> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let path = match &cursor {
            Some(c) => format!("{base}&cursor={c}"),
            None => base.to_string(),
        };
        let p = page(agent, &path).await;
        assert!(p.events.len() <= limit, "page over its limit");
        all.extend(p.events.iter().cloned());
        match p.next_cursor {
            Some(c) => {
                assert_eq!(p.events.len(), limit, "only the last page is short");
                assert_eq!(
                    Some(&c),
                    p.events.last().map(|e| &e.id),
                    "the cursor is the page's oldest event"
                );
                cursor = Some(c);
            }
            None => return all,
        }
    }
    panic!("paging never ended");
}

fn assert_newest_first(events: &[Event]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].id > pair[1].id,
            "ids strictly decreasing: {} then {}",
            pair[0].id,
            pair[1].id
        );
    }
}

async fn rename(agent: &Agent, id: &str, name: &str) {
    let (status, body) = agent
        .send_json(
            Method::PATCH,
            &format!("/workspaces/{id}"),
            json!({"displayName": name}),
        )
        .await;
    assert_eq!(status, 200, "rename answered {body}");
}

async fn connect(agent: &Agent, query: &str) -> Socket {
    let mut request = agent
        .ws_url(&format!("/events/ws{query}"))
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {}", agent.node_token())).expect("header"),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect /events/ws");
    assert_eq!(response.status(), 101);
    socket
}

/// The next text frame as JSON (pings and pongs skipped); panics after `within`.
async fn next_frame(socket: &mut Socket, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, socket.next())
            .await
            .expect("no frame in time")
            .expect("socket ended")
            .expect("socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next event frame's event, skipping heartbeats.
async fn next_event(socket: &mut Socket, within: Duration) -> Event {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = next_frame(socket, left).await;
        match frame["type"].as_str() {
            Some("heartbeat") => continue,
            Some("event") => return serde_json::from_value(frame["event"].clone()).expect("event"),
            _ => panic!("unexpected frame {frame}"),
        }
    }
}

#[tokio::test]
async fn events_page_newest_first_without_gaps() {
    let agent = Agent::start().await;
    let a = agent.running("pager").await;
    let b = agent.running("other").await;
    for i in 1..=30 {
        rename(&agent, &a.id, &format!("pager {i}")).await;
    }
    for i in 1..=4 {
        rename(&agent, &b.id, &format!("other {i}")).await;
    }
    // Renaming to the name it has records nothing.
    rename(&agent, &b.id, "other 4").await;

    let all = all_events(&agent, None).await;
    assert_newest_first(&all);
    let renamed = |events: &[Event], ws: &str| {
        events
            .iter()
            .filter(|e| {
                e.kind == EventType::WorkspaceRenamed && e.workspace_id.as_deref() == Some(ws)
            })
            .count()
    };
    assert_eq!(renamed(&all, &a.id), 30);
    assert_eq!(renamed(&all, &b.id), 4);
    assert!(all.len() > 40, "{} events", all.len());
    for e in &all {
        assert_eq!(e.node_id, agent.node_id);
    }
    assert_eq!(
        all.last().map(|e| e.kind.clone()),
        Some(EventType::NodeStarted),
        "the oldest event is the agent's start"
    );

    let paged = page_through(&agent, "/events?limit=7", 7).await;
    assert_newest_first(&paged);
    let paged_ids: Vec<&str> = paged.iter().map(|e| e.id.as_str()).collect();
    let all_ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        paged_ids, all_ids,
        "paging gives every event once, in order"
    );
    assert_eq!(paged, all, "the same events whichever way they are read");

    // Default limit 50; bounds 1–500.
    let p = page(&agent, "/events").await;
    assert_eq!(p.events.len(), all.len().min(50));
    for bad in [
        "/events?limit=0",
        "/events?limit=501",
        "/events?limit=x",
        "/events?cursor=garbage",
    ] {
        let (status, body) = agent.get_json(bad).await;
        assert_eq!(status, 400, "GET {bad} answered {body}");
        assert_eq!(body["error"], "invalid_request");
    }

    // One workspace's events: only its own, all of them, pageable the same way.
    let of_a = all_events(&agent, Some(&a.id)).await;
    assert_newest_first(&of_a);
    assert!(
        of_a.iter()
            .all(|e| e.workspace_id.as_deref() == Some(&a.id))
    );
    let want: Vec<&Event> = all
        .iter()
        .filter(|e| e.workspace_id.as_deref() == Some(&a.id))
        .collect();
    assert_eq!(of_a.iter().collect::<Vec<_>>(), want);
    for kind in [
        EventType::WorkspaceCreating,
        EventType::WorkspaceRunning,
        EventType::WorkspaceRenamed,
    ] {
        assert!(of_a.iter().any(|e| e.kind == kind), "{kind:?} recorded");
    }
    let paged_a = page_through(&agent, &format!("/workspaces/{}/events?limit=3", a.id), 3).await;
    assert_eq!(paged_a, of_a);
    let of_b = all_events(&agent, Some(&b.id)).await;
    assert!(!of_b.is_empty());
    assert!(
        of_b.iter()
            .all(|e| e.workspace_id.as_deref() == Some(&b.id))
    );
    // A workspace token reaches its own events.
    let r = agent
        .http
        .get(agent.url(&format!("/workspaces/{}/events", b.id)))
        .bearer_auth(agent.workspace_token(&b.id))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    agent.delete(&a.id).await;
    agent.delete(&b.id).await;
    // Deleted workspaces' events stay in the node's log.
    let after = all_events(&agent, None).await;
    assert!(
        after
            .iter()
            .any(|e| e.kind == EventType::WorkspaceDeleted
                && e.workspace_id.as_deref() == Some(&a.id))
    );
}

#[tokio::test]
async fn stream_heartbeats_live_events_and_replay() {
    let agent = Agent::start().await;
    let ws = agent.running("streamed").await;
    let (_, node_json) = agent.get_json("/node").await;
    let node_keys: BTreeSet<String> = node_json
        .as_object()
        .expect("node")
        .keys()
        .cloned()
        .collect();

    // Without `since`: heartbeats every second (the harness passes 1), nothing old.
    let mut socket = connect(&agent, "").await;
    let first = next_frame(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        first["type"], "heartbeat",
        "no replay without since: {first}"
    );
    let window = Instant::now() + Duration::from_millis(3200);
    let mut beats = vec![first];
    while let Some(left) = window.checked_duration_since(Instant::now()) {
        let Ok(next) = tokio::time::timeout(left, socket.next()).await else {
            break;
        };
        match next.expect("open").expect("frame") {
            Message::Text(t) => {
                let frame: Value = serde_json::from_str(t.as_str()).expect("JSON");
                assert_eq!(
                    frame["type"], "heartbeat",
                    "no replay without since: {frame}"
                );
                beats.push(frame);
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The first right away, then one a second: 3 more in 3.2 s (some slack).
    assert!(
        (3..=5).contains(&beats.len()),
        "{} heartbeats in 3.2 s",
        beats.len()
    );
    for frame in &beats {
        let obj = frame.as_object().expect("frame");
        assert!(obj["at"].is_string());
        let keys: BTreeSet<String> = frame["node"]
            .as_object()
            .expect("node")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, node_keys, "heartbeat node has GET /node's shape");
        let node: NodeInfo = serde_json::from_value(frame["node"].clone()).expect("NodeInfo");
        assert_eq!(node.node_id, agent.node_id);
        assert_eq!(
            node.version,
            node_json["version"].as_str().expect("version")
        );
        assert_eq!(node.limits.max_workspaces, 10);
        assert_eq!(node.workspaces.total, 1);
        assert_eq!(node.workspaces.running, 1);
        assert!(node.docker.available);
        assert_eq!(
            serde_json::to_value(node.started_at).expect("time"),
            node_json["startedAt"]
        );
    }

    // A new event arrives live.
    rename(&agent, &ws.id, "streamed live").await;
    let live = next_event(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(live.kind, EventType::WorkspaceRenamed);
    assert_eq!(live.workspace_id.as_deref(), Some(ws.id.as_str()));
    assert_eq!(all_events(&agent, None).await[0], live, "the newest event");
    socket.close(None).await.expect("close");
    drop(socket);

    // Events while disconnected, then reconnect with `since` an earlier event:
    // every later event, oldest first, then live ones.
    for i in 1..=3 {
        rename(&agent, &ws.id, &format!("offline {i}")).await;
    }
    let before = all_events(&agent, None).await;
    let since = &before[before.len() / 2];
    let mut want: Vec<Event> = before.iter().filter(|e| e.id > since.id).cloned().collect();
    want.reverse();
    let mut socket = connect(&agent, &format!("?since={}", since.id)).await;
    rename(&agent, &ws.id, "back online").await;
    let mut got = Vec::new();
    while got.len() < want.len() + 1 {
        got.push(next_event(&mut socket, Duration::from_secs(5)).await);
    }
    assert_eq!(
        &got[..want.len()],
        &want[..],
        "replay: every later event, oldest first"
    );
    let last = got.last().expect("live");
    assert_eq!(last.kind, EventType::WorkspaceRenamed);
    assert!(last.message.contains("back online"), "{}", last.message);
    let ids: Vec<&String> = got.iter().map(|e| &e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    // Nothing repeated after the replay: only heartbeats until the next event.
    rename(&agent, &ws.id, "once more").await;
    let next = next_event(&mut socket, Duration::from_secs(5)).await;
    assert!(next.message.contains("once more"), "{}", next.message);
    assert!(next.id > last.id);

    // `since` the newest event: nothing replayed, live events follow.
    let newest = all_events(&agent, None).await[0].id.clone();
    assert_eq!(newest, next.id);
    let mut caught_up = connect(&agent, &format!("?since={newest}")).await;
    let first = next_frame(&mut caught_up, Duration::from_secs(5)).await;
    assert_eq!(first["type"], "heartbeat", "nothing to replay: {first}");
    rename(&agent, &ws.id, "last").await;
    let e = next_event(&mut caught_up, Duration::from_secs(5)).await;
    assert!(e.message.contains("last"));

    agent.delete(&ws.id).await;
}

/// Reads a reset frame, then exactly `want` as event frames.
async fn assert_reset_then(socket: &mut Socket, want: &[Event]) {
    let first = next_frame(socket, Duration::from_secs(5)).await;
    assert_eq!(first, json!({"type": "reset"}));
    for (i, w) in want.iter().enumerate() {
        let frame = next_frame(socket, Duration::from_secs(5)).await;
        assert_eq!(frame["type"], "event", "frame {i} after reset: {frame}");
        let e: Event = serde_json::from_value(frame["event"].clone()).expect("event");
        assert_eq!(&e, w, "frame {i} after reset");
    }
}

#[tokio::test]
async fn unknown_since_resets_then_replays_everything() {
    let agent = Agent::start().await;
    let other = Agent::start().await;
    let ws = agent.running("resettable").await;
    rename(&agent, &ws.id, "reset me").await;

    let mut kept = all_events(&agent, None).await;
    kept.reverse();
    assert!(kept.len() >= 4);

    let foreign = all_events(&other, None).await[0].id.clone();
    let ours = &kept[0].id;
    let (_, epoch) = ours.split_once('-').expect("id shape");
    assert_ne!(
        foreign.split_once('-').map(|p| p.1),
        Some(epoch),
        "two data dirs, two epochs"
    );
    let never_given = format!("ffffffffffff0000-{epoch}");
    for since in ["garbage", foreign.as_str(), never_given.as_str()] {
        let mut socket = connect(&agent, &format!("?since={since}")).await;
        assert_reset_then(&mut socket, &kept).await;
        // Then the stream goes on as usual.
        let frame = next_frame(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(frame["type"], "heartbeat", "{frame}");
    }

    // A cursor from another node is refused on /events too.
    let (status, body) = agent.get_json(&format!("/events?cursor={foreign}")).await;
    assert_eq!(status, 400, "{body}");

    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn failed_create_is_an_error_event_within_10s() {
    let agent = Agent::start().await;
    let mut socket = connect(&agent, "").await;
    // The stream is live once the first heartbeat arrives.
    let first = next_frame(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(first["type"], "heartbeat");

    let asked = Instant::now();
    let asked_at = chrono::Utc::now();
    let ws = agent
        .create(json!({"displayName": "broken", "image": "sam-test-does-not-exist:1"}))
        .await;
    assert_eq!(ws.status, WorkspaceStatus::Creating);

    let error = loop {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "no workspace.error event within 10 s: {:?}",
            all_events(&agent, Some(&ws.id)).await
        );
        let events = all_events(&agent, Some(&ws.id)).await;
        if let Some(e) = events.iter().find(|e| e.kind == EventType::WorkspaceError) {
            break e.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(error.level, EventLevel::Error);
    assert_eq!(error.workspace_id.as_deref(), Some(ws.id.as_str()));
    assert!(!error.message.trim().is_empty());
    assert!(
        error.created_at - asked_at < chrono::Duration::seconds(10),
        "recorded at {} for a request at {asked_at}",
        error.created_at
    );
    let now = agent.workspace(&ws.id).await;
    assert_eq!(now.status, WorkspaceStatus::Error);
    assert!(now.error.as_deref().is_some_and(|m| !m.is_empty()));

    // The stream carried it live too.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let e = next_event(&mut socket, deadline - Instant::now()).await;
        if e.kind == EventType::WorkspaceError {
            assert_eq!(e, error);
            break;
        }
        // Node-level events (the monitor's first Docker check) may come and go.
        assert!(
            e.workspace_id.is_none() || e.workspace_id.as_deref() == Some(ws.id.as_str()),
            "{e:?}"
        );
    }

    // A failed workspace can be deleted, leaving nothing behind.
    agent.delete(&ws.id).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}

#[tokio::test]
async fn events_survive_a_restart_with_the_same_ids() {
    let mut agent = Agent::start().await;
    let ws = agent.running("durable").await;
    rename(&agent, &ws.id, "durable too").await;
    let before = all_events(&agent, None).await;

    agent.restart().await;
    let after = all_events(&agent, None).await;
    assert!(after.len() > before.len(), "the restart is an event too");
    assert_eq!(
        &after[after.len() - before.len()..],
        &before[..],
        "every event kept, same ids and content"
    );
    let newer = &after[..after.len() - before.len()];
    assert!(
        newer.iter().any(|e| e.kind == EventType::NodeStarted),
        "{newer:?}"
    );
    assert_newest_first(&after);

    // An id from before the restart is still a good `since`.
    let since = &before[0].id;
    let mut socket = connect(&agent, &format!("?since={since}")).await;
    let mut want = newer.to_vec();
    want.reverse();
    for w in &want {
        let frame = next_frame(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(frame["type"], "event", "no reset: {frame}");
        let e: Event = serde_json::from_value(frame["event"].clone()).expect("event");
        assert_eq!(&e, w);
    }
    // And an old cursor pages on.
    let p = page(&agent, &format!("/events?limit=2&cursor={since}")).await;
    assert_eq!(p.events[..], before[1..3]);
    socket.close(None).await.expect("close");

    agent.delete(&ws.id).await;
}
