//! Walking a plan of upstream calls: the first choice, retries, fallbacks — with backoff, the
//! upstream's `retry-after`, circuit breakers and hard caps on attempts and time. Only failures
//! that another try could fix are retried (unreachable, timeouts, 429, 5xx); a request the
//! upstream refused as bad (400, 401, 403, ...) ends the walk, except a context-window overflow,
//! which switches to the route's context-window fallbacks.
//!
//! A streamed answer counts as a success only once its first chunk has arrived (awaited up to
//! `FIRST_CHUNK_WINDOW`), so a stream that fails before its first byte falls over invisibly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::model_catalog::Resolved;
use llm_proxy_core::provider::{ChatOutput, Failure, ProviderError};
use llm_proxy_core::request_log::AttemptRecord;
use llm_proxy_core::routing::{Deployment, DeploymentKey};
use llm_proxy_core::shared_state::{BreakerVerdict, DeploymentHealth, InFlightGuard};
use llm_proxy_providers::ProviderClient;
use rand::Rng;

use crate::accounting::{Accounting, DeploymentReservation};
use crate::error::ApiError;
use llm_proxy_core::limits::{RateLimits, Refusal};
use llm_proxy_core::request_log::ErrorKind;

/// How long the first chunk of a stream is awaited before answering 200. Within it, a stream that
/// fails at once still gets an honest status — or another deployment; past it, the client gets
/// headers and keep-alives while a slow (thinking) model works, instead of silence that
/// idle-timeout proxies would cut.
pub const FIRST_CHUNK_WINDOW: Duration = Duration::from_secs(1);
/// Backoff before calling the same deployment again: full jitter up to this base × 2^n...
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// ...capped here.
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// One deployment a request may be sent to.
#[derive(Clone)]
pub struct Candidate {
    pub client: Arc<ProviderClient>,
    via: Via,
}

#[derive(Clone)]
enum Via {
    /// A route's deployment: it has health (breaker, in-flight, latency) and may have its own
    /// rate limits, checked before each call to it.
    Route(Arc<Deployment>),
    /// A model named directly: no health, no limits of its own.
    Direct(Resolved),
}

impl Candidate {
    pub fn routed(client: Arc<ProviderClient>, deployment: Arc<Deployment>) -> Self {
        Self { client, via: Via::Route(deployment) }
    }

    pub fn direct(client: Arc<ProviderClient>, target: Resolved) -> Self {
        Self { client, via: Via::Direct(target) }
    }

    fn target(&self) -> &Resolved {
        match &self.via {
            Via::Route(d) => &d.target,
            Via::Direct(t) => t,
        }
    }

    pub fn provider_name(&self) -> &str {
        &self.target().provider_name
    }

    /// The model id the upstream knows it by.
    pub fn upstream_model(&self) -> &str {
        &self.target().upstream_model
    }

    fn health(&self) -> Option<&Arc<dyn DeploymentHealth>> {
        match &self.via {
            Via::Route(d) => Some(&d.health),
            Via::Direct(_) => None,
        }
    }

    /// The deployment's own limits, and the key they are counted under.
    fn limits(&self) -> Option<(&DeploymentKey, &RateLimits)> {
        match &self.via {
            Via::Route(d) => d.limits.as_ref().map(|l| (&d.key, l)),
            Via::Direct(_) => None,
        }
    }

    fn same_deployment(&self, other: &Candidate) -> bool {
        self.provider_name() == other.provider_name() && self.upstream_model() == other.upstream_model()
    }
}

/// What to try for one request.
pub struct Plan {
    pub attempts: Vec<Candidate>,
    pub context_fallbacks: Vec<Candidate>,
    /// Time allowed for all attempts before an answer starts.
    pub deadline: Duration,
}

impl Plan {
    pub fn single(candidate: Candidate, deadline: Duration) -> Self {
        Self { attempts: vec![candidate], context_fallbacks: Vec::new(), deadline }
    }

    /// Provider and upstream model of the first attempt: what admission prices and limits.
    pub fn first(&self) -> (&str, &str) {
        self.attempts.first().map_or(("", ""), |c| (c.provider_name(), c.upstream_model()))
    }
}

