//! The faults a request suffers before it is answered (`delay-`, `fail-`, `not-json`), the same on
//! every protocol, each error in that protocol's own shape.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::script::param;
use crate::{anthropic, gemini, glm, openai};

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

/// Waits and fails as the model name asks; `Err` is the response to send instead of the answer.
pub(crate) async fn apply(protocol: Protocol, model: &str, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(ms) = param(model, "delay") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match param(model, "fail") {
        Some(401) => return Err(protocol.error(401, &protocol.refused_key(headers))),
        Some(status) => return Err(protocol.error(status as u16, &format!("mock failure {status}"))),
        None => {}
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
