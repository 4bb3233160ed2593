//! `POST /v1/completions`: OpenAI's legacy Completions API onto any upstream (passed through to
//! OpenAI-protocol providers, translated for chat models of other protocols).

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::Response;
use llm_proxy_core::provider::ChatInput;
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::openai::CompletionRequest;

use crate::app::{AppState, RequestId};
use crate::deliver::ClientSide;
use crate::exchange::Exchange;
use crate::routes::chat_call::serve_chat;
use crate::routes::check_max_tokens;

pub async fn create(State(state): State<AppState>, Extension(id): Extension<RequestId>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let accepted = Exchange::accept(&state, &id, "completions", WireProtocol::Completions, &parts, body).await;
    let (mut x, request): (_, CompletionRequest) = match accepted {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    x.set_model(&request.model, request.is_stream());
    if let Err(e) = check_max_tokens(&state, request.max_tokens, "max_tokens") {
        return x.fail(e);
    }
    let client = ClientSide::Completions { include_usage: request.wants_stream_usage(), model: request.model.clone() };
    // Absent, `max_tokens` is OpenAI's small default, not the model's whole output.
    let max_tokens = Some(request.max_tokens_or_default());
    // Boxed: the pipeline's future is big, and every layer above moves the handler's future.
    Box::pin(serve_chat(x, ChatInput::Completions(request), &parts.headers, client, max_tokens)).await
}
