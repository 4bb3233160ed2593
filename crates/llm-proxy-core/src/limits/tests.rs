use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::shared_state::{Acquired, LimitState, LocalCounters};

/// 2026-11-22T13:45:30Z
const T: UnixMillis = UnixMillis::from_millis(1_795_355_130_000);
/// 2025-12-31T23:59:59.999Z
const LAST_MS_OF_2025: UnixMillis = UnixMillis::from_millis(1_767_225_599_999);
const NEW_YEAR_2026: UnixMillis = UnixMillis::from_millis(1_767_225_600_000);

fn policy() -> LimitPolicy {
    LimitPolicy {
        defaults: RateLimits {
            requests_per_minute: Some(100),
            tokens_per_minute: Some(100_000),
            max_parallel: Some(4),
        },
        per_user: RateLimits { requests_per_minute: Some(300), tokens_per_minute: None, max_parallel: None },
        per_model: HashMap::from([(
            "smart".to_string(),
            RateLimits { requests_per_minute: Some(1000), tokens_per_minute: Some(2_000_000), max_parallel: None },
        )]),
        global_budget: Budgets { hourly: Some(10.0), daily: Some(100.0), monthly: None },
        user_budget: Budgets { hourly: None, daily: None, monthly: Some(50.0) },
    }
}

fn facts<'a>(key_limits: Option<&'a KeyLimits>, user: Option<&'a str>, model: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        key_id: Some("k1"),
        key_limits,
        user,
        model,
        deployment: None,
        deployment_limits: None,
        estimated_tokens: 1200,
        estimated_cost_micros: 30_000,
        now: T,
    }
}

fn keys(specs: &[LimitSpec]) -> Vec<&str> {
    specs.iter().map(|s| s.limit.key()).collect()
}

fn rate(spec: &LimitSpec) -> (u64, u64) {
    match spec.limit {
        Limit::Rate { limit, cost, period, .. } => {
            assert_eq!(period, Duration::from_secs(60));
            (limit, cost)
        }
        Limit::Budget { .. } => panic!("{spec:?} is not a rate limit"),
    }
}

fn budget(spec: &LimitSpec) -> (u64, UnixMillis, u64) {
    match spec.limit {
        Limit::Budget { limit, window_end, reserve, .. } => (limit, window_end, reserve),
        Limit::Rate { .. } => panic!("{spec:?} is not a budget"),
    }
}

fn allowed(remaining: u64, reset_ms: u64) -> LimitState {
    LimitState { allowed: true, remaining, reset: Duration::from_millis(reset_ms), retry_after: Duration::ZERO }
}

fn refused(reset_ms: u64, retry_ms: u64) -> LimitState {
    LimitState {
        allowed: false,
        remaining: 0,
        reset: Duration::from_millis(reset_ms),
        retry_after: Duration::from_millis(retry_ms),
    }
}

fn acquired(states: Vec<LimitState>) -> Acquired {
    Acquired { allowed: states.iter().all(|s| s.allowed), states, local_fallback: false }
}

#[test]
fn a_key_without_limits_of_its_own_gets_the_defaults_and_the_global_budget() {
    let specs = LimitPolicy { user_budget: Budgets::default(), ..policy() }.limits_for(&facts(None, None, "gpt-4o"));
    assert_eq!(
        keys(&specs),
        ["rl:req:key:k1", "rl:tok:key:k1", "budget:global:hour:2026-11-22T13", "budget:global:day:2026-11-22"]
    );
    assert_eq!(rate(&specs[0]), (100, 1));
    assert_eq!(rate(&specs[1]), (100_000, 1200));
    assert_eq!(budget(&specs[2]), (10_000_000, UnixMillis::from_millis(1_795_356_000_000), 30_000));
    assert_eq!(budget(&specs[3]), (100_000_000, UnixMillis::from_millis(1_795_392_000_000), 30_000));
    let what: Vec<_> = specs.iter().map(|s| (s.scope, s.kind, s.window)).collect();
    assert_eq!(
        what,
        [
            (Scope::Key, LimitKind::Requests, Window::Minute),
            (Scope::Key, LimitKind::Tokens, Window::Minute),
            (Scope::Global, LimitKind::Spend, Window::Hour),
            (Scope::Global, LimitKind::Spend, Window::Day),
        ]
    );
}

