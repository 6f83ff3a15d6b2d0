//! SSH nodes end to end through the `sam` CLI: a real OpenSSH server on loopback
//! (per test, its own host key, client key and `$HOME`), the real agent binary
//! uploaded and run there, real Docker. Trust on first use, refusals (unknown or
//! changed host key, changed certificate, unreachable host, taken name) and that a
//! refusal leaves nothing behind on the server or in SAM.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::ssh::{Sshd, fingerprint_of};
use common::*;

/// `sam node add ssh root@127.0.0.1 …` arguments for this server.
fn add_args(sshd: &Sshd, agent_port: u16, name: &str, accept: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "node",
        "add",
        "ssh",
        "root@127.0.0.1",
        "--port",
        &sshd.port.to_string(),
        "--identity",
        sshd.client_key().to_str().unwrap(),
        "--name",
        name,
        "--agent-port",
        &agent_port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(fp) = accept {
        args.push("--accept-host-key".into());
        args.push(fp.into());
    }
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A desktop with the test image as default, and a node `name` added on `sshd`.
fn desktop_with_node(sshd: &Sshd, name: &str) -> (Desktop, serde_json::Value, u16) {
    let d = Desktop::new();
    d.ok(&["settings", "set", "default-image", &test_image()]);
    let port = free_port();
    let mut args = vec!["--json".to_string()];
    args.extend(add_args(sshd, port, name, Some(&sshd.host_fingerprint())));
    let (code, out, err) = d.run(&strs(&args));
    assert_eq!(code, 0, "adding the SSH node failed: {err}");
    let node: serde_json::Value = serde_json::from_str(&out).expect("node JSON");
    (d, node, port)
}

fn install_dir(node: &serde_json::Value) -> PathBuf {
    PathBuf::from(
        node["providerIds"]["installDir"]
            .as_str()
            .expect("installDir"),
    )
}

/// Runs the uploaded agent's `tls-init` on the "server" (this machine).
fn tls_init(dir: &Path, force: bool) -> String {
    let mut cmd = Command::new(dir.join("bin/sam-agent"));
    cmd.arg("tls-init")
        .arg("--dir")
        .arg(dir.join("tls"))
        .args(["--name", "127.0.0.1"]);
    if force {
        cmd.arg("--force");
    }
    let out = cmd.output().expect("tls-init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn containers_of(node_id: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.sam.node={node_id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn add_over_ssh_with_a_pinned_certificate_then_workspaces_stop_start_remove() {
    let sshd = Sshd::start();
    let (d, node, port) = desktop_with_node(&sshd, "box");
    let id = node["id"].as_str().unwrap().to_string();
    assert_eq!(node["provider"], "ssh");
    assert_eq!(node["status"], "running");
    assert_eq!(node["health"], "healthy");
    assert_eq!(node["address"], format!("https://127.0.0.1:{port}"));
    let ids = &node["providerIds"];
    assert_eq!(ids["user"], "root");
    assert_eq!(ids["host"], "127.0.0.1");
    assert_eq!(ids["port"], sshd.port);
    assert_eq!(ids["hostKey"], sshd.host_fingerprint());
    assert_eq!(ids["agentPort"], port);
    assert_eq!(ids["service"], "process", "no systemd here");
    assert_eq!(
        ids["identity"],
        sshd.client_key().to_str().unwrap(),
        "only the key's path is recorded"
    );

    // The TLS pair was made on the server; SAM pinned its certificate.
    let dir = install_dir(&node);
    assert_eq!(
        dir,
        sshd.installs().join(&id),
        "installed under the node id"
    );
    let fp = node["certFingerprint"].as_str().unwrap().to_string();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    assert_eq!(
        tls_init(&dir, false),
        fp,
        "the server's certificate is the pinned one"
    );
    let key_mode = std::fs::metadata(dir.join("tls/tls.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );
    // The installation's public key is what the agent trusts; no private key was
    // copied there, and none is in SAM's database.
    let trusted = std::fs::read_to_string(dir.join("trusted.pub.pem")).unwrap();
    assert!(trusted.contains("BEGIN PUBLIC KEY"));
    let mut files = Vec::new();
    for entry in walk(&dir) {
        if std::fs::read_to_string(&entry).is_ok_and(|text| text.contains("PRIVATE KEY")) {
            files.push(entry);
        }
    }
    assert_eq!(
        files,
        vec![dir.join("tls/tls.key")],
        "the only private key is the TLS one"
    );
    let db = std::fs::read(d.state().join("sam.db")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&db).contains("PRIVATE KEY"));
    // The agent's settings come from a file, not its command line.
    let pid = sshd.agent_pids();
    assert_eq!(pid.len(), 1, "one agent runs");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid[0])).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&cmdline),
        format!("{}\0serve\0", dir.join("bin/sam-agent").display())
    );

    let shown = d.json(&["node", "show", "box"]);
    assert_eq!(shown["certFingerprint"], fp.as_str());
    assert_eq!(shown["health"], "healthy");

    // Workspaces on it, over pinned TLS.
    let ws = d.json(&["ws", "create", "box", "alpha"]);
    assert_eq!(ws["status"], "running");
    assert_eq!(ws["node"], id.as_str());
    let list = d.json(&["ws", "ls", "box"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["displayName"], "alpha");

    // Stop: workspaces, then the agent over SSH.
    let stopped = d.json(&["--yes", "node", "stop", "box"]);
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["health"].is_null());
    assert!(
        sshd.wait_no_agents(Duration::from_secs(5)),
        "the agent was stopped"
    );

    let started = d.json(&["node", "start", "box"]);
    assert_eq!(started["status"], "running");
    assert_eq!(started["health"], "healthy");
    assert_eq!(sshd.agent_pids().len(), 1);
    let list = d.json(&["ws", "ls", "box"]);
    assert_eq!(list[0]["status"], "stopped");

    let removed = d.json(&["--yes", "node", "rm", "box"]);
    assert_eq!(removed["deleted"], true);
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
    assert!(sshd.wait_no_agents(Duration::from_secs(5)));
    assert!(!dir.exists(), "the install dir (data dir included) is gone");
    assert!(sshd.installed().is_empty());
    assert_eq!(containers_of(&id), 0, "no container left behind");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_unknown_host_key_is_refused_without_a_terminal_and_a_wrong_one_always() {
    let sshd = Sshd::start();
    let d = Desktop::new();
    let fp = sshd.host_fingerprint();
    let port = free_port();

    let (code, out, err) = d.run(&strs(&add_args(&sshd, port, "box", None)));
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("has not seen before"), "{err}");
    let hint = err.lines().find(|l| l.starts_with("hint:")).expect(&err);
    assert!(
        hint.contains(&format!("--accept-host-key {fp}")),
        "the fingerprint is in the hint: {err}"
    );

    // Someone else's key: refused, naming both.
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("k");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let wrong = fingerprint_of(&key.with_extension("pub"));
    let (code, _, err) = d.run(&strs(&add_args(&sshd, port, "box", Some(&wrong))));
    assert_eq!(code, 1);
    assert!(err.contains(&fp) && err.contains(&wrong), "{err}");
    // Not a fingerprint at all.
    let (code, _, err) = d.run(&strs(&add_args(&sshd, port, "box", Some("yes"))));
    assert_eq!(code, 1);
    assert!(err.contains("not a SHA256 fingerprint"), "{err}");

    // Nothing was made anywhere.
    assert!(!sshd.installs().exists(), "nothing on the server");
    assert!(sshd.agent_pids().is_empty());
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
}

