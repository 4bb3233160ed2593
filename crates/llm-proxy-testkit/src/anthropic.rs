//! The Anthropic Messages API: `POST /v1/messages` (a `message` object, or the event stream
//! `message_start`, `content_block_start`, `ping`, `content_block_delta`…, `content_block_stop`,
//! `message_delta`, `message_stop`) and `POST /v1/messages/count_tokens`. Headers and bodies are
//! checked as Anthropic checks them where a translation bug would show, each violation a 400
//! `invalid_request_error` saying what is wrong.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Protocol};
use crate::script::{Script, Stop, Unit, Usage};
use crate::stream::{self, Encoder};
use crate::summary::{Summary, text_of, words};
use crate::{MockState, Recorded};

/// The API version the mock accepts in `anthropic-version`.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The signature of every thinking block the mock writes.
const SIGNATURE: &str = "bW9jay10aGlua2luZy1zaWduYXR1cmU=";

pub(crate) fn error(status: u16, message: &str) -> Response {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    faults::with_retry_after(status, (faults::status_code(status), Json(body)).into_response())
}

/// `x-api-key` (present, and the configured key if there is one) and `anthropic-version`.
fn check_headers(state: &MockState, headers: &HeaderMap) -> Result<(), Response> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("");
    if key.is_empty() {
        // `Authorization: Bearer` alone is how an OpenAI client authenticates: Anthropic refuses it.
        return Err(error(401, "x-api-key header is required"));
    }
    if state.config().anthropic_key.as_deref().is_some_and(|expected| expected != key) {
        return Err(error(401, "invalid x-api-key"));
    }
    match headers.get("anthropic-version").and_then(|v| v.to_str().ok()) {
        None => Err(error(400, "anthropic-version: header is required")),
        Some(ANTHROPIC_VERSION | VERSION_2026_10_21) => Ok(()),
        Some(other) => Err(error(
            400,
            &format!(
                "anthropic-version: unsupported version '{other}'; the mock accepts '{ANTHROPIC_VERSION}' and '{VERSION_2026_10_21}'"
            ),
        )),
    }
}

/// The API version the current SDKs send. It removed the sampling parameters: a request that sends
/// one is refused, so a gateway that pairs a client's body with the wrong version is caught.
const VERSION_2026_10_21: &str = "2026-10-21";

fn check_version_fields(body: &Value, headers: &HeaderMap) -> Result<(), String> {
    if headers.get("anthropic-version").is_some_and(|v| v == VERSION_2026_10_21) {
        for removed in ["temperature", "top_p", "top_k"] {
            if body.get(removed).is_some() {
                return Err(format!("{removed}: this parameter was removed in API version {VERSION_2026_10_21}"));
            }
        }
    }
    Ok(())
}

/// Anthropic's `ModelInfo`.
fn model_info(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"})
}

/// `GET /v1/models`, headers checked as for messages.
pub(crate) fn models(state: &MockState, headers: &HeaderMap) -> Response {
    if let Err(resp) = check_headers(state, headers) {
        return resp;
    }
    let id = "claude-mock";
    Json(json!({"data": [model_info(id)], "has_more": false, "first_id": id, "last_id": id})).into_response()
}

/// `GET /v1/models/{model}`: any model exists, unless it is down.
pub(crate) fn model(state: &MockState, headers: &HeaderMap, model: &str) -> Response {
    if let Err(resp) = check_headers(state, headers) {
        return resp;
    }
    state.count_probe(model);
    if state.is_down(model) {
        return error(503, &format!("mock model {model} is down"));
    }
    Json(model_info(model)).into_response()
}

