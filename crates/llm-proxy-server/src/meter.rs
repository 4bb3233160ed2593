//! `RequestMeter`: collects what the request log needs as a request runs and records exactly one
//! entry when it ends — on success, on error, or in `Drop` when the client went away (axum drops
//! the handler future or the response stream), billed for what was received up to then.
//!
//! A request that never authenticated leaves no row: a flood of keyless requests would otherwise
//! fill the database (it is counted per address in `Shared::auth_failures` instead).

use std::time::Instant;

use llm_proxy_core::log_writer::LogSink;
use llm_proxy_core::model_catalog::Resolved;
use llm_proxy_core::provider::{ChatInput, TokenUsage};
use llm_proxy_core::request_log::{AttemptRecord, ErrorKind, RequestLogEntry, STATUS_CLIENT_CLOSED, clean_text};
use llm_proxy_core::shared_state::InFlightGuard;
use llm_proxy_core::unified::WireProtocol;

use crate::accounting::{Accounting, Admission, DeploymentReservation};

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
    /// Reservations and the price table; settled when the request is recorded.
    admission: Option<Admission>,
    /// The serving deployment's price, looked up once when it is known.
    price: Option<llm_proxy_core::pricing::ModelPrice>,
    /// The request body and its protocol, kept (a reference count, not a copy) to count its
    /// tokens locally should the upstream report none.
    body: Option<(bytes::Bytes, WireProtocol)>,
    /// Content chunks streamed to the client: roughly one token each, the completion estimate
    /// when the upstream reports no usage.
    content_chunks: u64,
    /// Set once the caller authenticated; before that, nothing is recorded.
    authenticated: bool,
    recorded: bool,
}

impl RequestMeter {
    pub fn start(sink: LogSink, request_id: &str, endpoint: &str) -> Self {
        Self {
            sink,
            started: Instant::now(),
            entry: RequestLogEntry {
                request_id: request_id.to_string(),
                created_at: llm_proxy_core::UnixMillis::now(),
                endpoint: endpoint.to_string(),
                ..Default::default()
            },
            usage: None,
            in_flight: None,
            admission: None,
            price: None,
            body: None,
            content_chunks: 0,
            authenticated: false,
            recorded: false,
        }
    }

    /// The caller authenticated (as this key, or as the master key when `None`).
    pub fn set_key(&mut self, key_id: Option<&str>) {
        self.authenticated = true;
        self.entry.key_id = key_id.map(String::from);
    }

    pub fn set_model(&mut self, model: &str, stream: bool) {
        self.entry.model = Some(clean_text(model, MAX_MODEL_CHARS));
        self.entry.stream = stream;
    }

    /// The answer turned out a stream (an upload's `stream` field is not read before it is sent).
    pub fn set_streamed(&mut self) {
        self.entry.stream = true;
    }

    pub fn set_target(&mut self, target: &Resolved) {
        self.entry.provider = Some(target.provider_name.clone());
        self.entry.upstream_model = Some(target.upstream_model.clone());
    }

    /// The deployment that served the request (after retries and fallbacks).
    pub fn set_deployment(&mut self, provider: &str, upstream_model: &str) {
        self.price = self.admission.as_ref().and_then(|a| a.price(provider, upstream_model)).cloned();
        self.entry.provider = Some(provider.to_string());
        self.entry.upstream_model = Some(upstream_model.to_string());
    }

    /// The provider a call without a model went to (the Files and Batches APIs).
    pub fn set_provider(&mut self, provider: &str) {
        self.entry.provider = Some(provider.to_string());
    }

    pub fn set_attempts(&mut self, attempts: Vec<AttemptRecord>) {
        self.entry.attempts = attempts;
    }

    pub fn admit(&mut self, admission: Admission) {
        self.admission = Some(admission);
    }

    /// The serving deployment's own reservation, settled with the request's.
    pub fn hold_reservation(&mut self, reservation: DeploymentReservation, accounting: &Accounting) {
        match self.admission.as_mut() {
            Some(a) => a.hold(reservation, accounting),
            None => accounting.release(reservation),
        }
    }

