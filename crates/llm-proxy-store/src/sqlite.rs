//! The single-node store: one SQLite file in WAL mode, next to the binary's working directory.

use std::str::FromStr;
use std::time::Duration;

use llm_proxy_core::UnixMillis;
use llm_proxy_core::audit::{AuditEntry, AuditQuery};
use llm_proxy_core::config::RouteConfig;
use llm_proxy_core::request_log::{LogPage, LogQuery, RequestLogEntry};
use llm_proxy_core::store::{StatsQuery, StatsRow, Store, StoreError, StoredRoute};
use llm_proxy_core::stored_response::StoredResponse;
use llm_proxy_core::upstream_object::{ObjectQuery, UpstreamObject};
use llm_proxy_core::user::{NewUser, Role, SessionRecord, UserRecord};
use llm_proxy_core::virtual_key::{KeyHash, KeyRecord, NewKey};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::rows::{self, KeyRow, LogRow, RouteRow};
use crate::{KeptConnection, map_migrate, map_sqlx, missing_migrations};
use crate::{audit_rows, object_rows, user_rows};

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations/sqlite");
    // A newer build may already have added migrations this one does not know; they only add,
    // so an older build keeps working during a rollback.
    m.set_ignore_missing(true);
    m
}

pub struct SqliteStore {
    pool: SqlitePool,
    log_conn: KeptConnection<sqlx::Sqlite>,
    response_conn: KeptConnection<sqlx::Sqlite>,
    /// Serialises `migrate` within this process. SQLite has no advisory lock, so two processes
    /// migrating at once are handled in `migrate` itself.
    migrating: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    /// One machine, one clock: the process's own is the database's.
    async fn clock(&self) -> Result<UnixMillis, StoreError> {
        Ok(UnixMillis::now())
    }

    /// Opens (creating if needed) the database. `sqlite::memory:` gets a single connection that
    /// is never recycled, because the database lives only as long as its connection.
    pub async fn connect(url: &str, max_open: u32, min_idle: u32) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Other("invalid SQLite database URL".into()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        let pool = if in_memory {
            SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            // WAL lets readers (the dashboard) run while the log writer writes; NORMAL is
            // durable across application crashes, and in WAL mode loses at most the last
            // transactions on power loss, never corrupts.
            options = options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                tokio::fs::create_dir_all(dir).await.map_err(|e| {
                    StoreError::Unavailable(format!("cannot create database directory {}: {e}", dir.display()))
                })?;
            }
            SqlitePoolOptions::new().max_connections(max_open).min_connections(min_idle.min(max_open))
        };
        let pool = pool.acquire_timeout(ACQUIRE_TIMEOUT);

        // Switching a new file to WAL needs an exclusive lock that SQLite will not wait for
        // (busy_timeout does not apply), so processes opening a fresh database together can get
        // SQLITE_BUSY here. Once one of them has switched, the others' switch is a no-op.
        let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
        let mut backoff = Duration::from_millis(5);
        let pool = loop {
            match pool.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(map_sqlx(e)),
            }
        };
        Ok(Self {
            log_conn: KeptConnection::for_log(&pool),
            response_conn: KeptConnection::for_responses(&pool),
            pool,
            migrating: tokio::sync::Mutex::new(()),
        })
    }
}

fn is_busy(e: &sqlx::Error) -> bool {
    const BUSY: i32 = 5;
    match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == BUSY),
        _ => false,
    }
}

crate::impl_store!(SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.migrating.lock().await;
        let migrator = migrator();
        // Another process (say, `keys create` while `serve` starts) may apply a migration between
        // our check and our write, and ours then fails on what the other created. Once the schema
        // is current that is success; while the other is still part-way, running again picks up
        // from what it has applied. Each such failure means the other made progress, so one more
        // try per migration is enough; a migration that fails on its own fails every time.
        let mut tries = migrator.iter().count() + 1;
        loop {
            let err = match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) => map_migrate(e),
            };
            if self.ready().await.is_ok() {
                tracing::debug!(error = %err, "migration raced with another process; schema is current");
                return Ok(());
            }
            tries -= 1;
            if tries == 0 {
                return Err(err);
            }
            tracing::debug!(error = %err, "migration raced with another process; running the rest again");
        }
    }

    async fn ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_sqlx)?;
        let applied: Vec<i64> = match sqlx::query_scalar(rows::APPLIED_MIGRATIONS).fetch_all(&self.pool).await {
            Ok(v) => v,
            // No migrations table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(map_sqlx(e)),
        };
        missing_migrations(&migrator(), &applied)
    }

});
