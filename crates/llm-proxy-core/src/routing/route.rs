//! [`Route`]: one public model name backed by several deployments, and how it plans a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use rand::Rng;

use super::plan::cap;
use super::strategy::Ranking;
use super::{Deployment, RequestContext, RoutePlan, Semantic};
use crate::UnixMillis;
use crate::config::StrategyKind;

/// One target of a route.
pub struct Target {
    pub deployment: Arc<Deployment>,
    pub weight: u32,
    /// At most this many requests in flight from this instance; a full target is skipped like an
    /// unhealthy one while another is available.
    pub max_in_flight: Option<u32>,
}

impl Target {
    fn available(&self, now: UnixMillis) -> bool {
        let health = &self.deployment.health;
        health.available(now) && self.max_in_flight.is_none_or(|max| health.in_flight() < max)
    }
}

pub struct Route {
    pub name: String,
    pub strategy: StrategyKind,
    /// Extra attempts on the route's own targets after the first.
    pub retries: u32,
    /// Cap on a plan's attempts, fallbacks included.
    pub max_attempts: u32,
    /// Cap on the time spent trying before an answer starts (the server enforces it).
    pub timeout: Duration,
    /// The targets, then (for `semantic` only) the default when it is not one of them: every
    /// deployment the strategy may choose. `targets` says where the targets end.
    pub(super) candidates: Vec<Target>,
    pub(super) targets: usize,
    pub(super) fallbacks: Vec<Arc<Deployment>>,
    pub(super) context_fallbacks: Vec<Arc<Deployment>>,
    /// The route's rotation: one `fetch_add` per request of a rotating strategy. An atomic, not a
    /// lock: concurrent requests each get a distinct turn without waiting.
    pub(super) rotation: AtomicUsize,
    pub(super) semantic: Option<Semantic>,
}

impl Route {
    /// The upstream calls to try for one request, in order (see [`RoutePlan`]).
    ///
    /// Lock-free: it reads each candidate's health through atomics, takes a turn of the route's
    /// rotation with one `fetch_add`, and draws randomness from the thread-local RNG.
    pub fn plan(&self, ctx: &RequestContext<'_>) -> RoutePlan {
        self.plan_with(ctx, &mut rand::thread_rng())
    }

    /// [`plan`](Self::plan) with the caller's RNG, for deterministic tests of the random
    /// strategies.
    pub fn plan_with<R: Rng + ?Sized>(&self, ctx: &RequestContext<'_>, rng: &mut R) -> RoutePlan {
        let now = ctx.now;
        let (mut available, mut unavailable): (Vec<usize>, Vec<usize>) =
            (0..self.candidates.len()).partition(|&c| self.candidates[c].available(now));
        let tick = if Ranking::uses_rotation(self.strategy, ctx) { self.rotation.fetch_add(1, Relaxed) } else { 0 };
        let ranking = Ranking {
            strategy: self.strategy,
            candidates: &self.candidates,
            semantic: self.semantic.as_ref(),
            ctx,
            tick,
        };
        ranking.rank(&mut available, rng);
        ranking.rank(&mut unavailable, rng);

        let max = self.max_attempts.max(1) as usize;
        let on_targets = (self.retries as usize).saturating_add(1).min(max);
        let candidate = |c: usize, ok: bool| (Arc::clone(&self.candidates[c].deployment), ok);
        let mut entries: Vec<(Arc<Deployment>, bool)> = if available.is_empty() {
            // Nothing is available: the plan still names the targets, in strategy order, so the
            // server's `admit` rejects them fast and learns when to say "retry after".
            unavailable.iter().take(on_targets).map(|&c| candidate(c, false)).collect()
        } else {
            // Cycling through the available ones: the next-best other target each time, the same
            // one again only when it is alone. Unavailable targets are left out: `admit` would
            // only reject them (or over-fill a full one), and a real retry is worth more.
            (0..on_targets).map(|k| candidate(available[k % available.len()], true)).collect()
        };
        entries.extend(self.fallbacks.iter().map(|f| (Arc::clone(f), f.health.available(now))));
        RoutePlan {
            attempts: cap(entries, max),
            context_fallbacks: self.context_fallbacks.iter().take(max.saturating_sub(1)).cloned().collect(),
        }
    }

    /// For `semantic`: the embedding model and the example texts that still need embeddings.
    pub fn semantic(&self) -> Option<&Semantic> {
        self.semantic.as_ref()
    }

    /// The route's targets, in config order.
    pub fn targets(&self) -> &[Target] {
        &self.candidates[..self.targets.min(self.candidates.len())]
    }

    pub fn fallbacks(&self) -> &[Arc<Deployment>] {
        &self.fallbacks
    }

