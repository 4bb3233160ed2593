//! The storage contract. One trait, one implementation per database (in `llm-proxy-store`), and
//! one behavioural test suite that every implementation must pass.

use async_trait::async_trait;

use crate::request_log::{LogPage, LogQuery, RequestLogEntry};
use crate::virtual_key::{KeyRecord, NewKey};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the operation; worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (e.g. two keys with one name).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Other(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations; safe to call from several instances at once.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Readiness: the database answers and every migration this build knows is applied.
    async fn ready(&self) -> Result<(), StoreError>;

    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError>;
    /// All keys, newest first, revoked ones included.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Marks a key revoked; `NotFound` if no such id, `Ok` (no change) if already revoked.
    async fn revoke_key(&self, id: &str) -> Result<KeyRecord, StoreError>;
    /// Keys whose `updated_at` is at or after `since_ms`: what the in-memory key ring polls.
    async fn keys_updated_since(&self, since_ms: i64) -> Result<Vec<KeyRecord>, StoreError>;

    /// Inserts a batch in one transaction. Re-inserting a `request_id` already present is a no-op,
    /// so a batch retried after an ambiguous failure never duplicates rows.
    async fn insert_logs(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError>;
    /// A page of the log, newest first.
    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage, StoreError>;
}