/// The attempt that answered.
pub struct Served<T> {
    pub value: T,
    pub candidate: Candidate,
    /// Held for as long as the answer runs (drop it when the response ends): least-connections
    /// counts it.
    pub in_flight: Option<InFlightGuard>,
    /// What the call reserved on its deployment's own limits: settle it with the request.
    pub reservation: DeploymentReservation,
}

/// What admits each attempt besides the breaker: the deployment's own rate limits, counted over
/// all keys. A deployment over its limit is skipped like one with an open breaker.
pub struct DeploymentGate<'a> {
    pub accounting: &'a Accounting,
    /// Tokens each attempt reserves (the request's estimate).
    pub tokens: u64,
}

/// Every upstream call made, successful or not, for the request log.
pub type Attempts = Vec<AttemptRecord>;

/// What a failure means for the rest of the plan.
enum Verdict {
    /// Try the next attempt. `unhealthy`: count it against the deployment's breaker.
    Retry { unhealthy: bool, retry_after: Option<Duration> },
    /// The request is too long for this model: go to the context-window fallbacks.
    ContextWindow,
    /// Nothing else would do better (a bad request, refused credentials).
    Final,
}

fn verdict(e: &ProviderError) -> Verdict {
    match e {
        ProviderError::Connect(_)
        | ProviderError::Timeout(_)
        | ProviderError::Protocol(_)
        | ProviderError::Interrupted(_)
        | ProviderError::Reported(_) => Verdict::Retry { unhealthy: true, retry_after: None },
        // The adapter classified the failure where it was born; no upstream text is read here.
        ProviderError::Status { failure, retry_after, .. } => match failure {
            Failure::ContextOverflow => Verdict::ContextWindow,
            Failure::RateLimited | Failure::Unavailable => {
                Verdict::Retry { unhealthy: true, retry_after: *retry_after }
            }
            Failure::Auth | Failure::Rejected => Verdict::Final,
        },
        ProviderError::Untranslatable(_) | ProviderError::Unsupported(_) | ProviderError::BodyTooLarge { .. } => {
            Verdict::Final
        }
        // The body cannot be sent again, wherever the failure came from.
        ProviderError::Spent(_) => Verdict::Final,
    }
}

/// A streamed upload is not tried again, whatever failed; but when what failed was the deployment
/// (down, overloaded, cut off), its breaker still hears of it.
fn spent_on_an_unhealthy_deployment(e: &ProviderError) -> bool {
    matches!(e, ProviderError::Spent(cause) if matches!(verdict(cause), Verdict::Retry { unhealthy: true, .. }))
}

fn backoff(retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << retry.min(10)).min(BACKOFF_CAP);
    ceiling.mul_f64(rand::thread_rng().r#gen::<f64>())
}

