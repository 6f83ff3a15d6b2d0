//! Files and ports of a workspace, through its node's agent.

use reqwest::Method;
use sam_protocol::{DirListing, FileEntry, MoveFile, Port, PortList};

use super::{NodeClient, Scope};
use crate::error::{Error, Result};

/// What is at a path: a folder's entries or a file's bytes.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir(Vec<FileEntry>),
    File(bytes::Bytes),
}

fn query(path: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("path", path)
        .finish()
}

impl NodeClient {
    pub async fn read_path(&self, ws: &str, path: &str) -> Result<Entry> {
        let (bytes, kind) = self
            .call_with_header(
                Method::GET,
                &format!("/workspaces/{ws}/files?{}", query(path)),
                Scope::Workspace(ws),
                None,
                "x-sam-entry",
            )
            .await?;
        match kind.as_deref() {
            Some("dir") => {
                let list: DirListing = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::internal(format!("The agent's folder listing is not valid: {e}"))
                })?;
                Ok(Entry::Dir(list.entries))
            }
            _ => Ok(Entry::File(bytes)),
        }
    }

    pub async fn write_file(&self, ws: &str, path: &str, body: bytes::Bytes) -> Result<()> {
        self.call_with_header(
            Method::PUT,
            &format!("/workspaces/{ws}/files?{}", query(path)),
            Scope::Workspace(ws),
            Some(body),
            "",
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_path(&self, ws: &str, path: &str, recursive: bool) -> Result<()> {
        let q = format!("{}&recursive={recursive}", query(path));
        self.call_raw(
            Method::DELETE,
            &format!("/workspaces/{ws}/files?{q}"),
            Scope::Workspace(ws),
            None::<&()>,
            &[],
        )
        .await
        .map(|_| ())
    }

    pub async fn mkdir(&self, ws: &str, path: &str) -> Result<()> {
        self.call_raw(
            Method::POST,
            &format!("/workspaces/{ws}/files/mkdir?{}", query(path)),
            Scope::Workspace(ws),
            None::<&()>,
            &[],
        )
        .await
        .map(|_| ())
    }

    pub async fn move_path(&self, ws: &str, from: &str, to: &str) -> Result<()> {
        let body = MoveFile {
            from: from.to_string(),
            to: to.to_string(),
        };
        self.call_raw(
            Method::POST,
            &format!("/workspaces/{ws}/files/move"),
            Scope::Workspace(ws),
            Some(&body),
            &[],
        )
        .await
        .map(|_| ())
    }

    pub async fn ports(&self, ws: &str) -> Result<Vec<Port>> {
        let list: PortList = self
            .call(
                Method::GET,
                &format!("/workspaces/{ws}/ports"),
                Scope::Workspace(ws),
                None::<&()>,
            )
            .await?;
        Ok(list.ports)
    }
}