/// Records the request, checks its headers, parses it and applies the faults of its model.
async fn accept(state: &MockState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(Value, String), Response> {
    let parsed = serde_json::from_slice::<Value>(body);
    if let Ok(body) = &parsed {
        state.record(Recorded::new(uri.path(), headers, uri.query(), body.clone()));
    }
    check_headers(state, headers)?;
    let body = parsed.map_err(|e| error(400, &format!("the request body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(error(400, "the request body must be a JSON object"));
    }
    let model = body["model"].as_str().unwrap_or("").to_string();
    faults::apply(state, Protocol::Anthropic, &model, headers).await?;
    Ok((body, model))
}

pub(crate) async fn messages(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, model) = match accept(&state, &uri, &headers, &body).await {
        Ok(accepted) => accepted,
        Err(resp) => return resp,
    };
    if let Err(message) = validate(&body, true)
        .and_then(|()| check_betas(&body, &headers))
        .and_then(|()| check_version_fields(&body, &headers))
    {
        return error(400, &message);
    }
    let summary = summarize(&body);
    let reply = format!("echo: {}", summary.last_user_text);
    let script = match Script::new(&model, reply, prompt_words(&body), || summary) {
        Ok(script) => script,
        Err(message) => return error(400, &message),
    };
    if body["stream"] == true {
        stream::respond(state, script, EventEncoder::default(), "text/event-stream; charset=utf-8")
    } else {
        Json(message(&script)).into_response()
    }
}

pub(crate) async fn count_tokens(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, _) = match accept(&state, &uri, &headers, &body).await {
        Ok(accepted) => accepted,
        Err(resp) => return resp,
    };
    if let Err(message) = validate(&body, false).and_then(|()| check_betas(&body, &headers)) {
        return error(400, &message);
    }
    Json(json!({"input_tokens": prompt_words(&body)})).into_response()
}

/// Beta-only fields, refused as the API refuses them when the client did not name their beta in
/// `anthropic-beta` (so a gateway that drops the header is caught).
const BETA_FIELDS: [(&str, &str); 1] = [("context_management", "context-management-2025-06-27")];

fn check_betas(body: &Value, headers: &HeaderMap) -> Result<(), String> {
    let betas = headers.get("anthropic-beta").and_then(|v| v.to_str().ok()).unwrap_or("");
    for (field, beta) in BETA_FIELDS {
        if body.get(field).is_some() && !betas.split(',').any(|b| b.trim() == beta) {
            return Err(format!("{field}: Extra inputs are not permitted (this field needs the `{beta}` beta)"));
        }
    }
    Ok(())
}

fn prompt_words(body: &Value) -> u64 {
    words(&body["system"]) + body["messages"].as_array().map(|m| m.iter().map(words).sum()).unwrap_or(0)
}

/// The request's problems, as Anthropic words them where it can; `Err` is the first one found.
fn validate(body: &Value, needs_max_tokens: bool) -> Result<(), String> {
    if !body["model"].is_string() {
        return Err("model: Field required".into());
    }
    let max_tokens = match &body["max_tokens"] {
        Value::Null if needs_max_tokens => return Err("max_tokens: Field required".into()),
        Value::Null => None,
        v => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => return Err(format!("max_tokens: Input should be a valid positive integer, got {v}")),
        },
    };
    if !matches!(body["stream"], Value::Null | Value::Bool(_)) {
        return Err("stream: Input should be a valid boolean".into());
    }
    validate_system(&body["system"])?;
    let messages = match &body["messages"] {
        Value::Null => return Err("messages: Field required".into()),
        Value::Array(m) if m.is_empty() => return Err("messages: at least one message is required".into()),
        Value::Array(m) => m,
        _ => return Err("messages: Input should be a valid list".into()),
    };
    let mut previous_tool_uses: HashSet<&str> = HashSet::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role == "system" {
            // Mid-conversation instructions: right after a user turn, text only.
            if i == 0 || messages[i - 1]["role"] != "user" {
                return Err(format!("messages.{i}.role: a `system` message must come right after a `user` message"));
            }
            validate_system(&m["content"]).map_err(|e| format!("messages.{i}.content: {e}"))?;
            continue;
        }
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: Input should be 'user', 'assistant' or 'system', got {}",
                m["role"]
            ));
        }
        let is_final_assistant = role == "assistant" && i + 1 == messages.len();
        let blocks: &[Value] = match &m["content"] {
            Value::String(s) if s.is_empty() && !is_final_assistant => {
                return Err(format!(
                    "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                ));
            }
            Value::String(_) => &[],
            Value::Array(b) if b.is_empty() && !is_final_assistant => {
                return Err(format!(
                    "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                ));
            }
            Value::Array(b) => b,
            _ => return Err(format!("messages.{i}.content: Input should be a valid string or list of content blocks")),
        };
        let mut tool_uses = HashSet::new();
        let mut answered = HashSet::new();
        let mut seen_other = false;
        for (j, block) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            validate_block(block, role, &at)?;
            match block["type"].as_str().unwrap_or("") {
                "tool_use" => {
                    tool_uses.insert(block["id"].as_str().unwrap_or(""));
                }
                "tool_result" => {
                    let id = block["tool_use_id"].as_str().unwrap_or("");
                    if !previous_tool_uses.contains(id) {
                        return Err(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                    if seen_other {
                        return Err(format!(
                            "{at}: `tool_result` blocks must come first in a user message, before any other content"
                        ));
                    }
                    answered.insert(id);
                }
                _ => seen_other = true,
            }
        }
        if role == "user" {
            let mut missing: Vec<&str> = previous_tool_uses.difference(&answered).copied().collect();
            if !missing.is_empty() {
                missing.sort_unstable();
                return Err(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    missing.join(", ")
                ));
            }
        } else if !previous_tool_uses.is_empty() {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: the previous assistant message's tool calls must be answered by a user message"
            ));
        }
        previous_tool_uses = tool_uses;
    }
    if !previous_tool_uses.is_empty() {
        return Err(format!(
            "messages.{}: the last message has `tool_use` blocks; each needs a `tool_result` block in a following user message",
            messages.len() - 1
        ));
    }
    validate_thinking(body, max_tokens)?;
    validate_tools(body)
}

