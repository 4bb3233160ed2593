//! Storage: core's `Store` trait on SQLite (the single-node default) and on PostgreSQL (cluster
//! mode), each with its own embedded migrations under `migrations/{sqlite,postgres}`.
//!
//! Depends on core and sqlx. It must never depend on axum or reqwest: the server plugs it in
//! through `Arc<dyn Store>`, and nothing here knows about HTTP.
//!
//! Errors and log lines never carry the database URL, which may hold a password.

/// The `Store` methods whose SQL and binding are the same on both backends (the SQL is in `rows`).
/// A macro rather than a generic over `sqlx::Database`, whose bounds would outweigh the code.
/// `impl_store!(Type { backend-specific methods })` writes the whole `impl Store`, so that
/// `async_trait` sees every method. Expects `self.pool`, `self.log_conn` and `self.response_conn`
/// (each a [`KeptConnection`]) and `self.clock()` (the clock that stamps key and route changes).
macro_rules! impl_store {
    ($store:ty { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl Store for $store {
        $($own)*

        async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
            let now = self.clock().await?;
            sqlx::query(rows::INSERT_KEY)
                .bind(&key.id)
                .bind(&key.name)
                .bind(&key.hash[..])
                .bind(&key.display)
                .bind(rows::models_json(key)?)
                .bind(&key.user)
                .bind(now.to_i64())
                .bind(key.expires_at.map(UnixMillis::to_i64))
                .bind(rows::limits_column(key)?)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(rows::inserted_key(key, now))
        }

        async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
            let rows: Vec<KeyRow> = sqlx::query_as(rows::LIST_KEYS).fetch_all(&self.pool).await.map_err(map_sqlx)?;
            rows::keys_from_rows(rows)
        }

        async fn revoke_key(&self, id: &str) -> Result<KeyRecord, StoreError> {
            let row: Option<KeyRow> = sqlx::query_as(rows::REVOKE_KEY)
                .bind(self.clock().await?.to_i64())
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx)?;
            row.ok_or(StoreError::NotFound)?.try_into()
        }

        async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
            let row: Option<KeyRow> =
                sqlx::query_as(rows::KEY_BY_HASH).bind(&hash[..]).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
            row.map(KeyRecord::try_from).transpose()
        }

        async fn keys_updated_since(&self, since: UnixMillis) -> Result<Vec<KeyRecord>, StoreError> {
            let rows: Vec<KeyRow> = sqlx::query_as(rows::KEYS_UPDATED_SINCE)
                .bind(since.to_i64())
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
            rows::keys_from_rows(rows)
        }

        async fn insert_logs(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError> {
            if entries.is_empty() {
                return Ok(());
            }
            let entries = rows::unique_requests(entries);
            let mut conn = self.log_conn.take(&self.pool).await.map_err(map_sqlx)?;
            // Usually no row of a batch is stored yet, and each INSERT's count says so: the usage
            // of every row is added, and no row comes back (the SQLite driver hands each returned
            // row to this task separately: a wake-up per request). A count short of the chunk
            // means a retried batch that is partly stored already; the transaction is rolled
            // back and the batch written again, this time with the ids of the rows each INSERT
            // stored (`RETURNING`), so only those count towards usage.
            let mut written = Ok(false);
            for returning in [false, true] {
                written = async {
                    let mut usage = rows::UsageBatch::default();
                    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_sqlx)?;
                    // A few statement shapes, each prepared once per connection and cached
                    // (sqlx's statement cache holds 100 per connection; these take 14).
                    for chunk in rows::statement_chunks(&entries, rows::LOG_ROWS_PER_INSERT) {
                        if returning {
                            let inserted: Vec<String> = rows::insert_logs_query(chunk, true)
                                .build_query_scalar()
                                .persistent(false)
                                .fetch_all(&mut *tx)
                                .await
                                .map_err(map_sqlx)?;
                            usage.add_inserted(chunk, &inserted);
                            continue;
                        }
                        let done =
                            rows::insert_logs_query(chunk, false).build().execute(&mut *tx).await.map_err(map_sqlx)?;
                        if done.rows_affected() != chunk.len() as u64 {
                            tx.rollback().await.map_err(map_sqlx)?;
                            return Ok(false);
                        }
                        usage.add_all(chunk);
                    }
                    if !usage.is_empty() {
                        for groups in rows::statement_chunks(&usage.rows(), rows::USAGE_ROWS_PER_UPSERT) {
                            rows::upsert_usage_query(groups)
                                .build()
                                .execute(&mut *tx)
                                .await
                                .map_err(map_sqlx)?;
                        }
                    }
                    tx.commit().await.map_err(map_sqlx)?;
                    Ok(true)
                }
                .await;
                if !matches!(written, Ok(false)) {
                    break;
                }
            }
            let written = written.map(|_| ());
            if written.is_ok() {
                // A connection that failed goes back to the pool, which checks it before reuse.
                self.log_conn.put_back(conn);
            }
            written
        }

        async fn list_logs(&self, query: &LogQuery) -> Result<LogPage, StoreError> {
            let limit = rows::page_limit(query.limit);
            let rows: Vec<LogRow> =
                rows::list_logs_query(query, limit).build_query_as().fetch_all(&self.pool).await.map_err(map_sqlx)?;
            rows::log_page(rows, limit)
        }

        async fn log_entry(&self, request_id: &str) -> Result<Option<RequestLogEntry>, StoreError> {
            let row: Option<LogRow> =
                sqlx::query_as(rows::LOG_BY_ID).bind(request_id).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
            row.map(RequestLogEntry::try_from).transpose()
        }

        async fn delete_logs(&self, query: &LogQuery) -> Result<u64, StoreError> {
            let done = rows::delete_logs_query(query).build().execute(&self.pool).await.map_err(map_sqlx)?;
            Ok(done.rows_affected())
        }

        async fn delete_logs_before(&self, before: UnixMillis, limit: u32) -> Result<u64, StoreError> {
            let done = sqlx::query(rows::DELETE_OLD_LOGS)
                .bind(before.to_i64())
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(done.rows_affected())
        }

        async fn usage_stats(&self, query: &StatsQuery) -> Result<Vec<StatsRow>, StoreError> {
            let rows: Vec<rows::StatsDbRow> = rows::usage_stats_query(query)
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
            rows::stats_rows(rows)
        }

        async fn put_route(&self, config: &RouteConfig) -> Result<StoredRoute, StoreError> {
            let now = self.clock().await?;
            sqlx::query(rows::PUT_ROUTE)
                .bind(&config.name)
                .bind(rows::route_json(config)?)
                .bind(now.to_i64())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(rows::put_route_record(config, now))
        }

        async fn delete_route(&self, name: &str) -> Result<(), StoreError> {
            let done = sqlx::query(rows::DELETE_ROUTE)
                .bind(self.clock().await?.to_i64())
                .bind(name)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        }

        async fn list_routes(&self) -> Result<Vec<StoredRoute>, StoreError> {
            let rows: Vec<RouteRow> = sqlx::query_as(rows::LIST_ROUTES).fetch_all(&self.pool).await.map_err(map_sqlx)?;
            Ok(rows::routes_from_rows(rows))
        }

        async fn routes_updated_since(&self, since: UnixMillis) -> Result<Vec<StoredRoute>, StoreError> {
            let rows: Vec<RouteRow> = sqlx::query_as(rows::ROUTES_UPDATED_SINCE)
                .bind(since.to_i64())
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(rows::routes_from_rows(rows))
        }

        async fn put_responses(&self, batch: &[StoredResponse]) -> Result<(), StoreError> {
            let rows = rows::unique_responses(batch);
            // A few statement shapes, each prepared once per connection and cached: on the
            // connection the writer keeps, they are parsed once.
            let mut chunks = rows::statement_chunks(&rows, rows::RESPONSE_ROWS_PER_UPSERT).peekable();
            let Some(first) = chunks.next() else { return Ok(()) };
            let mut conn = self.response_conn.take(&self.pool).await.map_err(map_sqlx)?;
            let written = if chunks.peek().is_none() {
                // One statement is atomic by itself: no `BEGIN` and `COMMIT`, which cost more than
                // the insert.
                rows::put_responses_query(first).build().execute(&mut *conn).await.map(|_| ()).map_err(map_sqlx)
            } else {
                async {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_sqlx)?;
                    for chunk in std::iter::once(first).chain(chunks) {
                        rows::put_responses_query(chunk).build().execute(&mut *tx).await.map_err(map_sqlx)?;
                    }
                    tx.commit().await.map_err(map_sqlx)
                }
                .await
            };
            if written.is_ok() {
                // A connection that failed goes back to the pool, which checks it before reuse.
                self.response_conn.put_back(conn);
            }
            written
        }

        async fn response_chain(
            &self,
            id: &str,
            key_id: &str,
            now: UnixMillis,
            max: u32,
        ) -> Result<Vec<StoredResponse>, StoreError> {
            let rows: Vec<rows::ResponseRow> = sqlx::query_as(rows::RESPONSE_CHAIN)
                .bind(id)
                .bind(key_id)
                .bind(now.to_i64())
                .bind(i64::from(max))
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(rows.into_iter().map(StoredResponse::from).collect())
        }

        async fn delete_response(&self, id: &str, key_id: &str) -> Result<(), StoreError> {
            let done =
                sqlx::query(rows::DELETE_RESPONSE).bind(id).bind(key_id).execute(&self.pool).await.map_err(map_sqlx)?;
            if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        }

        async fn delete_expired_responses(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError> {
            let done = sqlx::query(rows::DELETE_EXPIRED_RESPONSES)
                .bind(now.to_i64())
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(done.rows_affected())
        }

        async fn put_upstream_object(&self, o: &UpstreamObject) -> Result<(), StoreError> {
            sqlx::query(object_rows::PUT_OBJECT)
                .bind(&o.id)
                .bind(o.kind.as_str())
                .bind(&o.provider)
                .bind(&o.key_id)
                .bind(&o.purpose)
                .bind(o.created_at.to_i64())
                .bind(&o.object)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(())
        }

        async fn upstream_object(&self, id: &str, key_id: &str) -> Result<Option<UpstreamObject>, StoreError> {
            let row: Option<object_rows::ObjectRow> = sqlx::query_as(object_rows::GET_OBJECT)
                .bind(id)
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx)?;
            row.map(UpstreamObject::try_from).transpose()
        }

        async fn list_upstream_objects(&self, q: &ObjectQuery) -> Result<Vec<UpstreamObject>, StoreError> {
            let sql = if q.descending { object_rows::LIST_OBJECTS_DESC } else { object_rows::LIST_OBJECTS_ASC };
            let rows: Vec<object_rows::ObjectRow> = sqlx::query_as(sql)
                .bind(&q.key_id)
                .bind(q.kind.as_str())
                .bind(&q.purpose)
                .bind(&q.after)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
            object_rows::objects_from_rows(rows)
        }

        async fn insert_user(&self, user: &NewUser, now: UnixMillis) -> Result<UserRecord, StoreError> {
            let done = sqlx::query(user_rows::INSERT_USER)
                .bind(&user.id)
                .bind(&user.username)
                .bind(user.role.as_str())
                .bind(&user.password_hash)
                .bind(now.to_i64())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!("a user named `{}` exists", user.username)));
            }
            Ok(UserRecord {
                id: user.id.clone(),
                username: user.username.clone(),
                role: user.role,
                password_hash: user.password_hash.clone(),
                created_at: now,
                updated_at: now,
                sessions_after: now,
            })
        }

        async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
            let row: Option<user_rows::UserRow> =
                sqlx::query_as(user_rows::USER_BY_NAME).bind(username).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
            row.map(UserRecord::try_from).transpose()
        }

        async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
            let row: Option<user_rows::UserRow> =
                sqlx::query_as(user_rows::USER_BY_ID).bind(id).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
            row.map(UserRecord::try_from).transpose()
        }

        async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
            let rows: Vec<user_rows::UserRow> =
                sqlx::query_as(user_rows::LIST_USERS).fetch_all(&self.pool).await.map_err(map_sqlx)?;
            rows.into_iter().map(UserRecord::try_from).collect()
        }

        async fn set_user_password(&self, id: &str, hash: &str, now: UnixMillis) -> Result<(), StoreError> {
            let done = sqlx::query(user_rows::SET_PASSWORD)
                .bind(id)
                .bind(hash)
                .bind(now.to_i64())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        }

        async fn setting(&self, name: &str) -> Result<Option<(String, UnixMillis)>, StoreError> {
            let row: Option<(String, i64)> =
                sqlx::query_as(rows::GET_SETTING).bind(name).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
            Ok(row.map(|(value, at)| (value, UnixMillis::from_i64(at))))
        }

        async fn put_setting(&self, name: &str, value: &str, now: UnixMillis) -> Result<(), StoreError> {
            sqlx::query(rows::PUT_SETTING)
                .bind(name)
                .bind(value)
                .bind(now.to_i64())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(())
        }

        async fn insert_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
            sqlx::query(audit_rows::INSERT_AUDIT)
                .bind(&e.id)
                .bind(e.at.to_i64())
                .bind(&e.actor)
                .bind(&e.actor_role)
                .bind(&e.ip)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.before)
                .bind(&e.after)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(())
        }

        async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
            let rows: Vec<audit_rows::AuditRow> = sqlx::query_as(audit_rows::LIST_AUDIT)
                .bind(&q.cursor)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(rows.into_iter().map(AuditEntry::from).collect())
        }

        async fn set_user_role(&self, id: &str, role: Role, now: UnixMillis) -> Result<(), StoreError> {
            let done = sqlx::query(user_rows::SET_ROLE)
                .bind(id)
                .bind(role.as_str())
                .bind(now.to_i64())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        }

        async fn delete_user(&self, id: &str) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
            sqlx::query(user_rows::DELETE_USER_SESSIONS).bind(id).execute(&mut *tx).await.map_err(map_sqlx)?;
            let done = sqlx::query(user_rows::DELETE_USER).bind(id).execute(&mut *tx).await.map_err(map_sqlx)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await.map_err(map_sqlx)
        }

        async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
            sqlx::query(user_rows::INSERT_SESSION)
                .bind(&s.id)
                .bind(&s.user_id)
                .bind(s.created_at.to_i64())
                .bind(s.expires_at.to_i64())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(())
        }

        async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
            let row: Option<user_rows::SessionRow> =
                sqlx::query_as(user_rows::SESSION_BY_ID).bind(id).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
            Ok(row.map(SessionRecord::from))
        }

        async fn revoke_session(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
            sqlx::query(user_rows::REVOKE_SESSION).bind(id).bind(now.to_i64()).execute(&self.pool).await.map_err(map_sqlx)?;
            Ok(())
        }

        async fn delete_expired_sessions(&self, now: UnixMillis, limit: u32) -> Result<u64, StoreError> {
            let done = sqlx::query(user_rows::DELETE_EXPIRED_SESSIONS)
                .bind(now.to_i64())
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
            Ok(done.rows_affected())
        }

        async fn delete_upstream_object(&self, id: &str, key_id: &str) -> Result<(), StoreError> {
            let done =
                sqlx::query(object_rows::DELETE_OBJECT).bind(id).bind(key_id).execute(&self.pool).await.map_err(map_sqlx)?;
            if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        }
        }
    };
}
pub(crate) use impl_store;

