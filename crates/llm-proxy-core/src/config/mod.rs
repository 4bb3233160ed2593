//! The validated configuration and how it is assembled from its sources.
//!
//! Precedence, highest first: command-line flags > `LLM_PROXY_*` environment > config file >
//! defaults. Loading is a pure function of (file text, environment lookup, flags) so every rule here
//! is unit-tested without touching the process environment. Every problem is reported with its key
//! path, all at once, so a user fixes a config in one pass.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use secrecy::SecretString;

use crate::known_provider::Protocol;

mod connections;
mod file;
mod limits;
mod providers;
mod redact;
mod routes;

pub use connections::ConnectionLimits;
pub use file::expand;
use file::{RawConfig, parse_file};
pub use limits::{BudgetConfig, CostBudgetConfig, PricingConfig, RateLimitConfig, RateLimitsConfig};
use providers::build_providers;
pub use redact::{redact_url, redact_urls_in};
pub use routes::{
    DEFAULT_RETRIES, DEFAULT_ROUTE_TIMEOUT_SECS, MAX_ATTEMPTS_CAP, RouteConfig, RouteTargetConfig, SemanticConfig,
    StrategyKind,
};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/llm-proxy.db";
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// The most answer tokens a request reserves against limits and budgets when the pricing registry
/// does not know its model's output limit.
pub const DEFAULT_MAX_TOKENS_CEILING: u64 = 131_072;
/// Days of request-log rows kept by default.
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 30;
/// OpenAI keeps stored responses 30 days.
pub const DEFAULT_RESPONSE_RETENTION_DAYS: u32 = 30;
/// Failed admin-API authentications per client address and minute before it is locked out.
pub const DEFAULT_ADMIN_AUTH_FAILURES_PER_MINUTE: u64 = 10;

/// The effective configuration. Secrets are `SecretString`: redacted in `Debug`, never serialized.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub log_level: String,
    /// Runtime worker threads; `None` = one per core.
    pub workers: Option<usize>,
    pub database_url: SecretString,
    pub database_max_open_conns: u32,
    pub database_max_idle_conns: u32,
    pub redis_url: Option<SecretString>,
    /// Admin bearer token, also accepted on `/v1`.
    pub master_key: Option<SecretString>,
    pub secret_key: Option<SecretString>,
    /// 32 bytes, for encrypting provider keys stored in the database.
    pub encryption_key: Option<SecretString>,
    pub session_expire_hours: u64,
    /// Where generated secrets are kept (`secret_key`, `encryption_key` when unset), 0600.
    pub data_dir: std::path::PathBuf,
    /// Whether the session cookie is marked `Secure` (set it when clients reach the gateway over
    /// HTTPS, e.g. behind a TLS-terminating proxy).
    pub secure_cookies: bool,
    pub default_admin_username: String,
    pub default_admin_password: Option<SecretString>,
    pub health_check: HealthCheck,
    /// The strategy of routes that do not name one.
    pub load_balance_strategy: StrategyKind,
    pub circuit_breaker: BreakerConfig,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after SIGTERM before they are cut.
    pub shutdown_grace: Duration,
    /// How often an idle stream gets an SSE comment, so proxies do not cut it.
    pub stream_keep_alive: Duration,
    pub upstream_timeouts: UpstreamTimeouts,
    pub connections: ConnectionLimits,
    /// The most answer tokens one request reserves (`max_tokens` above the model's output limit,
    /// or above this for a model the registry does not know, reserves only up to it).
    pub max_tokens_ceiling: u64,
    /// Request-log rows older than this many days are deleted; 0 keeps them forever.
    pub log_retention_days: u32,
    /// Days a stored Responses API answer stays readable and continuable (`previous_response_id`).
    pub response_retention_days: u32,
    /// Failed admin-API authentications per client address and minute before the address is
    /// refused (429) until the minute has passed.
    pub admin_auth_failures_per_minute: u64,
    /// Enabled providers in config order (file order, then ones found only in the environment).
    pub providers: Vec<ProviderConfig>,
    /// Routes from the config file, validated against `providers`; each has its `strategy` set.
    pub routes: Vec<RouteConfig>,
    pub rate_limits: RateLimitsConfig,
    pub cost_budget: CostBudgetConfig,
    pub pricing: PricingConfig,
}