#[test]
fn on_a_terminal_the_host_key_is_shown_and_asked_for() {
    let sshd = Sshd::start();
    let mut d = Desktop::new();
    d.ok(&["settings", "set", "default-image", &test_image()]);
    let fp = sshd.host_fingerprint();
    // The agent port from the environment this time (not --agent-port).
    let port = free_port();
    d.env.push(("SAM_SSH_AGENT_PORT".into(), port.to_string()));
    // `script` gives sam a terminal; the answer comes on it.
    let line = |answer: &str| {
        let mut args = add_args(&sshd, port, "box", None);
        let i = args.iter().position(|a| a == "--agent-port").unwrap();
        args.drain(i..i + 2);
        let quoted: Vec<String> = std::iter::once(SAM.to_string())
            .chain(std::iter::once("--json".to_string()))
            .chain(args)
            .map(|a| format!("'{a}'"))
            .collect();
        let cmd = d.cmd(&[]);
        let mut child = Command::new("script")
            .args(["-qec", &quoted.join(" "), "/dev/null"])
            .env_clear()
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("script");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        // The terminal keeps the answer until sam reads it; stdin stays open
        // until sam is done (its end would end the terminal).
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, format!("{answer}\n").as_bytes()).unwrap();
        let status = child.wait().unwrap();
        drop(stdin);
        (status.code().unwrap_or(-1), reader.join().unwrap())
    };

    let (code, text) = line("n");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&fp) && text.contains("Trust it"), "{text}");
    assert!(!sshd.installs().exists());

    let (code, text) = line("y");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&fp));
    let node = d.json(&["node", "show", "box"]);
    assert_eq!(node["providerIds"]["hostKey"], fp.as_str());
    assert_eq!(node["address"], format!("https://127.0.0.1:{port}"));
    assert_eq!(node["health"], "healthy");
    d.ok(&["--yes", "node", "rm", "box"]);
    assert!(sshd.installed().is_empty());
}

