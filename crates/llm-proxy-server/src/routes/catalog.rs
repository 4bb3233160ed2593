//! `GET /api/models`: every model the gateway serves, by its public name, with the provider and
//! upstream model it resolves to and its price and limits from the pricing registry (with the
//! config's overrides), as cost is computed for the request log. Any admin-API caller may read it.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::routes::admin_json::{PageParams, page};

pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.admin_caller(&parts).await?;
        let Ok(Query(params)) = params else {
            return Err(crate::error::ApiError::bad_request("Query parameters are `cursor` and `limit`."));
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
