//! HTTP handlers for `/workspaces…`: thin over [`super::Workspaces`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sam_protocol::{CreateWorkspace, RenameWorkspace, WorkspaceList};
use serde::Deserialize;

use crate::auth::{NodeAccess, WorkspaceAccess};
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

pub async fn list(_: NodeAccess, State(state): State<AppState>) -> Json<WorkspaceList> {
    Json(WorkspaceList {
        workspaces: state.workspaces.list().await,
    })
}

pub async fn create(
    _: NodeAccess,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateWorkspace>,
) -> Result<impl IntoResponse, ApiError> {
    let ws = state.workspaces.create(body).await?;
    Ok((StatusCode::ACCEPTED, Json(ws)))
}

pub async fn get(
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.workspaces.get(&access.id).await?))
}

pub async fn rename(
    _: NodeAccess,
    access: WorkspaceAccess,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RenameWorkspace>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    Ok(Json(
        state
            .workspaces
            .rename(&access.id, &body.display_name)
            .await?,
    ))
}

pub async fn stop(
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let ws = state.workspaces.stop(&access.id).await?;
    Ok((StatusCode::ACCEPTED, Json(ws)))
}

pub async fn restart(
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let ws = state.workspaces.restart(&access.id).await?;
    Ok((StatusCode::ACCEPTED, Json(ws)))
}

pub async fn delete(
    _: NodeAccess,
    access: WorkspaceAccess,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let ws = state.workspaces.delete(&access.id).await?;
    Ok((StatusCode::ACCEPTED, Json(ws)))
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

pub async fn events(
    access: WorkspaceAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    state.workspaces.get(&access.id).await?;
    Ok(Json(
        state
            .events
            .page(Some(&access.id), q.limit, q.cursor.as_deref())
            .await?,
    ))
}

pub async fn node_events(
    _: NodeAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .events
            .page(None, q.limit, q.cursor.as_deref())
            .await?,
    ))
}
