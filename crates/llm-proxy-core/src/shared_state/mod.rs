//! State that several gateway instances may share: the health of each upstream deployment
//! (circuit breaker, latency average, requests in flight) and the counters behind rate limits and
//! budgets (`Counters`).
//!
//! Everything goes through the [`SharedState`] trait so a Redis implementation can replace
//! [`LocalState`] in cluster mode without the routing code noticing.
//!
//! The per-request calls (`admit`, `available`, `record_*`, `start`, `in_flight`, `latency_ms`)
//! take no lock that all requests share: [`LocalHealth`] is atomics only, and the one `Mutex` here
//! (in [`LocalState`]) is taken by [`SharedState::deployment_health`], which is called only while a
//! routing table is built. A table holds the `Arc<dyn DeploymentHealth>` it got, so a request never
//! looks anything up by key.

mod counters;
mod local_counters;
mod local_health;
mod local_state;

pub use counters::{Acquired, Counters, Limit, LimitState, Settle};

use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::UnixMillis;
use crate::config::BreakerConfig;

pub use local_counters::LocalCounters;
pub use local_health::LocalHealth;
pub use local_state::LocalState;

pub trait SharedState: Send + Sync + 'static {
    /// The health of one deployment (`key` = "provider/model"), created on first use. Called when
    /// a routing table is built, never per request; the same key always returns the same state,
    /// so health survives config reloads. A changed `breaker` applies to the existing state.
    fn deployment_health(&self, key: &str, breaker: BreakerConfig) -> Arc<dyn DeploymentHealth>;
}

/// One deployment's circuit breaker, latency average and in-flight count.
///
/// Instants are on the caller's clock (`now`), passed in so tests need no sleeps
/// and a shared implementation can use one clock for all instances.
pub trait DeploymentHealth: Send + Sync {
    /// Whether a request may go to this deployment now. Closed → `Allow`. Open before the cooldown
    /// ends → `Reject { retry_in }`. Open after the cooldown → the breaker goes half-open and exactly
    /// one caller gets `Probe` (others `Reject` until the probe's outcome is recorded).
    fn admit(&self, now: UnixMillis) -> BreakerVerdict;
    /// Whether a plan should consider it (no side effects): closed, or open with the cooldown over
    /// and no probe in flight.
    fn available(&self, now: UnixMillis) -> bool;
    /// A successful call; `ttft` (time to first token / whole answer) feeds the latency EWMA.
    /// Closes a half-open breaker and clears the failure count.
    fn record_success(&self, now: UnixMillis, ttft: Option<Duration>);
    /// A failed call that says the deployment is unwell (connect error, timeout, 429, 5xx — the
    /// server decides which). `failure_threshold` failures within `window` open the breaker; a
    /// failed probe re-opens it for another cooldown.
    fn record_failure(&self, now: UnixMillis);
    /// An active health check's verdict: unhealthy opens the breaker at once (the deployment is
    /// taken out); healthy closes it (put back) — the checker is the authority on dead targets.
    fn record_check(&self, now: UnixMillis, healthy: bool);
    /// One more request in flight. Call `health.start()` instead: its guard pairs this with
    /// `leave` on every exit path.
    fn enter(&self);
    /// One request fewer in flight; only [`InFlightGuard`]'s `Drop` calls it.
    fn leave(&self);
    /// Requests in flight to this deployment from this instance (always local: a request's guard
    /// lives in this process, and a shared count would leak when an instance dies).
    fn in_flight(&self) -> u32;
    /// EWMA of time to first token in ms; `None` until the first timed success.
    fn latency_ms(&self) -> Option<f64>;
    fn snapshot(&self, now: UnixMillis) -> HealthSnapshot;
}

impl dyn DeploymentHealth {
    /// Counts a request in flight until the returned guard is dropped — on success, error, client
    /// disconnect (the future holding it is dropped) and panic unwinding alike.
    ///
    /// An inherent method on the trait object rather than a trait method, because a guard must own
    /// an `Arc<dyn DeploymentHealth>` and a trait method cannot turn `Arc<Self>` into one for every
    /// implementor. Call it as `deployment.health.start()`.
    pub fn start(self: &Arc<Self>) -> InFlightGuard {
        self.enter();
        InFlightGuard { health: Arc::clone(self) }
    }
}

/// The same as `health.start()`, as a free function.
pub fn start(health: &Arc<dyn DeploymentHealth>) -> InFlightGuard {
    health.start()
}

/// Holds one in-flight slot of a deployment; releases it on drop.
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct InFlightGuard {
    health: Arc<dyn DeploymentHealth>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.health.leave();
    }
}

impl std::fmt::Debug for InFlightGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightGuard").field("in_flight", &self.health.in_flight()).finish()
    }
}

/// The answer of [`DeploymentHealth::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerVerdict {
    Allow,
    /// Allowed as the single trial request of a half-open breaker; its outcome decides.
    Probe,
    /// Not now; the deployment may be tried again after `retry_in` (what `retry-after` says).
    Reject {
        retry_in: Duration,
    },
}

impl BreakerVerdict {
    pub fn is_allowed(self) -> bool {
        !matches!(self, Self::Reject { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// What the admin API shows for one deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSnapshot {
    pub breaker: BreakerState,
    /// Failures within the breaker's window (while closed).
    pub recent_failures: u32,
    #[serde(rename = "opened_at_ms")]
    pub opened_at: Option<UnixMillis>,
    /// Time left in the cooldown of an open breaker.
    #[serde(rename = "retry_in_ms", serialize_with = "duration_ms")]
    pub retry_in: Option<Duration>,
    /// The last active health check: when and whether it passed.
    #[serde(serialize_with = "check")]
    pub last_check: Option<(UnixMillis, bool)>,
    pub in_flight: u32,
    pub latency_ms: Option<f64>,
}

fn duration_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    d.map(|d| d.as_millis() as u64).serialize(s)
}

/// `{"at_ms": …, "healthy": …}` rather than a bare JSON pair, so the dashboard reads it by name.
fn check<S: Serializer>(c: &Option<(UnixMillis, bool)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Check {
        at_ms: UnixMillis,
        healthy: bool,
    }
    c.map(|(at_ms, healthy)| Check { at_ms, healthy }).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_serializes_for_the_admin_api() {
        let s = HealthSnapshot {
            breaker: BreakerState::HalfOpen,
            recent_failures: 2,
            opened_at: Some(UnixMillis::from_millis(10)),
            retry_in: Some(Duration::from_millis(1500)),
            last_check: Some((UnixMillis::from_millis(7), false)),
            in_flight: 1,
            latency_ms: None,
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"breaker": "half_open", "recent_failures": 2, "opened_at_ms": 10,
                "retry_in_ms": 1500, "last_check": {"at_ms": 7, "healthy": false}, "in_flight": 1,
                "latency_ms": null})
        );
    }
}