/// Walks `plan`, calling `call` for each attempt that `gate` and the deployment's breaker admit,
/// until one succeeds or nothing is left to try. When every deployment was over its own limit the
/// answer is 429 with the soonest `retry-after`.
pub async fn run<T, F, Fut>(
    plan: Plan,
    gate: DeploymentGate<'_>,
    mut call: F,
) -> (Result<Served<T>, ApiError>, Attempts)
where
    F: FnMut(&Candidate, bool) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let started = Instant::now();
    let mut queue: VecDeque<Candidate> = plan.attempts.into();
    let mut context_fallbacks = Some(plan.context_fallbacks);
    let mut attempts = Attempts::new();
    let mut last_error: Option<ApiError> = None;
    let mut soonest_retry: Option<Duration> = None;
    // The refusal of a deployment over its own limit that frees up soonest.
    let mut limited: Option<Refusal> = None;
    // The deployment just tried and how long to wait before trying it again.
    let mut previous: Option<(Candidate, Duration)> = None;
    let mut retries = 0;
    while let Some(candidate) = queue.pop_front() {
        if let Some((prev, wait)) = previous.take()
            && prev.same_deployment(&candidate)
        {
            let wait = wait.max(backoff(retries));
            if started.elapsed() + wait >= plan.deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        if started.elapsed() >= plan.deadline {
            break;
        }
        let reservation = match candidate.limits() {
            None => DeploymentReservation::default(),
            Some((key, limits)) => match gate.accounting.admit_deployment(key.as_str(), limits, gate.tokens).await {
                Ok(r) => r,
                Err(why) => {
                    attempts.push(record(&candidate, 429, Duration::ZERO, Some(ErrorKind::RateLimited)));
                    if limited.as_ref().is_none_or(|l| why.retry_after < l.retry_after) {
                        limited = Some(why);
                    }
                    continue;
                }
            },
        };
        let guard = match candidate.health() {
            None => None,
            Some(h) => match h.admit(UnixMillis::now()) {
                BreakerVerdict::Reject { retry_in } => {
                    gate.accounting.release(reservation);
                    soonest_retry = Some(soonest_retry.map_or(retry_in, |s| s.min(retry_in)));
                    continue;
                }
                BreakerVerdict::Allow | BreakerVerdict::Probe => Some(llm_proxy_core::shared_state::start(h)),
            },
        };
        // The last attempt may take the request instead of a copy of it.
        let last = queue.is_empty() && context_fallbacks.as_ref().is_none_or(Vec::is_empty);
        let t0 = Instant::now();
        let result = call(&candidate, last).await;
        let latency = t0.elapsed();
        match result {
            Ok(value) => {
                if let Some(h) = candidate.health() {
                    h.record_success(UnixMillis::now(), Some(latency));
                }
                attempts.push(record(&candidate, 200, latency, None));
                return (Ok(Served { value, candidate, in_flight: guard, reservation }), attempts);
            }
            Err(e) => {
                gate.accounting.release(reservation);
                let err = ApiError::upstream(candidate.provider_name(), &e);
                let status = match &e {
                    ProviderError::Status { status, .. } => *status,
                    _ => err.status.as_u16(),
                };
                attempts.push(record(&candidate, status, latency, Some(err.log_kind)));
                tracing::debug!(provider = %candidate.provider_name(), model = %candidate.upstream_model(), error = %e, "attempt failed");
                match verdict(&e) {
                    Verdict::Final => {
                        if let Some(h) = candidate.health() {
                            if spent_on_an_unhealthy_deployment(&e) {
                                h.record_failure(UnixMillis::now());
                            } else {
                                // It answered: the deployment is up, whatever it thought of the request.
                                h.record_success(UnixMillis::now(), None);
                            }
                        }
                        return (Err(err), attempts);
                    }
                    Verdict::ContextWindow => {
                        if let Some(h) = candidate.health() {
                            h.record_success(UnixMillis::now(), None);
                        }
                        match context_fallbacks.take() {
                            Some(f) if !f.is_empty() => queue = f.into(),
                            _ => return (Err(err), attempts),
                        }
                    }
                    Verdict::Retry { unhealthy, retry_after } => {
                        if unhealthy && let Some(h) = candidate.health() {
                            h.record_failure(UnixMillis::now());
                        }
                        previous = Some((candidate, retry_after.unwrap_or_default()));
                        retries += 1;
                    }
                }
                last_error = Some(err);
            }
        }
    }
    let err = match (last_error, limited, soonest_retry) {
        (Some(e), _, _) => e,
        (None, Some(why), breakers) => {
            // Over their limits (and any others out with open breakers): the client should slow
            // down, and may come back when the first of them has room.
            let wait = breakers.map_or(why.retry_after, |b| why.retry_after.min(b));
            ApiError::rate_limited(&why.message, why.kind.code(), wait)
        }
        (None, None, Some(retry_in)) => ApiError::all_deployments_unavailable(retry_in),
        (None, None, None) => ApiError::route_timed_out(plan.deadline),
    };
    (Err(err), attempts)
}

fn record(c: &Candidate, status: u16, latency: Duration, error_kind: Option<ErrorKind>) -> AttemptRecord {
    AttemptRecord {
        provider: c.provider_name().to_string(),
        model: c.upstream_model().to_string(),
        status,
        latency_ms: latency.as_millis() as u64,
        error_kind,
    }
}

