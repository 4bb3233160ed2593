//! The Gemini API (v1beta): `POST /v1beta/models/{model}:{method}` for `generateContent`,
//! `streamGenerateContent` (`?alt=sse` only: every `data:` a whole `GenerateContentResponse`,
//! events ending in `\r\n\r\n` as Google's do), `countTokens`, `embedContent` and
//! `batchEmbedContents`. The key comes in `x-goog-api-key` or `?key=`; errors are Google's
//! `{"error":{"code","message","status"}}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Protocol};
use crate::record::query_param;
use crate::script::{Script, Stop, Unit, Usage};
use crate::stream::{self, Encoder};
use crate::summary::{Summary, words};
use crate::{MockState, Recorded, embedding};

/// What Google says to a request that authenticated with something other than an API key.
pub(crate) const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.";
/// …and to one with no credentials at all.
const UNREGISTERED: &str = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";
const KEY_INVALID: &str = "API key not valid. Please pass a valid API key.";

/// The fields of a `Part` that hold its data: exactly one must be set.
const DATA_FIELDS: [(&str, &str); 7] = [
    ("text", "text"),
    ("inlineData", "inline_data"),
    ("fileData", "file_data"),
    ("functionCall", "function_call"),
    ("functionResponse", "function_response"),
    ("executableCode", "executable_code"),
    ("codeExecutionResult", "code_execution_result"),
];

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

fn error_with_details(code: u16, message: &str, details: Option<Value>) -> Response {
    let mut error = json!({"code": code, "message": message, "status": status_name(code)});
    if let Some(details) = details {
        error["details"] = details;
    }
    let resp = (faults::status_code(code), Json(json!({"error": error}))).into_response();
    faults::with_retry_after(code, resp)
}

fn retry_info(secs: u64) -> Value {
    json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")}])
}

pub(crate) fn error(code: u16, message: &str) -> Response {
    error_with_details(code, message, (code == 429).then(|| retry_info(7)))
}

/// A 429 whose `RetryInfo` asks for `secs` seconds (the caller sets the matching header).
pub(crate) fn rate_limited(message: &str, secs: u64) -> Response {
    error_with_details(429, message, Some(retry_info(secs)))
}

