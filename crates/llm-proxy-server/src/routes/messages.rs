//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API, onto any
//! upstream. Errors here are in Anthropic's shape, so the Anthropic SDKs (and Claude Code) can read
//! them.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::{ChatInput, Provider};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::anthropic::{ClientHeaders, MessagesRequest};

use crate::accounting::Demand;
use crate::app::{AppState, RequestId, Shared};
use crate::deliver::ClientSide;
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::routes::chat_call::serve_chat;
use crate::routes::check_max_tokens;

pub async fn messages(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (x, request) = match accept(&state, &id, "messages", &parts, body, true).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let max_tokens = request.max_tokens;
    // Boxed: the pipeline's future is big, and every layer above moves the handler's future.
    Box::pin(serve_chat(x, ChatInput::Anthropic(request), &parts.headers, ClientSide::Anthropic, max_tokens)).await
}

/// Input tokens of a request as the upstream counts them (Anthropic, Gemini), or estimated with
/// `o200k_base` where the upstream has no counting endpoint. A route counts with its first choice
/// that answers. It is admitted like any call (a key's requests per minute count it) but costs no
/// budget.
pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (x, request) = match accept(&state, &id, "messages.count_tokens", &parts, body, false).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let body_bytes = x.body_bytes();
    Box::pin(x.serve(
        ChatInput::Anthropic(request),
        &parts.headers,
        Demand::RequestOnly,
        |c, input| {
            let (provider, model) = (c.client.clone(), c.upstream_model().to_string());
            async move {
                // An upstream without a counting endpoint answers `None`: counted here instead.
                let counted = provider.count_tokens(&model, input.clone()).await?;
                Ok((counted, input))
            }
        },
        |(counted, input), meter, c| {
            let upstream_model = c.upstream_model().to_string();
            async move {
                let counted = match counted {
                    Some(n) => Ok(n),
                    None => estimate_locally(input, upstream_model, body_bytes).await,
                };
                match counted {
                    Ok(n) => {
                        meter.succeed(200);
                        axum::Json(serde_json::json!({"input_tokens": n})).into_response()
                    }
                    Err(e) => {
                        meter.fail(&e);
                        e.into_response_for(WireProtocol::Anthropic)
                    }
                }
            }
        },
    ))
    .await
}

/// Counts a request's input tokens here, on the CPU pool (a 9 MB prompt is seconds of work; the
/// first count of all builds the tokenizer, which is long whatever the size).
async fn estimate_locally(input: ChatInput, upstream_model: String, body_bytes: usize) -> Result<u64, ApiError> {
    let work = if llm_proxy_core::token_estimate::tokenizer_built() { body_bytes } else { usize::MAX };
    llm_proxy_core::cpu_pool::run(work, move || {
        let unified =
            input.into_unified(&upstream_model).map_err(|e| ApiError::bad_request(e.message).with_param(e.param))?;
        Ok(llm_proxy_core::token_estimate::estimate_input(&unified))
    })
    .await
    .map_err(|_| ApiError::shutting_down())?
}

/// Authenticates, reads and checks a Messages request, its model logged. `Err` is the finished
/// response.
async fn accept<'a>(
    state: &'a Shared,
    id: &RequestId,
    endpoint: &'static str,
    parts: &Parts,
    body: Body,
    generating: bool,
) -> Result<(Exchange<'a>, MessagesRequest), Response> {
    let (mut x, mut request): (_, MessagesRequest) =
        Exchange::accept(state, id, endpoint, WireProtocol::Anthropic, parts, body).await?;
    x.set_model(&request.model, request.is_stream());
    let header = |name: &str| parts.headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    match ClientHeaders::new(header("anthropic-version"), header("anthropic-beta")) {
        Ok(h) => request.headers = h,
        Err(e) => return Err(x.fail(ApiError::bad_request(e.message))),
    }
    match check(state, &request, generating) {
        Ok(()) => Ok((x, request)),
        Err(e) => Err(x.fail(e)),
    }
}

/// `generating`: a request for an answer, which Anthropic requires `max_tokens` of.
fn check(state: &Shared, request: &MessagesRequest, generating: bool) -> Result<(), ApiError> {
    if generating && request.max_tokens.is_none() {
        // Anthropic requires it; accepting its absence here would make clients non-portable.
        return Err(ApiError::bad_request("max_tokens: Field required").with_param(Some("max_tokens".into())));
    }
    check_max_tokens(state, request.max_tokens, "max_tokens")?;
    if request.messages.is_empty() {
        return Err(
            ApiError::bad_request("messages: at least one message is required").with_param(Some("messages".into()))
        );
    }
    Ok(())
}
