//! Workspaces: one container + volume + network each (CONTRACT §4–6), plus a
//! second volume for the user's home directory (`sam-ws-<id>-home`), so what
//! agent CLIs keep there (logins under `~/.claude`, `~/.codex`, `~/.gemini`)
//! lives as long as the workspace.
//!
//! The registry (in memory, written through to the store) is the truth about what
//! the person asked for; Docker is the truth about what runs. `reconcile` brings the
//! two together at start-up and every few seconds after.
//!
//! Lifecycle calls are two-phase: `begin_*` checks and marks the workspace under the
//! registry lock (so two calls cannot both start — the loser gets `workspace_busy`),
//! then `finish_*` does the slow Docker work without holding it.

mod devcontainer;
pub mod git;
pub mod routes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, RestartPolicy, RestartPolicyNameEnum,
};
use rand::Rng;
use sam_protocol::{
    CreateWorkspace, ErrorCode, EventLevel, EventType, Limits, Workspace, WorkspaceCounts,
    WorkspaceStatus, name_key, slug, unique_name, validate_display_name,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Mutex, RwLock};

use crate::docker::{ContainerState, DockerError, Engine};
use crate::error::ApiError;
use crate::events::{EventLog, NewEvent};
use crate::store::{Store, WorkspaceRow};
use devcontainer::LifecycleCommand;

pub const LABEL_NODE: &str = "dev.sam.node";
pub const LABEL_WORKSPACE: &str = "dev.sam.workspace";
/// Replaces the image's command, as the Dev Containers CLI does: any image with
/// `/bin/sh` stays up, and SIGTERM stops it at once.
const KEEP_ALIVE: &str = "trap 'exit 0' 15; while sleep 1 & wait $!; do :; done";
const ID_LEN: usize = 12;
const MAX_ENV_ENTRIES: usize = 256;
const MAX_ENV_BYTES: usize = 64 * 1024;

/// Docker names of a workspace's resources.
pub fn resource_name(id: &str) -> String {
    format!("sam-ws-{id}")
}

/// The volume mounted at the workspace user's home directory.
pub fn home_volume_name(id: &str) -> String {
    format!("sam-ws-{id}-home")
}

/// A container created (never started) from the workspace's image to read its
/// `/etc/passwd` before the real container is made; removed at once.
fn probe_name(id: &str) -> String {
    format!("sam-ws-{id}-probe")
}

/// `/etc/passwd` files larger than this are not read for the home directory.
const MAX_PASSWD_BYTES: usize = 1 << 20;

/// The bridge interface: `sam` + id is 15 characters, the kernel's limit, and
/// matches the firewall's `sam+` wildcard.
fn bridge_name(id: &str) -> String {
    format!("sam{id}")
}

fn is_workspace_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// What the agent remembers about a workspace beyond the wire resource.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Runtime {
    /// User for terminals, exec and agents; `None` = the image's user.
    remote_user: Option<String>,
    post_start: Option<LifecycleCommand>,
    #[serde(default)]
    forward_ports: Vec<serde_json::Value>,
    /// An image built for this workspace from a Dockerfile; removed with it.
    built_image: Option<String>,
    /// The container exists (provisioning finished at least up to its creation).
    #[serde(default)]
    provisioned: bool,
    /// The volume's mount point on the host (the project folder's files).
    #[serde(default)]
    mountpoint: Option<String>,
    /// Owner of what the agent writes into the project folder.
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    /// Where the home volume is mounted (the user's home directory in the
    /// image); `None` for a user without one, and for workspaces created before
    /// home volumes existed.
    #[serde(default)]
    home: Option<String>,
}

/// Where and as whom processes run in a running workspace.
pub struct ExecTarget {
    pub container: String,
    /// `None`: the image's user.
    pub user: Option<String>,
    pub workdir: String,
    /// Host PID of the container's first process.
    pub pid: u32,
}

/// Why a workspace's terminals and sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Stop,
    Restart,
    Delete,
    NodeStop,
}

/// Called before a workspace's container stops, restarts or goes, so what runs
/// inside (terminals, sessions) ends cleanly and with the right reason.
pub type EndHook =
    Arc<dyn Fn(String, EndReason) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

#[derive(Debug, Clone)]
struct Record {
    ws: Workspace,
    slug: String,
    runtime: Runtime,
    /// Bumped on every change, so reconciliation never overwrites a newer state.
    generation: u64,
}

impl Record {
    fn row(&self) -> WorkspaceRow {
        WorkspaceRow {
            workspace: self.ws.clone(),
            slug: self.slug.clone(),
            runtime: serde_json::to_string(&self.runtime).unwrap_or_else(|_| "{}".into()),
        }
    }
}

/// What a user-facing failure says, for the `error` field and the event.
#[derive(Debug)]
struct Failure(String);

impl From<DockerError> for Failure {
    fn from(e: DockerError) -> Self {
        Failure(match e {
            DockerError::Unavailable(_) => {
                "The container engine could not be reached; start Docker and try again.".into()
            }
            DockerError::NotFound(m) | DockerError::Conflict(m) | DockerError::Failed(m) => {
                format!("Docker refused: {m}")
            }
        })
    }
}

/// A create request after validation, with what the background task needs.
struct CreatePlan {
    image: Option<String>,
    repository: Option<String>,
    branch: Option<String>,
    env: BTreeMap<String, String>,
    git_token: Option<String>,
}

