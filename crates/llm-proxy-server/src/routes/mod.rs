//! HTTP handlers, one module per resource.

pub mod chat;
pub mod embeddings;
pub mod health;
pub mod logs;
pub mod messages;
pub mod models;

use std::sync::Arc;

use axum::http::HeaderMap;
use llm_proxy_core::model_catalog::ResolveError;
use llm_proxy_providers::ProviderClient;

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
    Ok(principal)
}

/// Decodes a JSON body, answering 400 with the offending field in `param`.
pub(crate) fn decode_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    llm_proxy_protocol::json::decode(bytes).map_err(|e| ApiError::bad_request(e.to_string()).with_param(e.param))
}

/// Where a request goes: the provider's client and the upstream model id.
pub(crate) struct Target {
    pub client: Arc<ProviderClient>,
    pub provider_name: String,
    pub upstream_model: String,
}

/// Resolves the model the client named, checks the key may use it, and records the target on the
/// meter. Reads one config snapshot, so a reload cannot change the answer halfway.
pub(crate) fn route(
    state: &Shared,
    principal: &Principal,
    model: &str,
    meter: &mut RequestMeter,
) -> Result<Target, ApiError> {
    let live = state.live.load();
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
    if !principal.allows(&live.catalog, model, &target) {
        return Err(ApiError::forbidden(format!("This API key may not use the model `{model}`.")));
    }
    meter.set_target(&target);
    Ok(Target {
        client: live.providers[target.provider].clone(),
        provider_name: target.provider_name,
        upstream_model: target.upstream_model,
    })
}
