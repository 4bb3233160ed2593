//! Limits, budgets and cost on the request path: admission before the upstream call (parallel
//! slot, then one atomic check-and-reserve over every rate limit and budget the request is subject
//! to), pricing from the registry, and settling the reservations after the answer — off the request
//! path, through a queue.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{HeaderName, HeaderValue};
use llm_proxy_core::UnixMillis;
use llm_proxy_core::config::{BudgetConfig, Config, RateLimitConfig};
use llm_proxy_core::limits::{
    Budgets, IpLimiter, LimitKind, LimitPolicy, LimitSpec, ParallelSlots, RateLimits, Refusal, RequestFacts, Scope,
    SlotGuard, headers, limits as limits_of, refusal, settles_for,
};
use llm_proxy_core::pricing::{ModelPrice, PriceTable, estimate_max};
use llm_proxy_core::shared_state::{Counters, Settle};
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::error::ApiError;

/// Settles waiting to be applied; past this they are dropped (and counted), never blocking a request.
const SETTLE_QUEUE: usize = 65_536;

pub struct Accounting {
    pub counters: Arc<dyn Counters>,
    pub policy: LimitPolicy,
    pub prices: ArcSwap<PriceTable>,
    pub slots: ParallelSlots,
    /// `rate_limits.per_ip_requests_per_minute`, and its counter (per instance).
    pub ip_rpm: Option<u64>,
    pub ip: IpLimiter,
    settles: mpsc::Sender<Vec<Settle>>,
    /// `max_tokens_ceiling`: the most answer tokens a request may ask for, and what one reserves
    /// when the registry does not know its model's output limit.
    pub max_tokens_ceiling: u64,
    /// Whether the config sets any limit or budget: when not, only keys with their own pay for
    /// admission.
    configured: bool,
}

fn rates(c: &RateLimitConfig) -> RateLimits {
    RateLimits {
        requests_per_minute: c.requests_per_minute,
        tokens_per_minute: c.tokens_per_minute,
        max_parallel: c.max_parallel,
    }
}

fn budgets(c: &BudgetConfig) -> Budgets {
    Budgets { hourly: c.hourly_limit, daily: c.daily_limit, monthly: c.monthly_limit }
}

impl Accounting {
    pub fn new(
        config: &Config,
        counters: Arc<dyn Counters>,
        prices: PriceTable,
    ) -> (Self, mpsc::Receiver<Vec<Settle>>) {
        let rl = &config.rate_limits;
        let cb = &config.cost_budget;
        let policy = LimitPolicy {
            defaults: rates(&rl.per_key),
            per_user: rl.per_user.as_ref().map(rates).unwrap_or_default(),
            per_model: rl.per_model.iter().map(|(m, r)| (m.clone(), rates(r))).collect(),
            global_budget: budgets(&cb.global),
            user_budget: cb.per_user.as_ref().map(budgets).unwrap_or_default(),
        };
        let configured = policy.defaults != RateLimits::default()
            || policy.per_user != RateLimits::default()
            || !policy.per_model.is_empty()
            || policy.global_budget != Budgets::default()
            || policy.user_budget != Budgets::default();
        let (tx, rx) = mpsc::channel(SETTLE_QUEUE);
        let me = Self {
            counters,
            policy,
            prices: ArcSwap::from_pointee(prices),
            slots: ParallelSlots::new(),
            ip_rpm: rl.per_ip_requests_per_minute,
            ip: IpLimiter::new(),
            settles: tx,
            max_tokens_ceiling: config.max_tokens_ceiling,
            configured,
        };
        (me, rx)
    }

    /// Applies settles as they come, until the queue closes. Whatever has queued up meanwhile goes
    /// in one call, so under load settling costs a fraction of a Redis round trip per request (and
    /// none on the request path).
    pub async fn settle_worker(counters: Arc<dyn Counters>, mut rx: mpsc::Receiver<Vec<Settle>>) {
        /// Settles sent in one call at most.
        const MAX_BATCH: usize = 512;
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.extend(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            counters.settle(&batch).await;
            batch.clear();
        }
    }

