//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API, onto any
//! upstream. Errors here are in Anthropic's shape, so the Anthropic SDKs (and Claude Code) can read
//! them.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::{ChatInput, Provider};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::anthropic::MessagesRequest;

use crate::accounting::{Demand, apply_headers};
use crate::app::{AppState, Live, RequestId, Shared};
use crate::auth::{Principal, anthropic_key, client_ip};
use crate::body::read_limited;
use crate::deliver::ClientSide;
use crate::dispatch::{Resolution, plan, resolve};
use crate::error::ApiError;
use crate::meter::RequestMeter;
use crate::routes::chat_call::{NO_ROUTE_DEADLINE, Sizing, serve_chat};
use crate::routes::{check_max_tokens, decode_body};

pub async fn messages(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "messages");
    let (parts, body) = request.into_parts();
    let (principal, live, resolution, request, body_bytes) = match prepare(&state, &parts, body, &mut meter, true).await
    {
        Ok(p) => p,
        Err(e) => {
            meter.fail(&e);
            return e.into_response_for(WireProtocol::Anthropic);
        }
    };
    let sizing = Sizing { body_bytes, max_tokens: request.max_tokens };
    let input = ChatInput::Anthropic(request);
    serve_chat(&state, meter, &principal, live, resolution, input, &parts.headers, ClientSide::Anthropic, sizing).await
}

/// Input tokens of a request as the upstream counts them (Anthropic, Gemini), or estimated with
/// `o200k_base` where the upstream has no counting endpoint. A route counts with its first choice.
/// It is admitted like any call (a key's requests per minute count it) but costs no budget.
pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "messages.count_tokens");
    let (parts, body) = request.into_parts();
    let mut limit_headers = Vec::new();
    let result = async {
        let (principal, live, resolution, request, body_bytes) =
            prepare(&state, &parts, body, &mut meter, false).await?;
        let input = ChatInput::Anthropic(request);
        let plan = plan(&live, resolution, Some(&input), &parts.headers, NO_ROUTE_DEADLINE).await?;
        let target = plan.attempts.into_iter().next().ok_or_else(ApiError::internal)?;
        let admission = state
            .accounting
            .admit(&principal, input.model(), &target.provider_name, &target.upstream_model, Demand::RequestOnly)
            .await?;
        limit_headers = admission.headers.clone();
        meter.admit(admission);
        meter.set_deployment(&target.provider_name, &target.upstream_model);
        let counted = state
            .unless_cut(async {
                target
                    .client
                    .count_tokens(&target.upstream_model, input.clone())
                    .await
                    .map_err(|e| ApiError::upstream(&target.provider_name, &e))
            })
            .await?;
        match counted {
            Some(n) => Ok(n),
            None => estimate_locally(input, target.upstream_model.clone(), body_bytes).await,
        }
    }
    .await;
    let mut resp = match result {
        Ok(n) => {
            meter.succeed(200);
            axum::Json(serde_json::json!({"input_tokens": n})).into_response()
        }
        Err(e) => {
            meter.fail(&e);
            e.into_response_for(WireProtocol::Anthropic)
        }
    };
    apply_headers(&mut resp, &limit_headers);
    resp
}

/// Counts a request's input tokens here, on the CPU pool (a 9 MB prompt is seconds of work).
async fn estimate_locally(input: ChatInput, upstream_model: String, body_bytes: usize) -> Result<u64, ApiError> {
    llm_proxy_core::cpu_pool::run(body_bytes, move || {
        let unified =
            input.into_unified(&upstream_model).map_err(|e| ApiError::bad_request(e.message).with_param(e.param))?;
        Ok(llm_proxy_core::token_estimate::estimate_input(&unified))
    })
    .await
    .map_err(|_| ApiError::shutting_down())?
}

async fn prepare(
    state: &Shared,
    parts: &Parts,
    body: Body,
    meter: &mut RequestMeter,
    generating: bool,
) -> Result<(Principal, Arc<Live>, Resolution, MessagesRequest, usize), ApiError> {
    let secret = anthropic_key(&parts.headers)?;
    let principal = state.authenticate_client(secret, client_ip(&parts.extensions))?;
    meter.set_key(principal.key_id());
    meter.set_user(principal.user());
    let bytes = state.unless_cut(read_limited(&parts.headers, body, state.max_body_bytes)).await?;
    let request: MessagesRequest = decode_body(&bytes).await?;
    meter.keep_body(bytes.clone());
    meter.set_model(&request.model, request.is_stream());
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
    let (live, resolution) = resolve(state, &principal, &request.model, meter)?;
    Ok((principal, live, resolution, request, bytes.len()))
}
