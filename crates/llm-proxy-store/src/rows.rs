//! What both backends share: the rows as the databases hold them, their mapping to core's
//! records, and the queries whose text depends only on the placeholder style.
//!
//! The SQL is written once and generic over `sqlx::Database`, so SQLite and PostgreSQL cannot
//! drift apart; the backends add only their connection handling and migrations.

use std::collections::{BTreeMap, HashSet};

use llm_proxy_core::UnixMillis;
use llm_proxy_core::config::RouteConfig;
use llm_proxy_core::request_log::{AttemptRecord, ErrorKind, LogCursor, LogPage, LogQuery, RequestLogEntry};
use llm_proxy_core::store::{StatsGroup, StatsQuery, StatsRow, StoreError, StoredRoute};
use llm_proxy_core::stored_response::StoredResponse;
use llm_proxy_core::virtual_key::{KeyLimits, KeyRecord, NewKey};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// Page size when the caller asks for 0.
const DEFAULT_PAGE: u32 = 100;
/// Largest page one call returns.
const MAX_PAGE: u32 = 1000;

/// Columns per `request_logs` row; with [`LOG_ROWS_PER_INSERT`] it bounds the bind parameters of
/// one statement.
const LOG_COLUMNS: usize = 22;
/// Most rows per multi-row `INSERT` (a power of two: see [`statement_chunks`]). 22 × 64 = 1,408
/// parameters, far under SQLite's limit (32,766 since 3.32) and PostgreSQL's (65,535).
pub(crate) const LOG_ROWS_PER_INSERT: usize = 64;
const _: () = assert!(LOG_ROWS_PER_INSERT.is_power_of_two() && LOG_COLUMNS * LOG_ROWS_PER_INSERT <= 32_766);

/// Columns per `usage_hourly` row, and most rows per upsert (a power of two, as above).
const USAGE_COLUMNS: usize = 11;
pub(crate) const USAGE_ROWS_PER_UPSERT: usize = 64;
const _: () = assert!(USAGE_ROWS_PER_UPSERT.is_power_of_two() && USAGE_COLUMNS * USAGE_ROWS_PER_UPSERT <= 32_766);

/// Splits `rows` into chunks whose lengths are powers of two of at most `max` (a power of two),
/// largest first. A multi-row statement's text depends on its row count, so this keeps the
/// statements a batch of any size needs to a few shapes (7 for 64): each is parsed once per
/// connection and then reused from the statement cache. Parsing a fresh statement for every batch
/// cost more than executing it (SQLite's parser is linear in the rows).
pub(crate) fn statement_chunks<T>(mut rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let len = if rows.len() >= max { max } else { 1 << rows.len().ilog2() };
        let (chunk, rest) = rows.split_at(len);
        rows = rest;
        Some(chunk)
    })
}

/// The width of a `usage_hourly` bucket.
const HOUR_MS: i64 = 3_600_000;

macro_rules! key_columns {
    () => {
        "id, name, key_hash, display, models, user_name, created_at, updated_at, expires_at, \
         revoked_at, limits"
    };
}

macro_rules! log_columns {
    () => {
        "request_id, created_at, key_id, endpoint, model, provider, upstream_model, stream, \
         status, latency_ms, ttft_ms, prompt_tokens, completion_tokens, cost_usd, error_kind, \
         error_message, attempts, cached_tokens, cache_write_tokens, reasoning_tokens, \
         cost_estimated, user_name"
    };
}

macro_rules! route_columns {
    () => {
        "name, config, updated_at, deleted_at"
    };
}

pub(crate) const INSERT_KEY: &str =
    concat!("INSERT INTO api_keys (", key_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, NULL, $9)");

/// Newest first; `id` breaks ties so the order is total.
pub(crate) const LIST_KEYS: &str =
    concat!("SELECT ", key_columns!(), " FROM api_keys ORDER BY created_at DESC, id DESC");

pub(crate) const GET_SETTING: &str = "SELECT value, updated_at FROM settings WHERE name = $1";
pub(crate) const PUT_SETTING: &str = "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

pub(crate) const KEY_BY_HASH: &str = concat!("SELECT ", key_columns!(), " FROM api_keys WHERE key_hash = $1");

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
/// Log retention: the oldest rows before `$1`, at most `$2` of them (the `created_at` index
/// serves both the filter and the order).
pub(crate) const DELETE_OLD_LOGS: &str = "DELETE FROM request_logs WHERE request_id IN \
     (SELECT request_id FROM request_logs WHERE created_at < $1 ORDER BY created_at LIMIT $2)";

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

