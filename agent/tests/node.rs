//! The node: `GET /node`, `POST /node/stop`, reconciliation with Docker after a
//! restart and while running, and Docker going away (CONTRACT §1, §5, §6).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use sam_protocol::{Event, EventLevel, EventPage, EventType, NodeInfo, Workspace, WorkspaceStatus};
use serde_json::{Value, json};
use tokio::net::{UnixListener, UnixStream};

async fn events(agent: &Agent, workspace: Option<&str>) -> Vec<Event> {
    let path = match workspace {
        Some(id) => format!("/workspaces/{id}/events?limit=500"),
        None => "/events?limit=500".to_string(),
    };
    let (status, body) = agent.get_json(&path).await;
    assert_eq!(status, 200, "{body}");
    let page: EventPage = serde_json::from_value(body).expect("EventPage");
    page.events
}

async fn node(agent: &Agent) -> NodeInfo {
    let (status, body) = agent.get_json("/node").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("NodeInfo")
}

async fn counts(agent: &Agent) -> (u32, u32) {
    let n = node(agent).await;
    (n.workspaces.total, n.workspaces.running)
}

async fn post(agent: &Agent, path: &str) -> (u16, Value) {
    agent.send_json(Method::POST, path, json!({})).await
}

/// Polls `check` until it answers `Some`, for at most `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn container_running(id: &str) -> bool {
    let (ok, out) = docker(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        &format!("sam-ws-{id}"),
    ]);
    ok && out.trim() == "true"
}

