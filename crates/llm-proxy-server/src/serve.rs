//! `llm-proxy serve`: wiring the layers together, and graceful shutdown.
//!
//! Start-up order: store (migrated) → key ring (loaded, then polled) → request-log writer →
//! providers → HTTP. Shutdown order: stop accepting → let in-flight requests finish within the
//! grace period → stop background tasks → flush the request log → exit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use llm_proxy_core::config::Config;
use llm_proxy_core::key_ring::KeyRing;
use llm_proxy_core::log_writer::log_channel;
use llm_proxy_core::store::Store;
use llm_proxy_providers::HttpClient;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounting::Accounting;
use crate::app::{AppState, Live, RouteInputs, Shared, app};
use crate::response_store::ResponseStore;
use crate::{health_check, route_sync};
use llm_proxy_core::pricing::PricingSource;
use llm_proxy_core::shared_state::{Counters, LocalCounters};
use llm_proxy_core::shared_state::{LocalState, SharedState};

/// How long the log writer keeps retrying a failing database at shutdown.
const LOG_FLUSH_DEADLINE: Duration = Duration::from_secs(10);
/// How long requests get to wind down once the grace period is over.
const CUT_DEADLINE: Duration = Duration::from_secs(2);

/// Opens the configured store and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = llm_proxy_store::connect(
        config.database_url.expose_secret(),
        config.database_max_open_conns,
        config.database_max_idle_conns,
    )
    .await
    .context("opening the database")?;
    store.migrate().await.context("applying database migrations")?;
    Ok(store)
}