macro_rules! response_columns {
    () => {
        "responses.id, responses.key_id, responses.created_at, responses.expires_at, responses.previous_id, \
         responses.upstream, responses.input, responses.response"
    };
}

/// Columns per `responses` row, and most rows per upsert (a power of two: see [`statement_chunks`]).
const RESPONSE_COLUMNS: usize = 8;
pub(crate) const RESPONSE_ROWS_PER_UPSERT: usize = 64;
const _: () =
    assert!(RESPONSE_ROWS_PER_UPSERT.is_power_of_two() && RESPONSE_COLUMNS * RESPONSE_ROWS_PER_UPSERT <= 32_766);

/// The answers of a batch, each id once: the last put of an id wins, as it would written one by
/// one (PostgreSQL refuses an upsert that touches one row twice).
pub(crate) fn unique_responses(batch: &[StoredResponse]) -> Vec<&StoredResponse> {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut rows: Vec<&StoredResponse> = batch.iter().rev().filter(|r| seen.insert(r.id.as_str())).collect();
    rows.reverse();
    rows
}

/// One multi-row upsert for up to [`RESPONSE_ROWS_PER_UPSERT`] answers of distinct ids.
pub(crate) fn put_responses_query<'a, DB>(batch: &[&'a StoredResponse]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(
        "INSERT INTO responses (id, key_id, created_at, expires_at, previous_id, upstream, input, response) ",
    );
    qb.push_values(batch.iter().copied(), |mut row, r| {
        row.push_bind(r.id.as_str())
            .push_bind(r.key_id.as_str())
            .push_bind(r.created_at.to_i64())
            .push_bind(r.expires_at.to_i64())
            .push_bind(r.previous_id.as_deref())
            .push_bind(r.upstream.as_deref())
            .push_bind(r.input.as_str())
            .push_bind(r.response.as_str());
    });
    qb.push(concat!(
        " ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, created_at = excluded.created_at, ",
        "expires_at = excluded.expires_at, previous_id = excluded.previous_id, upstream = excluded.upstream, ",
        "input = excluded.input, response = excluded.response"
    ));
    qb
}

/// `$1`'s chain back through `previous_id`, newest `$4` answers, all of key `$2` and unexpired at
/// `$3`; oldest first. One statement, whatever the length (both databases have recursive CTEs).
pub(crate) const RESPONSE_CHAIN: &str = concat!(
    "WITH RECURSIVE chain (id, previous_id, depth) AS (",
    "SELECT id, previous_id, CAST(1 AS BIGINT) FROM responses WHERE id = $1 AND key_id = $2 AND expires_at > $3 ",
    "UNION ALL SELECT r.id, r.previous_id, chain.depth + 1 FROM responses r JOIN chain ON r.id = chain.previous_id ",
    "WHERE r.key_id = $2 AND r.expires_at > $3 AND chain.depth < CAST($4 AS BIGINT)) ",
    "SELECT ",
    response_columns!(),
    " FROM responses JOIN chain ON responses.id = chain.id ORDER BY chain.depth DESC"
);

pub(crate) const DELETE_RESPONSE: &str = "DELETE FROM responses WHERE id = $1 AND key_id = $2";

pub(crate) const DELETE_EXPIRED_RESPONSES: &str = "DELETE FROM responses WHERE id IN \
     (SELECT id FROM responses WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)";

#[derive(sqlx::FromRow)]
pub(crate) struct ResponseRow {
    id: String,
    key_id: String,
    created_at: i64,
    expires_at: i64,
    previous_id: Option<String>,
    upstream: Option<String>,
    input: String,
    response: String,
}

