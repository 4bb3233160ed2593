//! The llm-proxy server: the axum application, the admin API and the command line.
//!
//! This is the top layer: it wires `llm-proxy-core` to the provider adapters and the store and
//! owns everything HTTP. `app::app` builds the router without a socket, so tests can drive it.

pub mod accounting;
pub mod admin_auth;
pub mod app;
pub mod attempts;
pub mod audit;
pub mod auth;
pub mod body;
pub mod cli;
pub mod cluster;
pub mod conn_io;
pub mod deliver;
pub mod dispatch;
pub mod error;
pub mod exchange;
pub mod health_check;
pub mod keys;
pub mod listener;
pub mod meter;
pub mod object_call;
pub mod passwords;
pub mod price_layers;
pub mod relay;
pub mod response_store;
pub mod route_sync;
pub mod routes;
pub mod serve;
pub mod sessions;
pub mod upload;
pub mod users;