fn validate_system(system: &Value) -> Result<(), String> {
    match system {
        Value::Null | Value::String(_) => Ok(()),
        Value::Array(blocks) => {
            for (j, b) in blocks.iter().enumerate() {
                if b["type"] != "text" || !b["text"].is_string() {
                    return Err(format!(
                        "system.{j}: system blocks must be text blocks (type \"text\", a string text)"
                    ));
                }
                if b["text"].as_str().is_some_and(str::is_empty) {
                    return Err(format!("system.{j}: text content blocks must be non-empty"));
                }
            }
            Ok(())
        }
        _ => Err("system: Input should be a valid string or list of text blocks".into()),
    }
}

/// One content block of a message from `role`.
fn validate_block(block: &Value, role: &str, at: &str) -> Result<(), String> {
    let kind = block["type"].as_str().unwrap_or("");
    let only_in = |wanted: &str| -> Result<(), String> {
        if role == wanted { Ok(()) } else { Err(format!("{at}: `{kind}` blocks may only appear in {wanted} messages")) }
    };
    match kind {
        "text" => match block["text"].as_str() {
            Some("") => Err(format!("{at}: text content blocks must be non-empty")),
            Some(_) => Ok(()),
            None => Err(format!("{at}.text: Field required")),
        },
        "image" | "document" => validate_source(&block["source"], kind, &format!("{at}.source")),
        "tool_use" => {
            only_in("assistant")?;
            if block["id"].as_str().is_none_or(str::is_empty) {
                return Err(format!("{at}.id: Field required"));
            }
            if block["name"].as_str().is_none_or(str::is_empty) {
                return Err(format!("{at}.name: Field required"));
            }
            if !block["input"].is_object() {
                return Err(format!("{at}.input: Input should be a valid dictionary"));
            }
            Ok(())
        }
        "tool_result" => {
            only_in("user")?;
            if block["tool_use_id"].as_str().is_none_or(str::is_empty) {
                return Err(format!("{at}.tool_use_id: Field required"));
            }
            match &block["content"] {
                Value::Null | Value::String(_) => Ok(()),
                Value::Array(inner) => {
                    for (k, b) in inner.iter().enumerate() {
                        let inner_at = format!("{at}.content.{k}");
                        match b["type"].as_str().unwrap_or("") {
                            "text" | "image" | "document" | "search_result" => validate_block(b, role, &inner_at)?,
                            other => {
                                return Err(format!(
                                    "{inner_at}: `{other}` blocks are not allowed inside a tool_result"
                                ));
                            }
                        }
                    }
                    Ok(())
                }
                _ => Err(format!("{at}.content: Input should be a valid string or list of content blocks")),
            }
        }
        "thinking" => {
            only_in("assistant")?;
            if !block["thinking"].is_string() || !block["signature"].is_string() {
                return Err(format!("{at}: thinking blocks need `thinking` and `signature` strings"));
            }
            Ok(())
        }
        "redacted_thinking" => {
            only_in("assistant")?;
            if !block["data"].is_string() {
                return Err(format!("{at}.data: Field required"));
            }
            Ok(())
        }
        "search_result" => Ok(()),
        _ => Err(format!(
            "{at}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags: 'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'"
        )),
    }
}