/// Waits for a stream's first item (up to `FIRST_CHUNK_WINDOW`), so that a stream failing before
/// its first byte is an attempt that failed. The item is put back in front; a stream still quiet
/// after the window is committed to as it is.
pub async fn prime(output: ChatOutput) -> Result<ChatOutput, ProviderError> {
    Ok(match output {
        ChatOutput::Stream(s) => ChatOutput::Stream(Box::pin(prime_stream(s).await?)),
        ChatOutput::UnifiedStream(s) => ChatOutput::UnifiedStream(Box::pin(prime_stream(s).await?)),
        done => done,
    })
}

/// Whether a stream item carries part of the answer. Framing that precedes it (Anthropic's
/// `message_start` and `content_block_start`, a translated stream's start and usage) is held back
/// while priming: an upstream that fails right after its framing has still sent no answer.
trait Content {
    fn is_content(&self) -> bool;
}

impl Content for llm_proxy_core::provider::ChatChunk {
    fn is_content(&self) -> bool {
        matches!(self.kind, llm_proxy_core::provider::ChunkKind::Content)
    }
}

impl Content for llm_proxy_core::unified::StreamEvent {
    fn is_content(&self) -> bool {
        use llm_proxy_core::unified::StreamEvent;
        !matches!(self, StreamEvent::Start { .. } | StreamEvent::Usage(_))
    }
}

/// Framing items held back at most: past that, the stream is committed to.
const MAX_HELD: usize = 32;

async fn prime_stream<S, T>(
    mut s: S,
) -> Result<impl futures_util::Stream<Item = Result<T, ProviderError>>, ProviderError>
where
    S: futures_util::Stream<Item = Result<T, ProviderError>> + Unpin,
    T: Content,
{
    let deadline = tokio::time::Instant::now() + FIRST_CHUNK_WINDOW;
    let mut held = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Ok(item))) => {
                let content = item.is_content();
                held.push(item);
                if content || held.len() >= MAX_HELD {
                    break;
                }
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) if held.is_empty() => {
                return Err(ProviderError::Interrupted("the upstream stream was empty".into()));
            }
            // `next` is cancel-safe: nothing is lost by giving up on it.
            Ok(None) | Err(_) => break,
        }
    }
    Ok(futures_util::stream::iter(held.into_iter().map(Ok)).chain(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried_follows_the_adapters_classification() {
        let status = |s: u16, failure: Failure| ProviderError::Status {
            status: s,
            message: "whatever the upstream said".into(),
            code: None,
            retry_after: Some(Duration::from_secs(3)),
            failure,
        };
        assert!(matches!(
            verdict(&status(500, Failure::Unavailable)),
            Verdict::Retry { unhealthy: true, retry_after: Some(d) } if d == Duration::from_secs(3)
        ));
        assert!(matches!(verdict(&status(429, Failure::RateLimited)), Verdict::Retry { .. }));
        assert!(matches!(verdict(&status(400, Failure::Rejected)), Verdict::Final));
        let spent = |e: ProviderError| ProviderError::Spent(Box::new(e));
        assert!(matches!(verdict(&spent(status(503, Failure::Unavailable))), Verdict::Final), "never sent again");
        assert!(spent_on_an_unhealthy_deployment(&spent(status(503, Failure::Unavailable))));
        assert!(!spent_on_an_unhealthy_deployment(&spent(status(400, Failure::Rejected))));
        assert!(matches!(verdict(&status(400, Failure::Auth)), Verdict::Final));
        assert!(matches!(verdict(&status(400, Failure::ContextOverflow)), Verdict::ContextWindow));
        assert!(matches!(verdict(&ProviderError::Connect("refused".into())), Verdict::Retry { .. }));
    }

    #[test]
    fn backoff_grows_with_jitter_under_a_cap() {
        for n in 0..20 {
            assert!(backoff(n) <= BACKOFF_CAP);
        }
        assert!(backoff(0) <= BACKOFF_BASE);
    }
}