    pub fn keep_body(&mut self, body: bytes::Bytes, protocol: WireProtocol) {
        self.body = Some((body, protocol));
    }

    /// The key's user, for the log and per-user stats.
    pub fn set_user(&mut self, user: Option<&str>) {
        self.entry.user = user.map(String::from);
    }

    /// A content chunk went to the client.
    pub fn content_chunk(&mut self) {
        self.content_chunks += 1;
    }

    /// The cost of the usage reported so far at the serving deployment's price.
    pub fn cost_usd(&self) -> Option<f64> {
        Some(llm_proxy_core::pricing::cost(self.price.as_ref()?, self.usage.as_ref()?).usd)
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
        if !self.authenticated {
            self.recorded = true;
            return;
        }
        self.record(err.status.as_u16(), Some(err.log_kind), Some(err.message.clone()));
    }

    fn record(&mut self, status: u16, kind: Option<ErrorKind>, message: Option<String>) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        self.in_flight = None;
        let mut entry = std::mem::take(&mut self.entry);
        entry.status = status;
        entry.latency_ms = self.started.elapsed().as_millis() as u64;
        entry.error_kind = kind;
        entry.error_message = message.map(|m| clean_text(&m, MAX_MESSAGE_CHARS));
        let done =
            Finished { entry, admission: self.admission.take(), price: self.price.take(), sink: self.sink.clone() };
        // No usage from the upstream although an answer (or part of one) went out: count the
        // prompt locally. That is tokenizing, possibly megabytes of it, and this may be a `Drop`
        // on an async worker: it goes to a blocking thread, and the row follows from there.
        match (self.usage, self.content_chunks, self.body.take()) {
            (None, chunks @ 1.., body) => llm_proxy_core::cpu_pool::detach(move || {
                let request = body.and_then(|(bytes, protocol)| ChatInput::decode(protocol, &bytes));
                let prompt = request.map_or(0, |r| r.prompt_tokens());
                let usage = TokenUsage { prompt_tokens: prompt, completion_tokens: chunks, ..Default::default() };
                done.record(Some(usage), true);
            }),
            _ => done.record(self.usage, false),
        }
    }
}

/// A request's outcome, ready to be priced, settled and logged.
struct Finished {
    entry: RequestLogEntry,
    admission: Option<Admission>,
    price: Option<llm_proxy_core::pricing::ModelPrice>,
    sink: LogSink,
}

impl Finished {
    fn record(self, usage: Option<TokenUsage>, estimated: bool) {
        let Self { mut entry, admission, price, sink } = self;
        entry.cost_estimated = estimated;
        entry.prompt_tokens = usage.map(|u| u.prompt_tokens);
        entry.completion_tokens = usage.map(|u| u.completion_tokens);
        if let Some(u) = usage {
            entry.cached_tokens = Some(u.cached_tokens).filter(|n| *n > 0);
            entry.cache_write_tokens = Some(u.cache_write_tokens).filter(|n| *n > 0);
            entry.reasoning_tokens = Some(u.reasoning_tokens).filter(|n| *n > 0);
        }
        if let Some(mut admission) = admission {
            let mut cost_micros = 0;
            if let (Some(u), Some(price)) = (&usage, &price) {
                let c = llm_proxy_core::pricing::cost(price, u);
                entry.cost_usd = Some(c.usd);
                cost_micros = c.micros;
            }
            let tokens = usage.map_or(0, |u| u.prompt_tokens.saturating_add(u.completion_tokens));
            admission.settle(tokens, cost_micros);
        }
        sink.record(entry);
    }
}

impl Drop for RequestMeter {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(
                STATUS_CLIENT_CLOSED,
                Some(ErrorKind::ClientDisconnect),
                Some("the client disconnected before the answer was complete".into()),
            );
        }
    }
}
