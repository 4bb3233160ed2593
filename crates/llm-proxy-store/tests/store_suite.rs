//! The behavioural contract of `Store`, written once and run against every backend.
//!
//! Each case is an `async fn(TestDb)` that gets a fresh, empty, unmigrated database; the
//! `store_suite!` macro at the bottom turns every case into one test per backend
//! (`sqlite::<case>` and `postgres::<case>`).
//!
//! PostgreSQL cases need `LLM_PROXY_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`);
//! each creates its own database through it and drops it afterwards. Without the variable they
//! are reported as ignored (`#[needs_postgres]`), except on CI (`CI=true`), where skipping would
//! hide a broken backend: there they run and fail.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "the cases are plain async fns run by `store_suite!`, not `#[test]`s, so clippy's test allowances do not reach them; a test may expect and panic"
)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::join_all;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::audit::{AuditEntry, AuditQuery};
use llm_proxy_core::config::RouteConfig;
use llm_proxy_core::request_log::{AttemptRecord, LogCursor, LogQuery, RequestLogEntry};
use llm_proxy_core::store::{StatsGroup, StatsQuery, StatsRow, Store, StoreError, StoredRoute};
use llm_proxy_core::stored_response::StoredResponse;
use llm_proxy_core::upstream_object::{ObjectKind, ObjectQuery, UpstreamObject};
use llm_proxy_core::user::{NewUser, Role, SessionRecord};
use llm_proxy_core::virtual_key::{KeyLimits, KeyRecord, NewKey, hash_key};
use llm_proxy_store::connect;
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, SqliteConnection};

// ---------------------------------------------------------------------------------------------
// Fixtures

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One test's private database. Cheap to clone; the harness owns its clean-up.
#[derive(Clone)]
struct TestDb {
    url: String,
    backend: Backend,
}

impl TestDb {
    async fn store(&self) -> Arc<dyn Store> {
        connect(&self.url, 4, 1).await.expect("connect")
    }

    async fn migrated(&self) -> Arc<dyn Store> {
        let store = self.store().await;
        store.migrate().await.expect("migrate");
        store
    }

    /// Rows in sqlx's migrations table, read behind the store's back.
    async fn migration_rows(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations";
        match self.backend {
            Backend::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.expect("sqlite");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.expect("count")
            }
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("postgres");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.expect("count")
            }
        }
    }

    /// Runs `sql` behind the store's back, as an older or newer build (or a damaged disk) might.
    async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.expect("sqlite");
                c.execute(sql).await.expect("execute");
            }
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("postgres");
                c.execute(sql).await.expect("execute");
            }
        }
    }

    /// One integer read behind the store's back.
    async fn scalar(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.expect("sqlite");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.expect("scalar")
            }
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("postgres");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.expect("scalar")
            }
        }
    }

    /// Applies only the embedded migrations whose file name starts with one of `prefixes`, as an
    /// older build would have.
    async fn migrate_only(&self, prefixes: &[&str]) {
        let from = self.migrations_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        for file in std::fs::read_dir(&from).expect("migrations dir") {
            let file = file.expect("entry");
            let name = file.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| name.starts_with(p)) {
                std::fs::copy(file.path(), dir.path().join(&name)).expect("copy migration");
            }
        }
        let migrator = sqlx::migrate::Migrator::new(dir.path()).await.expect("older migrations");
        match self.backend {
            Backend::Sqlite => {
                // The database does not exist yet: the older build would have created it.
                let options: SqliteConnectOptions = self.url.parse().expect("sqlite url");
                let mut c = options.create_if_missing(true).connect().await.expect("sqlite");
                migrator.run(&mut c).await.expect("older migrate");
            }
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("postgres");
                migrator.run(&mut c).await.expect("older migrate");
            }
        }
    }

    fn migrations_dir(&self) -> String {
        let dir = match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR"))
    }

    fn embedded_migrations(&self) -> i64 {
        std::fs::read_dir(self.migrations_dir()).expect("migrations dir").count() as i64
    }
}

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    case(TestDb { url, backend: Backend::Sqlite }).await;
}

