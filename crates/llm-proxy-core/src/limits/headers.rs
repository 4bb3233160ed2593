//! OpenAI's `x-ratelimit-*` response headers, so clients and SDKs that pace themselves on OpenAI's
//! headers pace themselves on the gateway's limits the same way.

use std::time::Duration;

use super::{LimitKind, LimitSpec};
use crate::shared_state::{Acquired, Limit, LimitState};

const REQUEST_HEADERS: [&str; 3] =
    ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"];
const TOKEN_HEADERS: [&str; 3] =
    ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"];

/// `x-ratelimit-{limit,remaining,reset}-requests` from the request limit with the least remaining,
/// and the same `-tokens` from the tightest token limit; nothing for a kind no limit counts.
/// `specs` and `acquired.states` are in the same order (as `acquire` returns them). On a refusal
/// the refused limits show 0 remaining, as OpenAI's 429s do.
pub fn headers(specs: &[LimitSpec], acquired: &Acquired) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(6);
    for (kind, names) in [(LimitKind::Requests, REQUEST_HEADERS), (LimitKind::Tokens, TOKEN_HEADERS)] {
        let tightest = specs
            .iter()
            .zip(&acquired.states)
            .filter(|(spec, _)| spec.kind == kind)
            .filter_map(|(spec, state)| match spec.limit {
                Limit::Rate { limit, .. } => Some((limit, state)),
                Limit::Budget { .. } => None,
            })
            // The first of equals: the narrower scope, as specs list keys before models.
            .min_by_key(|(_, state)| state.remaining);
        if let Some((limit, LimitState { remaining, reset, .. })) = tightest {
            let [l, r, t] = names;
            out.push((l, limit.to_string()));
            out.push((r, remaining.to_string()));
            out.push((t, format_reset(*reset)));
        }
    }
    out
}

/// A duration as OpenAI writes its reset headers (Go's duration format, to the millisecond):
/// `250ms`, `12s`, `1.5s`, `1m5s`, `6m0s`, `1h0m0s`, `0s`. Partial milliseconds round up, so
/// a client never comes back too early.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_micros().div_ceil(1000);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        out.push('.');
        out.push_str(format!("{frac:03}").trim_end_matches('0'));
    }
    out.push('s');
    out
}