/// Runs the gateway on `listener` until `shutdown` completes, then drains and flushes.
/// `on_ready` is called once the listener serves (tests wait for it).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce() + Send,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    crate::users::bootstrap_admin(store.as_ref(), &config).await?;
    let secret = crate::sessions::load_or_create_key(
        config.secret_key.as_ref().map(|k| k.expose_secret()),
        &config.data_dir,
        "secret_key",
    )
    .context("the session signing key")?;
    let sessions = crate::sessions::Sessions::new(
        secret,
        Duration::from_secs(config.session_expire_hours.saturating_mul(3600)),
        config.secure_cookies,
    );
    let (keys, watermark) = KeyRing::load(store.as_ref()).await.context("loading virtual keys")?;
    let keys = Arc::new(keys);

    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    tracker.spawn(keys.clone().poll(store.clone(), watermark, stop.clone()));
    let (logs, writer) = log_channel(store.clone());
    let writer_stop = CancellationToken::new();
    tracker.spawn(writer.run(writer_stop.clone(), LOG_FLUSH_DEADLINE));

    let cut = CancellationToken::new();
    let http = HttpClient::new(&config.upstream_timeouts).context("building the HTTP client")?;
    // Health lives here, keyed by deployment, so it survives routing-table rebuilds.
    let shared_state: Arc<dyn SharedState> = Arc::new(LocalState::default());
    let route_inputs = RouteInputs::new(&config, shared_state);
    let (stored_routes, routes_since) = route_sync::load(store.as_ref()).await.context("loading stored routes")?;
    let live = Live::build(&config, &http, &route_inputs, &stored_routes)?;
    let counters = counters(&config).await?;
    let overrides = pricing_overrides(&config)?;
    let prices = PricingSource::initial(overrides.as_deref()).map_err(|e| anyhow::anyhow!("pricing: {e}"))?;
    let price_layers = crate::price_layers::PriceLayers::new(
        llm_proxy_core::pricing::PriceTable::bundled().clone(),
        overrides.clone(),
    );
    let (accounting, settles) = Accounting::new(&config, counters.clone(), prices);
    tracker.spawn(Accounting::settle_worker(counters, settles));
    let in_flight = crate::listener::InFlight::new(config.connections.max_in_flight);
    // Stopped with the log writer: after the last request, so every answer kept is written.
    let (responses, response_writer) =
        ResponseStore::new(store.clone(), config.response_retention_days, writer_stop.clone());
    tracker.spawn(response_writer);
    let state = AppState(Arc::new(Shared {
        live: ArcSwap::from_pointee(live),
        route_inputs,
        accounting,
        keys: keys.clone(),
        key_misses: Default::default(),
        responses,
        store,
        logs: logs.clone(),
        master_key: config.master_key.clone(),
        max_body_bytes: config.max_body_bytes,
        stream_keep_alive: config.stream_keep_alive,
        auth_failures: Default::default(),
        admin_failures: Default::default(),
        admin_auth_failures_per_minute: config.admin_auth_failures_per_minute,
        settings: Arc::new(config.redacted_json()),
        price_layers,
        sessions,
        login_failures: Default::default(),
        cut: cut.clone(),
    }));

    tracker.spawn(route_sync::poll(state.0.clone(), routes_since, stop.clone()));
    tracker.spawn(crate::price_layers::poll(state.0.clone(), stop.clone()));
    if let Some(url) = config.pricing.refresh_url.clone().filter(|u| !u.trim().is_empty()) {
        tracker.spawn(refresh_prices(state.0.clone(), http.clone(), url, config.clone(), stop.clone()));
    }
    if config.log_retention_days > 0 {
        tracker.spawn(retain_logs(state.store.clone(), config.log_retention_days, stop.clone()));
    }
    tracker.spawn(retain_responses(state.store.clone(), stop.clone()));
    if config.health_check.enabled {
        tracker.spawn(health_check::run(state.0.clone(), config.health_check.clone(), stop.clone()));
    }

    let addr = listener.local_addr()?;
    announce(&config, addr, keys.len());
    on_ready();

    let graceful = CancellationToken::new();
    let server = crate::listener::serve(listener, app(state), config.connections, in_flight, graceful.clone());
    let mut server = tracker.spawn(server);
    tokio::select! {
        result = &mut server => {
            // The listener failed on its own; still flush what was logged.
            stop.cancel();
            writer_stop.cancel();
            tracker.close();
            tracker.wait().await;
            return result.context("server task")?.context("serving HTTP");
        }
        () = shutdown => {}
    }
    tracing::info!(
        grace_secs = config.shutdown_grace.as_secs(),
        "shutting down: no new connections; letting in-flight requests finish"
    );
    graceful.cancel();
    match tokio::time::timeout(config.shutdown_grace, &mut server).await {
        Ok(_) => tracing::info!("in-flight requests finished"),
        Err(_) => {
            // Requests still running end themselves (503 or a final error event) and record
            // their log rows; only a connection that will not close after that is dropped.
            tracing::warn!("grace period over; ending the remaining requests");
            cut.cancel();
            if tokio::time::timeout(CUT_DEADLINE, &mut server).await.is_err() {
                server.abort();
            }
        }
    }
    // A row whose prompt is being counted on a blocking thread is still on its way to the log.
    llm_proxy_core::cpu_pool::drain(CUT_DEADLINE).await;
    stop.cancel();
    writer_stop.cancel();
    tracker.close();
    tracker.wait().await;
    if logs.dropped() > 0 {
        tracing::error!(dropped = logs.dropped(), "request log entries could not be written");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The counters behind limits and budgets: in-process, or shared on Redis in cluster mode.
async fn counters(config: &Config) -> anyhow::Result<Arc<dyn Counters>> {
    let local: Arc<dyn Counters> = Arc::new(LocalCounters::new());
    match &config.redis_url {
        None => Ok(local),
        Some(url) => crate::cluster::redis_counters(url.expose_secret(), local).await,
    }
}

/// The operator's price overrides file, read once at start (and again at every refresh).
fn pricing_overrides(config: &Config) -> anyhow::Result<Option<String>> {
    match &config.pricing.overrides_file {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .with_context(|| format!("reading the pricing overrides file {path}")),
    }
}

/// Rows deleted per statement by the log retention job.
const RETENTION_BATCH: u32 = 5_000;
/// How often the log retention job runs (the first pass runs at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Deletes request-log rows older than `days`, at start and then hourly, in batches so that no
/// statement holds the database for long. The hourly usage aggregates are kept.
async fn retain_logs(store: Arc<dyn Store>, days: u32, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match retain_logs_once(store.as_ref(), days).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, days, "log retention: deleted request-log rows past the retention period")
            }
            Err(e) => tracing::warn!(error = %e, "log retention: deleting old rows failed; retrying next hour"),
        }
    }
}

