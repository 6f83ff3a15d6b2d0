//! CONTRACT §1: start-up configuration (flags, environment, TLS), SIGTERM and
//! restarts, against the real `sam-agent` binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use sam_protocol::WorkspaceStatus;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `sam-agent` with a clean environment (PATH only), as the desktop starts it.
fn bare() -> Command {
    let mut cmd = Command::new(AGENT);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// Runs a command that must end by itself; returns its exit code and stderr.
fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sam-agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "sam-agent did not exit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Exit status 2 and exactly one line on stderr, which contains every `needles`.
fn assert_config_error(what: &str, cmd: Command, needles: &[&str]) {
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{what}: exit status; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr, got {stderr:?}");
    for needle in needles {
        assert!(
            lines[0].to_lowercase().contains(&needle.to_lowercase()),
            "{what}: {needle:?} not in {:?}",
            lines[0]
        );
    }
}

/// A directory with a valid trusted key; returns (dir, key path, data dir).
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("trusted.pem");
    std::fs::write(&key, public_pem(&new_key())).expect("write key");
    let data = dir.path().join("data");
    (dir, key, data)
}

/// `serve` with every required flag, on a free loopback port.
fn serve_cmd(key: &Path, data: &Path) -> Command {
    serve_on(key, data, &format!("127.0.0.1:{}", free_port()))
}

/// `serve` with every required flag and this `--listen`.
fn serve_on(key: &Path, data: &Path, listen: &str) -> Command {
    let mut cmd = bare();
    cmd.args(["serve", "--node-id", "cfg-node"])
        .arg("--trusted-key")
        .arg(key)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", listen]);
    cmd
}

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(data) = stdin {
            input.write_all(data).expect("write");
        }
    }
    let out = child.wait_with_output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The public half, as a PEM `PUBLIC KEY`, of a fresh key from `openssl genpkey`.
fn openssl_public_key(genpkey: &[&str]) -> Vec<u8> {
    let mut args = vec!["genpkey"];
    args.extend(genpkey);
    let private = openssl(&args, None);
    openssl(&["pkey", "-pubout"], Some(&private))
}

/// A self-signed certificate for IP 127.0.0.1 (an end-entity certificate, not a CA):
/// returns (cert path, key path).
fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cfg = dir.join("cert.cnf");
    std::fs::write(
        &cfg,
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n\
         [dn]\nCN = sam-agent test\n\
         [ext]\nsubjectAltName = IP:127.0.0.1\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write cnf");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-config",
            cfg.to_str().expect("utf-8"),
            "-keyout",
            key.to_str().expect("utf-8"),
            "-out",
            cert.to_str().expect("utf-8"),
        ],
        None,
    );
    (cert, key)
}