mod audit_rows;
mod object_rows;
mod postgres;
mod rows;
mod sqlite;
mod user_rows;

use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

pub use llm_proxy_core::store::{Store, StoreError};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Opens the database named by `database_url`: `sqlite:...` (a file, created with its directory
/// if missing, or `sqlite::memory:`) or `postgres://` / `postgresql://`. Does not migrate.
///
/// `max_open` caps the pool; `max_idle` connections are kept open while idle.
pub async fn connect(database_url: &str, max_open: u32, max_idle: u32) -> Result<Arc<dyn Store>, StoreError> {
    let max_open = max_open.max(1);
    let min_idle = max_idle.min(max_open);
    let scheme = database_url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => Ok(Arc::new(SqliteStore::connect(database_url, max_open, min_idle).await?)),
        Some("postgres" | "postgresql") => {
            Ok(Arc::new(PostgresStore::connect(database_url, max_open, min_idle).await?))
        }
        // The scheme is not secret, but the rest of the URL may be.
        _ => Err(StoreError::Other("unsupported database URL: expected sqlite:... or postgres://...".into())),
    }
}

/// The connection a writer (of the request log, of the kept Responses answers) used last, kept for
/// its next batch. The pool hands its idle connections out in turn and each has its own statement
/// cache, so without this a batch mostly lands on a connection that has not prepared the writer's
/// statements yet and parses them again, which cost more than writing the rows. Kept only while
/// the pool has more than `keep_above` connections: the rest of the gateway needs one at least.
pub(crate) struct KeptConnection<DB: Database> {
    held: Mutex<Option<PoolConnection<DB>>>,
    keep: bool,
}

