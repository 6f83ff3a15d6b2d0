//! Hetzner Cloud nodes end to end through the `sam` CLI, against the in-repo fake
//! API (`common/hetzner_fake.rs`; never api.hetzner.cloud): each server it makes
//! boots as a real OpenSSH server on a loopback address of its own, with the
//! one-time host key from the user data, where the real agent is uploaded and run
//! over real Docker. Adding, workspaces, stop (power off after the agent stopped
//! the workspaces) / start / remove, an undo at every step, rate limits and 5xx
//! waited out, and refusals (wrong token, Arm type, taken name) before anything is
//! made.

mod common;
#[path = "common/hetzner_fake.rs"]
mod hetzner_fake;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ssh::fingerprint_of;
use common::*;
use hetzner_fake::{Call, Fail, Fake};
use serde_json::Value;

const TOKEN: &str = "hz-test-token-6f1c0d2e9a";

/// A desktop pointed at the fake, the token in `HCLOUD_TOKEN` (or not).
fn desktop(fake: &Fake, token_env: Option<&str>) -> Desktop {
    let mut d = Desktop::new();
    d.env.push(("SAM_HCLOUD_ENDPOINT".into(), fake.endpoint()));
    if let Some(t) = token_env {
        d.env.push(("HCLOUD_TOKEN".into(), t.into()));
    }
    d.ok(&["settings", "set", "default-image", &test_image()]);
    d
}

fn add(d: &Desktop, name: &str, agent_port: u16, more: &[&str]) -> (i32, String, String) {
    let port = agent_port.to_string();
    let mut args = vec![
        "--json",
        "node",
        "add",
        "hetzner",
        "--name",
        name,
        "--agent-port",
        &port,
    ];
    args.extend_from_slice(more);
    d.run(&args)
}

fn posts(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| c.path.clone())
        .collect()
}

/// Every file of the state folder, as text (SQLite, its WAL, secrets, logs).
fn state_text(d: &Desktop) -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    let mut out = String::new();
    walk(&d.state(), &mut out);
    out
}

