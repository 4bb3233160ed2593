//! The config file: its raw shape, `${VAR}` interpolation, and decoding that reports every
//! structural problem with its key path.

use indexmap::IndexMap;
use serde::Deserialize;

use super::{ConfigError, Env};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen_addr: Option<String>,
    pub(super) log_level: Option<String>,
    pub(super) workers: Option<usize>,
    pub(super) database_url: Option<String>,
    pub(super) database_max_open_conns: Option<u32>,
    pub(super) database_max_idle_conns: Option<u32>,
    pub(super) redis_url: Option<String>,
    pub(super) master_key: Option<String>,
    pub(super) secret_key: Option<String>,
    pub(super) encryption_key: Option<String>,
    pub(super) session_expire_hours: Option<u64>,
    pub(super) data_dir: Option<String>,
    pub(super) secure_cookies: Option<bool>,
    pub(super) default_admin_username: Option<String>,
    pub(super) default_admin_password: Option<String>,
    pub(super) health_check: Option<RawHealthCheck>,
    pub(super) load_balance_strategy: Option<String>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) shutdown_grace_secs: Option<u64>,
    pub(super) stream_keep_alive_secs: Option<u64>,
    pub(super) upstream_timeouts: Option<RawTimeouts>,
    pub(super) connections: Option<super::connections::RawConnections>,
    pub(super) max_tokens_ceiling: Option<u64>,
    pub(super) log_retention_days: Option<u32>,
    pub(super) response_retention_days: Option<u32>,
    pub(super) admin_auth_failures_per_minute: Option<u64>,
    #[serde(default)]
    pub(super) providers: IndexMap<String, RawProvider>,
    #[serde(default)]
    pub(super) routes: Vec<super::RouteConfig>,
    pub(super) circuit_breaker: Option<RawBreaker>,
    pub(super) rate_limits: Option<super::RateLimitsConfig>,
    pub(super) cost_budget: Option<super::CostBudgetConfig>,
    pub(super) pricing: Option<super::PricingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreaker {
    pub(super) failure_threshold: Option<u32>,
    pub(super) window_secs: Option<u64>,
    pub(super) cooldown_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealthCheck {
    pub(super) enabled: Option<bool>,
    pub(super) interval_secs: Option<u64>,
    pub(super) timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub(super) connect_secs: Option<u64>,
    pub(super) first_byte_secs: Option<u64>,
    pub(super) between_chunks_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) api_key: Option<String>,
    pub(super) base_url: Option<String>,
    pub(super) protocol: Option<String>,
    #[serde(default)]
    pub(super) models: Vec<RawModel>,
    pub(super) stream_options: Option<bool>,
    pub(super) responses_api: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawModel {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        alias: Option<String>,
    },
}

pub(super) fn parse_file(text: &str, env: &dyn Env, errors: &mut Vec<ConfigError>) -> RawConfig {
    let mut value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(ConfigError { path: String::new(), message: format!("not valid YAML: {e}") });
            return RawConfig::default();
        }
    };
    if value.is_null() {
        return RawConfig::default();
    }
    interpolate(&mut value, env, "", errors);
    decode_raw(value, errors)
}

/// Decodes the file, collecting every structural error rather than stopping at the first: a
/// top-level key (or a single provider) that does not decode is reported and left out, and the
/// rest is decoded and validated as usual.
fn decode_raw(value: serde_yaml::Value, errors: &mut Vec<ConfigError>) -> RawConfig {
    use serde_yaml::{Mapping, Value};
    let Value::Mapping(map) = value else {
        errors.push(ConfigError { path: String::new(), message: "the config file must be a YAML mapping".into() });
        return RawConfig::default();
    };
    let mut kept = Mapping::new();
    for (k, v) in map {
        let key = k.as_str().unwrap_or("?").to_string();
        if key == "providers"
            && let Value::Mapping(providers) = v
        {
            let mut good = Mapping::new();
            for (name, p) in providers {
                let mut one = Mapping::new();
                one.insert(name.clone(), p.clone());
                let mut probe = Mapping::new();
                probe.insert(k.clone(), Value::Mapping(one));
                if decode_one(Value::Mapping(probe), errors) {
                    good.insert(name, p);
                }
            }
            kept.insert(k, Value::Mapping(good));
            continue;
        }
        let mut probe = Mapping::new();
        probe.insert(k.clone(), v.clone());
        if decode_one(Value::Mapping(probe), errors) {
            kept.insert(k, v);
        }
    }
    let mut ignored = Vec::new();
    decode_into(Value::Mapping(kept), &mut ignored).unwrap_or_default()
}

fn decode_one(value: serde_yaml::Value, errors: &mut Vec<ConfigError>) -> bool {
    decode_into(value, errors).is_some()
}

fn decode_into(value: serde_yaml::Value, errors: &mut Vec<ConfigError>) -> Option<RawConfig> {
    match serde_path_to_error::deserialize::<_, RawConfig>(value) {
        Ok(raw) => Some(raw),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            errors.push(ConfigError { path, message: e.into_inner().to_string() });
            None
        }
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string scalar. Done on parsed values rather than
/// raw text so a secret containing `:` or `#` cannot change the YAML structure.
fn interpolate(value: &mut serde_yaml::Value, env: &dyn Env, path: &str, errors: &mut Vec<ConfigError>) {
    use serde_yaml::Value;
    match value {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(message) => errors.push(ConfigError { path: path.to_string(), message }),
        },
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let child = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
                interpolate(v, env, &child, errors);
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                interpolate(v, env, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

/// Expands `${VAR}` (empty when unset) and `${VAR:-default}` (default when unset or empty).
pub fn expand(s: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid variable name {name:?} in `${{{expr}}}`"));
        }
        let value = env.var(name).filter(|v| !v.is_empty() || default.is_none());
        out.push_str(&value.unwrap_or_else(|| default.unwrap_or("").to_string()));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
