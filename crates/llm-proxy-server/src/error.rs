//! `ApiError`: the only type that becomes an error response.
//!
//! Bodies use OpenAI's shape `{"error":{"message","type","param","code"}}`, or Anthropic's
//! `{"type":"error","error":{"type","message"}}` on the Anthropic endpoints (`into_response_for`).
//! Messages are for the API user: 5xx bodies name the failing upstream and what it said where that is safe, and never
//! anything internal (database errors, stack traces, keys).

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::{Failure, ProviderError, TimeoutPhase};
use llm_proxy_core::request_log::ErrorKind;
use llm_proxy_core::unified::WireProtocol;
use serde_json::json;
use std::time::Duration;

/// The error's `type` in OpenAI's shape. (Anthropic's `type` follows from the status instead:
/// [`ApiError::anthropic_type`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    Permission,
    RateLimit,
    /// The gateway's own failure (or it is shutting down, or overloaded).
    Server,
    /// An upstream failed, or none could be reached.
    Upstream,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::RateLimit => "rate_limit_error",
            Self::Server => "server_error",
            Self::Upstream => "upstream_error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorType,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Low-cardinality reason for the request log and metrics.
    pub log_kind: ErrorKind,
    /// Sent as whole seconds, rounded up.
    pub retry_after: Option<Duration>,
    /// Extra response headers (`x-ratelimit-*` on a refusal).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: StatusCode, kind: ErrorType, log_kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
            log_kind,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// A rate limit or budget of the gateway's own refused the request.
    pub fn rate_limited(message: &str, code: &str, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, ErrorType::RateLimit, ErrorKind::RateLimited, message)
                .with_code(code)
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: Option<String>) -> Self {
        self.param = param;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorType::InvalidRequest, ErrorKind::InvalidRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorType::Authentication, ErrorKind::Authentication, message)
            .with_code("invalid_api_key")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorType::Permission, ErrorKind::Permission, message)
            .with_code("model_not_allowed")
    }

    pub fn model_not_found(model: &str) -> Self {
        let model = llm_proxy_core::request_log::clean_text(model, 256);
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            ErrorKind::NotFound,
            format!(
                "The model `{model}` does not exist or is not configured on this gateway. \
                 GET /v1/models lists the models your key may use; name one as `provider/model` \
                 (e.g. `openai/gpt-4o`) or by its alias."
            ),
        )
        .with_param(Some("model".into()))
        .with_code("model_not_found")
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::InvalidRequest,
            ErrorKind::BodyTooLarge,
            format!("Request body is larger than the gateway's limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    /// What the client asked to make exists already (a username).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorType::InvalidRequest, ErrorKind::InvalidRequest, message)
            .with_code("conflict")
    }

    /// Something the client named that does not exist for it (a stored response of another key
    /// included: which is which is not told).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorType::InvalidRequest, ErrorKind::NotFound, message)
    }

    pub fn not_found_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorType::InvalidRequest, ErrorKind::NotFound, "Unknown path.")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::InvalidRequest,
            ErrorKind::InvalidRequest,
            "This path does not accept that method.",
        )
    }

    pub fn body_timeout(after: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorType::InvalidRequest,
            ErrorKind::InvalidRequest,
            format!("The request body did not arrive within {} s.", after.as_secs()),
        )
        .with_code("request_timeout")
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorType::Server, ErrorKind::Internal, message)
    }

    /// `connections.max_in_flight` requests are already running.
    pub fn overloaded(max_in_flight: usize) -> Self {
        Self {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::Server,
                ErrorKind::Overloaded,
                format!("The gateway is at its limit of {max_in_flight} requests in flight; retry shortly."),
            )
            .with_code("gateway_overloaded")
        }
    }

    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Server,
            ErrorKind::Shutdown,
            "The gateway is shutting down; retry on another instance.",
        )
        .with_code("shutting_down")
    }

    /// Every deployment of a route has its circuit breaker open.
    pub fn all_deployments_unavailable(retry_in: Duration) -> Self {
        let secs = retry_in.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(retry_in),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::Upstream,
                ErrorKind::UpstreamUnavailable,
                format!(
                    "Every deployment for this model is failing and has been taken out of rotation; retry in {secs} s."
                ),
            )
            .with_code("deployments_unavailable")
        }
    }

    /// A route's time budget ran out before any attempt could be made.
    pub fn route_timed_out(after: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorType::Upstream,
            ErrorKind::UpstreamTimeout,
            format!("No upstream answered within the route's {} s budget.", after.as_secs()),
        )
        .with_code("route_timeout")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorType::Server, ErrorKind::Internal, "Internal error.")
    }

    /// Maps an upstream failure. The upstream's message is passed on for statuses that are the
    /// client's business (bad request, rate limit, upstream outage); an upstream 401/403 means the
    /// gateway's own credentials were refused, so its text (which may quote the key) is withheld.
    pub fn upstream(provider: &str, err: &ProviderError) -> Self {
        match err {
            ProviderError::Connect(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                ErrorType::Upstream,
                ErrorKind::UpstreamConnect,
                format!("Could not reach upstream provider `{provider}`."),
            )
            .with_code("upstream_unreachable"),
            ProviderError::Timeout(phase) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorType::Upstream,
                ErrorKind::UpstreamTimeout,
                format!(
                    "Upstream provider `{provider}` timed out {}.",
                    match phase {
                        TimeoutPhase::Connect => "while connecting",
                        TimeoutPhase::FirstByte => "before answering",
                        TimeoutPhase::BetweenChunks => "in the middle of its answer",
                    }
                ),
            )
            .with_code("upstream_timeout"),
            ProviderError::Status { status, message, code, retry_after, failure } => {
                let upstream_code = code.clone().unwrap_or_else(|| format!("upstream_{status}"));
                if *failure == Failure::Auth {
                    return Self::new(
                        StatusCode::BAD_GATEWAY,
                        ErrorType::Upstream,
                        ErrorKind::UpstreamStatus,
                        format!("Upstream provider `{provider}` refused the gateway's credentials (HTTP {status}); the operator must check its API key."),
                    )
                    .with_code(format!("upstream_{status}"));
                }
                match *status {
                    400 | 404 | 409 | 413 | 422 => Self {
                        code: Some(upstream_code),
                        ..Self::new(
                            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                            ErrorType::InvalidRequest,
                            ErrorKind::UpstreamStatus,
                            format!("Upstream provider `{provider}` rejected the request: {message}"),
                        )
                    },
                    // Anthropic's "overloaded": a temporary outage, to be retried later.
                    529 => Self {
                        code: Some(upstream_code),
                        retry_after: *retry_after,
                        ..Self::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            ErrorType::Upstream,
                            ErrorKind::UpstreamStatus,
                            format!("Upstream provider `{provider}` is overloaded: {message}"),
                        )
                    },
                    429 => Self {
                        code: Some(upstream_code),
                        retry_after: *retry_after,
                        ..Self::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            ErrorType::RateLimit,
                            ErrorKind::UpstreamStatus,
                            format!("Upstream provider `{provider}` is rate limiting: {message}"),
                        )
                    },
                    _ => Self {
                        code: Some(upstream_code),
                        ..Self::new(
                            StatusCode::BAD_GATEWAY,
                            ErrorType::Upstream,
                            ErrorKind::UpstreamStatus,
                            format!("Upstream provider `{provider}` failed with HTTP {status}: {message}"),
                        )
                    },
                }
            }
            ProviderError::Protocol(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                ErrorType::Upstream,
                ErrorKind::UpstreamProtocol,
                format!("Upstream provider `{provider}` answered with an invalid response."),
            )
            .with_code("upstream_invalid_response"),
            ProviderError::Reported(message) => Self::new(
                StatusCode::BAD_GATEWAY,
                ErrorType::Upstream,
                ErrorKind::StreamInterrupted,
                format!("Upstream provider `{provider}` failed mid-answer: {message}"),
            )
            .with_code("upstream_error"),
            ProviderError::Untranslatable(e) => {
                Self::bad_request(format!("This request cannot be sent to provider `{provider}`: {}", e.message))
                    .with_param(e.param.clone())
                    .with_code("untranslatable_request")
            }
            ProviderError::Unsupported(what) => {
                Self::bad_request(format!("Provider `{provider}` cannot serve this request: {what}."))
                    .with_code("unsupported_by_provider")
            }
            ProviderError::Spent(cause) => Self::upstream(provider, cause),
            ProviderError::BodyTooLarge { limit } => Self::body_too_large(*limit),
            ProviderError::Interrupted(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                ErrorType::Upstream,
                ErrorKind::StreamInterrupted,
                format!("Upstream provider `{provider}` broke off its answer."),
            )
            .with_code("upstream_interrupted"),
        }
    }

    /// The JSON body, also used for an error event inside a stream.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind.as_str(), "param": self.param, "code": self.code}})
    }
}

impl ApiError {
    /// Anthropic's error `type` for this status.
    pub fn anthropic_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            504 => "timeout_error",
            // The upstream is overloaded (Anthropic's 529) or the gateway is shutting down: retry.
            503 | 529 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The body in Anthropic's shape, also used for an `error` event inside a stream.
    pub fn anthropic_body(&self) -> serde_json::Value {
        json!({"type": "error", "error": {"type": self.anthropic_type(), "message": self.message}})
    }

    /// The response in the shape of the client's protocol.
    pub fn into_response_for(self, protocol: WireProtocol) -> Response {
        let body = match protocol {
            WireProtocol::Anthropic => self.anthropic_body(),
            _ => self.body(),
        };
        self.respond(body)
    }

    fn respond(self, body: serde_json::Value) -> Response {
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up, at least one.
            let secs = wait.as_micros().div_ceil(1_000_000).max(1);
            resp.headers_mut().insert("retry-after", HeaderValue::from(u64::try_from(secs).unwrap_or(u64::MAX)));
        }
        crate::accounting::apply_headers(&mut resp, &self.headers);
        if self.status == StatusCode::PAYLOAD_TOO_LARGE || self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body was never read, so the connection cannot carry another request.
            resp.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        self.respond(body)
    }
}
