//! Cloning a workspace's repository with the node's `git` CLI.
//!
//! A `gitToken` reaches git through `GIT_ASKPASS` and the environment of that one
//! process: it is never on a command line, in `.git/config`, in events or in logs.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// A clone that takes longer than this is stopped.
const CLONE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error("git is not installed on this node: {0}")]
    NoGit(std::io::Error),
    #[error("cloning {url} failed: {detail}")]
    Failed { url: String, detail: String },
    #[error("cloning {0} took longer than 15 minutes and was stopped")]
    Timeout(String),
}

/// Refuses repository URLs and branches git could read as options or that are
/// not clonable references.
pub fn validate(repository: &str, branch: Option<&str>) -> Result<(), String> {
    let repo = repository.trim();
    if repo.is_empty() || repo.len() > 2048 {
        return Err("repository must be 1 to 2048 characters".into());
    }
    if repo.starts_with('-') || repo.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("repository is not a valid git URL".into());
    }
    let lower = repo.to_ascii_lowercase();
    let known_scheme = ["https://", "http://", "ssh://", "git://", "file://"]
        .iter()
        .any(|s| lower.starts_with(s));
    let scp_like = !lower.contains("://") && repo.contains('@') && repo.contains(':');
    if !known_scheme && !scp_like {
        return Err(
            "repository must be an https://, http://, ssh://, git:// or file:// URL, or user@host:path"
                .into(),
        );
    }
    if let Some(b) = branch {
        let ok = !b.is_empty()
            && b.len() <= 255
            && !b.starts_with('-')
            && !b.contains("..")
            && !b.ends_with('/')
            && !b.ends_with(".lock")
            && !b
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
        if !ok {
            return Err(format!("branch {b:?} is not a valid git branch name"));
        }
    }
    Ok(())
}

/// Clones `url` (at `branch`) into the empty folder `dest`.
pub async fn clone(
    url: &str,
    branch: Option<&str>,
    token: Option<&str>,
    dest: &Path,
    scratch: &Path,
) -> Result<(), CloneError> {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_SSH_COMMAND",
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
        )
        .args(["-c", "credential.helper="])
        .args(["clone", "--quiet", "--no-tags"]);
    let askpass = scratch.join("askpass.sh");
    if let Some(token) = token {
        // The script holds no secret: it echoes the variable git's environment has.
        std::fs::write(
            &askpass,
            "#!/bin/sh\ncase \"$1\" in Username*) echo x-access-token ;; *) echo \"$SAM_GIT_TOKEN\" ;; esac\n",
        )
        .map_err(|e| CloneError::Failed {
            url: url.into(),
            detail: e.to_string(),
        })?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700));
        cmd.env("GIT_ASKPASS", &askpass).env("SAM_GIT_TOKEN", token);
    }
    if let Some(branch) = branch {
        cmd.args(["--branch", branch]);
    }
    cmd.arg("--").arg(url).arg(dest);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);

    let mut child = cmd.spawn().map_err(CloneError::NoGit)?;
    let mut stderr = child.stderr.take();
    let run = async {
        let mut err = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(64 * 1024).read_to_end(&mut err).await;
        }
        let status = child.wait().await;
        (status, err)
    };
    let (status, err) = tokio::time::timeout(CLONE_TIMEOUT, run)
        .await
        .map_err(|_| CloneError::Timeout(url.into()))?;
    let _ = std::fs::remove_file(&askpass);
    let status = status.map_err(CloneError::NoGit)?;
    if status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&err).trim().to_string();
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        detail = detail.replace(token, "***");
    }
    let detail = detail
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" ");
    Err(CloneError::Failed {
        url: url.into(),
        detail: if detail.is_empty() {
            format!("git exited with {status}")
        } else {
            detail
        },
    })
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn validates_urls_and_branches() {
        assert!(validate("https://github.com/a/b.git", Some("main")).is_ok());
        assert!(validate("file:///tmp/repo", None).is_ok());
        assert!(validate("git@github.com:a/b.git", Some("feature/x")).is_ok());
        assert!(validate("--upload-pack=evil", None).is_err());
        assert!(validate("/tmp/repo", None).is_err());
        assert!(validate("ext::sh -c evil", None).is_err());
        assert!(validate("https://x/y", Some("-b")).is_err());
        assert!(validate("https://x/y", Some("a..b")).is_err());
        assert!(validate("https://x/y", Some("a b")).is_err());
    }
}