/// When a deployment is taken out of rotation, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker.
    pub failure_threshold: u32,
    pub window: Duration,
    /// How long an open breaker rejects before letting one probe request through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, window: Duration::from_secs(60), cooldown: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Separate limits per phase: a total timeout would cut long but healthy streams.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    /// From sending the request to the response head (and, for streams, the first event).
    pub first_byte: Duration,
    /// Longest silence allowed between two chunks of a body.
    pub between_chunks: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(300),
            between_chunks: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The name clients use in `provider/model` and the logs show.
    pub name: String,
    pub protocol: Protocol,
    pub base_url: String,
    pub api_key: Option<SecretString>,
    /// Explicit models; empty means "whatever the client names" plus the known provider's defaults.
    pub models: Vec<ModelConfig>,
    /// Whether the upstream accepts `stream_options`. When it does, streams ask it for usage;
    /// when not, the field is removed from requests (some servers reject unknown fields).
    pub stream_options: bool,
    /// Whether the upstream serves the OpenAI Responses API (`POST /responses`): Responses
    /// clients are then passed through to it; otherwise they are translated onto Chat
    /// Completions. On for the provider named `openai` alone unless configured.
    pub responses_api: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// Upstream model id.
    pub name: String,
    /// Public name clients may use instead.
    pub alias: Option<String>,
}

/// Values given on the command line; they beat every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// One problem, with the key path it is at (`providers.local.base_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem found, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Something that answers "what is this environment variable?".
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Non-fatal notes for the operator (a provider skipped, a setting not yet used).
pub type Warnings = Vec<String>;

impl Config {
    /// Builds the effective config from an optional YAML file text, the environment and the flags.
    pub fn load(file: Option<&str>, env: &dyn Env, overrides: &Overrides) -> Result<(Config, Warnings), ConfigErrors> {
        let mut errors = Vec::new();
        let raw = match file {
            Some(text) => parse_file(text, env, &mut errors),
            None => RawConfig::default(),
        };
        let mut warnings = Vec::new();
        let config = build(raw, env, overrides, &mut errors, &mut warnings);
        if errors.is_empty() { Ok((config, warnings)) } else { Err(ConfigErrors(errors)) }
    }
}

pub(crate) fn env_parse<T: std::str::FromStr>(env: &dyn Env, name: &str, errors: &mut Vec<ConfigError>) -> Option<T>
where
    T::Err: fmt::Display,
{
    let var = format!("LLM_PROXY_{name}");
    let raw = env.var(&var)?;
    match raw.trim().parse() {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(ConfigError { path: var, message: format!("{e} (got {raw:?})") });
            None
        }
    }
}