fn secrets_json(d: &Desktop) -> Value {
    std::fs::read(d.state().join("secrets.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// The full-length base64 lines of a PEM / OpenSSH private key that carry key
/// material (the first line is a format header every such key shares).
fn key_body(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .skip(1)
        .filter(|l| l.len() >= 60)
        .map(str::to_string)
        .collect()
}

/// `cloud-init schema --config-file` on `text`: (exit status, output).
fn cloud_init_schema(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("user-data.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&file)
        .output()
        .expect("cloud-init is not installed: `apt-get install cloud-init` (scripts/test does)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text.strip_prefix("#cloud-config\n").expect("header")).unwrap()
}

fn fingerprint_of_text(public: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k.pub");
    std::fs::write(&f, format!("{public}\n")).unwrap();
    fingerprint_of(&f)
}

fn containers_of(node_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.sam.node={node_id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// When a container stopped, in UNIX nanoseconds.
fn finished_at(container: &str) -> i128 {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.FinishedAt}}", container])
        .output()
        .expect("docker inspect");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    chrono::DateTime::parse_from_rfc3339(&text)
        .unwrap_or_else(|e| panic!("FinishedAt {text:?}: {e}"))
        .timestamp_nanos_opt()
        .unwrap() as i128
}

#[test]
fn a_hetzner_node_end_to_end() {
    let fake = Fake::start(TOKEN);
    let d = desktop(&fake, Some(TOKEN));
    let port = free_port();

    let (code, out, err) = add(&d, "box", port, &[]);
    assert_eq!(code, 0, "adding the Hetzner node failed: {err}");
    let node: Value = serde_json::from_str(&out).expect("node JSON");
    let id = node["id"].as_str().unwrap().to_string();
    assert_eq!(node["provider"], "hetzner");
    assert_eq!(node["status"], "running");
    assert_eq!(node["health"], "healthy");
    let cert = node["certFingerprint"].as_str().unwrap().to_string();
    assert!(cert.starts_with("SHA256:"), "{cert}");

    // What was made in the project: one key, one firewall, one server.
    let (servers, firewalls, keys) = (fake.servers(), fake.firewalls(), fake.ssh_keys());
    assert_eq!((servers.len(), firewalls.len(), keys.len()), (1, 1, 1));
    let server = &servers[0];
    let server_id = server["id"].as_i64().unwrap();
    let ip = server["public_net"]["ipv4"]["ip"].as_str().unwrap();
    assert_eq!(server["name"], "box");
    assert_eq!(server["status"], "running");
    assert_eq!(server["labels"]["sam-node"], id.as_str());
    assert_eq!(node["address"], format!("https://{ip}:{port}"));
    let ids = &node["providerIds"];
    assert_eq!(ids["serverId"], server_id);
    assert_eq!(ids["firewallId"], firewalls[0]["id"]);
    assert_eq!(ids["sshKeyId"], keys[0]["id"]);
    assert_eq!(ids["ipv4"], ip);
    assert_eq!(ids["serverType"], "cx22");
    assert_eq!(ids["location"], "fsn1");
    assert_eq!(ids["image"], "debian-12");
    assert_eq!(ids["agentPort"], port);

    // The firewall lets in SSH and the agent's port, nothing else.
    let mut ports: Vec<String> = firewalls[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["direction"], "in");
            assert_eq!(r["protocol"], "tcp");
            r["port"].as_str().unwrap().to_string()
        })
        .collect();
    ports.sort();
    let mut want = vec!["22".to_string(), port.to_string()];
    want.sort();
    assert_eq!(ports, want);
    assert_eq!(
        firewalls[0]["applied_to"][0]["server"]["id"], server_id,
        "applied to the server at creation"
    );

    // The order: key, firewall, server; the server names both.
    let calls = fake.calls();
    assert_eq!(
        posts(&calls),
        ["/v1/ssh_keys", "/v1/firewalls", "/v1/servers"]
    );
    let create = calls
        .iter()
        .find(|c| c.method == "POST" && c.path == "/v1/servers")
        .unwrap();
    assert_eq!(create.body["server_type"], "cx22");
    assert_eq!(create.body["ssh_keys"][0], keys[0]["name"]);
    assert_eq!(create.body["firewalls"][0]["firewall"], firewalls[0]["id"]);

    // The user data: valid cloud-config, Docker, the one-time host key.
    let user_data = fake.user_data(server_id);
    let (status, text) = cloud_init_schema(&user_data);
    assert_eq!(status, 0, "cloud-init schema: {text}");
    let doc = yaml(&user_data);
    assert!(
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "docker.io")
    );
    let one_time_private = doc["ssh_keys"]["ed25519_private"].as_str().unwrap();
    let one_time = fingerprint_of_text(doc["ssh_keys"]["ed25519_public"].as_str().unwrap());

    // The host key SAM recorded is the one the server made for itself after the
    // first (verified) connection, not the one-time key.
    let rotated = fake.host_fingerprint(server_id).unwrap();
    assert_eq!(ids["hostKey"], rotated.as_str());
    assert_ne!(rotated, one_time, "the host key was replaced");
    assert!(
        err.contains(&one_time),
        "the first connection named it: {err}"
    );
    assert!(err.contains(&rotated), "{err}");

    // The node's login key: its public half is the SSH key resource, its private
    // half is in the secret store under ssh-key:<id>.
    let secrets = secrets_json(&d);
    let login = secrets[format!("ssh-key:{id}")]
        .as_str()
        .expect("the node's key is stored");
    assert!(login.contains("OPENSSH PRIVATE KEY"));
    // `ssh-keygen -y` prints "TYPE BASE64" of the stored key: the resource's key.
    let derived = {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, login).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-yf")
            .arg(&f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let type_and_key = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(
        type_and_key(&derived),
        type_and_key(keys[0]["public_key"].as_str().unwrap())
    );

    // No private key of the node is in the state folder: not the one-time host
    // key, not the new host key, not the TLS key.
    let server_dir = fake.server_dir(server_id).unwrap();
    let install = PathBuf::from(ids["installDir"].as_str().unwrap());
    assert!(install.starts_with(server_dir.join("home")), "{install:?}");
    // The pinned certificate is the one made on the server.
    let out = Command::new(install.join("bin/sam-agent"))
        .arg("tls-init")
        .arg("--dir")
        .arg(install.join("tls"))
        .args(["--name", ip])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), cert);
    let host_private =
        std::fs::read_to_string(server_dir.join("etc-ssh/ssh_host_ed25519_key")).unwrap();
    let tls_private = std::fs::read_to_string(install.join("tls/tls.key")).unwrap();
    let state = state_text(&d);
    for (what, pem) in [
        ("one-time host key", one_time_private),
        ("host key", host_private.as_str()),
        ("TLS key", tls_private.as_str()),
    ] {
        let body = key_body(pem);
        assert!(!body.is_empty(), "{what} has a body");
        for line in body {
            assert!(!state.contains(&line), "the {what} is in the state folder");
        }
    }
    let db = std::fs::read(d.state().join("sam.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("PRIVATE KEY"));
    assert!(!String::from_utf8_lossy(&db).contains(TOKEN));

    // A taken name is refused before anything is made.
    let before = fake.calls().len();
    let (code, _, err) = add(&d, "box", free_port(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("named \"box\" already"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(fake.calls().len(), before, "not even the API was asked");

    // A workspace on it.
    let ws = d.json(&["ws", "create", "box", "alpha"]);
    assert_eq!(ws["status"], "running");
    assert_eq!(ws["node"], id.as_str());
    let containers = containers_of(&id);
    assert_eq!(containers.len(), 1);

    // Stop: the agent stops the workspace, then the server is shut down; the
    // billing warning is printed.
    let running = fake.processes(server_id);
    assert!(running.len() >= 2, "sshd and the agent run: {running:?}");
    let (code, out, err) = d.run(&["--json", "--yes", "node", "stop", "box"]);
    assert_eq!(code, 0, "{err}");
    let stopped: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["health"].is_null());
    assert!(err.contains("still billed"), "{err}");
    let calls = fake.calls();
    let shutdown = calls
        .iter()
        .find(|c| c.path == format!("/v1/servers/{server_id}/actions/shutdown"))
        .expect("the server was shut down");
    assert!(
        finished_at(&containers[0]) < shutdown.at_unix_nanos,
        "the workspace stopped before the server was powered off"
    );
    assert_eq!(fake.servers()[0]["status"], "off");
    for pid in running {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        });
        assert!(!alive, "process {pid} of the server still runs");
    }

    // Start: power on, the agent started again over SSH (pinned host key).
    let started = d.json(&["node", "start", "box"]);
    assert_eq!(started["status"], "running");
    assert_eq!(started["health"], "healthy");
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.path == format!("/v1/servers/{server_id}/actions/poweron"))
    );
    let list = d.json(&["ws", "ls", "box"]);
    assert_eq!(list[0]["displayName"], "alpha");
    assert_eq!(list[0]["status"], "stopped");

    // Remove: workspaces, then the server, the firewall and the key; the secret.
    let removed = d.json(&["--yes", "node", "rm", "box"]);
    assert_eq!(removed["deleted"], true);
    assert!(fake.is_empty(), "nothing is left in the project");
    let deletes: Vec<String> = fake
        .calls()
        .iter()
        .filter(|c| c.method == "DELETE" && c.status < 300)
        .map(|c| c.path.split('/').nth(2).unwrap_or("").to_string())
        .collect();
    assert_eq!(deletes, ["servers", "firewalls", "ssh_keys"]);
    assert!(secrets_json(&d).get(format!("ssh-key:{id}")).is_none());
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
    assert!(containers_of(&id).is_empty());
}

#[test]
fn a_stored_token_and_rate_limits_and_5xx_answers_are_waited_out() {
    let fake = Fake::start(TOKEN);
    let d = desktop(&fake, None);
    // The token from stdin, as a person pipes it.
    let mut child = d
        .cmd(&["settings", "hetzner-token"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{TOKEN}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let shown = d.json(&["settings", "show"]);
    assert_eq!(shown["hetznerTokenSet"], true);
    assert!(!serde_json::to_string(&shown).unwrap().contains(TOKEN));

    fake.fail(
        "server_types.list",
        Fail::RateLimit {
            times: 1,
            retry_after: None,
            reset_in: Some(2),
        },
    );
    fake.fail(
        "ssh_keys.create",
        Fail::RateLimit {
            times: 2,
            retry_after: Some(1),
            reset_in: None,
        },
    );
    fake.fail(
        "servers.create",
        Fail::Unavailable {
            times: 1,
            status: 503,
        },
    );
    let (code, out, err) = add(&d, "limited", free_port(), &[]);
    assert_eq!(code, 0, "{err}");
    let node: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(node["health"], "healthy");

    let calls = fake.calls();
    let of = |method: &str, path: &str| -> Vec<&Call> {
        calls
            .iter()
            .filter(|c| c.method == method && c.path == path)
            .collect()
    };
    let keys = of("POST", "/v1/ssh_keys");
    assert_eq!(
        keys.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 429, 201]
    );
    for pair in keys.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(950),
            "Retry-After: 1 was honoured ({:?})",
            pair[1].at - pair[0].at
        );
    }
    let types = of("GET", "/v1/server_types");
    assert_eq!(types[0].status, 429);
    assert_eq!(types[1].status, 200);
    assert!(
        types[1].at - types[0].at >= Duration::from_millis(900),
        "RateLimit-Reset was honoured ({:?})",
        types[1].at - types[0].at
    );
    let servers = of("POST", "/v1/servers");
    assert_eq!(
        servers.iter().map(|c| c.status).collect::<Vec<_>>(),
        [503, 201]
    );
    assert_eq!(fake.servers().len(), 1, "one server, not two");

    d.ok(&["--yes", "node", "rm", "limited"]);
    assert!(fake.is_empty());
    assert!(!state_text(&d).contains("ssh-key:"));
}