fn validate_source(source: &Value, kind: &str, at: &str) -> Result<(), String> {
    match source["type"].as_str().unwrap_or("") {
        "base64" => {
            let media_type = source["media_type"].as_str().unwrap_or("");
            if kind == "image" && !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&media_type) {
                return Err(format!(
                    "{at}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp', got '{media_type}'"
                ));
            }
            if source["data"].as_str().is_none_or(str::is_empty) {
                return Err(format!("{at}.data: Field required"));
            }
            Ok(())
        }
        "url" if source["url"].is_string() => Ok(()),
        "url" => Err(format!("{at}.url: Field required")),
        "text" | "content" | "file" if kind == "document" => Ok(()),
        "file" if source["file_id"].is_string() => Ok(()),
        other => {
            Err(format!("{at}.type: Input tag '{other}' does not match any of the expected tags: 'base64', 'url'"))
        }
    }
}

fn validate_thinking(body: &Value, max_tokens: Option<u64>) -> Result<(), String> {
    let thinking = &body["thinking"];
    match thinking["type"].as_str() {
        _ if thinking.is_null() => Ok(()),
        Some("disabled") => Ok(()),
        Some("adaptive") => check_temperature(body),
        Some("enabled") => {
            let Some(budget) = thinking["budget_tokens"].as_u64() else {
                return Err("thinking.enabled.budget_tokens: Field required".into());
            };
            if budget < 1024 {
                return Err("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".into());
            }
            if max_tokens.is_some_and(|max| budget >= max) {
                return Err("`max_tokens` must be greater than `thinking.budget_tokens`".into());
            }
            check_temperature(body)
        }
        _ => Err(format!(
            "thinking.type: Input tag {} does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'",
            thinking["type"]
        )),
    }
}

fn check_temperature(body: &Value) -> Result<(), String> {
    match body["temperature"].as_f64() {
        Some(t) if t != 1.0 => Err("`temperature` may only be set to 1 when thinking is enabled".into()),
        _ if body["top_k"].is_number() => Err("`top_k` must be unset when thinking is enabled".into()),
        _ => Ok(()),
    }
}

fn validate_tools(body: &Value) -> Result<(), String> {
    match &body["tools"] {
        Value::Null => {}
        Value::Array(tools) => {
            for (i, t) in tools.iter().enumerate() {
                if t["name"].as_str().is_none_or(str::is_empty) {
                    return Err(format!("tools.{i}.name: Field required"));
                }
                let custom = t["type"].is_null() || t["type"] == "custom";
                if custom && !t["input_schema"].is_object() {
                    return Err(format!("tools.{i}.custom.input_schema: Field required"));
                }
            }
        }
        _ => return Err("tools: Input should be a valid list".into()),
    }
    match &body["tool_choice"] {
        Value::Null => Ok(()),
        Value::Object(choice) => match choice.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => Ok(()),
            Some("tool") if choice.get("name").is_some_and(Value::is_string) => Ok(()),
            Some("tool") => Err("tool_choice.tool.name: Field required".into()),
            _ => Err(
                "tool_choice.type: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
                    .into(),
            ),
        },
        other => Err(format!("tool_choice: Input should be a valid dictionary, got {other}")),
    }
}

