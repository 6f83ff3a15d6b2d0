//! Files of a workspace's project folder, read and written from the host through
//! the volume's mount point, so they work while the workspace is stopped.
//!
//! Confinement is by the file system, not by string checks: every path is resolved
//! by cap-std relative to a directory handle on the project folder, which refuses
//! `..` that leaves it, absolute paths and symlinks pointing out (absolute symlinks
//! included: their meaning depends on the container).

pub mod routes;

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use sam_protocol::{EntryKind, FileEntry, Timestamp};

/// Largest file body accepted by PUT.
pub const FILE_LIMIT: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    BadPath(String),
    #[error("the path leaves the workspace's project folder")]
    Escapes,
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl FileError {
    fn from_io(e: io::Error, path: &str) -> Self {
        match e.kind() {
            // A file used as a folder on the way (`file.txt/x`): no such path.
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                FileError::NotFound(format!("{path:?}"))
            }
            // cap-std answers an escape (`..`, symlinks out) with PermissionDenied.
            io::ErrorKind::PermissionDenied => FileError::Escapes,
            io::ErrorKind::AlreadyExists => FileError::Conflict(format!("{path:?} already exists")),
            io::ErrorKind::DirectoryNotEmpty => FileError::Conflict(format!(
                "{path:?} is a folder that is not empty; pass recursive=true"
            )),
            _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                FileError::BadPath(format!(
                    "{path:?} goes through too many levels of symbolic links"
                ))
            }
            _ => FileError::Io(e),
        }
    }
}

/// A request path, checked for what strings can tell (NUL, absolute); the rest is
/// the file system's job. Empty and `.` mean the folder itself.
pub fn relative(path: &str) -> Result<PathBuf, FileError> {
    if path.contains('\0') {
        return Err(FileError::BadPath("the path contains a NUL byte".into()));
    }
    if path.len() > 4096 {
        return Err(FileError::BadPath(
            "the path is longer than 4096 bytes".into(),
        ));
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return Err(FileError::Escapes);
    }
    // A `..` that climbs above the folder is refused before touching the disk (so
    // the answer does not depend on which folders exist); every other way out is
    // caught by cap-std while resolving.
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::ParentDir if depth == 0 => return Err(FileError::Escapes),
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    let cleaned: PathBuf = p.components().filter(|c| *c != Component::CurDir).collect();
    Ok(if cleaned.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        cleaned
    })
}

/// The project folder of one workspace, and who owns what is written there.
pub struct Folder {
    dir: Dir,
    uid: u32,
    gid: u32,
}

pub enum Read {
    Dir(Vec<FileEntry>),
    File { file: std::fs::File, len: u64 },
}

fn modified(meta: &cap_std::fs::Metadata) -> Timestamp {
    meta.modified()
        .ok()
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t.into_std()))
        .unwrap_or_default()
}

impl Folder {
    pub fn open(host_path: &Path, uid: u32, gid: u32) -> Result<Self, FileError> {
        let dir = Dir::open_ambient_dir(host_path, ambient_authority())?;
        Ok(Self { dir, uid, gid })
    }

