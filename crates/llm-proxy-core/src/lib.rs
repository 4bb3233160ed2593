//! The gateway's domain: configuration, the model catalog, virtual keys, the request log, and the
//! traits the outer layers implement (`Provider` for upstream adapters, `Store` for databases).
//!
//! Depends on `llm-proxy-protocol` only. It must never depend on axum, reqwest or sqlx: the server,
//! the provider adapters and the storage backends plug in from above through the traits here.

pub mod audit;
pub mod client_request;
pub mod config;
pub mod cpu_pool;
pub mod key_miss;
pub mod key_ring;
pub mod known_provider;
pub mod limits;
pub mod log_writer;
pub mod media;
pub mod model_catalog;
pub mod pricing;
pub mod provider;
pub mod request_log;
pub mod routing;
pub mod shared_state;
pub mod store;
pub mod stored_response;
pub mod time;
pub mod token_estimate;
pub mod translate;
pub mod unified;
pub mod upstream_object;
pub mod user;
pub mod virtual_key;

pub use time::UnixMillis;
