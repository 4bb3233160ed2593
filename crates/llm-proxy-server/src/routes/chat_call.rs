//! The part of `/v1/chat/completions` and `/v1/messages` after the request is read: plan the
//! upstream calls, walk them, and answer in the client's protocol with headers saying who served.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use llm_proxy_core::provider::{ChatInput, Provider, ProviderError};

use crate::accounting::{Demand, apply_headers};
use crate::app::{Live, Shared};
use crate::attempts::{self, Candidate, DeploymentGate};
use crate::auth::Principal;
use crate::deliver::{ClientSide, deliver};
use crate::dispatch::{self, Resolution};
use crate::error::ApiError;
use crate::meter::RequestMeter;

/// A model named directly has one attempt, bounded by the upstream timeouts alone.
pub const NO_ROUTE_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// What admission needs to know about the request besides its model.
pub struct Sizing {
    /// Bytes of the request body, for the token reservation.
    pub body_bytes: usize,
    pub max_tokens: Option<u64>,
}

#[allow(clippy::too_many_arguments)] // one call site per protocol; a struct would only rename these
pub async fn serve_chat(
    state: &Shared,
    mut meter: RequestMeter,
    principal: &Principal,
    live: Arc<Live>,
    resolution: Resolution,
    input: ChatInput,
    headers: &HeaderMap,
    client: ClientSide,
    sizing: Sizing,
) -> Response {
    let protocol = client.protocol();
    let plan = match dispatch::plan(&live, resolution, Some(&input), headers, NO_ROUTE_DEADLINE).await {
        Ok(p) => p,
        Err(e) => {
            meter.fail(&e);
            return e.into_response_for(protocol);
        }
    };
    let (provider, upstream) = plan.first();
    let admission = match state
        .accounting
        .admit(
            principal,
            input.model(),
            provider,
            upstream,
            Demand::Billed { prompt_bytes: sizing.body_bytes, max_tokens: sizing.max_tokens },
        )
        .await
    {
        Ok(a) => a,
        Err(e) => {
            meter.fail(&e);
            return e.into_response_for(protocol);
        }
    };
    let limit_headers = admission.headers.clone();
    let gate = DeploymentGate { accounting: &state.accounting, tokens: admission.estimated_tokens };
    meter.admit(admission);
    let mut input = Some(input);
    let call = |c: &Candidate, last: bool| {
        // Only an attempt that may be followed by another needs its own copy of the request.
        let request = if last { input.take() } else { input.clone() };
        let (provider, model) = (c.client.clone(), c.upstream_model.clone());
        async move {
            let request = request.ok_or_else(|| ProviderError::Protocol("the request was already sent".into()))?;
            let output = provider.chat(&model, request).await?;
            attempts::prime(output).await
        }
    };
    let (result, tried) = tokio::select! {
        biased;
        () = state.cut.cancelled() => (Err(ApiError::shutting_down()), Vec::new()),
        r = attempts::run(plan, gate, call) => r,
    };
    let count = tried.len();
    meter.set_attempts(tried);
    match result {
        Err(e) => {
            meter.fail(&e);
            let mut resp = with_served_by(e.into_response_for(protocol), None, count);
            apply_headers(&mut resp, &limit_headers);
            resp
        }
        Ok(served) => {
            let c = served.candidate;
            meter.set_deployment(&c.provider_name, &c.upstream_model);
            meter.hold(served.in_flight);
            meter.hold_reservation(served.reservation, &state.accounting);
            let resp = deliver(served.value, meter, client, &c.upstream_model, &c.provider_name, state).await;
            let mut resp = with_served_by(resp, Some(&c), count);
            apply_headers(&mut resp, &limit_headers);
            resp
        }
    }
}

/// `x-llm-proxy-provider`, `x-llm-proxy-model` (the upstream model id) and `x-llm-proxy-attempts`
/// (upstream calls made, retries and fallbacks included).
pub fn with_served_by(mut resp: Response, by: Option<&Candidate>, attempts: usize) -> Response {
    let h = resp.headers_mut();
    if let Some(c) = by {
        if let Ok(v) = HeaderValue::from_str(&c.provider_name) {
            h.insert("x-llm-proxy-provider", v);
        }
        if let Ok(v) = HeaderValue::from_str(&c.upstream_model) {
            h.insert("x-llm-proxy-model", v);
        }
    }
    h.insert("x-llm-proxy-attempts", HeaderValue::from(attempts));
    resp
}
