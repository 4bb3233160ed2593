//! OpenAI's Files and Batches APIs, as their API reference describes them, kept in memory:
//!
//! | path | answer |
//! |---|---|
//! | `POST /v1/files` | multipart `file` and `purpose` (both required): the file object `{id: "file-…", object: "file", bytes, created_at, filename, purpose, status: "processed", status_details: null, expires_at: null}` |
//! | `GET /v1/files/{id}`, `DELETE /v1/files/{id}` | the file object; `{id, object: "file", deleted: true}` |
//! | `GET /v1/files/{id}/content` | the bytes, `application/octet-stream` |
//! | `POST /v1/batches` | JSON `input_file_id` (a file of purpose `batch`, every line `{custom_id, method: "POST", url, body}` with `url` the batch's `endpoint`), `endpoint`, `completion_window: "24h"`: the batch object, `validating` |
//! | `GET /v1/batches/{id}` | the batch, which completes when it is first asked for: one output line per input line, a chat completion answering `batch: <last user text>`, and `request_counts` and `usage` |
//! | `POST /v1/batches/{id}/cancel` | `cancelled` (409 once completed) |
//!
//! An unknown id is 404 `No such File object: <id>` (`Batch`), as OpenAI says it. A request without
//! a body is recorded as `{}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::openai::error;
use crate::{MockState, Recorded};

/// A file the mock holds.
pub(crate) struct MockFile {
    object: Value,
    content: Bytes,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Ids unique in this process: a counter after the start time, so two mocks never repeat each other's.
fn fresh_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<u128> = OnceLock::new();
    let start = START
        .get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{prefix}{start:x}{:06}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn missing(kind: &str, id: &str) -> Response {
    let body = json!({"error": {"message": format!("No such {kind} object: {id}"), "type": "invalid_request_error",
                                "param": "id", "code": null}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn invalid(message: &str, param: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub(crate) async fn upload(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let (mut purpose, mut file) = (None, None);
    let mut fields = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return error(400, &format!("mock could not read multipart: {e}")),
        };
        let name = field.name().unwrap_or_default().to_string();
        fields.push(name.clone());
        let filename = field.file_name().map(String::from);
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return error(400, &format!("mock could not read multipart: {e}")),
        };
        match name.as_str() {
            "purpose" => purpose = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "file" => file = Some((filename.unwrap_or_else(|| "upload".into()), bytes)),
            _ => {}
        }
    }
    let summary = json!({"fields": fields, "purpose": purpose, "bytes": file.as_ref().map(|(_, b)| b.len())});
    state.record(Recorded::new(uri.path(), &headers, None, summary));
    let Some(purpose) = purpose else { return invalid("Missing required parameter: 'purpose'.", "purpose") };
    let Some((filename, content)) = file else { return invalid("Missing required parameter: 'file'.", "file") };
    let id = fresh_id("file-");
    let object = json!({"id": id, "object": "file", "bytes": content.len(), "created_at": now(),
                        "filename": filename, "purpose": purpose, "status": "processed", "status_details": null,
                        "expires_at": null});
    state.files().insert(id, MockFile { object: object.clone(), content });
    Json(object).into_response()
}

pub(crate) async fn retrieve(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    state.record(Recorded::new(uri.path(), &headers, None, json!({})));
    match state.files().get(&id) {
        Some(f) => Json(f.object.clone()).into_response(),
        None => missing("File", &id),
    }
}

pub(crate) async fn delete(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    state.record(Recorded::new(uri.path(), &headers, None, json!({})));
    match state.files().remove(&id) {
        Some(_) => Json(json!({"id": id, "object": "file", "deleted": true})).into_response(),
        None => missing("File", &id),
    }
}

pub(crate) async fn content(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    state.record(Recorded::new(uri.path(), &headers, None, json!({})));
    match state.files().get(&id) {
        Some(f) => ([(header::CONTENT_TYPE, "application/octet-stream")], f.content.clone()).into_response(),
        None => missing("File", &id),
    }
}

pub(crate) async fn create_batch(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(400, &format!("mock could not parse body: {e}")),
    };
    state.record(Recorded::new(uri.path(), &headers, None, body.clone()));
    let Some(input) = body["input_file_id"].as_str() else {
        return invalid("Missing required parameter: 'input_file_id'.", "input_file_id");
    };
    let Some(endpoint) = body["endpoint"].as_str() else {
        return invalid("Missing required parameter: 'endpoint'.", "endpoint");
    };
    if body["completion_window"] != "24h" {
        return invalid("Invalid 'completion_window': expected '24h'.", "completion_window");
    }
    let lines = {
        let files = state.files();
        let Some(file) = files.get(input) else { return missing("File", input) };
        if file.object["purpose"] != "batch" {
            return invalid("The input file must have purpose 'batch'.", "input_file_id");
        }
        String::from_utf8_lossy(&file.content).into_owned()
    };
    let mut requests = Vec::new();
    for (n, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let request: Value = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(_) => return invalid(&format!("Line {} of the input file is not JSON.", n + 1), "input_file_id"),
        };
        if request["url"] != endpoint || request["method"] != "POST" || !request["custom_id"].is_string() {
            return invalid(
                &format!("Line {} needs custom_id, method POST and url {endpoint}.", n + 1),
                "input_file_id",
            );
        }
        requests.push(request);
    }
    let id = fresh_id("batch_");
    let batch = json!({"id": id, "object": "batch", "endpoint": endpoint, "errors": null, "input_file_id": input,
                       "completion_window": "24h", "status": "validating", "output_file_id": null,
                       "error_file_id": null, "created_at": now(), "in_progress_at": null,
                       "expires_at": now() + 86_400, "finalizing_at": null, "completed_at": null, "failed_at": null,
                       "expired_at": null, "cancelling_at": null, "cancelled_at": null,
                       "request_counts": {"total": requests.len(), "completed": 0, "failed": 0},
                       "metadata": body.get("metadata").cloned().unwrap_or(Value::Null)});
    state.batches().insert(id, (batch.clone(), requests));
    Json(batch).into_response()
}

