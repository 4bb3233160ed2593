//! A real gateway on a random port in front of the mock upstream, on SQLite or PostgreSQL.
//!
//! PostgreSQL runs when `LLM_PROXY_TEST_DATABASE_URL` names a server; each gateway gets a fresh
//! database there. Without it the PostgreSQL and Redis cases are reported as ignored
//! (`#[needs_postgres]`, `#[needs_redis]`), except on CI (`CI=true`), where they run and fail.
#![allow(dead_code, reason = "each test binary uses its own part of this module")]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "tests are clients, not the gateway: their own HTTP clients and tasks are fine, and they assert by unwrapping and panicking"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_proxy_core::config::{Config, Overrides};
use llm_proxy_core::request_log::{LogQuery, RequestLogEntry};
use llm_proxy_core::store::Store;
use llm_proxy_core::virtual_key::{NewKey, generate_key};
use llm_proxy_testkit::{MockConfig, MockUpstream};
use tokio_util::sync::CancellationToken;

pub const MASTER_KEY: &str = "test-master-key-0123456789";
/// The first admin's password (`default_admin_password`) in every test gateway.
pub const ADMIN_PASSWORD: &str = "test-admin-password-0123";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub mock: MockUpstream,
    pub store: Arc<dyn Store>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
    pg_database: Option<(String, String)>,
}

/// How long a test waits for something that must happen (a log row, a key taking effect, a health
/// check's verdict): a deadline for a broken build, not a measure of speed, so long enough for a
/// busy 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `probe` until it answers `Ok`, and returns that; after `within`, panics with the last
/// `Err` (say what was awaited and what was seen). Tests wait on what a client can observe, never
/// for a fixed time. The pause between probes grows from 10 ms to 200 ms, so a probe that is a
/// request does not flood a gateway that counts requests per address.
pub async fn eventually<T, E: std::fmt::Display>(within: Duration, mut probe: impl AsyncFnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("not within {within:?}: {last}"),
            Err(_) => tokio::time::sleep(pause).await,
        }
        pause = (pause * 3 / 2).min(Duration::from_millis(200));
    }
}

