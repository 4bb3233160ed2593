//! `RedisCounters` against a real Redis: the limits count exactly, hold across instances, use the
//! server's clock, and a Redis that goes away costs a request nothing but sharing.
//!
//! Runs when `LLM_PROXY_TEST_REDIS_URL` is set (and must, when `CI=true`); otherwise the tests
//! that need Redis are reported as ignored (`#[needs_redis]`). Each test keeps its keys
//! under its own prefix; the outage tests start and kill their own `redis-server`.

#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert by unwrapping and panicking")]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::shared_state::{Counters, Limit, LimitState, Settle};
use llm_proxy_state::{RedisCounters, RedisOptions, StateError};
use llm_proxy_testkit_macros::needs_redis;

const MINUTE: Duration = Duration::from_secs(60);

fn rpm(key: &str, limit: u64) -> Limit {
    Limit::Rate { key: key.into(), limit, period: MINUTE, cost: 1 }
}

fn tpm(key: &str, limit: u64, cost: u64) -> Limit {
    Limit::Rate { key: key.into(), limit, period: MINUTE, cost }
}

fn budget(key: &str, limit: u64, window_end: UnixMillis, reserve: u64) -> Limit {
    Limit::Budget { key: key.into(), limit, window_end, reserve }
}

async fn counters(url: &str, prefix: &str) -> (RedisCounters, Arc<LocalDouble>) {
    let local = Arc::new(LocalDouble::default());
    let c = RedisCounters::connect(url, patient(prefix), local.clone()).await.unwrap();
    (c, local)
}

/// `d` is within `slack` below `expected` (time passes between the calls of a test).
fn about(d: Duration, expected: Duration, slack: Duration) -> bool {
    d <= expected && d + slack >= expected
}

const SLACK: Duration = Duration::from_secs(2);

#[needs_redis]
#[tokio::test]
async fn gcra_lets_five_a_minute_through_and_tells_the_sixth_to_wait_twelve_seconds() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (c, local) = counters(&url, &prefix).await;
    let l = [rpm("rl:req:key:k", 5)];

    for expected_remaining in [4, 3, 2, 1, 0] {
        let a = c.acquire(&l).await;
        assert!(a.allowed && !a.local_fallback, "{a:?}");
        assert_eq!(a.states[0].remaining, expected_remaining);
    }
    let refused = c.acquire(&l).await;
    assert!(!refused.allowed && !refused.local_fallback);
    let s = refused.states[0];
    assert!(!s.allowed);
    assert_eq!(s.remaining, 0);
    assert!(about(s.retry_after, Duration::from_secs(12), SLACK), "{s:?}");
    assert!(about(s.reset, MINUTE, SLACK), "{s:?}");
    // A refusal takes nothing: the next one is told the same.
    let again = c.acquire(&l).await.states[0];
    assert!(!again.allowed && again.retry_after <= s.retry_after);

    assert_eq!(local.acquires.load(Ordering::SeqCst), 0);
    assert_eq!((c.fallbacks_total(), c.redis_errors_total()), (0, 0));
    clean(&url, &prefix).await;
}

#[needs_redis]
#[tokio::test]
async fn a_limit_that_does_not_divide_its_period_admits_exactly_the_limit() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (c, _) = counters(&url, &prefix).await;
    for _ in 0..7 {
        assert!(c.acquire(&[rpm("k", 7)]).await.allowed);
    }
    assert!(!c.acquire(&[rpm("k", 7)]).await.allowed);
    clean(&url, &prefix).await;
}

