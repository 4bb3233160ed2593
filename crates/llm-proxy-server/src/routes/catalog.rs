//! `GET /api/models`: every model the gateway serves, by its public name, with the provider and
//! upstream model it resolves to and its price and limits from the pricing registry (with the
//! overrides), as cost is computed for the request log. Any admin-API caller may read it.
//! `GET`/`PUT /api/models/overrides`: the price overrides stored in the database
//! (`crate::price_layers`).

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::user::Role;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit;
use crate::error::ApiError;
use crate::price_layers::SETTING;
use crate::routes::admin_json::{PageParams, page, read_json};

pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.admin_caller(&parts).await?;
        let Ok(Query(params)) = params else {
            return Err(ApiError::bad_request("Query parameters are `cursor` and `limit`."));
        };
        let live = state.live.load_full();
        let prices = state.accounting.prices.load_full();
        let models: Vec<Value> = live
            .catalog
            .list()
            .into_iter()
            .map(|m| {
                let r = &m.resolved;
                let price = prices.lookup(&r.provider_name, &r.upstream_model).map(|p| {
                    json!({
                        "input_cost_per_token": p.input,
                        "output_cost_per_token": p.output,
                        "cached_input_cost_per_token": p.cached_input,
                        "cache_write_cost_per_token": p.cache_write,
                        "reasoning_cost_per_token": p.reasoning,
                        "context_window": p.context_window,
                        "max_output_tokens": p.max_output_tokens,
                        "source": p.source,
                    })
                });
                json!({
                    "id": m.id,
                    "provider": r.provider_name,
                    "upstream_model": r.upstream_model,
                    "alias": r.alias,
                    "price": price,
                })
            })
            .collect();
        page(models, |m| m["id"].as_str().unwrap_or_default(), &params)
    }
    .await;
    match result {
        Ok((data, next)) => Json(json!({"data": data, "next": next})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/models/overrides` (admins and viewers): the price overrides stored in the database,
/// in the overrides file's shape (`{"provider/model": {"input_per_mtok": ..., ...}}`), and whether
/// an overrides file is configured (it wins over them).
pub async fn overrides(State(state): State<AppState>, parts: Parts) -> Response {
    if let Err(e) = state.admin_caller(&parts).await.and_then(|c| c.require(Role::Viewer)) {
        return e.into_response();
    }
    let (stored, at) = state.price_layers.stored();
    let parsed = stored.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()).unwrap_or(json!({}));
    Json(json!({
        "overrides": parsed,
        "updated_at": at.map(llm_proxy_core::UnixMillis::to_i64),
        "file_overrides": state.price_layers.has_file(),
    }))
    .into_response()
}

/// `PUT /api/models/overrides` (admins): replaces the stored price overrides (`{}` removes them).
/// They are checked against the registry first (every problem named in the 400), then apply to
/// this instance's next request and to the others' within a second.
pub async fn put_overrides(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        caller.require(Role::Admin)?;
        let asked: serde_json::Map<String, Value> = read_json(&parts.headers, body).await?;
        let text = (!asked.is_empty()).then(|| Value::Object(asked.clone()).to_string());
        if let Err(e) = state.price_layers.compose_with(text.as_deref()) {
            return Err(ApiError::bad_request(format!("The overrides do not apply: {e}")));
        }
        let now = llm_proxy_core::UnixMillis::now();
        let stored = text.clone().unwrap_or_else(|| "{}".into());
        state.store.put_setting(SETTING, &stored, now).await.map_err(|e| {
            tracing::warn!(error = %e, "storing the price overrides failed");
            ApiError::service_unavailable("The price overrides cannot be stored right now.")
        })?;
        let (before, _) = state.price_layers.stored();
        state.price_layers.set_stored(text, Some(now), &state.accounting);
        let before = before.and_then(|t| serde_json::from_str::<Value>(&t).ok());
        let after = Value::Object(asked);
        audit::record_change(&state, &caller, &parts, "prices.update", None, before.as_ref(), Some(&after)).await;
        Ok((after, now))
    }
    .await;
    match result {
        Ok((after, now)) => Json(json!({"overrides": after, "updated_at": now.to_i64()})).into_response(),
        Err(e) => e.into_response(),
    }
}