fn env_string(env: &dyn Env, name: &str) -> Option<String> {
    env.var(&format!("LLM_PROXY_{name}")).filter(|v| !v.is_empty())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

fn build(
    raw: RawConfig,
    env: &dyn Env,
    overrides: &Overrides,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Warnings,
) -> Config {
    // listen address: file, then HOST/PORT env, then flags.
    let (mut host, mut port) = ("0.0.0.0".to_string(), 8000u16);
    if let Some(addr) = raw.listen_addr.as_deref() {
        match addr.parse::<SocketAddr>() {
            Ok(a) => {
                host = a.ip().to_string();
                port = a.port();
            }
            Err(_) => errors.push(ConfigError {
                path: "listen_addr".into(),
                message: format!("{addr:?} is not an address like \"0.0.0.0:8000\""),
            }),
        }
    }
    if let Some(h) = env_string(env, "HOST") {
        host = h;
    }
    if let Some(p) = env_parse::<u16>(env, "PORT", errors) {
        port = p;
    }
    if let Some(h) = &overrides.host {
        host = h.clone();
    }
    if let Some(p) = overrides.port {
        port = p;
    }
    let host_for_parse = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.clone() };
    let listen_addr = match format!("{host_for_parse}:{port}").parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            errors.push(ConfigError { path: "host".into(), message: format!("{host:?} is not an IP address") });
            SocketAddr::from(([0, 0, 0, 0], port))
        }
    };

    let log_level = env_string(env, "LOG_LEVEL").or(raw.log_level).unwrap_or_else(|| "info".into());
    if tracing_level_ok(&log_level).is_err() {
        errors.push(ConfigError {
            path: "log_level".into(),
            message: format!("{log_level:?} is not one of trace, debug, info, warn, error (or a filter like \"info,llm_proxy=debug\")"),
        });
    }
    let workers = env_parse::<usize>(env, "WORKERS", errors).or(raw.workers);
    if workers == Some(0) {
        errors.push(ConfigError { path: "workers".into(), message: "must be at least 1".into() });
    }

    let database_url = if let Some(url) = env_string(env, "DATABASE_URL") {
        url
    } else if let Some(path) = env_string(env, "DATABASE_PATH") {
        format!("sqlite://{path}")
    } else {
        non_empty(raw.database_url).unwrap_or_else(|| DEFAULT_DATABASE_URL.into())
    };
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        errors.push(ConfigError {
            path: "database_url".into(),
            message: format!("{:?} must start with sqlite:// or postgres://", redact_url(&database_url)),
        });
    }
    let database_max_open_conns =
        env_parse(env, "DATABASE_MAX_OPEN_CONNS", errors).or(raw.database_max_open_conns).unwrap_or(10);
    let database_max_idle_conns =
        env_parse(env, "DATABASE_MAX_IDLE_CONNS", errors).or(raw.database_max_idle_conns).unwrap_or(5);
    if database_max_open_conns == 0 {
        errors.push(ConfigError { path: "database_max_open_conns".into(), message: "must be at least 1".into() });
    }

    let redis_url = env_string(env, "REDIS_URL").or(non_empty(raw.redis_url));
    if let Some(url) = &redis_url
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        errors.push(ConfigError { path: "redis_url".into(), message: "must start with redis:// or rediss://".into() });
    }
    let master_key = env_string(env, "MASTER_KEY").or(non_empty(raw.master_key));
    if let Some(k) = &master_key
        && k.len() < 16
    {
        errors.push(ConfigError { path: "master_key".into(), message: "must be at least 16 characters".into() });
    }
    let secret_key = env_string(env, "SECRET_KEY").or(non_empty(raw.secret_key));
    let encryption_key = env_string(env, "ENCRYPTION_KEY").or(non_empty(raw.encryption_key));
    if let Some(k) = &encryption_key
        && decode_key32(k).is_none()
    {
        errors.push(ConfigError {
            path: "encryption_key".into(),
            message: "must be 32 bytes, written as 64 hex digits or base64".into(),
        });
    }
    let session_expire_hours =
        env_parse(env, "SESSION_EXPIRE_HOURS", errors).or(raw.session_expire_hours).unwrap_or(24);
    let data_dir = env_string(env, "DATA_DIR").or(non_empty(raw.data_dir)).unwrap_or_else(|| "data".into());
    let secure_cookies = env_parse(env, "SECURE_COOKIES", errors).or(raw.secure_cookies).unwrap_or(false);
    let default_admin_username =
        env_string(env, "DEFAULT_ADMIN_USERNAME").or(raw.default_admin_username).unwrap_or_else(|| "admin".into());
    let default_admin_password = env_string(env, "DEFAULT_ADMIN_PASSWORD").or(non_empty(raw.default_admin_password));
    let hc = raw.health_check.unwrap_or_default();
    let health_check = HealthCheck {
        enabled: env_parse(env, "HEALTH_CHECK_ENABLED", errors).or(hc.enabled).unwrap_or(true),
        interval: Duration::from_secs(
            env_parse(env, "HEALTH_CHECK_INTERVAL", errors).or(hc.interval_secs).unwrap_or(60),
        ),
        timeout: Duration::from_secs(env_parse(env, "HEALTH_CHECK_TIMEOUT", errors).or(hc.timeout_secs).unwrap_or(10)),
    };
    let strategy_name =
        env_string(env, "LOAD_BALANCE_STRATEGY").or(raw.load_balance_strategy).unwrap_or_else(|| "round_robin".into());
    let load_balance_strategy = StrategyKind::parse(&strategy_name).unwrap_or_else(|| {
        errors.push(ConfigError {
            path: "load_balance_strategy".into(),
            message: format!("{strategy_name:?} is not one of {}", StrategyKind::ALL.join(", ")),
        });
        StrategyKind::RoundRobin
    });
    let b = raw.circuit_breaker.unwrap_or_default();
    let bd = BreakerConfig::default();
    let circuit_breaker = BreakerConfig {
        failure_threshold: b.failure_threshold.unwrap_or(bd.failure_threshold),
        window: b.window_secs.map(Duration::from_secs).unwrap_or(bd.window),
        cooldown: b.cooldown_secs.map(Duration::from_secs).unwrap_or(bd.cooldown),
    };
    for (name, zero) in [
        ("failure_threshold", b.failure_threshold == Some(0)),
        ("window_secs", b.window_secs == Some(0)),
        ("cooldown_secs", b.cooldown_secs == Some(0)),
    ] {
        if zero {
            errors.push(ConfigError { path: format!("circuit_breaker.{name}"), message: "must be at least 1".into() });
        }
    }
    let max_body_bytes =
        env_parse(env, "MAX_BODY_BYTES", errors).or(raw.max_body_bytes).unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes < 1024 {
        errors.push(ConfigError { path: "max_body_bytes".into(), message: "must be at least 1024".into() });
    }
    let shutdown_grace =
        Duration::from_secs(env_parse(env, "SHUTDOWN_GRACE_SECS", errors).or(raw.shutdown_grace_secs).unwrap_or(30));
    let stream_keep_alive = Duration::from_secs(raw.stream_keep_alive_secs.unwrap_or(15));
    if stream_keep_alive.is_zero() {
        errors.push(ConfigError { path: "stream_keep_alive_secs".into(), message: "must be at least 1".into() });
    }
    let t = raw.upstream_timeouts.unwrap_or_default();
    let d = UpstreamTimeouts::default();
    let upstream_timeouts = UpstreamTimeouts {
        connect: t.connect_secs.map(Duration::from_secs).unwrap_or(d.connect),
        first_byte: t.first_byte_secs.map(Duration::from_secs).unwrap_or(d.first_byte),
        between_chunks: t.between_chunks_secs.map(Duration::from_secs).unwrap_or(d.between_chunks),
    };
    for (name, v) in [
        ("connect_secs", t.connect_secs),
        ("first_byte_secs", t.first_byte_secs),
        ("between_chunks_secs", t.between_chunks_secs),
    ] {
        if v == Some(0) {
            errors
                .push(ConfigError { path: format!("upstream_timeouts.{name}"), message: "must be at least 1".into() });
        }
    }

    let connections = raw.connections.unwrap_or_default().build(env, errors);
    let max_tokens_ceiling = raw.max_tokens_ceiling.unwrap_or(DEFAULT_MAX_TOKENS_CEILING);
    if max_tokens_ceiling == 0 {
        errors.push(ConfigError { path: "max_tokens_ceiling".into(), message: "must be at least 1".into() });
    }
    let log_retention_days =
        env_parse(env, "LOG_RETENTION_DAYS", errors).or(raw.log_retention_days).unwrap_or(DEFAULT_LOG_RETENTION_DAYS);
    let response_retention_days = env_parse(env, "RESPONSE_RETENTION_DAYS", errors)
        .or(raw.response_retention_days)
        .unwrap_or(DEFAULT_RESPONSE_RETENTION_DAYS);
    if response_retention_days == 0 {
        errors.push(ConfigError {
            path: "response_retention_days".into(),
            message: "must be at least 1 (a client sending `store: false` keeps nothing)".into(),
        });
    }
    let admin_auth_failures_per_minute =
        raw.admin_auth_failures_per_minute.unwrap_or(DEFAULT_ADMIN_AUTH_FAILURES_PER_MINUTE);
    if admin_auth_failures_per_minute == 0 {
        errors
            .push(ConfigError { path: "admin_auth_failures_per_minute".into(), message: "must be at least 1".into() });
    }

    let providers = build_providers(raw.providers, env, errors, warnings);
    let routes = validate_routes(raw.routes, &providers, load_balance_strategy, errors);
    let rate_limits = raw.rate_limits.unwrap_or_default();
    rate_limits.validate(errors);
    let cost_budget = raw.cost_budget.unwrap_or_default();
    cost_budget.validate(errors);
    let pricing = raw.pricing.unwrap_or_default();

    Config {
        listen_addr,
        log_level,
        workers,
        database_url: database_url.into(),
        database_max_open_conns,
        database_max_idle_conns,
        redis_url: redis_url.map(Into::into),
        master_key: master_key.map(Into::into),
        secret_key: secret_key.map(Into::into),
        encryption_key: encryption_key.map(Into::into),
        session_expire_hours,
        data_dir: data_dir.into(),
        secure_cookies,
        default_admin_username,
        default_admin_password: default_admin_password.map(Into::into),
        health_check,
        load_balance_strategy,
        max_body_bytes,
        shutdown_grace,
        stream_keep_alive,
        upstream_timeouts,
        connections,
        max_tokens_ceiling,
        log_retention_days,
        response_retention_days,
        admin_auth_failures_per_minute,
        providers,
        routes,
        circuit_breaker,
        rate_limits,
        cost_budget,
        pricing,
    }
}

