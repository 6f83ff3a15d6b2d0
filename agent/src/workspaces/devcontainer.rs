//! The subset of `devcontainer.json` the agent honours (CONTRACT §6): image or
//! Dockerfile build, `containerEnv`, `remoteUser`, `postCreateCommand`,
//! `postStartCommand`, `forwardPorts` and `overrideCommand`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest devcontainer.json read.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevContainer {
    pub image: Option<String>,
    pub build: Option<Build>,
    /// The older spelling of `build.dockerfile`.
    pub docker_file: Option<String>,
    #[serde(default)]
    pub container_env: BTreeMap<String, String>,
    pub remote_user: Option<String>,
    pub post_create_command: Option<LifecycleCommand>,
    pub post_start_command: Option<LifecycleCommand>,
    #[serde(default)]
    pub forward_ports: Vec<serde_json::Value>,
    pub override_command: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub dockerfile: Option<String>,
    pub context: Option<String>,
    #[serde(default)]
    pub args: HashMap<String, String>,
}

/// A lifecycle command: a shell line, an argv, or named commands run in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LifecycleCommand {
    Shell(String),
    Argv(Vec<String>),
    Parallel(BTreeMap<String, LifecycleCommand>),
}

impl LifecycleCommand {
    /// Every argv to run (several for the parallel form).
    pub fn argvs(&self) -> Vec<(String, Vec<String>)> {
        match self {
            Self::Shell(line) => vec![(
                line.clone(),
                vec!["/bin/sh".into(), "-c".into(), line.clone()],
            )],
            Self::Argv(argv) => vec![(argv.join(" "), argv.clone())],
            Self::Parallel(map) => map
                .iter()
                .flat_map(|(name, cmd)| {
                    cmd.argvs()
                        .into_iter()
                        .map(move |(_, argv)| (name.clone(), argv))
                })
                .collect(),
        }
    }
}

/// Where a devcontainer.json was found, and what it says.
#[derive(Debug, Clone)]
pub struct Found {
    pub config: DevContainer,
    /// The folder holding devcontainer.json: relative paths in it start here.
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DevContainerError {
    #[error("{0} cannot be read: {1}")]
    Read(String, std::io::Error),
    #[error("{0} is larger than 1 MiB")]
    TooLarge(String),
    #[error("{0} is not valid JSON with comments: {1}")]
    Parse(String, String),
    #[error("{0}")]
    Invalid(String),
}

/// Looks for `.devcontainer/devcontainer.json`, then `.devcontainer.json`.
pub fn find(repo: &Path) -> Result<Option<Found>, DevContainerError> {
    let candidates = [
        (
            repo.join(".devcontainer"),
            ".devcontainer/devcontainer.json",
        ),
        (repo.to_path_buf(), ".devcontainer.json"),
    ];
    for (dir, rel) in candidates {
        let path = repo.join(rel);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => continue,
        };
        if !meta.is_file() {
            return Err(DevContainerError::Invalid(format!(
                "{rel} is not a regular file"
            )));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(DevContainerError::TooLarge(rel.into()));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| DevContainerError::Read(rel.into(), e))?;
        let config = parse(&text).map_err(|e| DevContainerError::Parse(rel.into(), e))?;
        return Ok(Some(Found { config, dir }));
    }
    Ok(None)
}

/// JSON with comments and trailing commas (a subset of JSON5).
pub fn parse(text: &str) -> Result<DevContainer, String> {
    json5::from_str(text).map_err(|e| e.to_string())
}

/// Resolves `rel` (from devcontainer.json) inside `root`, refusing anything that
/// leaves it, symlinks included: a cloned repository must not make the agent read
/// the host's files into a build context.
pub fn confine(root: &Path, base: &Path, rel: &str) -> Result<PathBuf, DevContainerError> {
    let root = root
        .canonicalize()
        .map_err(|e| DevContainerError::Read(root.display().to_string(), e))?;
    let joined = base.join(rel);
    let resolved = joined.canonicalize().map_err(|e| {
        DevContainerError::Invalid(format!("{rel:?} in devcontainer.json cannot be found: {e}"))
    })?;
    if !resolved.starts_with(&root) {
        return Err(DevContainerError::Invalid(format!(
            "{rel:?} in devcontainer.json points outside the repository"
        )));
    }
    Ok(resolved)
}

/// A tar of a build context, without following symlinks.
pub fn tar_context(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jsonc_with_comments_and_trailing_commas() {
        let c = parse(
            r#"{
                // a comment
                "image": "busybox", /* block */
                "containerEnv": {"A": "1",},
                "remoteUser": "dev",
                "postCreateCommand": ["touch", "/tmp/x"],
                "postStartCommand": {"a": "echo a", "b": ["echo", "b"]},
                "forwardPorts": [3000, "db:5432"],
                "overrideCommand": false,
                "unknownField": {"ignored": true},
            }"#,
        )
        .unwrap();
        assert_eq!(c.image.as_deref(), Some("busybox"));
        assert_eq!(c.container_env["A"], "1");
        assert_eq!(c.override_command, Some(false));
        assert_eq!(
            c.post_create_command.unwrap().argvs()[0].1,
            ["touch", "/tmp/x"]
        );
        let start = c.post_start_command.unwrap().argvs();
        assert_eq!(start.len(), 2);
        assert_eq!(start[0].1, ["/bin/sh", "-c", "echo a"]);
    }

    #[test]
    fn refuses_paths_out_of_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
        std::fs::write(repo.join(".devcontainer/Dockerfile"), "FROM x").unwrap();
        std::os::unix::fs::symlink("/etc", repo.join("link")).unwrap();
        let base = repo.join(".devcontainer");
        assert!(confine(&repo, &base, "Dockerfile").is_ok());
        assert!(confine(&repo, &base, "..").is_ok());
        assert!(confine(&repo, &base, "../..").is_err());
        assert!(confine(&repo, &base, "../link").is_err());
        assert!(confine(&repo, &base, "/etc").is_err());
    }
}