/// What an Anthropic request said, for `echo` and `tool` models (and the default reply).
fn summarize(body: &Value) -> Summary {
    let mut s = Summary::default();
    match &body["system"] {
        Value::String(text) => s.add_system(text),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).for_each(|t| s.add_system(t)),
        _ => {}
    }
    for m in body["messages"].as_array().into_iter().flatten() {
        if m["role"] == "system" {
            match &m["content"] {
                Value::String(text) => s.add_system(text),
                blocks => blocks
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["text"].as_str())
                    .for_each(|t| s.add_system(t)),
            }
            continue;
        }
        let user = m["role"] == "user";
        s.message(user);
        match &m["content"] {
            Value::String(text) if user => s.user_text(text),
            Value::Array(blocks) => {
                for b in blocks {
                    match b["type"].as_str().unwrap_or("") {
                        "text" if user => s.user_text(b["text"].as_str().unwrap_or("")),
                        "image" => s.images += 1,
                        "tool_result" => {
                            s.tool_results.push(text_of(&b["content"]));
                            let inner = b["content"].as_array().into_iter().flatten();
                            s.images += inner.filter(|c| c["type"] == "image").count() as u64;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    s.tools =
        body["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str().map(String::from)).collect();
    s.max_tokens = body["max_tokens"].as_u64();
    s
}

fn stop_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End => "end_turn",
        Stop::Length => "max_tokens",
        Stop::ToolUse => "tool_use",
        Stop::Refusal => "refusal",
    }
}

/// Anthropic's usage: `input_tokens` excludes the cached prompt tokens, reported apart.
fn usage_json(u: &Usage, output_tokens: u64) -> Value {
    json!({
        "input_tokens": u.prompt - u.cache_read - u.cache_write,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": output_tokens,
    })
}

fn tool_id(index: usize) -> String {
    format!("toolu_mock_{index}")
}

fn tool_input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
}

/// A non-streamed answer: a `message` object.
fn message(script: &Script) -> Value {
    let mut content = Vec::new();
    if !script.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": script.reasoning_text(), "signature": SIGNATURE}));
    }
    if !script.reply.is_empty() {
        content.push(json!({"type": "text", "text": script.reply}));
    }
    for (k, call) in script.tool_calls.iter().enumerate() {
        content.push(
            json!({"type": "tool_use", "id": tool_id(k), "name": call.name, "input": tool_input(call.arguments)}),
        );
    }
    let mut msg = json!({
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": script.model,
        "content": content,
        "stop_reason": stop_reason(script.stop),
        "stop_sequence": null,
    });
    if let Some(u) = &script.usage {
        msg["usage"] = usage_json(u, u.completion);
    }
    msg
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
    Tool,
}

/// Anthropic's event stream; content blocks open and close as the units change kind.
#[derive(Default)]
struct EventEncoder {
    /// The open content block and its index.
    open: Option<(Block, u64)>,
    next_index: u64,
    pinged: bool,
}

fn event(kind: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn delta(index: u64, delta: Value) -> Bytes {
    event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta}))
}