impl From<ResponseRow> for StoredResponse {
    fn from(r: ResponseRow) -> Self {
        StoredResponse {
            id: r.id,
            key_id: r.key_id,
            created_at: UnixMillis::from_i64(r.created_at),
            expires_at: UnixMillis::from_i64(r.expires_at),
            previous_id: r.previous_id,
            upstream: r.upstream,
            input: r.input,
            response: r.response,
        }
    }
}

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
    limits: Option<String>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let hash = row.key_hash.try_into().map_err(|_| corrupt("api_keys.key_hash is not 32 bytes"))?;
        let models =
            serde_json::from_str(&row.models).map_err(|_| corrupt("api_keys.models is not a JSON array of strings"))?;
        let limits = limits_from_column(&row.id, row.limits.as_deref());
        Ok(KeyRecord {
            id: row.id,
            name: row.name,
            hash,
            display: row.display,
            models,
            user: row.user_name,
            created_at: UnixMillis::from_i64(row.created_at),
            updated_at: UnixMillis::from_i64(row.updated_at),
            expires_at: row.expires_at.map(UnixMillis::from_i64),
            revoked_at: row.revoked_at.map(UnixMillis::from_i64),
            limits,
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

/// `limits` as stored: `None` (SQL NULL) when the key has none of its own.
pub(crate) fn limits_column(key: &NewKey) -> Result<Option<String>, StoreError> {
    if key.limits.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&key.limits).map(Some).map_err(|e| StoreError::Other(format!("cannot serialize limits: {e}")))
}

/// A key's own limits. Text this build cannot read (damaged, or a newer build's shape) reads as
/// none, so the key falls back to the configured defaults instead of failing every key to load:
/// one bad row must not lock every client out.
fn limits_from_column(key_id: &str, column: Option<&str>) -> KeyLimits {
    match column {
        None | Some("") => KeyLimits::default(),
        Some(text) => serde_json::from_str(text).unwrap_or_else(|e| {
            tracing::warn!(key = %key_id, error = %e, "api_keys.limits is not a JSON object of limits; read as none");
            KeyLimits::default()
        }),
    }
}

/// The record `insert_key` wrote, without reading it back.
pub(crate) fn inserted_key(key: &NewKey, now: UnixMillis) -> KeyRecord {
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
    cached_tokens: Option<i64>,
    cache_write_tokens: Option<i64>,
    reasoning_tokens: Option<i64>,
    cost_estimated: bool,
    user_name: Option<String>,
}

impl TryFrom<LogRow> for RequestLogEntry {
    type Error = StoreError;

    fn try_from(row: LogRow) -> Result<Self, StoreError> {
        let count =
            |v: Option<i64>, column: &'static str| v.map(|v| u64::try_from(v).map_err(|_| corrupt(column))).transpose();
        Ok(RequestLogEntry {
            request_id: row.request_id,
            created_at: UnixMillis::from_i64(row.created_at),
            key_id: row.key_id,
            user: row.user_name,
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
            cached_tokens: count(row.cached_tokens, "request_logs.cached_tokens is negative")?,
            cache_write_tokens: count(row.cache_write_tokens, "request_logs.cache_write_tokens is negative")?,
            reasoning_tokens: count(row.reasoning_tokens, "request_logs.reasoning_tokens is negative")?,
            cost_usd: row.cost_usd,
            cost_estimated: row.cost_estimated,
            error_kind: row.error_kind.as_deref().map(ErrorKind::parse),
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
pub(crate) fn put_route_record(config: &RouteConfig, now: UnixMillis) -> StoredRoute {
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
                Some(StoredRoute { config, updated_at: UnixMillis::from_i64(row.updated_at), deleted: row.deleted_at.is_some() })
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

/// The batch without repeated request ids, first occurrence kept. Only one row per id can be
/// stored, and with no repeats within a statement the ids it returns name exactly the entries
/// that were inserted, whichever of two the database would have kept.
pub(crate) fn unique_requests(entries: &[RequestLogEntry]) -> Vec<&RequestLogEntry> {
    let mut seen = HashSet::with_capacity(entries.len());
    entries.iter().filter(|e| seen.insert(e.request_id.as_str())).collect()
}

/// One multi-row `INSERT` for up to [`LOG_ROWS_PER_INSERT`] entries, with `returning`, returning
/// the `request_id` of each row it inserted. Rows whose `request_id` is already stored are skipped
/// (and not returned), which is what makes a retried batch harmless, for the usage aggregates too.
pub(crate) fn insert_logs_query<'a, DB>(entries: &[&'a RequestLogEntry], returning: bool) -> QueryBuilder<'a, DB>
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
    qb.push_values(entries.iter().copied(), |mut row, e| {
        row.push_bind(e.request_id.as_str())
            .push_bind(e.created_at.to_i64())
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
            .push_bind(e.error_kind.map(ErrorKind::as_str))
            .push_bind(e.error_message.as_deref())
            .push_bind(attempts_column(&e.attempts))
            .push_bind(e.cached_tokens.map(to_i64))
            .push_bind(e.cache_write_tokens.map(to_i64))
            .push_bind(e.reasoning_tokens.map(to_i64))
            .push_bind(e.cost_estimated)
            .push_bind(e.user.as_deref());
    });
    qb.push(" ON CONFLICT (request_id) DO NOTHING");
    if returning {
        qb.push(" RETURNING request_id");
    }
    qb
}

/// The dimensions of a `usage_hourly` row; `''` stands for none.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct UsageKey<'a> {
    hour_start: i64,
    key_id: &'a str,
    user: &'a str,
    model: &'a str,
    provider: &'a str,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UsageSums {
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cost_usd: f64,
}

/// The usage of the log rows a batch inserted, summed per hour and dimensions in memory, so that
/// a batch costs one upsert per distinct group rather than one per request.
///
/// Ordered (a `BTreeMap`): concurrent writers (several instances on one PostgreSQL) then lock
/// the rows they share in the same order, and wait for each other instead of deadlocking.
#[derive(Debug, Default)]
pub(crate) struct UsageBatch<'a> {
    sums: BTreeMap<UsageKey<'a>, UsageSums>,
}

impl<'a> UsageBatch<'a> {
    /// Adds the entries of `chunk` whose request id is in `inserted` (what the insert returned).
    pub(crate) fn add_inserted(&mut self, chunk: &[&'a RequestLogEntry], inserted: &[String]) {
        if inserted.len() == chunk.len() {
            self.add_all(chunk);
            return;
        }
        let inserted: HashSet<&str> = inserted.iter().map(String::as_str).collect();
        chunk.iter().filter(|e| inserted.contains(e.request_id.as_str())).for_each(|e| self.add(e));
    }

    /// Adds every entry of `chunk` (an insert that stored them all).
    pub(crate) fn add_all(&mut self, chunk: &[&'a RequestLogEntry]) {
        chunk.iter().for_each(|e| self.add(e));
    }

    fn add(&mut self, e: &'a RequestLogEntry) {
        let key = UsageKey {
            hour_start: hour_start(e.created_at),
            key_id: e.key_id.as_deref().unwrap_or(""),
            user: e.user.as_deref().unwrap_or(""),
            model: e.model.as_deref().unwrap_or(""),
            provider: e.provider.as_deref().unwrap_or(""),
        };
        let sums = self.sums.entry(key).or_default();
        let tokens = |v: Option<u64>| v.map_or(0, to_i64);
        sums.requests = sums.requests.saturating_add(1);
        sums.errors = sums.errors.saturating_add(i64::from(e.status >= 400));
        sums.prompt_tokens = sums.prompt_tokens.saturating_add(tokens(e.prompt_tokens));
        sums.completion_tokens = sums.completion_tokens.saturating_add(tokens(e.completion_tokens));
        sums.cached_tokens = sums.cached_tokens.saturating_add(tokens(e.cached_tokens));
        // A NaN or infinite price would poison the hour's sum for good.
        sums.cost_usd += e.cost_usd.filter(|c| c.is_finite()).unwrap_or(0.0);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sums.is_empty()
    }

    pub(crate) fn rows(&self) -> Vec<(&UsageKey<'a>, &UsageSums)> {
        self.sums.iter().collect()
    }
}

/// The first millisecond of the UTC hour holding `t`, as `usage_hourly.hour_start` holds it.
fn hour_start(t: UnixMillis) -> i64 {
    let ms = t.to_i64();
    ms - ms.rem_euclid(HOUR_MS)
}

/// Adds up to [`USAGE_ROWS_PER_UPSERT`] groups to `usage_hourly`. The batch holds each group once,
/// as PostgreSQL requires of one `ON CONFLICT DO UPDATE` statement.
pub(crate) fn upsert_usage_query<'a, DB>(rows: &[(&UsageKey<'a>, &UsageSums)]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    f64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(
        "INSERT INTO usage_hourly (hour_start, key_id, user_name, model, provider, requests, errors, \
         prompt_tokens, completion_tokens, cached_tokens, cost_usd) ",
    );
    qb.push_values(rows, |mut row, (key, sums)| {
        row.push_bind(key.hour_start)
            .push_bind(key.key_id)
            .push_bind(key.user)
            .push_bind(key.model)
            .push_bind(key.provider)
            .push_bind(sums.requests)
            .push_bind(sums.errors)
            .push_bind(sums.prompt_tokens)
            .push_bind(sums.completion_tokens)
            .push_bind(sums.cached_tokens)
            .push_bind(sums.cost_usd);
    });
    qb.push(
        " ON CONFLICT (hour_start, key_id, user_name, model, provider) DO UPDATE SET \
         requests = usage_hourly.requests + excluded.requests, \
         errors = usage_hourly.errors + excluded.errors, \
         prompt_tokens = usage_hourly.prompt_tokens + excluded.prompt_tokens, \
         completion_tokens = usage_hourly.completion_tokens + excluded.completion_tokens, \
         cached_tokens = usage_hourly.cached_tokens + excluded.cached_tokens, \
         cost_usd = usage_hourly.cost_usd + excluded.cost_usd",
    );
    qb
}

