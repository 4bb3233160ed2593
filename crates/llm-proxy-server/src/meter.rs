//! `RequestMeter`: collects what the request log needs as a request runs and records exactly one
//! entry when it ends — on success, on error, or in `Drop` when the client went away (axum drops
//! the handler future or the response stream), billed for what was received up to then.

use std::time::Instant;

use llm_proxy_core::log_writer::LogSink;
use llm_proxy_core::model_catalog::Resolved;
use llm_proxy_core::provider::TokenUsage;
use llm_proxy_core::request_log::{AttemptRecord, RequestLogEntry, STATUS_CLIENT_CLOSED, clean_text, error_kind};
use llm_proxy_core::shared_state::InFlightGuard;

use crate::error::ApiError;

/// Longest model name and error message kept in a log row; clients choose both.
const MAX_MODEL_CHARS: usize = 256;
const MAX_MESSAGE_CHARS: usize = 1000;

pub struct RequestMeter {
    sink: LogSink,
    started: Instant,
    entry: RequestLogEntry,
    usage: Option<TokenUsage>,
    /// The serving deployment's in-flight slot, released when the request is recorded.
    in_flight: Option<InFlightGuard>,
    recorded: bool,
}

impl RequestMeter {
    pub fn start(sink: LogSink, request_id: &str, endpoint: &str) -> Self {
        Self {
            sink,
            started: Instant::now(),
            entry: RequestLogEntry {
                request_id: request_id.to_string(),
                created_at: llm_proxy_core::now_ms(),
                endpoint: endpoint.to_string(),
                ..Default::default()
            },
            usage: None,
            in_flight: None,
            recorded: false,
        }
    }

    pub fn set_key(&mut self, key_id: Option<&str>) {
        self.entry.key_id = key_id.map(String::from);
    }

    pub fn set_model(&mut self, model: &str, stream: bool) {
        self.entry.model = Some(clean_text(model, MAX_MODEL_CHARS));
        self.entry.stream = stream;
    }

    pub fn set_target(&mut self, target: &Resolved) {
        self.entry.provider = Some(target.provider_name.clone());
        self.entry.upstream_model = Some(target.upstream_model.clone());
    }

    /// The deployment that served the request (after retries and fallbacks).
    pub fn set_deployment(&mut self, provider: &str, upstream_model: &str) {
        self.entry.provider = Some(provider.to_string());
        self.entry.upstream_model = Some(upstream_model.to_string());
    }

    pub fn set_attempts(&mut self, attempts: Vec<AttemptRecord>) {
        self.entry.attempts = attempts;
    }

    /// Keeps the deployment's in-flight slot until the request ends.
    pub fn hold(&mut self, guard: Option<InFlightGuard>) {
        self.in_flight = guard;
    }

    /// Marks the first token as arrived (only the first call counts).
    pub fn first_token(&mut self) {
        if self.entry.ttft_ms.is_none() {
            self.entry.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    /// Upstream usage; later reports replace earlier ones (streams report cumulative totals).
    pub fn usage(&mut self, usage: TokenUsage) {
        self.usage = Some(usage);
    }

    pub fn succeed(mut self, status: u16) {
        self.record(status, None, None);
    }

    pub fn fail(mut self, err: &ApiError) {
        self.record(err.status.as_u16(), Some(err.log_kind), Some(err.message.clone()));
    }

    fn record(&mut self, status: u16, kind: Option<&str>, message: Option<String>) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        self.in_flight = None;
        let mut entry = std::mem::take(&mut self.entry);
        entry.status = status;
        entry.latency_ms = self.started.elapsed().as_millis() as u64;
        entry.prompt_tokens = self.usage.map(|u| u.prompt_tokens);
        entry.completion_tokens = self.usage.map(|u| u.completion_tokens);
        entry.error_kind = kind.map(String::from);
        entry.error_message = message.map(|m| clean_text(&m, MAX_MESSAGE_CHARS));
        self.sink.record(entry);
    }
}

impl Drop for RequestMeter {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(
                STATUS_CLIENT_CLOSED,
                Some(error_kind::CLIENT_DISCONNECT),
                Some("the client disconnected before the answer was complete".into()),
            );
        }
    }
}