#[tokio::test]
async fn node_describes_itself_and_counts_workspaces() {
    let agent = Agent::start().await;
    let (status, body) = agent.get_json("/node").await;
    assert_eq!(status, 200);
    let keys: BTreeSet<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<&str> = [
        "nodeId",
        "version",
        "startedAt",
        "docker",
        "limits",
        "workspaces",
        "cpu",
        "memory",
        "disk",
        "build",
    ]
    .into();
    assert_eq!(keys, want, "{body}");
    let n: NodeInfo = serde_json::from_value(body.clone()).expect("NodeInfo");
    assert_eq!(n.node_id, agent.node_id);
    let health: Value = agent
        .http
        .get(agent.url("/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert!(!n.version.is_empty());
    assert_eq!(health["version"], n.version.as_str());
    let age = chrono::Utc::now() - n.started_at;
    assert!(
        age >= chrono::Duration::seconds(-2) && age < chrono::Duration::seconds(60),
        "startedAt {} is when the agent started",
        n.started_at
    );
    assert!(n.docker.available, "{body}");
    assert!(
        n.docker.version.as_deref().is_some_and(|v| !v.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["limits"],
        json!({"maxWorkspaces": 10, "maxSessionsPerWorkspace": 5})
    );
    assert_eq!(body["workspaces"], json!({"total": 0, "running": 0}));
    let cpu = n.cpu.expect("cpu");
    assert!(cpu.cores >= 1 && cpu.load1 >= 0.0);
    let memory = n.memory.expect("memory");
    assert!(memory.total_bytes > 0 && memory.available_bytes <= memory.total_bytes);
    let disk = n.disk.expect("disk");
    assert!(disk.total_bytes > 0 && disk.available_bytes <= disk.total_bytes);

    let a = agent.running("first").await;
    assert_eq!(counts(&agent).await, (1, 1));
    let b = agent
        .create(json!({"displayName": "second", "image": test_image()}))
        .await;
    assert_eq!(counts(&agent).await.0, 2, "a creating workspace counts");
    agent.wait_for(&b.id, WorkspaceStatus::Running).await;
    assert_eq!(counts(&agent).await, (2, 2));
    let (s, _) = post(&agent, &format!("/workspaces/{}/stop", a.id)).await;
    assert_eq!(s, 202);
    agent.wait_for(&a.id, WorkspaceStatus::Stopped).await;
    assert_eq!(counts(&agent).await, (2, 1));
    agent.delete(&a.id).await;
    assert_eq!(counts(&agent).await, (1, 1));
    agent.delete(&b.id).await;
    assert_eq!(counts(&agent).await, (0, 0));

    // Docker was there all along: no node.docker transition was recorded.
    let docker_events: Vec<Event> = events(&agent, None)
        .await
        .into_iter()
        .filter(|e| e.kind == EventType::NodeDocker)
        .collect();
    assert!(docker_events.is_empty(), "{docker_events:?}");
}

/// `build` (an extension, docs/protocol.md): the start of the SHA-256 of the
/// agent's own executable, the same in `GET /node`, heartbeats and `/health`.
#[tokio::test]
async fn node_says_which_build_it_is() {
    use sha2::{Digest, Sha256};
    let agent = Agent::start().await;
    let bytes = std::fs::read(&agent.binary).expect("the agent binary");
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let want = &hex[..sam_protocol::BUILD_HEX_DIGITS];
    // GET /node waits for the hash if it comes first: never without it.
    let n = node(&agent).await;
    assert_eq!(n.build.as_deref(), Some(want));
    let health: Value = agent
        .http
        .get(agent.url("/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["build"], want, "{health}");
}

#[tokio::test]
async fn node_stop_dry_run_then_stop_everything() {
    let agent = Agent::start().await;
    let (a, b, c) = tokio::join!(
        agent.running("stop-a"),
        agent.running("stop-b"),
        agent.running("stop-c")
    );
    let (s, _) = post(&agent, &format!("/workspaces/{}/stop", c.id)).await;
    assert_eq!(s, 202);
    agent.wait_for(&c.id, WorkspaceStatus::Stopped).await;
    let running: BTreeSet<String> = [a.id.clone(), b.id.clone()].into();

    // Dry run: what would stop, nothing changed.
    let events_before = events(&agent, None).await;
    let (status, plan) = post(&agent, "/node/stop?dryRun=true").await;
    assert_eq!(status, 200, "{plan}");
    let listed: Vec<Workspace> =
        serde_json::from_value(plan["workspaces"].clone()).expect("workspaces");
    assert_eq!(
        listed.iter().map(|w| w.id.clone()).collect::<BTreeSet<_>>(),
        running
    );
    assert!(listed.iter().all(|w| w.status == WorkspaceStatus::Running));
    assert_eq!(plan["sessions"], json!([]));
    for id in &running {
        assert_eq!(agent.workspace(id).await.status, WorkspaceStatus::Running);
        assert!(container_running(id));
    }
    assert_eq!(events(&agent, None).await, events_before, "no event either");

    // The real thing.
    let (status, body) = post(&agent, "/node/stop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    let stopped: BTreeSet<String> =
        serde_json::from_value(body["stopped"].clone()).expect("stopped ids");
    assert_eq!(stopped, running, "the already stopped one is not listed");
    for ws in [&a, &b, &c] {
        assert_eq!(
            agent.workspace(&ws.id).await.status,
            WorkspaceStatus::Stopped
        );
        assert!(!container_running(&ws.id));
    }
    assert_eq!(counts(&agent).await, (3, 0));
    let all = events(&agent, None).await;
    let stopping = all
        .iter()
        .find(|e| e.kind == EventType::NodeStopping)
        .expect("a node.stopping event");
    assert!(stopping.workspace_id.is_none());
    for id in &running {
        assert!(
            all.iter().any(|e| e.kind == EventType::WorkspaceStopped
                && e.workspace_id.as_deref() == Some(id.as_str())
                && e.id > stopping.id),
            "workspace.stopped for {id}"
        );
    }

    // Nothing left to stop.
    let (status, plan) = post(&agent, "/node/stop?dryRun=true").await;
    assert_eq!(status, 200);
    assert_eq!(plan, json!({"workspaces": [], "sessions": []}));
    let (status, body) = post(&agent, "/node/stop").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"stopped": []}));

    // A stopped workspace starts again.
    let (s, _) = post(&agent, &format!("/workspaces/{}/restart", a.id)).await;
    assert_eq!(s, 202);
    agent.wait_for(&a.id, WorkspaceStatus::Running).await;

    for ws in [&a, &b, &c] {
        agent.delete(&ws.id).await;
    }
}

#[tokio::test]
async fn restart_reconciles_with_what_docker_says() {
    let mut agent = Agent::start().await;
    let (a, b, c) = tokio::join!(
        agent.running("gets-stopped"),
        agent.running("gets-removed"),
        agent.running("untouched")
    );

    agent.kill();
    let (ok, out) = docker(&["stop", "-t", "5", &format!("sam-ws-{}", a.id)]);
    assert!(ok, "{out}");
    let (ok, out) = docker(&["rm", "-f", &format!("sam-ws-{}", b.id)]);
    assert!(ok, "{out}");
    agent.spawn().await;

    eventually(
        Duration::from_secs(10),
        "reconciled after restart",
        || async {
            let sa = agent.workspace(&a.id).await.status;
            let sb = agent.workspace(&b.id).await.status;
            (sa == WorkspaceStatus::Stopped && sb == WorkspaceStatus::Error).then_some(())
        },
    )
    .await;
    let gone = agent.workspace(&b.id).await;
    assert!(
        gone.error.as_deref().is_some_and(|m| !m.trim().is_empty()),
        "{gone:?}"
    );
    assert_eq!(
        agent.workspace(&c.id).await.status,
        WorkspaceStatus::Running
    );
    let of_b = events(&agent, Some(&b.id)).await;
    let error = of_b
        .iter()
        .find(|e| e.kind == EventType::WorkspaceError)
        .expect("workspace.error for the removed container");
    assert_eq!(error.level, EventLevel::Error);
    let of_a = events(&agent, Some(&a.id)).await;
    assert_eq!(of_a[0].kind, EventType::WorkspaceStopped, "{of_a:?}");

    // The stopped one starts again; the broken one can only be deleted.
    let (s, _) = post(&agent, &format!("/workspaces/{}/restart", a.id)).await;
    assert_eq!(s, 202);
    agent.wait_for(&a.id, WorkspaceStatus::Running).await;
    assert!(container_running(&a.id));

    for ws in [&a, &b, &c] {
        agent.delete(&ws.id).await;
    }
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}

#[tokio::test]
async fn idle_workspaces_keep_running_and_a_removed_container_is_an_error() {
    let agent = Agent::start().await;
    let (idle, doomed) = tokio::join!(agent.running("idle"), agent.running("doomed"));

    // Nothing happens for a while: nothing stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for ws in [&idle, &doomed] {
        assert_eq!(
            agent.workspace(&ws.id).await.status,
            WorkspaceStatus::Running
        );
        assert!(container_running(&ws.id));
    }

    let (ok, out) = docker(&["rm", "-f", &format!("sam-ws-{}", doomed.id)]);
    assert!(ok, "{out}");
    let removed = Instant::now();
    let broken = eventually(
        Duration::from_secs(10),
        "removed container noticed",
        || async {
            let ws = agent.workspace(&doomed.id).await;
            (ws.status == WorkspaceStatus::Error).then_some(ws)
        },
    )
    .await;
    assert!(removed.elapsed() < Duration::from_secs(10));
    assert!(
        broken
            .error
            .as_deref()
            .is_some_and(|m| !m.trim().is_empty()),
        "{broken:?}"
    );
    let of = events(&agent, Some(&doomed.id)).await;
    assert_eq!(of[0].kind, EventType::WorkspaceError, "{of:?}");
    assert_eq!(of[0].level, EventLevel::Error);
    assert_eq!(
        agent.workspace(&idle.id).await.status,
        WorkspaceStatus::Running
    );

    agent.delete(&idle.id).await;
    agent.delete(&doomed.id).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}

/// A unix-socket proxy to the real Docker socket that can be stopped and restarted.
struct DockerProxy {
    path: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DockerProxy {
    const UPSTREAM: &'static str = "/var/run/docker.sock";

    fn new(path: PathBuf) -> Self {
        Self { path, task: None }
    }

    fn start(&mut self) {
        assert!(self.task.is_none(), "already up");
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind the proxy socket");
        self.task = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut upstream) = UnixStream::connect(Self::UPSTREAM).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }));
    }

    /// Closes the listener and every connection through it.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn docker_available(agent: &Agent, want: bool) -> NodeInfo {
    eventually(
        Duration::from_secs(10),
        &format!("GET /node says docker.available {want}"),
        || async {
            let n = node(agent).await;
            (n.docker.available == want).then_some(n)
        },
    )
    .await
}

