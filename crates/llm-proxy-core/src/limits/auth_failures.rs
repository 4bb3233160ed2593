//! [`AuthFailures`]: requests refused for a missing or wrong key, counted per client address and
//! per minute instead of each being written to the request log (20,000 keyless requests once
//! added 20,000 rows), and the lock-out that limits guessing at the admin API.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::UnixMillis;

/// Addresses tracked at once; past this, failures from new addresses are counted in the totals
/// only (a spray of addresses cannot grow the map without bound).
const MAX_ADDRESSES: usize = 10_000;
/// Minutes of history kept for [`AuthFailures::snapshot`].
const HISTORY_MINUTES: usize = 60;
/// Addresses named in a snapshot.
const TOP_ADDRESSES: usize = 20;
const MINUTE_MS: u64 = 60_000;

/// Per-instance counts of authentication failures.
#[derive(Default)]
pub struct AuthFailures {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    total: u64,
    /// `(minute, failures)`, oldest first, at most [`HISTORY_MINUTES`] long.
    minutes: VecDeque<(u64, u64)>,
    /// Failures per address in the current minute (and, for the lock-out, the previous one).
    by_ip: HashMap<IpAddr, IpCount>,
}

#[derive(Clone, Copy)]
struct IpCount {
    minute: u64,
    count: u64,
    previous: u64,
}

impl IpCount {
    /// Failures in the minute before `minute` and in `minute` itself.
    fn at(self, minute: u64) -> (u64, u64) {
        if self.minute == minute {
            (self.previous, self.count)
        } else if self.minute + 1 == minute {
            (self.count, 0)
        } else {
            (0, 0)
        }
    }
}

