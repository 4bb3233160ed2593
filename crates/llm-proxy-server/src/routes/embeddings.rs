//! `POST /v1/embeddings`.

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::{Provider, ProviderError};
use llm_proxy_protocol::openai::EmbeddingsRequest;
use serde_json::Value;

use crate::accounting::Demand;
use crate::app::{AppState, RequestId};
use crate::attempts::{self, Candidate, DeploymentGate};
use crate::body::read_limited;
use crate::dispatch::{plan, resolve};
use crate::error::ApiError;
use crate::meter::RequestMeter;
use crate::relay;
use crate::routes::chat_call::{NO_ROUTE_DEADLINE, with_served_by};
use crate::routes::{authenticate, decode_body};

pub async fn embeddings(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "embeddings");
    let (parts, body) = request.into_parts();
    let mut count = 0;
    let mut limit_headers = Vec::new();
    let mut by: Option<Candidate> = None;
    let result = async {
        let principal = authenticate(&state, &parts, &mut meter)?;
        let bytes = state.unless_cut(read_limited(&parts.headers, body, state.max_body_bytes)).await?;
        let request: EmbeddingsRequest = decode_body(&bytes).await?;
        meter.set_model(&request.model, false);
        let valid_input = match &request.input {
            Value::String(_) => true,
            Value::Array(items) => !items.is_empty(),
            _ => false,
        };
        if !valid_input {
            return Err(ApiError::bad_request(
                "`input` must be a string, or a non-empty array of strings or token arrays.",
            )
            .with_param(Some("input".into())));
        }
        let (live, resolution) = resolve(&state, &principal, &request.model, &mut meter)?;
        let plan = plan(&live, resolution, None, &parts.headers, NO_ROUTE_DEADLINE).await?;
        let (provider, upstream) = plan.first();
        let admission = state
            .accounting
            .admit(
                &principal,
                &request.model,
                provider,
                upstream,
                Demand::Billed { prompt_bytes: bytes.len(), max_tokens: Some(0) },
            )
            .await?;
        limit_headers = admission.headers.clone();
        let gate = DeploymentGate { accounting: &state.accounting, tokens: admission.estimated_tokens };
        meter.admit(admission);
        let mut request = Some(request);
        let call = |c: &Candidate, last: bool| {
            let request = if last { request.take() } else { request.clone() };
            let (provider, model) = (c.client.clone(), c.upstream_model.clone());
            async move {
                let request = request.ok_or_else(|| ProviderError::Protocol("the request was already sent".into()))?;
                provider.embeddings(&model, request).await
            }
        };
        let (result, tried) = tokio::select! {
            biased;
            () = state.cut.cancelled() => (Err(ApiError::shutting_down()), Vec::new()),
            r = attempts::run(plan, gate, call) => r,
        };
        count = tried.len();
        meter.set_attempts(tried);
        let served = result?;
        meter.set_deployment(&served.candidate.provider_name, &served.candidate.upstream_model);
        meter.hold_reservation(served.reservation, &state.accounting);
        by = Some(served.candidate);
        Ok(served.value)
    }
    .await;
    let resp = match result {
        Ok(done) => {
            if let Some(u) = done.usage {
                meter.usage(u);
            }
            meter.succeed(200);
            relay::json_response(done.body)
        }
        Err(e) => {
            meter.fail(&e);
            e.into_response()
        }
    };
    let mut resp = with_served_by(resp, by.as_ref(), count);
    crate::accounting::apply_headers(&mut resp, &limit_headers);
    resp
}
