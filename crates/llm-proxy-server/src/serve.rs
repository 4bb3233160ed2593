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
use axum::serve::ListenerExt;
use llm_proxy_core::config::Config;
use llm_proxy_core::key_ring::KeyRing;
use llm_proxy_core::log_writer::log_channel;
use llm_proxy_core::store::Store;
use llm_proxy_providers::HttpClient;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{AppState, Live, RouteInputs, Shared, app};
use crate::{health_check, route_sync};
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
    let state = AppState(Arc::new(Shared {
        live: ArcSwap::from_pointee(live),
        route_inputs,
        keys: keys.clone(),
        store,
        logs: logs.clone(),
        master_key: config.master_key.clone(),
        max_body_bytes: config.max_body_bytes,
        stream_keep_alive: config.stream_keep_alive,
        cut: cut.clone(),
    }));

    tracker.spawn(route_sync::poll(state.0.clone(), routes_since, stop.clone()));
    if config.health_check.enabled {
        tracker.spawn(health_check::run(state.0.clone(), config.health_check.clone(), stop.clone()));
    }

    let addr = listener.local_addr()?;
    announce(&config, addr, keys.len());
    on_ready();

    let graceful = CancellationToken::new();
    // Stream chunks are small writes; without TCP_NODELAY Nagle's algorithm holds each one back
    // until the client acknowledges the previous (about 40 ms per chunk, measured with bench/).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(graceful.clone().cancelled_owned());
    let mut server = tracker.spawn(async move { server.await });
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
