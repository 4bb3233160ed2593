//! The OpenAI Responses API: `POST /v1/responses`, answered with a `response` object or, with
//! `"stream": true`, its event stream ([`events`]). Requests are checked as OpenAI checks them
//! ([`check`]) and remembered with their answers ([`ResponseStore`](crate::response_store)), so a
//! follow-up naming one in `previous_response_id` continues its conversation, and one naming an
//! id the mock never produced is refused with 404, as OpenAI refuses it.
//!
//! The [`Script`] maps onto the API's output items: reasoning is a `reasoning` item whose summary
//! carries the text; the text is one `message` item with one `output_text` part; each tool call is
//! a `function_call` item. `max-tokens` and `refuse` end `incomplete` (`incomplete_details.reason`
//! `max_output_tokens` / `content_filter`), everything else `completed`.

mod check;
mod events;

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Protocol};
use crate::refusal::Refusal;
use crate::script::{Script, Stop, Usage};
use crate::summary::{Summary, words};
use crate::{MockState, Recorded, stream};
use check::item_type;

/// When every answer was created, and, if it completed, completed.
const CREATED_AT: u64 = 1_700_000_000;
const COMPLETED_AT: u64 = 1_700_000_001;
/// The `encrypted_content` of reasoning items, for clients that ask for it (`include`).
const ENCRYPTED_REASONING: &str = "gAAAAABtb2NrLWVuY3J5cHRlZC1yZWFzb25pbmc=";

pub(crate) async fn create(State(state): State<Arc<MockState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return Refusal::bad_request(format!(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.) {e}"
            ))
            .into_response();
        }
    };
    state.record(Recorded::new(uri.path(), &headers, uri.query(), body.clone()));
    let model = body["model"].as_str().unwrap_or("").to_string();
    if let Err(resp) = faults::apply(&state, Protocol::OpenAi, &model, &headers).await {
        return resp;
    }
    match answer(&state, &body, &model) {
        Ok((meta, script)) if body["stream"] == true => stream::respond(
            state.clone(),
            script,
            events::EventEncoder::new(state, meta),
            "text/event-stream; charset=utf-8",
        ),
        Ok((meta, script)) => {
            let output = output(&meta, &script);
            meta.remember(&state, &output);
            Json(meta.response(&script, status(script.stop), output, script.usage.as_ref())).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks the request, looks up the conversation it continues and scripts the answer.
fn answer(state: &MockState, body: &Value, model: &str) -> Result<(Meta, Script), Refusal> {
    check::shape(body)?;
    let previous = body["previous_response_id"].as_str().map(String::from);
    let earlier = match &previous {
        Some(id) => state.responses.conversation(id).ok_or_else(|| Refusal::unknown_previous(id))?,
        None => Vec::new(),
    };
    let input = input_items(&body["input"]);
    check::pairing(&earlier, &input)?;

    // The model sees the stored conversation, then this input; `instructions` are not carried over.
    let conversation: Vec<&Value> = earlier.iter().chain(&input).collect();
    let summary = summarize(body, &conversation);
    let reply = format!("echo: {}", summary.last_user_text);
    let prompt_words = words(&body["instructions"]) + input.iter().map(item_words).sum::<u64>();
    let script = Script::new(model, reply, prompt_words, || summary).map_err(Refusal::bad_request)?;

    let number = state.responses.next_number();
    let meta = Meta {
        id: format!("resp_mock_{number}"),
        number,
        echo: settings(body),
        previous,
        store: body["store"] != false,
        input,
        encrypted_reasoning: body["include"]
            .as_array()
            .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content")),
    };
    Ok((meta, script))
}

/// The input as items: a string is one user message.
fn input_items(input: &Value) -> Vec<Value> {
    match input {
        Value::String(text) => {
            vec![json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})]
        }
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    }
}

/// The prompt words of one input item: a message's texts, a tool output's.
fn item_words(item: &Value) -> u64 {
    match item_type(item) {
        "message" => words(&item["content"]),
        "function_call_output" => words(&item["output"]),
        _ => 0,
    }
}

/// The texts of a content value of `kinds` (a string is all text).
fn texts<'a>(content: &'a Value, kinds: &'a [&str]) -> impl Iterator<Item = &'a str> {
    let whole = content.as_str();
    let parts = content.as_array().into_iter().flatten();
    whole.into_iter().chain(
        parts.filter(|p| p["type"].as_str().is_some_and(|t| kinds.contains(&t))).filter_map(|p| p["text"].as_str()),
    )
}

fn images(content: &Value) -> u64 {
    content.as_array().map(|parts| parts.iter().filter(|p| p["type"] == "input_image").count() as u64).unwrap_or(0)
}

