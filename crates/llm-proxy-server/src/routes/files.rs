//! OpenAI's Files API (`/v1/files`), passed through to an OpenAI-protocol provider: an upload
//! streams upstream as it arrives, and every file made through the gateway (or by a batch the key
//! owns) belongs to the key that made it — to any other it does not exist.

use axum::Extension;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::upstream_object::{ObjectKind, PassBody, PassMethod, PassRequest};

use crate::app::{AppState, RequestId};
use crate::object_call::{self, ListParams, ObjectCall};
use crate::upload;

/// OpenAI's own page limits for files.
const DEFAULT_LIMIT: u32 = 10_000;
const MAX_LIMIT: u32 = 10_000;

/// `POST /v1/files`: a multipart upload (`file`, `purpose`), streamed to the provider.
pub async fn create(State(state): State<AppState>, Extension(id): Extension<RequestId>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut call = match ObjectCall::start(&state, &id, "files.create", &parts).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let provider = match call.provider_for_new(&parts.headers) {
        Ok(p) => p,
        Err(e) => return call.fail(e),
    };
    let upload = match upload::whole(&parts.headers, body, state.max_body_bytes) {
        Ok(u) => u,
        Err(e) => return call.fail(e),
    };
    call.cut_at(upload.over_limit, state.max_body_bytes);
    let request = PassRequest {
        method: PassMethod::Post,
        path: "files".into(),
        body: PassBody::Upload {
            content_type: upload.content_type,
            content_length: upload.content_length,
            body: upload.body,
        },
    };
    let owner = call.owner().to_string();
    let answered = match call.send(&provider, request).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (status, object, body, done) = match answered.json() {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if let Err(e) = object_call::record(&state, &owner, done.provider(), ObjectKind::File, &object).await {
        // Unrecorded, the file would belong to no key: it is removed again.
        if let Some(file) = object["id"].as_str().filter(|id| llm_proxy_core::upstream_object::valid_id(id)) {
            forget_upstream(&state, done.provider(), file).await;
        }
        return done.fail(e);
    }
    done.succeed(status, body)
}

/// Deletes a file the gateway could not record, so that it is not left at the provider unowned.
async fn forget_upstream(state: &crate::app::Shared, provider: &str, file: &str) {
    let Ok(client) = object_call::client(state, provider) else { return };
    let request = PassRequest { method: PassMethod::Delete, path: format!("files/{file}"), body: PassBody::Empty };
    if let Err(e) = llm_proxy_core::provider::Provider::pass(client.as_ref(), request).await {
        tracing::warn!(provider, file, error = %e, "an unrecorded file could not be deleted at its provider");
    }
}

/// `GET /v1/files`: the caller's files, from the gateway's records.
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let usage = "Query parameters are `purpose`, `limit`, `order` (asc, desc) and `after`.";
    match object_call::caller_page(&state, &parts, params, ObjectKind::File, (DEFAULT_LIMIT, MAX_LIMIT, usage)).await {
        Ok((_, objects, has_more)) => {
            let data = objects.iter().map(object_call::stored_json).collect();
            axum::Json(object_call::list_body(data, has_more)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/files/{id}`: the file as its provider describes it now.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    parts: Parts,
    Path(file): Path<String>,
) -> Response {
    let call = match ObjectCall::start(&state, &id, "files.retrieve", &parts).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let found = match call.find(&file, ObjectKind::File).await {
        Ok(f) => f,
        Err(e) => return call.fail(e),
    };
    let request = PassRequest { method: PassMethod::Get, path: format!("files/{}", found.id), body: PassBody::Empty };
    let answered = match call.send(&found.provider, request).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match answered.json() {
        Ok((status, _, body, done)) => done.succeed(status, body),
        Err(resp) => resp,
    }
}

/// `DELETE /v1/files/{id}`: deleted at the provider, then forgotten.
pub async fn delete(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    parts: Parts,
    Path(file): Path<String>,
) -> Response {
    let call = match ObjectCall::start(&state, &id, "files.delete", &parts).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let found = match call.find(&file, ObjectKind::File).await {
        Ok(f) => f,
        Err(e) => return call.fail(e),
    };
    let owner = call.owner().to_string();
    let request =
        PassRequest { method: PassMethod::Delete, path: format!("files/{}", found.id), body: PassBody::Empty };
    let answered = call.send(&found.provider, request).await;
    let gone = match &answered {
        Ok(_) => true,
        // Already gone at the provider (expired, or deleted there): the record goes too.
        Err(resp) => resp.status() == axum::http::StatusCode::NOT_FOUND,
    };
    if gone && let Err(e) = state.store.delete_upstream_object(&found.id, &owner).await {
        tracing::warn!(file = %found.id, error = %e, "a deleted file's record could not be removed");
    }
    match answered {
        Ok(a) => match a.json() {
            Ok((status, _, body, done)) => done.succeed(status, body),
            Err(resp) => resp,
        },
        Err(resp) => resp,
    }
}

/// `GET /v1/files/{id}/content`: the file's bytes, passed on as they arrive.
pub async fn content(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    parts: Parts,
    Path(file): Path<String>,
) -> Response {
    let call = match ObjectCall::start(&state, &id, "files.content", &parts).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let found = match call.find(&file, ObjectKind::File).await {
        Ok(f) => f,
        Err(e) => return call.fail(e),
    };
    let request =
        PassRequest { method: PassMethod::Get, path: format!("files/{}/content", found.id), body: PassBody::Empty };
    match call.send(&found.provider, request).await {
        Ok(a) => a.done.stream(a.answer),
        Err(resp) => resp,
    }
}