/// The key in `x-goog-api-key` or `?key=`: present, and the configured one if there is one.
fn check_key(state: &MockState, headers: &HeaderMap, query: Option<&str>) -> Result<(), Response> {
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .or_else(|| query_param(query, "key").filter(|k| !k.is_empty()));
    match key {
        // A bearer token is taken for OAuth, and an API key is no OAuth token.
        None if headers.contains_key("authorization") => Err(error(401, UNAUTHENTICATED)),
        None => Err(error(403, UNREGISTERED)),
        // Google's answer to a wrong key: 400 INVALID_ARGUMENT (not 401), the reason in an
        // `ErrorInfo`, the message again in a `LocalizedMessage`.
        Some(key) if state.config().gemini_key.as_deref().is_some_and(|expected| expected != key) => {
            Err(error_with_details(
                400,
                KEY_INVALID,
                Some(json!([
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": KEY_INVALID},
                ])),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// `field` by its JSON (camelCase) name or its proto (snake_case) name: Gemini takes both.
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> &'a Value {
    match v.get(camel) {
        Some(found) => found,
        None => &v[snake],
    }
}

pub(crate) async fn dispatch(
    State(state): State<Arc<MockState>>,
    Path(target): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body);
    if let Ok(body) = &parsed {
        state.record(Recorded::new(uri.path(), &headers, uri.query(), body.clone()));
    }
    if let Err(resp) = check_key(&state, &headers, uri.query()) {
        return resp;
    }
    let Some((model, method)) = target.rsplit_once(':') else {
        return error(404, &format!("models/{target} is not found: the mock serves models/{{model}}:{{method}}"));
    };
    let body = match parsed {
        Ok(body) if body.is_object() => body,
        Ok(_) => return error(400, "Invalid JSON payload received. Expected an object."),
        Err(e) => return error(400, &format!("Invalid JSON payload received. {e}")),
    };
    if let Err(resp) = faults::apply(&state, Protocol::Gemini, model, &headers).await {
        return resp;
    }
    match method {
        "generateContent" => generate(state, model, &body, false),
        "streamGenerateContent" if query_param(uri.query(), "alt") == Some("sse") => {
            generate(state, model, &body, true)
        }
        "streamGenerateContent" => error(
            400,
            "the mock streams only as server-sent events: add ?alt=sse (without it Gemini streams one JSON array)",
        ),
        "countTokens" => count_tokens(&body),
        "embedContent" => embed(&body),
        "batchEmbedContents" => batch_embed(model, &body),
        other => error(404, &format!("Method {other} is not found for models/{model}")),
    }
}

fn generate(state: Arc<MockState>, model: &str, body: &Value, streamed: bool) -> Response {
    if let Err(message) = validate(body) {
        return error(400, &message);
    }
    let summary = summarize(body);
    let reply = format!("echo: {}", summary.last_user_text);
    let script = match Script::new(model, reply, prompt_words(body), || summary) {
        Ok(script) => script,
        Err(message) => return error(400, &message),
    };
    if streamed {
        return stream::respond(state, script, ChunkEncoder::default(), "text/event-stream");
    }
    let mut parts = Vec::new();
    if !script.reasoning.is_empty() {
        parts.push(json!({"text": script.reasoning_text(), "thought": true}));
    }
    if !script.reply.is_empty() {
        parts.push(json!({"text": script.reply}));
    }
    parts.extend(script.tool_calls.iter().map(|c| function_call(&c.name, c.arguments)));
    let usage = script.usage.as_ref().map(|u| usage_json(u, u.completion));
    let mut resp = response(&script, parts, usage);
    finish(&mut resp, script.stop);
    Json(resp).into_response()
}

fn count_tokens(body: &Value) -> Response {
    let request = match field(body, "generateContentRequest", "generate_content_request") {
        Value::Object(_) => field(body, "generateContentRequest", "generate_content_request"),
        _ => body,
    };
    if let Err(message) = validate(request) {
        return error(400, &message);
    }
    Json(json!({"totalTokens": prompt_words(request)})).into_response()
}

fn embed(body: &Value) -> Response {
    let content = &body["content"];
    if !content.is_object() {
        return error(400, "* EmbedContentRequest.content: content is not specified");
    }
    Json(json!({"embedding": {"values": embedding::embed(&embedding::text_of_input(content))}})).into_response()
}

fn batch_embed(model: &str, body: &Value) -> Response {
    let requests = match &body["requests"] {
        Value::Array(r) if !r.is_empty() => r,
        _ => return error(400, "* BatchEmbedContentsRequest.requests: requests is not specified"),
    };
    let mut embeddings = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if !r["content"].is_object() {
            return error(400, &format!("* BatchEmbedContentsRequest.requests[{i}].content: content is not specified"));
        }
        if let Some(named) = r["model"].as_str()
            && named != format!("models/{model}")
        {
            return error(
                400,
                &format!(
                    "* BatchEmbedContentsRequest.requests[{i}].model: '{named}' differs from the model of the URL, models/{model}"
                ),
            );
        }
        embeddings.push(json!({"values": embedding::embed(&embedding::text_of_input(&r["content"]))}));
    }
    Json(json!({"embeddings": embeddings})).into_response()
}

/// `GET /v1beta/models/{model}`, Google's `Model` resource: the health probe. Key checked as for
/// generation; 503 while the model is down.
pub(crate) async fn model(
    State(state): State<Arc<MockState>>,
    Path(target): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = check_key(&state, &headers, uri.query()) {
        return resp;
    }
    if target.contains(':') {
        return error(404, &format!("models/{target} is not found: a method is called with POST"));
    }
    state.count_probe(&target);
    if state.is_down(&target) {
        return error(503, &format!("mock model {target} is down"));
    }
    Json(json!({
        "name": format!("models/{target}"),
        "baseModelId": target,
        "version": "001",
        "displayName": target,
        "description": "A model of the llm-proxy mock upstream.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "embedContent", "batchEmbedContents"],
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "topK": 64,
    }))
    .into_response()
}

fn prompt_words(body: &Value) -> u64 {
    words(field(body, "systemInstruction", "system_instruction"))
        + body["contents"].as_array().map(|c| c.iter().map(words).sum()).unwrap_or(0)
}

/// The request's problems, as Gemini words them where it can; `Err` is the first one found.
fn validate(body: &Value) -> Result<(), String> {
    let contents = match &body["contents"] {
        Value::Array(c) if !c.is_empty() => c,
        Value::Null | Value::Array(_) => {
            return Err("* GenerateContentRequest.contents: contents is not specified".into());
        }
        _ => return Err("Invalid JSON payload received. 'contents' must be a list of Content".into()),
    };
    // The model turn whose function calls the next turn must answer: (its index, how many).
    let mut pending: Option<(usize, usize)> = None;
    for (i, content) in contents.iter().enumerate() {
        let is_model = match content["role"].as_str() {
            None | Some("user") => false,
            Some("model") => true,
            Some(other) => {
                return Err(format!("Please use a valid role: user, model. (contents[{i}].role is '{other}')"));
            }
        };
        let parts = match &content["parts"] {
            Value::Array(p) if !p.is_empty() => p,
            _ => {
                return Err(format!("* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."));
            }
        };
        let (mut calls, mut responses) = (0, 0);
        for (j, part) in parts.iter().enumerate() {
            let at = format!("* GenerateContentRequest.contents[{i}].parts[{j}]");
            let set: Vec<&str> = DATA_FIELDS
                .iter()
                .filter(|(c, s)| part.get(*c).is_some() || part.get(*s).is_some())
                .map(|(c, _)| *c)
                .collect();
            match set.as_slice() {
                [] => return Err(format!("{at}.data: required oneof field 'data' must have one initialized field")),
                ["functionCall"] => {
                    if field(part, "functionCall", "function_call")["name"].as_str().is_none_or(str::is_empty) {
                        return Err(format!("{at}.function_call.name: Name cannot be empty."));
                    }
                    calls += 1;
                }
                ["functionResponse"] => {
                    if field(part, "functionResponse", "function_response")["name"].as_str().is_none_or(str::is_empty) {
                        return Err(format!("{at}.function_response.name: Name cannot be empty."));
                    }
                    responses += 1;
                }
                ["text"] if !part["text"].is_string() => return Err(format!("{at}.text: must be a string")),
                [_] => {}
                [first, second, ..] => {
                    return Err(format!(
                        "{at}: oneof field 'data' is already set by '{first}'; cannot also set '{second}'"
                    ));
                }
            }
        }
        if is_model && responses > 0 {
            return Err(format!("contents[{i}]: function responses belong in a user turn, not a model turn"));
        }
        match pending.take() {
            Some((call_turn, _)) if is_model || responses == 0 => {
                return Err(format!(
                    "Please ensure that function response turn comes immediately after a function call turn: the function calls of contents[{call_turn}] are not answered by contents[{i}]."
                ));
            }
            Some((call_turn, n)) if responses != n => {
                return Err(format!(
                    "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn (contents[{call_turn}] has {n}, contents[{i}] answers {responses})."
                ));
            }
            Some(_) => {}
            None if responses > 0 => {
                return Err(format!(
                    "Please ensure that function response turn comes immediately after a function call turn (contents[{i}])."
                ));
            }
            None => {}
        }
        if calls > 0 {
            pending = Some((i, calls));
        }
    }
    if let Some((call_turn, _)) = pending {
        return Err(format!(
            "Please ensure that function response turn comes immediately after a function call turn: the function calls of contents[{call_turn}] are not answered."
        ));
    }
    for (i, tool) in body["tools"].as_array().into_iter().flatten().enumerate() {
        for (j, decl) in
            field(tool, "functionDeclarations", "function_declarations").as_array().into_iter().flatten().enumerate()
        {
            if decl["name"].as_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: Name cannot be empty."
                ));
            }
        }
    }
    Ok(())
}

