//! [`Refusal`]: what a client is told when a limit stops its request — which limit, and when to
//! come back.

use std::time::Duration;

use super::window::format_utc;
use super::{LimitKind, LimitSpec, Scope, format_reset};
use crate::shared_state::{Acquired, Limit};

/// Why a request was refused; all become a 429 with `retry-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// A requests- or tokens-per-minute limit.
    RateLimit,
    /// A spending limit of a calendar window.
    Budget,
    /// Too many requests of the key in flight.
    Parallel,
}

impl RefusalKind {
    /// The error `code` in the OpenAI-shaped body, also usable as a metric label.
    pub fn code(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit_exceeded",
            Self::Budget => "budget_exceeded",
            Self::Parallel => "too_many_parallel_requests",
        }
    }
}

/// A 429 for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Names the limit and when the request would fit, e.g. "Rate limit reached: the key's
    /// requests per minute (5). Try again in 12s."
    pub message: String,
    /// The `retry-after` header: whole seconds, rounded up, at least 1.
    pub retry_after: Duration,
    pub kind: RefusalKind,
    /// Whose limit it was (for metrics).
    pub scope: Scope,
}

impl Refusal {
    /// Every parallel slot of the key is taken. Slots free up as requests finish; a second is a
    /// reasonable guess at when.
    pub fn parallel(max: u32) -> Self {
        Self {
            message: format!(
                "Too many concurrent requests: the key's limit of {max} in flight at once is reached. Try again when one \
                 finishes."
            ),
            retry_after: Duration::from_secs(1),
            kind: RefusalKind::Parallel,
            scope: Scope::Key,
        }
    }

    /// The per-address limit in front of authentication ([`super::IpLimiter::check`]).
    pub fn ip(rpm: u64, retry_after: Duration) -> Self {
        Self {
            message: format!(
                "Rate limit reached: this address's requests per minute ({rpm}). Try again in {}.",
                format_reset(retry_after)
            ),
            retry_after: secs_up(retry_after),
            kind: RefusalKind::RateLimit,
            scope: Scope::Ip,
        }
    }
}

/// The refusal for a request `acquire` turned down (`None` if it was allowed). When several limits
/// refused, the client must wait for all of them: the message names the one that frees up last and
/// `retry-after` is its wait.
pub fn refusal(specs: &[LimitSpec], acquired: &Acquired) -> Option<Refusal> {
    if acquired.allowed {
        return None;
    }
    let binding = specs
        .iter()
        .zip(&acquired.states)
        .filter(|(_, state)| !state.allowed)
        // `max_by_key` keeps the last of equals; reversed, the first listed (narrowest) wins.
        .rev()
        .max_by_key(|(_, state)| state.retry_after);
    let Some((spec, state)) = binding else {
        // Refused with no limit saying why (a counters backend in trouble): still a 429.
        return Some(Refusal {
            message: "Rate limit reached. Try again in 1s.".into(),
            retry_after: Duration::from_secs(1),
            kind: RefusalKind::RateLimit,
            scope: Scope::Global,
        });
    };
    let wait = state.retry_after;
    let (message, kind) = match &spec.limit {
        Limit::Budget { window_end, .. } => (
            format!(
                "Budget exceeded: {} is reached. It resets at {} (in {}).",
                spec.describe(),
                format_utc(*window_end),
                format_reset(wait)
            ),
            RefusalKind::Budget,
        ),
        Limit::Rate { limit, cost, .. } if spec.kind == LimitKind::Tokens && cost > limit => (
            format!(
                "Request too large: its estimated {cost} tokens exceed {}. Send a shorter request or a lower \
                 max_tokens.",
                spec.describe()
            ),
            RefusalKind::RateLimit,
        ),
        Limit::Rate { .. } => (
            format!("Rate limit reached: {}. Try again in {}.", spec.describe(), format_reset(wait)),
            RefusalKind::RateLimit,
        ),
    };
    Some(Refusal { message, retry_after: secs_up(wait), kind, scope: spec.scope })
}

/// Whole seconds, rounded up, at least one: what `retry-after` can carry.
fn secs_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_micros().div_ceil(1_000_000).max(1).try_into().unwrap_or(u64::MAX))
}
