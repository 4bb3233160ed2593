//! `POST /v1/chat/completions`.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::{ChatInput, Provider};
use llm_proxy_protocol::openai::ChatCompletionRequest;

use crate::app::{AppState, RequestId};
use crate::body::read_limited;
use crate::deliver::{ClientSide, deliver};
use crate::error::ApiError;
use crate::meter::RequestMeter;
use crate::routes::{Target, authenticate, decode_body, route};

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "chat.completions");
    // Taking the request whole avoids the header-map copy a `HeaderMap` extractor makes.
    let (parts, body) = request.into_parts();
    let (target, request) = match prepare(&state, &parts.headers, body, &mut meter).await {
        Ok(p) => p,
        Err(e) => {
            meter.fail(&e);
            return e.into_response();
        }
    };
    let client = ClientSide::OpenAi { include_usage: request.wants_stream_usage() };
    let Target { client: provider, provider_name, upstream_model } = target;
    let call = async {
        provider.chat(&upstream_model, ChatInput::OpenAi(request)).await.map_err(|e| {
            tracing::debug!(provider = %provider_name, error = %e, "upstream call failed");
            ApiError::upstream(&provider_name, &e)
        })
    };
    match state.unless_cut(call).await {
        Err(err) => {
            meter.fail(&err);
            err.into_response()
        }
        Ok(output) => deliver(output, meter, client, &upstream_model, &provider_name, &state).await,
    }
}

async fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    meter: &mut RequestMeter,
) -> Result<(Target, ChatCompletionRequest), ApiError> {
    let principal = authenticate(state, headers, meter)?;
    let bytes = state.unless_cut(read_limited(headers, body, state.max_body_bytes)).await?;
    let request: ChatCompletionRequest = decode_body(&bytes)?;
    meter.set_model(&request.model, request.is_stream());
    if request.messages.is_empty() {
        return Err(
            ApiError::bad_request("`messages` must contain at least one message.").with_param(Some("messages".into()))
        );
    }
    let target = route(state, &principal, &request.model, meter)?;
    Ok((target, request))
}
