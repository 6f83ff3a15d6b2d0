//! `/workspaces/{id}/files…`: list, read (with `Range`), atomic write, delete,
//! mkdir and move, all confined to the project folder.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sam_protocol::{DirListing, ErrorCode, MoveFile};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::{FILE_LIMIT, FileError, Folder, Read};
use crate::auth::WorkspaceAccess;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, read_body};
use crate::state::AppState;

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::BadPath(m) => ApiError::bad_request(format!("{m}.")),
            FileError::Escapes => ApiError::forbidden(
                "The path leaves the workspace's project folder (.., an absolute path, or a symlink pointing out).",
            ),
            FileError::NotFound(what) => ApiError::not_found(format!("{what} does not exist.")),
            FileError::Conflict(m) => ApiError::new(ErrorCode::Conflict, format!("{m}.")),
            FileError::Io(e) => ApiError::internal(e),
        }
    }
}

#[derive(Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    path: String,
    #[serde(default)]
    recursive: Option<String>,
}

async fn folder(state: &AppState, id: &str) -> Result<Folder, ApiError> {
    let (path, uid, gid) = state.workspaces.project_folder(id).await?;
    Ok(Folder::open(&path, uid, gid)?)
}

/// Runs a blocking file operation off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// A single `bytes=a-b` range within `len`; `None` when absent or not satisfiable
/// as one range (then the whole file is sent, as RFC 9110 allows).
fn range(value: Option<&HeaderValue>, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value?.to_str().ok()?.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (start, "") => (start.parse().ok()?, len.checked_sub(1)?),
        (start, end) => (
            start.parse().ok()?,
            end.parse::<u64>().ok()?.min(len.checked_sub(1)?),
        ),
    };
    Some(if start <= end && start < len {
        Ok((start, end))
    } else {
        Err(())
    })
}

pub async fn get(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PathQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let folder = folder(&state, &access.id).await?;
    let path = q.path.clone();
    let read = blocking(move || folder.read(&path)).await?;
    match read {
        Read::Dir(entries) => {
            let mut response = Json(DirListing { entries }).into_response();
            response
                .headers_mut()
                .insert("x-sam-entry", HeaderValue::from_static("dir"));
            Ok(response)
        }
        Read::File { file, len } => {
            use std::io::{Seek, SeekFrom};
            let mut file = file;
            let (status, start, end) = match range(request.headers().get(header::RANGE), len) {
                Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
                Some(Err(())) => {
                    let mut r = ApiError::new(
                        ErrorCode::InvalidRequest,
                        format!("The range is outside the file ({len} bytes)."),
                    )
                    .into_response();
                    *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                    r.headers_mut().insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&format!("bytes */{len}"))
                            .map_err(ApiError::internal)?,
                    );
                    return Ok(r);
                }
                None => (StatusCode::OK, 0, len.saturating_sub(1)),
            };
            let count = if len == 0 { 0 } else { end - start + 1 };
            file.seek(SeekFrom::Start(start))
                .map_err(ApiError::internal)?;
            let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), count);
            let mut response = Response::new(Body::from_stream(ReaderStream::new(reader)));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert("x-sam-entry", HeaderValue::from_static("file"));
            if status == StatusCode::PARTIAL_CONTENT {
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
                        .map_err(ApiError::internal)?,
                );
            }
            Ok(response)
        }
    }
}

pub async fn put(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PathQuery>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let len = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let folder = folder(&state, &access.id).await?;
    super::relative(&q.path)?;
    let data = read_body(request.into_body(), len, FILE_LIMIT).await?;
    let path = q.path;
    blocking(move || folder.write(&path, &data)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let recursive = match q.recursive.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "recursive must be true or false, not {other:?}"
            )));
        }
    };
    let folder = folder(&state, &access.id).await?;
    let path = q.path;
    blocking(move || folder.delete(&path, recursive)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn mkdir(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let folder = folder(&state, &access.id).await?;
    let path = q.path;
    blocking(move || folder.mkdir(&path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rename(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<MoveFile>,
) -> Result<impl IntoResponse, ApiError> {
    let folder = folder(&state, &access.id).await?;
    blocking(move || folder.rename(&body.from, &body.to)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::range;
    use axum::http::HeaderValue;

    #[test]
    fn parses_single_ranges() {
        let r = |s: &str, len| range(Some(&HeaderValue::from_str(s).unwrap()), len);
        assert_eq!(r("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(r("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(r("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(r("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(r("bytes=100-", 100), Some(Err(())));
        assert_eq!(r("bytes=0-1,5-6", 100), None);
        assert_eq!(r("items=0-1", 100), None);
        assert_eq!(range(None, 100), None);
    }
}