#[test]
fn a_changed_host_key_is_refused_with_both_fingerprints_and_a_taken_name_before_anything() {
    let mut sshd = Sshd::start();
    let (d, node, _) = desktop_with_node(&sshd, "box");
    let dir = install_dir(&node);

    // A taken name: refused before any server is contacted (this port has no sshd).
    let nothing = free_port();
    let (code, _, err) = d.run(&[
        "node",
        "add",
        "ssh",
        "root@127.0.0.1",
        "--port",
        &nothing.to_string(),
        "--identity",
        sshd.client_key().to_str().unwrap(),
        "--name",
        "box",
        "--accept-host-key",
        &sshd.host_fingerprint(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("named \"box\" already"), "{err}");
    assert!(err.contains("hint: Pick another name"), "{err}");
    assert_eq!(sshd.installed().len(), 1, "nothing more on the server");

    let old = sshd.host_fingerprint();
    sshd.replace_host_key();
    let new = sshd.host_fingerprint();
    assert_ne!(old, new);

    let (code, _, err) = d.run(&["--yes", "node", "stop", "box"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("host key") && err.contains(&old) && err.contains(&new),
        "{err}"
    );
    assert!(err.contains("refuses"), "{err}");
    // Refused before anything was stopped: the node and its agent are as they were.
    let shown = d.json(&["node", "show", "box"]);
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["health"], "healthy");
    assert_eq!(sshd.agent_pids().len(), 1);

    // Removing it is refused the same way, and says how to forget it instead.
    let (code, _, err) = d.run(&["--yes", "node", "rm", "box"]);
    assert_eq!(code, 1);
    assert!(err.contains(&old) && err.contains(&new), "{err}");
    assert!(err.contains("--forget"), "{err}");
    assert!(dir.exists());

    // The server disappears: a clear error, then the node can be forgotten.
    sshd.stop();
    let (code, _, err) = d.run(&["--yes", "node", "rm", "box"]);
    assert_eq!(code, 1);
    assert!(err.contains("Cannot reach the SSH server"), "{err}");
    assert!(err.contains("sam node rm box --forget"), "{err}");
    let gone = d.json(&["--yes", "node", "rm", "box", "--forget"]);
    assert_eq!(gone["deleted"], true);
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
}

/// Restarts this install's agent outside SAM (as an administrator would), with
/// whatever certificate is in its folder now.
fn restart_agent_by_hand(sshd: &Sshd, dir: &Path, port: u16) {
    for pid in sshd.agent_pids() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert!(sshd.wait_no_agents(Duration::from_secs(15)));
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{d}' && (set -a; . ./agent.env; set +a; exec setsid nohup '{d}/bin/sam-agent' serve >>agent.log 2>&1 </dev/null) & echo $! > '{d}/agent.pid'",
            d = dir.display()
        ))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not listen again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_changed_certificate_makes_the_node_unhealthy_and_is_refused_with_both_fingerprints() {
    let sshd = Sshd::start();
    let (d, node, port) = desktop_with_node(&sshd, "box");
    let dir = install_dir(&node);
    let pinned = node["certFingerprint"].as_str().unwrap().to_string();

    let replaced = tls_init(&dir, true);
    assert_ne!(replaced, pinned);
    restart_agent_by_hand(&sshd, &dir, port);

    // `show` still shows the node, unhealthy at once, and warns with both.
    let (code, out, err) = d.run(&["--json", "node", "show", "box"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["health"], "unhealthy");
    assert_eq!(
        shown["certFingerprint"],
        pinned.as_str(),
        "the pin is not changed"
    );
    assert!(err.starts_with("warning: "), "{err}");
    assert!(err.contains(&pinned) && err.contains(&replaced), "{err}");

    // Anything that talks to the agent is refused with both fingerprints.
    let (code, _, err) = d.run(&["--yes", "node", "stop", "box"]);
    assert_eq!(code, 1);
    assert!(err.contains(&pinned) && err.contains(&replaced), "{err}");
    let (code, _, err) = d.run(&["ws", "create", "box", "alpha"]);
    assert_eq!(code, 1);
    assert!(err.contains(&pinned) && err.contains(&replaced), "{err}");

    // Started by SAM with that certificate: refused, and not left running.
    for pid in sshd.agent_pids() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert!(sshd.wait_no_agents(Duration::from_secs(15)));
    let (code, _, err) = d.run(&["node", "start", "box"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&pinned) && err.contains(&replaced), "{err}");
    assert!(
        sshd.wait_no_agents(Duration::from_secs(15)),
        "the untrusted agent was stopped"
    );

    // Removing the node still cleans the server.
    d.ok(&["--yes", "node", "rm", "box"]);
    assert!(!dir.exists());
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
}

#[test]
fn an_unreachable_host_or_a_bad_key_stores_nothing() {
    let sshd = Sshd::start();
    let d = Desktop::new();
    let nothing = free_port();
    let fp = sshd.host_fingerprint();

    let (code, out, err) = d.run(&[
        "node",
        "add",
        "ssh",
        "root@127.0.0.1",
        "--port",
        &nothing.to_string(),
        "--identity",
        sshd.client_key().to_str().unwrap(),
        "--accept-host-key",
        &fp,
    ]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains(&format!("Cannot reach the SSH server 127.0.0.1:{nothing}")),
        "{err}"
    );
    assert!(
        err.contains("hint: Check the host name and --port"),
        "{err}"
    );

    // A key file that is not there, and a key the server does not know.
    let (code, _, err) = d.run(&strs(&{
        let mut a = add_args(&sshd, free_port(), "box", Some(&fp));
        let i = a.iter().position(|x| x == "--identity").unwrap();
        a[i + 1] = "/nonexistent/key".into();
        a
    }));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/key does not exist"), "{err}");
    let stranger = tempfile::tempdir().unwrap();
    let key = stranger.path().join("k");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let (code, _, err) = d.run(&strs(&{
        let mut a = add_args(&sshd, free_port(), "box", Some(&fp));
        let i = a.iter().position(|x| x == "--identity").unwrap();
        a[i + 1] = key.to_str().unwrap().into();
        a
    }));
    assert_eq!(code, 1);
    assert!(err.contains("did not accept the key"), "{err}");

    // The agent port is taken on the server: refused before anything is uploaded.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let (code, _, err) = d.run(&strs(&add_args(&sshd, busy_port, "box", Some(&fp))));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Port {busy_port}")) && err.contains("--agent-port"),
        "{err}"
    );

    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
    assert!(sshd.installed().is_empty(), "nothing on the server");
}

#[test]
fn a_failure_part_way_undoes_the_install() {
    // The agent cannot start (its port is taken after the check by a listener
    // that is not an agent): the bootstrap fails at the health wait and removes
    // everything it put on the server.
    let sshd = Sshd::start();
    let d = Desktop::new();
    let fp = sshd.host_fingerprint();
    let port = free_port();
    // Bind the port on another address so the 127.0.0.1 check passes but the
    // agent's 0.0.0.0 bind fails.
    // (All of 127.0.0.0/8 is loopback on Linux.)
    let _blocker = std::net::TcpListener::bind(("127.0.0.2", port))
        .expect("a listener on 127.0.0.2 (loopback)");
    let (code, _, err) = d.run(&strs(&add_args(&sshd, port, "box", Some(&fp))));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stopped right after it started"), "{err}");
    assert!(
        err.contains("Its log ends:") && err.contains("cannot listen"),
        "{err}"
    );
    assert!(err.contains("Undoing what was made on the server"), "{err}");
    assert!(sshd.wait_no_agents(Duration::from_secs(5)));
    assert!(
        sshd.installed().is_empty(),
        "the install was undone: {:?}",
        sshd.installed()
    );
    assert_eq!(d.json(&["node", "ls"]).as_array().unwrap().len(), 0);
}

/// A temporary file of `size` bytes that repeat no short pattern, and its bytes.
fn patterned_file(size: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
    let file = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..size as u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(file.path(), &bytes).unwrap();
    (file, bytes)
}

/// Logs in to `sshd` as root, reached on `port` (its own, or a relay's).
async fn log_in(sshd: &Sshd, port: u16) -> sam_desktop::providers::bootstrap::Remote {
    use sam_desktop::providers::bootstrap::{HostKey, Remote, SshTarget};
    let target = SshTarget {
        user: "root".into(),
        host: "127.0.0.1".into(),
        port,
        identity: sshd.client_key(),
    };
    let fp = sshd.host_fingerprint();
    Remote::connect(&target, HostKey::Accept(&fp))
        .await
        .expect("connects")
}

#[test]
fn a_command_that_fails_part_way_through_an_upload_ends_it_with_its_own_error() {
    // The server stops reading stdin early (a full disk, a folder that is not
    // there): the upload must end with the command's exit status and stderr,
    // not wait for window space that never comes. Then the same connection
    // still carries a whole upload, intact.
    use sam_desktop::providers::bootstrap::Stdin;
    let sshd = Sshd::start();
    let (big, bytes) = patterned_file(48 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let remote = log_in(&sshd, sshd.port).await;
        let out = remote
            .exec(
                "head -c 1000 >/dev/null; echo 'no space left on device' >&2; exit 3",
                Some(Stdin::File(big.path(), 0)),
            )
            .await
            .expect("the command's own result, not a transport error");
        assert_eq!(out.status, Some(3), "{out:?}");
        assert!(out.stderr.contains("no space left on device"), "{out:?}");

        let err = remote
            .upload(big.path(), "/nowhere/sam-agent", "755")
            .await
            .expect_err("no such folder");
        assert!(
            err.message.contains("uploading") && err.message.contains("exit status"),
            "{err:?}"
        );

        let copy = sshd.home().join("copy");
        remote
            .upload(big.path(), copy.to_str().unwrap(), "644")
            .await
            .expect("a whole upload");
        assert!(std::fs::read(&copy).unwrap() == bytes, "intact");
        remote.close().await;
    });
}

