//! The agent's SQLite file in the data dir: workspaces, events and node settings.
//!
//! Invariant: the only module that speaks SQL. Nothing secret is ever written here
//! (no git tokens, no agent credentials). Every change is one statement or one
//! transaction, so a crash leaves either the old row or the new one.

use std::path::Path;
use std::str::FromStr;

use sam_protocol::{
    AgentSession, Event, EventLevel, EventType, Timestamp, Workspace, WorkspaceStatus,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

/// Schema steps; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    slug TEXT NOT NULL,
    project_path TEXT NOT NULL,
    status TEXT NOT NULL,
    image TEXT NOT NULL,
    repository TEXT,
    branch TEXT,
    error TEXT,
    runtime TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    level TEXT NOT NULL,
    workspace_id TEXT,
    session_id TEXT,
    message TEXT NOT NULL,
    detail TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX events_by_workspace ON events (workspace_id, seq);
"#,
    r#"
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    label TEXT NOT NULL,
    agent TEXT,
    status TEXT NOT NULL,
    stop_reason TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    stopped_at TEXT
);
CREATE INDEX sessions_by_workspace ON sessions (workspace_id);
CREATE TABLE idempotency_keys (
    workspace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
"#,
];

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// A workspace row: the wire resource plus the agent's own runtime notes (JSON).
#[derive(Debug, Clone)]
pub struct WorkspaceRow {
    pub workspace: Workspace,
    pub slug: String,
    pub runtime: String,
}

/// An event row before the id string is made from `seq`.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub kind: EventType,
    pub level: EventLevel,
    pub workspace_id: Option<String>,
    pub session_id: Option<String>,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    pub created_at: Timestamp,
}

impl Store {
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("agent.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5))
            .pragma("cache_size", "-512");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            sqlx::raw_sql(*step).execute(&mut *tx).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA user_version = {}",
                i + 1
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- meta ----

    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- workspaces ----

    pub async fn workspaces(&self) -> Result<Vec<WorkspaceRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM workspaces ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(workspace_from_row).collect()
    }

