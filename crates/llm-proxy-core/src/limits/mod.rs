//! Rate limits and budgets as policy: which limits a request is subject to, what it reserves, how
//! the reservations settle once the answer is in, and what the client is told (OpenAI-style
//! `x-ratelimit-*` headers, a 429 naming the limit, `retry-after`). Counting is not done here: the
//! limits go to [`Counters`](crate::shared_state::Counters), in-process or on Redis.
//!
//! One request, in order:
//! 1. before authentication, [`IpLimiter::check`] on the client's address;
//! 2. after it, [`ParallelSlots::try_acquire`] with [`LimitPolicy::max_parallel`]; the guard lives
//!    as long as the request (the whole stream included) and releases the slot on every exit;
//! 3. `specs = policy.limits_for(&facts)`, then `counters.acquire(&limits(&specs))`: refused →
//!    [`refusal`] (429, `retry-after`); either way [`headers`] for the response;
//! 4. on the answer's end, error or client disconnect (only if step 3 passed):
//!    `counters.settle(&settles_for(&specs, tokens, cost_micros))`.

mod auth_failures;
mod headers;
mod ip_limiter;
mod parallel_slots;
mod refusal;
mod window;

use std::collections::HashMap;
use std::time::Duration;

pub use auth_failures::{AddressCount, AuthFailureSnapshot, AuthFailures, MinuteCount};
pub use headers::{format_reset, headers};
pub use ip_limiter::IpLimiter;
pub use parallel_slots::{ParallelSlots, SlotGuard};
pub use refusal::{Refusal, RefusalKind, refusal};
pub use window::Window;

use crate::UnixMillis;
use crate::shared_state::{Limit, Settle};
use crate::virtual_key::KeyLimits;

const MINUTE: Duration = Duration::from_secs(60);

/// Rate limits of one scope (config `rate_limits:` and its per-user / per-model / per-deployment
/// variants). `None` sets no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once; only a key's is enforced ([`LimitPolicy::max_parallel`]).
    pub max_parallel: Option<u32>,
}

/// Spending limits in USD per UTC calendar hour, day and month. `None` sets no limit; 0 (or a
/// negative amount, which config validation should reject) refuses everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budgets {
    pub hourly: Option<f64>,
    pub daily: Option<f64>,
    pub monthly: Option<f64>,
}

/// Which limits apply to whom; built from the config by the server.
#[derive(Debug, Clone, Default)]
pub struct LimitPolicy {
    /// Config `rate_limits:` — for every virtual key, field by field where the key sets none of
    /// its own (a key with only `--rpm` still gets the default tokens per minute).
    pub defaults: RateLimits,
    /// Config `rate_limits.per_user`: for each user, counted over all of that user's keys.
    pub per_user: RateLimits,
    /// By public model name (route, alias, `provider/model`), counted over all traffic to it.
    pub per_model: HashMap<String, RateLimits>,
    /// Config `cost_budget:` — all traffic together.
    pub global_budget: Budgets,
    /// Config `cost_budget.per_user`: for each user, over all of that user's keys.
    pub user_budget: Budgets,
}

/// What the policy needs to know about one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The virtual key's id; `None` for the master key, which no key limit applies to.
    pub key_id: Option<&'a str>,
    /// The key's own limits; unset fields fall back to [`LimitPolicy::defaults`] (rates only:
    /// a key without budgets of its own has none, the global budget still applies).
    pub key_limits: Option<&'a KeyLimits>,
    /// The user the key belongs to.
    pub user: Option<&'a str>,
    /// The model as the client named it, looked up in [`LimitPolicy::per_model`].
    pub model: &'a str,
    /// The upstream deployment (`provider/model`) when known and limited. Its limits go into the
    /// same all-or-nothing acquire, so a refusal there takes nothing from the key's limits and the
    /// router may try another deployment.
    pub deployment: Option<&'a str>,
    pub deployment_limits: Option<&'a RateLimits>,
    /// Prompt plus expected completion tokens: the cost against tokens-per-minute limits until
    /// settled.
    pub estimated_tokens: u64,
    /// Reserved against every budget until settled.
    pub estimated_cost_micros: u64,
    /// Picks the budget windows.
    pub now: UnixMillis,
}

