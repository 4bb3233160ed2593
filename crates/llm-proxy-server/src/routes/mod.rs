//! HTTP handlers, one module per resource.

pub mod chat;
pub mod chat_call;
pub mod embeddings;
pub mod health;
pub mod logs;
pub mod messages;
pub mod models;
pub mod providers;
pub mod stats;

use axum::http::HeaderMap;

use crate::app::Shared;
use crate::auth::{Principal, bearer};
use crate::error::ApiError;
use crate::meter::RequestMeter;

/// Authenticates the caller and records who it is on the meter.
pub(crate) fn authenticate(
    state: &Shared,
    headers: &HeaderMap,
    meter: &mut RequestMeter,
) -> Result<Principal, ApiError> {
    let principal = state.authenticate(bearer(headers))?;
    meter.set_key(principal.key_id());
    meter.set_user(principal.user());
    Ok(principal)
}

/// Decodes a JSON body, answering 400 with the offending field in `param`.
pub(crate) fn decode_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    llm_proxy_protocol::json::decode(bytes).map_err(|e| ApiError::bad_request(e.to_string()).with_param(e.param))
}