/// An [`Agent`] that is not running yet: key written, port chosen. Start it with
/// [`launch`] and a command of the test's own.
fn unstarted() -> Agent {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = new_key();
    std::fs::write(dir.path().join("trusted.pem"), public_pem(&key)).expect("write key");
    Agent {
        binary: AGENT.into(),
        child: None,
        node_id: format!("cfg-{:08x}", rand::random::<u32>()),
        port: free_port(),
        key,
        dir,
        options: Options::default(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
    }
}

/// Spawns `cmd` as `agent`'s process (stderr to its log) and waits until
/// `health_url` answers 200 through `client`.
async fn launch(agent: &mut Agent, mut cmd: Command, client: &reqwest::Client, health_url: &str) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(agent.dir.path().join("agent.log"))
        .expect("log");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn sam-agent");
    agent.child = Some(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(health_url).send().await
            && r.status() == 200
        {
            let body: Value = r.json().await.expect("health json");
            assert_eq!(body["status"], "ok");
            return;
        }
        if let Some(status) = agent
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("sam-agent exited with {status}: {}", agent.log());
        }
        assert!(
            Instant::now() < deadline,
            "sam-agent did not answer {health_url}: {}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tls_client(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).expect("cert");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("certificate"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

// ---- bad configuration: exit 2, one line ----

#[test]
fn missing_node_id_is_exit_2() {
    let (_dir, key, data) = scratch();
    let mut cmd = bare();
    cmd.arg("serve")
        .arg("--trusted-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(&data);
    assert_config_error("no --node-id", cmd, &["--node-id"]);

    // Empty or odd node ids are as bad as none.
    for id in ["", "has space", "a/b"] {
        let mut cmd = serve_cmd(&key, &data);
        cmd.args(["--node-id", id]);
        assert_config_error(&format!("--node-id {id:?}"), cmd, &["--node-id"]);
    }
}

#[test]
fn missing_trusted_key_or_bad_data_dir_is_exit_2() {
    let (_dir, key, data) = scratch();
    let mut cmd = bare();
    cmd.args(["serve", "--node-id", "n1"])
        .arg("--data-dir")
        .arg(&data);
    assert_config_error("no --trusted-key", cmd, &["--trusted-key"]);

    let mut cmd = bare();
    cmd.args(["serve", "--node-id", "n1"])
        .arg("--trusted-key")
        .arg(&key);
    assert_config_error("no --data-dir", cmd, &["--data-dir"]);

    // A data dir that cannot be made (a file is in the way).
    let file = data.with_file_name("a-file");
    std::fs::write(&file, "x").expect("write");
    assert_config_error(
        "--data-dir is a file",
        serve_cmd(&key, &file),
        &["--data-dir"],
    );
    // A data dir whose database is not one.
    let corrupt = data.with_file_name("corrupt");
    std::fs::create_dir_all(&corrupt).expect("mkdir");
    std::fs::write(corrupt.join("agent.db"), vec![0x5a; 8192]).expect("write");
    assert_config_error("corrupt database", serve_cmd(&key, &corrupt), &["data dir"]);
}

#[test]
fn unreadable_or_wrong_trusted_keys_are_exit_2() {
    let (dir, _key, data) = scratch();
    let bad = |name: &str, contents: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        path
    };

    let missing = dir.path().join("does-not-exist.pem");
    assert_config_error(
        "missing key file",
        serve_cmd(&missing, &data),
        &["--trusted-key"],
    );

    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir(&a_dir).expect("mkdir");
    assert_config_error(
        "a directory as key",
        serve_cmd(&a_dir, &data),
        &["--trusted-key"],
    );

    let ed_private = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        new_key()
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pem")
            .to_string()
    };
    let cases: Vec<(&str, PathBuf)> = vec![
        ("empty file", bad("empty.pem", b"")),
        ("garbage", bad("garbage.pem", b"this is not a key\n")),
        ("binary", bad("binary.pem", &[0xff, 0xfe, 0x00, 0x01])),
        (
            "a PUBLIC KEY block of garbage",
            bad(
                "garbage-block.pem",
                b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PUBLIC KEY-----\n",
            ),
        ),
        (
            "an RSA public key",
            bad(
                "rsa.pem",
                &openssl_public_key(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
            ),
        ),
        (
            "an EC public key",
            bad(
                "ec.pem",
                &openssl_public_key(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            ),
        ),
        (
            "an X25519 public key",
            bad("x25519.pem", &openssl_public_key(&["-algorithm", "X25519"])),
        ),
        (
            "an Ed25519 private key",
            bad("private.pem", ed_private.as_bytes()),
        ),
    ];
    for (what, path) in cases {
        assert_config_error(what, serve_cmd(&path, &data), &["--trusted-key"]);
    }

    // Control: an Ed25519 public key made by openssl is accepted (the process then
    // serves; a bad --listen afterwards shows the key check passed).
    let good = bad(
        "openssl-ed25519.pem",
        &openssl_public_key(&["-algorithm", "ED25519"]),
    );
    assert_config_error(
        "openssl Ed25519 key, bad listen",
        serve_on(&good, &data, "not-an-address"),
        &["--listen"],
    );
}

#[test]
fn bad_listen_addresses_are_exit_2() {
    let (_dir, key, data) = scratch();
    for listen in [
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:99999",
        "localhost:7420",
        "",
        "127.0.0.1:-1",
    ] {
        assert_config_error(
            &format!("--listen {listen:?}"),
            serve_on(&key, &data, listen),
            &["--listen"],
        );
    }

    // Off loopback without TLS: refused with a word about plain HTTP / TLS.
    for listen in [
        format!("0.0.0.0:{}", free_port()),
        format!("[::]:{}", free_port()),
    ] {
        let (code, stderr) = run_to_exit(serve_on(&key, &data, &listen));
        assert_eq!(code, Some(2), "--listen {listen}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr:?}");
        assert!(
            lines[0].contains("TLS") || lines[0].contains("plain HTTP"),
            "{stderr}"
        );
        assert!(lines[0].contains("--tls-cert"), "{stderr}");
    }

    // The port is taken: start-up fails with status 2, and the last line names it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    assert_config_error("port in use", serve_on(&key, &data, &addr), &[&addr]);
    drop(taken);
}

#[tokio::test]
async fn tls_flags_must_come_in_pairs_and_be_usable() {
    let mut agent = unstarted();
    let dir = agent.dir.path().to_path_buf();
    let key = dir.join("trusted.pem");
    let data = agent.data_dir();
    let (cert, tls_key) = self_signed_cert(&dir);

    let mut cmd = serve_cmd(&key, &data);
    cmd.arg("--tls-cert").arg(&cert);
    assert_config_error("--tls-cert alone", cmd, &["--tls-key"]);

    let mut cmd = serve_cmd(&key, &data);
    cmd.arg("--tls-key").arg(&tls_key);
    assert_config_error("--tls-key alone", cmd, &["--tls-cert"]);

    let mut cmd = serve_cmd(&key, &data);
    cmd.arg("--tls-cert")
        .arg(dir.join("nope.pem"))
        .arg("--tls-key")
        .arg(&tls_key);
    assert_config_error("missing certificate", cmd, &["--tls-cert"]);

    // Files that exist but cannot be used are bad configuration too: exit 2 and one
    // line, before the agent records that it started.
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let other_key = dir.join("other-key.pem");
    std::fs::write(
        &other_key,
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            None,
        ),
    )
    .expect("write");
    for (what, c, k) in [
        ("a certificate file without a certificate", &junk, &tls_key),
        ("a key file without a key", &cert, &junk),
        ("the certificate as the key", &cert, &cert),
        (
            "a key that does not match the certificate",
            &cert,
            &other_key,
        ),
    ] {
        let mut cmd = serve_cmd(&key, &data);
        cmd.arg("--tls-cert").arg(c).arg("--tls-key").arg(k);
        assert_config_error(what, cmd, &["tls"]);
    }

    // None of those starts counts as one: the data dir has a single node.started,
    // from this proper start.
    let mut cmd = bare();
    cmd.args(["serve", "--node-id", &agent.node_id])
        .arg("--trusted-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", agent.port)]);
    let client = agent.http.clone();
    let health = agent.url("/health");
    launch(&mut agent, cmd, &client, &health).await;
    let (s, page) = agent.get_json("/events?limit=500").await;
    assert_eq!(s, 200, "{page}");
    let started = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "node.started")
        .count();
    assert_eq!(started, 1, "{page}");
}