#[needs_redis]
#[tokio::test]
async fn tokens_per_minute_take_their_cost_and_settle_gives_back_or_takes_more() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (c, _) = counters(&url, &prefix).await;
    let key = "rl:tok:key:k";

    let first = c.acquire(&[tpm(key, 1000, 400)]).await;
    assert_eq!((first.allowed, first.states[0].remaining), (true, 600));
    assert_eq!(first.states[0].reset, Duration::from_secs(24));
    // (a token drains in 60 ms: the slack allows for the time between calls)
    let second = c.acquire(&[tpm(key, 1000, 400)]).await;
    assert!(second.allowed && (200..=230).contains(&second.states[0].remaining), "{second:?}");
    let refused = c.acquire(&[tpm(key, 1000, 400)]).await;
    assert!(!refused.allowed);
    assert!(about(refused.states[0].retry_after, Duration::from_secs(12), SLACK), "{refused:?}");

    // The second request used 100 tokens, not 400: 300 come back.
    c.settle(&[Settle::Rate { key: key.into(), limit: 1000, period: MINUTE, delta: -300 }]).await;
    let after_refund = c.acquire(&[tpm(key, 1000, 400)]).await;
    assert!(after_refund.allowed && (100..=130).contains(&after_refund.states[0].remaining), "{after_refund:?}");

    // A request that used 600 more than estimated overdraws the bucket; later ones wait.
    c.settle(&[Settle::Rate { key: key.into(), limit: 1000, period: MINUTE, delta: 600 }]).await;
    let refused = c.acquire(&[tpm(key, 1000, 1)]).await;
    assert!(!refused.allowed);
    assert!(about(refused.states[0].reset, Duration::from_secs(90), SLACK), "{refused:?}");
    assert!(about(refused.states[0].retry_after, Duration::from_millis(30_060), SLACK), "{refused:?}");

    // Giving back more than was taken empties the bucket, no further: a full burst, not more.
    c.settle(&[Settle::Rate { key: key.into(), limit: 1000, period: MINUTE, delta: -1_000_000 }]).await;
    let mut conn = raw(&url).await;
    let exists: bool = redis::cmd("EXISTS").arg(format!("{prefix}{key}")).query_async(&mut conn).await.unwrap();
    assert!(!exists);
    assert!(c.acquire(&[tpm(key, 1000, 1000)]).await.allowed);
    assert!(!c.acquire(&[tpm(key, 1000, 1)]).await.allowed);
    assert_eq!(c.fallbacks_total(), 0);
    clean(&url, &prefix).await;
}

#[needs_redis]
#[tokio::test]
async fn all_or_nothing_a_refused_limit_leaves_the_others_untaken() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (c, _) = counters(&url, &prefix).await;
    let end = in_(Duration::from_secs(3600));

    assert!(c.acquire(&[budget("b", 100, end, 100)]).await.allowed);
    let tok = tpm("t", 1000, 500);
    let refused = c.acquire(&[rpm("r", 1), tok.clone(), budget("b", 100, end, 1)]).await;
    assert!(!refused.allowed && !refused.local_fallback);
    let allowed: Vec<bool> = refused.states.iter().map(|s| s.allowed).collect();
    assert_eq!(allowed, [true, true, false]);

    // Nothing of the passing limits was taken: no key was even written.
    let mut conn = raw(&url).await;
    let written: u64 =
        redis::cmd("EXISTS").arg(format!("{prefix}r")).arg(format!("{prefix}t")).query_async(&mut conn).await.unwrap();
    assert_eq!(written, 0);
    let a = c.acquire(&[rpm("r", 1), tok]).await;
    assert!(a.allowed);
    assert_eq!((a.states[0].remaining, a.states[1].remaining), (0, 500));
    assert_eq!(c.budget_spent("b").await, 100);

    // The same key twice in one call counts twice, and is refused as a whole.
    let twice = c.acquire(&[rpm("r2", 1), rpm("r2", 1)]).await;
    assert!(!twice.allowed && twice.states[0].allowed && !twice.states[1].allowed);
    assert!(c.acquire(&[rpm("r2", 1)]).await.allowed);
    clean(&url, &prefix).await;
}

