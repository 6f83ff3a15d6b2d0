//! The agent's only Docker client (bollard).
//!
//! Invariant: no other module uses bollard. Docker may be absent at start or go away
//! later (a node boots in any order): the client is made lazily, the API version is
//! negotiated when the engine first answers, and a connection failure drops the
//! client so the next call tries again. Callers see [`DockerError::Unavailable`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ExecConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    InspectContainerOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use futures::StreamExt;
use tokio::sync::RwLock;

/// Seconds Docker waits after SIGTERM before it kills a container.
pub const STOP_TIMEOUT_SECS: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("the container engine cannot be reached: {0}")]
    Unavailable(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Failed(String),
}

impl DockerError {
    fn from_bollard(e: BollardError) -> Self {
        match e {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => DockerError::NotFound(message),
                409 => DockerError::Conflict(message),
                _ => DockerError::Failed(message),
            },
            BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::HttpClientError { .. } => DockerError::Unavailable(e.to_string()),
            other => DockerError::Failed(other.to_string()),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerError::NotFound(_))
    }
}

type Result<T> = std::result::Result<T, DockerError>;

/// What the agent needs to know of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    /// Created, exited, dead or paused: not serving.
    NotRunning,
    Missing,
}

/// The output of a command run to its end.
#[derive(Debug, Default)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// The last bytes of stdout and stderr together (bounded).
    pub tail: String,
}

#[derive(Clone)]
pub struct Engine {
    client: Arc<RwLock<Option<Docker>>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Self {
        Self {
            client: Arc::new(RwLock::new(None)),
        }
    }

