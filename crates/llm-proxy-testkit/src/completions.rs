//! OpenAI's legacy Completions API: `POST /v1/completions`, answered with a `text_completion`
//! object or, with `"stream": true`, `text_completion` chunks ending with `data: [DONE]` (a last
//! chunk of empty `choices` with the `usage` first, when `stream_options.include_usage` asks).
//! Requests are checked as OpenAI checks them ([`check`]): a field the API does not know is
//! refused, so a gateway that sends a chat body, or a chat field, to this endpoint is caught.
//!
//! The [`Script`] maps onto the API as it does onto Chat Completions, with the prompt as the user's
//! text (`echo: <prompt>` answers it; `Hello w1 w2` is the stream): each prompt (of several, or a
//! prompt of token ids, whose text here is the ids written out) gets `n` choices, indexed prompt
//! by prompt; a stream is scripted from the last prompt, and its pieces go to every choice. `echo: true` puts the prompt before the
//! text. Reasoning, which this API has no place for, is not sent (its tokens are still counted).
//! `logprobs` is always `null`: the mock has no probabilities.

mod check;

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Protocol};
use crate::openai::usage_json;
use crate::refusal::Refusal;
use crate::script::{Script, Stop, Unit, Usage};
use crate::stream::{self, Encoder};
use crate::summary::Summary;
use crate::{MockState, Recorded};

const ID: &str = "cmpl-mock";
const CREATED: u64 = 1_700_000_000;

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
    let completion = match check::request(&body).and_then(|()| Completion::of(&body, &model)) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    if body["stream"] == true {
        let include_usage = body["stream_options"]["include_usage"] == true;
        let script = completion.script;
        let encoder =
            ChunkEncoder { choices: completion.choices, echo: completion.echo, include_usage, usage: completion.usage };
        return stream::respond(state, script, encoder, "text/event-stream");
    }
    Json(completion.object()).into_response()
}

/// One request's answer.
struct Completion {
    choices: Vec<Choice>,
    echo: bool,
    /// Scripted from the last prompt: what a stream sends.
    script: Script,
    /// The whole request's: every prompt, every choice.
    usage: Option<Usage>,
}

/// One choice: its index, the prompt it continues and its text when not streamed.
struct Choice {
    index: u64,
    prompt: String,
    reply: String,
}

impl Completion {
    fn of(body: &Value, model: &str) -> Result<Self, Refusal> {
        let max_tokens = body["max_tokens"].as_u64();
        let script_for = |prompt: &str| {
            let summary = || {
                let mut s = Summary::default();
                s.max_tokens = max_tokens;
                s.message(true);
                s.user_text(prompt);
                s
            };
            Script::new(model, format!("echo: {prompt}"), 0, summary).map_err(Refusal::bad_request)
        };
        let n = body["n"].as_u64().unwrap_or(1);
        let mut choices = Vec::new();
        let mut script = None;
        for (i, prompt) in prompt_texts(&body["prompt"]).into_iter().enumerate() {
            let s = script_for(&prompt)?;
            choices.extend((0..n).map(|j| Choice {
                index: i as u64 * n + j,
                prompt: prompt.clone(),
                reply: s.reply.clone(),
            }));
            script = Some(s);
        }
        let script = match script {
            Some(s) => s,
            None => return Err(Refusal::bad_request("The prompt is an empty array.".into())),
        };
        let prompt_tokens = prompt_tokens(&body["prompt"]);
        let usage = script.usage.map(|u| Usage {
            prompt: prompt_tokens + u.cache_read + u.cache_write,
            completion: u.completion * choices.len() as u64,
            reasoning: u.reasoning * choices.len() as u64,
            ..u
        });
        Ok(Completion { choices, echo: body["echo"] == true, script, usage })
    }

    /// The `text_completion` object.
    fn object(&self) -> Value {
        let finish = finish_reason(self.script.stop);
        let choices: Vec<Value> = self
            .choices
            .iter()
            .map(|c| {
                let text = if self.echo { format!("{}{}", c.prompt, c.reply) } else { c.reply.clone() };
                json!({"text": text, "index": c.index, "logprobs": null, "finish_reason": finish})
            })
            .collect();
        let mut out = json!({"id": ID, "object": "text_completion", "created": CREATED, "model": self.script.model,
                             "system_fingerprint": "fp_mock", "choices": choices});
        if let Some(usage) = &self.usage {
            out["usage"] = usage_json(usage);
        }
        out
    }
}

/// The text of each prompt: a string, each string of an array, the ids of a token prompt written
/// out; `null` is the document separator, as the API reads it.
fn prompt_texts(prompt: &Value) -> Vec<String> {
    match prompt {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if items.iter().all(Value::is_number) => vec![prompt.to_string()],
        Value::Array(items) => items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), String::from)).collect(),
        _ => vec!["<|endoftext|>".to_string()],
    }
}

/// Prompt tokens: the words of text prompts, the ids of token prompts, one for `null`.
fn prompt_tokens(prompt: &Value) -> u64 {
    match prompt {
        Value::String(text) => text.split_whitespace().count() as u64,
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(text) => text.split_whitespace().count() as u64,
                Value::Array(ids) => ids.len() as u64,
                _ => 1,
            })
            .sum(),
        _ => 1,
    }
}

fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::Length => "length",
        Stop::Refusal => "content_filter",
        // A request without tools gets no tool calls: `tool` models refuse it beforehand.
        Stop::End | Stop::ToolUse => "stop",
    }
}

/// `text_completion` chunks: each piece of text to every choice, each choice's finish, the usage
/// chunk when asked for, `[DONE]`.
struct ChunkEncoder {
    choices: Vec<Choice>,
    echo: bool,
    include_usage: bool,
    usage: Option<Usage>,
}

fn data(event: impl std::fmt::Display) -> Bytes {
    Bytes::from(format!("data: {event}\n\n"))
}

/// A chunk with one choice, keys in the order of the reference's example.
fn chunk(model: &str, index: u64, text: &str, finish: Value) -> Bytes {
    data(json!({"id": ID, "object": "text_completion", "created": CREATED,
                "choices": [{"text": text, "index": index, "logprobs": null, "finish_reason": finish}],
                "model": model, "system_fingerprint": "fp_mock"}))
}

impl Encoder for ChunkEncoder {
    fn open(&mut self, script: &Script) -> Vec<Bytes> {
        if !self.echo {
            return Vec::new();
        }
        self.choices.iter().map(|c| chunk(&script.model, c.index, &c.prompt, Value::Null)).collect()
    }

    fn unit(&mut self, script: &Script, _i: u64, unit: Unit<'_>) -> Vec<Bytes> {
        match unit {
            Unit::Text(text) => {
                self.choices.iter().map(|c| chunk(&script.model, c.index, &text, Value::Null)).collect()
            }
            // No place for reasoning; tool calls cannot happen (see `finish_reason`).
            _ => Vec::new(),
        }
    }

    fn error(&mut self, _script: &Script) -> Vec<Bytes> {
        vec![data(json!({"error": {"message": "mock overloaded mid-stream", "type": "server_error"}}))]
    }

    fn close(&mut self, script: &Script) -> Vec<Bytes> {
        let finish = json!(finish_reason(script.stop));
        let mut out: Vec<Bytes> =
            self.choices.iter().map(|c| chunk(&script.model, c.index, "", finish.clone())).collect();
        if let (true, Some(usage)) = (self.include_usage, &self.usage) {
            out.push(data(json!({"id": ID, "object": "text_completion", "created": CREATED, "model": script.model,
                                 "choices": [], "usage": usage_json(usage)})));
        }
        out.push(data("[DONE]"));
        out
    }
}
