//! `POST /v1/chat/completions`.

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::Response;
use llm_proxy_core::provider::ChatInput;
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::openai::ChatCompletionRequest;

use crate::app::{AppState, RequestId, Shared};
use crate::deliver::ClientSide;
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::routes::chat_call::serve_chat;
use crate::routes::check_max_tokens;

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    // Taking the request whole avoids the header-map copy a `HeaderMap` extractor makes.
    let (parts, body) = request.into_parts();
    let accepted = Exchange::accept(&state, &id, "chat.completions", WireProtocol::OpenAi, &parts, body).await;
    let (mut x, request): (_, ChatCompletionRequest) = match accepted {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    x.set_model(&request.model, request.is_stream());
    if let Err(e) = check(&state, &request) {
        return x.fail(e);
    }
    let client = ClientSide::OpenAi { include_usage: request.wants_stream_usage() };
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    // Boxed: the pipeline's future is big, and every layer above moves the handler's future.
    Box::pin(serve_chat(x, ChatInput::OpenAi(request), &parts.headers, client, max_tokens)).await
}

fn check(state: &Shared, request: &ChatCompletionRequest) -> Result<(), ApiError> {
    check_max_tokens(state, request.max_tokens, "max_tokens")?;
    check_max_tokens(state, request.max_completion_tokens, "max_completion_tokens")?;
    if request.messages.is_empty() {
        return Err(
            ApiError::bad_request("`messages` must contain at least one message.").with_param(Some("messages".into()))
        );
    }
    Ok(())
}
