//! Workspace names (CONTRACT §4 "Workspace names") and the workspace limit (§1, §5
//! `PATCH /node`), against a real agent and Docker engine.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::Method;
use sam_protocol::{NodeInfo, Workspace, WorkspaceStatus};
use serde_json::{Value, json};

/// An error answer has exactly the contract's shape and the given code.
fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "answer: {body}");
    let obj = body.as_object().expect("error answers are JSON objects");
    assert_eq!(obj.len(), 2, "only error and message: {body}");
    assert_eq!(obj["error"], code, "{body}");
    let message = obj["message"].as_str().expect("message is a string");
    assert!(!message.trim().is_empty(), "{body}");
}

async fn rename(agent: &Agent, id: &str, name: &str) -> Workspace {
    let (status, body) = agent
        .send_json(
            Method::PATCH,
            &format!("/workspaces/{id}"),
            json!({"displayName": name}),
        )
        .await;
    assert_eq!(status, 200, "rename to {name:?} answered {body}");
    serde_json::from_value(body).expect("workspace")
}

async fn create_raw(agent: &Agent, name: &str) -> (u16, Value) {
    agent
        .send_json(
            Method::POST,
            "/workspaces",
            json!({"displayName": name, "image": test_image()}),
        )
        .await
}

async fn wait_all_running(agent: &Agent, ids: &[String]) {
    futures::future::join_all(
        ids.iter()
            .map(|id| agent.wait_for(id, WorkspaceStatus::Running)),
    )
    .await;
}

async fn delete_all(agent: &Agent, ids: &[String]) {
    futures::future::join_all(ids.iter().map(|id| agent.delete(id))).await;
}

#[tokio::test]
async fn concurrent_creates_with_one_name_end_distinct() {
    let agent = Agent::start().await;
    let creates =
        (0..10).map(|_| agent.create(json!({"displayName": "api", "image": test_image()})));
    let created: Vec<Workspace> = futures::future::join_all(creates).await;

    let names: BTreeSet<String> = created.iter().map(|w| w.display_name.clone()).collect();
    let mut want_names: BTreeSet<String> = (2..=10).map(|n| format!("api-{n}")).collect();
    want_names.insert("api".into());
    assert_eq!(names, want_names, "ten distinct names");

    let paths: BTreeSet<String> = created.iter().map(|w| w.project_path.clone()).collect();
    let want_paths: BTreeSet<String> = want_names
        .iter()
        .map(|n| format!("/workspaces/{n}"))
        .collect();
    assert_eq!(paths, want_paths, "ten distinct project paths");
    for w in &created {
        assert_eq!(
            w.project_path,
            format!("/workspaces/{}", w.display_name),
            "the slug follows the name it was given"
        );
        assert_eq!(w.status, WorkspaceStatus::Creating);
        assert_eq!(w.node_id, agent.node_id);
    }
    let ids: Vec<String> = created.iter().map(|w| w.id.clone()).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        10,
        "distinct ids"
    );

    // The default limit is 10 workspaces: an eleventh is refused.
    let (status, body) = create_raw(&agent, "api").await;
    assert_error(status, &body, 409, "workspace_limit_reached");

    // The registry agrees with the answers.
    let (status, list) = agent.get_json("/workspaces").await;
    assert_eq!(status, 200);
    let listed: BTreeSet<String> = list["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .map(|w| w["displayName"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(listed, want_names);

    wait_all_running(&agent, &ids).await;
    delete_all(&agent, &ids).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}

