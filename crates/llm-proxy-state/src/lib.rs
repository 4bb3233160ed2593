//! Shared state on Redis, for cluster mode: the counters behind rate limits and budgets
//! ([`RedisCounters`], core's `Counters` trait), atomic across instances through Lua scripts that
//! run on the Redis server's clock.
//!
//! Depends on core (for the traits it implements) and the `redis` crate. It must never depend on
//! the server, the store or the providers, nor on axum or sqlx: the server plugs it in through
//! `Arc<dyn Counters>`, and nothing here knows about HTTP.
//!
//! Redis is never on the critical path of availability: every call has a hard timeout and a
//! circuit breaker, and while Redis is unreachable the local (in-process) counters answer.
//! Errors and log lines never carry the Redis URL, which may hold a password.

mod breaker;
mod counter_scripts;
mod redis_counters;

pub use redis_counters::{RedisCounters, RedisOptions};

/// What can go wrong when setting up shared state. Only at construction: once running, Redis
/// failures are absorbed by the local fallback and counted, never returned.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The URL cannot be used (not a Redis URL, bad port, …). The message never repeats the URL.
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] redis::RedisError),
    #[error("invalid Redis options: {0}")]
    InvalidOptions(&'static str),
    #[error("cannot set up the Redis connection")]
    Redis(#[from] redis::RedisError),
}
