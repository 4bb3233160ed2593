//! OpenAI's images, audio and moderations endpoints, as their API reference describes them:
//!
//! | path | body | answer |
//! |---|---|---|
//! | `POST /v1/images/generations` | JSON, `prompt` required | `{"created","data":[{"b64_json"}]}` (a 1×1 PNG; `{"url"}` with `response_format: "url"`); `gpt-image` models add `usage` |
//! | `POST /v1/images/edits` | multipart: `image` or `image[]` files, `prompt` | the same |
//! | `POST /v1/audio/speech` | JSON, `input` and `voice` required | `audio/mpeg` bytes (`kb-<n>` in the model: `n` KiB, else 4 KiB) in 64 KiB chunks; `stream_format: "sse"`: `speech.audio.delta` events, then `speech.audio.done` with usage |
//! | `POST /v1/audio/transcriptions`, `/translations` | multipart: `file` required | the text `transcribed <n> bytes of <filename>` as `response_format` asks: `json` (default; `gpt-4o` models add token `usage`), `text`, `verbose_json`, `srt`, `vtt`; `stream=true`: `transcript.text.delta` events, then `transcript.text.done` with usage |
//! | `POST /v1/moderations` | JSON, `input` a string or an array | one result per input; text containing `flag-me` is flagged as violence |
//!
//! A multipart request is recorded as `{"fields": [names in order], "model", "files": [{"field",
//! "filename", "bytes"}]}`; a JSON one as it came.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, RequestExt};
use base64::Engine;
use serde_json::{Value, json};

use crate::faults::{self, Protocol};
use crate::openai::error;
use crate::script::param;
use crate::{MockState, Recorded};

/// A 1×1 transparent PNG.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// Size of each streamed piece of audio.
const AUDIO_CHUNK: usize = 64 * 1024;

/// A multipart request as the mock read it: fields in order, text values, file sizes.
#[derive(Default)]
struct Form {
    fields: Vec<String>,
    text: Vec<(String, String)>,
    files: Vec<(String, String, usize)>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.text.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn summary(&self) -> Value {
        let files: Vec<Value> =
            self.files.iter().map(|(f, name, n)| json!({"field": f, "filename": name, "bytes": n})).collect();
        json!({"fields": self.fields, "model": self.get("model"), "files": files})
    }
}

/// Reads a multipart body, counting file bytes as they pass (a file is never held).
async fn read_form(mut multipart: Multipart) -> Result<Form, Response> {
    let bad = |e: axum::extract::multipart::MultipartError| error(400, &format!("mock could not read multipart: {e}"));
    let mut form = Form::default();
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        form.fields.push(name.clone());
        match field.file_name().map(String::from) {
            Some(filename) => {
                let mut n = 0;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    n += chunk.len();
                }
                form.files.push((name, filename, n));
            }
            None => form.text.push((name, field.text().await.map_err(bad)?)),
        }
    }
    Ok(form)
}

/// Parses a JSON body, records it and applies the model's faults.
async fn accept_json(state: &MockState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| error(400, &format!("mock could not parse body: {e}")))?;
    state.record(Recorded::new(uri.path(), headers, None, body.clone()));
    let model = body["model"].as_str().unwrap_or("").to_string();
    faults::apply(state, Protocol::OpenAi, &model, headers).await?;
    Ok(body)
}

/// Reads a multipart body, records it and applies the model's faults.
async fn accept_form(state: &MockState, request: axum::extract::Request) -> Result<Form, Response> {
    let (uri, headers) = (request.uri().clone(), request.headers().clone());
    let multipart: Multipart =
        request.extract().await.map_err(|e| error(400, &format!("mock expected multipart/form-data: {e}")))?;
    let form = read_form(multipart).await?;
    state.record(Recorded::new(uri.path(), &headers, None, form.summary()));
    faults::apply(state, Protocol::OpenAi, form.get("model").unwrap_or(""), &headers).await?;
    Ok(form)
}