async fn docker_events(agent: &Agent) -> Vec<Event> {
    events(agent, None)
        .await
        .into_iter()
        .filter(|e| e.kind == EventType::NodeDocker)
        .collect()
}

fn assert_unavailable(status: u16, body: &Value) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "docker_unavailable", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_absent_then_going_away_and_coming_back() {
    let sockets = tempfile::tempdir().expect("tempdir");
    let path = sockets.path().join("docker.sock");
    let mut proxy = DockerProxy::new(path.clone());
    let agent = Agent::start_with(Options {
        env: vec![("DOCKER_HOST".into(), format!("unix://{}", path.display()))],
        ..Default::default()
    })
    .await;

    // Docker absent at start: the agent serves anyway and says so.
    let n = docker_available(&agent, false).await;
    assert!(n.docker.version.is_none());
    let (status, body) = agent
        .send_json(
            Method::POST,
            "/workspaces",
            json!({"displayName": "too early", "image": test_image()}),
        )
        .await;
    assert_unavailable(status, &body);
    assert_eq!(counts(&agent).await, (0, 0), "nothing was accepted");
    let away = eventually(Duration::from_secs(10), "node.docker event", || async {
        docker_events(&agent).await.into_iter().next()
    })
    .await;
    assert_ne!(away.level, EventLevel::Info, "{away:?}");

    // It comes up.
    proxy.start();
    let n = docker_available(&agent, true).await;
    assert!(n.docker.version.as_deref().is_some_and(|v| !v.is_empty()));
    let back = docker_events(&agent).await;
    assert_eq!(back.len(), 2, "{back:?}");
    assert_eq!(back[0].level, EventLevel::Info);
    let survivor = agent.running("survivor").await;

    // It goes away.
    proxy.stop().await;
    let (status, body) = agent
        .send_json(
            Method::POST,
            "/workspaces",
            json!({"displayName": "refused", "image": test_image()}),
        )
        .await;
    assert_unavailable(status, &body);
    for (method, path) in [
        (Method::DELETE, format!("/workspaces/{}", survivor.id)),
        (Method::POST, format!("/workspaces/{}/stop", survivor.id)),
        (Method::POST, format!("/workspaces/{}/restart", survivor.id)),
    ] {
        let (status, body) = agent.send_json(method, &path, json!({})).await;
        assert_unavailable(status, &body);
    }
    let n = docker_available(&agent, false).await;
    assert!(n.docker.version.is_none());
    let gone = eventually(
        Duration::from_secs(10),
        "second node.docker away",
        || async {
            let all = docker_events(&agent).await;
            (all.len() == 3).then(|| all[0].clone())
        },
    )
    .await;
    assert_ne!(gone.level, EventLevel::Info, "{gone:?}");
    // What does not need Docker still answers.
    let (status, list) = agent.get_json("/workspaces").await;
    assert_eq!(status, 200);
    assert_eq!(list["workspaces"].as_array().map(Vec::len), Some(1));
    assert_eq!(counts(&agent).await, (1, 1), "nothing was accepted");
    assert!(container_running(&survivor.id), "containers are left alone");

    // It comes back: creating works again.
    proxy.start();
    docker_available(&agent, true).await;
    let after = agent.running("after").await;
    assert_eq!(
        agent.workspace(&survivor.id).await.status,
        WorkspaceStatus::Running
    );
    let all = docker_events(&agent).await;
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[0].level, EventLevel::Info);

    agent.delete(&survivor.id).await;
    agent.delete(&after.id).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
    proxy.stop().await;
}