fn is_image(part: &Value) -> bool {
    [("inlineData", "inline_data"), ("fileData", "file_data")].iter().any(|(c, s)| {
        let data = field(part, c, s);
        field(data, "mimeType", "mime_type").as_str().is_some_and(|m| m.starts_with("image/"))
    })
}

/// The text of a function response: its only string field (`{"result": "sunny"}` → `sunny`), or
/// the whole response as compact JSON.
fn response_text(response: &Value) -> String {
    match response {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.len() == 1 => match m.values().next() {
            Some(Value::String(s)) => s.clone(),
            _ => response.to_string(),
        },
        _ => response.to_string(),
    }
}

/// What a Gemini request said, for `echo` and `tool` models (and the default reply).
fn summarize(body: &Value) -> Summary {
    let mut s = Summary::default();
    let system = field(body, "systemInstruction", "system_instruction");
    for text in system["parts"].as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()) {
        s.add_system(text);
    }
    for content in body["contents"].as_array().into_iter().flatten() {
        let user = content["role"] != "model";
        s.message(user);
        for part in content["parts"].as_array().into_iter().flatten() {
            if let (true, Some(text), false) = (user, part["text"].as_str(), part["thought"] == true) {
                s.user_text(text);
            }
            if is_image(part) {
                s.images += 1;
            }
            let response = field(part, "functionResponse", "function_response");
            if response.is_object() {
                s.tool_results.push(response_text(&response["response"]));
                s.images += response["parts"].as_array().into_iter().flatten().filter(|p| is_image(p)).count() as u64;
            }
        }
    }
    for tool in body["tools"].as_array().into_iter().flatten() {
        let declarations = field(tool, "functionDeclarations", "function_declarations");
        s.tools
            .extend(declarations.as_array().into_iter().flatten().filter_map(|d| d["name"].as_str().map(String::from)));
    }
    let config = field(body, "generationConfig", "generation_config");
    s.max_tokens = field(config, "maxOutputTokens", "max_output_tokens").as_u64();
    s
}

fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End | Stop::ToolUse => "STOP",
        Stop::Length => "MAX_TOKENS",
        Stop::Refusal => "SAFETY",
    }
}

/// Usage once `done` units are out: Gemini repeats it, growing, in every chunk.
/// `candidatesTokenCount` excludes the thoughts; `totalTokenCount` counts them.
fn usage_json(u: &Usage, done: u64) -> Value {
    let thoughts = done.min(u.reasoning);
    let mut v = json!({"promptTokenCount": u.prompt, "candidatesTokenCount": done - thoughts, "totalTokenCount": u.prompt + done});
    if u.cache_read > 0 {
        v["cachedContentTokenCount"] = json!(u.cache_read);
    }
    if u.reasoning > 0 {
        v["thoughtsTokenCount"] = json!(thoughts);
    }
    v
}

fn function_call(name: &str, arguments: &str) -> Value {
    json!({"functionCall": {"name": name, "args": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({}))}})
}

/// A `GenerateContentResponse` with one candidate holding `parts`.
fn response(script: &Script, parts: Vec<Value>, usage: Option<Value>) -> Value {
    let mut candidate = json!({"index": 0});
    if !parts.is_empty() {
        candidate["content"] = json!({"parts": parts, "role": "model"});
    }
    let mut resp = json!({"candidates": [candidate], "modelVersion": script.model, "responseId": "mock-response-id"});
    if let Some(usage) = usage {
        resp["usageMetadata"] = usage;
    }
    resp
}

