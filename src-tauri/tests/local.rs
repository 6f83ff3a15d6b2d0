//! "This computer" end to end through the `sam` CLI: add, workspaces, stop, start,
//! remove — a real agent, real Docker.

mod common;

use common::*;

#[test]
fn add_this_computer_create_workspaces_stop_start_remove() {
    let d = Desktop::new();
    let node = d.add_local();
    assert_eq!(node["provider"], "local");
    assert_eq!(node["health"], "healthy");
    assert_eq!(node["address"], format!("http://127.0.0.1:{}", d.port));

    let a = d.json(&["ws", "create", "here", "alpha"]);
    assert_eq!(a["status"], "running");
    assert_eq!(a["node"], node["id"]);
    let b = d.json(&["ws", "create", "here", "alpha"]);
    assert_eq!(
        b["displayName"], "alpha-2",
        "the name printed is the final one"
    );
    let list = d.json(&["ws", "ls"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let shown = d.json(&["ws", "show", "here/alpha-2"]);
    assert_eq!(shown["id"], b["id"]);

    // Stopping asks first; without a terminal and --yes it refuses.
    let (code, _, err) = d.run(&["node", "stop", "here"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("workspace alpha") && err.contains("hint: Pass --yes"),
        "{err}"
    );
    let stopped = d.json(&["--yes", "node", "stop", "here"]);
    assert_eq!(stopped["status"], "stopped");
    assert!(
        stopped["health"].is_null(),
        "a node stopped on purpose raises no alarm"
    );

    let started = d.json(&["node", "start", "here"]);
    assert_eq!(started["status"], "running");
    let list = d.json(&["ws", "ls", "here"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "stopped")
    );

    let removed = d.json(&["--yes", "node", "rm", "here"]);
    assert_eq!(removed["deleted"], true);
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
    let (containers, _) = (
        std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=dev.sam.node={}", node["id"].as_str().unwrap()),
            ])
            .output()
            .unwrap(),
        (),
    );
    assert!(containers.stdout.is_empty(), "no container left behind");
}

/// An agent that died is started again, and finds its workspaces as they were.
#[test]
fn a_dead_local_agent_is_started_again() {
    let d = Desktop::new();
    d.add_local();
    let ws = d.json(&["ws", "create", "here", "keep"]);
    let pid = sam_desktop::providers::local::agent_pid(d.port as u64).expect("agent pid");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Wait until it is really gone.
    for _ in 0..100 {
        if sam_desktop::providers::local::agent_pid(d.port as u64).is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let node = d.json(&["node", "show", "here"]);
    assert_eq!(node["health"], "healthy", "{node}");
    let new_pid = sam_desktop::providers::local::agent_pid(d.port as u64).expect("restarted");
    assert_ne!(new_pid, pid);
    let shown = d.json(&["ws", "show", ws["id"].as_str().unwrap()]);
    assert_eq!(shown["status"], "running");
    let events = d.ok(&["events", "here"]);
    assert!(events.contains("node.restarted"), "{events}");
    d.ok(&["--yes", "node", "rm", "here"]);
}
