//! The gateway's domain: configuration, the model catalog, virtual keys, the request log, and the
//! traits the outer layers implement (`Provider` for upstream adapters, `Store` for databases).
//!
//! Depends on `llm-proxy-protocol` only. It must never depend on axum, reqwest or sqlx: the server,
//! the provider adapters and the storage backends plug in from above through the traits here.

pub mod client_request;
pub mod config;
pub mod cpu_pool;
pub mod key_ring;
pub mod known_provider;
pub mod limits;
pub mod log_writer;
pub mod model_catalog;
pub mod pricing;
pub mod provider;
pub mod request_log;
pub mod routing;
pub mod shared_state;
pub mod store;
pub mod token_estimate;
pub mod translate;
pub mod unified;
pub mod virtual_key;

/// Milliseconds since the Unix epoch: the one timestamp format of the store and the API.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
