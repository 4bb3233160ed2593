//! A call to an OpenAI-protocol provider's Files or Batches API, made the same way by every such
//! endpoint: authenticated with the client's key, admitted by request count (these calls spend no
//! tokens), sent to one provider — the one that holds the object, or for a new object the one the
//! client names in `x-llm-proxy-provider`, else the default — and logged as one row.
//!
//! The gateway records every file and batch made through it (`llm_proxy_core::upstream_object`)
//! with the key that made it: to any other key it does not exist (404), and a key can list only
//! its own.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::known_provider::Protocol;
use llm_proxy_core::limits::LimitKind;
use llm_proxy_core::media::{MediaAnswer, MediaAnswerBody};
use llm_proxy_core::provider::{Provider, ProviderError};
use llm_proxy_core::request_log::clean_text;
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_core::upstream_object::{ObjectKind, PassRequest, UpstreamObject, valid_id};
use llm_proxy_providers::ProviderClient;
use serde_json::Value;

use crate::accounting::Demand;
use crate::app::{RequestId, Shared};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::exchange::{Exchange, MASTER_OWNER};
use crate::meter::RequestMeter;

/// The request header naming the provider a new file or batch goes to (the response header of
/// the same name says which provider served a request).
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-llm-proxy-provider");

/// One call, authenticated and metered.
pub struct ObjectCall<'a> {
    state: &'a Shared,
    meter: RequestMeter,
    principal: Principal,
    /// An upload's flag for going past the body limit (then it was cut), and the limit.
    cut_at: Option<(Arc<AtomicBool>, usize)>,
}

/// A call the provider answered with a success status, and what records its outcome.
pub struct Answered {
    pub answer: MediaAnswer,
    pub done: Done,
}

/// Ends a call that the provider answered: its log row is written by whichever of these is called.
pub struct Done {
    meter: RequestMeter,
    provider: String,
}

impl<'a> ObjectCall<'a> {
    /// Starts metering a call to `endpoint` and authenticates it (a bearer key, as OpenAI's SDKs
    /// send). `Err` is the finished response.
    pub async fn start(
        state: &'a Shared,
        id: &RequestId,
        endpoint: &'static str,
        parts: &Parts,
    ) -> Result<Self, Response> {
        let x = Exchange::authenticate(state, id, endpoint, WireProtocol::OpenAi, parts).await?;
        let (meter, principal) = x.into_parts();
        Ok(Self { state, meter, principal, cut_at: None })
    }

    /// Who owns what this call makes: the virtual key's id, or `MASTER_OWNER`.
    pub fn owner(&self) -> &str {
        self.principal.key_id().unwrap_or(MASTER_OWNER)
    }

