//! A mock upstream that speaks four providers' wire protocols (OpenAI's in two APIs) exactly as
//! their API references describe them, on one port:
//!
//! | protocol | paths | base URL an SDK takes | auth |
//! |---|---|---|---|
//! | OpenAI | `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}` | `http://ADDR/v1` | none checked |
//! | OpenAI images, audio, moderations | `POST /v1/images/generations`, `/v1/images/edits`, `/v1/audio/speech`, `/v1/audio/transcriptions`, `/v1/audio/translations`, `/v1/moderations` ([`media`]: a PNG, audio bytes sized by the model name, `transcribed <n> bytes of <file>`) | `http://ADDR/v1` | none checked |
//! | OpenAI Files and Batches | `POST/GET /v1/files`, `GET/DELETE /v1/files/{id}`, `GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel` ([`files`]: in memory; a batch completes when first asked for, answering each chat request `batch: <last user text>`) | `http://ADDR/v1` | none checked |
//! | OpenAI Completions (legacy) | `POST /v1/completions` (`text_completion` object, or its chunks and `[DONE]`); a field the API does not document is refused | `http://ADDR/v1` | none checked |
//! | OpenAI Responses | `POST /v1/responses` (object, or `event:`-named SSE numbered by `sequence_number`, no `[DONE]`); answers are remembered (the last 1024) so `previous_response_id` continues them, and an unknown one is 404 | `http://ADDR/v1` | none checked |
//! | Anthropic Messages | `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models`, `GET /v1/models/{model}` | `http://ADDR` | `x-api-key` + `anthropic-version` `2023-06-01` or `2026-10-21` (which refuses `temperature`, `top_p`, `top_k`); beta-only fields need their `anthropic-beta` |
//! | Gemini v1beta | `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`, `:countTokens`, `:embedContent`, `:batchEmbedContents`; `GET /v1beta/models/{model}` | `http://ADDR` | `x-goog-api-key` or `?key=` |
//! | ZhipuAI GLM v4 | `POST /api/paas/v4/chat/completions`, `POST /api/paas/v4/embeddings` | `http://ADDR/api/paas/v4` | `Bearer` JWT signed from `id.secret` ([`jwt`]) |
//!
//! OpenAI and Anthropic share `GET /v1/models[/{model}]`: a request with `x-api-key` or
//! `anthropic-version` is answered as Anthropic (and checked as such), any other as OpenAI.
//!
//! Keys come from [`MockConfig`]: by default any non-empty Anthropic or Gemini key is accepted
//! and GLM tokens must be signed with [`DEFAULT_GLM_KEY`]. Requests are checked as each provider
//! checks them where a translation bug would show (roles, content blocks, tool call / result
//! pairing, thinking budget…; Responses: item types, roles and parts, flat function tools,
//! `function_call` / `function_call_output` pairing across the stored conversation), each problem
//! answered in the provider's own error shape.
//!
//! What the mock answers is chosen by the model name (so concurrent tests never interfere), the
//! same on every protocol, each in its own encoding:
//!
//! | model contains | behaviour |
//! |---|---|
//! | `fail-<status>` | answers `<status>` with the protocol's error body (`retry-after: 7` on 429; OpenAI's 401 quotes the key, as OpenAI does) |
//! | `flaky-<n>` | the first `n` requests for this exact model name answer 500 (the protocol's error body), later ones are answered normally; counted per model name, so give each test its own (`mock-flaky-2-t7`) |
//! | `flaky429-<n>` | likewise, but 429 with `retry-after: 1` (Gemini: and `RetryInfo` `1s`; OpenAI protocol: and `retry-after-ms: 1000`, as Azure OpenAI sends and the OpenAI and Anthropic SDKs honour) |
//! | `ctx-overflow` | 400, each protocol's context-window error: OpenAI `code: context_length_exceeded` ("This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens…"), Anthropic `invalid_request_error` "prompt is too long: 210000 tokens > 200000 maximum", Gemini `INVALID_ARGUMENT` "The input token count (1100000) exceeds the maximum number of tokens allowed (1048576).", GLM code `1261` "Prompt exceeds max length" |
//! | `delay-<ms>` | waits before answering |
//! | `slow-<ms>` | waits between stream frames |
//! | `think-<ms>` | sends the stream's headers at once, then waits before the first frame |
//! | `chunks-<n>` | streams `n` text chunks (default 3: `Hello`, ` w1`, ` w2`); a non-streamed answer is `echo: <last user text>` |
//! | `pad-<n>` | pads each text chunk with `n` bytes (big streams, to fill buffers behind a slow reader) |
//! | `cut-after-<n>` | streams `n` steps (a step is a chunk of the answer, then each closing event), then breaks the connection (pair it with `slow-` so they are flushed first) |
//! | `no-usage` | never reports usage |
//! | `not-json` | answers 200 with a body that is not JSON |
//! | `error-after-<n>` | streams `n` steps, then the protocol's in-band error (OpenAI `data: {"error": …}`, Responses `event: response.failed` with `error.code` `server_error`, Anthropic `event: error`, Gemini a chunk with `error`), then ends |
//! | `mistral-style` | OpenAI Chat Completions only, like Mistral: 422 for any `stream_options`, usage in the finish chunk of every stream |
//! | `tool` | one call to the request's first tool (none: 400; Responses: first `function` tool), arguments exactly [`TOOL_ARGUMENTS`], streamed in small fragments (Gemini: whole); stop `tool_calls` / `tool_use` / `STOP` (Responses: a `function_call` item, `completed`) |
//! | `agent` | an agent's turn: when the conversation ends with tool results, the text `The tool said: <the last result>`; otherwise one call to the first shell tool of the request it knows (Responses: the results are `function_call_output` items, in the input or the stored conversation), with fixed arguments that print [`AGENT_MARKER`] (Claude Code's `Bash`: `{"command":"echo mock-agent-ok",…}`; Codex CLI's `shell`, `shell_command` or `exec_command`); none of them: 400 |
//! | `tools-2` | two parallel calls to the first tool, the second with [`SECOND_TOOL_ARGUMENTS`] |
//! | `reason` | reasoning, then the text: OpenAI `reasoning_content` (as DeepSeek), Responses a `reasoning` item with a summary (`encrypted_content` when `include` asks), Anthropic a signed thinking block, Gemini `thought: true` parts; reasoning tokens in usage where the protocol has a field |
//! | `cache` | 1000 prompt tokens read from cache and 200 written: OpenAI `cached_tokens` (Responses: `input_tokens_details.cached_tokens` and `cache_write_tokens`), Anthropic `cache_read_input_tokens`/`cache_creation_input_tokens` (outside `input_tokens`), Gemini `cachedContentTokenCount` |
//! | `max-tokens` | stops for length: `length` / `max_tokens` / `MAX_TOKENS` / Responses `incomplete` with `incomplete_details.reason` `max_output_tokens` |
//! | `refuse` | stops for the content filter: `content_filter` / `refusal` / `SAFETY` / Responses `incomplete`, reason `content_filter` |
//! | `echo` | the text is a compact JSON summary of the request: `{"system","messages","images","tools","tool_results","max_tokens","last_user_text"}` (see `summary.rs`) |
//!
//! A model can also be taken down at run time ([`MockState::set_down`], or `POST /_mock/down/{model}`
//! and `POST /_mock/up/{model}`): while down, every request naming it (chat, embeddings, token
//! counts) answers 503 in the protocol's error shape at once, before any other behaviour, and so
//! does its health probe, `GET …/models/{model}` (otherwise 200; GLM has no models endpoint).
//!
//! Embeddings (OpenAI, GLM, Gemini `embedContent` and `batchEmbedContents`) are a deterministic
//! bag of words ([`embedding`]): lower-cased words, split on anything not alphanumeric, a few
//! stopwords dropped, each word hashed (FNV-1a) into one of 256 dimensions, the sum L2-normalised.
//! Paraphrases sharing their content words are close ("What's the weather in Paris?" and "Tell
//! me the weather forecast for Paris": cosine 0.71) and unrelated texts are not ("Write a python
//! function to sort a list": 0), as semantic routing needs.
//!
//! Usage is deterministic: prompt tokens are the words of the request's texts (plus the cache
//! figures; Responses: `instructions` and this request's input, not the stored conversation),
//! completion tokens one per streamed unit (text chunk, reasoning chunk, tool call start or
//! argument fragment), reported alike streamed or not.
//!
//! Every request is recorded (`/_mock/requests`: path, query, `authorization`, body and the
//! headers that matter); streams the gateway dropped before the end are counted, and so are the
//! distinct GLM tokens seen (`/_mock/stats`), so tests can prove a client disconnect cancelled the
//! upstream call and that the gateway reuses its GLM token. `/_mock/stats` also counts, per model
//! name, the requests that passed the key check (`requests_by_model`, [`MockState::requests_for`]:
//! how a router split the traffic) and the health probes (`probes`, [`MockState::probes_for`]);
//! probes are not recorded as requests, so a gateway's health checker does not disturb tests that
//! read `/_mock/requests`. Every chat answer names the model that served it, as the request
//! wrote it: OpenAI and GLM `model` (every chunk), Responses `model` (the response), Anthropic `model` (the message, or
//! `message_start`), Gemini `modelVersion` (every chunk). Dev-only: never a dependency of the
//! binary.

