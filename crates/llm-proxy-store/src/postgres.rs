//! The cluster store: PostgreSQL shared by every instance.

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
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::rows::{self, KeyRow, LogRow, RouteRow};
use crate::{KeptConnection, map_migrate, map_sqlx, missing_migrations};
use crate::{audit_rows, object_rows, user_rows};

/// How long a caller waits for a pooled connection (or a new one) before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLSTATE undefined_table: the migrations table does not exist yet.
const UNDEFINED_TABLE: &str = "42P01";

fn migrator() -> Migrator {
    // sqlx's Migrator takes a session-level advisory lock (locking is on by default), so
    // instances starting together apply each migration once and the rest wait, then see it done.
    let mut m = sqlx::migrate!("./migrations/postgres");
    // A newer build may already have added migrations this one does not know; they only add,
    // so an older instance keeps working during a rolling upgrade or a rollback.
    m.set_ignore_missing(true);
    m
}

pub struct PostgresStore {
    pool: PgPool,
    log_conn: KeptConnection<sqlx::Postgres>,
    response_conn: KeptConnection<sqlx::Postgres>,
}

impl PostgresStore {
    /// Key and route changes are stamped with the database's clock, not this process's: the key
    /// rings and route tables of all instances poll by `updated_at`, and a writer whose clock lags
    /// would otherwise stamp a change behind their window, where no poller would ever see it.
    async fn clock(&self) -> Result<UnixMillis, StoreError> {
        sqlx::query_scalar("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
            .fetch_one(&self.pool)
            .await
            .map(UnixMillis::from_i64)
            .map_err(map_sqlx)
    }

    /// Connects eagerly, so a wrong URL or a server that is down is reported at start-up.
    pub async fn connect(url: &str, max_open: u32, min_idle: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Other("invalid PostgreSQL database URL".into()))?
            .application_name("llm-proxy");
        let pool = PgPoolOptions::new()
            .max_connections(max_open)
            .min_connections(min_idle.min(max_open))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await;
        match pool {
            Ok(pool) => Ok(Self {
                log_conn: KeptConnection::for_log(&pool),
                response_conn: KeptConnection::for_responses(&pool),
                pool,
            }),
            Err(sqlx::Error::PoolTimedOut) => Err(StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL within {}s: {}",
                ACQUIRE_TIMEOUT.as_secs(),
                last_connect_error(&options).await
            ))),
            Err(e) => Err(match map_sqlx(e) {
                StoreError::Unavailable(m) => StoreError::Unavailable(format!("cannot connect to PostgreSQL: {m}")),
                other => other,
            }),
        }
    }
}

/// The pool retries refused connections until its deadline and then reports only that it timed
/// out; one more direct attempt recovers the cause ("connection refused", a DNS failure...) for
/// the operator.
async fn last_connect_error(options: &PgConnectOptions) -> String {
    use sqlx::ConnectOptions;
    match tokio::time::timeout(Duration::from_secs(1), options.connect()).await {
        Ok(Err(e)) => match map_sqlx(e) {
            StoreError::Unavailable(m) | StoreError::Other(m) | StoreError::Conflict(m) => m,
            StoreError::NotFound => "not found".into(),
        },
        Ok(Ok(_)) => "the server answered only after the deadline".into(),
        Err(_) => "no answer".into(),
    }
}

crate::impl_store!(PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_sqlx)?;
        // `run_direct` rather than `run(&mut *conn)`: the latter's `Acquire` bound is not
        // general enough for the `Send` future `async_trait` needs.
        let result = migrator().run_direct(&mut *conn).await;
        if result.is_err() {
            // The Migrator releases its advisory lock only on success. Closing the session
            // releases it otherwise; a pooled connection still holding it would make every
            // later `migrate` wait forever.
            conn.close_on_drop();
        }
        result.map_err(map_migrate)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_sqlx)?;
        let applied: Vec<i64> = match sqlx::query_scalar(rows::APPLIED_MIGRATIONS).fetch_all(&self.pool).await {
            Ok(v) => v,
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(UNDEFINED_TABLE) => Vec::new(),
            Err(e) => return Err(map_sqlx(e)),
        };
        missing_migrations(&migrator(), &applied)
    }

});
