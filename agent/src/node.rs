//! `GET/PATCH /node`, `POST /node/stop`, and what the node says about itself.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use sam_protocol::{Capacity, CpuInfo, EventType, NodeInfo, NodeStopPlan, NodeStopped, PatchNode};
use serde::Deserialize;
use serde_json::json;

use crate::auth::NodeAccess;
use crate::error::ApiError;
use crate::events::NewEvent;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

/// Upper bound for limits set through `PATCH /node`.
const LIMIT_MAX: u32 = 1000;

pub async fn get(_: NodeAccess, State(state): State<AppState>) -> Json<NodeInfo> {
    Json(state.node_info().await)
}

pub async fn patch(
    _: NodeAccess,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PatchNode>,
) -> Result<impl IntoResponse, ApiError> {
    for (name, value) in [
        ("maxWorkspaces", body.limits.max_workspaces),
        (
            "maxSessionsPerWorkspace",
            body.limits.max_sessions_per_workspace,
        ),
    ] {
        if let Some(v) = value
            && !(1..=LIMIT_MAX).contains(&v)
        {
            return Err(ApiError::bad_request(format!(
                "limits.{name} must be between 1 and {LIMIT_MAX}"
            )));
        }
    }
    let limits = {
        let mut limits = state.limits.write().await;
        let mut next = *limits;
        if let Some(v) = body.limits.max_workspaces {
            next.max_workspaces = v;
        }
        if let Some(v) = body.limits.max_sessions_per_workspace {
            next.max_sessions_per_workspace = v;
        }
        let text = serde_json::to_string(&next).map_err(ApiError::internal)?;
        state.store.set_meta("limits", &text).await?;
        *limits = next;
        next
    };
    state
        .events
        .record(
            NewEvent::info(
                EventType::NodeLimits,
                format!(
                    "Limits set: {} workspaces, {} sessions per workspace.",
                    limits.max_workspaces, limits.max_sessions_per_workspace
                ),
            )
            .detail(json!(limits)),
        )
        .await;
    Ok(Json(state.node_info().await))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopQuery {
    #[serde(default)]
    dry_run: Option<String>,
}

pub async fn stop(
    _: NodeAccess,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<StopQuery>,
) -> Result<axum::response::Response, ApiError> {
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun must be true or false, not {other:?}"
            )));
        }
    };
    if dry_run {
        return Ok(Json(NodeStopPlan {
            workspaces: state.workspaces.stoppable().await,
            sessions: state.sessions.active(None),
        })
        .into_response());
    }
    state
        .events
        .record(NewEvent::info(
            EventType::NodeStopping,
            "Stopping every workspace on this node.",
        ))
        .await;
    let stopped = state.workspaces.stop_all().await;
    Ok(Json(NodeStopped { stopped }).into_response())
}

/// CPU, memory and disk, from /proc and statvfs; `None` where unreadable.
pub fn system(data_dir: &std::path::Path) -> (Option<CpuInfo>, Option<Capacity>, Option<Capacity>) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|load1| CpuInfo { cores, load1 });
    let memory = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let field = |name: &str| -> Option<u64> {
            let line = s.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        };
        Some(Capacity {
            total_bytes: field("MemTotal:")?,
            available_bytes: field("MemAvailable:")?,
        })
    });
    let disk = rustix::fs::statvfs(data_dir).ok().map(|s| Capacity {
        total_bytes: s.f_blocks * s.f_frsize,
        available_bytes: s.f_bavail * s.f_frsize,
    });
    (cpu, memory, disk)
}
