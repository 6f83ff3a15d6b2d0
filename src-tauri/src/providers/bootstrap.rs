//! Putting `sam-agent` on a server over SSH — the steps the SSH provider runs on a
//! server the person already has, and the Hetzner provider on one it just made.
//!
//! - [`Remote`]: one russh connection, key authentication from a key file (SSH
//!   nodes) or from a key held in memory (a Hetzner node's own key, kept in the
//!   secret store), the server's host key checked against a pinned `SHA256:`
//!   fingerprint before a single byte is authenticated (unknown or different keys
//!   are refused, never learned silently); `exec` runs a POSIX `sh` script and
//!   answers its output.
//! - [`Install`]: where the agent lives on the server and how it runs: everything
//!   under `$HOME/.local/share/sam-agent/<node-id>/` (binary, trusted key, config,
//!   TLS pair, data dir, log), as a systemd unit `sam-agent-<node-id>.service` where
//!   the user is root and systemd is PID 1, else as a detached process (`setsid
//!   nohup`, pid file). The install dir is named by the node id, so two nodes (two
//!   desktops, two parallel tests) on one server never share anything.
//! - [`bootstrap`]: upload, trusted key, config, TLS pair made *on the server*
//!   (`sam-agent tls-init`, its private key never leaves it), start, wait until
//!   `https://HOST:PORT/health` answers with that certificate. Any failure part-way
//!   undoes what was made on the server.
//! - [`upgrade`]: the desktop's agent uploaded beside the installed one, checked to
//!   run there, renamed over it, the agent restarted the way it runs and checked to
//!   report the new build; any failure leaves (or puts back) the previous agent.
//!
//! Invariant: nothing secret goes over a command line or into a log. The trusted
//! key and the config reach the server on the channel's stdin; the agent reads its
//! settings from a file (`agent.env`), not from argv. SSH private keys stay in the
//! person's files — only their paths are recorded (a Hetzner node's own key stays
//! in the secret store and reaches russh in memory).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use sam_protocol::NodeInfo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::agent_client::NodeClient;
use crate::api::{Progress, Sam};
use crate::error::{Error, Result, code};
use crate::nodes::NodeRecord;

/// The agent's port on SSH and Hetzner nodes unless told otherwise.
pub const DEFAULT_AGENT_PORT: u16 = 7420;
/// The server refused the key (an authentication failure, not a transport one).
pub const AUTH_FAILED: &str = "ssh_auth_failed";
/// The server is not something this build has an agent for.
pub const UNSUPPORTED_SERVER: &str = "unsupported_server";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Ordinary remote commands (not the upload).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How often an upload that lost its connection is taken up again.
const UPLOAD_RETRIES: u32 = 3;
/// Stdin the server takes none of for this long is given up on.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a started agent has to answer `/health`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom to log in.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The private key file (OpenSSH or PEM, without a passphrase).
    pub identity: PathBuf,
}

impl SshTarget {
    /// `user@host:port` for messages.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, host_for_url(&self.host), self.port)
    }
}

/// `[::1]` for an IPv6 literal, the host as it is otherwise.
pub fn host_for_url(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{bare}]")
    } else {
        bare.to_string()
    }
}

/// The agent's address as the desktop stores it.
pub fn agent_address(host: &str, port: u16) -> String {
    format!("https://{}:{port}", host_for_url(host))
}

/// How the server's host key is to be judged.
#[derive(Debug, Clone, Copy)]
pub enum HostKey<'a> {
    /// Recorded when the node was added: anything else is refused.
    Pinned(&'a str),
    /// What the person said to expect (`--accept-host-key`, or a yes on a terminal).
    Accept(&'a str),
}

impl HostKey<'_> {
    fn expected(&self) -> &str {
        match self {
            HostKey::Pinned(fp) | HostKey::Accept(fp) => fp,
        }
    }
}

struct Checker {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let fp = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        let ok = self.expected.as_deref() == Some(fp.as_str());
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        Ok(ok)
    }
}

fn ssh_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    })
}

/// Opens TCP and runs the SSH handshake; answers the handle, or the error and the
/// host key the server showed (if it got that far).
async fn handshake(
    host: &str,
    port: u16,
    expected: Option<&str>,
) -> (
    std::result::Result<client::Handle<Checker>, Error>,
    Option<String>,
) {
    let seen = Arc::new(Mutex::new(None));
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let where_ = format!("{}:{port}", host_for_url(host));
    let unreachable = |why: String| {
        Error::new(
            code::UNREACHABLE,
            format!("Cannot reach the SSH server {where_}: {why}."),
        )
        .hint("Check the host name and --port, and that an SSH server runs there and is reachable from this computer.")
    };
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((bare, port)),
    )
    .await
    {
        Err(_) => return (Err(unreachable("no answer within 10 s".into())), None),
        Ok(Err(e)) => return (Err(unreachable(e.to_string())), None),
        Ok(Ok(s)) => s,
    };
    let checker = Checker {
        expected: expected.map(str::to_string),
        seen: seen.clone(),
    };
    let result = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        client::connect_stream(ssh_config(), stream, checker),
    )
    .await;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let result = match result {
        Err(_) => Err(unreachable(
            "the SSH handshake did not finish within 20 s".into(),
        )),
        Ok(Ok(handle)) => Ok(handle),
        Ok(Err(russh::Error::UnknownKey)) => Err(Error::new(
            code::HOST_KEY_UNKNOWN,
            "The server's host key was refused.",
        )),
        // Dropped before a host key was shown: not (or not yet) an SSH server.
        Ok(Err(e)) if seen.is_none() => Err(unreachable(format!("the SSH handshake failed: {e}"))),
        Ok(Err(e)) => Err(Error::new(
            code::PROVIDER,
            format!("The SSH handshake with {where_} failed: {e}."),
        )
        .hint("Check that this is an OpenSSH-compatible server (OpenSSH 7.4 or newer).")),
    };
    (result, seen)
}

/// The server's host key fingerprint, without trusting it or logging in (as
/// `ssh-keyscan | ssh-keygen -l` would show it).
pub async fn scan_host_key(host: &str, port: u16) -> Result<String> {
    let (result, seen) = handshake(host, port, None).await;
    match (result, seen) {
        (_, Some(fp)) => Ok(fp),
        (Err(e), None) => Err(e),
        (Ok(_), None) => Err(Error::internal("The SSH server showed no host key.")),
    }
}

/// The error for a host key seen for the first time, with what to do next.
pub fn unknown_host_key(host: &str, port: u16, fingerprint: &str) -> Error {
    Error::new(
        code::HOST_KEY_UNKNOWN,
        format!(
            "The SSH server {}:{port} presents the host key {fingerprint}, which SAM has not seen before; there is no terminal to ask whether to trust it.",
            host_for_url(host)
        ),
    )
    .hint(format!(
        "Check it on the server (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then run again with --accept-host-key {fingerprint}"
    ))
}

