//! A mock upstream that speaks the OpenAI wire protocol exactly (chat completions, streaming with
//! `[DONE]` and the `include_usage` chunk, embeddings, models, OpenAI error bodies), with faults
//! chosen by the model name so concurrent tests never interfere:
//!
//! | model contains | behaviour |
//! |---|---|
//! | `fail-<status>` | answers `<status>` with an OpenAI error body (`retry-after: 7` on 429; 401 quotes the key, as OpenAI does) |
//! | `delay-<ms>` | waits before answering |
//! | `slow-<ms>` | waits between stream chunks |
//! | `think-<ms>` | sends the stream's headers at once, then waits before the first chunk |
//! | `chunks-<n>` | streams `n` content chunks (default 3) |
//! | `pad-<n>` | pads each content chunk with `n` bytes (big streams, to fill buffers behind a slow reader) |
//! | `cut-after-<n>` | streams `n` chunks, then breaks the connection (pair it with `slow-` so the chunks are flushed first) |
//! | `no-usage` | never reports usage |
//! | `not-json` | answers 200 with a body that is not JSON |
//! | `error-after-<n>` | streams `n` chunks, then an in-band `data: {"error": ...}` event, then ends |
//! | `mistral-style` | like Mistral: 422 for any `stream_options`, usage in the last content chunk of every stream |
//!
//! Every request is recorded (`/_mock/requests`) and streams the gateway dropped before the end are
//! counted (`/_mock/stats`), so tests can prove a client disconnect cancelled the upstream call.
//! Dev-only: never a dependency of the binary.

// The mock runs until its test's runtime ends; there is no shutdown to wait for.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// One request as the mock received it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct MockState {
    requests: Mutex<Vec<Recorded>>,
    /// Streams started.
    pub streams_started: AtomicU64,
    /// Streams whose body was dropped before the last chunk was sent.
    pub streams_cancelled: AtomicU64,
    /// Streams that sent everything.
    pub streams_completed: AtomicU64,
    /// Stream events handed to the connection so far, across all streams: with a slow reader
    /// downstream, this stalls once the buffers between are full.
    pub events_sent: AtomicU64,
}

impl MockState {
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, path: &str, headers: &HeaderMap, body: &Value) {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
        if let Ok(mut r) = self.requests.lock() {
            r.push(Recorded { path: path.into(), authorization, body: body.clone() });
        }
    }
}

/// A running mock; the server stops when the tokio runtime does.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

impl MockUpstream {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::default());
        let app = router(state.clone());
        // Like a real provider's edge, no Nagle delay on small stream writes: without this every
        // streamed answer from the mock stalls ~40 ms on delayed ACKs and hides the gateway's cost.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state })
    }

    /// The base URL an OpenAI SDK (or llm-proxy's `base_url`) takes.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/_mock/requests", get(requests))
        .route("/_mock/stats", get(stats))
        .with_state(state)
}

/// The number after `key-` in the model name, if any.
fn param(model: &str, key: &str) -> Option<u64> {
    let start = model.find(&format!("{key}-"))? + key.len() + 1;
    let digits: String = model[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = if status == 429 {
        "rate_limit_exceeded"
    } else if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let mut resp =
        (code, Json(json!({"error": {"message": message, "type": kind, "param": null, "code": kind}}))).into_response();
    if status == 429 {
        resp.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("7"));
    }
    resp
}

/// Common fault handling; `Err` is the response to send instead of the normal one.
async fn faults(model: &str, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(ms) = param(model, "delay") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if param(model, "fail") == Some(401) {
        // Like OpenAI, quote the key that was refused: the gateway must not pass this on.
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        return Err(error(401, &format!("Incorrect API key provided: {}", auth.trim_start_matches("Bearer "))));
    }
    if let Some(status) = param(model, "fail") {
        return Err(error(status as u16, &format!("mock failure {status}")));
    }
    if model.contains("not-json") {
        return Err((StatusCode::OK, "this is not json").into_response());
    }
    Ok(())
}

fn words(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(items) => items.iter().map(words).sum(),
        Value::Object(m) => m.get("text").or_else(|| m.get("content")).map(words).unwrap_or(0),
        _ => 0,
    }
}

fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// Parses and records a request, then applies the faults its model asks for; `Err` is the
/// response to send instead of the normal one.
async fn accept(state: &MockState, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<(Value, String), Response> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| error(400, &format!("mock could not parse body: {e}")))?;
    state.record(path, headers, &body);
    let model = body["model"].as_str().unwrap_or("").to_string();
    faults(&model, headers).await?;
    Ok((body, model))
}

