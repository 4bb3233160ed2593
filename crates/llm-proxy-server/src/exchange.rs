//! `Exchange`: one client request on its way through the gateway. Every endpoint that calls an
//! upstream goes through it, in the same order: authenticate, read and decode the body, resolve
//! the model, plan the upstream calls, admit (key, user and global limits and budgets, once per
//! request, all or nothing), walk the attempts (each deployment's own limits and breaker checked
//! before its call), and answer — with the served-by and rate-limit headers and in the client's
//! protocol, whatever happened. The meter records the outcome exactly once.
//!
//! An endpoint brings what differs: its request type, its checks, the upstream call for one
//! attempt, and how a served answer becomes its response.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use futures_util::future::Either;
use llm_proxy_core::media::MediaRequest;
use llm_proxy_core::provider::{ChatInput, ProviderError};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::openai::EmbeddingsRequest;
use serde::de::DeserializeOwned;

use crate::accounting::{Demand, apply_headers};
use crate::app::{RequestId, Shared};
use crate::attempts::{self, Candidate, DeploymentGate};
use crate::auth::{Principal, anthropic_key, bearer, client_ip};
use crate::body::read_limited;
use crate::dispatch;
use crate::error::ApiError;
use crate::meter::RequestMeter;

/// What owns the things the master key makes (stored responses): no key id looks like it.
pub const MASTER_OWNER: &str = "(master key)";

/// A model named directly has one attempt, bounded by the upstream timeouts alone.
const NO_ROUTE_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// A request that authenticated and was read: who asked, in which protocol, and its meter.
pub struct Exchange<'a> {
    state: &'a Shared,
    meter: RequestMeter,
    principal: Principal,
    protocol: WireProtocol,
    body_bytes: usize,
}

/// A decoded request the pipeline can route and send: cloned for an attempt that may be
/// followed by another, moved into the last.
pub trait Routable: Clone {
    /// The model the client named.
    fn model(&self) -> &str;
    /// The chat request, for routing strategies that read it (conversation hash, semantic).
    fn chat(&self) -> Option<&ChatInput> {
        None
    }
}

impl Routable for ChatInput {
    fn model(&self) -> &str {
        ChatInput::model(self)
    }
    fn chat(&self) -> Option<&ChatInput> {
        Some(self)
    }
}

impl Routable for EmbeddingsRequest {
    fn model(&self) -> &str {
        &self.model
    }
}

impl Routable for MediaRequest {
    fn model(&self) -> &str {
        MediaRequest::model(self)
    }
}