#[test]
fn bad_numbers_and_agents_are_exit_2() {
    let (_dir, key, data) = scratch();
    let flag_cases: &[(&[&str], &str)] = &[
        (&["--agent", "noequals"], "--agent"),
        (&["--agent", "=cmd"], "--agent"),
        (&["--agent", "x="], "--agent"),
        (&["--agent", "x='unterminated"], "--agent"),
        (
            &["--agent", "good=cmd", "--agent", "bad name=cmd"],
            "--agent",
        ),
        (&["--max-workspaces", "abc"], "--max-workspaces"),
        (&["--max-workspaces=-1"], "--max-workspaces"),
        (&["--max-workspaces", "0"], "--max-workspaces"),
        (
            &["--max-sessions-per-workspace", "0"],
            "--max-sessions-per-workspace",
        ),
        (&["--heartbeat-seconds", "0"], "--heartbeat-seconds"),
        (&["--heartbeat-seconds", "soon"], "--heartbeat-seconds"),
        (&["--default-image", ""], "--default-image"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, needle) in flag_cases {
        let mut cmd = serve_cmd(&key, &data);
        cmd.args(*args);
        assert_config_error(&format!("{args:?}"), cmd, &[needle]);
    }

    // The same mistakes through the environment.
    let env_cases: &[(&str, &str)] = &[
        ("SAM_AGENTS", "noequals"),
        ("SAM_AGENTS", "ok=cmd\nnoequals"),
        ("MAX_WORKSPACES_PER_NODE", "many"),
        ("MAX_AGENT_SESSIONS_PER_WORKSPACE", "0"),
        ("SAM_HEARTBEAT_SECONDS", "0"),
        ("SAM_LISTEN", "nowhere"),
    ];
    for (name, value) in env_cases {
        let mut cmd = bare();
        cmd.args(["serve", "--node-id", "n1"])
            .arg("--trusted-key")
            .arg(&key)
            .arg("--data-dir")
            .arg(&data)
            .env(name, value);
        if *name != "SAM_LISTEN" {
            cmd.env("SAM_LISTEN", format!("127.0.0.1:{}", free_port()));
        }
        let (code, stderr) = run_to_exit(cmd);
        assert_eq!(code, Some(2), "{name}={value:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}={value:?}: {stderr:?}");
    }
}

// ---- configuration from the environment ----

#[tokio::test]
async fn every_setting_comes_from_the_environment() {
    let mut agent = unstarted();
    let mut cmd = bare();
    cmd.arg("serve")
        .env("SAM_NODE_ID", &agent.node_id)
        .env("SAM_TRUSTED_KEY", agent.dir.path().join("trusted.pem"))
        .env("SAM_DATA_DIR", agent.data_dir())
        .env("SAM_LISTEN", format!("127.0.0.1:{}", agent.port))
        .env("MAX_WORKSPACES_PER_NODE", "3")
        .env("MAX_AGENT_SESSIONS_PER_WORKSPACE", "2")
        .env("SAM_HEARTBEAT_SECONDS", "1")
        .env("SAM_DEFAULT_IMAGE", test_image())
        .env("SAM_AGENTS", "fixture=/bin/true --flag\nother=/bin/false");
    let client = agent.http.clone();
    let health = agent.url("/health");
    launch(&mut agent, cmd, &client, &health).await;

    let (s, node) = agent.get_json("/node").await;
    assert_eq!(s, 200, "{node}");
    assert_eq!(node["nodeId"], agent.node_id.as_str());
    assert_eq!(node["limits"]["maxWorkspaces"], 3);
    assert_eq!(node["limits"]["maxSessionsPerWorkspace"], 2);
    assert!(agent.data_dir().is_dir(), "state lives in SAM_DATA_DIR");

    // SAM_HEARTBEAT_SECONDS=1: two heartbeats well within the default's 10 s.
    let mut req = agent
        .ws_url("/events/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", agent.node_token())
            .parse()
            .expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    let started = Instant::now();
    let mut heartbeats = 0;
    while heartbeats < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("frame");
        let frame: Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
        if frame["type"] == "heartbeat" {
            assert_eq!(frame["node"]["nodeId"], agent.node_id.as_str());
            heartbeats += 1;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "heartbeats every second"
    );
    drop(socket);

    // SAM_DEFAULT_IMAGE: a workspace that names no image gets it.
    let ws = agent.create(json!({"displayName": "default-image"})).await;
    let ws = agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    assert_eq!(ws.image, test_image());
    assert_eq!(ws.node_id, agent.node_id);
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn a_flag_beats_the_environment() {
    let agent = Agent::start_with(Options {
        args: vec![
            "--max-workspaces".into(),
            "4".into(),
            "--max-sessions-per-workspace".into(),
            "7".into(),
        ],
        env: vec![
            ("MAX_WORKSPACES_PER_NODE".into(), "3".into()),
            ("MAX_AGENT_SESSIONS_PER_WORKSPACE".into(), "2".into()),
            // The harness passes --node-id, --listen, --data-dir and --trusted-key.
            ("SAM_NODE_ID".into(), "env-node".into()),
            ("SAM_LISTEN".into(), "127.0.0.1:1".into()),
            ("SAM_DATA_DIR".into(), "/nonexistent/env-data".into()),
            ("SAM_TRUSTED_KEY".into(), "/nonexistent/env-key.pem".into()),
            ("SAM_HEARTBEAT_SECONDS".into(), "3600".into()),
        ],
    })
    .await;
    let (s, node) = agent.get_json("/node").await;
    assert_eq!(s, 200, "{node}");
    assert_eq!(node["nodeId"], agent.node_id.as_str());
    assert_eq!(node["limits"]["maxWorkspaces"], 4);
    assert_eq!(node["limits"]["maxSessionsPerWorkspace"], 7);
    assert!(agent.data_dir().is_dir());
}

#[tokio::test]
async fn plain_http_on_any_loopback_address() {
    for host in ["127.0.0.2", "[::1]"] {
        let mut agent = unstarted();
        let listen = format!("{host}:{}", agent.port);
        let mut cmd = bare();
        cmd.args(["serve", "--node-id", &agent.node_id])
            .arg("--trusted-key")
            .arg(agent.dir.path().join("trusted.pem"))
            .arg("--data-dir")
            .arg(agent.data_dir())
            .args(["--listen", &listen]);
        let client = agent.http.clone();
        launch(&mut agent, cmd, &client, &format!("http://{listen}/health")).await;
        let r = client
            .get(format!("http://{listen}/node"))
            .bearer_auth(agent.node_token())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{listen}");
        let (status, _) = agent.terminate();
        assert_eq!(status.code(), Some(0), "{listen}: {}", agent.log());
    }
}

// ---- TLS ----

#[tokio::test]
async fn tls_on_loopback() {
    let mut agent = unstarted();
    let (cert, key) = self_signed_cert(agent.dir.path());
    let mut cmd = bare();
    cmd.args(["serve", "--node-id", &agent.node_id])
        .arg("--trusted-key")
        .arg(agent.dir.path().join("trusted.pem"))
        .arg("--data-dir")
        .arg(agent.data_dir())
        .args(["--listen", &format!("127.0.0.1:{}", agent.port)])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key);
    let client = tls_client(&cert);
    let base = format!("https://127.0.0.1:{}", agent.port);
    launch(&mut agent, cmd, &client, &format!("{base}/health")).await;

    // Authenticated calls work over TLS.
    let r = client
        .get(format!("{base}/node"))
        .bearer_auth(agent.node_token())
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    let node: Value = r.json().await.expect("json");
    assert_eq!(node["nodeId"], agent.node_id.as_str());
    let r = client
        .get(format!("{base}/node"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 401);

    // Plain HTTP to the TLS port gets no answer from the API.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match plain.get(agent.url("/health")).send().await {
        Err(_) => {}
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            assert!(
                !status.is_success() && !body.contains("\"ok\""),
                "plain HTTP was served: {status} {body}"
            );
        }
    }
    // A client that does not trust the certificate refuses the connection.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{base}/health"))
            .send()
            .await
            .is_err()
    );

    let (status, took) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(10));
}

