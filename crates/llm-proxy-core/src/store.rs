//! The storage contract. One trait, one implementation per database (in `llm-proxy-store`), and
//! one behavioural test suite that every implementation must pass.

use async_trait::async_trait;

use crate::UnixMillis;
use crate::audit::{AuditEntry, AuditQuery};
use crate::config::RouteConfig;
use crate::request_log::{LogPage, LogQuery, RequestLogEntry};
use crate::stored_response::StoredResponse;
use crate::upstream_object::{ObjectQuery, UpstreamObject};
use crate::user::{NewUser, Role, SessionRecord, UserRecord};
use crate::virtual_key::{KeyHash, KeyRecord, NewKey};

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
    pub updated_at: UnixMillis,
    /// Deleted routes are kept (soft delete) so that pollers see the removal; only
    /// [`Store::routes_updated_since`] returns them.
    pub deleted: bool,
}

/// What [`Store::usage_stats`] sums: the hourly usage aggregates whose hour starts in
/// `[from, to)`, optionally of one key, one row per group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsQuery {
    /// Inclusive; compared with the start of each hour (UTC), so an hour that starts before
    /// `from` is left out whole. Callers that want whole hours align it.
    pub from: UnixMillis,
    /// Exclusive, like `from`.
    pub to: UnixMillis,
    pub group_by: StatsGroup,
    pub key_id: Option<String>,
    /// Only the usage of keys of this user.
    pub user: Option<String>,
}

/// The dimension [`Store::usage_stats`] groups by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatsGroup {
    Key,
    User,
    /// The model as the client named it (an alias or route name included).
    Model,
    Provider,
    /// One row for the whole range.
    #[default]
    None,
}

impl StatsGroup {
    /// `key`, `user`, `model`, `provider`, or `none`: the API's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "key" => Self::Key,
            "user" => Self::User,
            "model" => Self::Model,
            "provider" => Self::Provider,
            "none" => Self::None,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::User => "user",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::None => "none",
        }
    }
}

/// Usage of one group over a time range.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StatsRow {
    /// The key id, user, model or provider; `None` for requests without one (no key, no user,
    /// no model resolved, no upstream called), and for the single row of [`StatsGroup::None`].
    pub group: Option<String>,
    pub requests: u64,
    /// Requests answered with a status of 400 or more, client disconnects (499) included.
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    /// Requests without a known price count as 0.
    pub cost_usd: f64,
}