    async fn client(&self) -> Result<Docker> {
        if let Some(c) = self.client.read().await.as_ref() {
            return Ok(c.clone());
        }
        let mut slot = self.client.write().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| DockerError::Unavailable(e.to_string()))?
            .with_timeout(Duration::from_secs(600));
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| DockerError::Unavailable(e.to_string()))?;
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Maps an error and forgets the client when the engine went away.
    async fn fail(&self, e: BollardError) -> DockerError {
        let e = DockerError::from_bollard(e);
        if matches!(e, DockerError::Unavailable(_)) {
            *self.client.write().await = None;
        }
        e
    }

    /// The engine's version, or `Unavailable`.
    pub async fn version(&self) -> Result<String> {
        let c = self.client().await?;
        match c.version().await {
            Ok(v) => Ok(v.version.unwrap_or_default()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    // ---- networks and volumes ----

    pub async fn create_network(
        &self,
        name: &str,
        bridge: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let c = self.client().await?;
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.name".to_string(),
                bridge.to_string(),
            )])),
            labels: Some(labels),
            ..Default::default()
        };
        match c.create_network(request).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        let c = self.client().await?;
        match c.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) => match self.fail(e).await {
                DockerError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Creates a volume and answers its mount point on the host.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<String> {
        let c = self.client().await?;
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        match c.create_volume(request).await {
            Ok(v) => Ok(v.mountpoint),
            Err(e) => Err(self.fail(e).await),
        }
    }

    pub async fn volume_mountpoint(&self, name: &str) -> Result<String> {
        let c = self.client().await?;
        match c.inspect_volume(name).await {
            Ok(v) => Ok(v.mountpoint),
            Err(e) => Err(self.fail(e).await),
        }
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let c = self.client().await?;
        match c
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => match self.fail(e).await {
                DockerError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    // ---- images ----

    /// The image's configured user, or `None` when the image is not on this node.
    pub async fn image_user(&self, image: &str) -> Result<Option<String>> {
        let c = self.client().await?;
        match c.inspect_image(image).await {
            Ok(i) => Ok(Some(i.config.and_then(|c| c.user).unwrap_or_default())),
            Err(e) => match self.fail(e).await {
                DockerError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Pulls an image, reporting progress lines to `progress`.
    pub async fn pull_image(&self, image: &str, mut progress: impl FnMut(&str)) -> Result<()> {
        let c = self.client().await?;
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut stream = c.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(DockerError::Failed(detail));
                    }
                    if let Some(status) = info.status {
                        progress(&status);
                    }
                }
                Err(e) => return Err(self.fail(e).await),
            }
        }
        Ok(())
    }

    /// Builds an image from a tar of its context; returns the last output lines on failure.
    pub async fn build_image(
        &self,
        tag: &str,
        dockerfile: &str,
        context_tar: Vec<u8>,
        args: HashMap<String, String>,
        labels: HashMap<String, String>,
        mut progress: impl FnMut(&str),
    ) -> Result<()> {
        let c = self.client().await?;
        let options = BuildImageOptions {
            dockerfile: dockerfile.to_string(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(args),
            labels: Some(labels),
            ..Default::default()
        };
        let mut tail = Tail::new(4096);
        let mut stream = c.build_image(options, None, Some(bollard::body_full(context_tar.into())));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream.as_deref() {
                        tail.push(line.as_bytes());
                        let line = line.trim();
                        if line.starts_with("Step ") {
                            progress(line);
                        }
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        tail.push(detail.as_bytes());
                        return Err(DockerError::Failed(tail.text()));
                    }
                }
                Err(e) => {
                    return Err(match self.fail(e).await {
                        DockerError::Failed(m) => {
                            tail.push(m.as_bytes());
                            DockerError::Failed(tail.text())
                        }
                        other => other,
                    });
                }
            }
        }
        Ok(())
    }

    pub async fn remove_image(&self, image: &str) -> Result<()> {
        let c = self.client().await?;
        match c
            .remove_image(
                image,
                Some(RemoveImageOptions {
                    force: true,
                    ..Default::default()
                }),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.fail(e).await {
                DockerError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    // ---- containers ----

    pub async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<()> {
        let c = self.client().await?;
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        match c.create_container(Some(options), body).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        let c = self.client().await?;
        match c.start_container(name, None::<StartContainerOptions>).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    pub async fn stop_container(&self, name: &str) -> Result<()> {
        let c = self.client().await?;
        let options = StopContainerOptions {
            t: Some(STOP_TIMEOUT_SECS),
            ..Default::default()
        };
        match c.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    pub async fn restart_container(&self, name: &str) -> Result<()> {
        let c = self.client().await?;
        let options = RestartContainerOptions {
            t: Some(STOP_TIMEOUT_SECS),
            ..Default::default()
        };
        match c.restart_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    pub async fn remove_container(&self, name: &str) -> Result<()> {
        let c = self.client().await?;
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            ..Default::default()
        };
        match c.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match self.fail(e).await {
                DockerError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    pub async fn container_state(&self, name: &str) -> Result<ContainerState> {
        let c = self.client().await?;
        match c
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let running = info.state.and_then(|s| s.running).unwrap_or(false);
                Ok(if running {
                    ContainerState::Running
                } else {
                    ContainerState::NotRunning
                })
            }
            Err(e) => match self.fail(e).await {
                DockerError::NotFound(_) => Ok(ContainerState::Missing),
                other => Err(other),
            },
        }
    }

    /// Reads one regular file out of a container, running or not (the archive
    /// API: no process runs in it). `None` when the path does not exist or is
    /// not a regular file; an error when it is larger than `limit` bytes.
    pub async fn read_file(
        &self,
        container: &str,
        path: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        let c = self.client().await?;
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = c.download_from_container(container, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    archive.extend_from_slice(&bytes);
                    // The tar adds headers and padding around the file.
                    if archive.len() > limit + 64 * 1024 {
                        return Err(DockerError::Failed(format!(
                            "{path} is larger than {limit} bytes"
                        )));
                    }
                }
                Err(e) => {
                    return match self.fail(e).await {
                        DockerError::NotFound(_) => Ok(None),
                        other => Err(other),
                    };
                }
            }
        }
        let bad = |e: std::io::Error| DockerError::Failed(format!("reading {path}: {e}"));
        let mut tar = tar::Archive::new(archive.as_slice());
        let Some(entry) = tar.entries().map_err(bad)?.next() else {
            return Ok(None);
        };
        let entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            return Ok(None);
        }
        let mut content = Vec::new();
        entry
            .take(limit as u64 + 1)
            .read_to_end(&mut content)
            .map_err(bad)?;
        if content.len() > limit {
            return Err(DockerError::Failed(format!(
                "{path} is larger than {limit} bytes"
            )));
        }
        Ok(Some(content))
    }

    /// Runs a command in a running container to its end.
    pub async fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        user: Option<&str>,
        workdir: Option<&str>,
    ) -> Result<ExecOutput> {
        let c = self.client().await?;
        let config = ExecConfig {
            cmd: Some(cmd),
            user: user.map(str::to_string),
            working_dir: workdir.map(str::to_string),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let id = match c.create_exec(container, config).await {
            Ok(r) => r.id,
            Err(e) => return Err(self.fail(e).await),
        };
        let mut tail = Tail::new(4096);
        match c.start_exec(&id, None).await {
            Ok(bollard::exec::StartExecResults::Attached { mut output, .. }) => {
                while let Some(chunk) = output.next().await {
                    match chunk {
                        Ok(out) => tail.push(&out.into_bytes()),
                        Err(e) => return Err(self.fail(e).await),
                    }
                }
            }
            Ok(bollard::exec::StartExecResults::Detached) => {}
            Err(e) => return Err(self.fail(e).await),
        }
        let inspect = match c.inspect_exec(&id).await {
            Ok(i) => i,
            Err(e) => return Err(self.fail(e).await),
        };
        Ok(ExecOutput {
            exit_code: inspect.exit_code.unwrap_or(-1),
            tail: tail.text(),
        })
    }

    /// The host PID of a running container's first process.
    pub async fn container_pid(&self, name: &str) -> Result<Option<u32>> {
        let c = self.client().await?;
        match c
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => Ok(info
                .state
                .filter(|s| s.running == Some(true))
                .and_then(|s| s.pid)
                .filter(|p| *p > 0)
                .map(|p| p as u32)),
            Err(e) => match self.fail(e).await {
                DockerError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Creates an exec (not started yet) and answers its id.
    pub async fn create_exec(&self, container: &str, config: ExecConfig) -> Result<String> {
        let c = self.client().await?;
        match c.create_exec(container, config).await {
            Ok(r) => Ok(r.id),
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Starts an exec and hands back its raw, bidirectional stream.
    ///
    /// Why not bollard's `start_exec`: its output decoder takes a first byte of 0, 1 or
    /// 2 for a multiplexing header even in TTY mode, which stalls or garbles a terminal
    /// that prints such bytes. Here hyper upgrades the connection and the bytes are
    /// passed through untouched: TTY output as is, non-TTY output still multiplexed
    /// (8-byte headers), for the caller to split.
    pub async fn start_exec_raw(&self, exec_id: &str, tty: bool) -> Result<RawStream> {
        use http_body_util::Full;
        use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};

        let c = self.client().await?;
        let version = c.client_version();
        let socket = docker_socket().ok_or_else(|| {
            DockerError::Failed(
                "terminals need Docker on a unix socket (DOCKER_HOST=unix://…)".into(),
            )
        })?;
        let unavailable = |e: &dyn std::fmt::Display| DockerError::Unavailable(e.to_string());
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| unavailable(&e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let body = format!(r#"{{"Detach":false,"Tty":{tty}}}"#);
        let request = hyper::Request::post(format!(
            "/v{}.{}/exec/{exec_id}/start",
            version.major_version, version.minor_version
        ))
        .header(HOST, "docker")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "tcp")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| DockerError::Failed(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(&e))?;
        let status = response.status().as_u16();
        if status != 101 && status != 200 {
            return Err(match status {
                404 => DockerError::NotFound(format!("exec {exec_id}")),
                409 => DockerError::Conflict(format!("exec {exec_id} cannot start")),
                _ => DockerError::Failed(format!("starting exec {exec_id} answered {status}")),
            });
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| DockerError::Failed(e.to_string()))?;
        Ok(hyper_util::rt::TokioIo::new(upgraded))
    }

    pub async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        let c = self.client().await?;
        match c
            .resize_exec(
                exec_id,
                bollard::exec::ResizeExecOptions {
                    height: rows,
                    width: cols,
                },
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// `(running, exit code, host pid)` of an exec.
    pub async fn inspect_exec(&self, exec_id: &str) -> Result<ExecState> {
        let c = self.client().await?;
        match c.inspect_exec(exec_id).await {
            Ok(i) => Ok(ExecState {
                running: i.running.unwrap_or(false),
                exit_code: i.exit_code,
                pid: i.pid.filter(|p| *p > 0).map(|p| p as u32),
            }),
            Err(e) => Err(self.fail(e).await),
        }
    }

    // ---- labelled resources, for reconciliation ----

    /// Names of containers, networks and volumes carrying `label=value`.
    pub async fn labelled(&self, label: &str, value: &str) -> Result<Labelled> {
        let c = self.client().await?;
        let filter = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
        let containers = match c
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filter.clone()),
                ..Default::default()
            }))
            .await
        {
            Ok(list) => list,
            Err(e) => return Err(self.fail(e).await),
        };
        let networks = match c
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filter.clone()),
            }))
            .await
        {
            Ok(list) => list,
            Err(e) => return Err(self.fail(e).await),
        };
        let volumes = match c
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
        {
            Ok(list) => list,
            Err(e) => return Err(self.fail(e).await),
        };
        let label_of = |labels: Option<&HashMap<String, String>>| {
            labels
                .and_then(|l| l.get(crate::workspaces::LABEL_WORKSPACE))
                .cloned()
                .unwrap_or_default()
        };
        Ok(Labelled {
            containers: containers
                .iter()
                .filter_map(|c| {
                    let name = c
                        .names
                        .as_ref()?
                        .first()?
                        .trim_start_matches('/')
                        .to_string();
                    Some((name, label_of(c.labels.as_ref())))
                })
                .collect(),
            networks: networks
                .iter()
                .filter_map(|n| Some((n.name.clone()?, label_of(n.labels.as_ref()))))
                .collect(),
            volumes: volumes
                .volumes
                .unwrap_or_default()
                .iter()
                .map(|v| (v.name.clone(), label_of(Some(&v.labels))))
                .collect(),
        })
    }
}

