//! The counters behind rate limits and budgets: one atomic check-and-reserve over every limit a
//! request is subject to, and a settle step after the answer. Implemented in-process
//! (`LocalCounters`) and on Redis (one Lua script per call, on the Redis server's clock), so that a
//! limit holds across instances exactly as on one.
//!
//! Rate limits are GCRA (a token bucket kept as one "theoretical arrival time" per key): `limit`
//! units per `period`, with a burst of `limit`. A request costs 1 unit of a requests-per-minute
//! limit and its estimated tokens of a tokens-per-minute limit; settling gives back or takes the
//! difference once the real count is known. Budgets are amounts in micro-USD per calendar window
//! (the key names the window, e.g. `budget:key:K:day:2026-11-22`): a reservation counts against
//! the limit until it is settled to the real cost.

use std::time::Duration;

use async_trait::async_trait;

use crate::UnixMillis;

/// One limit a request must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// GCRA: at most `limit` units per `period` (burst `limit`); this request takes `cost` units.
    Rate { key: String, limit: u64, period: Duration, cost: u64 },
    /// At most `limit` micro-USD spent plus reserved in the window that ends at `window_end` (the
    /// counter expires then); this request reserves `reserve` micro-USD.
    Budget { key: String, limit: u64, window_end: UnixMillis, reserve: u64 },
}

impl Limit {
    pub fn key(&self) -> &str {
        match self {
            Self::Rate { key, .. } | Self::Budget { key, .. } => key,
        }
    }
}

/// Where one limit stands after a check, for the `x-ratelimit-*` headers and refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Whether this limit had room for the request.
    pub allowed: bool,
    /// Units (or micro-USD) left after this request (0 when refused).
    pub remaining: u64,
    /// Rate: until the bucket is full again; budget: until the window ends.
    pub reset: Duration,
    /// When refused: how long until this request would fit.
    pub retry_after: Duration,
}

/// The outcome of `acquire`: all limits passed (and every reservation was taken), or none was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    pub allowed: bool,
    /// One per limit, in the order given.
    pub states: Vec<LimitState>,
    /// Decided by this instance alone because the shared store was unreachable (the gateway says
    /// so in its logs and metrics).
    pub local_fallback: bool,
}

/// How a reservation ends, once the real usage is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Adds `delta` units to a rate limit's count (negative gives back an over-estimate). Never
    /// refuses; a bucket may go over its limit, which delays later requests.
    Rate { key: String, limit: u64, period: Duration, delta: i64 },
    /// Replaces a reservation of `reserved` micro-USD by the actual `spent`.
    Budget { key: String, window_end: UnixMillis, reserved: u64, spent: u64 },
}

#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Checks every limit and, only if all have room, takes all of them — atomically, so
    /// concurrent requests cannot both take the last unit. A shared implementation answers within
    /// its timeout or falls back to local counting (`Acquired::local_fallback`), never hanging.
    async fn acquire(&self, limits: &[Limit]) -> Acquired;

    /// Settles reservations made by `acquire`. Best effort: a shared store that is down loses the
    /// adjustment (the reservation then stands), it never blocks the caller for long.
    async fn settle(&self, settles: &[Settle]);

    /// Current spend (micro-USD, settled plus reserved) of a budget window, for reporting.
    async fn budget_spent(&self, key: &str) -> u64;
}