/// A TCP relay on loopback to `port` that cuts its first connection (both
/// ways, as a dropped link does) once `cut_after` bytes went from the client to
/// the server; later connections pass. Counts the client's bytes over all.
struct CuttingRelay {
    port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingRelay {
    fn start(to: u16, cut_after: usize) -> CuttingRelay {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let (c, s) = (connections.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let nth = c.fetch_add(1, Ordering::SeqCst);
                let mut server = TcpStream::connect(("127.0.0.1", to)).unwrap();
                let (mut client_r, mut server_w) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    let mut mine = 0;
                    loop {
                        let n = match client_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        s.fetch_add(n, Ordering::SeqCst);
                        mine += n;
                        if server_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        if nth == 0 && mine >= cut_after {
                            break;
                        }
                    }
                    let _ = client_r.shutdown(Shutdown::Both);
                    let _ = server_w.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                });
            }
        });
        CuttingRelay {
            port,
            connections,
            sent,
        }
    }
}

#[test]
fn an_upload_that_loses_its_connection_goes_on_from_what_arrived() {
    use std::sync::atomic::Ordering;
    let sshd = Sshd::start();
    let size = 48usize << 20;
    let cut_after = 16usize << 20;
    let relay = CuttingRelay::start(sshd.port, cut_after);
    let (big, bytes) = patterned_file(size);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let remote = log_in(&sshd, relay.port).await;
        let copy = sshd.home().join("copy");
        remote
            .upload(big.path(), copy.to_str().unwrap(), "644")
            .await
            .expect("the upload goes on over a new connection");
        assert!(std::fs::read(&copy).unwrap() == bytes, "intact");
        assert!(!sshd.home().join("copy.part").exists());
        assert_eq!(relay.connections.load(Ordering::SeqCst), 2);
        let sent = relay.sent.load(Ordering::SeqCst);
        assert!(
            sent < size + cut_after / 2,
            "went on from what arrived, not from the start: {sent} bytes sent for {size}"
        );
        // The new connection is the one used from now on.
        assert_eq!(
            remote.run("a command", "echo ok").await.unwrap().trim(),
            "ok"
        );
        remote.close().await;
    });
}