#[tokio::test]
async fn tls_from_the_environment_may_listen_on_all_addresses() {
    let mut agent = unstarted();
    let (cert, key) = self_signed_cert(agent.dir.path());
    let mut cmd = bare();
    cmd.arg("serve")
        .env("SAM_NODE_ID", &agent.node_id)
        .env("SAM_TRUSTED_KEY", agent.dir.path().join("trusted.pem"))
        .env("SAM_DATA_DIR", agent.data_dir())
        .env("SAM_LISTEN", format!("0.0.0.0:{}", agent.port))
        .env("SAM_TLS_CERT", &cert)
        .env("SAM_TLS_KEY", &key);
    let client = tls_client(&cert);
    let base = format!("https://127.0.0.1:{}", agent.port);
    launch(&mut agent, cmd, &client, &format!("{base}/health")).await;

    let r = client
        .get(format!("{base}/node"))
        .bearer_auth(agent.node_token())
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    let node: Value = r.json().await.expect("json");
    assert_eq!(node["nodeId"], agent.node_id.as_str());

    // It really listens on every address, not just loopback: a listening socket
    // on 0.0.0.0 (state 0A) in the kernel's table.
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let wanted = format!("00000000:{:04X}", agent.port);
    assert!(
        table.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1) == Some(&wanted.as_str()) && cols.get(3) == Some(&"0A")
        }),
        "no listener on {wanted}: {table}"
    );

    let (status, took) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(10));
}

