//! The outage warning is logged once per outage, not once per request, and so is the recovery.
//!
//! A test binary of its own: a subscriber set for one thread misses events whose callsites other
//! tests' threads registered first, so this test must be alone in its process.

#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert by unwrapping and panicking")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use llm_proxy_core::shared_state::{Counters, Limit};
use llm_proxy_state::RedisCounters;
use llm_proxy_testkit_macros::needs_redis;

/// Log lines written while it is the default subscriber (of this thread).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(needle).count()
    }
}

// One thread, so that the subscriber set for this thread sees every line.
#[needs_redis]
#[tokio::test(flavor = "current_thread")]
async fn an_outage_is_logged_once_and_so_is_the_recovery() {
    if redis_url().is_none() {
        return;
    }
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let mut server = OwnRedis::start(free_port());
    let c = RedisCounters::connect(&server.url(), impatient("llmp:"), Arc::new(LocalDouble::default())).await.unwrap();
    let l = [Limit::Rate { key: "k".into(), limit: 1000, period: Duration::from_secs(60), cost: 1 }];
    until_redis_answers(&c, &l).await;
    assert_eq!(logs.count("WARN"), 0);

    for outage in 1..=2 {
        server.kill();
        // Spread over several breaker cooldowns (300 ms), so the outage sees failed probes too:
        // the time passing is the point here, not a wait for something to happen.
        for _ in 0..20 {
            assert!(c.acquire(&l).await.local_fallback);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert_eq!(logs.count("Redis is unreachable"), outage);
        server = OwnRedis::start(server.port);
        until_redis_answers(&c, &l).await;
        assert_eq!(logs.count("Redis answers again"), outage);
    }
    // Never the URL, in case it holds a password.
    assert_eq!(logs.count("127.0.0.1"), 0);
}