/// One pass of log retention: deletes every request-log row older than `days`, batch by batch.
pub async fn retain_logs_once(store: &dyn Store, days: u32) -> Result<u64, llm_proxy_core::store::StoreError> {
    let cutoff = llm_proxy_core::UnixMillis::now() - Duration::from_secs(u64::from(days) * 86_400);
    let mut deleted = 0;
    loop {
        let n = store.delete_logs_before(cutoff, RETENTION_BATCH).await?;
        deleted += n;
        if n < u64::from(RETENTION_BATCH) {
            return Ok(deleted);
        }
    }
}

/// Deletes expired stored Responses API answers and expired sessions, at start and then hourly, in
/// batches. (They are unusable from the moment they expire; this frees their space.)
async fn retain_responses(store: Arc<dyn Store>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = llm_proxy_core::UnixMillis::now();
        let mut deleted = 0;
        loop {
            match store.delete_expired_responses(now, RETENTION_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(RETENTION_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "response retention: deleting expired responses failed; retrying next hour");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "response retention: deleted expired stored responses");
        }
        // Expired sessions are worthless (their cookies fail the expiry check): only their rows go.
        match store.delete_expired_sessions(now, RETENTION_BATCH).await {
            Ok(n) if n > 0 => tracing::debug!(deleted = n, "deleted expired sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "deleting expired sessions failed; retrying next hour"),
        }
    }
}

/// Largest pricing registry accepted from `pricing.refresh_url`.
const MAX_PRICING_BYTES: usize = 32 * 1024 * 1024;

/// Fetches the pricing registry every `pricing.refresh_hours`; a failure keeps the last good table.
async fn refresh_prices(state: Arc<Shared>, http: HttpClient, url: String, config: Config, stop: CancellationToken) {
    let mut tick = tokio::time::interval(config.pricing.refresh_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let body = match http.fetch_text(&url, MAX_PRICING_BYTES, Duration::from_secs(60)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "pricing refresh failed; keeping the current prices");
                continue;
            }
        };
        // The stored and file overrides go on top of the fresh registry.
        let file = pricing_overrides(&config).ok().flatten();
        let fetched = llm_proxy_core::pricing::PriceTable::from_json(&body)
            .map_err(|e| format!("refreshed price table rejected: {e}"))
            .and_then(|table| state.price_layers.set_registry(table, file, &state.accounting));
        match fetched {
            Ok(models) => tracing::info!(models, "pricing registry refreshed"),
            Err(e) => tracing::warn!(error = %e, "pricing refresh rejected; keeping the current prices"),
        }
    }
}

fn announce(config: &Config, addr: std::net::SocketAddr, keys: usize) {
    let providers: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
    tracing::info!(
        %addr,
        database = %llm_proxy_core::config::redact_url(config.database_url.expose_secret()),
        providers = %providers.join(", "),
        virtual_keys = keys,
        "llm-proxy listening"
    );
    if providers.is_empty() {
        tracing::warn!(
            "no providers configured: set OPENAI_API_KEY (or GROQ_API_KEY, XAI_API_KEY, ...) or write llm-proxy.yaml"
        );
    }
    if keys == 0 && config.master_key.is_none() {
        tracing::warn!("no virtual keys yet: create one with `llm-proxy keys create --name NAME`");
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
