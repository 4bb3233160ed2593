//! The faults a request suffers before it is answered (a model taken down, `delay-`, `flaky-`,
//! `flaky429-`, `fail-`, `ctx-overflow`, `not-json`), the same on every protocol, each error in that
//! protocol's own shape.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::script::param;
use crate::{MockState, anthropic, gemini, glm, openai};

/// What `flaky429-` asks the client to wait, in seconds: short, because tests wait it out.
const FLAKY_RETRY_AFTER_SECS: u64 = 1;

/// The wire protocols the mock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    OpenAi,
    Anthropic,
    Gemini,
    Glm,
}

impl Protocol {
    /// An error response in this protocol's shape.
    pub fn error(self, status: u16, message: &str) -> Response {
        match self {
            Protocol::OpenAi => openai::error(status, message),
            Protocol::Anthropic => anthropic::error(status, message),
            Protocol::Gemini => gemini::error(status, message),
            Protocol::Glm => glm::error(status, message),
        }
    }

    /// A 429 asking the client to wait `secs` seconds, in the headers (and, for Gemini, in the
    /// body's `RetryInfo`) as each provider says it.
    pub fn rate_limited(self, message: &str, secs: u64) -> Response {
        let mut resp = match self {
            Protocol::Gemini => gemini::rate_limited(message, secs),
            _ => self.error(429, message),
        };
        let headers = resp.headers_mut();
        headers.insert("retry-after", HeaderValue::from(secs));
        if self == Protocol::OpenAi {
            // Azure OpenAI adds the milliseconds; the OpenAI and Anthropic SDKs prefer them.
            headers.insert("retry-after-ms", HeaderValue::from(secs * 1000));
        }
        resp
    }

    /// The 400 each provider answers to a prompt longer than the model's context window.
    pub fn context_overflow(self) -> Response {
        match self {
            Protocol::OpenAi => openai::context_length_exceeded(),
            Protocol::Anthropic => anthropic::error(400, "prompt is too long: 210000 tokens > 200000 maximum"),
            Protocol::Gemini => gemini::error(
                400,
                "The input token count (1100000) exceeds the maximum number of tokens allowed (1048576).",
            ),
            Protocol::Glm => glm::prompt_too_long(),
        }
    }

    /// The message each provider gives for a refused key.
    fn refused_key(self, headers: &HeaderMap) -> String {
        match self {
            Protocol::OpenAi => {
                // Like OpenAI, quote the key that was refused: the gateway must not pass this on.
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                format!("Incorrect API key provided: {}", auth.trim_start_matches("Bearer "))
            }
            Protocol::Anthropic => "invalid x-api-key".into(),
            Protocol::Gemini => gemini::UNAUTHENTICATED.into(),
            Protocol::Glm => glm::message(glm::AUTH_FAILED).into(),
        }
    }
}

/// Counts the request, then waits and fails as the model (its name, or its being down) asks;
/// `Err` is the response to send instead of the answer. Called once per request that passed the
/// key check.
pub(crate) async fn apply(
    state: &MockState,
    protocol: Protocol,
    model: &str,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let nth = if model.is_empty() { 0 } else { state.count_request(model) };
    if state.is_down(model) {
        return Err(protocol.error(503, &format!("mock model {model} is down")));
    }
    if let Some(ms) = param(model, "delay") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(n) = param(model, "flaky").filter(|n| nth <= *n) {
        return Err(protocol.error(500, &format!("mock flaky failure {nth} of {n}")));
    }
    if let Some(n) = param(model, "flaky429").filter(|n| nth <= *n) {
        return Err(protocol.rate_limited(&format!("mock rate limit {nth} of {n}"), FLAKY_RETRY_AFTER_SECS));
    }
    match param(model, "fail") {
        Some(401) => return Err(protocol.error(401, &protocol.refused_key(headers))),
        Some(status) => return Err(protocol.error(status as u16, &format!("mock failure {status}"))),
        None => {}
    }
    if model.contains("ctx-overflow") {
        return Err(protocol.context_overflow());
    }
    if model.contains("not-json") {
        return Err((StatusCode::OK, "this is not json").into_response());
    }
    Ok(())
}

/// `status` as a status code (500 for nonsense).
pub(crate) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `retry-after: 7` on a 429, as the providers send one.
pub(crate) fn with_retry_after(status: u16, mut resp: Response) -> Response {
    if status == 429 {
        resp.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("7"));
    }
    resp
}
