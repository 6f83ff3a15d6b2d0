//! Where the control plane keeps its state: `SAM_DESKTOP_DIR`, else the platform's
//! app-data folder (`directories`).

use std::path::PathBuf;

use crate::error::{Error, Result};

pub fn state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SAM_DESKTOP_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "sam", "SAM")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            Error::internal("No home folder was found for the app's state.")
                .hint("Set SAM_DESKTOP_DIR to a folder SAM may use.")
        })
}

/// Makes the state folder (private to the user) and answers it.
pub fn ensure_state_dir() -> Result<PathBuf> {
    let dir = state_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::internal(format!(
            "Cannot create the state folder {}: {e}",
            dir.display()
        ))
        .hint("Set SAM_DESKTOP_DIR to a writable folder.")
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(dir)
}