/// Whose limit it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Key,
    User,
    Model,
    Deployment,
    Global,
    /// The per-address limit in front of authentication.
    Ip,
}

impl Scope {
    /// For counter keys and metric labels (low cardinality).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::User => "user",
            Self::Model => "model",
            Self::Deployment => "deployment",
            Self::Global => "global",
            Self::Ip => "ip",
        }
    }

    /// As in messages: "the key's requests per minute (5)".
    fn possessive(self) -> &'static str {
        match self {
            Self::Key => "the key's",
            Self::User => "the user's",
            Self::Model => "the model's",
            Self::Deployment => "the deployment's",
            Self::Global => "the gateway's",
            Self::Ip => "this address's",
        }
    }

    /// The short form in counter keys (`dep`, not `deployment`, as the key scheme has it).
    fn key_tag(self) -> &'static str {
        match self {
            Self::Deployment => "dep",
            other => other.as_str(),
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Requests,
    Tokens,
    /// Micro-USD of a budget.
    Spend,
}

/// One limit a request must pass, with what it is, for headers, messages and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    pub limit: Limit,
    pub scope: Scope,
    pub kind: LimitKind,
    pub window: Window,
}

impl LimitSpec {
    /// "the key's requests per minute (5)", "the user's tokens per minute (100000)",
    /// "the key's daily budget ($10.00)".
    pub fn describe(&self) -> String {
        let whose = self.scope.possessive();
        match (&self.limit, self.kind) {
            (Limit::Budget { limit, .. }, _) => {
                format!("{whose} {} budget ({})", self.window.adjective(), format_usd(*limit))
            }
            (Limit::Rate { limit, .. }, LimitKind::Tokens) => format!("{whose} tokens per minute ({limit})"),
            (Limit::Rate { limit, .. }, _) => format!("{whose} requests per minute ({limit})"),
        }
    }
}

/// The limits to hand to `Counters::acquire`, in the specs' order (which is the order of
/// `Acquired::states`).
pub fn limits(specs: &[LimitSpec]) -> Vec<Limit> {
    specs.iter().map(|s| s.limit.clone()).collect()
}

impl LimitPolicy {
    /// Every limit this request must pass, in a fixed order — rates (key, user, model,
    /// deployment; requests before tokens), then budgets (key, user, global; hour, day, month) —
    /// with stable counter keys:
    ///
    /// | | key |
    /// |---|---|
    /// | rates | `rl:req:key:<id>`, `rl:tok:key:<id>`, `rl:req:user:<user>`, `rl:req:model:<model>`, `rl:req:dep:<provider/model>`, … |
    /// | budgets | `budget:key:<id>:hour:<YYYY-MM-DDTHH>`, `budget:user:<user>:day:<YYYY-MM-DD>`, `budget:global:month:<YYYY-MM>` |
    ///
    /// Budget windows are UTC calendar windows; each limit carries its window's end. Keys of
    /// different scopes or windows cannot collide whatever a name contains: the prefix names
    /// the scope and the fixed-length window label ends the key.
    pub fn limits_for(&self, facts: &RequestFacts) -> Vec<LimitSpec> {
        let mut specs = Vec::new();
        let tokens = facts.estimated_tokens;

        if let Some(id) = facts.key_id {
            let own = facts.key_limits;
            let rpm = own.and_then(|k| k.rpm).or(self.defaults.requests_per_minute);
            let tpm = own.and_then(|k| k.tpm).or(self.defaults.tokens_per_minute);
            push_rates(&mut specs, Scope::Key, id, rpm, tpm, tokens);
        }
        if let Some(user) = facts.user {
            let l = &self.per_user;
            push_rates(&mut specs, Scope::User, user, l.requests_per_minute, l.tokens_per_minute, tokens);
        }
        if let Some(l) = self.per_model.get(facts.model) {
            push_rates(&mut specs, Scope::Model, facts.model, l.requests_per_minute, l.tokens_per_minute, tokens);
        }
        if let (Some(dep), Some(l)) = (facts.deployment, facts.deployment_limits) {
            push_rates(&mut specs, Scope::Deployment, dep, l.requests_per_minute, l.tokens_per_minute, tokens);
        }

        if let (Some(id), Some(k)) = (facts.key_id, facts.key_limits) {
            let own = Budgets { hourly: k.budget_hourly, daily: k.budget_daily, monthly: k.budget_monthly };
            push_budgets(&mut specs, Scope::Key, &format!("key:{id}"), &own, facts);
        }
        if let Some(user) = facts.user {
            push_budgets(&mut specs, Scope::User, &format!("user:{user}"), &self.user_budget, facts);
        }
        push_budgets(&mut specs, Scope::Global, "global", &self.global_budget, facts);
        specs
    }