impl<'a> Exchange<'a> {
    /// Starts metering a request to `endpoint`, authenticates it with the credentials of the
    /// client's protocol, and reads and decodes its body. `Err` is the finished response.
    pub async fn accept<T>(
        state: &'a Shared,
        id: &RequestId,
        endpoint: &'static str,
        protocol: WireProtocol,
        parts: &Parts,
        body: Body,
    ) -> Result<(Self, T), Response>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let mut x = Self::authenticate(state, id, endpoint, protocol, parts).await?;
        let read = state.unless_cut(read_limited(&parts.headers, body, state.max_body_bytes)).await;
        let bytes = match read {
            Ok(b) => b,
            Err(e) => return Err(x.fail(e)),
        };
        let request = match decode_body(&bytes).await {
            Ok(r) => r,
            Err(e) => return Err(x.fail(e)),
        };
        x.body_bytes = bytes.len();
        // A reference count, not a copy: the prompt is counted from it should the upstream
        // report no usage.
        x.meter.keep_body(bytes, protocol);
        Ok((x, request))
    }

    /// Starts metering a request to `endpoint` and authenticates it with the credentials of the
    /// client's protocol, leaving its body to the endpoint (one that streams it). `Err` is the
    /// finished response.
    pub async fn authenticate(
        state: &'a Shared,
        id: &RequestId,
        endpoint: &'static str,
        protocol: WireProtocol,
        parts: &Parts,
    ) -> Result<Self, Response> {
        let mut meter = RequestMeter::start(state.logs.clone(), &id.0, endpoint);
        let presented = match protocol {
            // Anthropic's SDKs send `x-api-key`; a bearer token is accepted there too.
            WireProtocol::Anthropic => anthropic_key(&parts.headers),
            _ => bearer(&parts.headers),
        };
        let authenticated = match presented {
            Ok(secret) => state.authenticate_client(secret, client_ip(&parts.extensions)).await,
            Err(e) => Err(e),
        };
        match authenticated {
            Ok(principal) => {
                meter.set_key(principal.key_id());
                meter.set_user(principal.user());
                Ok(Self { state, meter, principal, protocol, body_bytes: 0 })
            }
            Err(e) => {
                meter.fail(&e);
                Err(e.into_response_for(protocol))
            }
        }
    }

    pub fn state(&self) -> &'a Shared {
        self.state
    }

    /// The meter and who asked, for an endpoint with its own pipeline (`crate::object_call`).
    pub fn into_parts(self) -> (RequestMeter, Principal) {
        (self.meter, self.principal)
    }

    /// Who asked: the virtual key's id, or `MASTER_OWNER` for the master key.
    pub fn owner(&self) -> &str {
        self.principal.key_id().unwrap_or(MASTER_OWNER)
    }

    /// Bytes of the request body.
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// Bytes of a body the endpoint read itself (as far as it did).
    pub fn set_body_bytes(&mut self, n: usize) {
        self.body_bytes = n;
    }

    /// The model and whether the client asked for a stream, for the log.
    pub fn set_model(&mut self, model: &str, stream: bool) {
        self.meter.set_model(model, stream);
    }

    /// Ends the request with `err` (a check of the endpoint's own failed).
    pub fn fail(self, err: ApiError) -> Response {
        self.meter.fail(&err);
        err.into_response_for(self.protocol)
    }

    /// The rest of the pipeline: resolves the request's model, plans, admits (`demand` sizes the
    /// reservation), walks the attempts calling `attempt` with each deployment admitted, then
    /// hands what the serving deployment answered to `answer` with the meter, which records the
    /// outcome from there (at the end of a stream, for one). Shutdown cuts the attempts short.
    pub async fn serve<R, T, A, AFut, D, DFut>(
        self,
        request: R,
        headers: &HeaderMap,
        demand: Demand,
        mut attempt: A,
        answer: D,
    ) -> Response
    where
        R: Routable,
        A: FnMut(&Candidate, R) -> AFut,
        AFut: Future<Output = Result<T, ProviderError>>,
        D: FnOnce(T, RequestMeter, Candidate) -> DFut,
        DFut: Future<Output = Response>,
    {
        let Self { state, mut meter, principal, protocol, .. } = self;
        let mut limit_headers = Vec::new();
        let mut tried = 0;
        let result = async {
            let (live, resolution) = dispatch::resolve(state, &principal, request.model(), &mut meter)?;
            let plan = dispatch::plan(&live, resolution, request.chat(), headers, NO_ROUTE_DEADLINE).await?;
            let (provider, upstream) = plan.first();
            let mut admission = state.accounting.admit(&principal, request.model(), provider, upstream, demand).await?;
            // Only the response needs them: moved out, not copied.
            limit_headers = std::mem::take(&mut admission.headers);
            let gate = DeploymentGate { accounting: &state.accounting, tokens: admission.estimated_tokens };
            meter.admit(admission);
            let mut request = Some(request);
            let call = |c: &Candidate, last: bool| {
                // Only an attempt that may be followed by another needs its own copy. (`Either`,
                // not an `async` block around the call: that would hold the upstream call's
                // future twice over, and it is big.)
                match if last { request.take() } else { request.clone() } {
                    // Boxed: an upstream call's future is kilobytes, and the pipeline's future,
                    // which would otherwise hold it, is moved through every layer above.
                    Some(r) => Either::Left(Box::pin(attempt(c, r))),
                    None => Either::Right(std::future::ready(Err(ProviderError::Protocol(
                        "the request was already sent".into(),
                    )))),
                }
            };
            let (result, attempts) = tokio::select! {
                biased;
                () = state.cut.cancelled() => (Err(ApiError::shutting_down()), Vec::new()),
                r = attempts::run(plan, gate, call) => r,
            };
            tried = attempts.len();
            meter.set_attempts(attempts);
            result
        }
        .await;
        let mut resp = match result {
            Err(e) => {
                meter.fail(&e);
                with_served_by(e.into_response_for(protocol), None, tried)
            }
            Ok(served) => {
                let c = served.candidate;
                meter.set_deployment(c.provider_name(), c.upstream_model());
                meter.hold(served.in_flight);
                meter.hold_reservation(served.reservation, &state.accounting);
                let by = ServedBy::of(&c);
                let resp = Box::pin(answer(served.value, meter, c)).await;
                with_served_by(resp, Some(by), tried)
            }
        };
        apply_headers(&mut resp, &limit_headers);
        resp
    }
}

/// Decodes a JSON body, answering 400 with the offending field in `param`. A big body is decoded
/// on the CPU pool, off the async workers.
async fn decode_body<T>(bytes: &bytes::Bytes) -> Result<T, ApiError>
where
    T: DeserializeOwned + Send + 'static,
{
    let bytes = bytes.clone();
    llm_proxy_core::cpu_pool::run(bytes.len(), move || llm_proxy_protocol::json::decode(&bytes))
        .await
        .map_err(|_| ApiError::shutting_down())?
        .map_err(|e| ApiError::bad_request(e.to_string()).with_param(e.param))
}

/// `x-llm-proxy-provider` and `x-llm-proxy-model` (the upstream model id) of the deployment that
/// served.
struct ServedBy {
    provider: Option<HeaderValue>,
    model: Option<HeaderValue>,
}

impl ServedBy {
    fn of(c: &Candidate) -> Self {
        Self {
            provider: HeaderValue::from_str(c.provider_name()).ok(),
            model: HeaderValue::from_str(c.upstream_model()).ok(),
        }
    }
}

/// The served-by headers, and `x-llm-proxy-attempts` (upstream calls made, retries and fallbacks
/// included).
fn with_served_by(mut resp: Response, by: Option<ServedBy>, attempts: usize) -> Response {
    let h = resp.headers_mut();
    if let Some(by) = by {
        if let Some(v) = by.provider {
            h.insert(PROVIDER, v);
        }
        if let Some(v) = by.model {
            h.insert(MODEL, v);
        }
    }
    h.insert(ATTEMPTS, HeaderValue::from(attempts));
    resp
}

// Names made once, not parsed from text on every response.
const PROVIDER: HeaderName = HeaderName::from_static("x-llm-proxy-provider");
const MODEL: HeaderName = HeaderName::from_static("x-llm-proxy-model");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-llm-proxy-attempts");
