//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;

/// Liveness: the process answers. Never touches the database, so a database outage does not get
/// healthy gateways restarted by their orchestrator.
pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /` and `HEAD /`, without auth: agents probe their base URL before the first call (Claude Code
/// sends a `HEAD`), and a person opening it in a browser learns what answers there.
pub async fn root() -> Response {
    Json(json!({"service": "llm-proxy", "version": env!("CARGO_PKG_VERSION"), "status": "ok"})).into_response()
}

/// Readiness: the database answers and its migrations are applied.
pub async fn ready(State(state): State<AppState>) -> Response {
    let check = tokio::time::timeout(std::time::Duration::from_secs(3), state.store.ready()).await;
    match check {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": "database not ready"})))
                .into_response()
        }
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": "database timed out"})))
                .into_response()
        }
    }
}