#[test]
fn a_key_overrides_the_defaults_field_by_field() {
    let own = KeyLimits { rpm: Some(5), ..KeyLimits::default() };
    let specs = policy().limits_for(&facts(Some(&own), None, "gpt-4o"));
    assert_eq!(rate(&specs[0]), (5, 1));
    // No `tpm` of its own: the default stands.
    assert_eq!(rate(&specs[1]), (100_000, 1200));

    let no_defaults = LimitPolicy { defaults: RateLimits::default(), ..policy() };
    let specs = no_defaults.limits_for(&facts(Some(&own), None, "gpt-4o"));
    assert_eq!(keys(&specs)[..2], ["rl:req:key:k1", "budget:global:hour:2026-11-22T13"]);
}

#[test]
fn the_master_key_has_no_key_limits_but_the_global_budget_holds() {
    let master = RequestFacts { key_id: None, ..facts(None, None, "gpt-4o") };
    assert_eq!(
        keys(&policy().limits_for(&master)),
        ["budget:global:hour:2026-11-22T13", "budget:global:day:2026-11-22"]
    );
    assert_eq!(policy().max_parallel(&master), None);
}

#[test]
fn user_model_and_deployment_limits_come_after_the_keys_in_a_fixed_order() {
    let own = KeyLimits {
        rpm: Some(5),
        tpm: Some(10_000),
        budget_hourly: Some(1.0),
        budget_daily: Some(10.0),
        budget_monthly: Some(100.0),
        ..KeyLimits::default()
    };
    let dep_limits = RateLimits { requests_per_minute: Some(500), tokens_per_minute: None, max_parallel: None };
    let f = RequestFacts {
        deployment: Some("openai/gpt-4o"),
        deployment_limits: Some(&dep_limits),
        ..facts(Some(&own), Some("alice"), "smart")
    };
    let specs = policy().limits_for(&f);
    assert_eq!(
        keys(&specs),
        [
            "rl:req:key:k1",
            "rl:tok:key:k1",
            "rl:req:user:alice",
            "rl:req:model:smart",
            "rl:tok:model:smart",
            "rl:req:dep:openai/gpt-4o",
            "budget:key:k1:hour:2026-11-22T13",
            "budget:key:k1:day:2026-11-22",
            "budget:key:k1:month:2026-11",
            "budget:user:alice:month:2026-11",
            "budget:global:hour:2026-11-22T13",
            "budget:global:day:2026-11-22",
        ]
    );
    assert_eq!(rate(&specs[2]), (300, 1));
    assert_eq!(rate(&specs[4]), (2_000_000, 1200));
    assert_eq!(budget(&specs[8]), (100_000_000, UnixMillis::from_millis(1_796_083_200_000), 30_000));
    assert_eq!(budget(&specs[9]), (50_000_000, UnixMillis::from_millis(1_796_083_200_000), 30_000));
    let scopes: Vec<_> = specs.iter().map(|s| s.scope.as_str()).collect();
    assert_eq!(
        scopes,
        ["key", "key", "user", "model", "model", "deployment", "key", "key", "key", "user", "global", "global"]
    );
    // A model without limits of its own adds none.
    assert_eq!(policy().limits_for(&facts(Some(&own), Some("alice"), "gpt-4o")).len(), 9);
}

#[test]
fn budget_windows_turn_over_at_new_year() {
    let own = KeyLimits {
        budget_hourly: Some(1.0),
        budget_daily: Some(2.0),
        budget_monthly: Some(3.0),
        ..Default::default()
    };
    let p = LimitPolicy::default();
    let at = |now| p.limits_for(&RequestFacts { now, ..facts(Some(&own), None, "m") });

    let old_year = at(LAST_MS_OF_2025);
    assert_eq!(
        keys(&old_year),
        ["budget:key:k1:hour:2025-12-31T23", "budget:key:k1:day:2025-12-31", "budget:key:k1:month:2025-12"]
    );
    assert!(old_year.iter().all(|s| budget(s).1 == NEW_YEAR_2026));

    let new_year = at(NEW_YEAR_2026);
    assert_eq!(
        keys(&new_year),
        ["budget:key:k1:hour:2026-01-01T00", "budget:key:k1:day:2026-01-01", "budget:key:k1:month:2026-01"]
    );
    let ends: Vec<_> = new_year.iter().map(|s| budget(s).1).collect();
    // 2026-01-01T01:00Z, 2026-01-02T00:00Z, 2026-02-01T00:00Z.
    let hours = |n: u64| Duration::from_secs(n * 3600);
    assert_eq!(ends, [NEW_YEAR_2026 + hours(1), NEW_YEAR_2026 + hours(24), NEW_YEAR_2026 + hours(31 * 24)]);
}

