//! OpenAI's Batches API (`/v1/batches`), passed through to the provider that holds the batch's
//! input file. A batch belongs to the key that made it, and so do the output and error files its
//! provider makes for it. A batch runs its requests at the provider, outside the gateway's
//! per-request limits: a key restricted to some models, or under a token or spend limit, may not
//! start one (`ObjectCall::check_may_batch`).

use axum::Extension;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::join_all;
use llm_proxy_core::upstream_object::{ObjectKind, PassBody, PassMethod, PassRequest, UpstreamObject, batch_is_final};
use serde_json::{Value, json};

use crate::app::{AppState, RequestId, Shared};
use crate::body::read_limited;
use crate::error::ApiError;
use crate::object_call::{self, ListParams, ObjectCall, PROVIDER_HEADER};

/// OpenAI's own page limits for batches.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// `POST /v1/batches`: `input_file_id` must be a file of this key; the batch goes to the
/// provider holding it, with the body as it came.
pub async fn create(State(state): State<AppState>, Extension(id): Extension<RequestId>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let call = match ObjectCall::start(&state, &id, "batches.create", &parts).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Err(e) = call.check_may_batch() {
        return call.fail(e);
    }
    let bytes = match state.unless_cut(read_limited(&parts.headers, body, state.max_body_bytes)).await {
        Ok(b) => b,
        Err(e) => return call.fail(e),
    };
    let input_file = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(o)) => match o.get("input_file_id") {
            Some(Value::String(f)) => f.clone(),
            _ => {
                return call.fail(
                    ApiError::bad_request("`input_file_id` is required: the id of an uploaded `.jsonl` file.")
                        .with_param(Some("input_file_id".into())),
                );
            }
        },
        Ok(_) => return call.fail(ApiError::bad_request("The body must be a JSON object.")),
        Err(e) => return call.fail(ApiError::bad_request(format!("The body is not valid JSON: {e}."))),
    };
    let file = match call.find(&input_file, ObjectKind::File).await {
        Ok(f) => f,
        Err(e) => return call.fail(e.with_param(Some("input_file_id".into()))),
    };
    if let Some(named) = parts.headers.get(&PROVIDER_HEADER)
        && named.as_bytes() != file.provider.as_bytes()
    {
        return call.fail(ApiError::bad_request(format!(
            "The input file is held by provider `{}`; a batch runs where its file is.",
            file.provider
        )));
    }
    let owner = call.owner().to_string();
    let request = PassRequest { method: PassMethod::Post, path: "batches".into(), body: PassBody::Json(bytes) };
    let answered = match call.send(&file.provider, request).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (status, object, body, done) = match answered.json() {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if let Err(e) = remember(&state, &owner, done.provider(), &object).await {
        // Unrecorded, the batch would belong to no key: it is cancelled again.
        if let Some(batch) = object["id"].as_str().filter(|id| llm_proxy_core::upstream_object::valid_id(id)) {
            cancel_upstream(&state, done.provider(), batch).await;
        }
        return done.fail(e);
    }
    done.succeed(status, body)
}

/// Records a batch as its provider describes it, with the output and error files it has made.
async fn remember(state: &Shared, owner: &str, provider: &str, batch: &Value) -> Result<(), ApiError> {
    object_call::record(state, owner, provider, ObjectKind::Batch, batch).await?;
    for field in ["output_file_id", "error_file_id"] {
        if let Some(file) = batch[field].as_str() {
            let made = json!({"id": file, "object": "file", "purpose": "batch_output"});
            object_call::record(state, owner, provider, ObjectKind::File, &made).await?;
        }
    }
    Ok(())
}

async fn cancel_upstream(state: &Shared, provider: &str, batch: &str) {
    let Ok(client) = object_call::client(state, provider) else { return };
    let request =
        PassRequest { method: PassMethod::Post, path: format!("batches/{batch}/cancel"), body: PassBody::Empty };
    if let Err(e) = llm_proxy_core::provider::Provider::pass(client.as_ref(), request).await {
        tracing::warn!(provider, batch, error = %e, "an unrecorded batch could not be cancelled at its provider");
    }
}

/// `GET /v1/batches/{id}`.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    parts: Parts,
    Path(batch): Path<String>,
) -> Response {
    about(&state, &id, &parts, "batches.retrieve", &batch, PassMethod::Get, "").await
}

/// `POST /v1/batches/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    parts: Parts,
    Path(batch): Path<String>,
) -> Response {
    about(&state, &id, &parts, "batches.cancel", &batch, PassMethod::Post, "/cancel").await
}

/// A call about one batch of this key: passed to its provider, and what the provider says of it
/// recorded (its status, and the files it made).
async fn about(
    state: &Shared,
    id: &RequestId,
    parts: &Parts,
    endpoint: &'static str,
    batch: &str,
    method: PassMethod,
    suffix: &str,
) -> Response {
    let call = match ObjectCall::start(state, id, endpoint, parts).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let found = match call.find(batch, ObjectKind::Batch).await {
        Ok(b) => b,
        Err(e) => return call.fail(e),
    };
    let owner = call.owner().to_string();
    let request = PassRequest { method, path: format!("batches/{}{suffix}", found.id), body: PassBody::Empty };
    let answered = match call.send(&found.provider, request).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (status, object, body, done) = match answered.json() {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if let Err(e) = remember(state, &owner, done.provider(), &object).await {
        return done.fail(e);
    }
    done.succeed(status, body)
}

/// `GET /v1/batches`: the caller's batches from the gateway's records, those still running asked
/// of their provider again (their status moves), the others as last seen.
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let usage = "Query parameters are `limit` (1-100), `order` (asc, desc) and `after`.";
    let limits = (DEFAULT_LIMIT, MAX_LIMIT, usage);
    let (owner, batches, has_more) =
        match object_call::caller_page(&state, &parts, params, ObjectKind::Batch, limits).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
    let data = join_all(batches.iter().map(|b| current(&state, &owner, b))).await;
    axum::Json(object_call::list_body(data, has_more)).into_response()
}

/// A batch as it is now: asked of its provider while it can still change (and recorded), else as
/// last seen — also when the provider cannot be asked.
async fn current(state: &Shared, owner: &str, batch: &UpstreamObject) -> Value {
    let last = object_call::stored_json(batch);
    if last["status"].as_str().is_some_and(batch_is_final) {
        return last;
    }
    let Ok(client) = object_call::client(state, &batch.provider) else { return last };
    let request = PassRequest { method: PassMethod::Get, path: format!("batches/{}", batch.id), body: PassBody::Empty };
    let answer = match llm_proxy_core::provider::Provider::pass(client.as_ref(), request).await {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(batch = %batch.id, error = %e, "a listed batch could not be refreshed");
            return last;
        }
    };
    let body = match answer.body {
        llm_proxy_core::media::MediaAnswerBody::Json { body, .. } => body,
        llm_proxy_core::media::MediaAnswerBody::Stream(_) => Bytes::new(),
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(now @ Value::Object(_)) if now["id"] == batch.id.as_str() => {
            if let Err(e) = remember(state, owner, &batch.provider, &now).await {
                tracing::warn!(batch = %batch.id, error = %e.message, "a refreshed batch could not be recorded");
            }
            now
        }
        _ => last,
    }
}