    pub async fn put_workspace(&self, row: &WorkspaceRow) -> Result<(), StoreError> {
        let w = &row.workspace;
        sqlx::query(
            "INSERT INTO workspaces (id, display_name, slug, project_path, status, image, repository, branch, error, runtime, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET display_name = excluded.display_name, status = excluded.status,
               image = excluded.image, error = excluded.error, runtime = excluded.runtime, updated_at = excluded.updated_at",
        )
        .bind(&w.id)
        .bind(&w.display_name)
        .bind(&row.slug)
        .bind(&w.project_path)
        .bind(w.status.as_str())
        .bind(&w.image)
        .bind(&w.repository)
        .bind(&w.branch)
        .bind(&w.error)
        .bind(&row.runtime)
        .bind(w.created_at.to_rfc3339())
        .bind(w.updated_at.to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_workspace(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workspaces WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- sessions ----

    pub async fn put_session(&self, s: &AgentSession) -> Result<(), StoreError> {
        let enum_str = |v: serde_json::Value| v.as_str().map(str::to_string);
        sqlx::query(
            "INSERT INTO sessions (id, workspace_id, label, agent, status, stop_reason, error, created_at, stopped_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET status = excluded.status, stop_reason = excluded.stop_reason,
               error = excluded.error, stopped_at = excluded.stopped_at",
        )
        .bind(&s.id)
        .bind(&s.workspace_id)
        .bind(&s.label)
        .bind(&s.agent)
        .bind(enum_str(serde_json::json!(s.status)))
        .bind(s.stop_reason.and_then(|r| enum_str(serde_json::json!(r))))
        .bind(&s.error)
        .bind(s.created_at.to_rfc3339())
        .bind(s.stopped_at.map(|t| t.to_rfc3339()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn sessions(&self) -> Result<Vec<AgentSession>, StoreError> {
        let rows = sqlx::query("SELECT * FROM sessions ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    pub async fn delete_sessions_of(&self, workspace: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE workspace_id = ?")
            .bind(workspace)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE workspace_id = ?")
            .bind(workspace)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The session an idempotency key made, if it is younger than `max_age_secs`.
    pub async fn idempotent_session(
        &self,
        workspace: &str,
        key: &str,
        max_age_secs: i64,
    ) -> Result<Option<String>, StoreError> {
        let cutoff = (chrono::Utc::now() - chrono::Duration::seconds(max_age_secs)).to_rfc3339();
        Ok(sqlx::query_scalar(
            "SELECT session_id FROM idempotency_keys WHERE workspace_id = ? AND key = ? AND created_at > ?",
        )
        .bind(workspace)
        .bind(key)
        .bind(cutoff)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn put_idempotency_key(
        &self,
        workspace: &str,
        key: &str,
        session: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO idempotency_keys (workspace_id, key, session_id, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(workspace_id, key) DO UPDATE SET session_id = excluded.session_id, created_at = excluded.created_at",
        )
        .bind(workspace)
        .bind(key)
        .bind(session)
        .bind(crate::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- events ----

    pub async fn insert_event(&self, e: &EventRow) -> Result<i64, StoreError> {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO events (type, level, workspace_id, session_id, message, detail, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(e.kind.as_str())
        .bind(level_str(e.level))
        .bind(&e.workspace_id)
        .bind(&e.session_id)
        .bind(&e.message)
        .bind(e.detail.as_ref().map(|d| d.to_string()))
        .bind(e.created_at.to_rfc3339())
        .fetch_one(&self.pool)
        .await?;
        Ok(seq)
    }

    /// Keeps the newest `keep` events.
    pub async fn prune_events(&self, keep: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?")
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn head_event(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM events")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    pub async fn event_exists(&self, seq: i64) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT seq FROM events WHERE seq = ?")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Newest first, below `before` (exclusive), at most `limit`.
    pub async fn events_before(
        &self,
        workspace: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE seq < ? AND (? IS NULL OR workspace_id = ?)
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(workspace)
        .bind(workspace)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Oldest first, above `after` (exclusive), at most `limit`.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }
}

fn level_str(level: EventLevel) -> &'static str {
    match level {
        EventLevel::Info => "info",
        EventLevel::Warn => "warn",
        EventLevel::Error => "error",
    }
}

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

fn time(table: &'static str, s: &str) -> Result<Timestamp, StoreError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| corrupt(table, e))
}

fn workspace_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<WorkspaceRow, StoreError> {
    let status: String = r.try_get("status")?;
    let status = serde_json::from_value::<WorkspaceStatus>(serde_json::Value::String(status))
        .map_err(|e| corrupt("workspaces", e))?;
    Ok(WorkspaceRow {
        workspace: Workspace {
            id: r.try_get("id")?,
            node_id: String::new(),
            display_name: r.try_get("display_name")?,
            project_path: r.try_get("project_path")?,
            status,
            image: r.try_get("image")?,
            repository: r.try_get("repository")?,
            branch: r.try_get("branch")?,
            created_at: time("workspaces", &r.try_get::<String, _>("created_at")?)?,
            updated_at: time("workspaces", &r.try_get::<String, _>("updated_at")?)?,
            error: r.try_get("error")?,
        },
        slug: r.try_get("slug")?,
        runtime: r.try_get("runtime")?,
    })
}

fn session_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<AgentSession, StoreError> {
    let parse = |v: Option<String>| -> Result<Option<serde_json::Value>, StoreError> {
        Ok(v.map(serde_json::Value::String))
    };
    let status: String = r.try_get("status")?;
    let stop_reason = parse(r.try_get("stop_reason")?)?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| corrupt("sessions", e))?;
    let stopped_at: Option<String> = r.try_get("stopped_at")?;
    Ok(AgentSession {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        label: r.try_get("label")?,
        agent: r.try_get("agent")?,
        status: serde_json::from_value(serde_json::Value::String(status))
            .map_err(|e| corrupt("sessions", e))?,
        attached: false,
        watchers: 0,
        created_at: time("sessions", &r.try_get::<String, _>("created_at")?)?,
        stopped_at: stopped_at.map(|t| time("sessions", &t)).transpose()?,
        stop_reason,
        error: r.try_get("error")?,
        permission_pending: false,
    })
}

fn event_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<EventRow, StoreError> {
    let kind: String = r.try_get("type")?;
    let level: String = r.try_get("level")?;
    let detail: Option<String> = r.try_get("detail")?;
    Ok(EventRow {
        seq: r.try_get("seq")?,
        kind: serde_json::from_value(serde_json::Value::String(kind))
            .map_err(|e| corrupt("events", e))?,
        level: serde_json::from_value(serde_json::Value::String(level))
            .map_err(|e| corrupt("events", e))?,
        workspace_id: r.try_get("workspace_id")?,
        session_id: r.try_get("session_id")?,
        message: r.try_get("message")?,
        detail: detail
            .map(|d| serde_json::Value::from_str(&d))
            .transpose()
            .map_err(|e| corrupt("events", e))?,
        created_at: time("events", &r.try_get::<String, _>("created_at")?)?,
    })
}

impl EventRow {
    pub fn into_event(self, id: String, node_id: &str) -> Event {
        Event {
            id,
            kind: self.kind,
            level: self.level,
            node_id: node_id.to_string(),
            workspace_id: self.workspace_id,
            session_id: self.session_id,
            message: self.message,
            detail: self.detail,
            created_at: self.created_at,
        }
    }
}
