//! The control plane's SQLite file: nodes, what was last seen of their workspaces
//! and sessions, events, settings.
//!
//! Invariant: the only module that speaks SQL, and it never holds a secret (tokens,
//! keys and credentials live in `secrets`). WAL, and every change one statement or
//! one transaction, so a crash leaves the old row or the new one.

use std::path::Path;

use sam_protocol::{Event, EventLevel, EventType, Timestamp};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::error::{Error, Result};
use crate::nodes::{NodeRecord, NodeStatus, Provider};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    address TEXT NOT NULL,
    cert_fingerprint TEXT,
    provider_ids TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    health TEXT,
    last_seen_at TEXT,
    agent_version TEXT,
    last_event_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX workspaces_by_node ON workspaces (node_id);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    body TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT,
    agent_event_id TEXT,
    type TEXT NOT NULL,
    level TEXT NOT NULL,
    workspace_id TEXT,
    session_id TEXT,
    message TEXT NOT NULL,
    detail TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (node_id, agent_event_id)
);
CREATE INDEX events_by_node ON events (node_id, seq);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
    // The agent's build (its `build` in `GET /node`), beside its version.
    r#"
ALTER TABLE nodes ADD COLUMN agent_build TEXT;
"#,
];

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn ts(s: &str) -> Result<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| Error::internal(format!("A stored time is not valid: {e}")))
}

