//! HTTP handlers, one module per resource.

pub mod admin_json;
pub mod apikeys;
pub mod audit;
pub mod auth;
pub mod batches;
pub mod catalog;
pub mod chat;
pub mod chat_call;
pub mod completions;
pub mod embeddings;
pub mod files;
pub mod health;
pub mod logs;
pub mod media;
pub mod messages;
pub mod models;
pub mod openapi;
pub mod providers;
pub mod responses;
pub mod settings;
pub mod stats;
pub mod stored_routes;
pub mod users;

use crate::app::Shared;
use crate::error::ApiError;

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
