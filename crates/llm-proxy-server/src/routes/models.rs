//! `GET /v1/models` and `GET /v1/models/{model}`: the models the calling key may use.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_protocol::openai::{ModelList, ModelObject};

use crate::app::AppState;
use crate::auth::{Principal, bearer, client_ip};
use crate::error::ApiError;

pub async fn list_models(State(state): State<AppState>, parts: Parts) -> Response {
    let principal = match caller(&state, &parts).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let live = state.live.load_full();
    let data = live
        .catalog
        .list()
        .into_iter()
        .filter(|m| principal.allows(&live.catalog, &m.id, &m.resolved))
        .map(|m| ModelObject { id: m.id, object: "model".into(), created: 0, owned_by: m.owned_by })
        .collect();
    Json(ModelList { object: "list".into(), data }).into_response()
}

/// One model by any name a client may use for it (alias, `provider/model` or bare id). A model the
/// key may not use is reported as not found, like one that does not exist.
pub async fn retrieve_model(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Response {
    let principal = match caller(&state, &parts).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let live = state.live.load();
    match live.catalog.resolve(&id) {
        Ok(target) if principal.allows(&live.catalog, &id, &target) => {
            Json(ModelObject { id, object: "model".into(), created: 0, owned_by: target.provider_name }).into_response()
        }
        _ => ApiError::model_not_found(&id).into_response(),
    }
}

async fn caller(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    state.authenticate_client(bearer(&parts.headers)?, client_ip(&parts.extensions)).await
}