#[tokio::test]
async fn deleting_a_creating_workspace_is_busy() {
    let agent = Agent::start().await;
    let ws = agent
        .create(json!({"displayName": "busy", "image": test_image()}))
        .await;
    assert_eq!(ws.status, WorkspaceStatus::Creating);
    let (status, body) = agent
        .send_json(Method::DELETE, &format!("/workspaces/{}", ws.id), json!({}))
        .await;
    assert_error(status, &body, 409, "workspace_busy");
    agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn normalised_names_collide_and_renames_take_suffixes() {
    let agent = Agent::start().await;

    // Empty and over-long names are refused, before any suffix.
    for bad in ["", "   ", &"x".repeat(65)] {
        let (status, body) = create_raw(&agent, bad).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let long = "y".repeat(64);

    let a = agent
        .create(json!({"displayName": "My  API", "image": test_image()}))
        .await;
    assert_eq!(a.display_name, "My API", "inner whitespace collapsed");
    assert_eq!(a.project_path, "/workspaces/my-api");
    let b = agent
        .create(json!({"displayName": "my api", "image": test_image()}))
        .await;
    assert_eq!(
        b.display_name, "my api-2",
        "same name after normalising: suffix on the requested cleaned name"
    );
    assert_eq!(b.project_path, "/workspaces/my-api-2");
    let c = agent
        .create(json!({"displayName": "  MY\tAPI  ", "image": test_image()}))
        .await;
    assert_eq!(c.display_name, "MY API-3");
    assert_eq!(c.project_path, "/workspaces/my-api-3");
    let d = agent
        .create(json!({"displayName": long, "image": test_image()}))
        .await;
    assert_eq!(d.display_name, long, "64 characters are allowed");
    let e = agent
        .create(json!({"displayName": long, "image": test_image()}))
        .await;
    assert_eq!(
        e.display_name,
        format!("{long}-2"),
        "the suffix may take a name past 64 characters"
    );
    let ids: Vec<String> = [&a, &b, &c, &d, &e].iter().map(|w| w.id.clone()).collect();

    // Rename onto a taken name (in another case and spacing): the next free suffix.
    let renamed = rename(&agent, &d.id, " my   API ").await;
    assert_eq!(renamed.display_name, "my API-4");
    assert_eq!(
        renamed.project_path, d.project_path,
        "a rename never moves the project folder"
    );
    assert_eq!(agent.workspace(&d.id).await.display_name, "my API-4");

    // Rename to its own name in another case: kept, no suffix.
    let same = rename(&agent, &a.id, "MY api").await;
    assert_eq!(same.display_name, "MY api");
    assert_eq!(same.project_path, "/workspaces/my-api");
    // And to exactly its own name.
    let same = rename(&agent, &b.id, "my api-2").await;
    assert_eq!(same.display_name, "my api-2");
    // A rename frees the old name for others.
    let freed = rename(&agent, &e.id, long.as_str()).await;
    assert_eq!(freed.display_name, long, "the name d gave up is free again");

    // Bad renames are refused and change nothing.
    for bad in ["", "  ", &"z".repeat(65)] {
        let (status, body) = agent
            .send_json(
                Method::PATCH,
                &format!("/workspaces/{}", c.id),
                json!({"displayName": bad}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_request");
    }
    assert_eq!(agent.workspace(&c.id).await.display_name, "MY API-3");

    // Two concurrent renames onto one name end distinct.
    let (x, y) = tokio::join!(
        rename(&agent, &b.id, "Shared"),
        rename(&agent, &c.id, "shared")
    );
    let mut got = [x.display_name.to_lowercase(), y.display_name.to_lowercase()];
    got.sort();
    assert_eq!(got, ["shared".to_string(), "shared-2".to_string()]);
    assert_eq!(x.project_path, "/workspaces/my-api-2");
    assert_eq!(y.project_path, "/workspaces/my-api-3");

    // Project paths as listed: unchanged by every rename.
    let (_, list) = agent.get_json("/workspaces").await;
    let paths: BTreeSet<String> = list["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .map(|w| w["projectPath"].as_str().expect("path").to_string())
        .collect();
    let want: BTreeSet<String> = [&a, &b, &c, &d, &e]
        .iter()
        .map(|w| w.project_path.clone())
        .collect();
    assert_eq!(paths, want);
    assert_eq!(want.len(), 5);

    wait_all_running(&agent, &ids).await;
    delete_all(&agent, &ids).await;
}

#[tokio::test]
async fn workspace_limit_from_flag_then_patch_survives_restart() {
    let mut agent = Agent::start_with(Options {
        args: vec!["--max-workspaces".into(), "2".into()],
        ..Default::default()
    })
    .await;
    let (status, node) = agent.get_json("/node").await;
    assert_eq!(status, 200);
    assert_eq!(node["limits"]["maxWorkspaces"], 2);
    assert_eq!(node["limits"]["maxSessionsPerWorkspace"], 5);

    let one = agent.running("one").await;
    let two = agent
        .create(json!({"displayName": "two", "image": test_image()}))
        .await;
    // The limit counts every workspace, `creating` ones included.
    let (status, body) = create_raw(&agent, "three").await;
    assert_error(status, &body, 409, "workspace_limit_reached");
    agent.wait_for(&two.id, WorkspaceStatus::Running).await;
    let (status, body) = create_raw(&agent, "three").await;
    assert_error(status, &body, 409, "workspace_limit_reached");
    assert_eq!(
        agent.get_json("/node").await.1["workspaces"]["total"],
        2,
        "the refused create left nothing behind"
    );

    // Bad limits are refused and change nothing.
    for bad in [
        json!({"limits": {"maxWorkspaces": 0}}),
        json!({"limits": {"maxWorkspaces": "three"}}),
        json!({"limits": {"maxWorkspaces": -1}}),
        json!({"limits": {"maxWorkspaces": 2.5}}),
        json!({"limits": {"maxWorkspaces": null, "maxSessionsPerWorkspace": 0}}),
        json!({"limits": {"maxSessionsPerWorkspace": "many"}}),
        json!({"limits": 3}),
    ] {
        let (status, body) = agent.send_json(Method::PATCH, "/node", bad.clone()).await;
        assert_eq!(status, 400, "PATCH /node {bad} answered {body}");
        assert_error(status, &body, 400, "invalid_request");
    }
    let (_, node) = agent.get_json("/node").await;
    assert_eq!(
        node["limits"],
        json!({"maxWorkspaces": 2, "maxSessionsPerWorkspace": 5})
    );

    // Raise it: 200 with the node as GET /node answers it.
    let (status, body) = agent
        .send_json(
            Method::PATCH,
            "/node",
            json!({"limits": {"maxWorkspaces": 3}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let patched: NodeInfo = serde_json::from_value(body.clone()).expect("NodeInfo");
    assert_eq!(patched.node_id, agent.node_id);
    assert_eq!(patched.limits.max_workspaces, 3);
    assert_eq!(patched.limits.max_sessions_per_workspace, 5, "untouched");
    assert_eq!(patched.workspaces.total, 2);
    let (_, node) = agent.get_json("/node").await;
    assert_eq!(node["limits"], body["limits"]);

    let three = agent.running("three").await;
    let (status, body) = create_raw(&agent, "four").await;
    assert_error(status, &body, 409, "workspace_limit_reached");

    // The PATCHed limit beats the flag (still --max-workspaces 2) after a restart.
    agent.restart().await;
    let (_, node) = agent.get_json("/node").await;
    assert_eq!(
        node["limits"],
        json!({"maxWorkspaces": 3, "maxSessionsPerWorkspace": 5})
    );
    assert_eq!(node["workspaces"]["total"], 3);
    let (status, body) = create_raw(&agent, "four").await;
    assert_error(status, &body, 409, "workspace_limit_reached");

    // Only one limit in the body leaves the other as it is.
    let (status, body) = agent
        .send_json(
            Method::PATCH,
            "/node",
            json!({"limits": {"maxSessionsPerWorkspace": 7}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["limits"],
        json!({"maxWorkspaces": 3, "maxSessionsPerWorkspace": 7})
    );

    // Deleting one makes room again.
    agent.delete(&one.id).await;
    let four = agent.running("four").await;
    let ids = vec![two.id, three.id, four.id];
    delete_all(&agent, &ids).await;
}
