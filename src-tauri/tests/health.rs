//! Health judged from a real agent's heartbeats: pausing the agent (SIGSTOP) makes
//! the node stale, then unhealthy; resuming it (SIGCONT) makes it healthy again.
//! Each transition is an event with its time.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sam_desktop::Sam;
use sam_desktop::api::Quiet;
use sam_desktop::nodes::Health;
use sam_desktop::nodes::stream::NodeSignal;

async fn next_health(
    rx: &mut tokio::sync::broadcast::Receiver<NodeSignal>,
    within: Duration,
) -> (Health, Instant) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(NodeSignal::Health(change))) => return (change.to, Instant::now()),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("signal channel: {e}"),
            Err(_) => panic!("no health transition within {within:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_then_unhealthy_then_healthy() {
    let d = Desktop::new();
    // SAFETY of the environment: this test binary holds one test.
    unsafe {
        std::env::set_var("SAM_LOCAL_AGENT_PORT", d.port.to_string());
        std::env::set_var("SAM_AGENT_BINARY", agent_binary());
        std::env::set_var("SAM_SECRET_STORE", "file");
        std::env::set_var("NODE_HEARTBEAT_STALE_SECONDS", "3");
    }
    std::fs::create_dir_all(d.state()).unwrap();
    let sam = Sam::open_at(&d.state()).await.unwrap();
    sam.set_setting("default-image", &test_image())
        .await
        .unwrap();
    let node = sam.add_local("here", &Quiet).await.unwrap();
    assert_eq!(node.health, Some(Health::Healthy));
    let mut rx = sam.subscribe();
    sam.watch_nodes().await.unwrap();

    let pid = sam_desktop::providers::local::agent_pid(d.port as u64).expect("agent pid");
    // Let a few heartbeats arrive, then pause the agent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paused = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );

    let (h, at) = next_health(&mut rx, Duration::from_secs(3 + 30)).await;
    assert_eq!(h, Health::Stale);
    assert!(
        at - paused < Duration::from_secs(3 + 30),
        "stale within threshold + 30 s"
    );
    let (h, _) = next_health(&mut rx, Duration::from_secs(30)).await;
    assert_eq!(h, Health::Unhealthy);

    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let (h, _) = next_health(&mut rx, Duration::from_secs(30)).await;
    assert_eq!(h, Health::Healthy);

    // Each transition is recorded with its time, and "last seen" is kept.
    let events = sam.store().events(Some(&node.id), None, 50).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for k in ["node.stale", "node.unhealthy", "node.healthy"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let record = sam.node_record("here").await.unwrap();
    assert!(record.last_seen_at.is_some());
    cleanup_node(&node.id);
}