    /// Checks and reserves everything `principal` is subject to for one request to `model`, served
    /// first by `provider`/`upstream_model`; `demand` sizes the reservation.
    pub async fn admit(
        &self,
        principal: &Principal,
        model: &str,
        provider: &str,
        upstream_model: &str,
        demand: Demand,
    ) -> Result<Admission, ApiError> {
        let prices = self.prices.load_full();
        let key = match principal {
            Principal::Key(k) => Some(k.as_ref()),
            Principal::Master => None,
        };
        let key_limits = key.map(|k| &k.limits).filter(|l| !l.is_empty());
        if !self.configured && key_limits.is_none() {
            // Nothing to check here; a deployment with its own token limit still needs the size.
            let mut admission = Admission::unlimited(prices, None);
            admission.estimated_tokens = demand.tokens(self.max_tokens_ceiling);
            return Ok(admission);
        }
        let price = prices.lookup(provider, upstream_model).cloned();
        let (estimated_tokens, estimated_cost_micros) = match demand {
            Demand::Billed { prompt_bytes, max_tokens } => {
                // A cheap estimate: about four bytes of JSON per token. It is only a reservation;
                // settling replaces it with the real count.
                let prompt_estimate = (prompt_bytes / 4) as u64;
                // Never more than the model can answer: a client's `max_tokens` is its own number.
                let most = price.as_ref().and_then(|p| p.max_output_tokens).unwrap_or(self.max_tokens_ceiling);
                let max_tokens = max_tokens.map(|m| m.min(most));
                let cost = price.as_ref().map_or(0, |p| estimate_max(p, prompt_estimate, max_tokens));
                (prompt_estimate.saturating_add(max_tokens.unwrap_or(0)), cost)
            }
            Demand::RequestOnly => (0, 0),
        };
        let facts = RequestFacts {
            key_id: key.map(|k| k.id.as_str()),
            key_limits,
            user: key.and_then(|k| k.user.as_deref()),
            model,
            // A deployment's own limits are checked per attempt (`admit_deployment`).
            deployment: None,
            deployment_limits: None,
            estimated_tokens,
            estimated_cost_micros,
            now: UnixMillis::now(),
        };
        let slot = match (self.policy.max_parallel(&facts), facts.key_id) {
            (Some(max), Some(id)) => match self.slots.try_acquire(id, max) {
                Some(g) => Some(g),
                None => return Err(refused(&Refusal::parallel(max), Vec::new())),
            },
            _ => None,
        };
        let mut specs = self.policy.limits_for(&facts);
        if matches!(demand, Demand::RequestOnly) {
            // It spends nothing, so no budget can refuse it.
            specs.retain(|s| s.kind != LimitKind::Spend);
        }
        if specs.is_empty() {
            return Ok(Admission::unlimited(prices, slot));
        }
        let acquired = self.counters.acquire(&limits_of(&specs)).await;
        if acquired.local_fallback {
            tracing::debug!("limits checked locally: the shared counter store is unreachable");
        }
        let headers = headers(&specs, &acquired);
        if !acquired.allowed {
            let mut err = match refusal(&specs, &acquired) {
                Some(why) => refused(&why, Vec::new()),
                // Every refusal names its limit; this only guards against a counter that says no
                // without saying which.
                None => ApiError::rate_limited(
                    "A rate limit of this gateway refused the request.",
                    "rate_limit_exceeded",
                    std::time::Duration::from_secs(1),
                ),
            };
            err.headers = headers;
            return Err(err);
        }
        Ok(Admission { specs, headers, slot, prices, settles: Some(self.settles.clone()), estimated_tokens })
    }

    /// The first limit of one of `kinds` that applies to `principal`'s requests whatever their
    /// model, described ("the key's daily budget ($10.00)"); `None` when none does.
    pub fn spend_limit(&self, principal: &Principal, kinds: &[LimitKind]) -> Option<String> {
        let key = match principal {
            Principal::Key(k) => Some(k.as_ref()),
            Principal::Master => None,
        };
        let facts = RequestFacts {
            key_id: key.map(|k| k.id.as_str()),
            key_limits: key.map(|k| &k.limits).filter(|l| !l.is_empty()),
            user: key.and_then(|k| k.user.as_deref()),
            model: "",
            deployment: None,
            deployment_limits: None,
            estimated_tokens: 0,
            estimated_cost_micros: 0,
            now: UnixMillis::now(),
        };
        self.policy.limits_for(&facts).into_iter().find(|s| kinds.contains(&s.kind)).map(|s| s.describe())
    }