#![expect(
    clippy::disallowed_methods,
    reason = "the mock runs until its test's runtime ends; there is no shutdown to wait for"
)]

mod anthropic;
mod completions;
pub mod embedding;
mod faults;
pub mod files;
mod gemini;
mod glm;
pub mod jwt;
pub mod media;
mod openai;
mod probe;
mod record;
mod refusal;
mod response_store;
mod responses;
mod script;
mod stream;
mod summary;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub use anthropic::ANTHROPIC_VERSION;
pub use record::{Recorded, RecordedHeaders};
pub use script::{AGENT_MARKER, SECOND_TOOL_ARGUMENTS, TOOL_ARGUMENTS};

/// The GLM API key (`id.secret`) the mock expects tokens to be signed with, unless configured.
pub const DEFAULT_GLM_KEY: &str = "mockid.mocksecret";

/// The keys the mock accepts.
#[derive(Clone)]
pub struct MockConfig {
    /// The `x-api-key` Anthropic requests must carry; `None` accepts any non-empty key.
    pub anthropic_key: Option<String>,
    /// The key Gemini requests must carry (`x-goog-api-key` or `?key=`); `None` accepts any
    /// non-empty key.
    pub gemini_key: Option<String>,
    /// The GLM API key, `id.secret`: tokens must name `id` and be signed with `secret`.
    pub glm_key: String,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig { anthropic_key: None, gemini_key: None, glm_key: DEFAULT_GLM_KEY.to_string() }
    }
}

impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |k: &Option<String>| if k.is_some() { "<set>" } else { "<any>" };
        f.debug_struct("MockConfig")
            .field("anthropic_key", &set(&self.anthropic_key))
            .field("gemini_key", &set(&self.gemini_key))
            .field("glm_key", &self.glm_key.split_once('.').map(|(id, _)| format!("{id}.<secret>")))
            .finish()
    }
}

#[derive(Default)]
pub struct MockState {
    requests: Mutex<Vec<Recorded>>,
    /// Every distinct bearer token a GLM route received.
    glm_tokens: Mutex<HashSet<String>>,
    /// Requests per model name that passed the key check; `flaky-` counts these.
    requests_by_model: Mutex<BTreeMap<String, u64>>,
    /// Health probes (`GET …/models/{model}`) per model name.
    probes: Mutex<BTreeMap<String, u64>>,
    /// Models taken down: everything for them answers 503.
    down: Mutex<HashSet<String>>,
    /// The Responses API answers given, for `previous_response_id`.
    responses: response_store::ResponseStore,
    /// Files (`/v1/files`) and batches (`/v1/batches`, with their requests).
    files: Mutex<HashMap<String, files::MockFile>>,
    batches: Mutex<HashMap<String, (Value, Vec<Value>)>>,
    config: MockConfig,
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
    pub fn with_config(config: MockConfig) -> Self {
        MockState { config, ..MockState::default() }
    }

