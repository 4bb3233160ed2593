//! [`RedisCounters`]: core's [`Counters`] on Redis, so that rate limits and budgets hold across
//! every instance of a cluster exactly as on one.
//!
//! Each `acquire` and each `settle` is one Lua script call (one round trip, `EVALSHA`), atomic on
//! the server and timed by the server's clock; see `lua/acquire.lua` for the arithmetic, which is
//! `LocalCounters`'. Every call has a hard timeout and goes through a circuit breaker; when Redis
//! does not answer in time, the call is answered by the local counters instead, and says so
//! (`Acquired::local_fallback`). A request never waits on Redis longer than the timeout.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use llm_proxy_core::shared_state::{Acquired, Counters, Limit, Settle};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};

use crate::StateError;
use crate::breaker::{Breaker, Pass};
use crate::counter_scripts::{CounterScripts, acquire_args, parse_acquire, settle_args};

/// How [`RedisCounters`] talks to Redis and when it gives up on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prepended to every key, so that several deployments (or test runs) can share one Redis.
    pub prefix: String,
    /// The most one call may take, from sending it to reading the reply, including any wait for
    /// a connection. Past it the call counts as failed and is answered locally.
    pub timeout: Duration,
    /// The most one connection attempt may take (TCP, TLS, handshake).
    pub connect_timeout: Duration,
    /// Consecutive failed calls after which Redis is skipped for `breaker_cooldown`.
    pub failure_threshold: u32,
    /// How long Redis is skipped once the breaker opens; then one call tries it again.
    pub breaker_cooldown: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "llmp:".into(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(50),
            failure_threshold: 3,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

/// [`Counters`] shared by every instance through one Redis, with the local counters as the
/// fallback while Redis is unreachable.
///
/// Concurrent calls share one multiplexed connection (`ConnectionManager`): requests are
/// pipelined on it, none waits for another's reply, and a dropped connection is re-established in
/// the background.
pub struct RedisCounters {
    /// Replaced by a fresh one when a call times out and opens the breaker: a connection that
    /// swallows requests (a half-open TCP connection, a server that moved) is never reported as
    /// dropped, so the manager would never reconnect it by itself.
    conn: ArcSwap<ConnectionManager>,
    client: Client,
    config: ConnectionManagerConfig,
    local: Arc<dyn Counters>,
    scripts: CounterScripts,
    prefix: String,
    timeout: Duration,
    breaker: Breaker,
    /// The breaker's clock.
    epoch: Instant,
    /// Set by the first failure of an outage and cleared by the first success after it, so the
    /// warning is logged once per outage, not once per request.
    outage: AtomicBool,
    fallbacks: AtomicU64,
    redis_errors: AtomicU64,
}

impl std::fmt::Debug for RedisCounters {
    // The URL (which may hold a password) is not kept, and the client is not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("using_redis", &self.using_redis())
            .field("fallbacks_total", &self.fallbacks_total())
            .field("redis_errors_total", &self.redis_errors_total())
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Counters on the Redis at `url` (`redis://`, `rediss://` or `unix://`).
    ///
    /// A URL that cannot be used is an error. A server that cannot be reached is not: the
    /// counters start on `local` (with a warning) and try Redis again after the breaker's
    /// cooldown, so an instance can start before Redis does. Waits at most `connect_timeout +
    /// timeout` for the first connection and the script upload.
    pub async fn connect(url: &str, opts: RedisOptions, local: Arc<dyn Counters>) -> Result<Self, StateError> {
        if opts.timeout.is_zero() || opts.connect_timeout.is_zero() {
            return Err(StateError::InvalidOptions("timeout and connect_timeout must be above zero"));
        }
        let client = Client::open(url).map_err(StateError::InvalidUrl)?;
        if url.starts_with("rediss:") {
            // rustls needs a process-wide crypto provider, which it can only pick by itself when
            // exactly one is compiled in; say which, unless the binary already has.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.connect_timeout))
            .set_response_timeout(Some(opts.timeout))
            // One attempt per reconnection: a call never waits through a backoff, and the breaker
            // paces the retries.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        let counters = Self {
            conn: ArcSwap::from_pointee(conn),
            client,
            config,
            local,
            scripts: CounterScripts::new(),
            prefix: opts.prefix,
            timeout: opts.timeout,
            breaker: Breaker::new(
                opts.failure_threshold,
                u64::try_from(opts.breaker_cooldown.as_millis()).unwrap_or(u64::MAX),
            ),
            epoch: Instant::now(),
            outage: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
        };

        // Connect and upload the scripts now, so that the first requests pay for neither.
        let conn = counters.connection();
        let load = async {
            let mut c = (*conn).clone();
            counters.scripts.acquire.load_async(&mut c).await?;
            counters.scripts.settle.load_async(&mut c).await
        };
        let failure = match tokio::time::timeout(opts.connect_timeout + opts.timeout, load).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some((e.to_string(), false)),
            Err(_) => Some(("no answer in time".to_string(), true)),
        };
        if let Some((error, timed_out)) = failure {
            counters.redis_errors.fetch_add(1, Ordering::Relaxed);
            counters.outage.store(true, Ordering::Release);
            counters.breaker.trip(counters.now_ms());
            if timed_out {
                counters.reconnect();
            }
            tracing::warn!(%error, "Redis is unreachable at start-up: limits and budgets are counted by this instance alone until it answers");
        }
        Ok(counters)
    }

    /// Calls answered by the local counters instead of Redis (acquire, settle and budget reads
    /// alike), for the metrics.
    pub fn fallbacks_total(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Redis calls that failed or timed out, for the metrics.
    pub fn redis_errors_total(&self) -> u64 {
        self.redis_errors.load(Ordering::Relaxed)
    }

    /// Whether the last call to Redis succeeded (false during an outage), for readiness reports
    /// and a gauge. Not a reason to refuse traffic: the local counters stand in.
    pub fn using_redis(&self) -> bool {
        !self.outage.load(Ordering::Acquire)
    }

    /// `f` on Redis, within the timeout and through the breaker; `None` when it was skipped,
    /// failed or took too long (the caller then answers locally).
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.breaker.pass(self.now_ms()) == Pass::Open {
            return None;
        }
        let conn = self.connection();
        let attempt = async {
            match f((*conn).clone()).await {
                // A refused connection means nothing was sent, so one retry is safe; it also gets
                // past a reconnection that failed while Redis was down (the manager starts a new
                // one as it returns that stale error).
                Err(e) if e.is_connection_refusal() => f((*conn).clone()).await,
                result => result,
            }
        };
        let (error, timed_out) = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                if self.outage.swap(false, Ordering::AcqRel) {
                    tracing::info!("Redis answers again: limits and budgets are shared again");
                }
                return Some(value);
            }
            Ok(Err(e)) => (e.to_string(), false),
            Err(_) => (format!("no answer within {:?}", self.timeout), true),
        };
        self.failed(op, &error, timed_out);
        None
    }

    fn failed(&self, op: &'static str, error: &str, timed_out: bool) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        self.breaker.record_failure(self.now_ms());
        if timed_out && self.breaker.is_open() {
            self.reconnect();
        }
        if !self.outage.swap(true, Ordering::AcqRel) {
            tracing::warn!(op, %error, "Redis is unreachable: limits and budgets are counted by this instance alone until it answers again");
        }
    }

    fn connection(&self) -> Arc<ConnectionManager> {
        self.conn.load_full()
    }

    /// A fresh, lazy connection for the next call to use.
    fn reconnect(&self) {
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(conn) => self.conn.store(Arc::new(conn)),
            Err(error) => tracing::warn!(%error, "cannot set up a new Redis connection"),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn acquire(&self, limits: &[Limit]) -> Acquired {
        if limits.is_empty() {
            return Acquired { allowed: true, states: Vec::new(), local_fallback: false };
        }
        let (keys, args) = acquire_args(&self.prefix, limits);
        let mut invocation = self.scripts.acquire.prepare_invoke();
        invocation.key(keys).arg(args);
        let reply: Option<Vec<i64>> = self
            .call("acquire", |mut conn| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await;
        match reply.map(|r| parse_acquire(&r, limits.len())) {
            Some(Some((allowed, states))) => return Acquired { allowed, states, local_fallback: false },
            Some(None) => self.failed("acquire", "unexpected reply from acquire.lua", false),
            None => {}
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let mut acquired = self.local.acquire(limits).await;
        acquired.local_fallback = true;
        acquired
    }

    /// During an outage the settles go to the local counters, where the reservations made during
    /// the outage are. A reservation made on Redis and settled locally stands on Redis until its
    /// window (or bucket) runs out: the cost is a budget that looks fuller than it is, never one
    /// that lets more through.
    async fn settle(&self, settles: &[Settle]) {
        let Some((keys, args)) = settle_args(&self.prefix, settles) else { return };
        let mut invocation = self.scripts.settle.prepare_invoke();
        invocation.key(keys).arg(args);
        let done: Option<i64> = self
            .call("settle", |mut conn| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await;
        if done.is_none() {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.local.settle(settles).await;
        }
    }

    async fn budget_spent(&self, key: &str) -> u64 {
        let key = format!("{}{key}", self.prefix);
        let fields: Option<(Option<u64>, Option<u64>)> = self
            .call("budget_spent", |mut conn| {
                let cmd = redis::cmd("HMGET").arg(&key).arg("spent").arg("reserved").clone();
                async move { cmd.query_async(&mut conn).await }
            })
            .await;
        match fields {
            Some((spent, reserved)) => spent.unwrap_or(0).saturating_add(reserved.unwrap_or(0)),
            None => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.local.budget_spent(key.strip_prefix(&self.prefix).unwrap_or(&key)).await
            }
        }
    }
}
