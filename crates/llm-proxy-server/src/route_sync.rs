//! Routes stored in the database (edited through the admin API) join the config file's: loaded at
//! start, then polled, and on any change the routing table is rebuilt and swapped in whole. Health
//! survives the swap (it lives in `SharedState`, keyed by deployment).

use std::sync::Arc;
use std::time::Duration;

use llm_proxy_core::UnixMillis;
use llm_proxy_core::config::RouteConfig;
use llm_proxy_core::store::Store;
use tokio_util::sync::CancellationToken;

use crate::app::Shared;

/// How often stored routes are checked for changes.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Changes stamped this long before the last poll are read again: a change committed late with an
/// earlier stamp is still seen.
const OVERLAP: Duration = Duration::from_secs(10);

/// The live stored routes, and the time to poll from next.
pub async fn load(store: &dyn Store) -> anyhow::Result<(Vec<RouteConfig>, UnixMillis)> {
    let since = UnixMillis::now();
    let routes = store.list_routes().await?.into_iter().map(|r| r.config).collect();
    Ok((routes, since))
}

pub async fn poll(state: Arc<Shared>, mut since: UnixMillis, stop: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Vec<(String, UnixMillis, bool)> = Vec::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let polled_at = UnixMillis::now();
        let changed = match state.store.routes_updated_since(since - OVERLAP).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "cannot poll stored routes; keeping the current ones");
                continue;
            }
        };
        // The overlap re-reads recent changes; only ones not seen before cause a rebuild.
        let fresh: Vec<(String, UnixMillis, bool)> = changed
            .iter()
            .map(|r| (r.config.name.clone(), r.updated_at, r.deleted))
            .filter(|c| !seen.contains(c))
            .collect();
        since = polled_at;
        if fresh.is_empty() {
            continue;
        }
        seen.extend(fresh);
        seen.retain(|(_, at, _)| *at >= since - 2 * OVERLAP);
        let stored = match state.store.list_routes().await {
            Ok(r) => r.into_iter().map(|r| r.config).collect::<Vec<_>>(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read stored routes; keeping the current ones");
                continue;
            }
        };
        let live = state.live.load().with_routes(&state.route_inputs, &stored);
        state.live.store(Arc::new(live));
        tracing::info!(routes = stored.len(), "stored routes changed; routing table rebuilt");
    }
}