#[derive(sqlx::FromRow)]
pub(crate) struct StatsDbRow {
    grp: String,
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cost_usd: f64,
}

/// Sums `usage_hourly` over the hours starting in `[from, to)`, per group. The group column
/// comes from the enum, never from the caller's text.
pub(crate) fn usage_stats_query<'a, DB>(query: &'a StatsQuery) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let group = match query.group_by {
        StatsGroup::Key => Some("key_id"),
        StatsGroup::User => Some("user_name"),
        StatsGroup::Model => Some("model"),
        StatsGroup::Provider => Some("provider"),
        StatsGroup::None => None,
    };
    let mut qb = QueryBuilder::new("SELECT ");
    qb.push(group.unwrap_or("''"));
    // SUM of BIGINT is NUMERIC on PostgreSQL, hence the casts; SUM of no rows is NULL.
    qb.push(
        " AS grp, \
         COALESCE(CAST(SUM(requests) AS BIGINT), 0) AS requests, \
         COALESCE(CAST(SUM(errors) AS BIGINT), 0) AS errors, \
         COALESCE(CAST(SUM(prompt_tokens) AS BIGINT), 0) AS prompt_tokens, \
         COALESCE(CAST(SUM(completion_tokens) AS BIGINT), 0) AS completion_tokens, \
         COALESCE(CAST(SUM(cached_tokens) AS BIGINT), 0) AS cached_tokens, \
         COALESCE(SUM(cost_usd), 0.0) AS cost_usd \
         FROM usage_hourly WHERE hour_start >= ",
    );
    qb.push_bind(query.from.to_i64()).push(" AND hour_start < ").push_bind(query.to.to_i64());
    if let Some(key_id) = &query.key_id {
        qb.push(" AND key_id = ").push_bind(key_id.as_str());
    }
    if let Some(user) = &query.user {
        qb.push(" AND user_name = ").push_bind(user.as_str());
    }
    // Without a group the aggregate has no GROUP BY, so it yields its one row even when empty.
    if let Some(group) = group {
        qb.push(" GROUP BY ").push(group).push(" ORDER BY ").push(group);
    }
    qb
}

