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

use axum::http::request::Parts;

use crate::app::Shared;
use crate::auth::{Principal, bearer, client_ip};
use crate::error::ApiError;
use crate::meter::RequestMeter;

/// Authenticates the caller (`Authorization: Bearer`) and records who it is on the meter.
pub(crate) fn authenticate(state: &Shared, parts: &Parts, meter: &mut RequestMeter) -> Result<Principal, ApiError> {
    let secret = bearer(&parts.headers)?;
    let principal = state.authenticate_client(secret, client_ip(&parts.extensions))?;
    meter.set_key(principal.key_id());
    meter.set_user(principal.user());
    Ok(principal)
}

/// Decodes a JSON body, answering 400 with the offending field in `param`. A big body is decoded
/// on the CPU pool, off the async workers.
pub(crate) async fn decode_body<T>(bytes: &bytes::Bytes) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let bytes = bytes.clone();
    llm_proxy_core::cpu_pool::run(bytes.len(), move || llm_proxy_protocol::json::decode(&bytes))
        .await
        .map_err(|_| ApiError::shutting_down())?
        .map_err(|e| ApiError::bad_request(e.to_string()).with_param(e.param))
}

/// `max_tokens` (or `max_completion_tokens`, named by `param`) is bounded: a client number past
/// `max_tokens_ceiling` is refused rather than reserved, priced or sent on.
pub(crate) fn check_max_tokens(state: &Shared, value: Option<u64>, param: &str) -> Result<(), ApiError> {
    let ceiling = state.accounting.max_tokens_ceiling;
    match value {
        Some(n) if n > ceiling => Err(ApiError::bad_request(format!(
            "`{param}` is {n}; this gateway accepts at most {ceiling} (config `max_tokens_ceiling`)."
        ))
        .with_param(Some(param.into()))
        .with_code("max_tokens_too_large")),
        _ => Ok(()),
    }
}