impl<DB: Database> KeptConnection<DB> {
    /// The request-log writer's: kept when the pool has two connections or more.
    pub(crate) fn for_log(pool: &Pool<DB>) -> Self {
        Self::new(pool, 1)
    }

    /// The Responses writer's: kept when the pool has three or more, so that with the log
    /// writer's one held too, one at least is left for reads (a follow-up's history, auth).
    pub(crate) fn for_responses(pool: &Pool<DB>) -> Self {
        Self::new(pool, 2)
    }

    fn new(pool: &Pool<DB>, keep_above: u32) -> Self {
        Self { held: Mutex::new(None), keep: pool.options().get_max_connections() > keep_above }
    }

    /// The kept connection, or one from the pool.
    pub(crate) async fn take(&self, pool: &Pool<DB>) -> Result<PoolConnection<DB>, sqlx::Error> {
        let held = self.held.lock().ok().and_then(|mut h| h.take());
        match held {
            Some(conn) => Ok(conn),
            None => pool.acquire().await,
        }
    }

    /// Keeps `conn` for the next batch (or returns it to the pool).
    pub(crate) fn put_back(&self, conn: PoolConnection<DB>) {
        if self.keep
            && let Ok(mut held) = self.held.lock()
        {
            *held = Some(conn);
        }
    }
}

