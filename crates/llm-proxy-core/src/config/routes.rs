//! The `routes` section: public model names backed by several deployments, and how requests are
//! spread over them and moved when one fails. The same shape is stored in the database (as JSON),
//! so a route edited in the admin API is validated by the same rules.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::model_catalog::{ModelCatalog, ResolveError};

/// How a route picks its target for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Each target in turn.
    RoundRobin,
    /// At random, in proportion to the targets' weights.
    Weighted,
    /// The target with the fewest requests in flight (on this instance).
    LeastConnections,
    /// The faster of two random targets, by the moving average of time to first token.
    Latency,
    /// The same conversation to the same target (rendezvous hashing), moving only when it fails.
    ConversationHash,
    /// The target whose example prompts are closest to the request, by embedding.
    Semantic,
}

impl StrategyKind {
    pub const ALL: [&'static str; 6] =
        ["round_robin", "weighted", "least_connections", "latency", "conversation_hash", "semantic"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "round_robin" => Self::RoundRobin,
            "weighted" => Self::Weighted,
            "least_connections" => Self::LeastConnections,
            "latency" => Self::Latency,
            "conversation_hash" => Self::ConversationHash,
            "semantic" => Self::Semantic,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::Weighted => "weighted",
            Self::LeastConnections => "least_connections",
            Self::Latency => "latency",
            Self::ConversationHash => "conversation_hash",
            Self::Semantic => "semantic",
        }
    }
}

/// One route, as written in the config file or stored in the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// `None`: the configured default (`load_balance_strategy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyKind>,
    pub targets: Vec<RouteTargetConfig>,
    /// Tried in order after the targets, when they fail with something retrying could help.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Tried when a target says the request is too long for its context window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_window_fallbacks: Vec<String>,
    /// Extra attempts on the route's own targets after the first (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Hard cap on upstream calls for one request, fallbacks included (default: 1 + retries +
    /// fallbacks, at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Hard cap on the time spent trying before an answer starts (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// For `strategy: semantic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTargetConfig {
    /// A model name as clients write it: `provider/model`, an alias, or a bare id.
    pub model: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// At most this many requests in flight to this target from this instance; a full target is
    /// skipped like an unhealthy one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Example prompts for `strategy: semantic`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// Requests per minute to this deployment, over all keys (shared in cluster mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute to this deployment, over all keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    /// The embedding model, served by the gateway's own providers (`openai/text-embedding-3-small`).
    pub embedding_model: String,
    /// Cosine similarity a request must reach to go to the closest target (default 0.5).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Where requests go that match no target well enough; default the first target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

fn default_threshold() -> f32 {
    0.5
}

pub const DEFAULT_RETRIES: u32 = 1;
pub const MAX_ATTEMPTS_CAP: u32 = 10;
pub const DEFAULT_ROUTE_TIMEOUT_SECS: u64 = 60;

impl RouteConfig {
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or_else(|| {
            (1 + self.retries() + self.fallbacks.len() as u32 + self.context_window_fallbacks.len() as u32)
                .min(MAX_ATTEMPTS_CAP)
        })
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs.unwrap_or(DEFAULT_ROUTE_TIMEOUT_SECS))
    }

    /// Every problem with this route, each with its path under `path` (`routes[0]`). Model names
    /// are checked against `catalog`, which must not itself contain routes.
    pub fn validate(&self, path: &str, catalog: &ModelCatalog) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |p: String, message: String| errors.push(ConfigError { path: p, message });
        if self.name.trim().is_empty() || self.name.contains('/') || self.name.chars().any(char::is_whitespace) {
            err(format!("{path}.name"), "a route name must be non-empty, without '/' or spaces".into());
        } else if catalog.resolve(&self.name).is_ok() {
            err(
                format!("{path}.name"),
                format!("{:?} already names a model; a route must have its own name", self.name),
            );
        }
        if self.targets.is_empty() {
            err(format!("{path}.targets"), "a route needs at least one target".into());
        }
        let mut check_model = |p: String, model: &str| match catalog.resolve(model) {
            Ok(_) => {}
            Err(ResolveError::Unknown) => {
                err(p, format!("{model:?} is not a configured model (write it as provider/model)"))
            }
            Err(ResolveError::Ambiguous(c)) => err(p, format!("{model:?} is ambiguous; name one of {}", c.join(", "))),
        };
        for (i, t) in self.targets.iter().enumerate() {
            check_model(format!("{path}.targets[{i}].model"), &t.model);
        }
        for (i, f) in self.fallbacks.iter().enumerate() {
            check_model(format!("{path}.fallbacks[{i}]"), f);
        }
        for (i, f) in self.context_window_fallbacks.iter().enumerate() {
            check_model(format!("{path}.context_window_fallbacks[{i}]"), f);
        }
        if let Some(s) = &self.semantic {
            check_model(format!("{path}.semantic.embedding_model"), &s.embedding_model);
            if let Some(d) = &s.default {
                check_model(format!("{path}.semantic.default"), d);
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            if t.weight == 0 {
                err(
                    format!("{path}.targets[{i}].weight"),
                    "must be at least 1 (remove the target to disable it)".into(),
                );
            }
            if t.requests_per_minute == Some(0) || t.tokens_per_minute == Some(0) {
                err(format!("{path}.targets[{i}]"), "per-minute limits must be at least 1".into());
            }
            if t.max_in_flight == Some(0) {
                err(format!("{path}.targets[{i}].max_in_flight"), "must be at least 1".into());
            }
        }
        if self.retries.is_some_and(|r| r > MAX_ATTEMPTS_CAP) {
            err(format!("{path}.retries"), format!("at most {MAX_ATTEMPTS_CAP}"));
        }
        if self.max_attempts.is_some_and(|m| m == 0 || m > 2 * MAX_ATTEMPTS_CAP) {
            err(format!("{path}.max_attempts"), format!("must be between 1 and {}", 2 * MAX_ATTEMPTS_CAP));
        }
        if self.timeout_secs == Some(0) {
            err(format!("{path}.timeout_secs"), "must be at least 1".into());
        }
        if self.strategy == Some(StrategyKind::Semantic) {
            match &self.semantic {
                None => {
                    err(format!("{path}.semantic"), "strategy semantic needs `semantic: {embedding_model: ...}`".into())
                }
                Some(s) if !(-1.0..=1.0).contains(&s.threshold) => {
                    err(format!("{path}.semantic.threshold"), "a cosine similarity, between -1 and 1".into())
                }
                Some(_) => {}
            }
            if self.targets.iter().all(|t| t.examples.is_empty()) {
                err(format!("{path}.targets"), "strategy semantic needs `examples` on at least one target".into());
            }
        }
        errors
    }
}