fn enum_from<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|e| Error::internal(format!("A stored value is not valid: {e}")))
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Store {
    pub async fn open(dir: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("sam.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
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

    // ---- settings ----

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn settings(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT key, value FROM settings ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    // ---- nodes ----

    pub async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query("SELECT * FROM nodes ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(node_from_row).collect()
    }

    pub async fn node(&self, id: &str) -> Result<Option<NodeRecord>> {
        let row = sqlx::query("SELECT * FROM nodes WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node_from_row).transpose()
    }

    /// Inserts a new node; a taken name is a conflict.
    pub async fn insert_node(&self, n: &NodeRecord) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO nodes (id, name, provider, address, cert_fingerprint, provider_ids, status, health, last_seen_at, agent_version, agent_build, last_event_id, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&n.id)
        .bind(&n.name)
        .bind(enum_str(&n.provider))
        .bind(&n.address)
        .bind(&n.cert_fingerprint)
        .bind(n.provider_ids.to_string())
        .bind(enum_str(&n.status))
        .bind(n.health.as_ref().map(enum_str))
        .bind(n.last_seen_at.map(|t| t.to_rfc3339()))
        .bind(&n.agent_version)
        .bind(&n.agent_build)
        .bind(&n.last_event_id)
        .bind(n.created_at.to_rfc3339())
        .bind(crate::now().to_rfc3339())
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Error::new(
                crate::error::code::CONFLICT,
                format!("A node named {:?} already exists.", n.name),
            )
            .hint("Pick another name with --name.")),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub async fn update_node(&self, n: &NodeRecord) -> Result<()> {
        sqlx::query(
            "UPDATE nodes SET name = ?, address = ?, cert_fingerprint = ?, provider_ids = ?, status = ?, health = ?,
               last_seen_at = ?, agent_version = ?, agent_build = ?, last_event_id = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&n.name)
        .bind(&n.address)
        .bind(&n.cert_fingerprint)
        .bind(n.provider_ids.to_string())
        .bind(enum_str(&n.status))
        .bind(n.health.as_ref().map(enum_str))
        .bind(n.last_seen_at.map(|t| t.to_rfc3339()))
        .bind(&n.agent_version)
        .bind(&n.agent_build)
        .bind(&n.last_event_id)
        .bind(crate::now().to_rfc3339())
        .bind(&n.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_node(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM workspaces WHERE node_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE node_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM nodes WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- what was last seen of a node's workspaces ----

    /// Replaces the cached workspaces of a node with what it just answered.
    pub async fn cache_workspaces(
        &self,
        node: &str,
        workspaces: &[sam_protocol::Workspace],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM workspaces WHERE node_id = ?")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        let now = crate::now().to_rfc3339();
        for w in workspaces {
            sqlx::query("INSERT OR REPLACE INTO workspaces (id, node_id, body, seen_at) VALUES (?, ?, ?, ?)")
                .bind(&w.id)
                .bind(node)
                .bind(serde_json::to_string(w).unwrap_or_default())
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn cached_workspaces(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<(String, sam_protocol::Workspace)>> {
        let rows = sqlx::query("SELECT node_id, body FROM workspaces WHERE (? IS NULL OR node_id = ?) ORDER BY seen_at")
            .bind(node)
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .filter_map(|r| {
                let node: String = r.try_get("node_id").ok()?;
                let body: String = r.try_get("body").ok()?;
                Some(
                    serde_json::from_str(&body)
                        .map(|w| (node, w))
                        .map_err(Error::internal),
                )
            })
            .collect()
    }

    // ---- events ----

    /// Records an event (an agent's, deduplicated by its id, or the desktop's own).
    pub async fn insert_event(
        &self,
        node: Option<&str>,
        e: &Event,
        from_agent: bool,
    ) -> Result<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO events (node_id, agent_event_id, type, level, workspace_id, session_id, message, detail, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(node)
        .bind(from_agent.then_some(&e.id))
        .bind(e.kind.as_str())
        .bind(enum_str(&e.level))
        .bind(&e.workspace_id)
        .bind(&e.session_id)
        .bind(&e.message)
        .bind(e.detail.as_ref().map(|d| d.to_string()))
        .bind(e.created_at.to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Events newest first: of a node, of a workspace, or all.
    pub async fn events(
        &self,
        node: Option<&str>,
        workspace: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE (? IS NULL OR node_id = ?) AND (? IS NULL OR workspace_id = ?)
             ORDER BY created_at DESC, seq DESC LIMIT ?",
        )
        .bind(node)
        .bind(node)
        .bind(workspace)
        .bind(workspace)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}

fn node_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<NodeRecord> {
    let provider: String = r.try_get("provider")?;
    let status: String = r.try_get("status")?;
    let health: Option<String> = r.try_get("health")?;
    let last_seen: Option<String> = r.try_get("last_seen_at")?;
    let ids: String = r.try_get("provider_ids")?;
    Ok(NodeRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        provider: enum_from::<Provider>(&provider)?,
        address: r.try_get("address")?,
        cert_fingerprint: r.try_get("cert_fingerprint")?,
        provider_ids: serde_json::from_str(&ids).unwrap_or(Value::Null),
        status: enum_from::<NodeStatus>(&status)?,
        health: health.map(|h| enum_from(&h)).transpose()?,
        last_seen_at: last_seen.map(|t| ts(&t)).transpose()?,
        agent_version: r.try_get("agent_version")?,
        agent_build: r.try_get("agent_build")?,
        last_event_id: r.try_get("last_event_id")?,
        created_at: ts(&r.try_get::<String, _>("created_at")?)?,
    })
}

fn event_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Event> {
    let kind: String = r.try_get("type")?;
    let level: String = r.try_get("level")?;
    let detail: Option<String> = r.try_get("detail")?;
    let seq: i64 = r.try_get("seq")?;
    let agent_id: Option<String> = r.try_get("agent_event_id")?;
    Ok(Event {
        id: agent_id.unwrap_or_else(|| format!("desktop-{seq:016x}")),
        kind: enum_from::<EventType>(&kind)?,
        level: enum_from::<EventLevel>(&level)?,
        node_id: r
            .try_get::<Option<String>, _>("node_id")?
            .unwrap_or_default(),
        workspace_id: r.try_get("workspace_id")?,
        session_id: r.try_get("session_id")?,
        message: r.try_get("message")?,
        detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: ts(&r.try_get::<String, _>("created_at")?)?,
    })
}