pub(crate) fn stats_rows(rows: Vec<StatsDbRow>) -> Result<Vec<StatsRow>, StoreError> {
    let count = |v: i64| u64::try_from(v).map_err(|_| corrupt("usage_hourly holds a negative count"));
    rows.into_iter()
        .map(|r| {
            Ok(StatsRow {
                group: Some(r.grp).filter(|g| !g.is_empty()),
                requests: count(r.requests)?,
                errors: count(r.errors)?,
                prompt_tokens: count(r.prompt_tokens)?,
                completion_tokens: count(r.completion_tokens)?,
                cached_tokens: count(r.cached_tokens)?,
                cost_usd: r.cost_usd,
            })
        })
        .collect()
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
    push_log_filters(&mut qb, query);
    if let Some(cursor) = &query.cursor {
        qb.push(" AND (created_at, request_id) < (")
            .push_bind(cursor.created_at.to_i64())
            .push(", ")
            .push_bind(cursor.request_id.as_str())
            .push(")");
    }
    qb.push(" ORDER BY created_at DESC, request_id DESC LIMIT ").push_bind(i64::from(limit));
    qb
}

/// The conditions of a log query other than its cursor, after a `WHERE`.
fn push_log_filters<'a, DB>(qb: &mut QueryBuilder<'a, DB>, query: &'a LogQuery)
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    if let Some(user) = &query.user {
        qb.push(" AND user_name = ").push_bind(user.as_str());
    }
    if let Some(from) = query.from {
        qb.push(" AND created_at >= ").push_bind(from.to_i64());
    }
    if let Some(to) = query.to {
        qb.push(" AND created_at < ").push_bind(to.to_i64());
    }
    if let Some(model) = &query.model {
        qb.push(" AND model = ").push_bind(model.as_str());
    }
    if let Some(provider) = &query.provider {
        qb.push(" AND provider = ").push_bind(provider.as_str());
    }
    if let Some((low, high)) = query.status {
        qb.push(" AND status >= ").push_bind(i64::from(low)).push(" AND status <= ").push_bind(i64::from(high));
    }
    if let Some(kind) = query.error_kind {
        qb.push(" AND error_kind = ").push_bind(kind.as_str());
    }
}