    pub fn config(&self) -> &MockConfig {
        &self.config
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many distinct tokens the GLM routes have received: a gateway that caches its token
    /// sends one until it nears expiry.
    pub fn glm_tokens_seen(&self) -> usize {
        self.glm_tokens.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// How many requests for `model` (this exact name) passed the key check so far: chat,
    /// embeddings and token counts alike, failed ones included.
    pub fn requests_for(&self, model: &str) -> u64 {
        self.requests_by_model.lock().ok().and_then(|m| m.get(model).copied()).unwrap_or(0)
    }

    /// How many health probes (`GET …/models/{model}`) asked for `model` so far.
    pub fn probes_for(&self, model: &str) -> u64 {
        self.probes.lock().ok().and_then(|m| m.get(model).copied()).unwrap_or(0)
    }

    /// Takes `model` down (`true`: every request for it, and its probe, answers 503) or brings it
    /// back up.
    pub fn set_down(&self, model: &str, down: bool) {
        if let Ok(mut set) = self.down.lock() {
            if down {
                set.insert(model.to_string());
            } else {
                set.remove(model);
            }
        }
    }

    pub fn is_down(&self, model: &str) -> bool {
        self.down.lock().is_ok_and(|set| set.contains(model))
    }

    /// Counts a request for `model` and returns its number (1 for the first).
    fn count_request(&self, model: &str) -> u64 {
        Self::bump(&self.requests_by_model, model)
    }

    fn count_probe(&self, model: &str) {
        Self::bump(&self.probes, model);
    }

    fn bump(counts: &Mutex<BTreeMap<String, u64>>, model: &str) -> u64 {
        let Ok(mut counts) = counts.lock() else {
            return 0;
        };
        let n = counts.entry(model.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, files::MockFile>> {
        self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn batches(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Value, Vec<Value>)>> {
        self.batches.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, recorded: Recorded) {
        if let Ok(mut r) = self.requests.lock() {
            r.push(recorded);
        }
    }

    fn saw_glm_token(&self, token: &str) {
        if let Ok(mut seen) = self.glm_tokens.lock()
            && !seen.contains(token)
        {
            seen.insert(token.to_string());
        }
    }
}

/// A running mock; the server stops when the tokio runtime does.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

impl MockUpstream {
    /// Starts on `127.0.0.1:0` with the default [`MockConfig`].
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts on `127.0.0.1:0` with `config`.
    pub async fn start_with(config: MockConfig) -> std::io::Result<Self> {
        Self::start_on_with("127.0.0.1:0", config).await
    }

    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        Self::start_on_with(addr, MockConfig::default()).await
    }

    pub async fn start_on_with(addr: &str, config: MockConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::with_config(config));
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

    /// The base URL an Anthropic SDK takes (the bare host).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL a Gemini SDK takes (the bare host).
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL a ZhipuAI SDK takes (with the version path).
    pub fn glm_base_url(&self) -> String {
        format!("http://{}/api/paas/v4", self.addr)
    }
}

/// Largest request body the mock reads.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024 * 1024;

pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/responses", post(responses::create))
        .route("/v1/completions", post(completions::create))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/images/generations", post(media::images_generations))
        .route("/v1/images/edits", post(media::images_edits))
        .route("/v1/audio/speech", post(media::speech))
        .route("/v1/audio/transcriptions", post(media::transcriptions))
        .route("/v1/audio/translations", post(media::translations))
        .route("/v1/moderations", post(media::moderations))
        .route("/v1/files", post(files::upload))
        .route("/v1/files/{id}", get(files::retrieve).delete(files::delete))
        .route("/v1/files/{id}/content", get(files::content))
        .route("/v1/batches", post(files::create_batch))
        .route("/v1/batches/{id}", get(files::retrieve_batch))
        .route("/v1/batches/{id}/cancel", post(files::cancel_batch))
        .route("/v1/models", get(probe::list))
        .route("/v1/models/{*model}", get(probe::retrieve))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models/{target}", post(gemini::dispatch).get(gemini::model))
        .route("/api/paas/v4/chat/completions", post(glm::chat))
        .route("/api/paas/v4/embeddings", post(glm::embeddings))
        .route("/_mock/requests", get(requests))
        .route("/_mock/stats", get(stats))
        .route("/_mock/down/{*model}", post(take_down))
        .route("/_mock/up/{*model}", post(bring_up))
        // The gateway forwards bodies up to its own `max_body_bytes` (the memory bench sends tens
        // of MB); axum's default 2 MB limit would answer those with 413 before the handler runs.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

async fn take_down(State(state): State<Arc<MockState>>, Path(model): Path<String>) -> Response {
    state.set_down(&model, true);
    Json(json!({"model": model, "down": true})).into_response()
}

async fn bring_up(State(state): State<Arc<MockState>>, Path(model): Path<String>) -> Response {
    state.set_down(&model, false);
    Json(json!({"model": model, "down": false})).into_response()
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
        "glm_tokens_seen": state.glm_tokens_seen(),
        "requests_by_model": state.requests_by_model.lock().map(|m| m.clone()).unwrap_or_default(),
        "probes": state.probes.lock().map(|m| m.clone()).unwrap_or_default(),
        "down": state.down.lock().map(|d| { let mut d: Vec<String> = d.iter().cloned().collect(); d.sort(); d }).unwrap_or_default(),
    }))
    .into_response()
}
