//! The built-in agents from a person's side, end to end against a real local
//! agent and Docker: which ones a workspace's image has, keys in the secret store
//! (never anywhere else), "Log in" as a terminal running the agent's own login
//! command, and `sam session agents`.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use sam_desktop::Sam;
use sam_desktop::api::agents::AgentState;
use sam_desktop::api::exec::{ExecOutput, ExecRequest};
use sam_desktop::api::terminals::TerminalOutput;

/// Opens the library on the installation the CLI made (same state folder and
/// the same secrets file).
async fn open(d: &Desktop) -> Sam {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the same constant value for every test of this binary, and the
        // variable is read by this process's own `Sam::open_at` only.
        unsafe { std::env::set_var("SAM_SECRET_STORE", "file") };
    });
    Sam::open_at(&d.state()).await.expect("open the library")
}

/// Runs `script` in the workspace; answers its exit status.
async fn sh(sam: &Sam, ws: &str, script: &str) -> i32 {
    let conn = sam
        .exec(
            ws,
            ExecRequest {
                command: vec!["sh".into(), "-c".into(), script.into()],
                ..Default::default()
            },
        )
        .await
        .expect("exec");
    let (_input, mut output) = conn.into_parts();
    while let Some(item) = output.next().await {
        if let ExecOutput::Exit(code) = item {
            return code;
        }
    }
    panic!("no exit status for {script:?}");
}

fn state_of(list: &[sam_desktop::api::agents::AgentReadiness], name: &str) -> AgentState {
    list.iter().find(|a| a.name == name).expect(name).state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_keys_and_login_in_a_real_workspace() {
    let d = Desktop::new();
    d.add_local();
    d.json(&["ws", "create", "here", "agents"]);
    let sam = open(&d).await;

    // The test image has no adapter: every agent is missing, and says why.
    let list = sam.agents("agents").await.expect("agents");
    let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["claude", "codex", "gemini"]);
    assert!(list.iter().all(|a| a.state == AgentState::Missing));
    assert!(
        list[1].summary.contains("no codex-acp"),
        "{}",
        list[1].summary
    );

    // An image with codex's adapter and CLI (stand-ins on PATH; the login one
    // writes what `codex login` leaves under the home, then exits).
    let setup = r#"set -e
mkdir -p /usr/local/bin
printf '#!/bin/sh\nexit 0\n' > /usr/local/bin/codex-acp
cat > /usr/local/bin/codex <<'EOF'
#!/bin/sh
echo "login: $*"
mkdir -p "$HOME/.codex" && echo '{"tokens":"x"}' > "$HOME/.codex/auth.json"
echo logged-in
EOF
chmod +x /usr/local/bin/codex-acp /usr/local/bin/codex"#;
    assert_eq!(sh(&sam, "agents", setup).await, 0);
    let list = sam.agents("agents").await.unwrap();
    let codex = list.iter().find(|a| a.name == "codex").unwrap();
    assert_eq!(codex.state, AgentState::NeedsSetup);
    assert!(codex.installed && codex.login_available);
    assert_eq!(codex.key_variable, "CODEX_API_KEY");
    assert!(codex.summary.contains("CODEX_API_KEY"), "{}", codex.summary);
    assert_eq!(state_of(&list, "claude"), AgentState::Missing);

    // A key makes it ready; it is kept in the secret store only.
    let key = "sk-test-agents-0123456789";
    sam.set_agent_key("codex", &format!("  {key}\n"))
        .await
        .unwrap();
    let list = sam.agents("agents").await.unwrap();
    assert_eq!(state_of(&list, "codex"), AgentState::Ready);
    assert!(list[1].key_stored && !list[1].logged_in);
    let settings = sam.show_settings().await.unwrap();
    assert_eq!(settings.agent_keys, ["codex"]);
    assert!(!serde_json::to_string(&settings).unwrap().contains(key));
    for entry in walk(&d.state()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let is_secrets = entry.file_name().is_some_and(|n| n == "secrets.json");
        let has_key = bytes.windows(key.len()).any(|w| w == key.as_bytes());
        assert!(!has_key || is_secrets, "the key is in {}", entry.display());
    }
    sam.clear_agent_key("codex").await.unwrap();
    assert_eq!(
        state_of(&sam.agents("agents").await.unwrap(), "codex"),
        AgentState::NeedsSetup
    );

    // Bad keys and names: words, nothing stored.
    let e = sam.set_agent_key("codex", "two words").await.unwrap_err();
    assert_eq!(e.code, "invalid_input");
    let e = sam.set_agent_key("codex", "  ").await.unwrap_err();
    assert!(e.message.contains("empty"), "{}", e.message);
    let e = sam
        .open_login_terminal("agents", "nope", 80, 24)
        .await
        .unwrap_err();
    assert!(e.message.contains("claude, codex, gemini"), "{}", e.message);

    // "Log in": a terminal running the agent's own login; afterwards the agent
    // is ready without a key.
    let t = sam
        .open_login_terminal("agents", "codex", 80, 24)
        .await
        .unwrap();
    let mut conn = sam.attach_terminal("agents", &t.id).await.unwrap();
    let mut seen = Vec::new();
    let mut exit = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while exit.is_none() {
        match tokio::time::timeout_at(deadline, conn.output.recv()).await {
            Ok(Some(TerminalOutput::Bytes(b))) => seen.extend_from_slice(&b),
            Ok(Some(TerminalOutput::Exit(code))) => exit = Some(code),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(exit, Some(0), "{text}");
    assert!(text.contains("login: login --device-auth"), "{text}");
    let list = sam.agents("agents").await.unwrap();
    let codex = list.iter().find(|a| a.name == "codex").unwrap();
    assert_eq!(codex.state, AgentState::Ready);
    assert!(codex.logged_in && !codex.key_stored);

    // The CLI's view of the same.
    let listed = d.json(&["session", "agents", "here/agents"]);
    assert_eq!(listed[1]["name"], "codex");
    assert_eq!(listed[1]["state"], "ready");
    assert_eq!(listed[1]["loggedIn"], true);
    assert_eq!(listed[0]["state"], "missing");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