/// The PostgreSQL server to test against, or `None` to skip (never on CI). Only a test run with
/// `--include-ignored` gets here without one: `#[needs_postgres]` ignores it otherwise.
pub fn postgres_url() -> Option<String> {
    match std::env::var("LLM_PROXY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("LLM_PROXY_TEST_DATABASE_URL is not set, but CI=true: the PostgreSQL suite must run on CI")
        }
        _ => {
            eprintln!("skipping: LLM_PROXY_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// The Redis to test against, or `None` to skip (never on CI). Only a test run with
/// `--include-ignored` gets here without one: `#[needs_redis]` ignores it otherwise.
pub fn redis_url() -> Option<String> {
    match std::env::var("LLM_PROXY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("LLM_PROXY_TEST_REDIS_URL is not set, but CI=true: the Redis suite must run on CI")
        }
        _ => {
            eprintln!("skipping: LLM_PROXY_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let cut = base.rfind('/').filter(|i| *i > base.find("://").map(|s| s + 2).unwrap_or(0)).unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..cut], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn admin_exec(server_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server_url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
}

impl Gateway {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, "").await
    }

    /// `extra` is YAML appended to the config (top-level keys other than `providers`).
    pub async fn start_with(backend: Backend, extra: &str) -> Option<Self> {
        Self::start_custom(backend, "", extra, MockConfig::default()).await
    }

    /// `providers` is YAML for more entries of the `providers` map (indented by two spaces; it may
    /// name the mock as `${MOCK_URL}`, `${MOCK_GEMINI_URL}`), and `mock` sets the keys the mock
    /// upstream demands.
    pub async fn start_custom(backend: Backend, providers: &str, extra: &str, mock: MockConfig) -> Option<Self> {
        let extra = if extra.contains("shutdown_grace_secs") {
            extra.to_string()
        } else {
            format!("{extra}\nshutdown_grace_secs: 5")
        };
        // The harness's small body limit, unless the test sets its own.
        let body_limit = if extra.contains("max_body_bytes") { "" } else { "max_body_bytes: 65536" };
        let mock = MockUpstream::start_with(mock).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut pg_database = None;
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("gw.db").display()),
            Backend::Postgres => {
                let server = postgres_url()?;
                let name = format!("llmp_gw_{}", uuid::Uuid::new_v4().simple());
                admin_exec(&server, &format!("CREATE DATABASE {name}")).await;
                pg_database = Some((server.clone(), name.clone()));
                with_database(&server, &name)
            }
        };
        let yaml = format!(
            r#"
listen_addr: 127.0.0.1:0
database_url: "{database_url}"
master_key: {MASTER_KEY}
data_dir: "{data_dir}"
default_admin_password: "{ADMIN_PASSWORD}"
{body_limit}
upstream_timeouts: {{ connect_secs: 2, first_byte_secs: 2, between_chunks_secs: 2 }}
providers:
  mock:
    protocol: openai
    base_url: {base}
    api_key: sk-upstream-canary-0000
    models:
      - {{ name: mock-a, alias: default }}
      - mock-b
      - mock-slow-200-chunks-50
      - mock-slow-300
      - mock-chunks-4000-pad-16000
      - mock-slow-50-cut-after-2
      - mock-error-after-2
      - mock-think-1800
      - mock-slow-1500-chunks-1
      - mock-fail-500
      - mock-fail-429
      - mock-fail-400
      - mock-fail-401
      - mock-delay-5000
      - mock-delay-1500
      - mock-not-json
      - mock-no-usage
      - text-embedding-mock
  mistral:
    api_key: mistral-key
    base_url: {base}
    models: [mock-mistral-style]
  dead:
    protocol: openai
    base_url: http://127.0.0.1:1/v1
    models: [dead-model]
  # One provider per protocol, serving any model the client names.
  oai:
    protocol: openai
    base_url: {base}
    api_key: sk-upstream-canary-0000
  # The same server, taken to serve the Responses API too: Responses clients pass through.
  oair:
    protocol: openai
    base_url: {base}
    api_key: sk-upstream-canary-0000
    responses_api: true
  claude:
    protocol: anthropic
    base_url: {anthropic}
    api_key: sk-ant-upstream-canary
  gem:
    protocol: gemini
    base_url: {gemini}
    api_key: gemini-upstream-canary
  zhipu:
    protocol: glm
    base_url: {glm}
    api_key: {glm_key}
{providers}
{extra}
"#,
            base = mock.base_url(),
            data_dir = dir.path().display(),
            anthropic = mock.anthropic_base_url(),
            gemini = mock.gemini_base_url(),
            glm = mock.glm_base_url(),
            glm_key = llm_proxy_testkit::DEFAULT_GLM_KEY,
        );
        let env = |name: &str| match name {
            "MOCK_URL" => Some(mock.base_url()),
            "MOCK_GEMINI_URL" => Some(mock.gemini_base_url()),
            _ => None,
        };
        let (config, _) = Config::load(Some(&yaml), &env, &Overrides::default()).unwrap();
        Some(Self::launch(config, mock, dir, pg_database).await)
    }

    async fn launch(
        config: Config,
        mock: MockUpstream,
        dir: tempfile::TempDir,
        pg_database: Option<(String, String)>,
    ) -> Self {
        let store = llm_proxy_server::serve::open_store(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(llm_proxy_server::serve::run(
            config,
            listener,
            shutdown.clone().cancelled_owned(),
            move || {
                let _ = ready_tx.send(());
            },
        ));
        ready_rx.await.unwrap();
        Self { addr, mock, store, shutdown, task: Some(task), _dir: dir, pg_database }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates a virtual key in the store, as `llm-proxy keys create` does, and waits until the
    /// running gateway accepts it.
    pub async fn create_key(
        &self,
        models: &[&str],
        expires_at: Option<llm_proxy_core::UnixMillis>,
    ) -> (String, String) {
        self.create_key_with(models, expires_at, Default::default(), None).await
    }

    /// A key with its own limits and user.
    pub async fn create_key_with(
        &self,
        models: &[&str],
        expires_at: Option<llm_proxy_core::UnixMillis>,
        limits: llm_proxy_core::virtual_key::KeyLimits,
        user: Option<&str>,
    ) -> (String, String) {
        let g = generate_key();
        let id = uuid::Uuid::now_v7().to_string();
        self.store
            .insert_key(&NewKey {
                limits,
                id: id.clone(),
                name: "test".into(),
                hash: g.hash,
                display: g.display,
                models: models.iter().map(|m| m.to_string()).collect(),
                user: user.map(String::from),
                expires_at,
            })
            .await
            .unwrap();
        // Wait until the gateway's key ring has it: any answer but "Invalid API key".
        eventually(PATIENCE, async || {
            let resp = reqwest::Client::new().get(self.url("/v1/models")).bearer_auth(&g.secret).send().await.unwrap();
            if resp.status() == 401 && resp.text().await.unwrap().contains("Invalid API key") {
                Err("the gateway did not accept a new key")
            } else {
                Ok(())
            }
        })
        .await;
        (id, g.secret)
    }

    /// `POST /v1/messages` with the key in `x-api-key`, as the Anthropic SDKs send it.
    pub async fn messages(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn chat(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        reqwest::Client::new().post(self.url("/v1/chat/completions")).bearer_auth(key).json(&body).send().await.unwrap()
    }

    /// Waits for the request log row of `request_id`.
    pub async fn log_entry(&self, request_id: &str) -> RequestLogEntry {
        eventually(PATIENCE, async || {
            let row = self.all_logs().await.into_iter().find(|e| e.request_id == request_id);
            row.ok_or_else(|| format!("no request log row for {request_id}"))
        })
        .await
    }

    pub async fn all_logs(&self) -> Vec<RequestLogEntry> {
        let mut out = Vec::new();
        let mut query = LogQuery { limit: 1000, ..Default::default() };
        loop {
            let page = self.store.list_logs(&query).await.unwrap();
            out.extend(page.entries);
            match page.next {
                Some(c) => query.cursor = Some(c),
                None => return out,
            }
        }
    }

    /// Sends the shutdown signal and waits for the gateway to drain and flush.
    pub async fn stop(mut self) -> Vec<RequestLogEntry> {
        self.shutdown.cancel();
        self.task.take().unwrap().await.unwrap().unwrap();
        let logs = self.all_logs().await;
        if let Some((server, name)) = &self.pg_database {
            admin_exec(server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
        logs
    }

    pub fn pg_database(&self) -> Option<&(String, String)> {
        self.pg_database.as_ref()
    }

    pub async fn drop_database_now(&self) {
        if let Some((server, name)) = &self.pg_database {
            admin_exec(server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

pub fn request_id(resp: &reqwest::Response) -> String {
    resp.headers().get("x-request-id").expect("x-request-id header").to_str().unwrap().to_string()
}

/// Runs each named test case on SQLite and on PostgreSQL (the latter reported as ignored where no
/// server is configured).
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[llm_proxy_testkit_macros::needs_postgres]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}