/// Output of a remote command.
#[derive(Debug)]
pub struct Output {
    pub status: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

/// One authenticated SSH connection, opened again (same key, same pinned host
/// key) when an upload loses it.
pub struct Remote {
    handle: Mutex<Arc<client::Handle<Checker>>>,
    key: russh::keys::PrivateKey,
    pub target: SshTarget,
    /// The host key fingerprint the server presented (and that was accepted).
    pub host_key: String,
}

/// Single-quotes `s` for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Remote {
    /// Connects, checks the host key, logs in with the key file.
    pub async fn connect(target: &SshTarget, host_key: HostKey<'_>) -> Result<Remote> {
        let key = load_key(&target.identity)?;
        Self::connect_with_key(target, key, host_key)
            .await
            .map_err(|e| {
                if e.is(AUTH_FAILED) {
                    Error::new(
                        AUTH_FAILED,
                        format!(
                            "{} did not accept the key {}.",
                            target.label(),
                            target.identity.display()
                        ),
                    )
                    .hint(format!(
                        "Add {}.pub to ~{}/.ssh/authorized_keys on the server, or pass another key with --identity.",
                        target.identity.display(),
                        target.user
                    ))
                } else {
                    e
                }
            })
    }

    /// Connects, checks the host key, logs in with a key SAM holds in memory (a
    /// Hetzner node's own key, from the secret store); `target.identity` is not
    /// read. A refused key is `AUTH_FAILED` without a hint (the caller knows
    /// where the key came from).
    pub async fn connect_with_key(
        target: &SshTarget,
        key: russh::keys::PrivateKey,
        host_key: HostKey<'_>,
    ) -> Result<Remote> {
        let (result, seen) = handshake(&target.host, target.port, Some(host_key.expected())).await;
        let mut handle = match result {
            Ok(h) => h,
            Err(e) if e.is(code::HOST_KEY_UNKNOWN) => {
                let got = seen.unwrap_or_else(|| "?".into());
                let where_ = format!("{}:{}", host_for_url(&target.host), target.port);
                return Err(match host_key {
                    HostKey::Pinned(fp) => Error::new(
                        code::HOST_KEY_CHANGED,
                        format!(
                            "The SSH host key of {where_} changed: SAM recorded {fp}, the server now presents {got}. SAM refuses to connect."
                        ),
                    )
                    .hint(format!(
                        "If the server was reinstalled or its host keys replaced on purpose, check {got} on the server (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then remove the node and add it again with --accept-host-key {got}; otherwise someone may be intercepting the connection."
                    )),
                    HostKey::Accept(fp) => Error::new(
                        code::HOST_KEY_CHANGED,
                        format!(
                            "The SSH server {where_} presents the host key {got}, not {fp} as --accept-host-key said. Nothing was changed."
                        ),
                    )
                    .hint("Check the fingerprint on the server (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and pass the one it shows; a different key may mean someone is intercepting the connection."),
                });
            }
            Err(e) => return Err(e),
        };
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| ssh_failed(target, &e))?
                .flatten()
        } else {
            None
        };
        let auth = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key.clone()), hash),
            )
            .await
            .map_err(|e| ssh_failed(target, &e))?;
        if !auth.success() {
            return Err(Error::new(
                AUTH_FAILED,
                format!("{} did not accept SAM's key.", target.label()),
            ));
        }
        Ok(Remote {
            handle: Mutex::new(Arc::new(handle)),
            key,
            target: target.clone(),
            host_key: host_key.expected().to_string(),
        })
    }

    /// Runs a POSIX `sh` script (whatever the login shell is), feeding `stdin`.
    pub async fn exec(&self, script: &str, stdin: Option<Stdin<'_>>) -> Result<Output> {
        // Uploads get a minute plus the time at 256 KiB/s: a slow link is fine, a
        // stalled one is not waited on for ever.
        let t = match &stdin {
            Some(Stdin::File(p, from)) => {
                let size = std::fs::metadata(p)
                    .map(|m| m.len())
                    .unwrap_or(0)
                    .saturating_sub(*from);
                COMMAND_TIMEOUT / 2 + Duration::from_secs(size / (256 << 10))
            }
            _ => COMMAND_TIMEOUT,
        };
        tokio::time::timeout(t, self.exec_inner(script, stdin))
            .await
            .map_err(|_| {
                Error::new(
                    code::PROVIDER,
                    format!(
                        "A command on {} did not finish within {} s.",
                        self.target.label(),
                        t.as_secs()
                    ),
                )
                .hint("Check the server and the connection to it, then try again.")
            })?
    }

    async fn exec_inner(&self, script: &str, stdin: Option<Stdin<'_>>) -> Result<Output> {
        let channel = self
            .handle()
            .channel_open_session()
            .await
            .map_err(|e| ssh_failed(&self.target, &e))?;
        let (mut read, write) = channel.split();
        write
            .exec(true, format!("sh -c {}", sh_quote(script)))
            .await
            .map_err(|e| ssh_failed(&self.target, &e))?;
        // Stdin goes out while the channel is read: a command that exits early
        // (a full disk, a failed `cd`) closes the channel, and that must end the
        // upload with its error instead of leaving the writer waiting for window
        // space that will never come.
        let send = async {
            match stdin {
                Some(Stdin::Bytes(b)) => self.send_all(&write, b).await?,
                Some(Stdin::File(path, from)) => {
                    let cannot_read = |e: std::io::Error| {
                        Error::internal(format!("Cannot read {}: {e}", path.display()))
                    };
                    let mut file = tokio::fs::File::open(path).await.map_err(cannot_read)?;
                    file.seek(std::io::SeekFrom::Start(from))
                        .await
                        .map_err(cannot_read)?;
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        let n = file.read(&mut buf).await.map_err(cannot_read)?;
                        if n == 0 {
                            break;
                        }
                        self.send_all(&write, &buf[..n]).await?;
                    }
                }
                None => {}
            }
            // Without EOF, `cat` and friends never finish.
            write.eof().await.map_err(|e| ssh_failed(&self.target, &e))
        };
        tokio::pin!(send);
        let mut out = Collected::default();
        let mut sent = false;
        let mut send_error = None;
        // Data can follow the exit status: read until the channel closes.
        loop {
            let msg = tokio::select! {
                r = &mut send, if !sent => {
                    sent = true;
                    if let Err(e) = r {
                        send_error = Some(e);
                        break;
                    }
                    continue;
                }
                msg = read.wait() => msg,
            };
            match msg {
                Some(msg) => out.take(msg),
                None => break,
            }
        }
        if let Some(e) = send_error {
            // The command may have failed first and be the better explanation:
            // give its exit status a moment to arrive.
            let drain = async {
                while let Some(msg) = read.wait().await {
                    out.take(msg);
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
            if out.status.is_none() || out.status == Some(0) {
                return Err(e);
            }
        }
        Ok(Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Sends `bytes` on the channel; a server that takes none of them for
    /// [`STALL_TIMEOUT`] is given up on (a dead link, not a slow one).
    async fn send_all(
        &self,
        write: &russh::ChannelWriteHalf<client::Msg>,
        bytes: &[u8],
    ) -> Result<()> {
        for chunk in bytes.chunks(1 << 16) {
            match tokio::time::timeout(STALL_TIMEOUT, write.data(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(ssh_failed(&self.target, &e)),
                Err(_) => {
                    return Err(Error::new(
                        code::PROVIDER,
                        format!(
                            "Sending to {} stalled: the server took nothing for {} s.",
                            self.target.label(),
                            STALL_TIMEOUT.as_secs()
                        ),
                    )
                    .hint("Check the server and the connection to it, then try again."));
                }
            }
        }
        Ok(())
    }

    /// Runs `script`; a non-zero exit is an error naming `what` with its stderr.
    pub async fn run(&self, what: &str, script: &str) -> Result<String> {
        self.run_with(what, script, None).await
    }

    pub async fn run_with(
        &self,
        what: &str,
        script: &str,
        stdin: Option<Stdin<'_>>,
    ) -> Result<String> {
        let out = self.exec(script, stdin).await?;
        if out.ok() {
            return Ok(out.stdout);
        }
        Err(self.failed(what, &out))
    }

    /// The error for a command that ran and failed: what it was for, its exit
    /// status and the end of its stderr.
    fn failed(&self, what: &str, out: &Output) -> Error {
        let detail = last_lines(&out.stderr, 5);
        Error::new(
            code::PROVIDER,
            format!(
                "On {}, {what} failed ({}){}",
                self.target.label(),
                match out.status {
                    Some(s) => format!("exit status {s}"),
                    None => "no exit status".into(),
                },
                if detail.is_empty() {
                    ".".to_string()
                } else {
                    format!(": {detail}")
                }
            ),
        )
    }

    /// Writes `bytes` to `path` on the server (created with `mode`).
    pub async fn write_file(&self, path: &str, bytes: &[u8], mode: &str) -> Result<()> {
        let tmp = format!("{path}.part");
        self.run_with(
            &format!("writing {path}"),
            &format!(
                "umask 077 && cat > {t} && chmod {mode} {t} && mv -f {t} {p}",
                t = sh_quote(&tmp),
                p = sh_quote(path)
            ),
            Some(Stdin::Bytes(bytes)),
        )
        .await
        .map(|_| ())
    }

    /// Uploads a local file to `path`: into `path.part`, checked by size and
    /// SHA-256 on the server, then renamed into place. A connection lost (or
    /// stalled) part-way is opened again and the upload goes on from what arrived,
    /// up to [`UPLOAD_RETRIES`] times; a command that fails is not retried.
    pub async fn upload(&self, local: &Path, path: &str, mode: &str) -> Result<()> {
        let (size, sha256) = file_digest(local).await?;
        let what = format!("uploading {}", local.display());
        let t = sh_quote(&format!("{path}.part"));
        let finish = format!(
            "n=$(wc -c < {t}); if [ \"$n\" -ne {size} ]; then echo \"received $n of {size} bytes\" >&2; exit 1; fi; \
             if command -v sha256sum >/dev/null 2>&1 && [ \"$(sha256sum < {t} | cut -c1-64)\" != {sha256} ]; then \
               rm -f {t}; echo 'what arrived differs from what was sent (SHA-256)' >&2; exit 1; fi; \
             chmod {mode} {t} && mv -f {t} {p}",
            p = sh_quote(path)
        );
        let mut from = 0;
        let mut retries = 0;
        loop {
            let script = if from == 0 {
                format!("umask 077 && cat > {t} && {finish}")
            } else {
                format!("cat >> {t} && {finish}")
            };
            let lost = match self.exec(&script, Some(Stdin::File(local, from))).await {
                Ok(out) if out.ok() => return Ok(()),
                // Ran and failed: the server said no; trying again will not help.
                Ok(out) if out.status.is_some() => return Err(self.failed(&what, &out)),
                Ok(out) => self.failed(&what, &out),
                Err(e) => e,
            };
            if retries == UPLOAD_RETRIES {
                return Err(lost);
            }
            retries += 1;
            tracing::warn!(
                target = %self.target.label(),
                error = %lost.message,
                "upload interrupted; connecting again to go on"
            );
            if let Err(e) = self.reconnect().await {
                return Err(Error {
                    message: format!("{} Connecting again failed: {}", lost.message, e.message),
                    ..lost
                });
            }
            // The old connection's `cat` may still be writing what reached the
            // server before the loss: go on from the size once it holds still.
            let have = self
                .run(
                    "looking at the partial upload",
                    &format!(
                        "a=$(wc -c < {t} 2>/dev/null || echo 0); \
                         while sleep 1; b=$(wc -c < {t} 2>/dev/null || echo 0); [ \"$a\" != \"$b\" ]; do a=$b; done; \
                         echo $a"
                    ),
                )
                .await?;
            from = have.trim().parse().unwrap_or(0);
            if from > size {
                from = 0;
            }
        }
    }

    /// What the bootstrap needs to know about the server.
    pub async fn facts(&self) -> Result<Facts> {
        let out = self
            .run(
                "looking at the server",
                "echo \"os=$(uname -s)\"; echo \"arch=$(uname -m)\"; echo \"uid=$(id -u)\"; \
                 printf 'home=%s\\n' \"$HOME\"; \
                 if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi; \
                 if command -v setsid >/dev/null 2>&1; then echo setsid=yes; else echo setsid=no; fi; \
                 if docker info >/dev/null 2>&1; then echo docker=yes; else echo docker=no; fi",
            )
            .await?;
        let get = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        Ok(Facts {
            os: get("os"),
            arch: get("arch"),
            uid: get("uid").parse().unwrap_or(u32::MAX),
            home: get("home"),
            systemd: get("systemd") == "yes",
            setsid: get("setsid") == "yes",
            docker: get("docker") == "yes",
        })
    }

    pub async fn close(self) {
        let _ = self
            .handle()
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    fn handle(&self) -> Arc<client::Handle<Checker>> {
        self.handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Logs in again over a new connection (same key, the host key pinned to the
    /// one accepted first) and uses it from now on; the old one is let go.
    async fn reconnect(&self) -> Result<()> {
        let fresh = Self::connect_with_key(
            &self.target,
            self.key.clone(),
            HostKey::Pinned(&self.host_key),
        )
        .await?;
        let old = std::mem::replace(
            &mut *self.handle.lock().unwrap_or_else(|p| p.into_inner()),
            fresh.handle(),
        );
        let _ = old
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(())
    }
}

/// What a command's channel brought back so far.
#[derive(Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<u32>,
}

impl Collected {
    fn take(&mut self, msg: russh::ChannelMsg) {
        match msg {
            russh::ChannelMsg::Data { data } => self.stdout.extend_from_slice(&data),
            russh::ChannelMsg::ExtendedData { data, .. } => self.stderr.extend_from_slice(&data),
            russh::ChannelMsg::ExitStatus { exit_status } => self.status = Some(exit_status),
            _ => {}
        }
    }
}

/// What a remote command reads.
pub enum Stdin<'a> {
    Bytes(&'a [u8]),
    /// A file from the given offset on.
    File(&'a Path, u64),
}

/// A file's size and SHA-256 (hex), read off the async threads.
async fn file_digest(path: &Path) -> Result<(u64, String)> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || super::sha256_of(&owned))
        .await
        .map_err(|e| Error::internal(format!("Hashing {} stopped: {e}", path.display())))?
        .map_err(|e| Error::internal(format!("Cannot read {}: {e}", path.display())))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

fn ssh_failed(target: &SshTarget, e: &russh::Error) -> Error {
    Error::new(
        code::UNREACHABLE,
        format!("The SSH connection to {} failed: {e}.", target.label()),
    )
    .hint("Check that the server is up and reachable, then try again.")
}

fn load_key(path: &Path) -> Result<russh::keys::PrivateKey> {
    if !path.exists() {
        return Err(
            Error::invalid(format!("The SSH key {} does not exist.", path.display()))
                .hint("Pass the private key that logs in to the server with --identity FILE."),
        );
    }
    russh::keys::load_secret_key(path, None).map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => Error::invalid(format!(
            "The SSH key {} is protected by a passphrase, which SAM cannot use yet.",
            path.display()
        ))
        .hint("Make a key without a passphrase for SAM (`ssh-keygen -t ed25519 -N '' -f ~/.ssh/sam_ed25519`), add its .pub to the server's ~/.ssh/authorized_keys, and pass --identity ~/.ssh/sam_ed25519."),
        other => Error::invalid(format!(
            "{} is not an SSH private key SAM can read: {other}.",
            path.display()
        ))
        .hint("Pass an OpenSSH or PEM private key (ed25519, ECDSA or RSA) with --identity FILE."),
    })
}

/// The default key: `~/.ssh/id_ed25519`, else `~/.ssh/id_rsa`.
pub fn default_identity() -> Result<PathBuf> {
    let home = directories::BaseDirs::new()
        .map(|d| d.home_dir().to_path_buf())
        .ok_or_else(|| Error::invalid("No home folder was found to look for an SSH key in."))?;
    let ssh = home.join(".ssh");
    for name in ["id_ed25519", "id_rsa"] {
        if ssh.join(name).exists() {
            return Ok(ssh.join(name));
        }
    }
    Err(Error::invalid(format!(
        "No SSH key was given and neither {} nor {} exists.",
        ssh.join("id_ed25519").display(),
        ssh.join("id_rsa").display()
    ))
    .hint("Pass the private key that logs in to the server with --identity FILE."))
}

/// What the bootstrap learnt about the server.
#[derive(Debug, Clone)]
pub struct Facts {
    pub os: String,
    pub arch: String,
    pub uid: u32,
    pub home: String,
    /// `systemctl` exists and systemd is PID 1 (`/run/systemd/system`).
    pub systemd: bool,
    pub setsid: bool,
    /// `docker info` works for the SSH user.
    pub docker: bool,
}

impl Facts {
    /// Refuses what this build has no agent for (CLI.md: x86_64 Linux only).
    pub fn check_supported(&self, target: &SshTarget) -> Result<()> {
        if self.os != "Linux" {
            return Err(Error::new(
                UNSUPPORTED_SERVER,
                format!(
                    "{} runs {}, not Linux; sam-agent runs on Linux only.",
                    target.label(),
                    if self.os.is_empty() {
                        "an unknown system"
                    } else {
                        &self.os
                    }
                ),
            )
            .hint("Use a Linux server."));
        }
        if self.arch != "x86_64" {
            return Err(Error::new(
                UNSUPPORTED_SERVER,
                format!(
                    "{} is a {} machine; this SAM has an agent for x86_64 only.",
                    target.label(),
                    if self.arch.is_empty() {
                        "an unknown"
                    } else {
                        &self.arch
                    }
                ),
            )
            .hint(format!(
                "No agent for {} is available yet: use an x86_64 server.",
                self.arch
            )));
        }
        Ok(())
    }
}

/// How the agent runs on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A systemd unit in /etc/systemd/system (root, systemd as PID 1).
    Systemd { unit: String },
    /// `setsid nohup`, pid in `agent.pid` (everywhere else).
    Process,
}

/// Where the agent lives on a server and how it runs.
#[derive(Debug, Clone)]
pub struct Install {
    pub node_id: String,
    /// Absolute: `$HOME/.local/share/sam-agent/<node-id>`.
    pub dir: String,
    pub agent_port: u16,
    pub service: Service,
}

/// Characters an install path may hold (it goes into scripts and a unit file).
fn safe_path(p: &str) -> bool {
    p.starts_with('/')
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@'))
}

impl Install {
    /// Decides the install for a new node from what the server is.
    pub fn plan(node_id: &str, facts: &Facts, agent_port: u16) -> Result<Install> {
        let home = facts.home.trim_end_matches('/');
        let dir = format!("{home}/.local/share/sam-agent/{node_id}");
        if home.is_empty() || !safe_path(&dir) {
            return Err(Error::new(
                UNSUPPORTED_SERVER,
                format!(
                    "The SSH user's home folder {:?} is not a path SAM can install into safely.",
                    facts.home
                ),
            )
            .hint("Use a user whose home folder is a plain absolute path (letters, digits, '/', '.', '_', '-')."));
        }
        let service = if facts.uid == 0 && facts.systemd {
            Service::Systemd {
                unit: format!("sam-agent-{node_id}.service"),
            }
        } else {
            Service::Process
        };
        Ok(Install {
            node_id: node_id.to_string(),
            dir,
            agent_port,
            service,
        })
    }

    /// The install as recorded in a node's `providerIds`.
    pub fn from_ids(node_id: &str, ids: &serde_json::Value) -> Result<Install> {
        let dir = ids
            .get("installDir")
            .and_then(|v| v.as_str())
            .filter(|d| safe_path(d) && d.ends_with(&format!("/sam-agent/{node_id}")))
            .ok_or_else(|| {
                Error::internal(format!(
                    "The node {node_id} has no usable install dir recorded."
                ))
            })?;
        let agent_port = ids
            .get("agentPort")
            .and_then(|v| v.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_AGENT_PORT);
        let service = match ids.get("unit").and_then(|v| v.as_str()) {
            Some(unit) => Service::Systemd {
                unit: unit.to_string(),
            },
            None => Service::Process,
        };
        Ok(Install {
            node_id: node_id.to_string(),
            dir: dir.to_string(),
            agent_port,
            service,
        })
    }

    /// The fields recorded in `providerIds`.
    pub fn ids(&self) -> serde_json::Value {
        let mut ids = json!({
            "installDir": self.dir,
            "agentPort": self.agent_port,
            "service": match self.service { Service::Systemd { .. } => "systemd", Service::Process => "process" },
        });
        if let Service::Systemd { unit } = &self.service {
            ids["unit"] = json!(unit);
        }
        ids
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }

    fn binary(&self) -> String {
        self.path("bin/sam-agent")
    }

    /// The agent's settings (its `SAM_*` variables), read by the unit or the
    /// start script. Nothing secret: paths, the node id, the port, limits.
    pub fn config(&self, limits: (u32, u32), default_image: Option<&str>) -> String {
        let mut lines = vec![
            format!("SAM_NODE_ID={}", self.node_id),
            format!("SAM_TRUSTED_KEY={}", self.path("trusted.pub.pem")),
            format!("SAM_DATA_DIR={}", self.path("data")),
            format!("SAM_LISTEN=0.0.0.0:{}", self.agent_port),
            format!("SAM_TLS_CERT={}", self.path("tls/tls.crt")),
            format!("SAM_TLS_KEY={}", self.path("tls/tls.key")),
            format!("MAX_WORKSPACES_PER_NODE={}", limits.0),
            format!("MAX_AGENT_SESSIONS_PER_WORKSPACE={}", limits.1),
        ];
        if let Some(image) = default_image.filter(|i| {
            !i.is_empty()
                && i.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '@')
                })
        }) {
            lines.push(format!("SAM_DEFAULT_IMAGE={image}"));
        }
        lines.push(String::new());
        lines.join("\n")
    }

    /// The systemd unit (root + systemd only).
    pub fn unit_file(&self) -> String {
        format!(
            "[Unit]\n\
             Description=SAM node agent ({id})\n\
             Wants=network-online.target\n\
             After=network-online.target docker.service\n\
             \n\
             [Service]\n\
             EnvironmentFile={env}\n\
             ExecStart={bin} serve\n\
             WorkingDirectory={dir}\n\
             Restart=on-failure\n\
             RestartSec=2\n\
             KillSignal=SIGTERM\n\
             KillMode=process\n\
             TimeoutStopSec=20\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            id = self.node_id,
            env = self.path("agent.env"),
            bin = self.binary(),
            dir = self.dir,
        )
    }

    /// A shell function `ours PID`: true when PID is this install's `sam-agent serve`
    /// (alive, not a zombie); and `pids`: every such process.
    fn sh_ours(&self) -> String {
        format!(
            "ours() {{ [ -r /proc/$1/cmdline ] || return 1; \
               grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null && return 1; \
               a=$(tr '\\0' '\\n' < /proc/$1/cmdline | head -n 2 | tr '\\n' ' '); \
               [ \"$a\" = {want} ]; }}; \
             pids() {{ for d in /proc/[0-9]*; do p=${{d#/proc/}}; ours $p && echo $p; done; }}; ",
            want = sh_quote(&format!("{} serve ", self.binary()))
        )
    }

    /// Starts the agent (a no-op when it already runs); answers the pid of a
    /// detached process.
    pub async fn start(&self, remote: &Remote) -> Result<Option<u32>> {
        match &self.service {
            Service::Systemd { unit } => {
                remote
                    .run(
                        &format!("starting {unit}"),
                        &format!("systemctl enable --now {}", sh_quote(unit)),
                    )
                    .await?;
                Ok(None)
            }
            Service::Process => {
                let dir = sh_quote(&self.dir);
                let script = format!(
                    "{ours}cd {dir} || exit 1; \
                     for p in $(pids); do echo \"running $p\"; exit 0; done; \
                     if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi; \
                     (set -a; . ./agent.env; set +a; exec $S nohup {bin} serve >>agent.log 2>&1 </dev/null) & \
                     echo $! > agent.pid; echo \"started $!\"",
                    ours = self.sh_ours(),
                    bin = sh_quote(&self.binary()),
                );
                let out = remote.run("starting sam-agent", &script).await?;
                Ok(out.split_whitespace().nth(1).and_then(|p| p.parse().ok()))
            }
        }
    }

    /// Stops the agent (SIGTERM, up to 15 s, then SIGKILL); fine when it is not running.
    pub async fn stop(&self, remote: &Remote) -> Result<()> {
        let script = match &self.service {
            Service::Systemd { unit } => format!(
                "if [ -f /etc/systemd/system/{u} ]; then systemctl stop {u}; fi",
                u = sh_quote(unit)
            ),
            Service::Process => format!(
                "{ours}for p in $(pids); do kill -TERM $p 2>/dev/null || true; done; \
                 i=0; while [ -n \"$(pids)\" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; \
                 for p in $(pids); do kill -KILL $p 2>/dev/null || true; done; \
                 rm -f {pidfile}",
                ours = self.sh_ours(),
                pidfile = sh_quote(&self.path("agent.pid")),
            ),
        };
        remote.run("stopping sam-agent", &script).await.map(|_| ())
    }

    /// Restarts the agent the way it runs: the unit (its file written again first,
    /// so an install made before `KillMode=process` gains it and the restart
    /// signals the agent alone), or the detached process (stopped, then started as
    /// [`Install::start`] does). Answers the new process's pid.
    pub async fn restart(&self, remote: &Remote) -> Result<Option<u32>> {
        match &self.service {
            Service::Systemd { unit } => {
                remote
                    .write_file(
                        &format!("/etc/systemd/system/{unit}"),
                        self.unit_file().as_bytes(),
                        "644",
                    )
                    .await?;
                remote
                    .run(
                        &format!("restarting {unit}"),
                        &format!(
                            "systemctl daemon-reload && systemctl restart {}",
                            sh_quote(unit)
                        ),
                    )
                    .await?;
                Ok(None)
            }
            Service::Process => {
                self.stop(remote).await?;
                self.start(remote).await
            }
        }
    }

    /// How the agent runs, in words.
    pub fn how(&self) -> String {
        match &self.service {
            Service::Systemd { unit } => format!("systemd unit {unit}"),
            Service::Process => "a detached process".into(),
        }
    }

    /// Removes everything this install made: the agent, its unit, its workspaces'
    /// Docker objects (labelled with the node id), and the install dir with the
    /// data dir.
    pub async fn remove(&self, remote: &Remote) -> Result<()> {
        self.stop(remote).await?;
        let label = sh_quote(&format!("label=dev.sam.node={}", self.node_id));
        let unit = match &self.service {
            Service::Systemd { unit } => format!(
                "if [ -f /etc/systemd/system/{u} ]; then systemctl disable {u} >/dev/null 2>&1 || true; rm -f /etc/systemd/system/{u}; systemctl daemon-reload || true; fi; ",
                u = sh_quote(unit)
            ),
            Service::Process => String::new(),
        };
        let script = format!(
            "{unit}if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
               docker ps -aq --filter {label} | xargs -r docker rm -f >/dev/null; \
               docker network ls -q --filter {label} | xargs -r docker network rm >/dev/null; \
               docker volume ls -q --filter {label} | xargs -r docker volume rm -f >/dev/null; \
             fi; \
             rm -rf {dir}; rmdir {parent} 2>/dev/null || true",
            dir = sh_quote(&self.dir),
            parent = sh_quote(self.dir.rsplit_once('/').map(|(p, _)| p).unwrap_or("")),
        );
        remote.run("removing sam-agent", &script).await.map(|_| ())
    }

    /// Whether the agent process (or unit) is alive.
    pub async fn running(&self, remote: &Remote) -> Result<bool> {
        let script = match &self.service {
            Service::Systemd { unit } => format!("systemctl is-active {} || true", sh_quote(unit)),
            Service::Process => format!(
                "{}if [ -n \"$(pids)\" ]; then echo active; else echo gone; fi",
                self.sh_ours()
            ),
        };
        let out = remote.run("looking at sam-agent", &script).await?;
        Ok(matches!(out.trim(), "active" | "activating" | "reloading"))
    }

    /// The end of the agent's log, for error messages.
    pub async fn log_tail(&self, remote: &Remote) -> String {
        let script = match &self.service {
            Service::Systemd { unit } => {
                format!(
                    "journalctl -u {} -n 8 --no-pager 2>/dev/null",
                    sh_quote(unit)
                )
            }
            Service::Process => format!(
                "tail -n 8 {} 2>/dev/null",
                sh_quote(&self.path("agent.log"))
            ),
        };
        remote
            .exec(&script, None)
            .await
            .map(|o| last_lines(&o.stdout, 4))
            .unwrap_or_default()
    }

    /// Puts the agent on the server: binary, trusted key, config, TLS pair made
    /// there; answers the certificate's fingerprint. Does not start it.
    pub async fn put(
        &self,
        sam: &Sam,
        remote: &Remote,
        tls_names: &[&str],
        progress: &dyn Progress,
    ) -> Result<String> {
        let binary = super::agent_binary()?;
        check_x86_64_elf(&binary)?;
        remote
            .run(
                "making the install folder",
                &format!(
                    "umask 077 && mkdir -p {} {} {}",
                    sh_quote(&self.path("bin")),
                    sh_quote(&self.path("data")),
                    sh_quote(&self.path("tls"))
                ),
            )
            .await?;
        let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
        progress.step(&format!(
            "Uploading sam-agent ({} MiB) to {}.",
            size.div_ceil(1 << 20),
            self.dir
        ));
        remote.upload(&binary, &self.binary(), "755").await?;
        remote
            .write_file(
                &self.path("trusted.pub.pem"),
                sam.identity().public_pem().as_bytes(),
                "644",
            )
            .await?;
        let limits = (
            sam.setting_u32("max-workspaces", "MAX_WORKSPACES_PER_NODE", 10)
                .await,
            sam.setting_u32("max-sessions", "MAX_AGENT_SESSIONS_PER_WORKSPACE", 5)
                .await,
        );
        let image = sam.store().setting("default-image").await.ok().flatten();
        remote
            .write_file(
                &self.path("agent.env"),
                self.config(limits, image.as_deref()).as_bytes(),
                "600",
            )
            .await?;
        if let Service::Systemd { unit } = &self.service {
            remote
                .write_file(
                    &format!("/etc/systemd/system/{unit}"),
                    self.unit_file().as_bytes(),
                    "644",
                )
                .await?;
            remote
                .run("reloading systemd", "systemctl daemon-reload")
                .await?;
        }
        progress.step("Making the node's TLS key and certificate on the server.");
        let names: String = tls_names
            .iter()
            .map(|n| {
                format!(
                    " --name {}",
                    sh_quote(n.trim_start_matches('[').trim_end_matches(']'))
                )
            })
            .collect();
        let out = remote
            .run(
                "making the TLS certificate (sam-agent tls-init)",
                &format!(
                    "{} tls-init --dir {}{names}",
                    sh_quote(&self.binary()),
                    sh_quote(&self.path("tls"))
                ),
            )
            .await?;
        out.lines()
            .map(str::trim)
            .rfind(|l| l.starts_with("SHA256:"))
            .map(str::to_string)
            .ok_or_else(|| {
                Error::new(
                    code::PROVIDER,
                    format!(
                        "sam-agent tls-init on {} printed no fingerprint.",
                        remote.target.label()
                    ),
                )
            })
    }
}