#[derive(Clone)]
pub struct Workspaces {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    default_image: String,
    scratch_dir: PathBuf,
    store: Store,
    events: EventLog,
    docker: Engine,
    limits: Arc<RwLock<Limits>>,
    records: Mutex<BTreeMap<String, Record>>,
    end_hooks: std::sync::RwLock<Vec<EndHook>>,
    /// Workspaces found mid-lifecycle at start-up (the agent stopped while creating,
    /// stopping, restarting or deleting them): reconciliation finishes or undoes
    /// that work once Docker answers. Calls made after start-up are not in here.
    interrupted: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Workspaces {
    pub async fn load(
        node_id: String,
        default_image: String,
        scratch_dir: PathBuf,
        store: Store,
        events: EventLog,
        docker: Engine,
        limits: Arc<RwLock<Limits>>,
    ) -> Result<Self, crate::store::StoreError> {
        let mut records = BTreeMap::new();
        for row in store.workspaces().await? {
            let runtime = serde_json::from_str(&row.runtime).unwrap_or_default();
            let mut ws = row.workspace;
            ws.node_id = node_id.clone();
            records.insert(
                ws.id.clone(),
                Record {
                    ws,
                    slug: row.slug,
                    runtime,
                    generation: 0,
                },
            );
        }
        let interrupted = records
            .values()
            .filter(|r| r.ws.status.is_transitional())
            .map(|r| r.ws.id.clone())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                node_id,
                default_image,
                scratch_dir,
                store,
                events,
                docker,
                limits,
                interrupted: std::sync::Mutex::new(interrupted),
                end_hooks: std::sync::RwLock::new(Vec::new()),
                records: Mutex::new(records),
            }),
        })
    }

    fn labels(&self, id: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_NODE.to_string(), self.inner.node_id.clone()),
            (LABEL_WORKSPACE.to_string(), id.to_string()),
        ])
    }

    async fn event(&self, id: &str, kind: EventType, level: EventLevel, message: String) {
        self.inner
            .events
            .record(NewEvent::info(kind, message).level(level).workspace(id))
            .await;
    }

    // ---- reading ----

    pub async fn list(&self) -> Vec<Workspace> {
        let records = self.inner.records.lock().await;
        let mut list: Vec<Workspace> = records.values().map(|r| r.ws.clone()).collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list
    }

    pub async fn get(&self, id: &str) -> Result<Workspace, ApiError> {
        if !is_workspace_id(id) {
            return Err(ApiError::workspace_not_found(id));
        }
        self.inner
            .records
            .lock()
            .await
            .get(id)
            .map(|r| r.ws.clone())
            .ok_or_else(|| ApiError::workspace_not_found(id))
    }

    pub async fn counts(&self) -> WorkspaceCounts {
        let records = self.inner.records.lock().await;
        WorkspaceCounts {
            total: records.len() as u32,
            running: records
                .values()
                .filter(|r| r.ws.status == WorkspaceStatus::Running)
                .count() as u32,
        }
    }

    /// Where processes run in a workspace; `409 workspace_not_running` unless it runs.
    pub async fn exec_target(&self, id: &str) -> Result<ExecTarget, ApiError> {
        let ws = self.get(id).await?;
        let not_running = || {
            ApiError::new(
                ErrorCode::WorkspaceNotRunning,
                format!(
                    "The workspace is {}, not running; restart it first.",
                    ws.status
                ),
            )
        };
        if ws.status != WorkspaceStatus::Running {
            return Err(not_running());
        }
        let user = {
            let records = self.inner.records.lock().await;
            records.get(id).and_then(|r| r.runtime.remote_user.clone())
        };
        let container = resource_name(id);
        let pid = self
            .inner
            .docker
            .container_pid(&container)
            .await?
            .ok_or_else(not_running)?;
        Ok(ExecTarget {
            container,
            user,
            workdir: ws.project_path,
            pid,
        })
    }

    /// The project folder on the host (the volume's mount point) and its owner;
    /// available whether the workspace runs or not.
    pub async fn project_folder(&self, id: &str) -> Result<(PathBuf, u32, u32), ApiError> {
        self.get(id).await?;
        let (mountpoint, uid, gid) = {
            let records = self.inner.records.lock().await;
            let r = records
                .get(id)
                .ok_or_else(|| ApiError::workspace_not_found(id))?;
            if !r.runtime.provisioned {
                return Err(ApiError::new(
                    ErrorCode::WorkspaceNotRunning,
                    "The workspace has no files: it failed to be created.",
                ));
            }
            (r.runtime.mountpoint.clone(), r.runtime.uid, r.runtime.gid)
        };
        let mountpoint = match mountpoint {
            Some(m) => m,
            None => {
                self.inner
                    .docker
                    .volume_mountpoint(&resource_name(id))
                    .await?
            }
        };
        Ok((PathBuf::from(mountpoint), uid, gid))
    }

    // ---- changing state ----

    /// Applies `change` to a record under the lock and writes it through.
    async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record),
    ) -> Result<Option<Workspace>, ApiError> {
        let mut records = self.inner.records.lock().await;
        let Some(record) = records.get_mut(id) else {
            return Ok(None);
        };
        change(record);
        record.generation += 1;
        record.ws.updated_at = crate::now();
        self.inner.store.put_workspace(&record.row()).await?;
        Ok(Some(record.ws.clone()))
    }

    async fn set_status(&self, id: &str, status: WorkspaceStatus, error: Option<String>) {
        if let Err(e) = self
            .update(id, |r| {
                r.ws.status = status;
                r.ws.error = error;
            })
            .await
        {
            tracing::error!(workspace = id, error = %e.message, "cannot record a status");
        }
    }

    /// Calls that need Docker answer `503 docker_unavailable` while it is away,
    /// instead of accepting work that can only fail.
    async fn require_docker(&self) -> Result<(), ApiError> {
        self.inner
            .docker
            .version()
            .await
            .map(|_| ())
            .map_err(|e| match e {
                DockerError::Unavailable(_) => ApiError::from(e),
                // The engine answered, just not with a version: it is there.
                _ => ApiError::internal("Docker answered the version request with an error"),
            })
    }

    // ---- create ----

    pub async fn create(&self, req: CreateWorkspace) -> Result<Workspace, ApiError> {
        let display_name =
            validate_display_name(&req.display_name).map_err(ApiError::bad_request)?;
        let image = match req.image.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(i)
                if i.len() > 512
                    || i.contains(|c: char| c.is_whitespace() || c.is_control())
                    || i.starts_with('-') =>
            {
                return Err(ApiError::bad_request(format!(
                    "image {i:?} is not an image reference"
                )));
            }
            Some(i) => Some(i.to_string()),
        };
        let repository = req
            .repository
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let branch = req
            .branch
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        match &repository {
            Some(r) => git::validate(r, branch.as_deref()).map_err(ApiError::bad_request)?,
            None if branch.is_some() => {
                return Err(ApiError::bad_request("branch needs a repository"));
            }
            None => {}
        }
        if req.git_token.is_some() && repository.is_none() {
            return Err(ApiError::bad_request("gitToken needs a repository"));
        }
        if let Some(t) = &req.git_token
            && (t.len() > 4096 || t.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request("gitToken is not a valid token"));
        }
        let env = req.env.unwrap_or_default();
        crate::extract::validate_env(&env, MAX_ENV_ENTRIES, MAX_ENV_BYTES)?;
        self.require_docker().await?;

        let now = crate::now();
        let workspace = {
            let mut records = self.inner.records.lock().await;
            let max = self.inner.limits.read().await.max_workspaces;
            if records.len() as u32 >= max {
                return Err(ApiError::new(
                    ErrorCode::WorkspaceLimitReached,
                    format!(
                        "This node already has {} workspaces, its limit; delete one or raise the limit.",
                        records.len()
                    ),
                ));
            }
            let name = unique_name(&display_name, |key| {
                records
                    .values()
                    .any(|r| name_key(&r.ws.display_name) == key)
            });
            let base_slug = slug(&display_name);
            let slug = unique_name(&base_slug, |s| records.values().any(|r| r.slug == s));
            let id = loop {
                let id = new_id();
                if !records.contains_key(&id) {
                    break id;
                }
            };
            let record = Record {
                ws: Workspace {
                    id: id.clone(),
                    node_id: self.inner.node_id.clone(),
                    display_name: name,
                    project_path: format!("/workspaces/{slug}"),
                    status: WorkspaceStatus::Creating,
                    image: image.clone().unwrap_or_default(),
                    repository: repository.clone(),
                    branch: branch.clone(),
                    created_at: now,
                    updated_at: now,
                    error: None,
                },
                slug,
                runtime: Runtime::default(),
                generation: 0,
            };
            self.inner.store.put_workspace(&record.row()).await?;
            let ws = record.ws.clone();
            records.insert(id, record);
            ws
        };
        self.event(
            &workspace.id,
            EventType::WorkspaceCreating,
            EventLevel::Info,
            format!("Creating workspace {:?}.", workspace.display_name),
        )
        .await;

        let plan = CreatePlan {
            image,
            repository,
            branch,
            env,
            git_token: req.git_token,
        };
        let this = self.clone();
        let id = workspace.id.clone();
        tokio::spawn(async move { this.finish_create(id, plan).await });
        Ok(workspace)
    }

    async fn finish_create(&self, id: String, plan: CreatePlan) {
        match self.provision(&id, plan).await {
            Ok(()) => {
                self.set_status(&id, WorkspaceStatus::Running, None).await;
                self.event(
                    &id,
                    EventType::WorkspaceRunning,
                    EventLevel::Info,
                    "The workspace is running.".into(),
                )
                .await;
            }
            Err(Failure(message)) => {
                self.remove_resources(&id).await;
                self.set_status(&id, WorkspaceStatus::Error, Some(message.clone()))
                    .await;
                self.event(&id, EventType::WorkspaceError, EventLevel::Error, message)
                    .await;
            }
        }
    }

    async fn progress(&self, id: &str, step: u32, total: u32, message: impl Into<String>) {
        self.inner
            .events
            .record(
                NewEvent::info(EventType::WorkspaceProgress, message)
                    .workspace(id)
                    .detail(json!({"step": step, "total": total})),
            )
            .await;
    }

    async fn provision(&self, id: &str, plan: CreatePlan) -> Result<(), Failure> {
        let docker = &self.inner.docker;
        let name = resource_name(id);
        let (project_path, slug) = {
            let records = self.inner.records.lock().await;
            let r = records.get(id).ok_or_else(|| {
                Failure("The workspace was removed while it was being created.".into())
            })?;
            (r.ws.project_path.clone(), r.slug.clone())
        };
        let total = if plan.repository.is_some() { 5 } else { 4 };
        let mut step = 0;

        step += 1;
        self.progress(id, step, total, "Creating the network and volume.")
            .await;
        crate::firewall::ensure_metadata_blocked()
            .await
            .map_err(|e| Failure(e.to_string()))?;
        let bridge = bridge_name(id);
        // Without a repository the image and its user are known now: when the
        // image is here, its home directory is read meanwhile (see below).
        let early_home = async {
            if plan.repository.is_some() {
                return None;
            }
            let image = plan
                .image
                .clone()
                .unwrap_or_else(|| self.inner.default_image.clone());
            let user = docker.image_user(&image).await.ok().flatten()?;
            let home = self.image_home(id, &image, &user).await;
            Some((image, user, home))
        };
        let (network, volume, early_home) = tokio::join!(
            docker.create_network(&name, &bridge, self.labels(id)),
            docker.create_volume(&name, self.labels(id)),
            early_home,
        );
        network?;
        let mountpoint = volume?;

        let mut found = None;
        if let Some(repository) = &plan.repository {
            step += 1;
            self.progress(id, step, total, format!("Cloning {repository}."))
                .await;
            let scratch = self.inner.scratch_dir.join(format!("clone-{id}"));
            std::fs::create_dir_all(&scratch)
                .map_err(|e| Failure(format!("Cannot prepare the clone: {e}")))?;
            let result = git::clone(
                repository,
                plan.branch.as_deref(),
                plan.git_token.as_deref(),
                std::path::Path::new(&mountpoint),
                &scratch,
            )
            .await;
            let _ = std::fs::remove_dir_all(&scratch);
            result.map_err(|e| Failure(e.to_string()))?;
            found = devcontainer::find(std::path::Path::new(&mountpoint))
                .map_err(|e| Failure(format!("The repository's {e}")))?;
        }
        let dc = found.as_ref().map(|f| f.config.clone()).unwrap_or_default();

        // Image: the request's, else devcontainer.json's image or build, else the default.
        step += 1;
        let mut built_image = None;
        let image = if let Some(image) = plan.image.clone().or(dc.image.clone()) {
            self.progress(id, step, total, format!("Preparing image {image}."))
                .await;
            self.ensure_image(id, &image).await?;
            image
        } else if let Some(f) = found
            .as_ref()
            .filter(|f| f.config.build.is_some() || f.config.docker_file.is_some())
        {
            let tag = format!("sam-ws-{id}:latest");
            self.progress(
                id,
                step,
                total,
                "Building the image from the repository's Dockerfile.",
            )
            .await;
            self.build_image(id, &mountpoint, f, &tag).await?;
            built_image = Some(tag.clone());
            tag
        } else {
            let image = self.inner.default_image.clone();
            self.progress(id, step, total, format!("Preparing image {image}."))
                .await;
            self.ensure_image(id, &image).await?;
            image
        };
        let image_user = docker.image_user(&image).await?.unwrap_or_default();
        let remote_user = dc.remote_user.clone().filter(|u| !u.is_empty());
        let user = remote_user.clone().unwrap_or(image_user);
        // The home volume is mounted from the container's creation on, so the
        // home directory is read from the image first. Docker copies what the
        // image has there (dotfiles) into the new, empty volume.
        let home = match early_home {
            Some((early_image, early_user, home)) if early_image == image && early_user == user => {
                home?
            }
            _ => self.image_home(id, &image, &user).await?,
        }
        .filter(|h| *h != project_path);
        if home.is_some() {
            docker
                .create_volume(&home_volume_name(id), self.labels(id))
                .await?;
        }

        step += 1;
        self.progress(id, step, total, "Starting the container.")
            .await;
        let mut env: Vec<String> = dc
            .container_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.extend(plan.env.iter().map(|(k, v)| format!("{k}={v}")));
        let keep_alive = dc.override_command.unwrap_or(true);
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            labels: Some(self.labels(id)),
            env: Some(env),
            entrypoint: keep_alive
                .then(|| vec!["/bin/sh".into(), "-c".into(), KEEP_ALIVE.into(), "-".into()]),
            cmd: keep_alive.then(Vec::new),
            working_dir: Some(project_path.clone()),
            hostname: Some(slug.chars().take(63).collect()),
            host_config: Some(HostConfig {
                network_mode: Some(name.clone()),
                mounts: Some(
                    std::iter::once(Mount {
                        typ: Some(MountType::VOLUME),
                        source: Some(name.clone()),
                        target: Some(project_path.clone()),
                        ..Default::default()
                    })
                    .chain(home.iter().map(|home| Mount {
                        typ: Some(MountType::VOLUME),
                        source: Some(home_volume_name(id)),
                        target: Some(home.clone()),
                        ..Default::default()
                    }))
                    .collect(),
                ),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        docker.create_container(&name, body).await?;
        self.update(id, |r| {
            r.ws.image = image.clone();
            r.runtime = Runtime {
                remote_user: remote_user.clone(),
                post_start: dc.post_start_command.clone(),
                forward_ports: dc.forward_ports.clone(),
                built_image: built_image.clone(),
                provisioned: true,
                mountpoint: Some(mountpoint.clone()),
                uid: 0,
                gid: 0,
                home: home.clone(),
            };
        })
        .await
        .map_err(|e| Failure(e.message))?;
        docker.start_container(&name).await?;

        // The project folder belongs to the workspace's user: resolved from the
        // container's /etc/passwd and given from the host, so the image needs no
        // `chown` or `id`.
        let pid = docker
            .container_pid(&name)
            .await?
            .ok_or_else(|| Failure("The container stopped right after it started.".into()))?;
        let owner = crate::passwd::lookup(pid, &user)
            .ok_or_else(|| Failure(format!("The user {user:?} does not exist in the image.")))?;
        if owner.uid != 0 || owner.gid != 0 {
            let root = PathBuf::from(&mountpoint);
            let (uid, gid) = (owner.uid, owner.gid);
            tokio::task::spawn_blocking(move || chown_tree(&root, uid, gid))
                .await
                .map_err(|e| Failure(format!("Cannot give the project folder to {user:?}: {e}")))?
                .map_err(|e| Failure(format!("Cannot give the project folder to {user:?}: {e}")))?;
        }
        self.update(id, |r| {
            r.runtime.uid = owner.uid;
            r.runtime.gid = owner.gid;
        })
        .await
        .map_err(|e| Failure(e.message))?;

        if let Some(cmd) = &dc.post_create_command {
            step += 1;
            self.progress(id, step.min(total), total, "Running postCreateCommand.")
                .await;
            self.run_lifecycle(
                id,
                "postCreateCommand",
                cmd,
                remote_user.as_deref(),
                &project_path,
            )
            .await?;
        }
        if let Some(cmd) = &dc.post_start_command {
            self.run_lifecycle(
                id,
                "postStartCommand",
                cmd,
                remote_user.as_deref(),
                &project_path,
            )
            .await?;
        }
        Ok(())
    }

    /// The home directory of `user` in `image`, from the image's `/etc/passwd`
    /// (read through a container created for that and never started). `None`
    /// when the image has no such entry, or its home is `/` or not absolute.
    async fn image_home(
        &self,
        id: &str,
        image: &str,
        user: &str,
    ) -> Result<Option<String>, Failure> {
        let docker = &self.inner.docker;
        let probe = probe_name(id);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(self.labels(id)),
            // Any command: the container is never started.
            entrypoint: Some(vec!["/bin/sh".into()]),
            cmd: Some(Vec::new()),
            network_disabled: Some(true),
            ..Default::default()
        };
        match docker.create_container(&probe, body.clone()).await {
            // Left by an agent that stopped mid-create.
            Err(DockerError::Conflict(_)) => {
                docker.remove_container(&probe).await?;
                docker.create_container(&probe, body).await?;
            }
            other => other?,
        }
        let passwd = docker
            .read_file(&probe, "/etc/passwd", MAX_PASSWD_BYTES)
            .await;
        if let Err(e) = docker.remove_container(&probe).await {
            tracing::warn!(workspace = id, error = %e, "removing the probe container failed");
        }
        let passwd = match passwd {
            Ok(p) => p,
            Err(DockerError::Failed(m)) => {
                tracing::warn!(workspace = id, error = %m, "cannot read the image's /etc/passwd");
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(passwd.and_then(|p| home_in_passwd(&String::from_utf8_lossy(&p), user)))
    }

    async fn ensure_image(&self, id: &str, image: &str) -> Result<(), Failure> {
        if self.inner.docker.image_user(image).await?.is_some() {
            return Ok(());
        }
        let mut last = String::new();
        let result = self
            .inner
            .docker
            .pull_image(image, |line| last = line.to_string())
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(DockerError::Unavailable(m)) => Err(DockerError::Unavailable(m).into()),
            Err(e) => {
                let _ = id;
                Err(Failure(format!(
                    "The image {image:?} is not on this node and could not be pulled: {}",
                    match e {
                        DockerError::NotFound(m)
                        | DockerError::Conflict(m)
                        | DockerError::Failed(m)
                        | DockerError::Unavailable(m) => m,
                    }
                )))
            }
        }
    }

    async fn build_image(
        &self,
        id: &str,
        repo: &str,
        found: &devcontainer::Found,
        tag: &str,
    ) -> Result<(), Failure> {
        let root = std::path::Path::new(repo);
        let build = found.config.build.clone().unwrap_or_default();
        let dockerfile_rel = build
            .dockerfile
            .or(found.config.docker_file.clone())
            .unwrap_or_else(|| "Dockerfile".into());
        let context =
            devcontainer::confine(root, &found.dir, build.context.as_deref().unwrap_or("."))
                .map_err(|e| Failure(e.to_string()))?;
        let dockerfile = devcontainer::confine(root, &found.dir, &dockerfile_rel)
            .map_err(|e| Failure(e.to_string()))?;
        let dockerfile_in_context = dockerfile.strip_prefix(&context).map_err(|_| {
            Failure(format!(
                "The Dockerfile {dockerfile_rel:?} must be inside the build context."
            ))
        })?;
        let dockerfile_in_context = dockerfile_in_context.to_string_lossy().to_string();
        let tar = tokio::task::spawn_blocking(move || devcontainer::tar_context(&context))
            .await
            .map_err(|e| Failure(format!("Cannot pack the build context: {e}")))?
            .map_err(|e| Failure(format!("Cannot pack the build context: {e}")))?;
        let mut steps = Vec::new();
        let result = self
            .inner
            .docker
            .build_image(
                tag,
                &dockerfile_in_context,
                tar,
                build.args,
                self.labels(id),
                |line| steps.push(line.to_string()),
            )
            .await;
        for line in steps {
            self.inner
                .events
                .record(
                    NewEvent::info(EventType::WorkspaceProgress, line)
                        .workspace(id)
                        .detail(json!({"step": 0, "phase": "build"})),
                )
                .await;
        }
        result.map_err(|e| match e {
            DockerError::Failed(tail) => Failure(format!("Building the image failed: {tail}")),
            other => other.into(),
        })
    }

    async fn run_lifecycle(
        &self,
        id: &str,
        what: &str,
        cmd: &LifecycleCommand,
        user: Option<&str>,
        workdir: &str,
    ) -> Result<(), Failure> {
        let name = resource_name(id);
        let runs = cmd.argvs().into_iter().map(|(label, argv)| {
            let docker = self.inner.docker.clone();
            let name = name.clone();
            async move { (label, docker.exec(&name, argv, user, Some(workdir)).await) }
        });
        for (label, result) in futures::future::join_all(runs).await {
            let out = result?;
            if out.exit_code != 0 {
                return Err(Failure(format!(
                    "{what} ({label}) failed with exit status {}: {}",
                    out.exit_code, out.tail
                )));
            }
        }
        Ok(())
    }

    /// Removes container, network, volumes (project and home) and built image;
    /// failures are logged (reconciliation reaps what is left once Docker answers
    /// again).
    async fn remove_resources(&self, id: &str) -> bool {
        let docker = &self.inner.docker;
        let name = resource_name(id);
        let built = {
            let records = self.inner.records.lock().await;
            records.get(id).and_then(|r| r.runtime.built_image.clone())
        };
        let (probe, home) = (probe_name(id), home_volume_name(id));
        let mut ok = true;
        let (container, probe) = tokio::join!(
            docker.remove_container(&name),
            docker.remove_container(&probe)
        );
        for (what, r) in [("container", container), ("probe container", probe)] {
            if let Err(e) = r {
                tracing::warn!(workspace = id, error = %e, "removing the {what} failed");
                ok = false;
            }
        }
        let (net, vol, home) = tokio::join!(
            docker.remove_network(&name),
            docker.remove_volume(&name),
            docker.remove_volume(&home)
        );
        for (what, r) in [("network", net), ("volume", vol), ("home volume", home)] {
            if let Err(e) = r {
                tracing::warn!(workspace = id, error = %e, "removing the {what} failed");
                ok = false;
            }
        }
        if let Some(image) = built
            && let Err(e) = docker.remove_image(&image).await
        {
            tracing::warn!(workspace = id, error = %e, "removing the built image failed");
        }
        ok
    }

    // ---- rename ----

    pub async fn rename(&self, id: &str, display_name: &str) -> Result<Workspace, ApiError> {
        let cleaned = validate_display_name(display_name).map_err(ApiError::bad_request)?;
        let (old, ws) = {
            let mut records = self.inner.records.lock().await;
            if !records.contains_key(id) {
                return Err(ApiError::workspace_not_found(id));
            }
            let name = unique_name(&cleaned, |key| {
                records
                    .values()
                    .any(|r| r.ws.id != id && name_key(&r.ws.display_name) == key)
            });
            let record = records
                .get_mut(id)
                .ok_or_else(|| ApiError::workspace_not_found(id))?;
            let old = std::mem::replace(&mut record.ws.display_name, name);
            record.generation += 1;
            record.ws.updated_at = crate::now();
            if let Err(e) = self.inner.store.put_workspace(&record.row()).await {
                record.ws.display_name = old;
                return Err(e.into());
            }
            (old, record.ws.clone())
        };
        if old != ws.display_name {
            self.event(
                id,
                EventType::WorkspaceRenamed,
                EventLevel::Info,
                format!("Renamed {old:?} to {:?}.", ws.display_name),
            )
            .await;
        }
        Ok(ws)
    }

    // ---- stop / restart / delete ----

    /// Marks a lifecycle call as started, or says why it cannot start.
    async fn begin(
        &self,
        id: &str,
        allowed: impl Fn(&Record) -> Result<(), ApiError>,
        next: WorkspaceStatus,
    ) -> Result<(Workspace, WorkspaceStatus), ApiError> {
        let mut records = self.inner.records.lock().await;
        let record = records
            .get_mut(id)
            .ok_or_else(|| ApiError::workspace_not_found(id))?;
        if record.ws.status.is_transitional() {
            return Err(ApiError::new(
                ErrorCode::WorkspaceBusy,
                format!(
                    "The workspace is {}; wait for that to finish and try again.",
                    record.ws.status
                ),
            ));
        }
        allowed(record)?;
        let before = record.ws.status;
        record.ws.status = next;
        record.generation += 1;
        record.ws.updated_at = crate::now();
        if let Err(e) = self.inner.store.put_workspace(&record.row()).await {
            record.ws.status = before;
            return Err(e.into());
        }
        Ok((record.ws.clone(), before))
    }

    pub async fn stop(&self, id: &str) -> Result<Workspace, ApiError> {
        let current = self.get(id).await?;
        if current.status == WorkspaceStatus::Stopped {
            return Ok(current);
        }
        self.require_docker().await?;
        let (ws, _) = self
            .begin(
                id,
                |r| needs_container(r, "stop"),
                WorkspaceStatus::Stopping,
            )
            .await?;
        self.event(
            id,
            EventType::WorkspaceStopping,
            EventLevel::Info,
            "Stopping the workspace.".into(),
        )
        .await;
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move { this.finish_stop(&id).await });
        Ok(ws)
    }

    /// Registers what must end before a workspace's container stops.
    pub fn on_end(&self, hook: EndHook) {
        if let Ok(mut hooks) = self.inner.end_hooks.write() {
            hooks.push(hook);
        }
    }

    async fn run_end_hooks(&self, id: &str, reason: EndReason) {
        let hooks: Vec<EndHook> = self
            .inner
            .end_hooks
            .read()
            .map(|h| h.clone())
            .unwrap_or_default();
        for hook in hooks {
            hook(id.to_string(), reason).await;
        }
    }

    async fn finish_stop(&self, id: &str) {
        self.finish_stop_for(id, EndReason::Stop).await
    }

    async fn finish_stop_for(&self, id: &str, reason: EndReason) {
        self.run_end_hooks(id, reason).await;
        match self.inner.docker.stop_container(&resource_name(id)).await {
            Ok(()) => {
                self.set_status(id, WorkspaceStatus::Stopped, None).await;
                self.event(
                    id,
                    EventType::WorkspaceStopped,
                    EventLevel::Info,
                    "The workspace is stopped; its files are kept.".into(),
                )
                .await;
            }
            Err(e) => self.fail_lifecycle(id, "Stopping", e).await,
        }
    }

    async fn fail_lifecycle(&self, id: &str, what: &str, e: DockerError) {
        let message = if e.is_not_found() {
            "The workspace's container was removed outside SAM; delete the workspace and create it again.".to_string()
        } else {
            format!("{what} the workspace failed: {}", Failure::from(e).0)
        };
        self.set_status(id, WorkspaceStatus::Error, Some(message.clone()))
            .await;
        self.event(id, EventType::WorkspaceError, EventLevel::Error, message)
            .await;
    }

    pub async fn restart(&self, id: &str) -> Result<Workspace, ApiError> {
        self.get(id).await?;
        self.require_docker().await?;
        let (ws, before) = self
            .begin(
                id,
                |r| needs_container(r, "restart"),
                WorkspaceStatus::Restarting,
            )
            .await?;
        self.event(
            id,
            EventType::WorkspaceRestarting,
            EventLevel::Info,
            "Restarting the workspace.".into(),
        )
        .await;
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move { this.finish_restart(&id, before).await });
        Ok(ws)
    }

    async fn finish_restart(&self, id: &str, before: WorkspaceStatus) {
        self.run_end_hooks(id, EndReason::Restart).await;
        let name = resource_name(id);
        let docker = &self.inner.docker;
        if let Err(e) = crate::firewall::ensure_metadata_blocked().await {
            let message = e.to_string();
            self.set_status(id, WorkspaceStatus::Error, Some(message.clone()))
                .await;
            self.event(id, EventType::WorkspaceError, EventLevel::Error, message)
                .await;
            return;
        }
        let result = match docker.container_state(&name).await {
            Ok(ContainerState::Missing) => Err(DockerError::NotFound(name.clone())),
            Ok(ContainerState::Running) if before == WorkspaceStatus::Running => {
                docker.restart_container(&name).await
            }
            Ok(ContainerState::Running) => Ok(()),
            Ok(ContainerState::NotRunning) => docker.start_container(&name).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            return self.fail_lifecycle(id, "Restarting", e).await;
        }
        let (post_start, user, path) = {
            let records = self.inner.records.lock().await;
            match records.get(id) {
                Some(r) => (
                    r.runtime.post_start.clone(),
                    r.runtime.remote_user.clone(),
                    r.ws.project_path.clone(),
                ),
                None => return,
            }
        };
        if let Some(cmd) = post_start
            && let Err(Failure(message)) = self
                .run_lifecycle(id, "postStartCommand", &cmd, user.as_deref(), &path)
                .await
        {
            self.set_status(id, WorkspaceStatus::Error, Some(message.clone()))
                .await;
            self.event(id, EventType::WorkspaceError, EventLevel::Error, message)
                .await;
            return;
        }
        self.set_status(id, WorkspaceStatus::Running, None).await;
        self.event(
            id,
            EventType::WorkspaceRunning,
            EventLevel::Info,
            "The workspace is running.".into(),
        )
        .await;
    }

    pub async fn delete(&self, id: &str) -> Result<Workspace, ApiError> {
        self.get(id).await?;
        self.require_docker().await?;
        let (ws, _) = self
            .begin(id, |_| Ok(()), WorkspaceStatus::Deleting)
            .await?;
        self.event(
            id,
            EventType::WorkspaceDeleting,
            EventLevel::Info,
            "Deleting the workspace.".into(),
        )
        .await;
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move { this.finish_delete(&id).await });
        Ok(ws)
    }

    async fn finish_delete(&self, id: &str) {
        self.run_end_hooks(id, EndReason::Delete).await;
        if !self.remove_resources(id).await {
            let message = "Deleting the workspace failed: the container engine could not remove everything; try again.".to_string();
            self.set_status(id, WorkspaceStatus::Error, Some(message.clone()))
                .await;
            self.event(id, EventType::WorkspaceError, EventLevel::Error, message)
                .await;
            return;
        }
        let name = {
            let mut records = self.inner.records.lock().await;
            if let Err(e) = self.inner.store.delete_workspace(id).await {
                tracing::error!(workspace = id, error = %e, "cannot forget a deleted workspace");
            }
            records
                .remove(id)
                .map(|r| r.ws.display_name)
                .unwrap_or_default()
        };
        self.event(
            id,
            EventType::WorkspaceDeleted,
            EventLevel::Info,
            format!("Deleted workspace {name:?}."),
        )
        .await;
    }

    /// `POST /node/stop`: what would stop.
    pub async fn stoppable(&self) -> Vec<Workspace> {
        self.list()
            .await
            .into_iter()
            .filter(|w| matches!(w.status, WorkspaceStatus::Running))
            .collect()
    }

    /// Stops every running workspace and waits for it; returns the ids stopped.
    pub async fn stop_all(&self) -> Vec<String> {
        let mut started = Vec::new();
        for ws in self.stoppable().await {
            match self
                .begin(
                    &ws.id,
                    |r| needs_container(r, "stop"),
                    WorkspaceStatus::Stopping,
                )
                .await
            {
                Ok(_) => started.push(ws.id),
                Err(e) => tracing::warn!(workspace = %ws.id, error = %e.message, "not stopped"),
            }
        }
        let stops = started.iter().map(|id| async move {
            self.event(
                id,
                EventType::WorkspaceStopping,
                EventLevel::Info,
                "Stopping the workspace (node stop).".into(),
            )
            .await;
            self.finish_stop_for(id, EndReason::NodeStop).await;
        });
        futures::future::join_all(stops).await;
        let records = self.inner.records.lock().await;
        started
            .into_iter()
            .filter(|id| {
                records
                    .get(id)
                    .is_some_and(|r| r.ws.status == WorkspaceStatus::Stopped)
            })
            .collect()
    }

    // ---- reconciliation ----

    /// Brings the registry in line with Docker. Returns whether Docker answered.
    pub async fn reconcile(&self) -> bool {
        let docker = &self.inner.docker;
        let snapshot: Vec<(String, WorkspaceStatus, bool, u64)> = {
            let records = self.inner.records.lock().await;
            records
                .values()
                .map(|r| {
                    (
                        r.ws.id.clone(),
                        r.ws.status,
                        r.runtime.provisioned,
                        r.generation,
                    )
                })
                .collect()
        };
        for (id, status, provisioned, generation) in snapshot {
            let name = resource_name(&id);
            let first = self.take_interrupted(&id);
            if first && status == WorkspaceStatus::Creating {
                // The agent stopped while creating: undo, and say so.
                self.remove_resources(&id).await;
                let message = "Creating the workspace was interrupted by an agent restart; delete it and create it again.".to_string();
                self.set_status(&id, WorkspaceStatus::Error, Some(message.clone()))
                    .await;
                self.event(&id, EventType::WorkspaceError, EventLevel::Error, message)
                    .await;
                continue;
            }
            if first && status == WorkspaceStatus::Deleting {
                self.finish_delete(&id).await;
                continue;
            }
            if first
                && matches!(
                    status,
                    WorkspaceStatus::Stopping | WorkspaceStatus::Restarting
                )
            {
                // Interrupted lifecycle call: take Docker's word below.
            } else if status.is_transitional() {
                continue;
            }
            let state = match docker.container_state(&name).await {
                Ok(s) => s,
                Err(DockerError::Unavailable(_)) => {
                    if first && let Ok(mut set) = self.inner.interrupted.lock() {
                        set.insert(id);
                    }
                    return false;
                }
                Err(e) => {
                    tracing::warn!(workspace = %id, error = %e, "cannot inspect");
                    continue;
                }
            };
            let (next, error) = match (status, state, provisioned) {
                (WorkspaceStatus::Error, ContainerState::Missing, false) => {
                    // A failed create: make sure nothing of it is left behind.
                    self.remove_resources(&id).await;
                    continue;
                }
                (WorkspaceStatus::Error, _, _) => continue,
                (_, ContainerState::Running, _) => (WorkspaceStatus::Running, None),
                (_, ContainerState::NotRunning, _) => (WorkspaceStatus::Stopped, None),
                (_, ContainerState::Missing, _) => (
                    WorkspaceStatus::Error,
                    Some("The workspace's container was removed outside SAM; delete the workspace and create it again.".to_string()),
                ),
            };
            if next == status {
                continue;
            }
            let applied = {
                let mut records = self.inner.records.lock().await;
                match records.get_mut(&id) {
                    Some(r) if r.generation == generation => {
                        r.ws.status = next;
                        r.ws.error = error.clone();
                        r.generation += 1;
                        r.ws.updated_at = crate::now();
                        if let Err(e) = self.inner.store.put_workspace(&r.row()).await {
                            tracing::error!(workspace = %id, error = %e, "cannot record a status");
                        }
                        true
                    }
                    _ => false,
                }
            };
            if applied {
                let (kind, level, message) = match next {
                    WorkspaceStatus::Running => (
                        EventType::WorkspaceRunning,
                        EventLevel::Info,
                        "The workspace's container is running again.".to_string(),
                    ),
                    WorkspaceStatus::Stopped => (
                        EventType::WorkspaceStopped,
                        EventLevel::Warn,
                        "The workspace's container stopped outside SAM.".to_string(),
                    ),
                    _ => (
                        EventType::WorkspaceError,
                        EventLevel::Error,
                        error.unwrap_or_default(),
                    ),
                };
                self.event(&id, kind, level, message).await;
            }
        }
        self.reap_orphans().await;
        true
    }

    /// Whether `id` was interrupted at start-up (answered once).
    fn take_interrupted(&self, id: &str) -> bool {
        self.inner
            .interrupted
            .lock()
            .map(|mut set| set.remove(id))
            .unwrap_or(false)
    }

    /// Removes resources labelled for this node that no workspace owns.
    async fn reap_orphans(&self) {
        let docker = &self.inner.docker;
        let Ok(found) = docker.labelled(LABEL_NODE, &self.inner.node_id).await else {
            return;
        };
        let known: std::collections::HashSet<String> =
            self.inner.records.lock().await.keys().cloned().collect();
        for (name, ws) in found.containers {
            if !known.contains(&ws) {
                tracing::info!(container = %name, "removing an orphaned container");
                let _ = docker.remove_container(&name).await;
            }
        }
        for (name, ws) in found.networks {
            if !known.contains(&ws) {
                tracing::info!(network = %name, "removing an orphaned network");
                let _ = docker.remove_network(&name).await;
            }
        }
        for (name, ws) in found.volumes {
            if !known.contains(&ws) {
                tracing::info!(volume = %name, "removing an orphaned volume");
                let _ = docker.remove_volume(&name).await;
            }
        }
    }
}