fn missing(param: &str) -> Response {
    let body = json!({"error": {"message": format!("Missing required parameter: '{param}'."),
                                "type": "invalid_request_error", "param": param, "code": "missing_required_parameter"}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The images answer: `n` images, as `url` or `b64_json`; `gpt-image` models report usage.
fn images(model: &str, prompt: &str, n: u64, response_format: Option<&str>) -> Response {
    let gpt_image = model.contains("gpt-image");
    let data: Vec<Value> = (0..n.max(1))
        .map(|i| match response_format {
            Some("url") if !gpt_image => json!({"url": format!("https://mock.invalid/images/{i}.png")}),
            _ => json!({"b64_json": PNG_BASE64, "revised_prompt": prompt}),
        })
        .collect();
    let mut body = json!({"created": now(), "data": data});
    if gpt_image {
        let input = prompt.split_whitespace().count() as u64;
        body["usage"] = json!({"input_tokens": input, "output_tokens": 272, "total_tokens": input + 272,
                               "input_tokens_details": {"text_tokens": input, "image_tokens": 0}});
    }
    Json(body).into_response()
}

pub(crate) async fn images_generations(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match accept_json(&state, &uri, &headers, &body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let Some(prompt) = body["prompt"].as_str() else { return missing("prompt") };
    images(
        body["model"].as_str().unwrap_or(""),
        prompt,
        body["n"].as_u64().unwrap_or(1),
        body["response_format"].as_str(),
    )
}

pub(crate) async fn images_edits(State(state): State<Arc<MockState>>, request: axum::extract::Request) -> Response {
    let form = match accept_form(&state, request).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if !form.files.iter().any(|(f, _, _)| f == "image" || f == "image[]") {
        return missing("image");
    }
    let Some(prompt) = form.get("prompt") else { return missing("prompt") };
    let n = form.get("n").and_then(|n| n.parse().ok()).unwrap_or(1);
    images(form.get("model").unwrap_or(""), prompt, n, form.get("response_format"))
}

pub(crate) async fn speech(State(state): State<Arc<MockState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body = match accept_json(&state, &uri, &headers, &body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let Some(input) = body["input"].as_str() else { return missing("input") };
    if body["voice"].is_null() {
        return missing("voice");
    }
    let model = body["model"].as_str().unwrap_or("");
    let size = param(model, "kb").map_or(4096, |kb| kb as usize * 1024);
    // Deterministic bytes, so a test can check what arrived.
    let audio: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let pieces: Vec<Bytes> = audio.chunks(AUDIO_CHUNK).map(Bytes::copy_from_slice).collect();
    if body["stream_format"] == "sse" {
        let b64 = base64::engine::general_purpose::STANDARD;
        let input_tokens = input.split_whitespace().count();
        let mut events: Vec<Bytes> =
            pieces.iter().map(|p| sse(&json!({"type": "speech.audio.delta", "audio": b64.encode(p)}))).collect();
        events.push(sse(&json!({"type": "speech.audio.done", "usage": {"input_tokens": input_tokens,
            "output_tokens": pieces.len(), "total_tokens": input_tokens + pieces.len()}})));
        return streamed("text/event-stream", events);
    }
    let content_type = match body["response_format"].as_str().unwrap_or("mp3") {
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        _ => "audio/mpeg",
    };
    streamed(content_type, pieces)
}

fn sse(event: &Value) -> Bytes {
    Bytes::from(format!("data: {event}\n\n"))
}

/// `pieces` sent one at a time, each its own frame.
fn streamed(content_type: &'static str, pieces: Vec<Bytes>) -> Response {
    let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::convert::Infallible>));
    ([("content-type", content_type)], Body::from_stream(stream)).into_response()
}

pub(crate) async fn transcriptions(State(state): State<Arc<MockState>>, request: axum::extract::Request) -> Response {
    transcribe(&state, request, "transcribe").await
}

pub(crate) async fn translations(State(state): State<Arc<MockState>>, request: axum::extract::Request) -> Response {
    transcribe(&state, request, "translate").await
}

async fn transcribe(state: &MockState, request: axum::extract::Request, task: &str) -> Response {
    let form = match accept_form(state, request).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let Some((_, filename, bytes)) = form.files.iter().find(|(f, _, _)| f == "file") else { return missing("file") };
    let model = form.get("model").unwrap_or("");
    let text = format!("transcribed {bytes} bytes of {filename}");
    let words = text.split_whitespace().count();
    // `gpt-4o-transcribe` and its kin bill tokens; `whisper-1` bills seconds.
    let usage = if model.contains("gpt-4o") {
        let audio_tokens = bytes / 1000 + 1;
        json!({"type": "tokens", "input_tokens": audio_tokens, "output_tokens": words,
               "total_tokens": audio_tokens + words,
               "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens}})
    } else {
        json!({"type": "duration", "seconds": 1})
    };
    if form.get("stream") == Some("true") && task == "transcribe" {
        let mut events: Vec<Bytes> =
            text.split_inclusive(' ').map(|w| sse(&json!({"type": "transcript.text.delta", "delta": w}))).collect();
        events.push(sse(&json!({"type": "transcript.text.done", "text": text, "usage": usage})));
        return streamed("text/event-stream", events);
    }
    let text_plain = |body: String| ([("content-type", "text/plain; charset=utf-8")], body).into_response();
    match form.get("response_format").unwrap_or("json") {
        "text" => text_plain(format!("{text}\n")),
        "srt" => text_plain(format!("1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n")),
        "vtt" => text_plain(format!("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n")),
        "verbose_json" => Json(json!({
            "task": task, "language": "english", "duration": 1.0, "text": text,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.0, "text": text, "tokens": [],
                          "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}],
            "usage": usage,
        }))
        .into_response(),
        _ => Json(json!({"text": text, "usage": usage})).into_response(),
    }
}

/// The categories a moderation result names, each with its score.
const CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

pub(crate) async fn moderations(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match accept_json(&state, &uri, &headers, &body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().or_else(|| i["text"].as_str()).unwrap_or("").to_string()).collect()
        }
        _ => return missing("input"),
    };
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let flagged = text.contains("flag-me");
            let hit = |c: &str| flagged && c == "violence";
            let categories: serde_json::Map<String, Value> =
                CATEGORIES.iter().map(|c| ((*c).to_string(), json!(hit(c)))).collect();
            let scores: serde_json::Map<String, Value> =
                CATEGORIES.iter().map(|c| ((*c).to_string(), json!(if hit(c) { 0.97 } else { 0.0001 }))).collect();
            let applied: serde_json::Map<String, Value> =
                CATEGORIES.iter().map(|c| ((*c).to_string(), json!(["text"]))).collect();
            json!({"flagged": flagged, "categories": categories, "category_scores": scores,
                   "category_applied_input_types": applied})
        })
        .collect();
    let model = body["model"].as_str().unwrap_or("omni-moderation-latest");
    Json(json!({"id": format!("modr-{}", now()), "model": model, "results": results})).into_response()
}