// ---- SIGTERM and restarts ----

#[tokio::test]
async fn sigterm_exits_0_promptly() {
    let mut agent = Agent::start().await;
    let (status, took) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(agent.http.get(agent.url("/health")).send().await.is_err());
}

#[tokio::test]
async fn sigint_exits_0_promptly() {
    let mut agent = Agent::start().await;
    let mut child = agent.child.take().expect("running");
    let started = Instant::now();
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn sigterm_exits_0_with_an_open_event_stream() {
    let mut agent = Agent::start().await;
    let mut req = agent
        .ws_url("/events/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", agent.node_token())
            .parse()
            .expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    // The stream is live: a heartbeat arrives.
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a frame")
        .expect("open")
        .expect("frame");
    assert!(first.to_text().expect("text").contains("heartbeat"));

    // The client keeps the socket open and reads nothing while the agent stops.
    let (status, took) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // The socket ends (a close frame or the connection going away).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end");
}

#[tokio::test]
async fn restart_keeps_events_and_workspaces() {
    let mut agent = Agent::start().await;
    let ws = agent.running("survivor").await;

    let (s, page) = agent.get_json("/events?limit=500").await;
    assert_eq!(s, 200);
    let started_before: Vec<String> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "node.started")
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(started_before.len(), 1, "{page}");
    let all_before: Vec<String> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();

    let (status, took) = agent.terminate();
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(10));
    // Containers are not the agent's to kill on a restart.
    let (ok, running) = docker(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        &format!("sam-ws-{}", ws.id),
    ]);
    assert!(ok && running.trim() == "true", "{running}");

    agent.spawn().await;
    let (s, page) = agent.get_json("/events?limit=500").await;
    assert_eq!(s, 200);
    let events = page["events"].as_array().expect("events");
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    for id in &all_before {
        assert!(ids.contains(&id.as_str()), "event {id} lost: {page}");
    }
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "node.started")
        .collect();
    assert_eq!(started.len(), 2, "{page}");
    // Newest first: the new node.started comes before the old one.
    assert_eq!(started[1]["id"], started_before[0].as_str());
    assert!(started[0]["id"].as_str() > started[1]["id"].as_str());
    assert!(
        started
            .iter()
            .all(|e| e["nodeId"] == agent.node_id.as_str())
    );

    // The workspace is still there, and running.
    let again = agent.workspace(&ws.id).await;
    assert_eq!(again.status, WorkspaceStatus::Running);
    assert_eq!(again.project_path, ws.project_path);

    agent.delete(&ws.id).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}