    pub fn read(&self, path: &str) -> Result<Read, FileError> {
        let rel = relative(path)?;
        let meta = self
            .dir
            .metadata(&rel)
            .map_err(|e| FileError::from_io(e, path))?;
        if meta.is_dir() {
            let mut entries = Vec::new();
            for entry in self
                .dir
                .read_dir(&rel)
                .map_err(|e| FileError::from_io(e, path))?
            {
                let entry = entry?;
                let meta = entry.metadata()?;
                let kind = if meta.file_type().is_symlink() {
                    EntryKind::Symlink
                } else if meta.is_dir() {
                    EntryKind::Dir
                } else {
                    EntryKind::File
                };
                entries.push(FileEntry {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    kind,
                    size: if kind == EntryKind::File {
                        meta.len()
                    } else {
                        0
                    },
                    modified_at: modified(&meta),
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(Read::Dir(entries));
        }
        let file = self
            .dir
            .open(&rel)
            .map_err(|e| FileError::from_io(e, path))?;
        Ok(Read::File {
            len: meta.len(),
            file: file.into_std(),
        })
    }

    fn chown(&self, file: &std::fs::File) {
        if self.uid != 0 || self.gid != 0 {
            let _ = rustix::fs::fchown(
                file,
                Some(rustix::fs::Uid::from_raw(self.uid)),
                Some(rustix::fs::Gid::from_raw(self.gid)),
            );
        }
    }

    /// Makes the folder and its parents, each owned by the workspace's user.
    pub fn mkdir(&self, path: &str) -> Result<(), FileError> {
        let rel = relative(path)?;
        let mut so_far = PathBuf::new();
        for part in rel.components() {
            so_far.push(part);
            match self.dir.create_dir(&so_far) {
                Ok(()) => {
                    if let Ok(d) = self.dir.open(&so_far) {
                        self.chown(&d.into_std());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !self
                        .dir
                        .metadata(&so_far)
                        .map_err(|e| FileError::from_io(e, path))?
                        .is_dir()
                    {
                        return Err(FileError::Conflict(format!(
                            "{:?} is a file",
                            so_far.display().to_string()
                        )));
                    }
                }
                Err(e) => return Err(FileError::from_io(e, path)),
            }
        }
        Ok(())
    }

    /// Writes atomically: a temporary file beside the target, then a rename.
    pub fn write(&self, path: &str, data: &[u8]) -> Result<(), FileError> {
        let rel = relative(path)?;
        let name = rel
            .file_name()
            .ok_or_else(|| FileError::BadPath("the path names no file".into()))?
            .to_string_lossy()
            .into_owned();
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        if !parent.as_os_str().is_empty() {
            self.mkdir(&parent.to_string_lossy())?;
        }
        // Following a symlink here: one that points out is refused, not replaced.
        match self.dir.metadata(&rel) {
            Ok(m) if m.is_dir() => {
                return Err(FileError::Conflict(format!("{path:?} is a folder")));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FileError::from_io(e, path)),
        }
        let tmp = parent.join(format!(".{name}.sam-{:08x}.tmp", rand::random::<u32>()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let file = self
            .dir
            .open_with(&tmp, &options)
            .map_err(|e| FileError::from_io(e, path))?;
        let mut file = file.into_std();
        let written = file.write_all(data).and_then(|()| file.sync_all());
        self.chown(&file);
        if let Err(e) = written.map_err(FileError::Io).and_then(|()| {
            self.dir
                .rename(&tmp, &self.dir, &rel)
                .map_err(|e| FileError::from_io(e, path))
        }) {
            let _ = self.dir.remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    pub fn delete(&self, path: &str, recursive: bool) -> Result<(), FileError> {
        let rel = relative(path)?;
        if rel == Path::new(".") {
            return Err(FileError::BadPath(
                "the project folder itself cannot be deleted".into(),
            ));
        }
        let meta = self
            .dir
            .symlink_metadata(&rel)
            .map_err(|e| FileError::from_io(e, path))?;
        let result = if meta.is_dir() {
            if recursive {
                self.dir.remove_dir_all(&rel)
            } else {
                self.dir.remove_dir(&rel)
            }
        } else {
            self.dir.remove_file(&rel)
        };
        result.map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::NOTEMPTY.raw_os_error() => {
                FileError::Conflict(format!(
                    "{path:?} is a folder that is not empty; pass recursive=true"
                ))
            }
            _ => FileError::from_io(e, path),
        })
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        let (src, dst) = (relative(from)?, relative(to)?);
        if src == Path::new(".") || dst == Path::new(".") {
            return Err(FileError::BadPath(
                "the project folder itself cannot be moved".into(),
            ));
        }
        self.dir
            .symlink_metadata(&src)
            .map_err(|e| FileError::from_io(e, from))?;
        if self.dir.symlink_metadata(&dst).is_ok() {
            return Err(FileError::Conflict(format!("{to:?} already exists")));
        }
        self.dir
            .rename(&src, &self.dir, &dst)
            .map_err(|e| FileError::from_io(e, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, Folder) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("project")).unwrap();
        std::fs::write(dir.path().join("secret"), "host secret").unwrap();
        let f = Folder::open(&dir.path().join("project"), 0, 0).unwrap();
        (dir, f)
    }

    #[test]
    fn refuses_every_way_out() {
        let (dir, f) = folder();
        let project = dir.path().join("project");
        std::os::unix::fs::symlink("../secret", project.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", project.join("abs")).unwrap();
        std::os::unix::fs::symlink(dir.path(), project.join("outdir")).unwrap();
        for path in [
            "../secret",
            "a/../../secret",
            "/etc/passwd",
            "up",
            "abs",
            "outdir/secret",
        ] {
            assert!(
                matches!(f.read(path), Err(FileError::Escapes)),
                "{path} was not refused"
            );
        }
        assert!(matches!(f.write("outdir/x", b"x"), Err(FileError::Escapes)));
        assert!(matches!(f.write("../x", b"x"), Err(FileError::Escapes)));
        // A symlink pointing out is refused, not replaced by the written file.
        assert!(matches!(f.write("abs", b"x"), Err(FileError::Escapes)));
        assert!(matches!(f.write("up", b"x"), Err(FileError::Escapes)));
        assert!(
            std::fs::symlink_metadata(project.join("abs"))
                .unwrap()
                .is_symlink()
        );
        assert!(matches!(f.read("a\0b"), Err(FileError::BadPath(_))));
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn writes_atomically_and_lists() {
        let (_dir, f) = folder();
        f.write("src/main.rs", b"fn main() {}").unwrap();
        f.write("src/main.rs", b"fn main() { }").unwrap();
        let Read::Dir(entries) = f.read("src").unwrap() else {
            panic!("a dir")
        };
        assert_eq!(entries.len(), 1, "no temporary files left: {entries:?}");
        assert_eq!(entries[0].name, "main.rs");
        assert_eq!(entries[0].size, 13);
        assert!(matches!(
            f.delete("src", false),
            Err(FileError::Conflict(_))
        ));
        f.rename("src/main.rs", "lib.rs").unwrap();
        assert!(matches!(
            f.rename("lib.rs", "src"),
            Err(FileError::Conflict(_))
        ));
        f.delete("src", false).unwrap();
        let Read::Dir(entries) = f.read("").unwrap() else {
            panic!("a dir")
        };
        assert_eq!(
            entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["lib.rs"]
        );
    }
}
