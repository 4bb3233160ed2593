//! [`IpLimiter`]: requests per minute per client address, checked before authentication so that a
//! flood of bad keys costs the gateway a hash look-up each, not a key check.

use std::net::IpAddr;
use std::time::Duration;

use crate::UnixMillis;
use crate::shared_state::{Limit, LocalCounters};

/// A GCRA limit per client address, on its own [`LocalCounters`] (one counter per active address,
/// dropped a minute after its last request, so a spray of addresses cannot grow it without bound).
///
/// Per instance: it guards each instance's own front door. To count an address across a cluster,
/// pass [`IpLimiter::limit`] to the shared `Counters` instead.
pub struct IpLimiter {
    counters: LocalCounters,
}

impl Default for IpLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl IpLimiter {
    pub fn new() -> Self {
        Self { counters: LocalCounters::new() }
    }

    /// On the given clock, for tests.
    pub fn with_clock(clock: impl Fn() -> UnixMillis + Send + Sync + 'static) -> Self {
        Self { counters: LocalCounters::with_clock(clock) }
    }

    /// Counts one request from `ip` against `rpm` per minute (burst `rpm`); `Err` carries how long
    /// until it would fit (answer with [`Refusal::ip`](super::Refusal::ip)).
    pub fn check(&self, ip: IpAddr, rpm: u64) -> Result<(), Duration> {
        let acquired = self.counters.acquire_now(&[Self::limit(ip, rpm)]);
        match acquired.states.first() {
            Some(state) if !acquired.allowed => Err(state.retry_after),
            _ => Ok(()),
        }
    }

    /// The limit for one request from `ip`: key `rl:req:ip:<address>`, where an IPv6 address
    /// counts by its /64 (what one subscriber is usually given, so a client cannot dodge the limit
    /// by rotating through its own addresses) and an IPv4-mapped IPv6 address as the IPv4 one.
    pub fn limit(ip: IpAddr, rpm: u64) -> Limit {
        let addr = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        };
        Limit::Rate { key: format!("rl:req:ip:{addr}"), limit: rpm, period: Duration::from_secs(60), cost: 1 }
    }

    /// Addresses counted now (some may be idle and not yet swept).
    pub fn tracked(&self) -> usize {
        self.counters.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn clocked() -> (IpLimiter, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_795_355_130_000));
        let clock = Arc::clone(&now);
        (IpLimiter::with_clock(move || UnixMillis::from_millis(clock.load(Ordering::SeqCst))), now)
    }

    #[test]
    fn each_address_gets_its_own_limit() {
        let (limiter, now) = clocked();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(a, 3), Ok(()));
        }
        assert_eq!(limiter.check(a, 3), Err(Duration::from_secs(20)));
        assert_eq!(limiter.check(b, 3), Ok(()));

        now.fetch_add(20_000, Ordering::SeqCst);
        assert_eq!(limiter.check(a, 3), Ok(()));
        assert!(limiter.check(a, 3).is_err());
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let (limiter, _) = clocked();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let sibling: IpAddr = "2001:db8:1:2:ffff:0:0:9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limiter.check(one, 1), Ok(()));
        assert!(limiter.check(sibling, 1).is_err());
        assert_eq!(limiter.check(elsewhere, 1), Ok(()));

        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(limiter.check(v4, 1), Ok(()));
        assert!(limiter.check(mapped, 1).is_err());
        assert_eq!(IpLimiter::limit(one, 5).key(), "rl:req:ip:2001:db8:1:2::/64");
        assert_eq!(IpLimiter::limit(mapped, 5).key(), "rl:req:ip:192.0.2.1");
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let (limiter, now) = clocked();
        for i in 0..5_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert_eq!(limiter.check(ip, 10), Ok(()));
        }
        assert_eq!(limiter.tracked(), 5_000);
        now.fetch_add(60_000, Ordering::SeqCst);
        // New traffic sweeps the shards it lands in; old entries go.
        for i in 0..1_000u32 {
            let ip = IpAddr::from((i + 1_000_000).to_be_bytes());
            assert_eq!(limiter.check(ip, 10), Ok(()));
        }
        assert_eq!(limiter.tracked(), 1_000);
    }
}