#[test]
fn usd_amounts_become_micros_and_read_back() {
    assert_eq!(usd_to_micros(10.0), 10_000_000);
    assert_eq!(usd_to_micros(0.1 + 0.2), 300_000);
    assert_eq!(usd_to_micros(-1.0), 0);
    assert_eq!(usd_to_micros(f64::NAN), 0);
    assert_eq!(format_usd(10_000_000), "$10.00");
    assert_eq!(format_usd(1_230_000), "$1.23");
    assert_eq!(format_usd(2_500), "$0.0025");
    assert_eq!(format_usd(0), "$0.00");
}

#[test]
fn max_parallel_is_the_keys_own_else_the_default() {
    let own = KeyLimits { max_parallel: Some(1), ..KeyLimits::default() };
    assert_eq!(policy().max_parallel(&facts(Some(&own), None, "m")), Some(1));
    assert_eq!(policy().max_parallel(&facts(None, None, "m")), Some(4));
    assert_eq!(LimitPolicy::default().max_parallel(&facts(None, None, "m")), None);
}

#[test]
fn settles_give_back_or_take_tokens_and_replace_reservations_by_the_cost() {
    let specs = policy().limits_for(&facts(None, Some("alice"), "smart"));
    // key req, key tok, user req, model req, model tok, user month, global hour, global day.
    assert_eq!(specs.len(), 8);

    let settles = settles_for(&specs, 200, 12_345);
    let minute = Duration::from_secs(60);
    assert_eq!(
        settles,
        [
            Settle::Rate { key: "rl:tok:key:k1".into(), limit: 100_000, period: minute, delta: -1000 },
            Settle::Rate { key: "rl:tok:model:smart".into(), limit: 2_000_000, period: minute, delta: -1000 },
            Settle::Budget {
                key: "budget:user:alice:month:2026-11".into(),
                window_end: UnixMillis::from_millis(1_796_083_200_000),
                reserved: 30_000,
                spent: 12_345
            },
            Settle::Budget {
                key: "budget:global:hour:2026-11-22T13".into(),
                window_end: UnixMillis::from_millis(1_795_356_000_000),
                reserved: 30_000,
                spent: 12_345
            },
            Settle::Budget {
                key: "budget:global:day:2026-11-22".into(),
                window_end: UnixMillis::from_millis(1_795_392_000_000),
                reserved: 30_000,
                spent: 12_345
            },
        ]
    );

    // Over the estimate: the difference is taken.
    let more = settles_for(&specs, 5000, 30_000);
    assert_eq!(more.len(), 2);
    assert!(matches!(more[0], Settle::Rate { delta: 3800, .. }));
    // Exactly as estimated: nothing to settle.
    assert!(settles_for(&specs, 1200, 30_000).is_empty());
    // Failed before the upstream charged: everything reserved comes back.
    let failed = settles_for(&specs, 0, 0);
    assert!(failed.iter().all(|s| match s {
        Settle::Rate { delta, .. } => *delta == -1200,
        Settle::Budget { spent, reserved, .. } => *spent == 0 && *reserved == 30_000,
    }));
}