/// Deletes the rows a query's filters select (its cursor and limit aside). The hourly usage
/// aggregates stay: statistics do not change when the log is pruned.
pub(crate) fn delete_logs_query<'a, DB>(query: &'a LogQuery) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("DELETE FROM request_logs WHERE 1 = 1");
    if let Some(key_id) = &query.key_id {
        qb.push(" AND key_id = ").push_bind(key_id.as_str());
    }
    push_log_filters(&mut qb, query);
    qb
}

pub(crate) const LOG_BY_ID: &str = concat!("SELECT ", log_columns!(), " FROM request_logs WHERE request_id = $1");

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
    fn batches_are_split_into_power_of_two_chunks_largest_first() {
        let lens = |n: usize| statement_chunks(&vec![0u8; n], 64).map(<[u8]>::len).collect::<Vec<_>>();
        assert_eq!(lens(0), Vec::<usize>::new());
        assert_eq!(lens(1), [1]);
        assert_eq!(lens(7), [4, 2, 1]);
        assert_eq!(lens(64), [64]);
        assert_eq!(lens(200), [64, 64, 64, 8]);
        for n in 0..300 {
            assert_eq!(lens(n).iter().sum::<usize>(), n);
        }
    }

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
                error_kind: Some(ErrorKind::UpstreamStatus),
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
    fn hours_are_utc_and_floor() {
        let at = UnixMillis::from_millis;
        assert_eq!(hour_start(at(0)), 0);
        assert_eq!(hour_start(at(HOUR_MS as u64 - 1)), 0);
        assert_eq!(hour_start(at(HOUR_MS as u64)), HOUR_MS);
        assert_eq!(hour_start(at(1_699_956_000_000 + 59 * 60_000)), 1_699_956_000_000);
        assert_eq!(hour_start(UnixMillis::MAX), i64::MAX - i64::MAX % HOUR_MS, "saturated, still an hour");
    }

    #[test]
    fn a_batch_is_summed_per_group_counting_only_what_was_inserted() {
        let entry = |id: &str, at: i64, status: u16, prompt: Option<u64>, cost: Option<f64>| RequestLogEntry {
            request_id: id.into(),
            created_at: UnixMillis::from_i64(at),
            key_id: Some("k".into()),
            model: Some("m".into()),
            status,
            prompt_tokens: prompt,
            cost_usd: cost,
            ..Default::default()
        };
        let entries = [
            entry("a", 10, 200, Some(5), Some(0.5)),
            entry("b", 20, 499, None, Some(f64::NAN)),
            entry("stored-before", 30, 200, Some(1000), Some(100.0)),
            entry("a", 40, 500, Some(7), None),
            entry("next-hour", HOUR_MS, 429, Some(1), Some(0.25)),
        ];
        let unique = unique_requests(&entries);
        assert_eq!(unique.len(), 4, "the repeated `a` is dropped");
        assert_eq!(unique[0].status, 200, "the first `a` is kept");

        let mut batch = UsageBatch::default();
        let inserted = ["a", "b", "next-hour"].map(String::from);
        batch.add_inserted(&unique, &inserted);
        let rows: Vec<_> = batch.rows().into_iter().map(|(k, s)| (k.hour_start, s.clone())).collect();
        assert_eq!(
            rows,
            vec![
                (0, UsageSums { requests: 2, errors: 1, prompt_tokens: 5, cost_usd: 0.5, ..Default::default() }),
                (HOUR_MS, UsageSums { requests: 1, errors: 1, prompt_tokens: 1, cost_usd: 0.25, ..Default::default() }),
            ]
        );
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_i64(7), 7);
    }
}
