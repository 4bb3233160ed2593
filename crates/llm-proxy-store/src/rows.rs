//! What both backends share: the rows as the databases hold them, their mapping to core's
//! records, and the queries whose text depends only on the placeholder style.
//!
//! The SQL is written once and generic over `sqlx::Database`, so SQLite and PostgreSQL cannot
//! drift apart; the backends add only their connection handling and migrations.

use llm_proxy_core::config::RouteConfig;
use llm_proxy_core::request_log::{AttemptRecord, LogCursor, LogPage, LogQuery, RequestLogEntry};
use llm_proxy_core::store::{StoreError, StoredRoute};
use llm_proxy_core::virtual_key::{KeyRecord, NewKey};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// Page size when the caller asks for 0.
const DEFAULT_PAGE: u32 = 100;
/// Largest page one call returns.
const MAX_PAGE: u32 = 1000;

/// Columns per `request_logs` row; with [`LOG_ROWS_PER_INSERT`] it bounds the bind parameters of
/// one statement.
const LOG_COLUMNS: usize = 17;
/// Rows per multi-row `INSERT`. 17 × 500 = 8,500 parameters: under SQLite's limit (32,766 since
/// 3.32) and PostgreSQL's (65,535), with room to add columns.
pub(crate) const LOG_ROWS_PER_INSERT: usize = 500;
const _: () = assert!(LOG_COLUMNS * LOG_ROWS_PER_INSERT <= 32_766);

macro_rules! key_columns {
    () => {
        "id, name, key_hash, display, models, user_name, created_at, updated_at, expires_at, \
         revoked_at"
    };
}

macro_rules! log_columns {
    () => {
        "request_id, created_at, key_id, endpoint, model, provider, upstream_model, stream, \
         status, latency_ms, ttft_ms, prompt_tokens, completion_tokens, cost_usd, error_kind, \
         error_message, attempts"
    };
}

macro_rules! route_columns {
    () => {
        "name, config, updated_at, deleted_at"
    };
}

pub(crate) const INSERT_KEY: &str =
    concat!("INSERT INTO api_keys (", key_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, NULL)");

/// Newest first; `id` breaks ties so the order is total.
pub(crate) const LIST_KEYS: &str =
    concat!("SELECT ", key_columns!(), " FROM api_keys ORDER BY created_at DESC, id DESC");

pub(crate) const KEYS_UPDATED_SINCE: &str =
    concat!("SELECT ", key_columns!(), " FROM api_keys WHERE updated_at >= $1 ORDER BY updated_at, id");

/// One statement, so a concurrent revoke cannot interleave: the first `revoked_at` wins and a
/// repeated revoke changes nothing, not even `updated_at` (the key ring has nothing new to see).
pub(crate) const REVOKE_KEY: &str = concat!(
    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1), ",
    "updated_at = CASE WHEN revoked_at IS NULL THEN $1 ELSE updated_at END ",
    "WHERE id = $2 RETURNING ",
    key_columns!()
);

/// Insert or replace by name. A replaced route comes back to life; one that was deleted counts as
/// created anew.
pub(crate) const PUT_ROUTE: &str = concat!(
    "INSERT INTO routes (name, config, created_at, updated_at, deleted_at) VALUES ($1, $2, $3, $3, NULL) ",
    "ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at, ",
    "created_at = CASE WHEN routes.deleted_at IS NULL THEN routes.created_at ELSE excluded.created_at END, ",
    "deleted_at = NULL"
);

/// Deleting a deleted route changes nothing (and is `NotFound` to the caller).
pub(crate) const DELETE_ROUTE: &str =
    "UPDATE routes SET deleted_at = $1, updated_at = $1 WHERE name = $2 AND deleted_at IS NULL";

pub(crate) const LIST_ROUTES: &str =
    concat!("SELECT ", route_columns!(), " FROM routes WHERE deleted_at IS NULL ORDER BY name");

pub(crate) const ROUTES_UPDATED_SINCE: &str =
    concat!("SELECT ", route_columns!(), " FROM routes WHERE updated_at >= $1 ORDER BY updated_at, name");

/// The migrations table sqlx keeps; `success` is false only for a migration that failed half-way
/// outside a transaction.
pub(crate) const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    name: String,
    key_hash: Vec<u8>,
    display: String,
    models: String,
    user_name: Option<String>,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let hash = row.key_hash.try_into().map_err(|_| corrupt("api_keys.key_hash is not 32 bytes"))?;
        let models =
            serde_json::from_str(&row.models).map_err(|_| corrupt("api_keys.models is not a JSON array of strings"))?;
        Ok(KeyRecord {
            id: row.id,
            name: row.name,
            hash,
            display: row.display,
            models,
            user: row.user_name,
            created_at: row.created_at,
            updated_at: row.updated_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            // Persisted by migration 0003 (limits column); until then keys have none of their own.
            limits: Default::default(),
        })
    }
}

