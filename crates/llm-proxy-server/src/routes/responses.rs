//! The OpenAI Responses API: `POST /v1/responses` onto any upstream, and the answers the gateway
//! kept (`GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`), each readable
//! by the key that made it only: to any other it does not exist.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::provider::{ChatInput, ResponsesCall};
use llm_proxy_core::stored_response::StoredResponse;
use llm_proxy_core::translate::AnswerIds;
use llm_proxy_core::translate::responses::{ResponseMeta, input_items_text, output_items};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::openai::{ResponsesInput, ResponsesRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{AppState, RequestId, Shared};
use crate::auth::{bearer, client_ip};
use crate::deliver::{ClientSide, Keep, ResponsesClient};
use crate::error::ApiError;
use crate::exchange::{Exchange, MASTER_OWNER};
use crate::relay::json_response;
use crate::routes::chat_call::serve_chat;
use crate::routes::check_max_tokens;

pub async fn create(State(state): State<AppState>, Extension(id): Extension<RequestId>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let accepted = Exchange::accept(&state, &id, "responses", WireProtocol::Responses, &parts, body).await;
    let (mut x, request): (_, ResponsesRequest) = match accepted {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    x.set_model(&request.model, request.is_stream());
    if let Err(e) = check(&state, &request) {
        return x.fail(e);
    }
    let owner = x.owner().to_string();
    let (history, held_by) = match &request.previous_response_id {
        None => (Vec::new(), None),
        Some(previous) => match state.responses.chain(previous, &owner).await {
            Ok(chain) if !chain.is_empty() => {
                let held_by = chain.last().and_then(|r| r.upstream.clone());
                (conversation(&chain), held_by)
            }
            Ok(_) => return x.fail(previous_not_found(previous)),
            Err(e) => {
                tracing::warn!(error = %e, "reading a stored conversation failed");
                return x.fail(ApiError::service_unavailable("Stored responses cannot be read right now."));
            }
        },
    };
    let meta = Arc::new(ResponseMeta::of(&request, UnixMillis::now(), AnswerIds::random()));
    let keep = request.stores().then(|| Keep {
        key_id: owner,
        previous_id: request.previous_response_id.clone(),
        input: request.input.as_ref().map(input_items_text).unwrap_or_else(|| "[]".into()),
    });
    let client = ClientSide::Responses(Box::new(ResponsesClient { meta, keep }));
    let max_tokens = request.max_output_tokens;
    let call = ResponsesCall { request, history: Arc::from(history), held_by };
    // Boxed: the pipeline's future is big, and every layer above moves the handler's future.
    Box::pin(serve_chat(x, ChatInput::Responses(Box::new(call)), &parts.headers, client, max_tokens)).await
}

fn check(state: &Shared, request: &ResponsesRequest) -> Result<(), ApiError> {
    check_max_tokens(state, request.max_output_tokens, "max_output_tokens")?;
    let empty = match &request.input {
        None => true,
        Some(ResponsesInput::Text(text)) => text.is_empty(),
        Some(ResponsesInput::Items(items)) => items.is_empty(),
    };
    if empty && request.previous_response_id.is_none() {
        return Err(
            ApiError::bad_request("`input` is required: a text or at least one item.").with_param(Some("input".into()))
        );
    }
    Ok(())
}

fn previous_not_found(id: &str) -> ApiError {
    let id = llm_proxy_core::request_log::clean_text(id, 128);
    ApiError::not_found(format!("Previous response with id '{id}' not found."))
        .with_param(Some("previous_response_id".into()))
}

/// The items of a stored conversation, oldest first: each turn's input, then its output.
fn conversation(chain: &[Arc<StoredResponse>]) -> Vec<Value> {
    let mut items = Vec::new();
    for turn in chain {
        match serde_json::from_str::<Value>(&turn.input) {
            Ok(Value::Array(input)) => items.extend(input),
            _ => tracing::warn!(id = %turn.id, "a stored response's input is unreadable; left out"),
        }
        match serde_json::from_str::<Value>(&turn.response) {
            Ok(response) => items.extend(output_items(&response)),
            Err(_) => tracing::warn!(id = %turn.id, "a stored response is unreadable; its output left out"),
        }
    }
    items
}

/// The key (or master key) calling one of the read endpoints, as its owner name.
async fn owner(state: &Shared, parts: &Parts) -> Result<String, ApiError> {
    let principal = state.authenticate_client(bearer(&parts.headers)?, client_ip(&parts.extensions)).await?;
    Ok(principal.key_id().unwrap_or(MASTER_OWNER).to_string())
}

fn response_not_found(id: &str) -> ApiError {
    let id = llm_proxy_core::request_log::clean_text(id, 128);
    ApiError::not_found(format!("Response with id '{id}' not found.")).with_code("response_not_found")
}

fn unavailable(e: &llm_proxy_core::store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "reading stored responses failed");
    ApiError::service_unavailable("Stored responses cannot be read right now.")
}

/// `GET /v1/responses/{id}`: the response object as the client received it.
pub async fn retrieve(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Response {
    let found = match owner(&state, &parts).await {
        Ok(owner) => state.responses.get(&id, &owner).await.map_err(|e| unavailable(&e)),
        Err(e) => Err(e),
    };
    match found {
        Ok(Some(r)) => json_response(Bytes::from(r.response.clone())),
        Ok(None) => response_not_found(&id).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Response {
    let owner = match owner(&state, &parts).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    match state.responses.delete(&id, &owner).await {
        Ok(()) => Json(json!({"id": id, "object": "response", "deleted": true})).into_response(),
        Err(llm_proxy_core::store::StoreError::NotFound) => response_not_found(&id).into_response(),
        Err(e) => unavailable(&e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    /// `asc` or `desc` (the default, newest first).
    order: Option<String>,
    /// An item id: the page starts after it.
    after: Option<String>,
}

/// `GET /v1/responses/{id}/input_items`: the items the model was given for that response (the
/// conversation before it included), paged like OpenAI's lists.
pub async fn input_items_list(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return ApiError::bad_request("Query parameters are `limit` (1-100), `order` (asc, desc) and `after`.")
            .into_response();
    };
    let descending = match params.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            return ApiError::bad_request("`order` is `asc` or `desc`.")
                .with_param(Some("order".into()))
                .into_response();
        }
    };
    let limit = params.limit.unwrap_or(20).clamp(1, 100) as usize;
    let owner = match owner(&state, &parts).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let chain = match state.responses.chain(&id, &owner).await {
        Ok(chain) if !chain.is_empty() => chain,
        Ok(_) => return response_not_found(&id).into_response(),
        Err(e) => return unavailable(&e).into_response(),
    };
    let mut items = conversation(&chain[..chain.len() - 1]);
    if let Ok(Value::Array(input)) = serde_json::from_str::<Value>(&chain[chain.len() - 1].input) {
        items.extend(input);
    }
    // Items given without an id get a stable one, so that `after` can name any of them.
    for (i, item) in items.iter_mut().enumerate() {
        if let Some(obj) = item.as_object_mut()
            && !obj.contains_key("id")
        {
            obj.insert("id".into(), json!(format!("item_{i}_{id}")));
        }
    }
    if descending {
        items.reverse();
    }
    let start = match &params.after {
        Some(after) => match items.iter().position(|i| i["id"] == after.as_str()) {
            Some(at) => at + 1,
            None => return ApiError::bad_request("`after` names no item of this response.").into_response(),
        },
        None => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < items.len();
    Json(json!({
        "object": "list",
        "data": page,
        "first_id": page.first().map(|i| i["id"].clone()),
        "last_id": page.last().map(|i| i["id"].clone()),
        "has_more": has_more,
    }))
    .into_response()
}
