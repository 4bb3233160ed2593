//! Cluster mode: state shared between instances on Redis.

use std::sync::Arc;

use anyhow::Context;
use llm_proxy_core::shared_state::Counters;
use llm_proxy_state::{RedisCounters, RedisOptions};

/// Rate limits and budgets on Redis (`LLM_PROXY_REDIS_URL`). Every call is bounded (50 ms) behind
/// a breaker; while Redis is unreachable the limits are answered by `local` and the gateway says
/// so in its log. An unreachable server at start is not an error: it is retried.
pub async fn redis_counters(url: &str, local: Arc<dyn Counters>) -> anyhow::Result<Arc<dyn Counters>> {
    let counters = RedisCounters::connect(url, RedisOptions::default(), local)
        .await
        .context("redis_url: cannot use this Redis")?;
    Ok(Arc::new(counters))
}