pub(crate) fn keys_from_rows(rows: Vec<KeyRow>) -> Result<Vec<KeyRecord>, StoreError> {
    rows.into_iter().map(KeyRecord::try_from).collect()
}

/// `models` as stored.
pub(crate) fn models_json(key: &NewKey) -> Result<String, StoreError> {
    serde_json::to_string(&key.models).map_err(|e| StoreError::Other(e.to_string()))
}

/// The record `insert_key` wrote, without reading it back.
pub(crate) fn inserted_key(key: &NewKey, now: i64) -> KeyRecord {
    KeyRecord {
        limits: key.limits.clone(),
        id: key.id.clone(),
        name: key.name.clone(),
        hash: key.hash,
        display: key.display.clone(),
        models: key.models.clone(),
        user: key.user.clone(),
        created_at: now,
        updated_at: now,
        expires_at: key.expires_at,
        revoked_at: None,
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LogRow {
    request_id: String,
    created_at: i64,
    key_id: Option<String>,
    endpoint: String,
    model: Option<String>,
    provider: Option<String>,
    upstream_model: Option<String>,
    stream: bool,
    status: i32,
    latency_ms: i64,
    ttft_ms: Option<i64>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    cost_usd: Option<f64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    attempts: Option<String>,
}

impl TryFrom<LogRow> for RequestLogEntry {
    type Error = StoreError;

    fn try_from(row: LogRow) -> Result<Self, StoreError> {
        let count =
            |v: Option<i64>, column: &'static str| v.map(|v| u64::try_from(v).map_err(|_| corrupt(column))).transpose();
        Ok(RequestLogEntry {
            request_id: row.request_id,
            created_at: row.created_at,
            key_id: row.key_id,
            endpoint: row.endpoint,
            model: row.model,
            provider: row.provider,
            upstream_model: row.upstream_model,
            stream: row.stream,
            status: u16::try_from(row.status).map_err(|_| corrupt("request_logs.status out of range"))?,
            latency_ms: u64::try_from(row.latency_ms).map_err(|_| corrupt("request_logs.latency_ms is negative"))?,
            ttft_ms: count(row.ttft_ms, "request_logs.ttft_ms is negative")?,
            prompt_tokens: count(row.prompt_tokens, "request_logs.prompt_tokens is negative")?,
            completion_tokens: count(row.completion_tokens, "request_logs.completion_tokens is negative")?,
            cost_usd: row.cost_usd,
            error_kind: row.error_kind,
            error_message: row.error_message,
            attempts: attempts_from_column(row.attempts.as_deref()),
        })
    }
}

/// `attempts` as stored: `None` (SQL NULL) when there are none.
fn attempts_column(attempts: &[AttemptRecord]) -> Option<String> {
    if attempts.is_empty() {
        return None;
    }
    // Serializing plain strings and integers cannot fail; were it to, the row is still worth
    // more without its attempts than not written at all.
    serde_json::to_string(attempts).ok()
}

/// The attempts of a stored row. They are detail for operators, so text this build cannot read
/// (written by a newer one, or damaged) reads as none rather than failing the whole page.
fn attempts_from_column(column: Option<&str>) -> Vec<AttemptRecord> {
    match column {
        None | Some("") => Vec::new(),
        Some(text) => serde_json::from_str(text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "request_logs.attempts is not a JSON array of attempts; read as none");
            Vec::new()
        }),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RouteRow {
    name: String,
    config: String,
    updated_at: i64,
    deleted_at: Option<i64>,
}

/// `config` as stored.
pub(crate) fn route_json(config: &RouteConfig) -> Result<String, StoreError> {
    serde_json::to_string(config).map_err(|e| StoreError::Other(format!("cannot serialize route: {e}")))
}

/// The record `put_route` wrote, without reading it back.
pub(crate) fn put_route_record(config: &RouteConfig, now: i64) -> StoredRoute {
    StoredRoute { config: config.clone(), updated_at: now, deleted: false }
}

/// Stored routes whose config this build can read. A row it cannot (written by a newer build
/// with a field this one does not know, or damaged) is left out with a warning rather than
/// failing the whole list: one bad route must not keep every other route from loading.
pub(crate) fn routes_from_rows(rows: Vec<RouteRow>) -> Vec<StoredRoute> {
    rows.into_iter()
        .filter_map(|row| match serde_json::from_str::<RouteConfig>(&row.config) {
            Ok(mut config) => {
                // The key is the row's name; the JSON's copy cannot disagree with it.
                config.name = row.name;
                Some(StoredRoute { config, updated_at: row.updated_at, deleted: row.deleted_at.is_some() })
            }
            Err(e) => {
                tracing::warn!(route = %row.name, error = %e, "routes.config is not a route this build can read; skipped");
                None
            }
        })
        .collect()
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("corrupt row: {what}"))
}

/// Both databases store signed 64-bit integers; a count beyond `i64::MAX` is not a real count,
/// so it saturates rather than failing the whole batch.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The limit actually used: 0 means the default, anything else is kept within 1..=1000.
pub(crate) fn page_limit(requested: u32) -> u32 {
    if requested == 0 { DEFAULT_PAGE } else { requested.min(MAX_PAGE) }
}

/// One multi-row `INSERT` for up to [`LOG_ROWS_PER_INSERT`] entries. Rows whose `request_id` is
/// already stored are skipped, which is what makes a retried batch harmless.
pub(crate) fn insert_logs_query<'a, DB>(entries: &'a [RequestLogEntry]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    i32: Encode<'a, DB> + Type<DB>,
    bool: Encode<'a, DB> + Type<DB>,
    Option<f64>: Encode<'a, DB> + Type<DB>,
    Option<String>: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(concat!("INSERT INTO request_logs (", log_columns!(), ") "));
    qb.push_values(entries, |mut row, e| {
        row.push_bind(e.request_id.as_str())
            .push_bind(e.created_at)
            .push_bind(e.key_id.as_deref())
            .push_bind(e.endpoint.as_str())
            .push_bind(e.model.as_deref())
            .push_bind(e.provider.as_deref())
            .push_bind(e.upstream_model.as_deref())
            .push_bind(e.stream)
            .push_bind(i32::from(e.status))
            .push_bind(to_i64(e.latency_ms))
            .push_bind(e.ttft_ms.map(to_i64))
            .push_bind(e.prompt_tokens.map(to_i64))
            .push_bind(e.completion_tokens.map(to_i64))
            .push_bind(e.cost_usd)
            .push_bind(e.error_kind.as_deref())
            .push_bind(e.error_message.as_deref())
            .push_bind(attempts_column(&e.attempts));
    });
    qb.push(" ON CONFLICT (request_id) DO NOTHING");
    qb
}