#[needs_redis]
#[tokio::test]
async fn budgets_reserve_settle_refuse_and_expire_with_their_window() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (c, _) = counters(&url, &prefix).await;
    let end = in_(Duration::from_secs(60));
    let key = "budget:key:k:hour:2026-11-22T13";

    for remaining in [700, 400, 100] {
        let a = c.acquire(&[budget(key, 1000, end, 300)]).await;
        assert_eq!((a.allowed, a.states[0].remaining), (true, remaining));
        assert!(about(a.states[0].reset, MINUTE, SLACK), "{a:?}");
    }
    let refused = c.acquire(&[budget(key, 1000, end, 300)]).await;
    let s = refused.states[0];
    assert!(!refused.allowed && !s.allowed && s.remaining == 0);
    // Nothing frees a budget before its window ends but settles, which cannot be foreseen.
    assert_eq!(s.retry_after, s.reset);
    assert_eq!(c.budget_spent(key).await, 900);

    // Reserved and spent are kept apart; the key goes when the window ends.
    let mut conn = raw(&url).await;
    let (spent, reserved): (Option<u64>, u64) = redis::cmd("HMGET")
        .arg(format!("{prefix}{key}"))
        .arg("spent")
        .arg("reserved")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((spent, reserved), (None, 900));
    let expire_at: u64 = redis::cmd("PEXPIRETIME").arg(format!("{prefix}{key}")).query_async(&mut conn).await.unwrap();
    assert_eq!(UnixMillis::from_millis(expire_at), end);

    // One request cost 100 of its 300, another 450.
    c.settle(&[Settle::Budget { key: key.into(), window_end: end, reserved: 300, spent: 100 }]).await;
    assert_eq!(c.budget_spent(key).await, 700);
    c.settle(&[Settle::Budget { key: key.into(), window_end: end, reserved: 300, spent: 450 }]).await;
    assert_eq!(c.budget_spent(key).await, 850);
    let (spent, reserved): (u64, u64) = redis::cmd("HMGET")
        .arg(format!("{prefix}{key}"))
        .arg("spent")
        .arg("reserved")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((spent, reserved), (550, 300));
    assert!(c.acquire(&[budget(key, 1000, end, 150)]).await.allowed);
    // Used up exactly: even a request estimated at nothing is refused.
    assert!(!c.acquire(&[budget(key, 1000, end, 0)]).await.allowed);

    // A window that has ended counts as empty, and a late settle for it changes nothing.
    let past = UnixMillis::now() - Duration::from_millis(1);
    let old = "budget:key:k:hour:old";
    c.settle(&[Settle::Budget { key: old.into(), window_end: past, reserved: 300, spent: 900 }]).await;
    assert_eq!(c.budget_spent(old).await, 0);
    let a = c.acquire(&[budget(old, 1000, past, 300)]).await;
    assert_eq!((a.allowed, a.states[0].remaining, a.states[0].reset), (true, 700, Duration::ZERO));
    assert_eq!(c.budget_spent(old).await, 0);

    // Limits of 0 refuse everything.
    assert!(!c.acquire(&[budget("zero", 0, end, 0)]).await.allowed);
    let zero = c.acquire(&[rpm("zero-rate", 0)]).await;
    assert_eq!(zero.states[0], LimitState { allowed: false, remaining: 0, reset: Duration::ZERO, retry_after: MINUTE });
    assert_eq!(c.fallbacks_total(), 0);
    clean(&url, &prefix).await;
}

#[needs_redis]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_rate_limit_exactly() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    // Two instances: two clients, two connections, one Redis.
    let (a, _) = counters(&url, &prefix).await;
    let (b, _) = counters(&url, &prefix).await;
    let l = [rpm("rl:req:key:shared", 10)];

    let calls = (0..20).map(|i| {
        let c = if i % 2 == 0 { &a } else { &b };
        c.acquire(&l)
    });
    let results = join_all(calls).await;
    assert!(results.iter().all(|r| !r.local_fallback));
    assert_eq!(results.iter().filter(|r| r.allowed).count(), 10);
    // Both instances had their share of the answers and agree that the limit is used up.
    assert!(!a.acquire(&l).await.allowed);
    assert!(!b.acquire(&l).await.allowed);
    clean(&url, &prefix).await;
}

