//! `GET /v1/models`: the models the calling key may use.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use llm_proxy_protocol::openai::{ModelList, ModelObject};

use crate::app::AppState;
use crate::auth::bearer;

pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let principal = match state.authenticate(bearer(&headers)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let live = state.live.load_full();
    let data = live
        .catalog
        .list()
        .into_iter()
        .filter(|m| {
            let canonical = m.resolved.canonical();
            principal.allows_model([m.id.as_str(), canonical.as_str()].into_iter().chain(m.resolved.alias.as_deref()))
        })
        .map(|m| ModelObject { id: m.id, object: "model".into(), created: 0, owned_by: m.owned_by })
        .collect();
    Json(ModelList { object: "list".into(), data }).into_response()
}