pub(crate) async fn retrieve_batch(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    state.record(Recorded::new(uri.path(), &headers, None, json!({})));
    let mut batches = state.batches();
    let Some((batch, requests)) = batches.get_mut(&id) else { return missing("Batch", &id) };
    if batch["status"] == "validating" {
        complete(&state, batch, requests);
    }
    Json(batch.clone()).into_response()
}

pub(crate) async fn cancel_batch(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    state.record(Recorded::new(uri.path(), &headers, None, json!({})));
    let mut batches = state.batches();
    let Some((batch, _)) = batches.get_mut(&id) else { return missing("Batch", &id) };
    if batch["status"] != "validating" {
        let message = format!("Cannot cancel a batch with status '{}'.", batch["status"].as_str().unwrap_or(""));
        let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
        return (StatusCode::CONFLICT, Json(body)).into_response();
    }
    batch["status"] = json!("cancelled");
    batch["cancelling_at"] = json!(now());
    batch["cancelled_at"] = json!(now());
    Json(batch.clone()).into_response()
}

/// Runs a batch: each request answered as a chat completion quoting its last user text.
fn complete(state: &MockState, batch: &mut Value, requests: &[Value]) {
    let mut output = String::new();
    let (mut input_tokens, mut output_tokens) = (0u64, 0u64);
    for request in requests {
        let text = request["body"]["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        let answer = format!("batch: {text}");
        let prompt = text.split_whitespace().count() as u64 + 1;
        let completion = answer.split_whitespace().count() as u64;
        input_tokens += prompt;
        output_tokens += completion;
        let body = json!({"id": fresh_id("chatcmpl-"), "object": "chat.completion", "created": now(),
                          "model": request["body"]["model"], "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": answer}}],
                          "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                    "total_tokens": prompt + completion}});
        let line = json!({"id": fresh_id("batch_req_"), "custom_id": request["custom_id"],
                          "response": {"status_code": 200, "request_id": fresh_id("req_"), "body": body}, "error": null});
        output.push_str(&line.to_string());
        output.push('\n');
    }
    let file = fresh_id("file-");
    let object = json!({"id": file, "object": "file", "bytes": output.len(), "created_at": now(),
                        "filename": "batch_output.jsonl", "purpose": "batch_output", "status": "processed",
                        "status_details": null, "expires_at": null});
    state.files().insert(file.clone(), MockFile { object, content: Bytes::from(output) });
    batch["status"] = json!("completed");
    batch["output_file_id"] = json!(file);
    batch["in_progress_at"] = json!(now());
    batch["finalizing_at"] = json!(now());
    batch["completed_at"] = json!(now());
    batch["request_counts"]["completed"] = json!(requests.len());
    batch["usage"] = json!({"input_tokens": input_tokens, "output_tokens": output_tokens,
                            "total_tokens": input_tokens + output_tokens,
                            "input_tokens_details": {"cached_tokens": 0},
                            "output_tokens_details": {"reasoning_tokens": 0}});
}