fn needs_container(r: &Record, what: &str) -> Result<(), ApiError> {
    if r.runtime.provisioned {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::WorkspaceNotRunning,
            format!(
                "The workspace failed to be created, so there is nothing to {what}; delete it and create it again."
            ),
        ))
    }
}

/// The home directory of `user` (a name or uid, optionally `:group`; empty is
/// root) in an `/etc/passwd`; `None` without an entry, or when the entry's home
/// is `/`, relative or empty (nothing to mount a volume on).
fn home_in_passwd(passwd: &str, user: &str) -> Option<String> {
    let user = if user.is_empty() { "root" } else { user };
    let name = user.split_once(':').map_or(user, |(u, _)| u);
    let fields = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .find(|f| f[0] == name)
        .or_else(|| {
            passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .filter(|f| f.len() >= 7)
                .find(|f| f[2] == name)
        })?;
    let home = fields[5].trim_end_matches('/');
    (home.starts_with('/') && !home.contains("/../") && !home.ends_with("/.."))
        .then(|| home.to_string())
}

/// Gives a tree to `uid:gid` without following symlinks (a cloned repository may
/// hold links pointing anywhere on the host).
fn chown_tree(root: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let (uid, gid) = (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        rustix::fs::chownat(
            rustix::fs::CWD,
            &path,
            uid,
            gid,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::home_in_passwd;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          dev:x:1000:1000::/home/dev/:/bin/bash\n\
                          1001:x:1002:1002::/home/odd:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n\
                          rel:x:1003:1003::home/rel:/bin/sh\n";

    #[test]
    fn home_directories_from_passwd() {
        assert_eq!(home_in_passwd(PASSWD, "").as_deref(), Some("/root"));
        assert_eq!(home_in_passwd(PASSWD, "dev").as_deref(), Some("/home/dev"));
        assert_eq!(home_in_passwd(PASSWD, "1000").as_deref(), Some("/home/dev"));
        assert_eq!(
            home_in_passwd(PASSWD, "dev:42").as_deref(),
            Some("/home/dev")
        );
        // A name wins over a uid.
        assert_eq!(home_in_passwd(PASSWD, "1001").as_deref(), Some("/home/odd"));
        assert_eq!(home_in_passwd(PASSWD, "nobody"), None);
        assert_eq!(home_in_passwd(PASSWD, "rel"), None);
        assert_eq!(home_in_passwd(PASSWD, "4242"), None);
        assert_eq!(home_in_passwd("", "root"), None);
    }
}
