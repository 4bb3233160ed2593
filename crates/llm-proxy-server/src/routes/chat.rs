//! `POST /v1/chat/completions`.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::ChatInput;
use llm_proxy_protocol::openai::ChatCompletionRequest;
use std::sync::Arc;

use crate::app::RequestId;
use crate::app::{AppState, Live};
use crate::auth::Principal;
use crate::body::read_limited;
use crate::deliver::ClientSide;
use crate::dispatch::{Resolution, resolve};
use crate::error::ApiError;
use crate::meter::RequestMeter;
use crate::routes::chat_call::{Sizing, serve_chat};
use crate::routes::{authenticate, check_max_tokens, decode_body};

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "chat.completions");
    // Taking the request whole avoids the header-map copy a `HeaderMap` extractor makes.
    let (parts, body) = request.into_parts();
    let (principal, live, resolution, request, body_bytes) = match prepare(&state, &parts, body, &mut meter).await {
        Ok(p) => p,
        Err(e) => {
            meter.fail(&e);
            return e.into_response();
        }
    };
    let client = ClientSide::OpenAi { include_usage: request.wants_stream_usage() };
    let sizing = Sizing { body_bytes, max_tokens: request.max_completion_tokens.or(request.max_tokens) };
    serve_chat(&state, meter, &principal, live, resolution, ChatInput::OpenAi(request), &parts.headers, client, sizing)
        .await
}

async fn prepare(
    state: &AppState,
    parts: &Parts,
    body: Body,
    meter: &mut RequestMeter,
) -> Result<(Principal, Arc<Live>, Resolution, ChatCompletionRequest, usize), ApiError> {
    let principal = authenticate(state, parts, meter)?;
    let bytes = state.unless_cut(read_limited(&parts.headers, body, state.max_body_bytes)).await?;
    let request: ChatCompletionRequest = decode_body(&bytes).await?;
    meter.keep_body(bytes.clone());
    meter.set_model(&request.model, request.is_stream());
    check_max_tokens(state, request.max_tokens, "max_tokens")?;
    check_max_tokens(state, request.max_completion_tokens, "max_completion_tokens")?;
    if request.messages.is_empty() {
        return Err(
            ApiError::bad_request("`messages` must contain at least one message.").with_param(Some("messages".into()))
        );
    }
    let (live, resolution) = resolve(state, &principal, &request.model, meter)?;
    Ok((principal, live, resolution, request, bytes.len()))
}
