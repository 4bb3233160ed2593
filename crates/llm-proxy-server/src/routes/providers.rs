//! `GET /api/providers` (admins and viewers): every configured provider with its models and the
//! last four characters of its key, and every deployment the routes use with its live health —
//! breaker state, requests in flight, latency estimate, recent failures, last health check. Never
//! a key.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::app::AppState;

pub async fn list_providers(State(state): State<AppState>, parts: Parts) -> Response {
    // Deployments and their health are the operators' business, not a member's.
    if let Err(e) = state.admin_caller(&parts).await.and_then(|c| c.require(llm_proxy_core::user::Role::Viewer)) {
        return e.into_response();
    }
    let live = state.live.load_full();
    let now = llm_proxy_core::UnixMillis::now();
    let providers: Vec<Value> = state
        .route_inputs
        .providers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "protocol": p.protocol.as_str(),
                // Credentials in the URL (`user:pass@`, `?token=`) are not shown.
                "base_url": llm_proxy_core::config::redact_url(&p.base_url),
                "has_key": p.api_key.is_some(),
                // Enough to tell two keys apart, never the key: its last four characters, and
                // only of a key long enough that four say nothing useful about the rest.
                "key_last4": p.api_key.as_ref().map(|k| last4(k.expose_secret())),
                "source": "file",
                "responses_api": p.responses_api,
                "stream_options": p.stream_options,
                "models": p.models.iter().map(|m| json!({"name": m.name, "alias": m.alias})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let deployments: Vec<Value> = live
        .routes
        .deployments()
        .iter()
        .map(|d| {
            let mut v = json!({
                "deployment": d.key,
                "provider": d.target.provider_name,
                "model": d.target.upstream_model,
            });
            if let (Value::Object(m), Ok(Value::Object(h))) = (&mut v, serde_json::to_value(d.health.snapshot(now))) {
                m.extend(h);
            }
            v
        })
        .collect();
    let routes: Vec<Value> = live
        .routes
        .routes()
        .map(|r| json!({"name": r.name, "strategy": r.strategy.as_str(), "retries": r.retries, "max_attempts": r.max_attempts}))
        .collect();
    Json(json!({"data": providers, "deployments": deployments, "routes": routes})).into_response()
}

fn last4(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 16 { "****".into() } else { chars[chars.len() - 4..].iter().collect() }
}
