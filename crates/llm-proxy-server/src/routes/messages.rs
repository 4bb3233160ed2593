//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API, onto any
//! upstream. Errors here are in Anthropic's shape, so the Anthropic SDKs (and Claude Code) can read
//! them.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::{ChatInput, Provider};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::anthropic::MessagesRequest;

use crate::app::{AppState, Live, RequestId, Shared};
use crate::auth::{Principal, anthropic_key};
use crate::body::read_limited;
use crate::deliver::ClientSide;
use crate::dispatch::{Resolution, plan, resolve};
use crate::error::ApiError;
use crate::meter::RequestMeter;
use crate::routes::chat_call::{NO_ROUTE_DEADLINE, Sizing, serve_chat};
use crate::routes::decode_body;

pub async fn messages(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "messages");
    let (parts, body) = request.into_parts();
    let (principal, live, resolution, request, body_bytes) =
        match prepare(&state, &parts.headers, body, &mut meter, true).await {
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
pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "messages.count_tokens");
    let (parts, body) = request.into_parts();
    let result = async {
        let (_, live, resolution, request, _) = prepare(&state, &parts.headers, body, &mut meter, false).await?;
        let input = ChatInput::Anthropic(request);
        let plan = plan(&live, resolution, Some(&input), &parts.headers, NO_ROUTE_DEADLINE).await?;
        let target = plan.attempts.into_iter().next().ok_or_else(ApiError::internal)?;
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
            None => {
                let unified = input
                    .into_unified(&target.upstream_model)
                    .map_err(|e| ApiError::bad_request(e.message).with_param(e.param))?;
                Ok(llm_proxy_core::token_estimate::estimate_input(&unified))
            }
        }
    }
    .await;
    match result {
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

async fn prepare(
    state: &Shared,
    headers: &HeaderMap,
    body: Body,
    meter: &mut RequestMeter,
    generating: bool,
) -> Result<(Principal, Arc<Live>, Resolution, MessagesRequest, usize), ApiError> {
    let principal = state.authenticate(anthropic_key(headers))?;
    meter.set_key(principal.key_id());
    meter.set_user(principal.user());
    let bytes = state.unless_cut(read_limited(headers, body, state.max_body_bytes)).await?;
    let request: MessagesRequest = decode_body(&bytes)?;
    meter.keep_body(bytes.clone());
    meter.set_model(&request.model, request.is_stream());
    if generating && request.max_tokens.is_none() {
        // Anthropic requires it; accepting its absence here would make clients non-portable.
        return Err(ApiError::bad_request("max_tokens: Field required").with_param(Some("max_tokens".into())));
    }
    if request.messages.is_empty() {
        return Err(
            ApiError::bad_request("messages: at least one message is required").with_param(Some("messages".into()))
        );
    }
    let (live, resolution) = resolve(state, &principal, &request.model, meter)?;
    Ok((principal, live, resolution, request, bytes.len()))
}
