//! The OpenAI wire protocol: chat completions (streaming with `[DONE]` and the `include_usage`
//! chunk; DeepSeek's `reasoning_content`), embeddings, models, OpenAI error bodies. GLM speaks the
//! same with a few differences ([`Dialect::Glm`]).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Protocol};
use crate::script::{Script, Stop, Unit, Usage};
use crate::stream::{self, Encoder};
use crate::summary::{Summary, text_of, words};
use crate::{MockState, Recorded, embedding};

/// Who is speaking the OpenAI protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    /// ZhipuAI: usage in the finish chunk of every stream; `stream_options` is ignored.
    Glm,
}

impl Dialect {
    fn protocol(self) -> Protocol {
        match self {
            Dialect::OpenAi => Protocol::OpenAi,
            Dialect::Glm => Protocol::Glm,
        }
    }
}

pub(crate) fn error(status: u16, message: &str) -> Response {
    let kind = if status == 429 {
        "rate_limit_exceeded"
    } else if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": kind}});
    faults::with_retry_after(status, (faults::status_code(status), Json(body)).into_response())
}

/// OpenAI's answer to a prompt beyond the model's context window.
pub(crate) fn context_length_exceeded() -> Response {
    let message = "This model's maximum context length is 128000 tokens. However, your messages resulted in \
                   130000 tokens. Please reduce the length of the messages.";
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": "messages",
                                "code": "context_length_exceeded"}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Parses and records a request, then applies the faults its model asks for; `Err` is the
/// response to send instead of the normal one.
async fn accept(state: &MockState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(Value, String), Response> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| error(400, &format!("mock could not parse body: {e}")))?;
    state.record(Recorded::new(uri.path(), headers, uri.query(), body.clone()));
    let model = body["model"].as_str().unwrap_or("").to_string();
    faults::apply(state, Protocol::OpenAi, &model, headers).await?;
    Ok((body, model))
}

pub(crate) async fn chat(State(state): State<Arc<MockState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match accept(&state, &uri, &headers, &body).await {
        Ok((body, model)) => answer(state, &body, model, Dialect::OpenAi),
        Err(resp) => resp,
    }
}

/// The answer to a chat completion request that passed auth and faults.
pub(crate) fn answer(state: Arc<MockState>, body: &Value, model: String, dialect: Dialect) -> Response {
    let mistral = dialect == Dialect::OpenAi && model.contains("mistral-style");
    if mistral && body.get("stream_options").is_some() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"],
                "msg": "Extra inputs are not permitted"}]}, "type": "invalid_request_error", "param": null, "code": null})),
        )
            .into_response();
    }
    let prompt_words = body["messages"].as_array().map(|m| m.iter().map(words).sum()).unwrap_or(0);
    let reply = format!("echo: {}", last_user_message(body));
    let script = match Script::new(&model, reply, prompt_words, || summarize(body)) {
        Ok(script) => script,
        Err(message) => return dialect.protocol().error(400, &message),
    };
    if body["stream"] != true {
        return Json(completion(&script)).into_response();
    }
    let include_usage =
        dialect == Dialect::OpenAi && script.usage.is_some() && body["stream_options"]["include_usage"] == true;
    let encoder = ChunkEncoder { usage_in_finish: mistral || dialect == Dialect::Glm, include_usage, started: false };
    stream::respond(state, script, encoder, "text/event-stream")
}

/// The content of the last `user` message, as the mock has always echoed it (an array as JSON).
fn last_user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// What an OpenAI-shaped request said, for `echo` and `tool` models.
pub(crate) fn summarize(body: &Value) -> Summary {
    let mut s = Summary::default();
    for m in body["messages"].as_array().into_iter().flatten() {
        let content = &m["content"];
        let images = content.as_array().map(|p| p.iter().filter(|p| p["type"] == "image_url").count()).unwrap_or(0);
        s.images += images as u64;
        match m["role"].as_str().unwrap_or("") {
            "system" | "developer" => s.add_system(&text_of(content)),
            "user" => {
                s.message(true);
                match content {
                    Value::String(text) => s.user_text(text),
                    Value::Array(parts) => {
                        for text in parts.iter().filter(|p| p["type"] == "text").filter_map(|p| p["text"].as_str()) {
                            s.user_text(text);
                        }
                    }
                    _ => {}
                }
            }
            "tool" | "function" => {
                s.message(true);
                s.tool_results.push(text_of(content));
            }
            _ => s.message(false),
        }
    }
    s.tools = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(String::from))
        .collect();
    s.max_tokens = body["max_completion_tokens"].as_u64().or_else(|| body["max_tokens"].as_u64());
    s
}

fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End => "stop",
        Stop::Length => "length",
        Stop::ToolUse => "tool_calls",
        Stop::Refusal => "content_filter",
    }
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    let mut v =
        json!({"prompt_tokens": u.prompt, "completion_tokens": u.completion, "total_tokens": u.prompt + u.completion});
    if u.cache_read > 0 {
        v["prompt_tokens_details"] = json!({"cached_tokens": u.cache_read});
    }
    if u.reasoning > 0 {
        v["completion_tokens_details"] = json!({"reasoning_tokens": u.reasoning});
    }
    v
}

fn call_id(index: usize) -> String {
    format!("call_mock_{index}")
}

/// A non-streamed answer.
fn completion(script: &Script) -> Value {
    let content = if script.reply.is_empty() && !script.tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(script.reply.clone())
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !script.reasoning.is_empty() {
        message["reasoning_content"] = json!(script.reasoning_text());
    }
    if !script.tool_calls.is_empty() {
        message["tool_calls"] = script
            .tool_calls
            .iter()
            .enumerate()
            .map(|(k, c)| {
                json!({"id": call_id(k), "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
    }
    let mut resp = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": script.model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(script.stop)}],
    });
    if let Some(usage) = &script.usage {
        resp["usage"] = usage_json(usage);
    }
    resp
}

/// `chat.completion.chunk`s: one per unit, the finish chunk, the usage chunk when asked for,
/// `[DONE]`.
struct ChunkEncoder {
    /// Mistral and GLM put usage in the finish chunk, unasked.
    usage_in_finish: bool,
    include_usage: bool,
    started: bool,
}

fn data(event: impl std::fmt::Display) -> Bytes {
    Bytes::from(format!("data: {event}\n\n"))
}

fn chunk(model: &str, delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
           "system_fingerprint": "fp_mock", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

impl Encoder for ChunkEncoder {
    fn unit(&mut self, script: &Script, _i: u64, unit: Unit<'_>) -> Vec<Bytes> {
        let first = !self.started;
        self.started = true;
        let mut delta = match unit {
            Unit::Reasoning(text) => json!({"content": null, "reasoning_content": text}),
            Unit::Text(text) => {
                let mut d = json!({"content": text});
                if first {
                    d["refusal"] = Value::Null;
                }
                d
            }
            Unit::ToolStart { index, call } => {
                let mut d = json!({"tool_calls": [{"index": index, "id": call_id(index), "type": "function",
                                   "function": {"name": call.name, "arguments": ""}}]});
                if first {
                    d["content"] = Value::Null;
                }
                d
            }
            Unit::ToolArgs { index, fragment, .. } => {
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            }
        };
        if first {
            delta["role"] = json!("assistant");
        }
        vec![data(chunk(&script.model, delta, Value::Null))]
    }

    fn error(&mut self, _script: &Script) -> Vec<Bytes> {
        vec![data(json!({"error": {"message": "mock overloaded mid-stream", "type": "server_error"}}))]
    }

    fn close(&mut self, script: &Script) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut last = chunk(&script.model, json!({}), json!(finish_reason(script.stop)));
        if let (true, Some(usage)) = (self.usage_in_finish, &script.usage) {
            last["usage"] = usage_json(usage);
        }
        out.push(data(last));
        if let (true, Some(usage)) = (self.include_usage, &script.usage) {
            out.push(data(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": script.model, "system_fingerprint": "fp_mock", "choices": [], "usage": usage_json(usage)})));
        }
        out.push(data("[DONE]"));
        out
    }
}

pub(crate) async fn embeddings(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept(&state, &uri, &headers, &body).await {
        Ok((body, model)) => embed(&body, &model),
        Err(resp) => resp,
    }
}

/// An OpenAI embeddings answer: one bag-of-words vector ([`embedding`]) per input.
pub(crate) fn embed(body: &Value, model: &str) -> Response {
    let inputs: Vec<Value> = match &body["input"] {
        Value::Array(items) if items.first().is_some_and(|v| !v.is_number()) => items.clone(),
        other => vec![other.clone()],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            json!({"object": "embedding", "index": i, "embedding": embedding::embed(&embedding::text_of_input(input))})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(words).sum();
    Json(json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})).into_response()
}

/// OpenAI's `Model` object.
fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"})
}

/// `GET /v1/models`.
pub(crate) fn models() -> Response {
    Json(json!({"object": "list", "data": [model_object("mock-model")]})).into_response()
}

/// `GET /v1/models/{model}`: any model exists, unless it is down.
pub(crate) fn model(state: &MockState, model: &str) -> Response {
    state.count_probe(model);
    if state.is_down(model) {
        return error(503, &format!("mock model {model} is down"));
    }
    Json(model_object(model)).into_response()
}