/// Polls until the workspace leaves `creating`.
async fn settled(agent: &Agent, id: &str) -> Workspace {
    eventually(Duration::from_secs(30), "the create settles", || async {
        let ws = agent.workspace(id).await;
        (ws.status != WorkspaceStatus::Creating).then_some(ws)
    })
    .await
}

#[tokio::test]
async fn creates_right_after_start_are_not_taken_for_interrupted_ones() {
    // The monitor's first reconciliation runs while the agent already serves: a
    // create accepted then is this process's own work, not an interrupted one.
    let agent = Agent::start().await;
    let mut ids = Vec::new();
    for i in 1..=4 {
        let ws = agent
            .create(json!({"displayName": format!("early bird {i}"), "image": test_image()}))
            .await;
        ids.push(ws.id);
    }
    for id in &ids {
        let ws = settled(&agent, id).await;
        assert_eq!(ws.status, WorkspaceStatus::Running, "{:?}", ws.error);
        assert!(ws.error.is_none());
        assert!(container_running(id));
        assert!(
            !events(&agent, Some(id))
                .await
                .iter()
                .any(|e| e.kind == EventType::WorkspaceError)
        );
    }
    for id in &ids {
        agent.delete(id).await;
    }
}

#[tokio::test]
async fn a_create_cut_short_by_a_crash_ends_in_error_and_leaves_nothing() {
    let mut agent = Agent::start().await;
    let ws = agent
        .create(json!({"displayName": "cut short", "image": test_image()}))
        .await;
    assert_eq!(ws.status, WorkspaceStatus::Creating);
    agent.kill();
    agent.spawn().await;
    let ws = settled(&agent, &ws.id).await;
    assert_eq!(ws.status, WorkspaceStatus::Error);
    assert!(ws.error.as_deref().is_some_and(|m| !m.is_empty()));
    let of = events(&agent, Some(&ws.id)).await;
    assert!(
        of.iter()
            .any(|e| e.kind == EventType::WorkspaceError && e.level == EventLevel::Error),
        "{of:?}"
    );
    // Whatever the interrupted create made is reaped.
    eventually(
        Duration::from_secs(12),
        "no Docker objects left",
        || async { (agent.docker_leftovers() == (vec![], vec![], vec![])).then_some(()) },
    )
    .await;
    agent.delete(&ws.id).await;
    let (status, _) = agent.get_json(&format!("/workspaces/{}", ws.id)).await;
    assert_eq!(status, 404);
}
