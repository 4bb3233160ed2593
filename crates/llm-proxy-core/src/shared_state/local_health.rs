//! [`LocalHealth`]: one deployment's circuit breaker, latency average and in-flight count, in
//! atomics only, so the requests of a busy deployment never queue behind each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::{BreakerState, BreakerVerdict, DeploymentHealth, HealthSnapshot};
use crate::UnixMillis;
use crate::config::BreakerConfig;

/// The `u64` slots below hold instants as [`UnixMillis::as_millis`] (an atomic needs the bare
/// integer); each trait method converts once, on entry.
///
/// "No value" in those slots. Never a real timestamp (ms since 1970 stay far below it)
/// and, read as `f64` bits, a NaN that arithmetic never produces.
const NONE: u64 = u64::MAX;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const STATE_BITS: u32 = 2;

/// Weight of the newest sample in the latency average.
const EWMA_ALPHA: f64 = 0.3;

/// `retry_in` while a probe is out: its outcome usually arrives within a second, and then the
/// deployment is either back or open for a whole cooldown.
const HALF_OPEN_RETRY_MS: u64 = 1000;

pub struct LocalHealth {
    /// The breaker's state and when it entered it, as `(ms << 2) | state`, so every transition is
    /// one compare-and-swap and exactly one caller wins it (the single probe relies on this). For
    /// `OPEN` the time is when it opened; for `HALF_OPEN`, when the probe was let through.
    state: AtomicU64,
    /// When the breaker last opened (`NONE` while closed). Only for the snapshot: while half-open
    /// the state word holds the probe's time instead.
    opened_at: AtomicU64,
    /// Replaced (never mutated) when the config changes, which happens only at table builds;
    /// read lock-free (arc-swap's `load` is a few atomic operations, no mutex).
    policy: ArcSwap<Policy>,
    in_flight: AtomicU32,
    /// EWMA of time to first token in ms, as `f64` bits; `NONE` until the first sample.
    latency: AtomicU64,
    /// The last health check as `(ms << 1) | healthy`; `NONE` before the first.
    last_check: AtomicU64,
}

/// The breaker config with the failure history it implies.
struct Policy {
    config: BreakerConfig,
    /// Times of the last `failure_threshold` failures (`NONE` where there is none), written in
    /// turn at `next % len`. "N failures within the window" is then exactly "the N-th most recent
    /// failure is within the window" — no counter to reset, no failure aging out too early.
    failures: Box<[AtomicU64]>,
    next: AtomicUsize,
}

impl Policy {
    fn new(config: BreakerConfig) -> Self {
        let len = config.failure_threshold.max(1) as usize;
        Self { config, failures: (0..len).map(|_| AtomicU64::new(NONE)).collect(), next: AtomicUsize::new(0) }
    }

    fn window_ms(&self) -> u64 {
        millis(self.config.window)
    }

    fn cooldown_ms(&self) -> u64 {
        millis(self.config.cooldown)
    }

    fn within_window(&self, now_ms: u64, t: u64) -> bool {
        t != NONE && now_ms.saturating_sub(t) < self.window_ms()
    }

    /// Records a failure; whether the threshold is now reached within the window.
    fn record(&self, now_ms: u64) -> bool {
        let len = self.failures.len();
        let i = self.next.fetch_add(1, Relaxed);
        self.failures[i % len].store(now_ms, Relaxed);
        // The slot after ours holds the failure `len - 1` before this one: the oldest of the last
        // `len` (with `len == 1`, this one).
        self.within_window(now_ms, self.failures[(i + 1) % len].load(Relaxed))
    }

    fn recent(&self, now_ms: u64) -> u32 {
        self.failures.iter().filter(|t| self.within_window(now_ms, t.load(Relaxed))).count() as u32
    }

