//! Files and ports of a workspace (the file tree and editor, the ports list).

use sam_protocol::{FileEntry, Port};

use super::Sam;
use crate::agent_client::files::Entry;
use crate::error::{Error, Result};

/// Largest file the editor opens.
pub const EDITOR_LIMIT: usize = 16 << 20;

impl Sam {
    pub async fn list_folder(&self, ws: &str, path: &str) -> Result<Vec<FileEntry>> {
        let l = self.locate(ws).await?;
        match l.client.read_path(&l.workspace.id, path).await? {
            Entry::Dir(entries) => Ok(entries),
            Entry::File(_) => Err(Error::invalid(format!("{path:?} is a file, not a folder."))),
        }
    }

    pub async fn read_file(&self, ws: &str, path: &str) -> Result<bytes::Bytes> {
        let l = self.locate(ws).await?;
        match l.client.read_path(&l.workspace.id, path).await? {
            Entry::File(bytes) => Ok(bytes),
            Entry::Dir(_) => Err(Error::invalid(format!("{path:?} is a folder, not a file."))),
        }
    }

    pub async fn write_file(&self, ws: &str, path: &str, body: bytes::Bytes) -> Result<()> {
        if body.len() > EDITOR_LIMIT {
            return Err(Error::invalid(
                "Files over 16 MiB cannot be written through SAM.",
            ));
        }
        let l = self.locate(ws).await?;
        l.client.write_file(&l.workspace.id, path, body).await
    }

    pub async fn ports(&self, ws: &str) -> Result<Vec<Port>> {
        let l = self.locate(ws).await?;
        l.client.ports(&l.workspace.id).await
    }
}
