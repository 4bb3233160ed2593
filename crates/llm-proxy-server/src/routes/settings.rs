//! `GET /api/settings` (admins and viewers): the configuration this instance runs with, after
//! flags, environment, config file and defaults, every secret shown as `"***"` — what
//! `llm-proxy config check` prints, for people without a shell on the host.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::user::Role;
use serde_json::json;

use crate::app::AppState;

pub async fn get(State(state): State<AppState>, parts: Parts) -> Response {
    match state.admin_caller(&parts).await.and_then(|c| c.require(Role::Viewer)) {
        Ok(()) => Json(json!({"effective": *state.settings})).into_response(),
        Err(e) => e.into_response(),
    }
}
