//! HTTP handlers, one module per resource.

pub mod chat;
pub mod embeddings;
pub mod health;
pub mod logs;
pub mod models;

use std::sync::Arc;

use axum::http::HeaderMap;
use llm_proxy_core::model_catalog::{ResolveError, Resolved};

use crate::app::{Live, Shared};
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
    Ok(principal)
}

/// Resolves the model the client named and checks the key may use it.
pub(crate) fn route(live: &Arc<Live>, principal: &Principal, model: &str) -> Result<Resolved, ApiError> {
    let target = match live.catalog.resolve(model) {
        Ok(t) => t,
        Err(ResolveError::Unknown) => return Err(ApiError::model_not_found(model)),
        Err(ResolveError::Ambiguous(candidates)) => {
            return Err(ApiError::bad_request(format!(
                "The model `{model}` is served by several providers; name one of: {}.",
                candidates.join(", ")
            ))
            .with_param(Some("model".into()))
            .with_code("model_ambiguous"));
        }
    };
    let canonical = target.canonical();
    if !principal.allows_model([model, canonical.as_str()].into_iter().chain(target.alias.as_deref())) {
        return Err(ApiError::forbidden(format!("This API key may not use the model `{model}`.")));
    }
    Ok(target)
}