impl EventEncoder {
    fn start(&mut self, out: &mut Vec<Bytes>, block: Block, content_block: Value) -> u64 {
        self.stop(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": content_block}),
        ));
        if !self.pinged {
            self.pinged = true;
            out.push(event("ping", json!({"type": "ping"})));
        }
        self.open = Some((block, index));
        index
    }

    /// The open block's index, opening a new one unless it is of kind `block`.
    fn ensure(&mut self, out: &mut Vec<Bytes>, block: Block, content_block: Value) -> u64 {
        match self.open {
            Some((open, index)) if open == block => index,
            _ => self.start(out, block, content_block),
        }
    }

    fn stop(&mut self, out: &mut Vec<Bytes>) {
        if let Some((block, index)) = self.open.take() {
            if block == Block::Thinking {
                out.push(delta(index, json!({"type": "signature_delta", "signature": SIGNATURE})));
            }
            out.push(event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }
}

impl Encoder for EventEncoder {
    fn open(&mut self, script: &Script) -> Vec<Bytes> {
        let mut message = json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": script.model,
            "content": [], "stop_reason": null, "stop_sequence": null});
        if let Some(u) = &script.usage {
            message["usage"] = usage_json(u, 1);
        }
        vec![event("message_start", json!({"type": "message_start", "message": message}))]
    }

    fn unit(&mut self, _script: &Script, _i: u64, unit: Unit<'_>) -> Vec<Bytes> {
        let mut out = Vec::new();
        match unit {
            Unit::Reasoning(text) => {
                let index = self.ensure(&mut out, Block::Thinking, json!({"type": "thinking", "thinking": ""}));
                out.push(delta(index, json!({"type": "thinking_delta", "thinking": text})));
            }
            Unit::Text(text) => {
                let index = self.ensure(&mut out, Block::Text, json!({"type": "text", "text": ""}));
                out.push(delta(index, json!({"type": "text_delta", "text": text})));
            }
            Unit::ToolStart { index, call } => {
                self.start(
                    &mut out,
                    Block::Tool,
                    json!({"type": "tool_use", "id": tool_id(index), "name": call.name, "input": {}}),
                );
            }
            Unit::ToolArgs { fragment, .. } => {
                if let Some((_, index)) = self.open {
                    out.push(delta(index, json!({"type": "input_json_delta", "partial_json": fragment})));
                }
            }
        }
        out
    }

    fn error(&mut self, _script: &Script) -> Vec<Bytes> {
        vec![event("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))]
    }

    fn close(&mut self, script: &Script) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.stop(&mut out);
        let mut message_delta = json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(script.stop), "stop_sequence": null}});
        if let Some(u) = &script.usage {
            message_delta["usage"] = json!({"output_tokens": u.completion});
        }
        out.push(event("message_delta", message_delta));
        out.push(event("message_stop", json!({"type": "message_stop"})));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(messages: Value) -> Value {
        json!({"model": "m", "max_tokens": 100, "messages": messages})
    }

    #[test]
    fn tool_results_must_answer_the_previous_tool_uses() {
        let use_ =
            json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]});
        let ok = request(json!([
            {"role": "user", "content": "hi"}, use_,
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}, {"type": "text", "text": "and?"}]}
        ]));
        assert_eq!(validate(&ok, true), Ok(()));

        let orphan = request(
            json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "x"}]}]),
        );
        assert!(validate(&orphan, true).unwrap_err().contains("unexpected `tool_use_id`"));

        let unanswered = request(json!([{"role": "user", "content": "hi"}, use_, {"role": "user", "content": "next"}]));
        assert!(validate(&unanswered, true).unwrap_err().contains("without `tool_result`"));

        let text_first = request(json!([{"role": "user", "content": "hi"}, use_,
            {"role": "user", "content": [{"type": "text", "text": "and?"}, {"type": "tool_result", "tool_use_id": "t1"}]}]));
        assert!(validate(&text_first, true).unwrap_err().contains("must come first"));
    }

    #[test]
    fn bodies_are_checked_as_anthropic_checks_them() {
        let user = json!([{"role": "user", "content": "hi"}]);
        assert!(validate(&json!({"model": "m", "messages": user}), true).unwrap_err().contains("max_tokens"));
        assert_eq!(validate(&json!({"model": "m", "messages": user}), false), Ok(()));
        assert!(validate(&request(json!([])), true).unwrap_err().contains("at least one message"));
        assert!(validate(&request(json!([{"role": "system", "content": "x"}])), true).unwrap_err().contains("role"));
        assert!(
            validate(&request(json!([{"role": "user", "content": [{"type": "text", "text": ""}]}])), true).is_err()
        );
        assert!(validate(&request(json!([{"role": "user", "content": [{"type": "image_url"}]}])), true).is_err());
        let image = json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]}]);
        assert_eq!(validate(&request(image), true), Ok(()));

        let mut thinking = request(user.clone());
        thinking["thinking"] = json!({"type": "enabled", "budget_tokens": 2000});
        assert!(validate(&thinking, true).unwrap_err().contains("max_tokens"));
        thinking["max_tokens"] = json!(4000);
        assert_eq!(validate(&thinking, true), Ok(()));
        thinking["temperature"] = json!(0.2);
        assert!(validate(&thinking, true).unwrap_err().contains("temperature"));

        let mut system = request(user);
        system["system"] = json!([{"type": "text", "text": "be brief"}]);
        assert_eq!(validate(&system, true), Ok(()));
        system["system"] = json!([{"role": "system", "content": "x"}]);
        assert!(validate(&system, true).is_err());
    }
}
