//! The axum application: state, routes and middleware.
//!
//! Middleware, outermost first (what each adds):
//! 1. `request_id` — a fresh UUIDv7 per request, in the handler's extensions and the response's
//!    `x-request-id` header (client-sent ids are ignored: they key the request log).
//! 2. `CatchPanicLayer` — a panicking handler becomes an OpenAI-shaped 500, never a dropped connection.
//! 3. `TraceLayer` — one debug span per request: method, path, status, latency; no headers, no bodies.
//!
//! Authentication and the body limit are applied inside the handlers, because their errors must
//! land in the request log and use the endpoint's error shape.

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use llm_proxy_core::config::{BreakerConfig, Config, RouteConfig, StrategyKind};
use llm_proxy_core::key_ring::KeyRing;
use llm_proxy_core::log_writer::LogSink;
use llm_proxy_core::model_catalog::ModelCatalog;
use llm_proxy_core::routing::RoutingTable;
use llm_proxy_core::shared_state::SharedState;
use llm_proxy_core::store::Store;
use llm_proxy_providers::{HttpClient, ProviderClient};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::routes;

/// What a request needs, shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// Providers and models; a handler loads one snapshot and keeps it for the whole request, so a
    /// reload never changes a model under a request in flight.
    pub live: ArcSwap<Live>,
    pub route_inputs: RouteInputs,
    pub accounting: crate::accounting::Accounting,
    pub keys: Arc<KeyRing>,
    /// Key ring misses asked of the database.
    pub key_misses: llm_proxy_core::key_miss::KeyMisses,
    pub store: Arc<dyn Store>,
    /// Responses API answers kept for `previous_response_id` and `/v1/responses/{id}`.
    pub responses: Arc<crate::response_store::ResponseStore>,
    pub logs: LogSink,
    pub master_key: Option<SecretString>,
    pub max_body_bytes: usize,
    pub stream_keep_alive: std::time::Duration,
    /// Failed authentications by address and minute, for `/api/stats` (instead of log rows).
    pub auth_failures: llm_proxy_core::limits::AuthFailures,
    /// Failed admin-API authentications, for the per-address lock-out.
    pub admin_failures: llm_proxy_core::limits::AuthFailures,
    pub admin_auth_failures_per_minute: u64,
    /// The effective configuration, secrets redacted (`GET /api/settings`).
    pub settings: Arc<serde_json::Value>,
    /// The price table's layers: registry, stored overrides, the overrides file.
    pub price_layers: crate::price_layers::PriceLayers,
    /// Signs and checks session cookies and CSRF tokens.
    pub sessions: crate::sessions::Sessions,
    /// Failed logins per username, for the login lock-out.
    pub login_failures: crate::admin_auth::LoginFailures,
    /// Fires when the shutdown grace period is over: requests still running end themselves
    /// (503 / an error event), so their log rows are written before the final flush.
    pub cut: CancellationToken,
}

impl Shared {
    /// Runs an upstream call unless the shutdown grace period ends first.
    pub async fn unless_cut<T>(&self, call: impl Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
        tokio::select! {
            biased;
            () = self.cut.cancelled() => Err(ApiError::shutting_down()),
            result = call => result,
        }
    }
}

/// One consistent view of the configured upstreams and routes.
pub struct Live {
    pub catalog: ModelCatalog,
    /// Indexed like `Config::providers` (and `Resolved::provider`).
    pub providers: Vec<Arc<ProviderClient>>,
    pub routes: RoutingTable,
}

impl Live {
    /// The client of a provider this snapshot's catalog or routes resolved to.
    pub fn client(&self, id: llm_proxy_core::model_catalog::ProviderId) -> &Arc<ProviderClient> {
        &self.providers[id.index()]
    }
}

/// What a routing table is built from; kept so that routes edited in the database can be merged
/// with the file's and the table rebuilt while serving.
pub struct RouteInputs {
    pub providers: Vec<llm_proxy_core::config::ProviderConfig>,
    /// The config file's routes: they win over a stored route of the same name.
    pub file_routes: Vec<RouteConfig>,
    pub default_strategy: StrategyKind,
    pub breaker: BreakerConfig,
    pub state: Arc<dyn SharedState>,
}

impl RouteInputs {
    pub fn new(config: &Config, state: Arc<dyn SharedState>) -> Self {
        Self {
            providers: config.providers.clone(),
            file_routes: config.routes.clone(),
            default_strategy: config.load_balance_strategy,
            breaker: config.circuit_breaker,
            state,
        }
    }

    /// The routing table for the file's routes plus `stored` ones (validated here; a stored route
    /// that no longer fits the providers is left out with a warning).
    pub fn table(&self, catalog: &ModelCatalog, stored: &[RouteConfig]) -> RoutingTable {
        let mut routes = self.file_routes.clone();
        for (i, r) in stored.iter().enumerate() {
            if routes.iter().any(|f| f.name == r.name) {
                continue;
            }
            let mut r = r.clone();
            r.strategy.get_or_insert(self.default_strategy);
            let problems = r.validate(&format!("stored route {:?}", r.name), catalog);
            if problems.is_empty() {
                routes.push(r);
            } else {
                let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
                tracing::warn!(route = %r.name, index = i, problems = %reasons.join("; "), "stored route skipped");
            }
        }
        let (table, warnings) =
            RoutingTable::build(&routes, self.default_strategy, catalog, self.state.as_ref(), self.breaker);
        for w in warnings {
            tracing::warn!("{w}");
        }
        table
    }
}