/// The server named by `LLM_PROXY_TEST_DATABASE_URL`, or `None` to skip (only a run with
/// `--include-ignored` gets here without one).
fn postgres_server() -> Option<String> {
    match std::env::var("LLM_PROXY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "LLM_PROXY_TEST_DATABASE_URL is not set, but CI=true: the PostgreSQL suite must run on CI \
             (e.g. LLM_PROXY_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            eprintln!("skipping PostgreSQL test: LLM_PROXY_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// `url` pointing at database `name` instead, query string kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[host_start..].find('/').map_or(base.len(), |i| host_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(server) = postgres_server() else {
        return;
    };
    let name = format!("llmp_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server).await.expect("connect to LLM_PROXY_TEST_DATABASE_URL");
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
    let db = TestDb { url: with_database(&server, &name), backend: Backend::Postgres };
    // Catch the failure so the database is dropped either way, then fail the test with it.
    let outcome = AssertUnwindSafe(case(db)).catch_unwind().await;
    // FORCE: pools the case dropped may still be closing their connections.
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.expect("drop test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn new_key(id: &str, name: &str) -> NewKey {
    NewKey {
        limits: Default::default(),
        id: id.to_string(),
        name: name.to_string(),
        hash: hash_key(&format!("secret-of-{id}")),
        display: format!("sk-llmp-{id}…"),
        models: Vec::new(),
        user: None,
        expires_at: None,
    }
}

/// `created_at` in milliseconds, as the database holds it.
fn log(request_id: &str, created_at: i64, key_id: Option<&str>) -> RequestLogEntry {
    RequestLogEntry {
        request_id: request_id.to_string(),
        created_at: UnixMillis::from_i64(created_at),
        key_id: key_id.map(str::to_string),
        endpoint: "chat.completions".to_string(),
        status: 200,
        latency_ms: 12,
        ..Default::default()
    }
}

fn route(name: &str, models: &[&str]) -> RouteConfig {
    let targets: Vec<_> = models.iter().map(|m| json!({"model": m})).collect();
    serde_json::from_value(json!({"name": name, "targets": targets})).expect("route")
}

fn attempt(provider: &str, model: &str, status: u16, error_kind: Option<&str>) -> AttemptRecord {
    AttemptRecord {
        provider: provider.into(),
        model: model.into(),
        status,
        latency_ms: u64::from(status) / 10,
        error_kind: error_kind.map(llm_proxy_core::request_log::ErrorKind::parse),
    }
}

fn names(routes: &[StoredRoute]) -> Vec<&str> {
    routes.iter().map(|r| r.config.name.as_str()).collect()
}

/// Every row, walking the pages the way a client would.
async fn all_logs(store: &dyn Store, key_id: Option<&str>) -> Vec<RequestLogEntry> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_logs(&LogQuery { cursor, limit: 1000, key_id: key_id.map(str::to_string), ..Default::default() })
            .await
            .expect("list_logs");
        out.extend(page.entries);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Newest first, ties broken by request id — the order the store promises.
fn newest_first(mut entries: Vec<RequestLogEntry>) -> Vec<RequestLogEntry> {
    entries.sort_by(|a, b| (b.created_at, &b.request_id).cmp(&(a.created_at, &a.request_id)));
    entries
}

fn ids(entries: &[RequestLogEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.request_id.as_str()).collect()
}

/// Now plus `d`.
fn in_(d: Duration) -> UnixMillis {
    UnixMillis::now() + d
}

/// Keys inserted back to back can share a millisecond; the ordering cases need them apart.
async fn next_ms() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

// ---------------------------------------------------------------------------------------------
// Cases

async fn migrating_twice_is_harmless(db: TestDb) {
    let store = db.store().await;
    store.migrate().await.expect("first migrate");
    store.migrate().await.expect("second migrate");
    // A second process starting later sees the schema current, too.
    db.store().await.migrate().await.expect("other instance");
    store.ready().await.expect("ready");
    assert_eq!(db.migration_rows().await, db.embedded_migrations());
}

async fn ready_only_after_migrations(db: TestDb) {
    let store = db.store().await;
    let before = store.ready().await;
    assert!(matches!(before, Err(StoreError::Unavailable(_))), "ready before migrate: {before:?}");
    store.migrate().await.expect("migrate");
    store.ready().await.expect("ready after migrate");
}

async fn instances_starting_together_migrate_once(db: TestDb) {
    let stores = join_all((0..4).map(|_| db.store())).await;
    let results = join_all(stores.iter().map(|s| s.migrate())).await;
    for r in results {
        r.expect("concurrent migrate");
    }
    for s in &stores {
        s.ready().await.expect("ready");
    }
    assert_eq!(db.migration_rows().await, db.embedded_migrations());
}

async fn keys_are_created_listed_and_revoked(db: TestDb) {
    let store = db.migrated().await;
    assert!(store.list_keys().await.expect("list").is_empty());

    let mut first = new_key("k1", "ci");
    first.models = vec!["gpt-4o".into(), "smart".into()];
    first.user = Some("alice".into());
    first.expires_at = Some(in_(Duration::from_secs(86_400)));
    let before = UnixMillis::now();
    let k1 = store.insert_key(&first).await.expect("insert k1");
    assert!(k1.created_at >= before && k1.created_at == k1.updated_at);
    assert_eq!(k1.revoked_at, None);
    assert_eq!(
        (&k1.id, &k1.name, k1.hash, &k1.models, &k1.user, k1.expires_at),
        (&first.id, &first.name, first.hash, &first.models, &first.user, first.expires_at)
    );
    next_ms().await;
    // Names need not be unique.
    let k2 = store.insert_key(&new_key("k2", "ci")).await.expect("insert k2");

    // Everything round-trips exactly, newest first.
    assert_eq!(store.list_keys().await.expect("list"), vec![k2.clone(), k1.clone()]);

    // One secret, one key: the hash is unique.
    let mut same_secret = new_key("k3", "other");
    same_secret.hash = first.hash;
    let dup = store.insert_key(&same_secret).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let dup_id = store.insert_key(&new_key("k1", "again")).await;
    assert!(matches!(dup_id, Err(StoreError::Conflict(_))), "{dup_id:?}");

    next_ms().await;
    let revoked = store.revoke_key("k1").await.expect("revoke");
    let at = revoked.revoked_at.expect("revoked_at set");
    assert!(at > k1.created_at);
    assert_eq!(revoked.updated_at, at);
    assert_eq!(
        KeyRecord { revoked_at: None, updated_at: k1.updated_at, ..revoked.clone() },
        k1,
        "revoking changes nothing else"
    );

    // Revoking again is not an error and changes nothing.
    next_ms().await;
    let again = store.revoke_key("k1").await.expect("revoke again");
    assert_eq!(again, revoked);

    let missing = store.revoke_key("no-such-key").await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    assert_eq!(store.list_keys().await.expect("list"), vec![k2, revoked]);
}

async fn key_changes_are_seen_by_polling(db: TestDb) {
    let store = db.migrated().await;
    let a = store.insert_key(&new_key("a", "a")).await.expect("insert a");
    let b = store.insert_key(&new_key("b", "b")).await.expect("insert b");

    let mut all = store.keys_updated_since(UnixMillis::EPOCH).await.expect("since 0");
    all.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(all, vec![a.clone(), b.clone()]);

    // `since` is inclusive: the newest change is seen again at its own timestamp.
    let newest = a.updated_at.max(b.updated_at);
    assert!(!store.keys_updated_since(newest).await.expect("since newest").is_empty());

    next_ms().await;
    let mark = in_(Duration::from_millis(1));
    next_ms().await;
    assert!(store.keys_updated_since(mark).await.expect("since mark").is_empty());

    let revoked = store.revoke_key("a").await.expect("revoke");
    assert_eq!(store.keys_updated_since(mark).await.expect("since mark"), vec![revoked]);
}

async fn retried_log_batches_never_duplicate(db: TestDb) {
    let store = db.migrated().await;
    store.insert_logs(&[]).await.expect("empty batch");

    // Bigger than one multi-row INSERT, so the batch spans several statements.
    let batch: Vec<_> = (0..1201).map(|i| log(&format!("req-{i:05}"), 1_000 + i, Some("k"))).collect();
    store.insert_logs(&batch).await.expect("insert");
    store.insert_logs(&batch).await.expect("same batch again");

    // A retry that overlaps old rows and carries new ones keeps the new ones.
    let mut overlapping = batch[1100..].to_vec();
    overlapping.push(log("req-new", 5_000, None));
    store.insert_logs(&overlapping).await.expect("overlapping batch");

    let mut expected = batch;
    expected.push(log("req-new", 5_000, None));
    assert_eq!(all_logs(store.as_ref(), None).await, newest_first(expected));
}

async fn logs_page_newest_first_without_gaps_or_overlap(db: TestDb) {
    let store = db.migrated().await;
    // 25 rows, three per millisecond, ids not in time order, inserted in two shuffled batches.
    let entries: Vec<_> = (0..25i64).map(|i| log(&format!("r{:02}", (i * 7) % 25), 10_000 + i / 3, None)).collect();
    let (odd, even): (Vec<_>, Vec<_>) =
        entries.iter().cloned().partition(|e| e.request_id.ends_with(['1', '3', '5', '7', '9']));
    store.insert_logs(&even).await.expect("insert");
    store.insert_logs(&odd).await.expect("insert");
    let expected = newest_first(entries);

    let mut seen = Vec::new();
    let mut cursor: Option<LogCursor> = None;
    let mut sizes = Vec::new();
    loop {
        let page =
            store.list_logs(&LogQuery { cursor: cursor.clone(), limit: 10, ..Default::default() }).await.expect("page");
        sizes.push(page.entries.len());
        if let Some(next) = &page.next {
            let last = page.entries.last().expect("a page with a cursor has rows");
            assert_eq!((next.created_at, next.request_id.as_str()), (last.created_at, last.request_id.as_str()));
            // The cursor survives the trip through the API as text.
            assert_eq!(LogCursor::decode(&next.encode()).as_ref(), Some(next));
        }
        seen.extend(page.entries);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(ids(&seen), ids(&expected));

    // A limit of 0 means the default page, which holds all 25.
    let page = store.list_logs(&LogQuery::default()).await.expect("default limit");
    assert_eq!(page.entries.len(), 25);
    assert_eq!(page.next, None);
}

async fn log_page_size_is_clamped(db: TestDb) {
    let store = db.migrated().await;
    let entries: Vec<_> = (0..1001).map(|i| log(&format!("r{i:04}"), i, None)).collect();
    store.insert_logs(&entries).await.expect("insert");

    let huge = store.list_logs(&LogQuery { limit: 50_000, ..Default::default() }).await.expect("huge limit");
    assert_eq!(huge.entries.len(), 1000);
    assert!(huge.next.is_some());

    let default = store.list_logs(&LogQuery::default()).await.expect("default");
    assert_eq!(default.entries.len(), 100);
    assert_eq!(default.entries[0].request_id, "r1000");

    let one = store.list_logs(&LogQuery { limit: 1, ..Default::default() }).await.expect("one");
    assert_eq!(ids(&one.entries), vec!["r1000"]);
}

async fn logs_filter_by_key(db: TestDb) {
    let store = db.migrated().await;
    let entries: Vec<_> = (0..12i64)
        .map(|i| {
            let key = match i % 3 {
                0 => Some("alpha"),
                1 => Some("beta"),
                _ => None,
            };
            log(&format!("r{i:02}"), 100 + i / 2, key)
        })
        .collect();
    store.insert_logs(&entries).await.expect("insert");

    // Small pages, so the filter and the cursor must work together.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_logs(&LogQuery { cursor, limit: 2, key_id: Some("alpha".into()), ..Default::default() })
            .await
            .expect("page");
        seen.extend(page.entries);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected = newest_first(entries.iter().filter(|e| e.key_id.as_deref() == Some("alpha")).cloned().collect());
    assert_eq!(seen, expected);
    assert!(all_logs(store.as_ref(), Some("nobody")).await.is_empty());
    assert_eq!(all_logs(store.as_ref(), None).await.len(), 12);
}

async fn log_fields_round_trip_exactly(db: TestDb) {
    let store = db.migrated().await;
    let full = RequestLogEntry {
        request_id: "01J-full".into(),
        created_at: UnixMillis::from_millis(1_700_000_000_123),
        key_id: Some("key-1".into()),
        endpoint: "messages".into(),
        model: Some("smart".into()),
        provider: Some("anthropic".into()),
        upstream_model: Some("claude-sonnet-4-5".into()),
        stream: true,
        status: 499,
        latency_ms: 98_765,
        ttft_ms: Some(321),
        prompt_tokens: Some(4_000_000_000_000),
        completion_tokens: Some(7),
        cached_tokens: Some(3_000_000_000_000),
        cache_write_tokens: Some(11),
        reasoning_tokens: Some(5),
        cost_usd: Some(0.1 + 0.2),
        cost_estimated: true,
        user: Some("alice — ops 😶".into()),
        error_kind: Some(llm_proxy_core::request_log::ErrorKind::ClientDisconnect),
        error_message: Some("client went away — \"mid-stream\" 😶; DROP TABLE x;".into()),
        attempts: vec![
            attempt("openai", "gpt-4o", 429, Some("upstream_status")),
            attempt("anthropic", "claude-sonnet-4-5", 200, None),
        ],
    };
    let bare = RequestLogEntry {
        request_id: "01J-bare".into(),
        created_at: UnixMillis::from_millis(1_700_000_000_000),
        key_id: None,
        endpoint: "embeddings".into(),
        model: None,
        provider: None,
        upstream_model: None,
        stream: false,
        status: 200,
        latency_ms: 0,
        ttft_ms: None,
        prompt_tokens: None,
        completion_tokens: None,
        cached_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        cost_usd: None,
        cost_estimated: false,
        user: None,
        error_kind: None,
        error_message: None,
        attempts: Vec::new(),
    };
    // Zero is a value, not an absence.
    let zeros = RequestLogEntry {
        request_id: "01J-zero".into(),
        created_at: UnixMillis::from_millis(1_600_000_000_000),
        ttft_ms: Some(0),
        prompt_tokens: Some(0),
        completion_tokens: Some(0),
        cached_tokens: Some(0),
        cache_write_tokens: Some(0),
        reasoning_tokens: Some(0),
        cost_usd: Some(0.0),
        model: Some(String::new()),
        user: Some(String::new()),
        ..bare.clone()
    };
    store.insert_logs(&[bare.clone(), zeros.clone(), full.clone()]).await.expect("insert");
    let got = all_logs(store.as_ref(), None).await;
    assert_eq!(got, vec![full, bare, zeros]);
    assert_eq!(got[0].cost_usd.map(f64::to_bits), Some((0.1f64 + 0.2).to_bits()));
}

async fn log_attempts_round_trip_and_unreadable_ones_read_as_none(db: TestDb) {
    let store = db.migrated().await;
    let mut retried = log("r-retried", 3, Some("k"));
    retried.attempts = vec![
        attempt("primary", "mock-flaky-1", 500, Some("upstream_status")),
        attempt("primary", "mock-flaky-1", 502, Some("upstream_connect")),
        attempt("backup", "mock-b", 200, None),
    ];
    let mut one = log("r-one", 2, Some("k"));
    one.attempts = vec![attempt("primary", "mock-a", 200, None)];
    let none = log("r-none", 1, Some("k"));
    store.insert_logs(&[none.clone(), one.clone(), retried.clone()]).await.expect("insert");
    assert_eq!(all_logs(store.as_ref(), None).await, vec![retried.clone(), one.clone(), none.clone()]);

    // A row without attempts stores NULL, not an empty array.
    let nulls = "SELECT COUNT(*) FROM request_logs WHERE attempts IS NULL";
    let count: i64 = match db.backend {
        Backend::Sqlite => {
            let mut c = SqliteConnection::connect(&db.url).await.expect("sqlite");
            sqlx::query_scalar(nulls).fetch_one(&mut c).await.expect("count")
        }
        Backend::Postgres => {
            let mut c = PgConnection::connect(&db.url).await.expect("postgres");
            sqlx::query_scalar(nulls).fetch_one(&mut c).await.expect("count")
        }
    };
    assert_eq!(count, 1);

    // Text this build cannot read (a newer build's shape, a damaged row) is no error: the row
    // reads with no attempts.
    db.execute("UPDATE request_logs SET attempts = '[{\"provider\": 1}]' WHERE request_id = 'r-retried'").await;
    db.execute("UPDATE request_logs SET attempts = 'not json' WHERE request_id = 'r-one'").await;
    db.execute("UPDATE request_logs SET attempts = '' WHERE request_id = 'r-none'").await;
    let got = all_logs(store.as_ref(), None).await;
    assert_eq!(
        got,
        vec![
            RequestLogEntry { attempts: Vec::new(), ..retried },
            RequestLogEntry { attempts: Vec::new(), ..one },
            none
        ]
    );
}

async fn key_limits_round_trip_and_unreadable_ones_read_as_none(db: TestDb) {
    let store = db.migrated().await;
    let mut all = new_key("k-all", "every limit");
    all.limits = KeyLimits {
        rpm: Some(60),
        tpm: Some(100_000),
        max_parallel: Some(4),
        budget_hourly: Some(0.5),
        budget_daily: Some(0.1 + 0.2),
        budget_monthly: Some(300.0),
    };
    let mut daily = new_key("k-daily", "one limit");
    daily.limits = KeyLimits { budget_daily: Some(10.0), ..Default::default() };
    let plain = new_key("k-plain", "no limits");

    let mut inserted = Vec::new();
    for key in [&all, &daily, &plain] {
        let record = store.insert_key(key).await.expect("insert");
        assert_eq!(record.limits, key.limits);
        inserted.push(record);
        next_ms().await;
    }
    // As listed, as polled, and as revoked: every path reads the column.
    let listed = store.list_keys().await.expect("list");
    assert_eq!(listed, inserted.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(store.keys_updated_since(UnixMillis::EPOCH).await.expect("since 0"), inserted);
    assert_eq!(listed[2].limits.budget_daily.map(f64::to_bits), Some((0.1f64 + 0.2).to_bits()));
    let revoked = store.revoke_key("k-all").await.expect("revoke");
    assert_eq!(revoked.limits, all.limits);

    // A key without limits of its own stores NULL, not `{}`.
    assert_eq!(db.scalar("SELECT COUNT(*) FROM api_keys WHERE limits IS NULL").await, 1);

    // Text this build cannot read is no error: the key reads with no limits of its own (it falls
    // back to the configured ones). A field this build does not know is ignored.
    db.execute("UPDATE api_keys SET limits = 'not json' WHERE id = 'k-all'").await;
    db.execute("UPDATE api_keys SET limits = '{\"rpm\": \"fast\"}' WHERE id = 'k-daily'").await;
    db.execute("UPDATE api_keys SET limits = '{\"rpm\": 5, \"burst\": 9}' WHERE id = 'k-plain'").await;
    let limits: Vec<(String, KeyLimits)> =
        store.list_keys().await.expect("list").into_iter().map(|k| (k.id, k.limits)).collect();
    assert_eq!(
        limits,
        vec![
            ("k-plain".into(), KeyLimits { rpm: Some(5), ..Default::default() }),
            ("k-daily".into(), KeyLimits::default()),
            ("k-all".into(), KeyLimits::default()),
        ]
    );
    db.execute("UPDATE api_keys SET limits = '' WHERE id = 'k-plain'").await;
    assert!(store.keys_updated_since(UnixMillis::EPOCH).await.expect("poll").iter().all(|k| k.limits.is_empty()));
}

/// 10:00 UTC on 14 November 2023, in milliseconds: the start of an hour.
const H0: i64 = 1_699_956_000_000;
const HOUR: i64 = 3_600_000;
const H1: i64 = H0 + HOUR;
const H2: i64 = H1 + HOUR;

/// A log row for the usage cases: who, what, when, and what it cost.
#[expect(clippy::too_many_arguments, reason = "one argument per column of the row it builds")]
fn used(
    request_id: &str,
    created_at: i64,
    key: Option<&str>,
    user: Option<&str>,
    model: Option<&str>,
    provider: Option<&str>,
    status: u16,
    tokens: Option<(u64, u64, u64)>,
    cost_usd: Option<f64>,
) -> RequestLogEntry {
    RequestLogEntry {
        user: user.map(str::to_string),
        model: model.map(str::to_string),
        provider: provider.map(str::to_string),
        status,
        prompt_tokens: tokens.map(|t| t.0),
        completion_tokens: tokens.map(|t| t.1),
        cached_tokens: tokens.map(|t| t.2),
        cost_usd,
        ..log(request_id, created_at, key)
    }
}

/// Six requests over two hours, two keys (and their users), two models on two providers, and
/// one request that never got as far as a key or a model. Costs are exact in binary, so sums
/// compare exactly whatever order the database adds them in.
fn two_hours_of_usage() -> Vec<RequestLogEntry> {
    let (k1, alice, k2, bob) = (Some("k1"), Some("alice"), Some("k2"), Some("bob"));
    let (gpt, openai, claude, anthropic) = (Some("gpt"), Some("openai"), Some("claude"), Some("anthropic"));
    vec![
        used("a1", H0 + 1, k1, alice, gpt, openai, 200, Some((10, 5, 2)), Some(0.25)),
        used("a2", H1 - 1, k1, alice, claude, anthropic, 200, Some((20, 10, 0)), Some(0.5)),
        used("a3", H1, k2, bob, gpt, openai, 499, Some((3, 1, 0)), Some(0.125)),
        used("a4", H1 + 5, k2, bob, claude, anthropic, 400, None, None),
        used("a5", H1 + 10, None, None, None, None, 401, None, None),
        used("a6", H0 + 7, k1, alice, gpt, openai, 200, Some((100, 50, 40)), Some(1.0)),
    ]
}

fn row(
    group: Option<&str>,
    requests: u64,
    errors: u64,
    prompt: u64,
    completion: u64,
    cached: u64,
    cost: f64,
) -> StatsRow {
    StatsRow {
        group: group.map(str::to_string),
        requests,
        errors,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        cost_usd: cost,
    }
}

async fn stats(
    store: &dyn Store,
    from_ms: i64,
    to_ms: i64,
    group_by: StatsGroup,
    key_id: Option<&str>,
) -> Vec<StatsRow> {
    store
        .usage_stats(&StatsQuery {
            from: UnixMillis::from_i64(from_ms),
            to: UnixMillis::from_i64(to_ms),
            group_by,
            key_id: key_id.map(str::to_string),
            user: None,
        })
        .await
        .expect("usage_stats")
}

async fn usage_is_summed_per_group(db: TestDb) {
    let store = db.migrated().await;
    let store = store.as_ref();
    store.insert_logs(&two_hours_of_usage()).await.expect("insert");
    let (from, to) = (H0, H2);

    assert_eq!(
        stats(store, from, to, StatsGroup::Key, None).await,
        vec![
            row(None, 1, 1, 0, 0, 0, 0.0),
            row(Some("k1"), 3, 0, 130, 65, 42, 1.75),
            row(Some("k2"), 2, 2, 3, 1, 0, 0.125),
        ]
    );
    assert_eq!(
        stats(store, from, to, StatsGroup::User, None).await,
        vec![
            row(None, 1, 1, 0, 0, 0, 0.0),
            row(Some("alice"), 3, 0, 130, 65, 42, 1.75),
            row(Some("bob"), 2, 2, 3, 1, 0, 0.125),
        ]
    );
    assert_eq!(
        stats(store, from, to, StatsGroup::Model, None).await,
        vec![
            row(None, 1, 1, 0, 0, 0, 0.0),
            row(Some("claude"), 2, 1, 20, 10, 0, 0.5),
            row(Some("gpt"), 3, 1, 113, 56, 42, 1.375),
        ]
    );
    assert_eq!(
        stats(store, from, to, StatsGroup::Provider, None).await,
        vec![
            row(None, 1, 1, 0, 0, 0, 0.0),
            row(Some("anthropic"), 2, 1, 20, 10, 0, 0.5),
            row(Some("openai"), 3, 1, 113, 56, 42, 1.375),
        ]
    );
    let total = row(None, 6, 3, 133, 66, 42, 1.875);
    assert_eq!(stats(store, from, to, StatsGroup::None, None).await, vec![total.clone()]);

    // Per hour: the first holds k1's three requests (one in its last millisecond), the second
    // the rest.
    assert_eq!(stats(store, H0, H1, StatsGroup::None, None).await, vec![row(None, 3, 0, 130, 65, 42, 1.75)]);
    assert_eq!(stats(store, H1, H2, StatsGroup::None, None).await, vec![row(None, 3, 3, 3, 1, 0, 0.125)]);

    // One key's usage.
    assert_eq!(
        stats(store, from, to, StatsGroup::Model, Some("k2")).await,
        vec![row(Some("claude"), 1, 1, 0, 0, 0, 0.0), row(Some("gpt"), 1, 1, 3, 1, 0, 0.125)]
    );
    assert!(stats(store, from, to, StatsGroup::Model, Some("nobody")).await.is_empty());

    // The batch was summed before it was written: one aggregate row per hour and group, not
    // one per request (a1 and a6 share theirs).
    assert_eq!(db.scalar("SELECT COUNT(*) FROM usage_hourly").await, 5);

    // A later batch adds to the same hours.
    store
        .insert_logs(&[used(
            "b1",
            H0 + 100,
            Some("k1"),
            Some("alice"),
            Some("gpt"),
            Some("openai"),
            503,
            Some((1, 0, 0)),
            Some(0.5),
        )])
        .await
        .expect("insert more");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM usage_hourly").await, 5);
    assert_eq!(
        stats(store, from, to, StatsGroup::Key, Some("k1")).await,
        vec![row(Some("k1"), 4, 1, 131, 65, 42, 2.25)]
    );
}

async fn retried_batches_are_summed_once(db: TestDb) {
    let store = db.migrated().await;
    let store = store.as_ref();
    let batch = two_hours_of_usage();
    store.insert_logs(&batch).await.expect("insert");
    let total = row(None, 6, 3, 133, 66, 42, 1.875);
    let by_key = stats(store, H0, H2, StatsGroup::Key, None).await;

    // The same batch again (the writer retrying after an ambiguous failure) changes nothing.
    store.insert_logs(&batch).await.expect("retry");
    assert_eq!(stats(store, H0, H2, StatsGroup::None, None).await, vec![total]);
    assert_eq!(stats(store, H0, H2, StatsGroup::Key, None).await, by_key);

    // A batch mixing a row already stored with new ones counts only the new ones; a request id
    // repeated within a batch is stored, and counted, once (the first).
    let mut again = batch[2].clone();
    again.prompt_tokens = Some(1000);
    let new = used("c1", H1 + 1, Some("k2"), Some("bob"), Some("gpt"), Some("openai"), 200, Some((7, 7, 7)), Some(2.0));
    let mut repeated = new.clone();
    repeated.cost_usd = Some(64.0);
    store.insert_logs(&[again, new.clone(), repeated]).await.expect("mixed");
    assert_eq!(stats(store, H0, H2, StatsGroup::None, None).await, vec![row(None, 7, 3, 140, 73, 49, 3.875)]);
    let logs = all_logs(store, None).await;
    assert_eq!(logs.len(), 7);
    assert_eq!(logs.iter().find(|e| e.request_id == "c1"), Some(&new));

    // Across statements: 600 rows, then 600 more of which the first 300 are stored already.
    let many = |range: std::ops::Range<i64>| -> Vec<RequestLogEntry> {
        range
            .map(|i| used(&format!("m{i:04}"), H2 + i, Some("bulk"), None, None, None, 200, Some((1, 1, 0)), Some(0.5)))
            .collect()
    };
    store.insert_logs(&many(0..600)).await.expect("600");
    store.insert_logs(&many(300..900)).await.expect("600 more, half retried");
    assert_eq!(
        stats(store, H2, H2 + HOUR, StatsGroup::Key, None).await,
        vec![row(Some("bulk"), 900, 0, 900, 900, 0, 450.0)]
    );
}

async fn usage_ranges_cover_hours_starting_in_them(db: TestDb) {
    let store = db.migrated().await;
    let store = store.as_ref();
    let at = |id: &str, ms: i64| used(id, ms, Some("k"), None, Some("m"), None, 200, Some((1, 0, 0)), None);
    store
        .insert_logs(&[
            at("first-ms-of-h0", H0),
            at("last-ms-of-h0", H1 - 1),
            at("h1", H1),
            at("last-ms-of-h2", H2 + HOUR - 1),
        ])
        .await
        .expect("insert");
    let requests = |from: i64, to: i64| async move {
        let rows = stats(store, from, to, StatsGroup::None, None).await;
        assert_eq!(rows.len(), 1, "no grouping, one row");
        rows[0].requests
    };
    assert_eq!(requests(H0, H1).await, 2, "from is inclusive, to exclusive");
    assert_eq!(requests(H1, H2).await, 1);
    assert_eq!(requests(H1, H2 + 1).await, 2, "an hour starting before `to` counts whole");
    assert_eq!(requests(H0 + 1, H2).await, 1, "an hour starting before `from` is left out whole");
    assert_eq!(requests(H0 - HOUR, H2 + HOUR).await, 4);
    assert_eq!(requests(H0, H0).await, 0, "an empty range still gives its one row");
    assert_eq!(requests(H2, H0).await, 0);
    assert!(stats(store, H0, H0, StatsGroup::Key, None).await.is_empty(), "but no groups");

    // Hours are UTC and floor, the first one of 1970 included.
    store.insert_logs(&[at("epoch", 0)]).await.expect("insert");
    assert_eq!(requests(0, 1).await, 1);
    assert_eq!(requests(1, HOUR).await, 0);

    // A row from before 1970 (which the gateway never writes) reads as the epoch rather than
    // failing the page it is on.
    db.execute(
        "INSERT INTO request_logs (request_id, created_at, endpoint, stream, status, latency_ms) \
         VALUES ('before-epoch', -1, 'chat.completions', FALSE, 200, 1)",
    )
    .await;
    let read = all_logs(store, None).await;
    let before_epoch = read.iter().find(|e| e.request_id == "before-epoch").expect("listed");
    assert_eq!(before_epoch.created_at, UnixMillis::EPOCH);
}

async fn logs_written_before_usage_aggregates_are_summed_by_the_migration(db: TestDb) {
    // The schema of the build before aggregates, with a log it wrote.
    db.migrate_only(&["0001_", "0002_"]).await;
    db.execute(
        "INSERT INTO request_logs (request_id, created_at, key_id, endpoint, model, provider, stream, status, \
         latency_ms, prompt_tokens, completion_tokens, cost_usd) VALUES \
         ('old-1', 1699956000005, 'k1', 'chat.completions', 'gpt', 'openai', FALSE, 200, 9, 10, 5, 0.25), \
         ('old-2', 1699956000006, 'k1', 'chat.completions', 'gpt', 'openai', TRUE, 502, 9, NULL, NULL, NULL), \
         ('old-3', 1699959600000, NULL, 'chat.completions', NULL, NULL, FALSE, 401, 1, NULL, NULL, NULL)",
    )
    .await;
    let store = db.migrated().await;
    let store = store.as_ref();
    assert_eq!(db.migration_rows().await, db.embedded_migrations());
    assert_eq!(
        stats(store, H0, H2, StatsGroup::Key, None).await,
        vec![row(None, 1, 1, 0, 0, 0, 0.0), row(Some("k1"), 2, 1, 10, 5, 0, 0.25)]
    );

    // The old rows read with the new fields empty, and retrying them counts nothing again.
    let old = all_logs(store, None).await;
    assert_eq!((old[2].cached_tokens, old[2].cost_estimated, old[2].user.as_deref()), (None, false, None));
    store.insert_logs(&old).await.expect("retry old rows");
    assert_eq!(stats(store, H0, H2, StatsGroup::None, None).await, vec![row(None, 3, 2, 10, 5, 0, 0.25)]);
}

async fn routes_are_put_replaced_listed_and_deleted(db: TestDb) {
    let store = db.migrated().await;
    assert!(store.list_routes().await.expect("list").is_empty());

    // Every field of a route survives the trip.
    let full: RouteConfig = serde_json::from_value(json!({
        "name": "smart",
        "strategy": "semantic",
        "targets": [
            {"model": "oai/gpt-4o", "weight": 3, "max_in_flight": 8, "examples": ["write a poem", "été ☀️"]},
            {"model": "claude/claude-sonnet-4-5", "examples": ["fix this code"]}
        ],
        "fallbacks": ["gem/gemini-2.5-flash"],
        "context_window_fallbacks": ["gem/gemini-2.5-pro"],
        "retries": 2,
        "max_attempts": 5,
        "timeout_secs": 30,
        "semantic": {"embedding_model": "oai/text-embedding-3-small", "threshold": 0.25, "default": "oai/gpt-4o"}
    }))
    .expect("route");
    let before = UnixMillis::now();
    let put = store.put_route(&full).await.expect("put smart");
    assert_eq!((&put.config, put.deleted), (&full, false));
    assert!(put.updated_at >= before, "stamped now: {} vs {before}", put.updated_at);
    let cheap = store.put_route(&route("cheap", &["oai/gpt-4o-mini"])).await.expect("put cheap");
    assert_eq!(store.list_routes().await.expect("list"), vec![cheap.clone(), put.clone()], "by name");

    // Putting an existing name replaces it.
    next_ms().await;
    let replaced = store.put_route(&route("smart", &["oai/gpt-4.1"])).await.expect("replace");
    assert!(replaced.updated_at > put.updated_at);
    assert_eq!(store.list_routes().await.expect("list"), vec![cheap.clone(), replaced.clone()]);

    next_ms().await;
    store.delete_route("cheap").await.expect("delete");
    assert_eq!(store.list_routes().await.expect("list"), vec![replaced.clone()]);
    for gone in ["cheap", "never-was"] {
        let again = store.delete_route(gone).await;
        assert!(matches!(again, Err(StoreError::NotFound)), "{gone}: {again:?}");
    }

    // A deleted name can be put again; it is live once more.
    next_ms().await;
    let back = store.put_route(&route("cheap", &["oai/gpt-4o-mini", "gem/gemini-2.5-flash"])).await.expect("put again");
    assert!(!back.deleted);
    assert_eq!(store.list_routes().await.expect("list"), vec![back, replaced]);
}

async fn route_changes_are_seen_by_polling(db: TestDb) {
    let store = db.migrated().await;
    let a = store.put_route(&route("a", &["oai/x"])).await.expect("put a");
    let b = store.put_route(&route("b", &["oai/y"])).await.expect("put b");
    let mut all = store.routes_updated_since(UnixMillis::EPOCH).await.expect("since 0");
    all.sort_by(|x, y| x.config.name.cmp(&y.config.name));
    assert_eq!(all, vec![a.clone(), b.clone()]);

    // `since` is inclusive: the newest change is seen again at its own timestamp.
    let newest = a.updated_at.max(b.updated_at);
    assert!(!store.routes_updated_since(newest).await.expect("since newest").is_empty());

    next_ms().await;
    let mark = in_(Duration::from_millis(1));
    next_ms().await;
    assert!(store.routes_updated_since(mark).await.expect("since mark").is_empty());

    // A delete is a change the pollers must see, though the route is no longer listed.
    store.delete_route("a").await.expect("delete a");
    let changed = store.routes_updated_since(mark).await.expect("since mark");
    assert_eq!(changed.len(), 1);
    let deleted = &changed[0];
    assert_eq!((deleted.config.clone(), deleted.deleted), (a.config.clone(), true), "the last config, marked deleted");
    assert!(deleted.updated_at >= mark);
    assert_eq!(names(&store.list_routes().await.expect("list")), vec!["b"]);

    // A replace after the mark shows too, in the order the changes happened.
    next_ms().await;
    let b2 = store.put_route(&route("b", &["oai/z"])).await.expect("replace b");
    let changed = store.routes_updated_since(mark).await.expect("since mark");
    assert_eq!(names(&changed), vec!["a", "b"]);
    assert_eq!(changed[1], b2);

    // A route this build cannot read (say, written by a newer one) is left out, not an error.
    db.execute("UPDATE routes SET config = '{\"name\": \"b\", \"targets\": [], \"future\": 1}' WHERE name = 'b'").await;
    assert!(store.list_routes().await.expect("list").is_empty());
    assert_eq!(names(&store.routes_updated_since(UnixMillis::EPOCH).await.expect("since 0")), vec!["a"]);
}

async fn migrating_again_keeps_the_data(db: TestDb) {
    let store = db.migrated().await;
    let r = store.put_route(&route("r", &["oai/x"])).await.expect("put");
    let mut entry = log("req", 1, None);
    entry.attempts = vec![attempt("p", "m", 200, None)];
    store.insert_logs(std::slice::from_ref(&entry)).await.expect("insert");
    store.migrate().await.expect("migrate again");
    db.store().await.migrate().await.expect("another instance migrates");
    assert_eq!(db.migration_rows().await, db.embedded_migrations());
    assert_eq!(store.list_routes().await.expect("list"), vec![r]);
    assert_eq!(all_logs(store.as_ref(), None).await, vec![entry]);
}

async fn old_logs_are_deleted_in_batches_and_usage_is_kept(db: TestDb) {
    let store = db.migrated().await;
    let batch: Vec<_> = (0..25).map(|i| log(&format!("req-{i:03}"), 1_000 + i, Some("k"))).collect();
    store.insert_logs(&batch).await.expect("insert");
    let before = stats(store.as_ref(), 0, 10_000_000, StatsGroup::None, None).await;

    // Rows created before 1_020: the first 20, at most 8 per call, oldest first.
    assert_eq!(store.delete_logs_before(UnixMillis::from_millis(1_020), 8).await.expect("delete"), 8);
    let left = all_logs(store.as_ref(), None).await;
    assert_eq!(left.len(), 17);
    assert!(left.iter().all(|e| e.created_at >= UnixMillis::from_millis(1_008)), "the oldest went first");
    assert_eq!(store.delete_logs_before(UnixMillis::from_millis(1_020), 8).await.expect("delete"), 8);
    assert_eq!(store.delete_logs_before(UnixMillis::from_millis(1_020), 8).await.expect("delete"), 4);
    assert_eq!(store.delete_logs_before(UnixMillis::from_millis(1_020), 8).await.expect("delete"), 0);
    assert_eq!(ids(&all_logs(store.as_ref(), None).await), ["req-024", "req-023", "req-022", "req-021", "req-020"]);
    // The hourly aggregates still count every request.
    assert_eq!(stats(store.as_ref(), 0, 10_000_000, StatsGroup::None, None).await, before);
}

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::on_sqlite(crate::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[llm_proxy_testkit_macros::needs_postgres]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::on_postgres(crate::$case).await;
                }
            )*
        }
    };
}

fn response(id: &str, key: &str, previous: Option<&str>, expires_at: i64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        key_id: key.into(),
        created_at: UnixMillis::from_i64(1_000),
        expires_at: UnixMillis::from_i64(expires_at),
        previous_id: previous.map(Into::into),
        upstream: None,
        input: format!(r#"[{{"role":"user","content":"turn {id} é"}}]"#),
        response: format!(r#"{{"id":"{id}","object":"response","output":[]}}"#),
    }
}

async fn responses_chain_back_within_their_key_only(db: TestDb) {
    let store = db.migrated().await;
    let now = UnixMillis::from_i64(5_000);
    let mut first = response("resp_1", "k1", None, 10_000);
    first.upstream = Some("openai".into());
    store.put_responses(&[first.clone()]).await.expect("put 1");
    store.put_responses(&[response("resp_2", "k1", Some("resp_1"), 10_000)]).await.expect("put 2");
    store.put_responses(&[response("resp_3", "k1", Some("resp_2"), 10_000)]).await.expect("put 3");
    // Another key's answer continuing this chain (it cannot happen through the API) does not
    // open the chain to that key.
    store.put_responses(&[response("resp_x", "k2", Some("resp_3"), 10_000)]).await.expect("put x");

    let chain = store.response_chain("resp_3", "k1", now, 100).await.expect("chain");
    let ids: Vec<&str> = chain.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["resp_1", "resp_2", "resp_3"], "oldest first");
    assert_eq!(chain[0], first, "every field round-trips");
    let newest_two = store.response_chain("resp_3", "k1", now, 2).await.expect("chain");
    assert_eq!(newest_two.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["resp_2", "resp_3"]);
    assert!(store.response_chain("resp_3", "k2", now, 100).await.expect("other key").is_empty());
    let x = store.response_chain("resp_x", "k2", now, 100).await.expect("x");
    assert_eq!(x.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["resp_x"], "the chain stops at the key");

    // A retried write replaces; a delete is the key's only.
    let mut again = response("resp_2", "k1", Some("resp_1"), 10_000);
    again.response = r#"{"id":"resp_2","status":"completed"}"#.into();
    store.put_responses(&[again.clone()]).await.expect("put again");
    assert_eq!(store.response_chain("resp_2", "k1", now, 1).await.expect("one")[0], again);
    assert!(matches!(store.delete_response("resp_2", "k2").await, Err(StoreError::NotFound)));
    store.delete_response("resp_2", "k1").await.expect("delete");
    assert!(matches!(store.delete_response("resp_2", "k1").await, Err(StoreError::NotFound)));
    let cut = store.response_chain("resp_3", "k1", now, 100).await.expect("chain");
    assert_eq!(cut.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["resp_3"], "a deleted turn ends the chain");
}

async fn expired_responses_are_hidden_then_deleted_in_batches(db: TestDb) {
    let store = db.migrated().await;
    // One batch, one transaction.
    let old: Vec<StoredResponse> = (0..5).map(|i| response(&format!("old_{i}"), "k", None, 2_000 + i)).collect();
    store.put_responses(&old).await.expect("put old");
    store.put_responses(&[response("new", "k", Some("old_4"), 9_000)]).await.expect("put new");
    let now = UnixMillis::from_i64(5_000);
    assert!(store.response_chain("old_1", "k", now, 10).await.expect("expired").is_empty());
    let chain = store.response_chain("new", "k", now, 10).await.expect("chain");
    assert_eq!(chain.len(), 1, "an expired turn ends the chain");
    assert_eq!(store.delete_expired_responses(now, 3).await.expect("delete"), 3);
    assert_eq!(store.delete_expired_responses(now, 3).await.expect("delete"), 2);
    assert_eq!(store.delete_expired_responses(now, 3).await.expect("delete"), 0);
    // Gone, not hidden: even a clock before their expiry finds none of them.
    let long_ago = UnixMillis::from_i64(0);
    for i in 0..5 {
        assert!(store.response_chain(&format!("old_{i}"), "k", long_ago, 10).await.expect("old").is_empty());
    }
    assert_eq!(store.response_chain("new", "k", long_ago, 10).await.expect("new").len(), 1, "the live one stays");
}

fn object(id: &str, kind: ObjectKind, key: &str, purpose: Option<&str>, created_at: i64) -> UpstreamObject {
    UpstreamObject {
        id: id.into(),
        kind,
        provider: "openai".into(),
        key_id: key.into(),
        purpose: purpose.map(Into::into),
        created_at: UnixMillis::from_i64(created_at),
        object: format!(r#"{{"id":"{id}","object":"{}","filename":"é.jsonl"}}"#, kind.as_str()),
    }
}

fn object_ids(page: &[UpstreamObject]) -> Vec<&str> {
    page.iter().map(|o| o.id.as_str()).collect()
}

async fn files_and_batches_belong_to_their_key_and_page_in_order(db: TestDb) {
    let store = db.migrated().await;
    for i in 1..=5 {
        store
            .put_upstream_object(&object(&format!("file-{i}"), ObjectKind::File, "k1", Some("batch"), 1_000 + i))
            .await
            .expect("put");
    }
    // Two made in the same millisecond still page in a fixed order (by id).
    store
        .put_upstream_object(&object("file-6b", ObjectKind::File, "k1", Some("assistants"), 1_006))
        .await
        .expect("put");
    store
        .put_upstream_object(&object("file-6a", ObjectKind::File, "k1", Some("assistants"), 1_006))
        .await
        .expect("put");
    store.put_upstream_object(&object("batch_1", ObjectKind::Batch, "k1", None, 1_007)).await.expect("put");
    store.put_upstream_object(&object("file-x", ObjectKind::File, "k2", Some("batch"), 1_008)).await.expect("put");

    let query = |after: Option<&str>, limit: u32, descending: bool, purpose: Option<&str>| ObjectQuery {
        key_id: "k1".into(),
        kind: ObjectKind::File,
        purpose: purpose.map(Into::into),
        after: after.map(Into::into),
        limit,
        descending,
    };
    let first = store.list_upstream_objects(&query(None, 3, true, None)).await.expect("page 1");
    assert_eq!(
        object_ids(&first),
        ["file-6b", "file-6a", "file-5"],
        "newest first, the other key's and the batch left out"
    );
    let second = store.list_upstream_objects(&query(Some("file-5"), 3, true, None)).await.expect("page 2");
    assert_eq!(object_ids(&second), ["file-4", "file-3", "file-2"]);
    let asc = store.list_upstream_objects(&query(Some("file-5"), 10, false, None)).await.expect("asc");
    assert_eq!(object_ids(&asc), ["file-6a", "file-6b"]);
    let assistants = store.list_upstream_objects(&query(None, 10, true, Some("assistants"))).await.expect("purpose");
    assert_eq!(object_ids(&assistants), ["file-6b", "file-6a"]);
    let foreign_cursor = store.list_upstream_objects(&query(Some("file-x"), 10, true, None)).await.expect("cursor");
    assert!(foreign_cursor.is_empty(), "another key's id is no cursor");

    let got = store.upstream_object("file-3", "k1").await.expect("get").expect("k1's");
    assert_eq!(got, object("file-3", ObjectKind::File, "k1", Some("batch"), 1_003), "every field round-trips");
    assert_eq!(store.upstream_object("file-3", "k2").await.expect("get"), None, "not another key's");

    // Seen again, an object's description is updated, never its owner.
    let mut again = object("batch_1", ObjectKind::Batch, "k1", None, 9_999);
    again.object = r#"{"id":"batch_1","status":"completed"}"#.into();
    store.put_upstream_object(&again).await.expect("update");
    let batch = store.upstream_object("batch_1", "k1").await.expect("get").expect("k1's");
    assert_eq!((batch.object.as_str(), batch.created_at), (again.object.as_str(), UnixMillis::from_i64(1_007)));
    store.put_upstream_object(&object("file-3", ObjectKind::File, "k2", None, 1)).await.expect("no-op");
    assert_eq!(store.upstream_object("file-3", "k2").await.expect("get"), None, "a record is not taken over");

    assert!(matches!(store.delete_upstream_object("file-3", "k2").await, Err(StoreError::NotFound)));
    store.delete_upstream_object("file-3", "k1").await.expect("delete");
    assert_eq!(store.upstream_object("file-3", "k1").await.expect("get"), None);
}

async fn users_and_sessions_round_trip_and_a_password_change_voids_sessions(db: TestDb) {
    let store = db.migrated().await;
    let new = |id: &str, name: &str, role: Role| NewUser {
        id: id.into(),
        username: name.into(),
        role,
        password_hash: format!("$argon2id$hash-of-{name}"),
    };
    let ada = store.insert_user(&new("u1", "ada", Role::Admin), UnixMillis::from_i64(1_000)).await.expect("ada");
    store.insert_user(&new("u2", "bob", Role::Member), UnixMillis::from_i64(2_000)).await.expect("bob");
    assert!(matches!(
        store.insert_user(&new("u3", "ada", Role::Viewer), UnixMillis::from_i64(3_000)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_by_name("ada").await.expect("get"), Some(ada.clone()), "every field round-trips");
    assert_eq!(store.user_by_id("u1").await.expect("get"), Some(ada.clone()));
    assert_eq!(store.user_by_name("nobody").await.expect("get"), None);
    let names: Vec<String> = store.list_users().await.expect("list").into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["ada", "bob"]);

    let session = SessionRecord {
        id: "s1".into(),
        user_id: "u1".into(),
        created_at: UnixMillis::from_i64(5_000),
        expires_at: UnixMillis::from_i64(50_000),
        revoked_at: None,
    };
    store.insert_session(&session).await.expect("session");
    assert_eq!(store.session("s1").await.expect("get"), Some(session.clone()));
    assert!(session.is_live(&ada, UnixMillis::from_i64(6_000)));

    store.set_user_password("u1", "$argon2id$new", UnixMillis::from_i64(7_000)).await.expect("passwd");
    let changed = store.user_by_id("u1").await.expect("get").expect("ada");
    assert_eq!(
        (changed.password_hash.as_str(), changed.sessions_after),
        ("$argon2id$new", UnixMillis::from_i64(7_000))
    );
    assert!(!session.is_live(&changed, UnixMillis::from_i64(8_000)), "made before the change");
    assert!(matches!(store.set_user_password("nope", "x", UnixMillis::from_i64(1)).await, Err(StoreError::NotFound)));

    store.revoke_session("s1", UnixMillis::from_i64(9_000)).await.expect("revoke");
    store.revoke_session("s1", UnixMillis::from_i64(9_999)).await.expect("again");
    assert_eq!(store.session("s1").await.expect("get").expect("s1").revoked_at, Some(UnixMillis::from_i64(9_000)));
    assert_eq!(store.delete_expired_sessions(UnixMillis::from_i64(49_999), 10).await.expect("none yet"), 0);
    assert_eq!(store.delete_expired_sessions(UnixMillis::from_i64(50_000), 10).await.expect("expired"), 1);
    assert_eq!(store.session("s1").await.expect("get"), None);
}

async fn the_audit_log_pages_newest_first(db: TestDb) {
    let store = db.migrated().await;
    for i in 0..5 {
        let entry = AuditEntry {
            id: format!("a{i}"),
            at: UnixMillis::from_i64(1_000 + i),
            actor: "ada".into(),
            actor_role: "admin".into(),
            ip: Some("127.0.0.1".into()),
            action: "key.create".into(),
            target: Some(format!("k{i}")),
            before: None,
            after: Some(format!(r#"{{"name":"é{i}"}}"#)),
        };
        store.insert_audit(&entry).await.expect("insert");
    }
    let page = |cursor: Option<&str>| AuditQuery { cursor: cursor.map(String::from), limit: 2 };
    let first = store.list_audit(&page(None)).await.expect("page 1");
    assert_eq!(first.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a4", "a3"]);
    assert_eq!(first[0].after.as_deref(), Some(r#"{"name":"é4"}"#), "round-trips");
    let second = store.list_audit(&page(Some("a3"))).await.expect("page 2");
    assert_eq!(second.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a2", "a1"]);
    let last = store.list_audit(&page(Some("a1"))).await.expect("page 3");
    assert_eq!(last.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a0"]);
}

store_suite!(
    the_audit_log_pages_newest_first,
    users_and_sessions_round_trip_and_a_password_change_voids_sessions,
    files_and_batches_belong_to_their_key_and_page_in_order,
    responses_chain_back_within_their_key_only,
    expired_responses_are_hidden_then_deleted_in_batches,
    migrating_twice_is_harmless,
    ready_only_after_migrations,
    instances_starting_together_migrate_once,
    keys_are_created_listed_and_revoked,
    key_changes_are_seen_by_polling,
    retried_log_batches_never_duplicate,
    old_logs_are_deleted_in_batches_and_usage_is_kept,
    logs_page_newest_first_without_gaps_or_overlap,
    log_page_size_is_clamped,
    logs_filter_by_key,
    log_fields_round_trip_exactly,
    log_attempts_round_trip_and_unreadable_ones_read_as_none,
    key_limits_round_trip_and_unreadable_ones_read_as_none,
    usage_is_summed_per_group,
    retried_batches_are_summed_once,
    usage_ranges_cover_hours_starting_in_them,
    logs_written_before_usage_aggregates_are_summed_by_the_migration,
    routes_are_put_replaced_listed_and_deleted,
    route_changes_are_seen_by_polling,
    migrating_again_keeps_the_data,
);

// ---------------------------------------------------------------------------------------------
// Backend-specific behaviour

#[tokio::test]
async fn sqlite_creates_a_missing_nested_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a/b/c/llm-proxy.db");
    let store = connect(&format!("sqlite://{}", file.display()), 2, 1).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.ready().await.expect("ready");
    assert!(file.is_file());
}

#[tokio::test]
async fn sqlite_file_uses_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("wal.db").display());
    let store = connect(&url, 2, 1).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mut c = SqliteConnection::connect(&url).await.expect("raw");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut c).await.expect("pragma");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data() {
    let store = connect("sqlite::memory:", 8, 2).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.ready().await.expect("ready");
    let key = store.insert_key(&new_key("m", "mem")).await.expect("insert");
    store.insert_logs(&[log("r1", 1, Some("m"))]).await.expect("logs");
    // Concurrent callers share the one connection rather than each opening an empty database.
    let lists = join_all((0..4).map(|_| store.list_keys())).await;
    for l in lists {
        assert_eq!(l.expect("list"), vec![key.clone()]);
    }
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_quickly() {
    let url = "postgres://llmp:hunter2-secret@127.0.0.1:1/nowhere";
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        match connect(url, 2, 1).await {
            Err(e) => e,
            Ok(store) => store.list_keys().await.expect_err("no server on port 1"),
        }
    })
    .await
    .expect("gave up within 10 s");
    assert!(matches!(outcome, StoreError::Unavailable(_)), "{outcome:?}");
    let shown = outcome.to_string();
    assert!(!shown.contains("hunter2"), "password leaked: {shown}");
    assert!(!shown.contains("127.0.0.1:1/nowhere"), "URL leaked: {shown}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn bad_urls_are_refused_without_echoing_them() {
    for url in ["mysql://root:hunter2@db/app", "postgres://root:hunter2@[not-a-host/app", "hunter2"] {
        let err = match connect(url, 2, 1).await {
            Err(e) => e,
            Ok(_) => panic!("{url} accepted"),
        };
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "secret leaked: {shown}");
    }
}

#[test]
fn test_database_url_is_rewritten_to_the_private_database() {
    assert_eq!(with_database("postgres://postgres@127.0.0.1:5432/test", "x"), "postgres://postgres@127.0.0.1:5432/x");
    assert_eq!(with_database("postgresql://u:p@h/test?sslmode=disable", "x"), "postgresql://u:p@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
}