impl StatsRow {
    /// Adds `other`'s counts to this row's, keeping this row's group.
    pub fn add(&mut self, other: &StatsRow) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cost_usd += other.cost_usd;
    }
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
    /// Keys whose `updated_at` is at or after `since`: what the in-memory key ring polls.
    async fn keys_updated_since(&self, since: UnixMillis) -> Result<Vec<KeyRecord>, StoreError>;
    /// The key whose secret hashes to `hash`, revoked or not (a key ring miss asks this).
    async fn key_by_hash(&self, _hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        Ok(None)
    }

    /// Inserts a batch in one transaction, and adds the rows it inserted to the hourly usage
    /// aggregates in that same transaction. Re-inserting a `request_id` already present is a
    /// no-op (for the aggregates too), so a batch retried after an ambiguous failure never
    /// duplicates rows or counts them twice.
    async fn insert_logs(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError>;
    /// A page of the log, newest first.
    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage, StoreError>;
    /// One request's log row, by its request id.
    async fn log_entry(&self, _request_id: &str) -> Result<Option<RequestLogEntry>, StoreError> {
        Ok(None)
    }
    /// Deletes the rows the query's filters select (cursor and limit aside); says how many went.
    async fn delete_logs(&self, _query: &LogQuery) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Deletes at most `limit` request-log rows created before `before`, oldest first, and
    /// says how many went (log retention; called repeatedly until it deletes fewer than `limit`,
    /// so no single statement holds the database for long). The hourly aggregates are kept.
    async fn delete_logs_before(&self, _before: UnixMillis, _limit: u32) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Usage per group over a time range, read from the hourly aggregates rather than the log:
    /// ordered by group (bytewise, `None` first). [`StatsGroup::None`] always gives one row,
    /// zeros included; otherwise groups without requests in the range are absent.
    ///
    /// The default describes a store that keeps no usage.
    async fn usage_stats(&self, _query: &StatsQuery) -> Result<Vec<StatsRow>, StoreError> {
        Ok(Vec::new())
    }

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
    /// Routes put or deleted at or after `since`, deleted ones included: what the server polls.
    async fn routes_updated_since(&self, _since: UnixMillis) -> Result<Vec<StoredRoute>, StoreError> {
        Ok(Vec::new())
    }

    // Stored Responses API answers (`crate::stored_response`). Both databases implement them; the
    // defaults describe a store that keeps none.

    /// Keeps a batch of answers in one transaction; putting an id again replaces it (a retried
    /// write).
    async fn put_responses(&self, _batch: &[StoredResponse]) -> Result<(), StoreError> {
        Err(StoreError::Other("this store does not keep responses".into()))
    }
    /// The answer `id` of `key_id` and the ones it continued, oldest first, at most `max`
    /// (the newest `max`); empty when `id` is not that key's, or has expired (`now`).
    async fn response_chain(
        &self,
        _id: &str,
        _key_id: &str,
        _now: UnixMillis,
        _max: u32,
    ) -> Result<Vec<StoredResponse>, StoreError> {
        Ok(Vec::new())
    }
    /// Deletes the answer `id` of `key_id`; `NotFound` when there is none.
    async fn delete_response(&self, _id: &str, _key_id: &str) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }
    /// Retention: deletes at most `limit` answers expired before `now`, and says how many went.
    async fn delete_expired_responses(&self, _now: UnixMillis, _limit: u32) -> Result<u64, StoreError> {
        Ok(0)
    }

    // Files and batches made through the gateway (`crate::upstream_object`). Both databases
    // implement them; the defaults describe a store that keeps none.

    /// Records `object`; recording an id again updates its `object` (and a missing purpose) if
    /// the same key owns it, and changes nothing otherwise.
    async fn put_upstream_object(&self, _object: &UpstreamObject) -> Result<(), StoreError> {
        Err(StoreError::Other("this store does not keep files or batches".into()))
    }
    /// The object `id` if `key_id` owns it.
    async fn upstream_object(&self, _id: &str, _key_id: &str) -> Result<Option<UpstreamObject>, StoreError> {
        Ok(None)
    }
    /// A page of a key's objects of one kind, in the query's order.
    async fn list_upstream_objects(&self, _query: &ObjectQuery) -> Result<Vec<UpstreamObject>, StoreError> {
        Ok(Vec::new())
    }
    /// Forgets the object `id` of `key_id`; `NotFound` when there is none.
    async fn delete_upstream_object(&self, _id: &str, _key_id: &str) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }

    // Users and sessions (`crate::user`). Both databases implement them; the defaults describe a
    // store that has none.

    /// Adds a user; `Conflict` when the username is taken.
    async fn insert_user(&self, _user: &NewUser, _now: UnixMillis) -> Result<UserRecord, StoreError> {
        Err(StoreError::Other("this store does not keep users".into()))
    }
    async fn user_by_name(&self, _username: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(None)
    }
    async fn user_by_id(&self, _id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(None)
    }
    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        Ok(Vec::new())
    }
    /// Replaces a user's password hash and voids its sessions made before `now`; `NotFound` when
    /// there is no such user.
    async fn set_user_password(&self, _id: &str, _hash: &str, _now: UnixMillis) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }
    /// A setting stored in the database, with when it was last put.
    async fn setting(&self, _name: &str) -> Result<Option<(String, UnixMillis)>, StoreError> {
        Ok(None)
    }
    /// Stores a setting (replacing it).
    async fn put_setting(&self, _name: &str, _value: &str, _now: UnixMillis) -> Result<(), StoreError> {
        Err(StoreError::Other("this store keeps no settings".into()))
    }
    /// Appends to the audit log (there is no way to change or remove an entry).
    async fn insert_audit(&self, _entry: &AuditEntry) -> Result<(), StoreError> {
        Err(StoreError::Other("this store keeps no audit log".into()))
    }
    /// A page of the audit log, newest first.
    async fn list_audit(&self, _query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(Vec::new())
    }
    /// Changes a user's role; `NotFound` when there is no such user.
    async fn set_user_role(&self, _id: &str, _role: Role, _now: UnixMillis) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }
    /// Deletes a user and its sessions; `NotFound` when there is no such user.
    async fn delete_user(&self, _id: &str) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }
    async fn insert_session(&self, _session: &SessionRecord) -> Result<(), StoreError> {
        Err(StoreError::Other("this store does not keep sessions".into()))
    }
    async fn session(&self, _id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(None)
    }
    /// Revokes a session (logout); revoking it again changes nothing.
    async fn revoke_session(&self, _id: &str, _now: UnixMillis) -> Result<(), StoreError> {
        Ok(())
    }
    /// Deletes at most `limit` sessions expired before `now`, and says how many went.
    async fn delete_expired_sessions(&self, _now: UnixMillis, _limit: u32) -> Result<u64, StoreError> {
        Ok(0)
    }
}
