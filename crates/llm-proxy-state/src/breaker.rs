//! [`Breaker`]: the circuit breaker in front of Redis. After `threshold` consecutive failed calls
//! it opens, and calls go to the local counters without trying Redis; once `cooldown` has passed,
//! exactly one call probes Redis (the others stay local), and its outcome closes the breaker or
//! opens it for another cooldown.
//!
//! Atomics only: every request consults it, and none should wait for another to do so. Times are
//! milliseconds on the caller's monotonic clock, passed in so tests need no sleeps.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What a call may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Use Redis.
    Closed,
    /// Use Redis: this call is the one trial after a cooldown.
    Probe,
    /// Skip Redis; answer locally.
    Open,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    /// Consecutive failures; at `threshold` or more the breaker is open.
    failures: AtomicU32,
    /// While open: no call tries Redis before this time. A probe moves it one cooldown ahead
    /// before it starts, so a probe whose future is dropped (the client went away) cannot leave
    /// the breaker stuck: the next cooldown simply brings the next probe.
    open_until_ms: AtomicU64,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown_ms: u64) -> Self {
        Self { threshold: threshold.max(1), cooldown_ms, failures: AtomicU32::new(0), open_until_ms: AtomicU64::new(0) }
    }

    pub fn pass(&self, now_ms: u64) -> Pass {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            return Pass::Closed;
        }
        let until = self.open_until_ms.load(Ordering::Acquire);
        if now_ms < until {
            return Pass::Open;
        }
        // Of the calls that see the cooldown over, the one that moves it ahead probes.
        match self.open_until_ms.compare_exchange(
            until,
            now_ms.saturating_add(self.cooldown_ms),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Pass::Probe,
            Err(_) => Pass::Open,
        }
    }

    pub fn record_success(&self) {
        self.failures.store(0, Ordering::Release);
    }

    pub fn record_failure(&self, now_ms: u64) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if failures >= self.threshold {
            self.open_until_ms.store(now_ms.saturating_add(self.cooldown_ms), Ordering::Release);
        }
    }

    /// Opens at once (Redis was unreachable at start-up).
    pub fn trip(&self, now_ms: u64) {
        self.failures.fetch_max(self.threshold, Ordering::AcqRel);
        self.open_until_ms.store(now_ms.saturating_add(self.cooldown_ms), Ordering::Release);
    }

    pub fn is_open(&self) -> bool {
        self.failures.load(Ordering::Acquire) >= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new(3, 1000);
        b.record_failure(0);
        b.record_failure(1);
        b.record_success();
        b.record_failure(2);
        b.record_failure(3);
        assert_eq!(b.pass(4), Pass::Closed);
        b.record_failure(5);
        assert!(b.is_open());
        assert_eq!(b.pass(6), Pass::Open);
        assert_eq!(b.pass(1004), Pass::Open);
    }

    #[test]
    fn after_the_cooldown_exactly_one_call_probes() {
        let b = Breaker::new(3, 1000);
        for t in 0..3 {
            b.record_failure(t);
        }
        assert_eq!(b.pass(1002), Pass::Probe);
        assert_eq!(b.pass(1002), Pass::Open);
        assert_eq!(b.pass(1500), Pass::Open);

        // The probe failed: another cooldown.
        b.record_failure(1010);
        assert_eq!(b.pass(2009), Pass::Open);
        assert_eq!(b.pass(2010), Pass::Probe);

        // This probe succeeded: closed.
        b.record_success();
        assert!(!b.is_open());
        assert_eq!(b.pass(2011), Pass::Closed);
    }

    #[test]
    fn a_probe_that_never_reports_does_not_wedge_the_breaker() {
        let b = Breaker::new(1, 100);
        b.trip(0);
        assert_eq!(b.pass(50), Pass::Open);
        assert_eq!(b.pass(100), Pass::Probe);
        // (the probing request was dropped: neither success nor failure is recorded)
        assert_eq!(b.pass(150), Pass::Open);
        assert_eq!(b.pass(200), Pass::Probe);
    }
}