#[test]
fn headers_show_the_tightest_request_and_token_limits() {
    let own = KeyLimits { rpm: Some(5), ..KeyLimits::default() };
    let specs = policy().limits_for(&facts(Some(&own), Some("alice"), "smart"));
    // key req (5), key tok (100k), user req (300), model req (1000), model tok (2M), budgets…
    let mut states = vec![
        allowed(3, 24_000),
        allowed(98_000, 1_250),
        allowed(2, 400),
        allowed(990, 600),
        allowed(1_500_000, 65_000),
    ];
    states.extend(specs[5..].iter().map(|_| allowed(1, 3_600_000)));
    let h = headers(&specs, &acquired(states));
    assert_eq!(
        h,
        [
            ("x-ratelimit-limit-requests", "300".to_string()),
            ("x-ratelimit-remaining-requests", "2".to_string()),
            ("x-ratelimit-reset-requests", "400ms".to_string()),
            ("x-ratelimit-limit-tokens", "100000".to_string()),
            ("x-ratelimit-remaining-tokens", "98000".to_string()),
            ("x-ratelimit-reset-tokens", "1.25s".to_string()),
        ]
    );

    // Only budgets: no rate headers at all.
    let master = RequestFacts { key_id: None, ..facts(None, None, "m") };
    let budget_only = policy().limits_for(&master);
    let states = budget_only.iter().map(|_| allowed(1, 1)).collect();
    assert!(headers(&budget_only, &acquired(states)).is_empty());
}

#[test]
fn reset_durations_are_written_as_openai_writes_them() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_micros(1), "1ms"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_millis(999), "999ms"),
        (Duration::from_secs(1), "1s"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_millis(8_640), "8.64s"),
        (Duration::from_secs(12), "12s"),
        (Duration::from_secs(60), "1m0s"),
        (Duration::from_secs(65), "1m5s"),
        (Duration::from_secs(360), "6m0s"),
        (Duration::from_millis(90_500), "1m30.5s"),
        (Duration::from_secs(3600), "1h0m0s"),
        (Duration::from_secs(3 * 3600 + 12 * 60 + 7), "3h12m7s"),
        (Duration::from_secs(50 * 3600), "50h0m0s"),
    ];
    for (d, expected) in cases {
        assert_eq!(format_reset(d), expected, "{d:?}");
    }
}

#[test]
fn a_rate_refusal_names_the_limit_and_when_to_come_back() {
    let own = KeyLimits { rpm: Some(5), ..KeyLimits::default() };
    let specs = policy().limits_for(&facts(Some(&own), None, "m"));
    let mut states: Vec<_> = specs.iter().map(|_| allowed(10, 1000)).collect();
    states[0] = refused(60_000, 12_000);
    let a = acquired(states.clone());
    assert_eq!(
        refusal(&specs, &a),
        Some(Refusal {
            message: "Rate limit reached: the key's requests per minute (5). Try again in 12s.".into(),
            retry_after: Duration::from_secs(12),
            kind: RefusalKind::RateLimit,
            scope: Scope::Key,
        })
    );
    // The refused limit shows 0 remaining in the headers of the 429.
    assert_eq!(headers(&specs, &a)[1], ("x-ratelimit-remaining-requests", "0".to_string()));

    // A partial second rounds up.
    states[0] = refused(60_000, 11_001);
    assert_eq!(refusal(&specs, &acquired(states)).unwrap().retry_after.as_secs(), 12);
}

#[test]
fn of_several_refusals_the_one_that_frees_up_last_is_named() {
    let specs = policy().limits_for(&facts(None, None, "m"));
    // key req, key tok, global hour, global day
    let states = vec![refused(60_000, 600), refused(30_000, 30_500), allowed(0, 1), refused(3_600_000, 1_000)];
    let r = refusal(&specs, &acquired(states)).unwrap();
    assert_eq!(r.message, "Rate limit reached: the key's tokens per minute (100000). Try again in 30.5s.");
    assert_eq!(r.retry_after.as_secs(), 31);

    // Equal waits: the first listed (the narrower scope) is named.
    let states = vec![refused(1, 2_000), refused(1, 2_000), allowed(0, 1), allowed(0, 1)];
    assert!(refusal(&specs, &acquired(states)).unwrap().message.contains("requests per minute"));

    // Allowed: nothing to refuse.
    let states = specs.iter().map(|_| allowed(1, 1)).collect();
    assert_eq!(refusal(&specs, &acquired(states)), None);
}

