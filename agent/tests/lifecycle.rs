//! Workspace lifecycle against a real Docker engine.

mod common;

use common::*;
use sam_protocol::WorkspaceStatus;
use serde_json::json;

#[tokio::test]
async fn two_workspaces_stop_one_files_survive_restart() {
    let agent = Agent::start().await;
    let a = agent.running("alpha").await;
    let b = agent.running("beta").await;
    assert_eq!(a.project_path, "/workspaces/alpha");
    assert_ne!(a.id, b.id);

    // Labels, network, volume: one each, named as the contract says.
    let name = format!("sam-ws-{}", a.id);
    let (ok, labels) = docker(&["inspect", "-f", "{{json .Config.Labels}}", &name]);
    assert!(ok, "{labels}");
    assert!(labels.contains(&format!("\"dev.sam.node\":\"{}\"", agent.node_id)));
    assert!(labels.contains(&format!("\"dev.sam.workspace\":\"{}\"", a.id)));
    let (ok, net) = docker(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", &name]);
    assert!(ok);
    assert_eq!(net.trim(), name, "its own network");
    let (ok, ports) = docker(&["port", &name]);
    assert!(
        ok && ports.trim().is_empty(),
        "no host ports published: {ports}"
    );
    assert!(docker(&["volume", "inspect", &name]).0);

    let (ok, _) = docker_exec(&a.id, None, "echo kept > /workspaces/alpha/file.txt");
    assert!(ok);

    let (s, _) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{}/stop", a.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent.wait_for(&a.id, WorkspaceStatus::Stopped).await;
    assert_eq!(
        agent.workspace(&b.id).await.status,
        WorkspaceStatus::Running
    );

    let (s, _) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{}/restart", a.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent.wait_for(&a.id, WorkspaceStatus::Running).await;
    let (ok, out) = docker_exec(&a.id, None, "cat /workspaces/alpha/file.txt");
    assert!(ok && out.trim() == "kept", "{out}");

    agent.delete(&a.id).await;
    agent.delete(&b.id).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}
