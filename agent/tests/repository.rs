//! Workspaces from git repositories (file:// here) and their devcontainer.json.

mod common;

use common::*;
use sam_protocol::WorkspaceStatus;
use serde_json::json;

#[tokio::test]
async fn clones_a_branch_and_honours_devcontainer_json() {
    let agent = Agent::start().await;
    let src = tempfile::tempdir().unwrap();
    let devcontainer = format!(
        r#"{{
            // JSON with comments, as VS Code writes it
            "image": "{image}",
            "containerEnv": {{ "GREETING": "hello from devcontainer" }},
            "remoteUser": "dev",
            "postCreateCommand": "echo created >> .lifecycle",
            "postStartCommand": ["sh", "-c", "echo started >> .lifecycle; id -un >> .lifecycle"],
            "forwardPorts": [3000],
        }}"#,
        image = test_image()
    );
    let url = git_repo(
        src.path(),
        &[
            ("README.md", "main branch\n"),
            (".devcontainer/devcontainer.json", &devcontainer),
        ],
    );
    let git = |args: &[&str]| {
        assert!(
            std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .current_dir(src.path())
                .status()
                .unwrap()
                .success()
        )
    };
    git(&["checkout", "-qb", "feature"]);
    std::fs::write(src.path().join("feature.txt"), "on feature\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "feature"]);
    git(&["checkout", "-q", "main"]);

    let ws = agent
        .create(json!({
            "displayName": "My Repo",
            "repository": url,
            "branch": "feature",
            "gitToken": "tok-SECRET-12345",
        }))
        .await;
    assert_eq!(ws.repository.as_deref(), Some(url.as_str()));
    assert_eq!(ws.branch.as_deref(), Some("feature"));
    let ws = agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    assert_eq!(ws.project_path, "/workspaces/my-repo");
    assert_eq!(ws.image, test_image());

    let (ok, out) = docker_exec(
        &ws.id,
        None,
        "cd /workspaces/my-repo && cat feature.txt README.md && echo $GREETING && stat -c %u feature.txt . && cat .lifecycle",
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "on feature",
            "main branch",
            "hello from devcontainer",
            "1000",
            "1000",
            "created",
            "started",
            "dev"
        ]
    );
    // The token was for the clone only.
    let (ok, config) = docker_exec(&ws.id, None, "cat /workspaces/my-repo/.git/config");
    assert!(ok && !config.contains("SECRET"), "{config}");
    let (_, events) = agent
        .get_json(&format!("/workspaces/{}/events?limit=500", ws.id))
        .await;
    assert!(!events.to_string().contains("SECRET"));
    assert!(!agent.log().contains("SECRET"));
    let db = std::fs::read(agent.data_dir().join("agent.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("SECRET"));

    // postStartCommand runs again on every start, postCreateCommand once.
    let (s, _) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{}/restart", ws.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    let (_, out) = docker_exec(&ws.id, None, "cat /workspaces/my-repo/.lifecycle");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["created", "started", "dev", "started", "dev"]
    );

    agent.delete(&ws.id).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}

#[tokio::test]
async fn builds_the_dockerfile_and_keeps_the_image_command_when_asked() {
    let agent = Agent::start().await;
    let src = tempfile::tempdir().unwrap();
    let url = git_repo(
        src.path(),
        &[
            (
                ".devcontainer/devcontainer.json",
                r#"{"build": {"dockerfile": "Dockerfile", "context": "..", "args": {"WHAT": "built-arg"}}, "overrideCommand": false}"#,
            ),
            (
                ".devcontainer/Dockerfile",
                &format!(
                    "FROM {}\nARG WHAT\nCOPY marker.txt /marker.txt\nRUN echo $WHAT > /built.txt\nCMD [\"sleep\", \"3600\"]\n",
                    test_image()
                ),
            ),
            ("marker.txt", "from the context\n"),
        ],
    );
    let ws = agent
        .create(json!({"displayName": "built", "repository": url}))
        .await;
    let ws = agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    assert_eq!(ws.image, format!("sam-ws-{}:latest", ws.id));
    let (ok, out) = docker_exec(&ws.id, None, "cat /built.txt /marker.txt");
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["built-arg", "from the context"]
    );
    let (_, path) = docker(&["inspect", "-f", "{{.Path}}", &format!("sam-ws-{}", ws.id)]);
    assert_eq!(
        path.trim(),
        "sleep",
        "overrideCommand false keeps the image's command"
    );

    agent.delete(&ws.id).await;
    let (exists, _) = docker(&["image", "inspect", &ws.image]);
    assert!(!exists, "the built image goes with the workspace");
}

#[tokio::test]
async fn failing_lifecycle_commands_and_escaping_contexts_leave_nothing_behind() {
    let agent = Agent::start().await;
    let failing = tempfile::tempdir().unwrap();
    let url = git_repo(
        failing.path(),
        &[(
            ".devcontainer.json",
            &format!(
                r#"{{"image": "{}", "postCreateCommand": "echo boom-output; exit 3"}}"#,
                test_image()
            ),
        )],
    );
    let escaping = tempfile::tempdir().unwrap();
    let escaping_url = git_repo(
        escaping.path(),
        &[
            (
                ".devcontainer/devcontainer.json",
                r#"{"build": {"dockerfile": "Dockerfile", "context": "../../.."}}"#,
            ),
            (".devcontainer/Dockerfile", "FROM scratch\n"),
        ],
    );
    let broken = tempfile::tempdir().unwrap();
    let broken_url = git_repo(broken.path(), &[(".devcontainer.json", "{ not json")]);

    for (url, expected) in [
        (url, "boom-output"),
        (escaping_url, "outside the repository"),
        (broken_url, "devcontainer.json"),
    ] {
        let ws = agent
            .create(json!({"displayName": "bad", "repository": url}))
            .await;
        let ws = agent.wait_for(&ws.id, WorkspaceStatus::Error).await;
        let error = ws.error.unwrap_or_default();
        assert!(
            error.contains(expected),
            "{error:?} should mention {expected:?}"
        );
        let (_, events) = agent
            .get_json(&format!("/workspaces/{}/events", ws.id))
            .await;
        let last_error = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "workspace.error")
            .expect("a workspace.error event");
        assert_eq!(last_error["level"], "error");
        assert!(last_error["message"].as_str().unwrap().contains(expected));
        agent.delete(&ws.id).await;
    }
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}
