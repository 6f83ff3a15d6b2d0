//! A real OpenSSH server on a free loopback port, per test (NOTES.md "SSH: russh
//! against a real sshd"): throwaway host and client keys in a temp dir, root login
//! with the client key only, and `HOME` of every session set to a folder of the
//! test's own (`SetEnv HOME=…`), so what the SSH provider installs under
//! `$HOME/.local/share/sam-agent/` is this test's alone. Dropping it stops sshd,
//! kills the agents started from that folder, and removes their Docker objects.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{cleanup_node, free_port};

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

fn keygen(path: &Path, comment: &str) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen")
        .success();
    assert!(ok, "ssh-keygen failed");
}

/// `SHA256:…` of a public key file, as `ssh-keygen -lf` prints it.
pub fn fingerprint_of(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .expect("ssh-keygen -lf");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_string()
}

impl Sshd {
    pub fn start() -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        keygen(&d.join("host_key"), "test-host");
        keygen(&d.join("client_key"), "test-client");
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        std::fs::create_dir_all(d.join("home")).expect("home");
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n\
                 SetEnv HOME={d}/home\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
                d = d.display()
            ),
        )
        .expect("sshd_config");
        let ok = Command::new("/usr/sbin/sshd")
            .arg("-t")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .status()
            .expect("sshd -t")
            .success();
        assert!(ok, "the test sshd_config is not valid");
        let mut sshd = Sshd {
            dir,
            port,
            child: None,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .expect("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the test sshd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops sshd (the agents it started keep running, as on a real server).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A new host key (the server reinstalled, or someone in between), sshd restarted.
    pub fn replace_host_key(&mut self) {
        keygen(&self.dir.path().join("host_key"), "test-host-2");
        self.restart();
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    pub fn host_fingerprint(&self) -> String {
        fingerprint_of(&self.dir.path().join("host_key.pub"))
    }

    /// The SSH user's `$HOME` on this "server".
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Where the SSH provider installs agents: one folder per node id.
    pub fn installs(&self) -> PathBuf {
        self.home().join(".local/share/sam-agent")
    }

    /// Node ids installed on this server.
    pub fn installed(&self) -> Vec<String> {
        std::fs::read_dir(self.installs())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live (not zombie) processes run from a binary under this server's installs.
    pub fn agent_pids(&self) -> Vec<u32> {
        let prefix = self.installs().to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            if !String::from_utf8_lossy(argv0).starts_with(&prefix) {
                continue;
            }
            let zombie = std::fs::read_to_string(entry.path().join("status")).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z'))
            });
            if !zombie {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits until no agent of this server runs (a stop is asynchronous for nothing
    /// but the process table).
    pub fn wait_no_agents(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.agent_pids().is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        for pid in self.agent_pids() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        for node in self.installed() {
            cleanup_node(&node);
        }
    }
}