/// Maps a sqlx error to what callers act on: retry later (`Unavailable`), a broken uniqueness
/// rule (`Conflict`), or a bug (`Other`).
///
/// `Configuration` errors are summarised rather than shown, because they can quote the URL.
pub(crate) fn map_sqlx(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(e.to_string())
        }
        E::Configuration(_) => StoreError::Other("invalid database URL or options".into()),
        E::RowNotFound => StoreError::NotFound,
        E::Database(db) => {
            if db.is_unique_violation() {
                StoreError::Conflict(db.message().to_string())
            } else if is_transient(db.as_ref()) {
                StoreError::Unavailable(db.message().to_string())
            } else {
                StoreError::Other(db.message().to_string())
            }
        }
        other => StoreError::Other(other.to_string()),
    }
}

/// Database errors that mean "not now" rather than "never": the server is going away, out of
/// connections or disk, refusing this login, or (SQLite) the file is locked or unreadable.
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Extended result codes carry the primary code in the low byte.
        const BUSY: i32 = 5;
        const LOCKED: i32 = 6;
        const READONLY: i32 = 8;
        const IOERR: i32 = 10;
        const FULL: i32 = 13;
        const CANTOPEN: i32 = 14;
        return code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, BUSY | LOCKED | READONLY | IOERR | FULL | CANTOPEN));
    }
    // PostgreSQL SQLSTATE classes: 08 connection, 28 authorization, 53 resources,
    // 57 operator intervention (shutdown, starting up), 40 serialization/deadlock;
    // 3D000 is a database that does not exist (yet).
    ["08", "28", "53", "57", "40"].iter().any(|class| code.starts_with(class)) || code == "3D000"
}

pub(crate) fn map_migrate(e: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError as M;
    match e {
        M::Execute(e) => map_sqlx(e),
        M::ExecuteMigration(e, version) => match map_sqlx(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(m),
            other => StoreError::Other(format!("migration {version} failed: {other}")),
        },
        other => StoreError::Other(format!("migrations: {other}")),
    }
}

/// Shared by both backends' `ready`: which embedded migrations the database has not applied.
pub(crate) fn missing_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<(), StoreError> {
    let expected: Vec<i64> =
        migrator.iter().filter(|m| m.migration_type.is_up_migration()).map(|m| m.version).collect();
    let missing: Vec<String> = expected.iter().filter(|v| !applied.contains(v)).map(i64::to_string).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        // Unavailable rather than Other: during a rolling start another instance may be
        // migrating right now, so asking again shortly is the right reaction.
        Err(StoreError::Unavailable(format!("database migrations not applied: {}", missing.join(", "))))
    }
}