/// Checks every route against the providers; fills in the default strategy.
fn validate_routes(
    routes: Vec<RouteConfig>,
    providers: &[ProviderConfig],
    default: StrategyKind,
    errors: &mut Vec<ConfigError>,
) -> Vec<RouteConfig> {
    let catalog = crate::model_catalog::ModelCatalog::new(providers);
    let mut seen = std::collections::HashSet::new();
    routes
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.strategy.get_or_insert(default);
            let path = format!("routes[{i}]");
            errors.extend(r.validate(&path, &catalog));
            if !seen.insert(r.name.clone()) {
                errors.push(ConfigError {
                    path: format!("{path}.name"),
                    message: format!("route {:?} is defined twice", r.name),
                });
            }
            r
        })
        .collect()
}

fn tracing_level_ok(level: &str) -> Result<(), ()> {
    let ok = level.split(',').all(|part| {
        let lvl = part.rsplit('=').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(lvl.as_str(), "trace" | "debug" | "info" | "warn" | "error" | "off")
    });
    if ok { Ok(()) } else { Err(()) }
}

/// Decodes a 32-byte key written as hex or base64.
pub fn decode_key32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes = hex::decode(s)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .or_else(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok())?;
    bytes.try_into().ok()
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Loads a config file's text with an empty environment.
    pub fn load_str(file: &str) -> Result<Config, ConfigErrors> {
        Config::load(Some(file), &|_: &str| None::<String>, &Overrides::default()).map(|(c, _)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    fn load(file: Option<&str>, e: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        Config::load(file, &env(e), &Overrides::default()).map(|(c, _)| c)
    }

    #[test]
    fn empty_config_serves_providers_from_the_environment() {
        let c = load(
            None,
            &[("OPENAI_API_KEY", "sk-a"), ("XAI_API_KEY", "xk"), ("ANTHROPIC_API_KEY", "ak"), ("GEMINI_API_KEY", "gk")],
        )
        .unwrap();
        let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "anthropic", "gemini", "grok"]);
        assert_eq!(c.listen_addr.to_string(), "0.0.0.0:8000");
        assert_eq!(c.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(c.max_body_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn a_glm_key_must_be_id_dot_secret() {
        let file = "providers:\n  glm:\n    api_key: nodot\n";
        let errors = load(Some(file), &[]).unwrap_err();
        assert!(errors.0.iter().any(|e| e.path == "providers.glm.api_key"), "{errors:?}");
        let c = load(Some("providers:\n  glm:\n    api_key: abc.def\n"), &[]).unwrap();
        assert_eq!(c.providers[0].base_url, "https://open.bigmodel.cn/api/paas/v4");
    }

    #[test]
    fn precedence_is_flags_then_env_then_file() {
        let file = "listen_addr: 127.0.0.1:9000\nlog_level: warn\n";
        let c = load(Some(file), &[]).unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:9000");
        let c = load(Some(file), &[("LLM_PROXY_PORT", "9100"), ("LLM_PROXY_LOG_LEVEL", "debug")]).unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:9100");
        assert_eq!(c.log_level, "debug");
        let flags = Overrides { host: Some("::1".into()), port: Some(9200) };
        let (c, _) = Config::load(Some(file), &env(&[("LLM_PROXY_PORT", "9100")]), &flags).unwrap();
        assert_eq!(c.listen_addr.to_string(), "[::1]:9200");
    }

    #[test]
    fn interpolates_with_defaults_inside_values_only() {
        let file = "providers:\n  local:\n    protocol: openai\n    base_url: \"${BASE:-http://127.0.0.1:1/v1}\"\n    api_key: \"${KEY}\"\n";
        let c = load(Some(file), &[("KEY", "a:b #c")]).unwrap();
        assert_eq!(c.providers[0].base_url, "http://127.0.0.1:1/v1");
        assert_eq!(c.providers[0].api_key.as_ref().unwrap().expose_secret(), "a:b #c");
    }

    #[test]
    fn reports_every_error_with_its_path() {
        let file = "listen_addr: nope\nproviders:\n  local:\n    base_url: http://x\n  other:\n    protocol: openai\n  bad:\n    protocol: carrier-pigeon\n";
        let errs = load(Some(file), &[("LLM_PROXY_PORT", "http")]).unwrap_err();
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listen_addr",
                "LLM_PROXY_PORT",
                "providers.local.protocol",
                "providers.other.base_url",
                "providers.bad.protocol"
            ]
        );
    }

    #[test]
    fn structural_and_semantic_errors_are_reported_together() {
        let file = "listen_addr: nope\nlog_level: [1]\nproviders:\n  a: {protocol: openai, base_url: http://a, typo: 1}\n  b: {protocol: nope}\n";
        let errs = load(Some(file), &[]).unwrap_err();
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["log_level", "providers.a.typo", "listen_addr", "providers.b.protocol"]);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_section() {
        let errs = load(Some("providers:\n  openai:\n    apikey: x\n"), &[]).unwrap_err();
        assert_eq!(errs.0[0].path, "providers.openai.apikey");
        assert!(errs.0[0].message.contains("unknown field `apikey`"), "{}", errs.0[0].message);
    }

    #[test]
    fn redacted_yaml_hides_every_secret() {
        let file = "master_key: master-key-0123456789\ndatabase_url: postgres://u:pw@h/db\nproviders:\n  openai:\n    api_key: sk-canary\n";
        let c = load(Some(file), &[("LLM_PROXY_ENCRYPTION_KEY", &"ab".repeat(32))]).unwrap();
        let out = c.redacted_yaml();
        for secret in ["master-key-0123456789", "pw@", "sk-canary", &"ab".repeat(32)] {
            assert!(!out.contains(secret), "{secret} leaked in:\n{out}");
        }
        assert!(out.contains("postgres://u:***@h/db"), "{out}");
        assert!(format!("{c:?}").find("sk-canary").is_none());
    }

    #[test]
    fn the_responses_api_is_on_for_openai_alone_unless_configured() {
        let file = "providers:\n  openai: {api_key: k}\n  groq: {api_key: k}\n  vllm: {protocol: openai, base_url: http://l, responses_api: true}\n  off: {protocol: openai, base_url: http://o}\n";
        let c = load(Some(file), &[]).unwrap();
        let flags: Vec<_> = c.providers.iter().map(|p| (p.name.as_str(), p.responses_api)).collect();
        assert_eq!(flags, [("openai", true), ("groq", false), ("vllm", true), ("off", false)]);
        assert_eq!(c.response_retention_days, DEFAULT_RESPONSE_RETENTION_DAYS);
        let err = load(Some("response_retention_days: 0\n"), &[]).unwrap_err();
        assert_eq!(err.0[0].path, "response_retention_days");
        let err = load(Some("providers:\n  c: {protocol: anthropic, base_url: http://c, responses_api: true}\n"), &[]);
        assert_eq!(err.unwrap_err().0[0].path, "providers.c.responses_api");
    }

    #[test]
    fn stream_options_follow_the_provider_unless_configured() {
        let file = "providers:\n  mistral: {api_key: k}\n  groq: {api_key: k}\n  local: {protocol: openai, base_url: http://l, stream_options: false}\n";
        let c = load(Some(file), &[]).unwrap();
        let flags: Vec<_> = c.providers.iter().map(|p| (p.name.as_str(), p.stream_options)).collect();
        assert_eq!(flags, [("mistral", false), ("groq", true), ("local", false)]);
    }

    #[test]
    fn duplicate_aliases_are_errors() {
        let file = "providers:\n  a:\n    protocol: openai\n    base_url: http://a\n    models: [{name: m1, alias: x}]\n  b:\n    protocol: openai\n    base_url: http://b\n    models: [{name: m2, alias: x}]\n";
        let errs = load(Some(file), &[]).unwrap_err();
        assert_eq!(errs.0[0].path, "providers.b.models[0].alias");
    }

    #[test]
    fn known_provider_without_key_is_skipped_with_a_warning() {
        let (c, w) =
            Config::load(Some("providers:\n  openai: {api_key: \"${NOPE}\"}\n"), &env(&[]), &Overrides::default())
                .unwrap();
        assert!(c.providers.is_empty());
        assert!(w[0].contains("provider disabled"));
    }

    const ROUTE_PROVIDERS: &str = "providers:\n  oai:\n    protocol: openai\n    base_url: http://a\n  local:\n    protocol: openai\n    base_url: http://b\n    models: [{name: m1, alias: fast}]\n";

    #[test]
    fn routes_are_validated_with_the_path_of_every_problem() {
        let file = format!(
            "{ROUTE_PROVIDERS}routes:\n  - name: smart\n    strategy: weighted\n    targets: [{{model: oai/gpt-4o, weight: 3}}, {{model: nowhere/x}}, {{model: local/m1, weight: 0}}]\n    fallbacks: [fast, unknown-bare]\n  - name: fast\n    targets: [{{model: oai/a}}]\n  - name: smart\n    targets: [{{model: oai/a}}]\n  - name: topic\n    strategy: semantic\n    targets: [{{model: oai/a}}]\n"
        );
        let errs = load(Some(&file), &[]).unwrap_err();
        let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "routes[0].targets[1].model",
            "routes[0].targets[2].weight",
            "routes[0].fallbacks[1]",
            "routes[1].name",
            "routes[2].name",
            "routes[3].semantic",
            "routes[3].targets",
        ] {
            assert!(paths.contains(&want), "no error at {want}: {errs}");
        }
        assert!(!paths.contains(&"routes[0].fallbacks[0]"), "an alias is a valid fallback: {errs}");
    }

    #[test]
    fn routes_get_the_default_strategy_and_a_bad_route_key_is_reported() {
        let file = format!(
            "{ROUTE_PROVIDERS}load_balance_strategy: latency\nroutes:\n  - name: r\n    targets: [{{model: oai/a}}]\n"
        );
        let c = load(Some(&file), &[]).unwrap();
        assert_eq!(c.routes[0].strategy, Some(StrategyKind::Latency));
        assert_eq!(c.routes[0].retries(), DEFAULT_RETRIES);
        let file = format!("{ROUTE_PROVIDERS}routes:\n  - name: r\n    targets: [{{model: oai/a, wieght: 2}}]\n");
        let errs = load(Some(&file), &[]).unwrap_err();
        assert!(errs.0[0].path.starts_with("routes[0].targets[0]"), "{errs}");
        let errs = load(Some("circuit_breaker: {cooldown_secs: 0}\n"), &[]).unwrap_err();
        assert_eq!(errs.0[0].path, "circuit_breaker.cooldown_secs");
    }

    #[test]
    fn the_readme_routing_example_is_a_valid_config() {
        let readme = include_str!("../../../../README.md");
        let section = &readme[readme.find("## Routing and resilience").expect("the README has a routing section")..];
        let yaml = section.split("```yaml\n").nth(1).and_then(|b| b.split("```").next()).expect("a yaml block");
        let keys = [
            ("OPENAI_API_KEY", "k"),
            ("ANTHROPIC_API_KEY", "k"),
            ("GROQ_API_KEY", "k"),
            ("GEMINI_API_KEY", "k"),
            ("DEEPSEEK_API_KEY", "k"),
        ];
        let c = load(Some(yaml), &keys).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = c.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["smart", "support", "by-topic"]);
    }
}