async fn chat(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (body, model) = match accept(&state, "/v1/chat/completions", &headers, &body).await {
        Ok(accepted) => accepted,
        Err(resp) => return resp,
    };
    let mistral = model.contains("mistral-style");
    if mistral && body.get("stream_options").is_some() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"],
                "msg": "Extra inputs are not permitted"}]}, "type": "invalid_request_error", "param": null, "code": null})),
        )
            .into_response();
    }
    let prompt_tokens = body["messages"].as_array().map(|m| m.iter().map(words).sum()).unwrap_or(0);
    let n_chunks = param(&model, "chunks").unwrap_or(3);
    let pad = "x".repeat(param(&model, "pad").unwrap_or(0) as usize);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": n_chunks, "total_tokens": prompt_tokens + n_chunks});
    let with_usage = !model.contains("no-usage");
    if body["stream"] != true {
        let mut resp = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": format!("echo: {}", last_user_text(&body)), "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
        });
        if with_usage {
            resp["usage"] = usage;
        }
        return Json(resp).into_response();
    }
    let include_usage = with_usage && body["stream_options"]["include_usage"] == true;
    let slow = Duration::from_millis(param(&model, "slow").unwrap_or(0));
    let think = Duration::from_millis(param(&model, "think").unwrap_or(0));
    let cut_after = param(&model, "cut-after");
    // Events are rendered one at a time as they are sent, so a huge stream starts at once.
    let plan = StreamPlan {
        model: model.clone(),
        pad,
        n_chunks,
        mistral,
        include_usage,
        usage,
        error_after: param(&model, "error-after"),
    };
    state.streams_started.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard { state: state.clone(), done: false };
    let stream = futures_util::stream::unfold((0u64, plan, guard), move |(i, plan, mut guard)| async move {
        let event = plan.render(i)?;
        if i == 0 && !think.is_zero() {
            tokio::time::sleep(think).await;
        }
        if i > 0 && !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        if cut_after.is_some_and(|n| i >= n) {
            return Some((Err(std::io::Error::other("mock cut the stream")), (u64::MAX, plan, guard)));
        }
        if event == "[DONE]" {
            guard.done = true;
        }
        guard.state.events_sent.fetch_add(1, Ordering::SeqCst);
        Some((Ok::<_, std::io::Error>(Bytes::from(format!("data: {event}\n\n"))), (i + 1, plan, guard)))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(500, "mock response build failed"))
}

/// The events of one mock stream: `n_chunks` content chunks, the finish chunk, the usage chunk
/// when asked for, then `[DONE]`.
struct StreamPlan {
    model: String,
    pad: String,
    n_chunks: u64,
    /// Mistral puts usage in the finish chunk, unasked.
    mistral: bool,
    include_usage: bool,
    usage: Value,
    /// Report an error in-band (`data: {"error": ...}`) after this many content chunks, and stop.
    error_after: Option<u64>,
}

impl StreamPlan {
    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": self.model,
               "system_fingerprint": "fp_mock", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    }

    fn render(&self, i: u64) -> Option<String> {
        if let Some(after) = self.error_after {
            if i == after {
                return Some(
                    json!({"error": {"message": "mock overloaded mid-stream", "type": "server_error"}}).to_string(),
                );
            }
            if i > after {
                return None;
            }
        }
        let n = self.n_chunks;
        let event = if i < n {
            let delta = if i == 0 {
                json!({"role": "assistant", "content": format!("Hello{}", self.pad), "refusal": null})
            } else {
                json!({"content": format!(" w{i}{}", self.pad)})
            };
            self.chunk(delta, Value::Null).to_string()
        } else if i == n {
            let mut last = self.chunk(json!({}), json!("stop"));
            if self.mistral {
                last["usage"] = self.usage.clone();
            }
            last.to_string()
        } else if i == n + 1 && self.include_usage {
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": self.model,
                   "system_fingerprint": "fp_mock", "choices": [], "usage": self.usage})
            .to_string()
        } else if i == n + 1 + u64::from(self.include_usage) {
            "[DONE]".to_string()
        } else {
            return None;
        };
        Some(event)
    }
}

struct StreamGuard {
    state: Arc<MockState>,
    done: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.done { &self.state.streams_completed } else { &self.state.streams_cancelled };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

async fn embeddings(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (body, model) = match accept(&state, "/v1/embeddings", &headers, &body).await {
        Ok(accepted) => accepted,
        Err(resp) => return resp,
    };
    let inputs: Vec<Value> = match &body["input"] {
        Value::Array(items) if items.first().is_some_and(|v| !v.is_number()) => items.clone(),
        other => vec![other.clone()],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let seed = words(input) as f64 + i as f64;
            let v: Vec<f64> = (0..8).map(|d| ((seed + d as f64) * 0.1).sin()).collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(words).sum();
    Json(json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})).into_response()
}

async fn models() -> Response {
    Json(json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 1_700_000_000, "owned_by": "mock"}]}))
        .into_response()
}

async fn requests(State(state): State<Arc<MockState>>) -> Response {
    Json(state.requests()).into_response()
}

async fn stats(State(state): State<Arc<MockState>>) -> Response {
    Json(json!({
        "streams_started": state.streams_started.load(Ordering::SeqCst),
        "streams_cancelled": state.streams_cancelled.load(Ordering::SeqCst),
        "streams_completed": state.streams_completed.load(Ordering::SeqCst),
        "events_sent": state.events_sent.load(Ordering::SeqCst),
        "requests": state.requests().len(),
    }))
    .into_response()
}