#[needs_redis]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_reservations_against_a_budget_for_five_get_exactly_five() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (a, _) = counters(&url, &prefix).await;
    let (b, _) = counters(&url, &prefix).await;
    let end = in_(Duration::from_secs(3600));

    let calls = (0..50).map(|i| {
        let c = if i % 2 == 0 { &a } else { &b };
        // Each request also has its own rate limit: several keys per script call.
        let limits = [rpm(&format!("r{i}"), 10), budget("budget:key:k:day", 5_000, end, 1_000)];
        async move { c.acquire(&limits).await }
    });
    let results = join_all(calls).await;
    assert!(results.iter().all(|r| !r.local_fallback));
    assert_eq!(results.iter().filter(|r| r.allowed).count(), 5);
    assert_eq!(a.budget_spent("budget:key:k:day").await, 5_000);
    assert_eq!(b.budget_spent("budget:key:k:day").await, 5_000);
    clean(&url, &prefix).await;
}

#[needs_redis]
#[tokio::test]
async fn instances_with_different_prefixes_do_not_share() {
    let Some(url) = redis_url() else { return };
    let (p1, p2) = (unique_prefix(), unique_prefix());
    let (a, _) = counters(&url, &p1).await;
    let (b, _) = counters(&url, &p2).await;
    assert!(a.acquire(&[rpm("k", 1)]).await.allowed);
    assert!(b.acquire(&[rpm("k", 1)]).await.allowed);
    assert!(!a.acquire(&[rpm("k", 1)]).await.allowed);
    clean(&url, &p1).await;
    clean(&url, &p2).await;
}

#[needs_redis]
#[tokio::test]
async fn the_bucket_is_timed_by_the_redis_servers_clock() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (c, _) = counters(&url, &prefix).await;
    let mut conn = raw(&url).await;

    let before = server_time_us(&mut conn).await;
    assert!(c.acquire(&[rpm("clock", 5)]).await.allowed);
    let after = server_time_us(&mut conn).await;
    // The TAT stored is the server's "now" (between the two readings of its clock) plus one
    // emission interval: nothing on this side went into it (the script takes no time argument).
    let tat: u64 = redis::cmd("GET").arg(format!("{prefix}clock")).query_async(&mut conn).await.unwrap();
    assert!((before + 12_000_000..=after + 12_000_000).contains(&tat), "{before} {tat} {after}");

    // A TAT the server's clock puts 30 s ahead refuses, whatever this machine's clock says.
    let now = server_time_us(&mut conn).await;
    let _: () =
        redis::cmd("SET").arg(format!("{prefix}ahead")).arg(now + 60_000_000).query_async(&mut conn).await.unwrap();
    let refused = c.acquire(&[rpm("ahead", 5)]).await;
    assert!(!refused.allowed);
    assert!(about(refused.states[0].retry_after, Duration::from_secs(12), SLACK), "{refused:?}");
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn a_bad_url_is_an_error_at_construction() {
    for url in ["not a url", "http://127.0.0.1:6379", "redis://127.0.0.1:notaport", ""] {
        let local = Arc::new(LocalDouble::default());
        let result = RedisCounters::connect(url, RedisOptions::default(), local).await;
        assert!(matches!(result, Err(StateError::InvalidUrl(_))), "{url}: {result:?}");
    }
    let local = Arc::new(LocalDouble::default());
    let no_timeout = RedisOptions { timeout: Duration::ZERO, ..RedisOptions::default() };
    let result = RedisCounters::connect("redis://127.0.0.1:1", no_timeout, local).await;
    assert!(matches!(result, Err(StateError::InvalidOptions(_))));
}