    fn clear(&self) {
        for t in self.failures.iter() {
            // Load first: on the common path (no failures) a success then writes nothing, so busy
            // deployments do not bounce this cache line between cores.
            if t.load(Relaxed) != NONE {
                t.store(NONE, Relaxed);
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn pack(state: u64, ms: u64) -> u64 {
    (ms.min(u64::MAX >> STATE_BITS) << STATE_BITS) | state
}

fn unpack(word: u64) -> (u64, u64) {
    (word & ((1 << STATE_BITS) - 1), word >> STATE_BITS)
}

fn optional(v: u64) -> Option<u64> {
    (v != NONE).then_some(v)
}

impl LocalHealth {
    pub fn new(breaker: BreakerConfig) -> Self {
        Self {
            state: AtomicU64::new(pack(CLOSED, 0)),
            opened_at: AtomicU64::new(NONE),
            policy: ArcSwap::from_pointee(Policy::new(breaker)),
            in_flight: AtomicU32::new(0),
            latency: AtomicU64::new(NONE),
            last_check: AtomicU64::new(NONE),
        }
    }

    /// Applies a changed breaker config. The breaker keeps its state; the failure history starts
    /// over, since its length is the threshold.
    pub(super) fn reconfigure(&self, breaker: BreakerConfig) {
        if self.policy.load().config != breaker {
            self.policy.store(Arc::new(Policy::new(breaker)));
        }
    }

    fn open(&self, expected: u64, now_ms: u64) {
        if self.state.compare_exchange(expected, pack(OPEN, now_ms), AcqRel, Acquire).is_ok() {
            self.opened_at.store(now_ms, Relaxed);
        }
    }

    fn observe_latency(&self, ttft: Duration) {
        let sample = ttft.as_secs_f64() * 1000.0;
        // Never fails: the closure always returns Some.
        let _ = self.latency.fetch_update(Relaxed, Relaxed, |bits| {
            let next = match bits {
                NONE => sample,
                _ => {
                    let old = f64::from_bits(bits);
                    old + EWMA_ALPHA * (sample - old)
                }
            };
            Some(next.to_bits())
        });
    }
}

impl DeploymentHealth for LocalHealth {
    fn admit(&self, now: UnixMillis) -> BreakerVerdict {
        let now_ms = now.as_millis();
        let cooldown = self.policy.load().cooldown_ms();
        loop {
            let word = self.state.load(Acquire);
            let (state, since) = unpack(word);
            let until = since.saturating_add(cooldown);
            match state {
                CLOSED => return BreakerVerdict::Allow,
                OPEN if now_ms < until => {
                    return BreakerVerdict::Reject { retry_in: Duration::from_millis(until - now_ms) };
                }
                // A probe is out. One that has not reported within a cooldown is taken as lost
                // (its request was cancelled before the server recorded anything), so the
                // breaker cannot stay half-open for ever.
                HALF_OPEN if now_ms < until => {
                    let retry_in = (until - now_ms).min(HALF_OPEN_RETRY_MS);
                    return BreakerVerdict::Reject { retry_in: Duration::from_millis(retry_in) };
                }
                _ => {}
            }
            // Cooldown over: of all callers racing here, the one whose swap lands is the probe.
            if self.state.compare_exchange(word, pack(HALF_OPEN, now_ms), AcqRel, Acquire).is_ok() {
                return BreakerVerdict::Probe;
            }
            // Someone else moved the breaker first (took the probe, or recorded an outcome).
        }
    }

    fn available(&self, now: UnixMillis) -> bool {
        let now_ms = now.as_millis();
        let (state, since) = unpack(self.state.load(Acquire));
        state == CLOSED || now_ms >= since.saturating_add(self.policy.load().cooldown_ms())
    }

    fn record_success(&self, _now: UnixMillis, ttft: Option<Duration>) {
        if let Some(ttft) = ttft {
            self.observe_latency(ttft);
        }
        self.policy.load().clear();
        let word = self.state.load(Acquire);
        // Only a half-open breaker closes on success: a late success of a request sent before the
        // breaker opened says nothing about the deployment now.
        if unpack(word).0 == HALF_OPEN && self.state.compare_exchange(word, pack(CLOSED, 0), AcqRel, Acquire).is_ok() {
            self.opened_at.store(NONE, Relaxed);
        }
    }

    fn record_failure(&self, now: UnixMillis) {
        let now_ms = now.as_millis();
        let word = self.state.load(Acquire);
        match unpack(word).0 {
            // The probe failed: out for another cooldown.
            HALF_OPEN => self.open(word, now_ms),
            // Already out; a late failure must not stretch the cooldown.
            OPEN => {}
            _ => {
                if self.policy.load().record(now_ms) {
                    self.open(word, now_ms);
                }
            }
        }
    }

    fn record_check(&self, now: UnixMillis, healthy: bool) {
        let now_ms = now.as_millis();
        self.last_check.store((now_ms.min(u64::MAX >> 2) << 1) | u64::from(healthy), Relaxed);
        if healthy {
            if unpack(self.state.swap(pack(CLOSED, 0), AcqRel)).0 != CLOSED {
                self.policy.load().clear();
                self.opened_at.store(NONE, Relaxed);
            }
        } else {
            // Unconditional: a dead target stays out for a cooldown from the latest verdict, even
            // when it was already open or a probe was out.
            self.state.store(pack(OPEN, now_ms), Release);
            self.opened_at.store(now_ms, Relaxed);
        }
    }

    fn enter(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    fn leave(&self) {
        // Saturating, so a stray `leave` cannot wrap the count to u32::MAX and mark the
        // deployment full for ever.
        let _ = self.in_flight.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }

    fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    fn latency_ms(&self) -> Option<f64> {
        optional(self.latency.load(Relaxed)).map(f64::from_bits)
    }

    fn snapshot(&self, now: UnixMillis) -> HealthSnapshot {
        let now_ms = now.as_millis();
        let (state, since) = unpack(self.state.load(Acquire));
        let policy = self.policy.load();
        let until = since.saturating_add(policy.cooldown_ms());
        HealthSnapshot {
            breaker: match state {
                CLOSED => BreakerState::Closed,
                OPEN => BreakerState::Open,
                _ => BreakerState::HalfOpen,
            },
            recent_failures: policy.recent(now_ms),
            opened_at: optional(self.opened_at.load(Relaxed)).map(UnixMillis::from_millis),
            retry_in: (state == OPEN && until > now_ms).then(|| Duration::from_millis(until - now_ms)),
            last_check: optional(self.last_check.load(Relaxed)).map(|c| (UnixMillis::from_millis(c >> 1), c & 1 == 1)),
            in_flight: self.in_flight(),
            latency_ms: self.latency_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    fn breaker() -> BreakerConfig {
        BreakerConfig { failure_threshold: 3, window: Duration::from_secs(10), cooldown: Duration::from_secs(5) }
    }

    fn t(ms: u64) -> UnixMillis {
        UnixMillis::from_millis(ms)
    }

    fn state(h: &LocalHealth, now: u64) -> BreakerState {
        h.snapshot(t(now)).breaker
    }

    #[test]
    fn threshold_failures_within_the_window_open_the_breaker() {
        let h = LocalHealth::new(breaker());
        h.record_failure(t(1_000));
        h.record_failure(t(2_000));
        assert_eq!((state(&h, 2_000), h.snapshot(t(2_000)).recent_failures), (BreakerState::Closed, 2));
        assert_eq!(h.admit(t(2_000)), BreakerVerdict::Allow);
        h.record_failure(t(3_000));
        let s = h.snapshot(t(3_000));
        assert_eq!(
            (s.breaker, s.opened_at, s.retry_in),
            (BreakerState::Open, Some(t(3_000)), Some(Duration::from_secs(5)))
        );
        assert_eq!(h.admit(t(4_500)), BreakerVerdict::Reject { retry_in: Duration::from_millis(3_500) });
        assert!(!h.available(t(4_500)));
        assert!(h.available(t(8_000)), "available again once the cooldown is over");
    }

    #[test]
    fn failures_outside_the_window_do_not_accumulate() {
        let h = LocalHealth::new(breaker());
        // One failure every 6 s: never three within 10 s.
        for i in 0..20 {
            h.record_failure(t(i * 6_000));
        }
        assert_eq!(state(&h, 120_000), BreakerState::Closed);
        assert_eq!(h.snapshot(t(114_000)).recent_failures, 2);
        assert_eq!(h.snapshot(t(200_000)).recent_failures, 0, "old failures age out");
        // Three within 10 s, right after: opens.
        h.record_failure(t(200_000));
        h.record_failure(t(201_000));
        assert_eq!(state(&h, 201_000), BreakerState::Closed);
        h.record_failure(t(209_999));
        assert_eq!(state(&h, 209_999), BreakerState::Open);
    }

    #[test]
    fn a_success_clears_the_failure_count() {
        let h = LocalHealth::new(breaker());
        h.record_failure(t(1));
        h.record_failure(t(2));
        h.record_success(t(3), None);
        h.record_failure(t(4));
        h.record_failure(t(5));
        assert_eq!((state(&h, 5), h.snapshot(t(5)).recent_failures), (BreakerState::Closed, 2));
    }

    #[test]
    fn after_the_cooldown_exactly_one_concurrent_caller_gets_the_probe() {
        let h = Arc::new(LocalHealth::new(breaker()));
        h.record_check(t(0), false);
        let threads = 16;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (h, barrier) = (Arc::clone(&h), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..100).map(|_| h.admit(t(5_000))).collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<BreakerVerdict> = handles.into_iter().flat_map(|t| t.join().unwrap()).collect();
        assert_eq!(all.iter().filter(|a| **a == BreakerVerdict::Probe).count(), 1);
        assert_eq!(all.iter().filter(|a| matches!(a, BreakerVerdict::Reject { .. })).count(), threads * 100 - 1);
        assert_eq!(state(&h, 5_000), BreakerState::HalfOpen);
        assert!(!h.available(t(5_000)), "a probe is in flight");
    }

    #[test]
    fn a_successful_probe_closes_and_a_failed_one_reopens() {
        let h = LocalHealth::new(breaker());
        h.record_check(t(0), false);
        assert_eq!(h.admit(t(5_000)), BreakerVerdict::Probe);
        h.record_failure(t(5_100));
        assert_eq!(state(&h, 5_100), BreakerState::Open);
        assert_eq!(
            h.admit(t(6_000)),
            BreakerVerdict::Reject { retry_in: Duration::from_millis(4_100) },
            "a new cooldown"
        );
        assert_eq!(h.admit(t(10_100)), BreakerVerdict::Probe);
        h.record_success(t(10_200), Some(Duration::from_millis(80)));
        let s = h.snapshot(t(10_200));
        assert_eq!((s.breaker, s.opened_at, s.retry_in), (BreakerState::Closed, None, None));
        assert_eq!(h.admit(t(10_300)), BreakerVerdict::Allow);
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_a_cooldown() {
        let h = LocalHealth::new(breaker());
        h.record_check(t(0), false);
        assert_eq!(h.admit(t(5_000)), BreakerVerdict::Probe);
        assert_eq!(h.admit(t(5_500)), BreakerVerdict::Reject { retry_in: Duration::from_millis(1_000) });
        assert_eq!(h.admit(t(9_999)), BreakerVerdict::Reject { retry_in: Duration::from_millis(1) });
        assert!(h.available(t(10_000)));
        assert_eq!(h.admit(t(10_000)), BreakerVerdict::Probe);
    }

    #[test]
    fn late_outcomes_do_not_move_an_open_breaker() {
        let h = LocalHealth::new(breaker());
        h.record_check(t(1_000), false);
        h.record_success(t(2_000), None);
        h.record_failure(t(3_000));
        let s = h.snapshot(t(3_000));
        assert_eq!((s.breaker, s.opened_at), (BreakerState::Open, Some(t(1_000))));
    }

    #[test]
    fn health_checks_take_targets_out_and_put_them_back() {
        let h = LocalHealth::new(breaker());
        h.record_check(t(1_000), false);
        let s = h.snapshot(t(1_000));
        assert_eq!((s.breaker, s.last_check), (BreakerState::Open, Some((t(1_000), false))));
        assert!(!h.available(t(1_000)));
        h.record_check(t(2_000), true);
        let s = h.snapshot(t(2_000));
        assert_eq!((s.breaker, s.last_check), (BreakerState::Closed, Some((t(2_000), true))));
        assert_eq!(h.admit(t(2_000)), BreakerVerdict::Allow);
        // An unhealthy verdict while a probe is out wins over the probe's late success.
        h.record_check(t(3_000), false);
        assert_eq!(h.admit(t(8_000)), BreakerVerdict::Probe);
        h.record_check(t(8_100), false);
        h.record_success(t(8_200), None);
        assert_eq!(state(&h, 8_200), BreakerState::Open);
    }

    #[test]
    fn latency_is_an_ewma_with_alpha_0_3() {
        let h = LocalHealth::new(breaker());
        assert_eq!(h.latency_ms(), None);
        h.record_success(t(0), None);
        assert_eq!(h.latency_ms(), None, "untimed successes do not count");
        h.record_success(t(0), Some(Duration::from_millis(100)));
        assert_eq!(h.latency_ms(), Some(100.0));
        h.record_success(t(0), Some(Duration::from_millis(200)));
        assert!((h.latency_ms().unwrap() - 130.0).abs() < 1e-9);
    }

    #[test]
    fn in_flight_guards_release_on_drop_and_on_panic() {
        let h: Arc<dyn DeploymentHealth> = Arc::new(LocalHealth::new(breaker()));
        let a = h.start();
        let b = h.start();
        assert_eq!(h.in_flight(), 2);
        drop(a);
        assert_eq!(h.in_flight(), 1);
        let h2 = Arc::clone(&h);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _guard = h2.start();
            assert_eq!(h2.in_flight(), 2);
            panic!("upstream call panicked");
        }));
        assert!(panicked.is_err());
        assert_eq!(h.in_flight(), 1, "unwinding released the guard");
        drop(b);
        h.leave();
        assert_eq!(h.in_flight(), 0, "a stray leave does not wrap around");
    }

    #[test]
    fn a_threshold_of_one_opens_on_the_first_failure() {
        let h = LocalHealth::new(BreakerConfig { failure_threshold: 1, ..breaker() });
        h.record_failure(t(7));
        assert_eq!(state(&h, 7), BreakerState::Open);
    }
}
