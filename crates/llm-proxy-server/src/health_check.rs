//! Active health checks: every `interval`, each deployment a route uses is probed cheaply (its
//! provider's model lookup, no tokens spent) and the verdict goes to the same health state the
//! circuit breakers use — a dead deployment is taken out before a request finds it dead, and put
//! back when it answers again.

use std::sync::Arc;

use futures_util::StreamExt;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::config::HealthCheck;
use llm_proxy_core::provider::Provider;
use tokio_util::sync::CancellationToken;

use crate::app::Shared;

/// Probes running at once, so a table of many deployments neither floods nor serialises.
const CONCURRENCY: usize = 8;

pub async fn run(state: Arc<Shared>, config: HealthCheck, stop: CancellationToken) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live = state.live.load_full();
        // Owned pairs: the probes outlive no borrow of the snapshot.
        let targets: Vec<_> =
            live.routes.deployments().iter().map(|d| (d.clone(), live.client(d.target.provider).clone())).collect();
        let probes = targets.into_iter().map(|(d, client)| async move {
            let healthy = match tokio::time::timeout(config.timeout, client.probe(&d.target.upstream_model)).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::info!(deployment = %d.key, error = %e, "health check failed");
                    false
                }
                Err(_) => {
                    tracing::info!(deployment = %d.key, "health check timed out");
                    false
                }
            };
            d.health.record_check(UnixMillis::now(), healthy);
        });
        let checks = futures_util::stream::iter(probes).buffer_unordered(CONCURRENCY).collect::<Vec<()>>();
        tokio::select! {
            () = stop.cancelled() => return,
            _ = checks => {}
        }
    }
}