    pub fn state(&self) -> &'a Shared {
        self.state
    }

    /// Marks the call as carrying an upload cut past `limit` when `over` is set: whatever the
    /// provider makes of a cut body, the client is told 413.
    pub fn cut_at(&mut self, over: Arc<AtomicBool>, limit: usize) {
        self.cut_at = Some((over, limit));
    }

    /// Ends the call with `err` before anything was sent.
    pub fn fail(self, err: ApiError) -> Response {
        self.meter.fail(&err);
        err.into_response()
    }

    /// The provider a new object goes to: the one `x-llm-proxy-provider` names, else the one named
    /// `openai`, else the only provider that serves these APIs. It must speak the OpenAI protocol.
    pub fn provider_for_new(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let providers = &self.state.route_inputs.providers;
        let serves = |p: &llm_proxy_core::config::ProviderConfig| p.protocol == Protocol::Openai;
        if let Some(named) = headers.get(&PROVIDER_HEADER) {
            let named = named.to_str().unwrap_or_default();
            return match providers.iter().find(|p| p.name == named) {
                Some(p) if serves(p) => Ok(p.name.clone()),
                Some(p) => Err(ApiError::bad_request(format!(
                    "Provider `{}` speaks the {} protocol, which has no OpenAI Files or Batches API.",
                    p.name,
                    p.protocol.as_str()
                ))),
                None => Err(ApiError::bad_request(format!(
                    "No provider is named `{}` (the `x-llm-proxy-provider` header).",
                    clean_text(named, 64)
                ))),
            };
        }
        if let Some(p) = providers.iter().find(|p| p.name == "openai" && serves(p)) {
            return Ok(p.name.clone());
        }
        let serving: Vec<&str> = providers.iter().filter(|p| serves(p)).map(|p| p.name.as_str()).collect();
        match serving.as_slice() {
            [one] => Ok((*one).to_string()),
            [] => Err(ApiError::bad_request(
                "No configured provider serves the OpenAI Files and Batches APIs (only OpenAI-protocol providers do).",
            )),
            many => Err(ApiError::bad_request(format!(
                "Several providers serve the Files and Batches APIs; name one in the `x-llm-proxy-provider` header: {}.",
                many.join(", ")
            ))),
        }
    }

    /// The object `id` of `kind` if this key owns it; 404 in OpenAI's words otherwise.
    pub async fn find(&self, id: &str, kind: ObjectKind) -> Result<UpstreamObject, ApiError> {
        find(self.state, self.owner(), id, kind).await
    }

    /// Checks that this caller's spending is not limited by anything a batch would escape: a
    /// batch runs its requests at the provider, outside the gateway's per-request admission, so a
    /// key restricted to some models, or under a token or spend limit, may not start one.
    pub fn check_may_batch(&self) -> Result<(), ApiError> {
        if let Principal::Key(k) = &self.principal
            && !k.models.is_empty()
        {
            return Err(ApiError::forbidden(
                "This API key is restricted to some models; a batch runs models the gateway cannot check, so it may not create one.",
            )
            .with_code("batch_not_allowed"));
        }
        if let Some(limit) = self.state.accounting.spend_limit(&self.principal, &[LimitKind::Tokens, LimitKind::Spend])
        {
            return Err(ApiError::forbidden(format!(
                "A batch runs outside the gateway's per-request limits, and {limit} applies to this caller: it may not create one."
            ))
            .with_code("batch_not_allowed"));
        }
        Ok(())
    }

    /// Admits the call (request-count limits), sends it to `provider` and waits for the head of
    /// a successful answer. `Err` is the finished response.
    pub async fn send(self, provider: &str, request: PassRequest) -> Result<Answered, Response> {
        let Self { state, mut meter, principal, cut_at } = self;
        meter.set_provider(provider);
        let result = async {
            let client = client(state, provider)?;
            let admission = state.accounting.admit(&principal, "", provider, "", Demand::RequestOnly).await?;
            meter.admit(admission);
            // Shutdown's grace period ending cuts the call short, as it does every upstream call.
            state
                .unless_cut(async {
                    client.pass(request).await.map_err(|e| {
                        let e = match &cut_at {
                            Some((over, limit)) if crate::upload::went_over(over) => {
                                ProviderError::BodyTooLarge { limit: *limit }
                            }
                            _ => e,
                        };
                        ApiError::upstream(provider, &e)
                    })
                })
                .await
        }
        .await;
        match result {
            Ok(answer) => Ok(Answered { answer, done: Done { meter, provider: provider.to_string() } }),
            Err(e) => {
                meter.fail(&e);
                Err(with_provider(e.into_response(), provider))
            }
        }
    }
}

impl Answered {
    /// The answer's JSON object; a provider that answered something else is a 502.
    pub fn json(self) -> Result<(StatusCode, Value, Bytes, Done), Response> {
        let status = StatusCode::from_u16(self.answer.status).unwrap_or(StatusCode::OK);
        let body = match self.answer.body {
            MediaAnswerBody::Json { body, .. } => body,
            MediaAnswerBody::Stream(_) => Bytes::new(),
        };
        match serde_json::from_slice::<Value>(&body) {
            Ok(v @ Value::Object(_)) => Ok((status, v, body, self.done)),
            _ => {
                let provider = self.done.provider.clone();
                Err(self.done.fail(ApiError::upstream(
                    &provider,
                    &ProviderError::Protocol("the answer is not a JSON object".into()),
                )))
            }
        }
    }
}

impl Done {
    /// Answers `body` (JSON) with `status`.
    pub fn succeed(self, status: StatusCode, body: Bytes) -> Response {
        self.meter.succeed(status.as_u16());
        let resp = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        with_provider(resp, &self.provider)
    }

    /// Passes the answer on as it arrives (a file's content).
    pub fn stream(self, answer: MediaAnswer) -> Response {
        let resp = crate::routes::media::respond(answer, self.meter, self.provider.clone());
        with_provider(resp, &self.provider)
    }

    pub fn fail(self, err: ApiError) -> Response {
        self.meter.fail(&err);
        with_provider(err.into_response(), &self.provider)
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }
}

/// The object `id` of `kind` if `owner` owns it; 404 in OpenAI's words otherwise.
pub async fn find(state: &Shared, owner: &str, id: &str, kind: ObjectKind) -> Result<UpstreamObject, ApiError> {
    let found =
        if valid_id(id) { state.store.upstream_object(id, owner).await.map_err(|e| unavailable(&e))? } else { None };
    match found {
        Some(o) if o.kind == kind => Ok(o),
        _ => Err(not_found(kind, id)),
    }
}

pub fn not_found(kind: ObjectKind, id: &str) -> ApiError {
    let id = clean_text(id, 128);
    let what = match kind {
        ObjectKind::File => "File",
        ObjectKind::Batch => "Batch",
    };
    ApiError::not_found(format!("No such {what} object: {id}"))
}

pub fn unavailable(e: &llm_proxy_core::store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "reading or writing the files and batches made through the gateway failed");
    ApiError::service_unavailable("The gateway cannot read or record files and batches right now.")
}