/// What a Responses request said, for `echo`, `tool` and `agent` models: `conversation` is the
/// stored one `previous_response_id` continues, then the input.
fn summarize(body: &Value, conversation: &[&Value]) -> Summary {
    let mut s = Summary::default();
    if let Some(instructions) = body["instructions"].as_str() {
        s.add_system(instructions);
    }
    for item in conversation {
        match item_type(item) {
            "message" => {
                let content = &item["content"];
                s.images += images(content);
                match item["role"].as_str().unwrap_or("") {
                    "system" | "developer" => {
                        s.add_system(&texts(content, &["input_text"]).collect::<Vec<_>>().join("\n"))
                    }
                    "user" => {
                        s.message(true);
                        texts(content, &["input_text"]).for_each(|t| s.user_text(t));
                    }
                    _ => s.message(false),
                }
            }
            "function_call" => s.message(false),
            "function_call_output" => {
                s.message(true);
                let output = &item["output"];
                s.tool_results.push(texts(output, &["input_text", "output_text"]).collect::<Vec<_>>().join("\n"));
                s.images += images(output);
            }
            _ => {}
        }
    }
    s.tools = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "function")
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect();
    s.max_tokens = body["max_output_tokens"].as_u64();
    s
}

/// The request's settings a `response` object repeats, with the API's defaults for those unset.
fn settings(body: &Value) -> Value {
    let or = |key: &str, default: Value| body.get(key).filter(|v| !v.is_null()).cloned().unwrap_or(default);
    json!({
        "background": false,
        "instructions": or("instructions", Value::Null),
        "max_output_tokens": or("max_output_tokens", Value::Null),
        "max_tool_calls": or("max_tool_calls", Value::Null),
        "metadata": or("metadata", json!({})),
        "parallel_tool_calls": or("parallel_tool_calls", json!(true)),
        "previous_response_id": or("previous_response_id", Value::Null),
        "prompt_cache_key": or("prompt_cache_key", Value::Null),
        "reasoning": or("reasoning", json!({"effort": null, "summary": null})),
        "safety_identifier": or("safety_identifier", Value::Null),
        "service_tier": "default",
        "store": or("store", json!(true)),
        "temperature": or("temperature", json!(1.0)),
        "text": or("text", json!({"format": {"type": "text"}})),
        "tool_choice": or("tool_choice", json!("auto")),
        "tools": or("tools", json!([])),
        "top_logprobs": or("top_logprobs", json!(0)),
        "top_p": or("top_p", json!(1.0)),
        "truncation": or("truncation", json!("disabled")),
        "user": or("user", Value::Null),
    })
}

/// Where a response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    InProgress,
    Completed,
    /// With `incomplete_details.reason`.
    Incomplete(&'static str),
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::Failed => "failed",
        }
    }

    /// The status of the item the response ended in.
    fn last_item(self) -> &'static str {
        if matches!(self, Status::Incomplete(_)) { "incomplete" } else { "completed" }
    }
}

fn status(stop: Stop) -> Status {
    match stop {
        Stop::End | Stop::ToolUse => Status::Completed,
        Stop::Length => Status::Incomplete("max_output_tokens"),
        Stop::Refusal => Status::Incomplete("content_filter"),
    }
}

/// One response's identity and what its object repeats from the request.
pub(crate) struct Meta {
    id: String,
    /// Distinct per response: item and call ids are built from it.
    number: u64,
    /// [`settings`].
    echo: Value,
    previous: Option<String>,
    /// `store: false` answers are not remembered: OpenAI cannot continue them either.
    store: bool,
    /// This request's input items, remembered with the output.
    input: Vec<Value>,
    encrypted_reasoning: bool,
}

impl Meta {
    /// The id of the output item at `index`, `prefix` naming its kind as OpenAI's ids do.
    fn item_id(&self, prefix: &str, index: usize) -> String {
        format!("{prefix}_mock_{}_{index}", self.number)
    }

    /// The `call_id` of the response's `k`th tool call.
    fn call_id(&self, k: usize) -> String {
        format!("call_mock_{}_{k}", self.number)
    }

    /// Remembers this response with its `output`, for a later `previous_response_id`.
    fn remember(&self, state: &MockState, output: &[Value]) {
        if self.store {
            let items = self.input.iter().chain(output).cloned().collect();
            state.responses.put(self.id.clone(), self.previous.clone(), items);
        }
    }

