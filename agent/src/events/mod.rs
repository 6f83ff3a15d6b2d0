//! The node's event log: persisted in the store, paged newest first, streamed live.
//!
//! Event ids are `<seq as 16 hex digits>-<epoch>`: they sort in creation order, and
//! the epoch (made once per data dir) tells this node's ids from any other's.

pub mod stream;

use std::sync::Arc;

use sam_protocol::{Event, EventLevel, EventPage, EventType};
use serde_json::Value;
use tokio::sync::{Mutex, broadcast};

use crate::error::ApiError;
use crate::store::{EventRow, Store, StoreError};

/// Events kept in the data dir: pruning leaves this many, and runs every
/// `PRUNE_EVERY` inserts, so at least this many always remain.
const KEEP_EVENTS: i64 = 10_000;
const PRUNE_EVERY: i64 = 500;
pub const PAGE_MAX: i64 = 500;
pub const PAGE_DEFAULT: i64 = 50;

#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    node_id: String,
    epoch: String,
    live: broadcast::Sender<Event>,
    /// Serialises insert + broadcast so live events leave in `seq` order.
    write: Mutex<()>,
}

/// What one new event says; `record` adds id, node and time.
pub struct NewEvent {
    pub kind: EventType,
    pub level: EventLevel,
    pub workspace_id: Option<String>,
    pub session_id: Option<String>,
    pub message: String,
    pub detail: Option<Value>,
}

impl NewEvent {
    pub fn info(kind: EventType, message: impl Into<String>) -> Self {
        Self {
            kind,
            level: EventLevel::Info,
            workspace_id: None,
            session_id: None,
            message: message.into(),
            detail: None,
        }
    }

    pub fn level(mut self, level: EventLevel) -> Self {
        self.level = level;
        self
    }

    pub fn workspace(mut self, id: &str) -> Self {
        self.workspace_id = Some(id.to_string());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Where a `since` id leads: the events after it, or a reset.
pub enum Since {
    After(i64),
    Unknown,
}

impl EventLog {
    pub async fn open(store: Store, node_id: String) -> Result<Self, StoreError> {
        let epoch = match store.meta("epoch").await? {
            Some(e) => e,
            None => {
                let e = format!("{:08x}", rand::random::<u32>());
                store.set_meta("epoch", &e).await?;
                e
            }
        };
        let (live, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                node_id,
                epoch,
                live,
                write: Mutex::new(()),
            }),
        })
    }

    fn id(&self, seq: i64) -> String {
        format!("{seq:016x}-{}", self.inner.epoch)
    }

    /// Parses one of our ids back to its `seq`; `None` for anything else.
    pub fn seq_of(&self, id: &str) -> Option<i64> {
        let (seq, epoch) = id.split_once('-')?;
        if epoch != self.inner.epoch || seq.len() != 16 {
            return None;
        }
        i64::from_str_radix(seq, 16).ok()
    }

    fn to_event(&self, row: EventRow) -> Event {
        let id = self.id(row.seq);
        row.into_event(id, &self.inner.node_id)
    }

    /// Records an event; failures to persist are logged, never fatal to the caller.
    pub async fn record(&self, new: NewEvent) -> Option<Event> {
        let row = EventRow {
            seq: 0,
            kind: new.kind,
            level: new.level,
            workspace_id: new.workspace_id,
            session_id: new.session_id,
            message: new.message,
            detail: new.detail,
            created_at: crate::now(),
        };
        let _guard = self.inner.write.lock().await;
        match self.inner.store.insert_event(&row).await {
            Ok(seq) => {
                if seq % PRUNE_EVERY == 0
                    && let Err(e) = self.inner.store.prune_events(KEEP_EVENTS).await
                {
                    tracing::warn!(error = %e, "pruning events failed");
                }
                let event = self.to_event(EventRow { seq, ..row });
                tracing::info!(kind = event.kind.as_str(), workspace = ?event.workspace_id, "{}", event.message);
                let _ = self.inner.live.send(event.clone());
                Some(event)
            }
            Err(e) => {
                tracing::error!(error = %e, message = %row.message, "recording an event failed");
                None
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.live.subscribe()
    }

    /// One page, newest first.
    pub async fn page(
        &self,
        workspace: Option<&str>,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<EventPage, ApiError> {
        let limit = limit.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {PAGE_MAX}"
            )));
        }
        let before = match cursor.filter(|c| !c.is_empty()) {
            Some(c) => Some(
                self.seq_of(c)
                    .ok_or_else(|| ApiError::bad_request("cursor is not one this node gave out"))?,
            ),
            None => None,
        };
        let mut rows = self
            .inner
            .store
            .events_before(workspace, before, limit + 1)
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let events: Vec<Event> = rows.into_iter().map(|r| self.to_event(r)).collect();
        let next_cursor = if more {
            events.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    /// Where replay after `since` starts.
    pub async fn resolve_since(&self, since: &str) -> Result<Since, StoreError> {
        match self.seq_of(since) {
            Some(seq) if self.inner.store.event_exists(seq).await? => Ok(Since::After(seq)),
            _ => Ok(Since::Unknown),
        }
    }

    /// The newest event's seq (0 when there is none).
    pub async fn head(&self) -> Result<i64, StoreError> {
        self.inner.store.head_event().await
    }

    /// Up to `limit` events after `seq`, oldest first, with their seqs.
    pub async fn after(&self, seq: i64, limit: i64) -> Result<Vec<(i64, Event)>, StoreError> {
        Ok(self
            .inner
            .store
            .events_after(seq, limit)
            .await?
            .into_iter()
            .map(|r| (r.seq, self.to_event(r)))
            .collect())
    }
}