#[needs_redis]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_test_answers_locally_at_once_and_is_used_again_when_back() {
    if redis_url().is_none() {
        return;
    }
    let mut server = OwnRedis::start(free_port());
    let local = Arc::new(LocalDouble::default());
    let c = RedisCounters::connect(&server.url(), impatient("llmp:"), local.clone()).await.unwrap();
    let l = [rpm("rl:req:key:k", 1000)];

    until_redis_answers(&c, &l).await;
    assert!(c.using_redis());
    assert_eq!(local.acquires.load(Ordering::SeqCst), 0);

    server.kill();
    for _ in 0..30 {
        let started = Instant::now();
        let a = c.acquire(&l).await;
        assert!(started.elapsed() < AT_ONCE, "took {:?}", started.elapsed());
        assert!(a.local_fallback && a.allowed);
    }
    assert_eq!(local.acquires.load(Ordering::SeqCst), 30);
    assert!(!c.using_redis());
    assert!(c.fallbacks_total() >= 30);
    // The breaker opened after a few failures: most calls did not even try Redis.
    let errors = c.redis_errors_total();
    assert!((1..30).contains(&errors), "{errors} errors");

    // Settles and budget reads go local too, and do not wait either.
    let started = Instant::now();
    c.settle(&[Settle::Rate { key: "rl:req:key:k".into(), limit: 1000, period: MINUTE, delta: 5 }]).await;
    assert_eq!(c.budget_spent("budget:key:k:day").await, 42);
    assert!(started.elapsed() < AT_ONCE, "took {:?}", started.elapsed());
    assert_eq!(local.settles.load(Ordering::SeqCst), 1);
    assert_eq!(local.budget_reads.load(Ordering::SeqCst), 1);

    // Back on the same port (empty: no persistence): Redis is used again.
    let server = OwnRedis::start(server.port);
    until_redis_answers(&c, &l).await;
    assert!(c.using_redis());
    let mut conn = raw(&server.url()).await;
    let tat: Option<u64> = redis::cmd("GET").arg("llmp:rl:req:key:k").query_async(&mut conn).await.unwrap();
    assert!(tat.is_some(), "the acquire after the restart was counted on the restarted Redis");
    let fallbacks = c.fallbacks_total();
    assert!(!c.acquire(&l).await.local_fallback);
    assert_eq!(c.fallbacks_total(), fallbacks);
}

#[needs_redis]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_at_start_is_not_an_error() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let local = Arc::new(LocalDouble::default());
    let started = Instant::now();
    let url = format!("redis://127.0.0.1:{port}");
    let c = RedisCounters::connect(&url, impatient("llmp:"), local.clone()).await.unwrap();
    // It waits 100 ms at most (connect and script upload); the bound tells that from waiting on
    // a Redis that is not there.
    assert!(started.elapsed() < 2 * AT_ONCE, "took {:?}", started.elapsed());
    assert!(!c.using_redis());

    let l = [rpm("k", 10)];
    let a = c.acquire(&l).await;
    assert!(a.local_fallback && a.allowed);

    let _server = OwnRedis::start(port);
    until_redis_answers(&c, &l).await;
    assert!(c.using_redis());
}

#[needs_redis]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_each_request_at_most_the_timeout() {
    if redis_url().is_none() {
        return;
    }
    let server = OwnRedis::start(free_port());
    let local = Arc::new(LocalDouble::default());
    let c = RedisCounters::connect(&server.url(), impatient("llmp:"), local.clone()).await.unwrap();
    let l = [rpm("rl:req:key:k", 1000)];
    until_redis_answers(&c, &l).await;

    server.pause();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let a = c.acquire(&l).await;
        slowest = slowest.max(started.elapsed());
        assert!(a.local_fallback && a.allowed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only the calls that tried Redis waited (50 ms); with the breaker open the rest did not.
    // Without the timeout, a call to a stopped server never returns.
    assert!(slowest < AT_ONCE, "slowest {slowest:?}");
    assert!(!c.using_redis());

    server.resume();
    until_redis_answers(&c, &l).await;
    assert!(c.using_redis());
}

#[needs_redis]
#[tokio::test]
async fn a_tls_url_is_accepted_and_a_failed_handshake_falls_back() {
    let Some(url) = redis_url() else { return };
    // The shared Redis speaks plain TCP, so the TLS handshake fails: an outage, not a panic.
    let tls = url.replacen("redis://", "rediss://", 1);
    let local = Arc::new(LocalDouble::default());
    let c = RedisCounters::connect(&tls, RedisOptions::default(), local.clone()).await.unwrap();
    assert!(!c.using_redis());
    assert!(c.acquire(&[rpm("k", 1)]).await.local_fallback);
}