/// A page in `(created_at DESC, request_id DESC)` order, strictly after the cursor. The row-value
/// comparison matches the index order, so the database seeks instead of skipping rows.
pub(crate) fn list_logs_query<'a, DB>(query: &'a LogQuery, limit: u32) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(concat!("SELECT ", log_columns!(), " FROM request_logs WHERE 1 = 1"));
    if let Some(key_id) = &query.key_id {
        qb.push(" AND key_id = ").push_bind(key_id.as_str());
    }
    if let Some(cursor) = &query.cursor {
        qb.push(" AND (created_at, request_id) < (")
            .push_bind(cursor.created_at)
            .push(", ")
            .push_bind(cursor.request_id.as_str())
            .push(")");
    }
    qb.push(" ORDER BY created_at DESC, request_id DESC LIMIT ").push_bind(i64::from(limit));
    qb
}

pub(crate) fn log_page(rows: Vec<LogRow>, limit: u32) -> Result<LogPage, StoreError> {
    let entries = rows.into_iter().map(RequestLogEntry::try_from).collect::<Result<Vec<_>, _>>()?;
    // A full page may have more behind it; a short one is the end.
    let next = if entries.len() == limit as usize {
        entries.last().map(|e| LogCursor { created_at: e.created_at, request_id: e.request_id.clone() })
    } else {
        None
    };
    Ok(LogPage { entries, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limit_is_clamped() {
        assert_eq!(page_limit(0), 100);
        assert_eq!(page_limit(1), 1);
        assert_eq!(page_limit(1000), 1000);
        assert_eq!(page_limit(5000), 1000);
    }

    #[test]
    fn attempts_are_stored_as_json_and_unreadable_ones_read_as_none() {
        assert_eq!(attempts_column(&[]), None);
        let attempts = vec![
            AttemptRecord {
                provider: "a".into(),
                model: "m".into(),
                status: 503,
                latency_ms: 7,
                error_kind: Some("upstream_status".into()),
            },
            AttemptRecord { provider: "b".into(), model: "n".into(), status: 200, latency_ms: 9, error_kind: None },
        ];
        let text = attempts_column(&attempts).unwrap();
        assert_eq!(attempts_from_column(Some(&text)), attempts);
        for unreadable in [Some(""), Some("not json"), Some("{\"provider\":\"a\"}"), Some("[{\"x\":1}]"), None] {
            assert_eq!(attempts_from_column(unreadable), Vec::new(), "{unreadable:?}");
        }
    }

    #[test]
    fn unreadable_routes_are_skipped_and_names_come_from_the_row() {
        let row = |name: &str, config: &str| RouteRow {
            name: name.into(),
            config: config.into(),
            updated_at: 5,
            deleted_at: None,
        };
        let good = r#"{"name":"other","targets":[{"model":"oai/gpt"}]}"#;
        let routes = routes_from_rows(vec![
            row("smart", good),
            row("bad", "{"),
            row("new", r#"{"name":"new","targets":[],"later":1}"#),
        ]);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].config.name, "smart");
        assert_eq!(routes[0].config.targets[0].model, "oai/gpt");
        assert!(!routes[0].deleted);
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_i64(7), 7);
    }
}