fn finish(resp: &mut Value, stop: Stop) {
    let candidate = &mut resp["candidates"][0];
    candidate["finishReason"] = json!(finish_reason(stop));
    if stop == Stop::Refusal {
        candidate["safetyRatings"] =
            json!([{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]);
    }
}

fn sse(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\r\n\r\n"))
}

/// One `GenerateContentResponse` per unit (a function call whole, once its arguments are
/// complete); the last carries `finishReason`.
#[derive(Default)]
struct ChunkEncoder {
    /// The last unit's chunk, which [`Encoder::close`] finishes and sends.
    held: Option<Value>,
}

impl Encoder for ChunkEncoder {
    fn unit(&mut self, script: &Script, i: u64, unit: Unit<'_>) -> Vec<Bytes> {
        let part = match unit {
            Unit::Reasoning(text) => json!({"text": text, "thought": true}),
            Unit::Text(text) => json!({"text": text}),
            Unit::ToolArgs { call, last: true, .. } => function_call(&call.name, call.arguments),
            Unit::ToolStart { .. } | Unit::ToolArgs { .. } => return Vec::new(),
        };
        let chunk = response(script, vec![part], script.usage.as_ref().map(|u| usage_json(u, i + 1)));
        if i + 1 == script.units() {
            self.held = Some(chunk);
            return Vec::new();
        }
        vec![sse(&chunk)]
    }

    fn error(&mut self, _script: &Script) -> Vec<Bytes> {
        let error = json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}});
        // A unit's chunk held for its finishReason was still produced before the failure.
        self.held.take().iter().chain([&error]).map(sse).collect()
    }

    fn close(&mut self, script: &Script) -> Vec<Bytes> {
        let mut last = self.held.take().unwrap_or_else(|| {
            response(script, Vec::new(), script.usage.as_ref().map(|u| usage_json(u, u.completion)))
        });
        finish(&mut last, script.stop);
        vec![sse(&last)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({"role": "user", "parts": [{"text": text}]})
    }

    #[test]
    fn function_calls_must_be_answered_next() {
        let call = json!({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]});
        let answer =
            json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "sunny"}}}]});
        assert_eq!(validate(&json!({"contents": [user("hi"), call, answer]})), Ok(()));
        assert!(validate(&json!({"contents": [user("hi"), call, user("next")]})).is_err());
        assert!(validate(&json!({"contents": [user("hi"), answer]})).is_err());
        assert!(validate(&json!({"contents": [user("hi"), call]})).is_err());
        let nameless = json!({"role": "user", "parts": [{"functionResponse": {"response": {}}}]});
        assert!(validate(&json!({"contents": [user("hi"), call, nameless]})).unwrap_err().contains("name"));
    }

    #[test]
    fn contents_are_checked_as_gemini_checks_them() {
        assert!(validate(&json!({})).unwrap_err().contains("contents is not specified"));
        assert!(validate(&json!({"contents": []})).is_err());
        assert!(
            validate(&json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}))
                .unwrap_err()
                .contains("role")
        );
        assert!(validate(&json!({"contents": [{"role": "user", "parts": []}]})).is_err());
        assert!(validate(&json!({"contents": [{"role": "user", "parts": [{}]}]})).unwrap_err().contains("oneof"));
        let two =
            json!({"contents": [{"parts": [{"text": "x", "inlineData": {"mimeType": "image/png", "data": "AA"}}]}]});
        assert!(validate(&two).unwrap_err().contains("already set"));
        let thought = json!({"contents": [{"parts": [{"text": "x", "thought": true, "thoughtSignature": "s"}]}]});
        assert_eq!(validate(&thought), Ok(()));
    }

    #[test]
    fn response_text_unwraps_one_string() {
        assert_eq!(response_text(&json!({"result": "sunny"})), "sunny");
        assert_eq!(response_text(&json!({"a": 1})), r#"{"a":1}"#);
    }
}