#[test]
fn a_budget_refusal_names_the_budget_and_when_its_window_ends() {
    let own = KeyLimits { budget_daily: Some(10.0), ..KeyLimits::default() };
    let p = LimitPolicy::default();
    let specs = p.limits_for(&facts(Some(&own), None, "m"));
    assert_eq!(specs.len(), 1);
    // 13:45:30 → midnight is 10h14m30s away.
    let wait = 1_795_392_000_000 - T.as_millis();
    let r = refusal(&specs, &acquired(vec![refused(wait, wait)])).unwrap();
    assert_eq!(
        r.message,
        "Budget exceeded: the key's daily budget ($10.00) is reached. It resets at 2026-11-23T00:00:00Z (in 10h14m30s)."
    );
    assert_eq!((r.retry_after.as_secs(), r.kind, r.scope), (36_870, RefusalKind::Budget, Scope::Key));
    assert_eq!(r.kind.code(), "budget_exceeded");
}

#[test]
fn a_request_larger_than_a_token_limit_is_told_so() {
    let own = KeyLimits { tpm: Some(1000), ..KeyLimits::default() };
    let specs = LimitPolicy::default().limits_for(&facts(Some(&own), None, "m"));
    let r = refusal(&specs, &acquired(vec![refused(0, 12_000)])).unwrap();
    assert_eq!(
        r.message,
        "Request too large: its estimated 1200 tokens exceed the key's tokens per minute (1000). Send a shorter request \
         or a lower max_tokens."
    );
}

#[test]
fn parallel_and_ip_refusals() {
    let p = Refusal::parallel(2);
    assert_eq!((p.retry_after.as_secs(), p.kind.code(), p.scope), (1, "too_many_parallel_requests", Scope::Key));
    assert!(p.message.contains("limit of 2 in flight"));
    let ip = Refusal::ip(60, Duration::from_millis(400));
    assert_eq!(ip.message, "Rate limit reached: this address's requests per minute (60). Try again in 400ms.");
    assert_eq!((ip.retry_after.as_secs(), ip.kind, ip.scope), (1, RefusalKind::RateLimit, Scope::Ip));
}

/// The whole loop against the in-process counters: limits → acquire → headers/refusal → settle.
#[tokio::test]
async fn policy_and_local_counters_together() {
    use crate::shared_state::Counters;

    let now = Arc::new(AtomicU64::new(T.as_millis()));
    let clock = Arc::clone(&now);
    let counters = LocalCounters::with_clock(move || UnixMillis::from_millis(clock.load(Ordering::SeqCst)));
    let own = KeyLimits { rpm: Some(5), tpm: Some(10_000), budget_daily: Some(0.1), ..KeyLimits::default() };
    let p = LimitPolicy::default();
    let f = facts(Some(&own), None, "m");
    let specs = p.limits_for(&f);

    for remaining in (0..5).rev() {
        let a = counters.acquire(&limits(&specs)).await;
        assert!(a.allowed);
        let h = headers(&specs, &a);
        assert_eq!(h[1], ("x-ratelimit-remaining-requests", remaining.to_string()));
        // The request used 200 tokens and cost $0.01.
        counters.settle(&settles_for(&specs, 200, 10_000)).await;
    }
    assert_eq!(counters.budget_spent("budget:key:k1:day:2026-11-22").await, 50_000);
    let a = counters.acquire(&limits(&specs)).await;
    let r = refusal(&specs, &a).unwrap();
    assert_eq!(r.message, "Rate limit reached: the key's requests per minute (5). Try again in 12s.");
    assert_eq!(r.retry_after.as_secs(), 12);
    assert_eq!(
        headers(&specs, &a),
        [
            ("x-ratelimit-limit-requests", "5".to_string()),
            ("x-ratelimit-remaining-requests", "0".to_string()),
            ("x-ratelimit-reset-requests", "1m0s".to_string()),
            ("x-ratelimit-limit-tokens", "10000".to_string()),
            ("x-ratelimit-remaining-tokens", "7800".to_string()),
            ("x-ratelimit-reset-tokens", "13.2s".to_string()),
        ]
    );

    // A minute on, the rate limits have room again, but the day's budget ($0.05 spent, $0.03
    // reserved per request) has room for one more request only.
    now.fetch_add(60_000, Ordering::SeqCst);
    assert!(counters.acquire(&limits(&specs)).await.allowed);
    let a = counters.acquire(&limits(&specs)).await;
    let r = refusal(&specs, &a).unwrap();
    assert_eq!(r.kind, RefusalKind::Budget);
    assert!(r.message.starts_with("Budget exceeded: the key's daily budget ($0.10) is reached."), "{}", r.message);
}