    pub fn context_fallbacks(&self) -> &[Arc<Deployment>] {
        &self.context_fallbacks
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::super::fixtures::*;
    use super::super::{RequestContext, RoutePlan};
    use crate::UnixMillis;
    use crate::shared_state::{BreakerVerdict, LocalState};

    fn attempts(plan: &RoutePlan) -> Vec<&str> {
        keys(&plan.attempts)
    }

    #[test]
    fn the_choice_then_retries_then_fallbacks() {
        let r = route(
            "[{name: r, retries: 1, targets: [{model: a/m}, {model: b/m}, {model: c/m}], fallbacks: [d/m, e/m], context_window_fallbacks: [f/m]}]",
        );
        let p = r.plan(&ctx(0));
        assert_eq!(attempts(&p), ["a/m", "b/m", "d/m", "e/m"]);
        assert_eq!(keys(&p.context_fallbacks), ["f/m"]);
        assert_eq!(attempts(&r.plan(&ctx(0))), ["b/m", "c/m", "d/m", "e/m"], "retries continue the rotation");
    }

    #[test]
    fn max_attempts_caps_the_plan() {
        let r = route(
            "[{name: r, retries: 2, max_attempts: 2, targets: [{model: a/m}, {model: b/m}, {model: c/m}], fallbacks: [d/m], context_window_fallbacks: [e/m, f/m]}]",
        );
        let p = r.plan(&ctx(0));
        assert_eq!(attempts(&p), ["a/m", "b/m"]);
        assert_eq!(keys(&p.context_fallbacks), ["e/m"], "one attempt came before");
    }

    #[test]
    fn a_single_target_is_retried_itself() {
        let r = route("[{name: r, retries: 2, targets: [{model: a/m}], fallbacks: [d/m]}]");
        assert_eq!(attempts(&r.plan(&ctx(0))), ["a/m", "a/m", "a/m", "d/m"]);
    }

    #[test]
    fn retries_cycle_through_the_available_targets() {
        let r = route("[{name: r, retries: 4, targets: [{model: a/m}, {model: b/m}]}]");
        assert_eq!(attempts(&r.plan(&ctx(0))), ["a/m", "b/m", "a/m", "b/m", "a/m"]);
    }

    #[test]
    fn unavailable_targets_give_way_to_available_ones() {
        let r = route("[{name: r, retries: 2, targets: [{model: a/m}, {model: b/m}, {model: c/m}], fallbacks: [d/m]}]");
        take_out(&r, "a/m");
        take_out(&r, "b/m");
        assert_eq!(attempts(&r.plan(&ctx(1))), ["c/m", "c/m", "c/m", "d/m"], "c is the only one available");
        take_out(&r, "c/m");
        // None available: the targets in strategy order, so `admit` rejects them fast; then the
        // fallback.
        let p = r.plan(&ctx(1));
        assert_eq!(attempts(&p), ["b/m", "c/m", "a/m", "d/m"]);
        assert!(matches!(p.attempts[0].health.admit(UnixMillis::from_millis(1)), BreakerVerdict::Reject { .. }));
        // After the cooldown they are available again (each for one probe).
        assert_eq!(attempts(&r.plan(&ctx(30_000))).len(), 4);
    }

    #[test]
    fn capping_drops_unavailable_attempts_before_fallbacks() {
        let r =
            route("[{name: r, retries: 2, max_attempts: 2, targets: [{model: a/m}, {model: b/m}], fallbacks: [d/m]}]");
        take_out(&r, "a/m");
        take_out(&r, "b/m");
        assert_eq!(attempts(&r.plan(&ctx(1))), ["a/m", "d/m"]);
    }

    #[test]
    fn a_full_target_is_skipped_while_another_is_available() {
        let r = route("[{name: r, retries: 1, targets: [{model: a/m, max_in_flight: 1}, {model: b/m}]}]");
        let guard = target(&r, "a/m").health.start();
        assert!((0..4).all(|_| attempts(&r.plan(&ctx(0))) == ["b/m", "b/m"]));
        drop(guard);
        assert_eq!(attempts(&r.plan(&ctx(0))), ["a/m", "b/m"]);
    }

    /// The per-request path takes no lock shared by requests. The only lock in the routing code
    /// is `LocalState`'s map; with it held by this thread, another thread plans, admits, counts
    /// in flight and records outcomes. Had any of these taken that lock, the thread would block
    /// and the timeout below would fail the test.
    #[test]
    fn the_request_path_takes_no_shared_lock() {
        let state = LocalState::new();
        let (table, _) = table(
            "[{name: r, strategy: least_connections, targets: [{model: a/m}, {model: b/m}], fallbacks: [c/m]}]",
            &state,
        );
        let route = std::sync::Arc::clone(table.route("r").unwrap());
        let _held = state.lock_for_test();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let ctx = RequestContext { now: UnixMillis::from_millis(5), conversation: Some(1), embedding: None };
            for _ in 0..100 {
                let plan = route.plan(&ctx);
                let d = &plan.attempts[0];
                assert!(d.health.admit(UnixMillis::from_millis(5)).is_allowed());
                let _guard = d.health.start();
                d.health.record_success(UnixMillis::from_millis(5), Some(Duration::from_millis(20)));
                d.health.record_failure(UnixMillis::from_millis(5));
                d.health.record_check(UnixMillis::from_millis(5), true);
                let _ = d.health.snapshot(UnixMillis::from_millis(5));
            }
            done.send(()).unwrap();
        });
        finished.recv_timeout(Duration::from_secs(10)).expect("the request path blocked on the state's lock");
    }
}