    /// The `response` object, its fields in the order OpenAI's reference lists them.
    fn response(&self, script: &Script, status: Status, output: Vec<Value>, usage: Option<&Usage>) -> Value {
        let echo = |key: &str| self.echo[key].clone();
        let mut r = json!({
            "id": self.id,
            "object": "response",
            "created_at": CREATED_AT,
            "status": status.as_str(),
            "background": echo("background"),
            "completed_at": if status == Status::Completed { json!(COMPLETED_AT) } else { Value::Null },
            "error": null,
            "incomplete_details": null,
            "instructions": echo("instructions"),
            "max_output_tokens": echo("max_output_tokens"),
            "max_tool_calls": echo("max_tool_calls"),
            "model": script.model,
            "output": output,
            "parallel_tool_calls": echo("parallel_tool_calls"),
            "previous_response_id": echo("previous_response_id"),
            "prompt_cache_key": echo("prompt_cache_key"),
            "reasoning": echo("reasoning"),
            "safety_identifier": echo("safety_identifier"),
            "service_tier": echo("service_tier"),
            "store": echo("store"),
            "temperature": echo("temperature"),
            "text": echo("text"),
            "tool_choice": echo("tool_choice"),
            "tools": echo("tools"),
            "top_logprobs": echo("top_logprobs"),
            "top_p": echo("top_p"),
            "truncation": echo("truncation"),
            "usage": usage.map(usage_json),
            "user": echo("user"),
            "metadata": echo("metadata"),
        });
        match status {
            Status::Incomplete(reason) => r["incomplete_details"] = json!({"reason": reason}),
            Status::Failed => {
                r["error"] = json!({"code": "server_error", "message": "An error occurred while processing your request. \
                    You can retry your request, or contact us through our help center at help.openai.com if the error persists."});
            }
            Status::InProgress | Status::Completed => {}
        }
        r
    }

    fn reasoning_item(&self, index: usize, summary: &str) -> Value {
        let mut item = json!({"id": self.item_id("rs", index), "type": "reasoning", "summary": []});
        if !summary.is_empty() {
            item["summary"] = json!([{"type": "summary_text", "text": summary}]);
        }
        if self.encrypted_reasoning {
            item["encrypted_content"] = json!(ENCRYPTED_REASONING);
        }
        item
    }

    fn message_item(&self, index: usize, text: Option<&str>, status: &str) -> Value {
        let content = match text {
            Some(text) => json!([output_text(text)]),
            None => json!([]),
        };
        json!({"id": self.item_id("msg", index), "type": "message", "status": status, "content": content,
               "role": "assistant"})
    }

    fn call_item(&self, index: usize, k: usize, name: &str, arguments: &str, status: &str) -> Value {
        json!({"id": self.item_id("fc", index), "type": "function_call", "status": status, "arguments": arguments,
               "call_id": self.call_id(k), "name": name})
    }
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

/// OpenAI's usage: cached tokens are part of `input_tokens`, reasoning part of `output_tokens`.
fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt,
        "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write},
        "output_tokens": u.completion,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.prompt + u.completion,
    })
}

/// The output items of a non-streamed answer.
fn output(meta: &Meta, script: &Script) -> Vec<Value> {
    let mut items = Vec::new();
    if !script.reasoning.is_empty() {
        items.push(meta.reasoning_item(items.len(), &script.reasoning_text()));
    }
    if !script.reply.is_empty() {
        items.push(meta.message_item(items.len(), Some(&script.reply), "completed"));
    }
    for (k, call) in script.tool_calls.iter().enumerate() {
        items.push(meta.call_item(items.len(), k, &call.name, call.arguments, "completed"));
    }
    if let Some(last) = items.last_mut().filter(|item| item.get("status").is_some()) {
        last["status"] = json!(status(script.stop).last_item());
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_summarizes_like_the_other_protocols() {
        let body = json!({"instructions": "be brief", "max_output_tokens": 50,
            "tools": [{"type": "function", "name": "get_weather"}, {"type": "web_search"}]});
        let items = [
            json!({"role": "developer", "content": "use metric"}),
            json!({"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]}),
            json!({"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}),
            json!({"type": "function_call_output", "call_id": "c1", "output": "sunny"}),
        ];
        let s = summarize(&body, &items.iter().collect::<Vec<_>>());
        assert_eq!(
            s.to_json(),
            r#"{"system":"be brief\nuse metric","messages":3,"images":1,"tools":["get_weather"],"tool_results":["sunny"],"max_tokens":50,"last_user_text":""}"#
        );
        assert_eq!(s.answered_tool(), Some("sunny"), "an agent reads the output back");
        assert_eq!(items.iter().map(item_words).sum::<u64>(), 4, "use metric, weather?, sunny");
    }
}