/// Splits the next frame off a non-TTY exec's output: Docker prefixes each chunk
/// with an 8-byte header `[stream, 0, 0, 0, length (big-endian u32)]`, stream 1
/// being stdout and 2 stderr. `None` until a whole frame is buffered.
pub fn next_frame(buf: &mut bytes::BytesMut) -> Option<(u8, bytes::Bytes)> {
    if buf.len() < 8 {
        return None;
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        return None;
    }
    let stream = buf[0];
    let _ = buf.split_to(8);
    Some((stream, buf.split_to(len).freeze()))
}

/// A started exec's connection: raw bytes both ways.
pub type RawStream = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

#[derive(Debug, Clone, Copy)]
pub struct ExecState {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: Option<u32>,
}

/// The engine's unix socket, as bollard finds it (`DOCKER_HOST`, else the default).
fn docker_socket() -> Option<std::path::PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) => host.strip_prefix("unix://").map(Into::into),
        Err(_) => Some("/var/run/docker.sock".into()),
    }
}

/// `(name, workspace label)` of each labelled resource.
#[derive(Debug, Default)]
pub struct Labelled {
    pub containers: Vec<(String, String)>,
    pub networks: Vec<(String, String)>,
    pub volumes: Vec<(String, String)>,
}

/// The last `cap` bytes of a stream of output.
pub struct Tail {
    buf: std::collections::VecDeque<u8>,
    cap: usize,
}

impl Tail {
    pub fn new(cap: usize) -> Self {
        Self {
            buf: std::collections::VecDeque::with_capacity(cap.min(1024)),
            cap,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(bytes);
    }

    /// The last lines, as text.
    pub fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let mut all = Vec::with_capacity(a.len() + b.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        String::from_utf8_lossy(&all).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Tail;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut t = Tail::new(8);
        t.push(b"hello ");
        t.push(b"world!");
        assert_eq!(t.text(), "o world!");
        t.push(b"0123456789");
        assert_eq!(t.text(), "23456789");
    }
}
