//! Helpers for the Redis suite: the server to use, a unique key prefix per test, a stand-in for the
//! local counters, and a private `redis-server` child process that a test may stop and restart.

#![allow(dead_code, reason = "each test binary uses its own part of this module")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use llm_proxy_core::shared_state::{Acquired, Counters, Limit, LimitState, Settle};
use llm_proxy_state::{RedisCounters, RedisOptions};

/// How long a test waits for something that must happen (Redis used again after an outage): a
/// deadline for a broken build, not a measure of speed, so long enough for a busy 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The most one call may take while Redis is down or hung. Calls have a 50 ms budget; this only
/// has to tell that budget from waiting on the outage, on a machine busy with other work.
pub const AT_ONCE: Duration = Duration::from_secs(1);

/// The shared Redis of this machine (or CI's), from `LLM_PROXY_TEST_REDIS_URL`. Unset: the suite
/// is skipped, except on CI, where it must run. The tests say `#[needs_redis]`, which reports
/// them as ignored then; only a run with `--include-ignored` gets here without a Redis.
pub fn redis_url() -> Option<String> {
    match std::env::var("LLM_PROXY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("LLM_PROXY_TEST_REDIS_URL is not set, but CI=true: the Redis suite must run on CI")
        }
        _ => {
            eprintln!("skipping: LLM_PROXY_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A key prefix no other test (or run) uses, so tests share one Redis without seeing each other.
pub fn unique_prefix() -> String {
    format!("llmp-test:{}:", uuid::Uuid::new_v4().simple())
}

/// Options for tests about counting rather than outages: a timeout long enough that a busy
/// machine never makes a call fall back (which would make the counts wrong for the wrong reason).
pub fn patient(prefix: &str) -> RedisOptions {
    RedisOptions {
        prefix: prefix.to_string(),
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..RedisOptions::default()
    }
}

/// A raw connection, to look at what the scripts wrote.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// The Redis server's clock, in Unix µs.
pub async fn server_time_us(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1_000_000 + micros
}

/// Deletes every key under `prefix` (best effort; they expire anyway).
pub async fn clean(url: &str, prefix: &str) {
    let mut conn = raw(url).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

/// This machine's clock plus `d` (for budget windows, which the caller names).
pub fn in_(d: std::time::Duration) -> llm_proxy_core::UnixMillis {
    llm_proxy_core::UnixMillis::now() + d
}

/// Stands in for `LocalCounters`: allows everything and counts what it was asked, so a test sees
/// exactly when the Redis counters fell back to it.
#[derive(Default)]
pub struct LocalDouble {
    pub acquires: AtomicU64,
    pub settles: AtomicU64,
    pub budget_reads: AtomicU64,
}

#[async_trait]
impl Counters for LocalDouble {
    async fn acquire(&self, limits: &[Limit]) -> Acquired {
        self.acquires.fetch_add(1, Ordering::SeqCst);
        let state = LimitState { allowed: true, remaining: 0, reset: Duration::ZERO, retry_after: Duration::ZERO };
        Acquired { allowed: true, states: vec![state; limits.len()], local_fallback: false }
    }

    async fn settle(&self, _: &[Settle]) {
        self.settles.fetch_add(1, Ordering::SeqCst);
    }

    async fn budget_spent(&self, _: &str) -> u64 {
        self.budget_reads.fetch_add(1, Ordering::SeqCst);
        42
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// This test's own `redis-server` (never the shared one), without persistence; killed by its PID
/// when the test stops it or ends.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the outage tests (Debian package redis-server)");
        let server = Self { port, child: Some(child) };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would: no goodbye to the clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections and accepts new ones (the kernel does), but
    /// answers nothing — a hung server, the case only a timeout can catch.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`OwnRedis::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server is running").id();
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
        assert!(status.success());
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The options of the outage tests: the production timeout, and a short cooldown so the test
/// does not wait long for Redis to be tried again.
pub fn impatient(prefix: &str) -> RedisOptions {
    RedisOptions { prefix: prefix.into(), breaker_cooldown: Duration::from_millis(300), ..RedisOptions::default() }
}

/// Acquires until Redis answers (not the fallback), no call waiting longer than [`AT_ONCE`];
/// panics after [`PATIENCE`].
pub async fn until_redis_answers(c: &RedisCounters, limits: &[Limit]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let started = Instant::now();
        let a = c.acquire(limits).await;
        assert!(started.elapsed() < AT_ONCE, "took {:?}", started.elapsed());
        if !a.local_fallback {
            return;
        }
        assert!(Instant::now() < deadline, "Redis was not used again within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