#[test]
fn every_failure_part_way_is_undone_and_nothing_is_stored() {
    let fake = Fake::start(TOKEN);
    let d = desktop(&fake, Some(TOKEN));
    let cases: Vec<(&str, Fail, &str)> = vec![
        (
            "ssh_keys.create",
            Fail::Error {
                status: 409,
                code: "uniqueness_error",
                message: "SSH key with the same fingerprint already exists",
            },
            "create the SSH key",
        ),
        (
            "firewalls.create",
            Fail::Error {
                status: 403,
                code: "resource_limit_exceeded",
                message: "firewall limit exceeded",
            },
            "create the firewall",
        ),
        (
            "servers.create",
            Fail::Error {
                status: 412,
                code: "resource_unavailable",
                message: "server type cx22 is sold out in fsn1",
            },
            "create the server",
        ),
        (
            "action.create_server",
            Fail::Break,
            "creating the server failed",
        ),
        ("boot.ssh", Fail::Break, "did not accept"),
        (
            "boot.hostkey",
            Fail::Break,
            "does not present the one-time SSH host key",
        ),
        ("boot.agent", Fail::Break, "stopped right after it started"),
    ];
    for (step, fail, says) in cases {
        fake.fail(step, fail);
        let (code, out, err) = add(&d, "box", free_port(), &[]);
        assert_eq!(code, 1, "{step}: {err}");
        assert!(out.is_empty(), "{step}");
        assert!(err.contains(says), "{step}: {err}");
        assert!(
            err.contains("Nothing was left behind"),
            "{step}: the undo is reported: {err}"
        );
        assert!(fake.is_empty(), "{step}: nothing is left in the project");
        assert_eq!(
            d.json(&["node", "ls"]).as_array().unwrap().len(),
            0,
            "{step}: no node is stored"
        );
        let secrets = secrets_json(&d);
        assert!(
            !secrets
                .as_object()
                .is_some_and(|o| o.keys().any(|k| k.starts_with("ssh-key:"))),
            "{step}: no key is stored: {secrets}"
        );
        fake.clear_failures();
    }
    // Everything that was made was deleted again: as many deletes as creates.
    let calls = fake.calls();
    let made = |kind: &str| {
        calls
            .iter()
            .filter(|c| c.method == "POST" && c.path == format!("/v1/{kind}") && c.status == 201)
            .count()
    };
    let deleted = |kind: &str| {
        calls
            .iter()
            .filter(|c| {
                c.method == "DELETE"
                    && c.path.starts_with(&format!("/v1/{kind}/"))
                    && c.status < 300
            })
            .count()
    };
    assert_eq!(made("ssh_keys"), 6);
    assert_eq!(made("firewalls"), 5);
    assert_eq!(made("servers"), 4);
    for kind in ["ssh_keys", "firewalls", "servers"] {
        assert_eq!(made(kind), deleted(kind), "{kind}");
    }

    // A project limit: a clear message with what to do, nothing half-made.
    fake.set_server_limit(0);
    let (code, _, err) = add(&d, "box", free_port(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("server limit exceeded"), "{err}");
    assert!(err.contains("Limits"), "{err}");
    assert!(fake.is_empty());
}

#[test]
fn refusals_come_before_anything_is_made() {
    let fake = Fake::start(TOKEN);

    // An Arm server type: refused before the API is even asked.
    let d = desktop(&fake, Some(TOKEN));
    let (code, _, err) = add(&d, "arm", free_port(), &["--server-type", "cax11"]);
    assert_eq!(code, 1);
    assert!(err.contains("Arm64") && err.contains("x86_64"), "{err}");
    assert!(err.contains("hint:") && err.contains("cx22"), "{err}");
    assert!(fake.calls().is_empty());

    // A wrong token: what to do next, nothing made, nothing stored.
    // HCLOUD_TOKEN beats the stored token (which is right here).
    let wrong = desktop(&fake, Some("not-the-token"));
    let mut child = wrong
        .cmd(&["settings", "hetzner-token"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), TOKEN.as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let (code, out, err) = add(&wrong, "box", free_port(), &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("refused the token in HCLOUD_TOKEN"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("Read & Write") && err.contains("HCLOUD_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("not-the-token"), "the token is never printed");
    assert!(
        fake.calls()
            .iter()
            .all(|c| c.status == 401 && c.method == "GET")
    );
    assert_eq!(wrong.json(&["node", "ls"]).as_array().unwrap().len(), 0);

    // No token at all.
    let none = desktop(&fake, None);
    let (code, _, err) = add(&none, "box", free_port(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("No Hetzner Cloud API token"), "{err}");
    assert!(err.contains("sam settings hetzner-token"), "{err}");

    // A name some server in the project has already.
    fake.seed_server("taken");
    let (code, _, err) = add(&d, "taken", free_port(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("server named \"taken\""), "{err}");
    assert!(err.contains("--name"), "{err}");
    // Unknown offers.
    let (code, _, err) = add(&d, "box", free_port(), &["--location", "mars"]);
    assert_eq!(code, 1);
    assert!(err.contains("no location \"mars\""), "{err}");
    assert!(err.contains("hetzner-options"), "{err}");
    let (code, _, err) = add(&d, "box", free_port(), &["--location", "ash"]);
    assert_eq!(code, 1);
    assert!(err.contains("not offered in ash"), "{err}");
    // A name Hetzner would not take.
    let (code, _, err) = add(&d, "under_score", free_port(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot name a Hetzner Cloud server"), "{err}");

    assert!(posts(&fake.calls()).is_empty(), "nothing was created");
    assert_eq!(fake.servers().len(), 1, "only the seeded server");
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);

    // The options for the UI: Arm types listed but unavailable.
    let o = d.json(&["node", "hetzner-options"]);
    let types = o["serverTypes"].as_array().unwrap();
    let ty = |n: &str| types.iter().find(|t| t["name"] == n).unwrap().clone();
    assert_eq!(ty("cx22")["available"], true);
    assert_eq!(ty("cx22")["architecture"], "x86");
    assert_eq!(ty("cax11")["available"], false);
    assert_eq!(ty("cax11")["architecture"], "arm");
    assert!(
        ty("cax11")["unavailableReason"]
            .as_str()
            .unwrap()
            .contains("arm64")
    );
    assert!(
        o["locations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "fsn1" && l["city"] == "Falkenstein")
    );
    let images = o["images"].as_array().unwrap();
    assert!(images.iter().any(|i| i["name"] == "debian-12"));
    assert!(images.iter().all(|i| i["architecture"] == "x86"));
    let text = d.ok(&["node", "hetzner-options"]);
    assert!(
        text.contains("SERVER TYPES") && text.contains("no (arm64"),
        "{text}"
    );
}

#[test]
fn the_user_data_is_valid_cloud_config_with_every_key_relied_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("host");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "one-time", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let private = std::fs::read_to_string(&key).unwrap();
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let text = sam_desktop::providers::hetzner::cloud_init::user_data(
        &sam_desktop::providers::hetzner::cloud_init::OneTimeHostKey {
            private_openssh: &private,
            public_openssh: &public,
        },
    )
    .unwrap();
    let (status, out) = cloud_init_schema(&text);
    assert_eq!(status, 0, "{out}\n{text}");
    assert!(out.contains("Valid cloud-config"), "{out}");

    // The schema check ignores unknown top-level keys: look for each one relied on.
    let doc = yaml(&text);
    assert_eq!(doc["package_update"], true);
    assert_eq!(doc["packages"], serde_json::json!(["docker.io"]));
    assert_eq!(doc["ssh_deletekeys"], true);
    assert_eq!(doc["ssh_genkeytypes"], serde_json::json!(["ed25519"]));
    assert_eq!(doc["ssh_keys"]["ed25519_private"], private.as_str());
    assert_eq!(doc["ssh_keys"]["ed25519_public"], public.trim());
    assert_eq!(doc["disable_root"], false);
    assert_eq!(doc["ssh_pwauth"], false);
    let known = [
        "package_update",
        "package_upgrade",
        "packages",
        "ssh_deletekeys",
        "ssh_genkeytypes",
        "ssh_keys",
        "disable_root",
        "ssh_pwauth",
        "runcmd",
    ];
    for k in doc.as_object().unwrap().keys() {
        assert!(known.contains(&k.as_str()), "unexpected key {k}");
    }

    // And the check does catch a wrong type (so a pass above means something).
    let broken = text.replace("ssh_deletekeys: true", "ssh_deletekeys: sometimes");
    assert_ne!(broken, text);
    let (status, out) = cloud_init_schema(&broken);
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("ssh_deletekeys"), "{out}");
}

#[test]
fn a_node_whose_add_was_killed_part_way_is_removed_with_everything_it_made() {
    let fake = Fake::start(TOKEN);
    let d = desktop(&fake, Some(TOKEN));
    // Slow actions, so `sam` is still waiting for the server when it is killed.
    fake.set_action_delay(Duration::from_secs(3));
    let port = free_port().to_string();
    let mut child = d
        .cmd(&[
            "node",
            "add",
            "hetzner",
            "--name",
            "crashed",
            "--agent-port",
            &port,
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fake.servers().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no server was made");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let server_id = fake.servers()[0]["id"].as_i64().unwrap();

    // The provisioning record names what was made (never a key).
    let nodes = d.json(&["node", "ls"]);
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    let node = &nodes[0];
    assert_eq!(node["status"], "provisioning");
    let id = node["id"].as_str().unwrap().to_string();
    assert_eq!(node["providerIds"]["firewallId"], fake.firewalls()[0]["id"]);
    assert_eq!(node["providerIds"]["sshKeyId"], fake.ssh_keys()[0]["id"]);
    let recorded = node["providerIds"]["serverId"].as_i64();
    assert!(recorded.is_none() || recorded == Some(server_id));

    // `rm` deletes all of it (by the recorded ids and the node's label).
    fake.set_action_delay(Duration::from_millis(150));
    let removed = d.json(&["--yes", "node", "rm", "crashed"]);
    assert_eq!(removed["deleted"], true);
    assert!(fake.is_empty(), "server, firewall and key are gone");
    assert!(secrets_json(&d).get(format!("ssh-key:{id}")).is_none());
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
}