    /// Reserves one call (and `tokens`) against a deployment's own limits, before an attempt is
    /// made on it. Refused: the deployment is skipped like one with an open breaker.
    pub async fn admit_deployment(
        &self,
        key: &str,
        limits: &RateLimits,
        tokens: u64,
    ) -> Result<DeploymentReservation, Refusal> {
        let facts = RequestFacts {
            key_id: None,
            key_limits: None,
            user: None,
            model: "",
            deployment: Some(key),
            deployment_limits: Some(limits),
            estimated_tokens: tokens,
            estimated_cost_micros: 0,
            now: UnixMillis::now(),
        };
        let mut specs = self.policy.limits_for(&facts);
        specs.retain(|s| s.scope == Scope::Deployment);
        if specs.is_empty() {
            return Ok(DeploymentReservation { specs });
        }
        let acquired = self.counters.acquire(&limits_of(&specs)).await;
        match refusal(&specs, &acquired) {
            None => Ok(DeploymentReservation { specs }),
            Some(why) => Err(why),
        }
    }

    /// Gives back what a failed attempt reserved on its deployment (it made no tokens).
    pub fn release(&self, reservation: DeploymentReservation) {
        let batch = settles_for(&reservation.specs, 0, 0);
        if !batch.is_empty() && self.settles.try_send(batch).is_err() {
            tracing::warn!("settle queue full; a reservation stands until its window ends");
        }
    }
}

/// What one attempt reserved on its deployment's own limits.
#[derive(Debug, Default)]
pub struct DeploymentReservation {
    specs: Vec<LimitSpec>,
}

/// What a request may consume, for its reservation.
#[derive(Debug, Clone, Copy)]
pub enum Demand {
    /// A billed call (chat, embeddings): `prompt_bytes` and `max_tokens` size the reservation.
    Billed { prompt_bytes: usize, max_tokens: Option<u64> },
    /// Counted as a request against rate limits, but costs no tokens and no budget (token
    /// counting).
    RequestOnly,
}

impl Demand {
    /// Prompt plus answer tokens, the answer counted up to `most` (without a price at hand).
    fn tokens(self, most: u64) -> u64 {
        match self {
            Self::Billed { prompt_bytes, max_tokens } => {
                ((prompt_bytes / 4) as u64).saturating_add(max_tokens.map_or(0, |m| m.min(most)))
            }
            Self::RequestOnly => 0,
        }
    }
}

fn refused(why: &Refusal, headers: Vec<(&'static str, String)>) -> ApiError {
    ApiError { headers, ..ApiError::rate_limited(&why.message, why.kind.code(), why.retry_after) }
}

/// What admission granted a request, carried by its meter until it is recorded.
pub struct Admission {
    specs: Vec<LimitSpec>,
    /// `x-ratelimit-*` for the response.
    pub headers: Vec<(&'static str, String)>,
    /// Released when the request ends, however it ends.
    slot: Option<SlotGuard>,
    /// The price table this request is priced with (one snapshot for the whole request).
    pub prices: Arc<PriceTable>,
    settles: Option<mpsc::Sender<Vec<Settle>>>,
    /// Prompt and answer tokens reserved: what each attempt reserves on its deployment too.
    pub estimated_tokens: u64,
}

impl Admission {
    /// Nothing reserved: priced only.
    fn unlimited(prices: Arc<PriceTable>, slot: Option<SlotGuard>) -> Self {
        Self { specs: Vec::new(), headers: Vec::new(), slot, prices, settles: None, estimated_tokens: 0 }
    }

    /// The serving deployment's reservation, settled with the rest when the request ends.
    pub fn hold(&mut self, reservation: DeploymentReservation, accounting: &Accounting) {
        if reservation.specs.is_empty() {
            return;
        }
        self.specs.extend(reservation.specs);
        self.settles.get_or_insert_with(|| accounting.settles.clone());
    }

    pub fn price(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        self.prices.lookup(provider, model)
    }

    /// Turns the reservations into the real figures; queued, never waited for.
    pub fn settle(&mut self, tokens: u64, cost_micros: u64) {
        self.slot = None;
        if self.specs.is_empty() {
            return;
        }
        let batch = settles_for(&self.specs, tokens, cost_micros);
        self.specs.clear();
        if let Some(tx) = &self.settles
            && !batch.is_empty()
            && tx.try_send(batch).is_err()
        {
            tracing::warn!("settle queue full; a reservation stands until its window ends");
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // A request dropped without settling (it never reached its meter's record) gives back
        // everything it reserved.
        self.settle(0, 0);
    }
}

/// Adds `headers` to a response.
pub fn apply_headers(resp: &mut axum::response::Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
}
