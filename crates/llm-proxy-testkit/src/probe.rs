//! `GET /v1/models` and `GET /v1/models/{model}`, which OpenAI and Anthropic both serve: the cheap
//! calls a gateway's health checker makes. A request carrying Anthropic's headers (`x-api-key` or
//! `anthropic-version`) is answered, and checked, as Anthropic; any other as OpenAI. Gemini's
//! probe, on its own path, is in `gemini`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::{MockState, anthropic, openai};

fn is_anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key("x-api-key") || headers.contains_key("anthropic-version")
}

pub(crate) async fn list(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    if is_anthropic(&headers) { anthropic::models(&state, &headers) } else { openai::models() }
}

pub(crate) async fn retrieve(
    State(state): State<Arc<MockState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Response {
    if is_anthropic(&headers) { anthropic::model(&state, &headers, &model) } else { openai::model(&state, &model) }
}