/// What `/api/stats` shows of the failures.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuthFailureSnapshot {
    /// Since the instance started.
    pub total: u64,
    /// In the current and previous calendar minutes together.
    pub last_minute: u64,
    /// `(minute start in Unix ms, failures)` for the last hour, oldest first; quiet minutes omitted.
    pub per_minute: Vec<MinuteCount>,
    /// The addresses with the most failures in the current minute, most first.
    pub top_addresses: Vec<AddressCount>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MinuteCount {
    /// When the minute starts.
    pub minute: UnixMillis,
    pub failures: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AddressCount {
    pub address: String,
    pub failures: u64,
}

impl AuthFailures {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one failure from `ip` (when known) at `now`.
    pub fn record(&self, ip: Option<IpAddr>, now: UnixMillis) {
        let minute = now.as_millis() / MINUTE_MS;
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.total += 1;
        match g.minutes.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => {
                g.minutes.push_back((minute, 1));
                while g.minutes.len() > HISTORY_MINUTES {
                    g.minutes.pop_front();
                }
            }
        }
        let Some(ip) = ip else { return };
        if g.by_ip.len() >= MAX_ADDRESSES && !g.by_ip.contains_key(&ip) {
            // Forget addresses quiet for a whole minute; if all are current, count this one only
            // in the totals.
            g.by_ip.retain(|_, c| c.minute + 1 >= minute);
            if g.by_ip.len() >= MAX_ADDRESSES {
                return;
            }
        }
        let c = g.by_ip.entry(ip).or_insert(IpCount { minute, count: 0, previous: 0 });
        let (previous, count) = c.at(minute);
        *c = IpCount { minute, count: count + 1, previous };
    }

    /// Whether `ip` has failed `max_per_minute` times or more within the last minute (a sliding
    /// window over two calendar minutes, the previous one weighted by how much of it is still
    /// inside the window); `Some` says how long until it falls back under.
    pub fn locked_out(&self, ip: IpAddr, now: UnixMillis, max_per_minute: u64) -> Option<Duration> {
        let minute = now.as_millis() / MINUTE_MS;
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (previous, current) = g.by_ip.get(&ip)?.at(minute);
        let into = now.as_millis() % MINUTE_MS;
        let weighted = current * MINUTE_MS + previous * (MINUTE_MS - into);
        if weighted < max_per_minute * MINUTE_MS {
            return None;
        }
        // Once the previous minute has slid out only the current one counts; if that alone is
        // over, the lock lasts until the next minute begins.
        let wait = if current >= max_per_minute { MINUTE_MS - into } else { (MINUTE_MS - into).min(MINUTE_MS / 2) };
        Some(Duration::from_millis(wait.max(1_000)))
    }

    pub fn snapshot(&self, now: UnixMillis) -> AuthFailureSnapshot {
        let minute = now.as_millis() / MINUTE_MS;
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let last_minute = g.minutes.iter().filter(|(m, _)| *m + 1 >= minute).map(|(_, n)| n).sum();
        let per_minute = g
            .minutes
            .iter()
            .filter(|(m, _)| *m + HISTORY_MINUTES as u64 > minute)
            .map(|&(m, n)| MinuteCount { minute: UnixMillis::from_millis(m * MINUTE_MS), failures: n })
            .collect();
        let mut top: Vec<AddressCount> = g
            .by_ip
            .iter()
            .filter_map(|(ip, c)| {
                let (_, n) = c.at(minute);
                (n > 0).then(|| AddressCount { address: ip.to_string(), failures: n })
            })
            .collect();
        top.sort_by(|a, b| b.failures.cmp(&a.failures).then_with(|| a.address.cmp(&b.address)));
        top.truncate(TOP_ADDRESSES);
        AuthFailureSnapshot { total: g.total, last_minute, per_minute, top_addresses: top }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_040_000; // a minute boundary

    fn at(offset_ms: u64) -> UnixMillis {
        UnixMillis::from_millis(T0 + offset_ms)
    }

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn counts_per_minute_and_per_address() {
        let f = AuthFailures::new();
        for _ in 0..3 {
            f.record(ip(1), at(1_000));
        }
        f.record(ip(2), at(2_000));
        f.record(None, at(61_000));
        let s = f.snapshot(at(61_000));
        assert_eq!(s.total, 5);
        assert_eq!(s.last_minute, 5);
        assert_eq!(
            s.per_minute,
            [MinuteCount { minute: at(0), failures: 4 }, MinuteCount { minute: at(MINUTE_MS), failures: 1 }]
        );
        // Only the current minute names addresses.
        assert!(s.top_addresses.is_empty());
        let s = f.snapshot(at(5_000));
        assert_eq!(s.top_addresses[0], AddressCount { address: "10.0.0.1".into(), failures: 3 });
    }

    #[test]
    fn locks_out_an_address_past_the_limit_until_the_window_slides() {
        let f = AuthFailures::new();
        for i in 0..5 {
            f.record(ip(1), at(i * 1_000));
        }
        assert!(f.locked_out(ip(1).unwrap(), at(10_000), 6).is_none());
        assert!(f.locked_out(ip(2).unwrap(), at(10_000), 5).is_none());
        let wait = f.locked_out(ip(1).unwrap(), at(10_000), 5).unwrap();
        assert_eq!(wait, Duration::from_millis(50_000));
        // Half-way through the next minute half of the previous one still counts: 2.5 < 5.
        assert!(f.locked_out(ip(1).unwrap(), at(90_000), 5).is_none());
        assert!(f.locked_out(ip(1).unwrap(), at(130_000), 1).is_none());
    }

    #[test]
    fn a_spray_of_addresses_is_bounded() {
        let f = AuthFailures::new();
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            f.record(Some(IpAddr::from(i.to_be_bytes())), at(0));
        }
        let s = f.snapshot(at(0));
        assert_eq!(s.total, MAX_ADDRESSES as u64 + 50);
        assert_eq!(f.inner.lock().unwrap().by_ip.len(), MAX_ADDRESSES);
        assert_eq!(s.top_addresses.len(), TOP_ADDRESSES);
    }
}
