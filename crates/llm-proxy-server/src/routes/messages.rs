//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API, onto any
//! upstream. Errors here are in Anthropic's shape, so the Anthropic SDKs (and Claude Code) can read
//! them.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::{ChatInput, Provider};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::anthropic::MessagesRequest;

use crate::app::{AppState, RequestId, Shared};
use crate::auth::{Principal, anthropic_key};
use crate::body::read_limited;
use crate::deliver::{ClientSide, deliver};
use crate::error::ApiError;
use crate::meter::RequestMeter;
use crate::routes::{Target, decode_body, route};

pub async fn messages(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "messages");
    let (parts, body) = request.into_parts();
    let (target, request) = match prepare(&state, &parts.headers, body, &mut meter, true).await {
        Ok(p) => p,
        Err(e) => {
            meter.fail(&e);
            return e.into_response_for(WireProtocol::Anthropic);
        }
    };
    let Target { client: provider, provider_name, upstream_model } = target;
    let call = async {
        provider.chat(&upstream_model, ChatInput::Anthropic(request)).await.map_err(|e| {
            tracing::debug!(provider = %provider_name, error = %e, "upstream call failed");
            ApiError::upstream(&provider_name, &e)
        })
    };
    match state.unless_cut(call).await {
        Err(err) => {
            meter.fail(&err);
            err.into_response_for(WireProtocol::Anthropic)
        }
        Ok(output) => deliver(output, meter, ClientSide::Anthropic, &upstream_model, &provider_name, &state).await,
    }
}

/// Input tokens of a request as the upstream counts them (Anthropic, Gemini), or estimated with
/// `o200k_base` where the upstream has no counting endpoint.
pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "messages.count_tokens");
    let (parts, body) = request.into_parts();
    let result = async {
        let (target, request) = prepare(&state, &parts.headers, body, &mut meter, false).await?;
        let Target { client: provider, provider_name, upstream_model } = target;
        let counted = state
            .unless_cut(async {
                provider
                    .count_tokens(&upstream_model, ChatInput::Anthropic(request.clone()))
                    .await
                    .map_err(|e| ApiError::upstream(&provider_name, &e))
            })
            .await?;
        match counted {
            Some(n) => Ok(n),
            None => {
                let unified = ChatInput::Anthropic(request)
                    .into_unified(&upstream_model)
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
) -> Result<(Target, MessagesRequest), ApiError> {
    let principal: Principal = state.authenticate(anthropic_key(headers))?;
    meter.set_key(principal.key_id());
    let bytes = state.unless_cut(read_limited(headers, body, state.max_body_bytes)).await?;
    let request: MessagesRequest = decode_body(&bytes)?;
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
    let target = route(state, &principal, &request.model, meter)?;
    Ok((target, request))
}