/// Refuses a local agent binary that is not an x86_64 ELF (a wrong
/// SAM_AGENT_BINARY would otherwise fail only on the server).
fn check_x86_64_elf(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = [0u8; 20];
    let ok = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head[..4] == *b"\x7fELF"
        && u16::from_le_bytes([head[18], head[19]]) == 0x3e;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{} is not an x86_64 Linux sam-agent.",
            path.display()
        ))
        .hint("Point SAM_AGENT_BINARY at a sam-agent built for x86_64 Linux."))
    }
}

/// Whether something accepts TCP connections on `host:port` (2 s).
pub async fn port_answers(host: &str, port: u16) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((bare, port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// What a probe of the agent's port found.
pub enum Probe {
    /// Our agent, with the pinned certificate and trusting this installation.
    Ours(NodeInfo),
    /// Nothing answers.
    Nothing,
    /// Something answers but is not it (the error says how: a different
    /// certificate, a key it does not trust).
    Other(Error),
}

pub async fn probe(sam: &Sam, node_id: &str, address: &str, fingerprint: &str) -> Result<Probe> {
    let client = NodeClient::new(node_id, address, Some(fingerprint), sam.identity())?;
    match client.health().await {
        Err(e) if e.is(code::CERTIFICATE_CHANGED) => return Ok(Probe::Other(e)),
        Err(_) => return Ok(Probe::Nothing),
        Ok(_) => {}
    }
    Ok(match client.node().await {
        Ok(info) => Probe::Ours(info),
        Err(e) => Probe::Other(e),
    })
}

/// Starts the node's agent over `remote` unless ours answers already, and waits
/// for it with the pinned certificate (recording what it says and, for a plain
/// process, its pid). An agent SAM cannot trust, or that does not answer, is not
/// left running.
pub async fn start_agent(
    sam: &Sam,
    remote: &Remote,
    install: &Install,
    node: &mut NodeRecord,
    fingerprint: &str,
    progress: &dyn Progress,
) -> Result<()> {
    match probe(sam, &node.id, &node.address, fingerprint).await? {
        Probe::Ours(info) => {
            progress.step("The agent is running already.");
            node.saw_agent(&info);
            return Ok(());
        }
        Probe::Other(e) => return Err(e),
        Probe::Nothing => {}
    }
    progress.step(&format!(
        "Starting sam-agent on port {} ({}).",
        install.agent_port,
        match &install.service {
            Service::Systemd { unit } => format!("systemd unit {unit}"),
            Service::Process => "a detached process".into(),
        }
    ));
    let pid = install.start(remote).await?;
    progress.step(&format!("Waiting for the agent at {}.", node.address));
    match wait_started(sam, remote, install, &node.address, fingerprint).await {
        Ok(info) => {
            node.saw_agent(&info);
            if let Some(pid) = pid {
                node.provider_ids["pid"] = json!(pid);
            }
            Ok(())
        }
        Err(e) => {
            let _ = install.stop(remote).await;
            Err(e)
        }
    }
}

/// Waits until a just-started agent answers at `address` with the pinned
/// certificate and trusts this installation. Fails at once on another certificate
/// or when the agent exits; after 30 s otherwise. Errors carry the log's end.
pub async fn wait_started(
    sam: &Sam,
    remote: &Remote,
    install: &Install,
    address: &str,
    fingerprint: &str,
) -> Result<NodeInfo> {
    let started = tokio::time::Instant::now();
    let deadline = started + HEALTH_TIMEOUT;
    let mut next_look = started + Duration::from_secs(1);
    loop {
        match probe(sam, &install.node_id, address, fingerprint).await? {
            Probe::Ours(info) => return Ok(info),
            Probe::Other(e) => return Err(e),
            Probe::Nothing => {}
        }
        let now = tokio::time::Instant::now();
        if now > deadline {
            let e = Error::new(
                code::UNREACHABLE,
                format!(
                    "The agent did not answer at {address} within {} s.",
                    HEALTH_TIMEOUT.as_secs()
                ),
            );
            return Err(with_log(e, install, remote)
                .await
                .hint(format!(
                    "Check that the server's firewall lets this computer reach {address} (TCP port {}), or pick another port with --agent-port.",
                    install.agent_port
                )));
        }
        if now > next_look {
            next_look = now + Duration::from_secs(1);
            if !install.running(remote).await.unwrap_or(true) {
                let e = Error::new(
                    code::PROVIDER,
                    format!(
                        "sam-agent on {} stopped right after it started.",
                        remote.target.label()
                    ),
                );
                return Err(with_log(e, install, remote)
                    .await
                    .hint(match &install.service {
                        Service::Systemd { unit } => {
                            format!("`journalctl -u {unit}` on the server tells more.")
                        }
                        Service::Process => {
                            format!("{}/agent.log on the server tells more.", install.dir)
                        }
                    }));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a finished bootstrap hands back.
#[derive(Debug)]
pub struct Bootstrapped {
    pub fingerprint: String,
    pub info: NodeInfo,
    pub pid: Option<u32>,
}

/// Puts the agent on the server, starts it and waits until it answers at
/// `address` with the certificate made there. On any failure it undoes what it
/// made on the server (agent stopped, unit and install dir removed).
pub async fn bootstrap(
    sam: &Sam,
    remote: &Remote,
    install: &Install,
    address: &str,
    progress: &dyn Progress,
) -> Result<Bootstrapped> {
    let result = async {
        let host = &remote.target.host;
        let fingerprint = install.put(sam, remote, &[host.as_str()], progress).await?;
        progress.step(&format!(
            "Starting sam-agent on port {} ({}).",
            install.agent_port,
            match &install.service {
                Service::Systemd { unit } => format!("systemd unit {unit}"),
                Service::Process => "a detached process".into(),
            }
        ));
        let pid = install.start(remote).await?;
        progress.step(&format!("Waiting for the agent at {address}."));
        let info = wait_started(sam, remote, install, address, &fingerprint).await?;
        Ok(Bootstrapped {
            fingerprint,
            info,
            pid,
        })
    }
    .await;
    match result {
        Ok(done) => Ok(done),
        Err(e) => {
            progress.step("Undoing what was made on the server.");
            match install.remove(remote).await {
                Ok(()) => Err(e),
                Err(undo) => {
                    tracing::warn!(error = %undo.message, "undoing the install failed");
                    let hint = e.hint.clone().map(|h| format!("{h} ")).unwrap_or_default();
                    Err(e.hint(format!(
                        "{hint}SAM could not clean up the server ({}): stop any `{}/bin/sam-agent` there and remove {}.",
                        undo.message.trim_end_matches('.'),
                        install.dir,
                        install.dir
                    )))
                }
            }
        }
    }
}

/// What a finished upgrade hands back.
#[derive(Debug)]
pub struct Upgraded {
    pub info: NodeInfo,
    pub pid: Option<u32>,
}

/// Checks that the agent binary at `path` on the server runs there and is the
/// version SAM means to install (`sam-agent VERSION` from `--version`).
async fn check_runs(remote: &Remote, path: &str, version: &str) -> Result<()> {
    let out = remote
        .exec(&format!("{} --version", sh_quote(path)), None)
        .await?;
    let want = format!("sam-agent {version}");
    let said = out.stdout.lines().next().unwrap_or_default().trim();
    if out.ok() && said == want {
        return Ok(());
    }
    let why = if out.ok() {
        format!("`--version` says {said:?}, not {want:?}")
    } else {
        let detail = last_lines(&out.stderr, 3);
        format!(
            "`--version` failed ({}){}",
            match out.status {
                Some(s) => format!("exit status {s}"),
                None => "no exit status".into(),
            },
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        )
    };
    Err(Error::new(
        code::PROVIDER,
        format!(
            "The new sam-agent does not run on {}: {why}.",
            remote.target.label()
        ),
    )
    .hint("Point SAM_AGENT_BINARY (or put beside sam) a sam-agent built for x86_64 Linux, with a glibc no newer than the server's."))
}

/// Replaces the agent of `install` by `agent` and restarts it the way it runs
/// (upgrade path of SSH and Hetzner nodes):
///
/// 1. upload to `bin/sam-agent.new` beside the installed binary (size checked);
/// 2. check it runs on the server (`--version` names the expected version);
/// 3. keep the installed binary as `bin/sam-agent.old` (a hard link) and rename
///    the new one over it (atomic);
/// 4. restart ([`Install::restart`]) and wait for `/health` with the pinned
///    certificate, then check the agent reports the new build.
///
/// A failure in 1–3 changes nothing (the old agent never stopped). A failure in 4
/// puts `sam-agent.old` back and starts it again; the error says what failed
/// and that the previous agent runs again (or, if even that failed, where it is).
/// Terminals and sessions live in holder processes, which a restart leaves alone.
pub async fn upgrade(
    sam: &Sam,
    remote: &Remote,
    install: &Install,
    address: &str,
    fingerprint: &str,
    agent: &super::AgentFile,
    progress: &dyn Progress,
) -> Result<Upgraded> {
    use super::also;
    use crate::nodes::upgrade::describe;
    check_x86_64_elf(&agent.path)?;
    let bin = install.binary();
    let new = install.path("bin/sam-agent.new");
    let old = install.path("bin/sam-agent.old");
    let unchanged = "Nothing was changed: the agent there keeps running.";
    let size = std::fs::metadata(&agent.path).map(|m| m.len()).unwrap_or(0);
    progress.step(&format!(
        "Uploading sam-agent ({} MiB) to {new}.",
        size.div_ceil(1 << 20)
    ));
    let staged = async {
        remote.upload(&agent.path, &new, "755").await?;
        progress.step("Checking that it runs on the server.");
        check_runs(remote, &new, &agent.version).await
    }
    .await;
    let clean = format!(
        "rm -f {} {}",
        sh_quote(&new),
        sh_quote(&format!("{new}.part"))
    );
    if let Err(e) = staged {
        let _ = remote.exec(&clean, None).await;
        return Err(also(e, unchanged));
    }
    let swapped = remote
        .run(
            "putting the new sam-agent in place",
            &format!(
                "{{ ln -f {b} {o} 2>/dev/null || cp -p {b} {o}; }} && mv -f {n} {b}",
                b = sh_quote(&bin),
                o = sh_quote(&old),
                n = sh_quote(&new)
            ),
        )
        .await;
    if let Err(e) = swapped {
        let _ = remote.exec(&clean, None).await;
        return Err(also(e, unchanged));
    }
    progress.step(&format!(
        "Restarting sam-agent ({}); terminals and agent sessions stay in their holder processes.",
        install.how()
    ));
    let restarted = async {
        let pid = install.restart(remote).await?;
        progress.step(&format!("Waiting for the new agent at {address}."));
        let info = wait_started(sam, remote, install, address, fingerprint).await?;
        if info.build.as_deref() != Some(agent.build.as_str()) {
            return Err(Error::new(
                code::PROVIDER,
                format!(
                    "After the restart the agent on {} reports {}, not the uploaded {}.",
                    remote.target.label(),
                    describe(&info.version, info.build.as_deref()),
                    describe(&agent.version, Some(&agent.build))
                ),
            ));
        }
        Ok(Upgraded { info, pid })
    }
    .await;
    let failed = match restarted {
        Ok(done) => {
            let _ = remote
                .exec(&format!("rm -f {}", sh_quote(&old)), None)
                .await;
            return Ok(done);
        }
        Err(e) => e,
    };
    tracing::warn!(error = %failed.message, "the upgraded agent did not come up; rolling back");
    progress.step("The new agent did not come up; putting the previous one back.");
    let back = async {
        install.stop(remote).await?;
        remote
            .run(
                "putting the previous sam-agent back",
                &format!("mv -f {} {}", sh_quote(&old), sh_quote(&bin)),
            )
            .await?;
        install.start(remote).await?;
        wait_started(sam, remote, install, address, fingerprint).await
    }
    .await;
    match back {
        Ok(info) => Err(also(
            failed,
            &format!(
                "SAM put the previous sam-agent back: {} runs again.",
                describe(&info.version, info.build.as_deref())
            ),
        )),
        Err(undo) => {
            let e = also(
                failed,
                &format!(
                    "Putting the previous sam-agent back failed too: {}",
                    undo.message
                ),
            );
            Err(e.hint(format!(
                "On the server, {old} is the previous agent (if it is still there, move it to {bin}); then `sam node start` starts it."
            )))
        }
    }
}

/// Adds the agent's last log lines to an error.
async fn with_log(e: Error, install: &Install, remote: &Remote) -> Error {
    let log = install.log_tail(remote).await;
    if log.is_empty() {
        return e;
    }
    let mut e = e;
    e.message = format!("{} Its log ends: {log}", e.message);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(uid: u32, systemd: bool) -> Facts {
        Facts {
            os: "Linux".into(),
            arch: "x86_64".into(),
            uid,
            home: "/home/me".into(),
            systemd,
            setsid: true,
            docker: true,
        }
    }

    #[test]
    fn root_with_systemd_gets_a_unit_everyone_else_a_process() {
        let i = Install::plan("ssh-1", &facts(0, true), 7420).unwrap();
        assert_eq!(
            i.service,
            Service::Systemd {
                unit: "sam-agent-ssh-1.service".into()
            }
        );
        assert_eq!(i.dir, "/home/me/.local/share/sam-agent/ssh-1");
        assert_eq!(
            Install::plan("n", &facts(1000, true), 1).unwrap().service,
            Service::Process
        );
        assert_eq!(
            Install::plan("n", &facts(0, false), 1).unwrap().service,
            Service::Process
        );

        // Recorded and read back the same.
        let again = Install::from_ids("ssh-1", &i.ids()).unwrap();
        assert_eq!(again.dir, i.dir);
        assert_eq!(again.service, i.service);
        assert_eq!(again.agent_port, 7420);
        // An install dir that is not this node's is never trusted (it gets rm -rf).
        assert!(Install::from_ids("ssh-2", &i.ids()).is_err());
    }

    #[test]
    fn the_unit_runs_the_agent_from_its_config_file_after_docker() {
        let i = Install::plan("ssh-1", &facts(0, true), 7420).unwrap();
        let unit = i.unit_file();
        assert!(
            unit.contains("ExecStart=/home/me/.local/share/sam-agent/ssh-1/bin/sam-agent serve\n")
        );
        assert!(unit.contains("EnvironmentFile=/home/me/.local/share/sam-agent/ssh-1/agent.env\n"));
        assert!(unit.contains("After=network-online.target docker.service"));
        assert!(unit.contains("WantedBy=multi-user.target"));
        // A stop or restart signals the agent only: the holder processes that
        // own terminals and sessions (in the unit's cgroup) live on.
        assert!(unit.contains("KillMode=process\n"));
        let config = i.config((3, 2), Some("img:1"));
        assert!(config.contains("SAM_LISTEN=0.0.0.0:7420\n"));
        assert!(config.contains("SAM_NODE_ID=ssh-1\n"));
        assert!(config.contains("MAX_WORKSPACES_PER_NODE=3\n"));
        assert!(config.contains("SAM_DEFAULT_IMAGE=img:1\n"));
        assert!(
            !i.config((3, 2), Some("bad image"))
                .contains("SAM_DEFAULT_IMAGE")
        );
    }

    #[test]
    fn refuses_other_architectures_and_odd_homes() {
        let target = SshTarget {
            user: "u".into(),
            host: "h".into(),
            port: 22,
            identity: "/k".into(),
        };
        let mut f = facts(0, false);
        f.arch = "aarch64".into();
        let e = f.check_supported(&target).unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_SERVER);
        assert!(e.message.contains("aarch64") && e.hint.unwrap().contains("aarch64"));
        f.home = "/home/it's".into();
        assert!(Install::plan("n", &f, 1).is_err());
        f.home = String::new();
        assert!(Install::plan("n", &f, 1).is_err());
    }

    #[test]
    fn quotes_and_addresses() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(agent_address("::1", 7420), "https://[::1]:7420");
        assert_eq!(agent_address("[::1]", 7420), "https://[::1]:7420");
        assert_eq!(agent_address("example.com", 1), "https://example.com:1");
    }
}
