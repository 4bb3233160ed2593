//! The `rate_limits`, `cost_budget` and `pricing` sections.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Requests and tokens per minute, and requests at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once (per key, on each instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
}

/// `rate_limits:`: the defaults every key gets unless it has its own, plus limits per user, per
/// model and per client IP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    #[serde(flatten)]
    pub per_key: RateLimitConfig,
    /// For each user (the `--user` of its keys), all its keys together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<RateLimitConfig>,
    /// By public model name (a route, an alias or `provider/model`), all keys together.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_model: BTreeMap<String, RateLimitConfig>,
    /// Requests per minute from one client IP, checked before authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_ip_requests_per_minute: Option<u64>,
}

/// USD per calendar hour, day and month (UTC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_limit: Option<f64>,
}

/// `cost_budget:`: what all traffic together may spend, and each user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostBudgetConfig {
    #[serde(flatten)]
    pub global: BudgetConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<BudgetConfig>,
}

/// `pricing:`: where prices come from besides the table bundled in the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// A YAML/JSON file of operator prices that win over the bundled table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides_file: Option<String>,
    /// A URL serving the registry's JSON, fetched in the background; empty turns refresh off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
    #[serde(default = "default_refresh_hours")]
    pub refresh_hours: u64,
}

fn default_refresh_hours() -> u64 {
    24
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self { overrides_file: None, refresh_url: None, refresh_hours: default_refresh_hours() }
    }
}

impl PricingConfig {
    pub fn refresh_every(&self) -> Duration {
        Duration::from_secs(self.refresh_hours.max(1) * 3600)
    }
}

fn check_rate(path: &str, r: &RateLimitConfig, errors: &mut Vec<ConfigError>) {
    for (name, zero) in [
        ("requests_per_minute", r.requests_per_minute == Some(0)),
        ("tokens_per_minute", r.tokens_per_minute == Some(0)),
        ("max_parallel", r.max_parallel == Some(0)),
    ] {
        if zero {
            errors.push(ConfigError {
                path: format!("{path}{name}"),
                message: "must be at least 1 (leave it out for no limit)".into(),
            });
        }
    }
}

fn check_budget(path: &str, b: &BudgetConfig, errors: &mut Vec<ConfigError>) {
    for (name, v) in
        [("hourly_limit", b.hourly_limit), ("daily_limit", b.daily_limit), ("monthly_limit", b.monthly_limit)]
    {
        if v.is_some_and(|v| !v.is_finite() || v <= 0.0) {
            errors.push(ConfigError { path: format!("{path}{name}"), message: "a positive amount in USD".into() });
        }
    }
}

impl RateLimitsConfig {
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) {
        check_rate("rate_limits.", &self.per_key, errors);
        if let Some(u) = &self.per_user {
            check_rate("rate_limits.per_user.", u, errors);
        }
        for (m, r) in &self.per_model {
            check_rate(&format!("rate_limits.per_model.{m}."), r, errors);
        }
        if self.per_ip_requests_per_minute == Some(0) {
            errors.push(ConfigError {
                path: "rate_limits.per_ip_requests_per_minute".into(),
                message: "must be at least 1 (leave it out for no limit)".into(),
            });
        }
    }
}

impl CostBudgetConfig {
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) {
        check_budget("cost_budget.", &self.global, errors);
        if let Some(u) = &self.per_user {
            check_budget("cost_budget.per_user.", u, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::load_str;

    #[test]
    fn limits_and_budgets_parse_with_their_nested_parts() {
        let c = load_str(
            "rate_limits:\n  requests_per_minute: 100\n  tokens_per_minute: 100000\n  per_user: {requests_per_minute: 500}\n  per_model: {smart: {tokens_per_minute: 9}}\n  per_ip_requests_per_minute: 600\ncost_budget:\n  hourly_limit: 10.0\n  daily_limit: 100.0\n  per_user: {monthly_limit: 50}\n",
        )
        .unwrap();
        assert_eq!(c.rate_limits.per_key.requests_per_minute, Some(100));
        assert_eq!(c.rate_limits.per_user.as_ref().and_then(|u| u.requests_per_minute), Some(500));
        assert_eq!(c.rate_limits.per_model["smart"].tokens_per_minute, Some(9));
        assert_eq!(c.cost_budget.global.daily_limit, Some(100.0));
        assert_eq!(c.cost_budget.per_user.as_ref().and_then(|u| u.monthly_limit), Some(50.0));
    }

    #[test]
    fn bad_limits_are_reported_with_their_paths() {
        let errs = load_str("rate_limits: {requests_per_minute: 0, bogus: 1}\n").unwrap_err();
        assert!(errs.0.iter().any(|e| e.path.starts_with("rate_limits")), "{errs}");
        let errs = load_str("rate_limits: {requests_per_minute: 5, bogus: 1}\n").unwrap_err();
        assert!(errs.0[0].message.contains("bogus"), "unknown keys are errors: {errs}");
        let errs = load_str("cost_budget: {daily_limit: -1}\n").unwrap_err();
        assert_eq!(errs.0[0].path, "cost_budget.daily_limit");
        let errs = load_str("rate_limits: {per_user: {tokens_per_minute: 0}}\n").unwrap_err();
        assert_eq!(errs.0[0].path, "rate_limits.per_user.tokens_per_minute");
    }
}