    /// How many requests of this key may be in flight at once: the key's own `max_parallel`, else
    /// the default; `None` for no limit (and for the master key).
    pub fn max_parallel(&self, facts: &RequestFacts) -> Option<u32> {
        facts.key_id?;
        facts.key_limits.and_then(|k| k.max_parallel).or(self.defaults.max_parallel)
    }
}

fn push_rates(specs: &mut Vec<LimitSpec>, scope: Scope, name: &str, rpm: Option<u64>, tpm: Option<u64>, tokens: u64) {
    let tag = scope.key_tag();
    if let Some(limit) = rpm {
        let limit = Limit::Rate { key: format!("rl:req:{tag}:{name}"), limit, period: MINUTE, cost: 1 };
        specs.push(LimitSpec { limit, scope, kind: LimitKind::Requests, window: Window::Minute });
    }
    if let Some(limit) = tpm {
        let limit = Limit::Rate { key: format!("rl:tok:{tag}:{name}"), limit, period: MINUTE, cost: tokens };
        specs.push(LimitSpec { limit, scope, kind: LimitKind::Tokens, window: Window::Minute });
    }
}

fn push_budgets(specs: &mut Vec<LimitSpec>, scope: Scope, owner: &str, budgets: &Budgets, facts: &RequestFacts) {
    for (usd, window) in
        [(budgets.hourly, Window::Hour), (budgets.daily, Window::Day), (budgets.monthly, Window::Month)]
    {
        let (Some(usd), Some((label, window_end))) = (usd, window.calendar(facts.now)) else { continue };
        let limit = Limit::Budget {
            key: format!("budget:{owner}:{}:{label}", window.as_str()),
            limit: usd_to_micros(usd),
            window_end,
            reserve: facts.estimated_cost_micros,
        };
        specs.push(LimitSpec { limit, scope, kind: LimitKind::Spend, window });
    }
}

/// The settles for a request that passed `acquire` with these specs, once its real token count and
/// cost are known (0 and 0 when it failed before the upstream charged anything). A request still
/// counts as one request; token limits get back or take the difference to the estimate; every
/// budget's reservation becomes the real cost. Nothing to settle is left out.
pub fn settles_for(specs: &[LimitSpec], actual_tokens: u64, actual_cost_micros: u64) -> Vec<Settle> {
    specs
        .iter()
        .filter_map(|spec| match (&spec.limit, spec.kind) {
            (Limit::Rate { key, limit, period, cost }, LimitKind::Tokens) => {
                let delta = i128::from(actual_tokens) - i128::from(*cost);
                let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
                (delta != 0).then(|| Settle::Rate { key: key.clone(), limit: *limit, period: *period, delta })
            }
            (Limit::Rate { .. }, _) => None,
            (Limit::Budget { key, window_end, reserve, .. }, _) => {
                (*reserve != actual_cost_micros).then(|| Settle::Budget {
                    key: key.clone(),
                    window_end: *window_end,
                    reserved: *reserve,
                    spent: actual_cost_micros,
                })
            }
        })
        .collect()
}

/// USD → micro-USD, rounded; negative and NaN amounts become 0.
fn usd_to_micros(usd: f64) -> u64 {
    // `as` saturates: NaN and negatives to 0, absurdly large amounts to u64::MAX.
    (usd * 1_000_000.0).round() as u64
}

/// `$10.00`; sub-cent amounts keep their digits (`$0.0025`).
fn format_usd(micros: u64) -> String {
    let (whole, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac % 10_000 == 0 {
        format!("${whole}.{:02}", frac / 10_000)
    } else {
        format!("${whole}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests;