/// Records what the provider said of an object this key owns (made now, or seen again).
pub async fn record(
    state: &Shared,
    owner: &str,
    provider: &str,
    kind: ObjectKind,
    object: &Value,
) -> Result<UpstreamObject, ApiError> {
    let id = object["id"].as_str().filter(|id| valid_id(id)).ok_or_else(|| {
        ApiError::upstream(provider, &ProviderError::Protocol("the answer has no usable `id`".into()))
    })?;
    let o = UpstreamObject {
        id: id.to_string(),
        kind,
        provider: provider.to_string(),
        key_id: owner.to_string(),
        purpose: object["purpose"].as_str().map(String::from),
        created_at: UnixMillis::now(),
        object: object.to_string(),
    };
    state.store.put_upstream_object(&o).await.map_err(|e| unavailable(&e))?;
    Ok(o)
}

/// The key (or master key) calling an endpoint the gateway answers from its records alone, as
/// its owner name.
pub async fn owner_of(state: &Shared, parts: &Parts) -> Result<String, ApiError> {
    let secret = crate::auth::bearer(&parts.headers)?;
    let principal = state.authenticate_client(secret, crate::auth::client_ip(&parts.extensions)).await?;
    Ok(principal.key_id().unwrap_or(MASTER_OWNER).to_string())
}

/// The client of the provider named `provider`.
pub fn client(state: &Shared, provider: &str) -> Result<Arc<ProviderClient>, ApiError> {
    let index = state.route_inputs.providers.iter().position(|p| p.name == provider);
    let live = state.live.load();
    match index.and_then(|i| live.providers.get(i)) {
        Some(c) => Ok(c.clone()),
        None => Err(ApiError::service_unavailable(format!(
            "Provider `{provider}`, which holds this object, is not configured any more."
        ))),
    }
}

fn with_provider(mut resp: Response, provider: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(provider) {
        resp.headers_mut().insert(PROVIDER_HEADER, v);
    }
    resp
}

/// Query parameters of the list endpoints (`GET /v1/files`, `GET /v1/batches`).
#[derive(serde::Deserialize)]
pub struct ListParams {
    pub limit: Option<u32>,
    /// `asc` or `desc` (the default, newest first).
    pub order: Option<String>,
    /// An object id: the page starts after it.
    pub after: Option<String>,
    /// Files only.
    pub purpose: Option<String>,
}

/// The page a list endpoint asks for, of the calling key's objects of `kind` (`params` as the
/// endpoint's query gave them; `usage` says them when they are malformed), and that key's owner name.
pub async fn caller_page(
    state: &Shared,
    parts: &Parts,
    params: Result<axum::extract::Query<ListParams>, axum::extract::rejection::QueryRejection>,
    kind: ObjectKind,
    (default_limit, max, usage): (u32, u32, &str),
) -> Result<(String, Vec<UpstreamObject>, bool), ApiError> {
    let Ok(axum::extract::Query(params)) = params else { return Err(ApiError::bad_request(usage)) };
    let owner = owner_of(state, parts).await?;
    let (objects, has_more) = page(state, &owner, kind, params, default_limit, max).await?;
    Ok((owner, objects, has_more))
}

/// A page of `owner`'s objects of `kind` as OpenAI's lists are: `{object: "list", data, first_id,
/// last_id, has_more}`, each object as the provider last described it. `max` bounds `limit`.
pub async fn page(
    state: &Shared,
    owner: &str,
    kind: ObjectKind,
    params: ListParams,
    default_limit: u32,
    max: u32,
) -> Result<(Vec<UpstreamObject>, bool), ApiError> {
    let descending = match params.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::bad_request("`order` is `asc` or `desc`.").with_param(Some("order".into()))),
    };
    let limit = params.limit.unwrap_or(default_limit);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(format!("`limit` is between 1 and {max}.")).with_param(Some("limit".into())));
    }
    let query = llm_proxy_core::upstream_object::ObjectQuery {
        key_id: owner.to_string(),
        kind,
        purpose: params.purpose,
        after: params.after,
        // One more than the page: whether there is more.
        limit: limit + 1,
        descending,
    };
    let mut objects = state.store.list_upstream_objects(&query).await.map_err(|e| unavailable(&e))?;
    let has_more = objects.len() > limit as usize;
    objects.truncate(limit as usize);
    Ok((objects, has_more))
}

/// The list object around `data`.
pub fn list_body(data: Vec<Value>, has_more: bool) -> Value {
    let first = data.first().map(|o| o["id"].clone());
    let last = data.last().map(|o| o["id"].clone());
    serde_json::json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
}

/// A stored object's JSON; one the database holds unreadable is shown as its id alone.
pub fn stored_json(o: &UpstreamObject) -> Value {
    serde_json::from_str(&o.object).unwrap_or_else(|_| serde_json::json!({"id": o.id, "object": o.kind.as_str()}))
}
