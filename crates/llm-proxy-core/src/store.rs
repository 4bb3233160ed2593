//! The storage contract. One trait, one implementation per database (in `llm-proxy-store`), and
//! one behavioural test suite that every implementation must pass.

use async_trait::async_trait;

use crate::config::RouteConfig;
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

/// A route stored in the database (the admin API edits these; the config file's routes win on a
/// name clash).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRoute {
    pub config: RouteConfig,
    /// When the route was last put or deleted, in the clock that stamps key changes: what
    /// [`Store::routes_updated_since`] compares.
    pub updated_at: i64,
    /// Deleted routes are kept (soft delete) so that pollers see the removal; only
    /// [`Store::routes_updated_since`] returns them.
    pub deleted: bool,
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

    // Routes. Both databases implement all four; the defaults describe a store that keeps no
    // routes, so a test double that is about something else need not spell them out.

    /// Inserts or replaces the route named `config.name`, bringing it back if it was deleted.
    async fn put_route(&self, _config: &RouteConfig) -> Result<StoredRoute, StoreError> {
        Err(StoreError::Other("this store does not keep routes".into()))
    }
    /// Marks a route deleted; `NotFound` if there is no such route or it is already deleted.
    async fn delete_route(&self, _name: &str) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }
    /// Live (not deleted) routes, by name.
    async fn list_routes(&self) -> Result<Vec<StoredRoute>, StoreError> {
        Ok(Vec::new())
    }
    /// Routes put or deleted at or after `since_ms`, deleted ones included: what the server polls.
    async fn routes_updated_since(&self, _since_ms: i64) -> Result<Vec<StoredRoute>, StoreError> {
        Ok(Vec::new())
    }
}