impl Live {
    pub fn build(
        config: &Config,
        http: &HttpClient,
        inputs: &RouteInputs,
        stored_routes: &[RouteConfig],
    ) -> Result<Self, llm_proxy_providers::BuildError> {
        let providers = config
            .providers
            .iter()
            .map(|p| ProviderClient::new(p, http, config.upstream_timeouts).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let catalog = ModelCatalog::new(&config.providers);
        let routes = inputs.table(&catalog, stored_routes);
        Ok(Self { catalog, providers, routes })
    }

    /// The same providers with routes rebuilt (after a stored route changed).
    pub fn with_routes(&self, inputs: &RouteInputs, stored_routes: &[RouteConfig]) -> Self {
        let catalog = ModelCatalog::new(&inputs.providers);
        let routes = inputs.table(&catalog, stored_routes);
        Self { catalog, providers: self.providers.clone(), routes }
    }
}

/// The id of the request being handled, as sent back in `x-request-id`.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

async fn request_id(mut req: Request, next: Next) -> Response {
    let id: Arc<str> = uuid::Uuid::now_v7().to_string().into();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::internal().into_response()
}

/// The per-IP limit, in front of authentication so unauthenticated floods are cut cheaply. It
/// counts per instance and leaves no log row (a refused flood must not write to the database).
async fn per_ip_limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let (Some(rpm), true) = (state.accounting.ip_rpm, req.uri().path().starts_with("/v1/")) else {
        return next.run(req).await;
    };
    let ip = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    if let Some(ip) = ip
        && let Err(wait) = state.accounting.ip.check(ip, rpm)
    {
        let why = llm_proxy_core::limits::Refusal::ip(rpm, wait);
        let err = ApiError::rate_limited(&why.message, why.kind.code(), why.retry_after);
        let protocol = if req.uri().path().starts_with("/v1/messages") {
            llm_proxy_core::unified::WireProtocol::Anthropic
        } else {
            llm_proxy_core::unified::WireProtocol::OpenAi
        };
        return err.into_response_for(protocol);
    }
    next.run(req).await
}

pub fn app(state: AppState) -> Router {
    // Only when configured: a layer costs every request a boxed future.
    let ip_limit =
        state.accounting.ip_rpm.is_some().then(|| middleware::from_fn_with_state(state.clone(), per_ip_limit));
    Router::new()
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/completions", post(routes::completions::create))
        .route("/v1/messages", post(routes::messages::messages))
        .route("/v1/messages/count_tokens", post(routes::messages::count_tokens))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/v1/images/generations", post(routes::media::images_generations))
        .route("/v1/images/edits", post(routes::media::images_edits))
        .route("/v1/audio/speech", post(routes::media::audio_speech))
        .route("/v1/audio/transcriptions", post(routes::media::audio_transcriptions))
        .route("/v1/audio/translations", post(routes::media::audio_translations))
        .route("/v1/moderations", post(routes::media::moderations))
        .route("/v1/files", post(routes::files::create).get(routes::files::list))
        .route("/v1/files/{id}", get(routes::files::retrieve).delete(routes::files::delete))
        .route("/v1/files/{id}/content", get(routes::files::content))
        .route("/v1/batches", post(routes::batches::create).get(routes::batches::list))
        .route("/v1/batches/{id}", get(routes::batches::retrieve))
        .route("/v1/batches/{id}/cancel", post(routes::batches::cancel))
        .route("/v1/responses", post(routes::responses::create))
        .route("/v1/responses/{id}", get(routes::responses::retrieve).delete(routes::responses::delete))
        .route("/v1/responses/{id}/input_items", get(routes::responses::input_items_list))
        .route("/v1/models", get(routes::models::list_models))
        .route("/v1/models/{*model}", get(routes::models::retrieve_model))
        .route("/", get(routes::health::root))
        .route("/health", get(routes::health::health))
        .route("/api/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route("/api/openapi.json", get(routes::openapi::document))
        .route("/api/auth/login", post(routes::auth::login))
        .route("/api/auth/logout", post(routes::auth::logout))
        .route("/api/auth/me", get(routes::auth::me))
        .route("/api/apikeys", post(routes::apikeys::create).get(routes::apikeys::list))
        .route("/api/apikeys/{id}", get(routes::apikeys::get).delete(routes::apikeys::revoke))
        .route("/api/users", post(routes::users::create).get(routes::users::list))
        .route("/api/users/{id}", get(routes::users::get).patch(routes::users::change).delete(routes::users::delete))
        .route("/api/audit", get(routes::audit::list))
        .route("/api/routes", post(routes::stored_routes::create).get(routes::stored_routes::list))
        .route(
            "/api/routes/{name}",
            get(routes::stored_routes::get).put(routes::stored_routes::replace).delete(routes::stored_routes::delete),
        )
        .route("/api/logs", get(routes::logs::list_logs).delete(routes::logs::delete_logs))
        .route("/api/logs/{request_id}", get(routes::logs::get_log))
        .route("/api/providers", get(routes::providers::list_providers))
        .route("/api/models", get(routes::catalog::list))
        .route("/api/models/overrides", get(routes::catalog::overrides).put(routes::catalog::put_overrides))
        .route("/api/settings", get(routes::settings::get))
        .route("/api/stats", get(routes::stats::stats))
        .fallback(|| async { ApiError::not_found_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
        .layer(tower::util::option_layer(ip_limit))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(request_id))
}
