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
use indexmap::IndexMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::known_provider::{KNOWN_PROVIDERS, Protocol, known_provider};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/llm-proxy.db";
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
const LOAD_BALANCE_STRATEGIES: &[&str] =
    &["round_robin", "weighted", "least_connections", "latency", "conversation_hash", "semantic"];

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
    pub default_admin_username: String,
    pub default_admin_password: Option<SecretString>,
    pub health_check: HealthCheck,
    pub load_balance_strategy: String,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after SIGTERM before they are cut.
    pub shutdown_grace: Duration,
    pub upstream_timeouts: UpstreamTimeouts,
    /// Enabled providers in config order (file order, then ones found only in the environment).
    pub providers: Vec<ProviderConfig>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen_addr: Option<String>,
    log_level: Option<String>,
    workers: Option<usize>,
    database_url: Option<String>,
    database_max_open_conns: Option<u32>,
    database_max_idle_conns: Option<u32>,
    redis_url: Option<String>,
    master_key: Option<String>,
    secret_key: Option<String>,
    encryption_key: Option<String>,
    session_expire_hours: Option<u64>,
    default_admin_username: Option<String>,
    default_admin_password: Option<String>,
    health_check: Option<RawHealthCheck>,
    load_balance_strategy: Option<String>,
    max_body_bytes: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    upstream_timeouts: Option<RawTimeouts>,
    #[serde(default)]
    providers: IndexMap<String, RawProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    enabled: Option<bool>,
    interval_secs: Option<u64>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect_secs: Option<u64>,
    first_byte_secs: Option<u64>,
    between_chunks_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    api_key: Option<String>,
    base_url: Option<String>,
    protocol: Option<String>,
    #[serde(default)]
    models: Vec<RawModel>,
    stream_options: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawModel {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        alias: Option<String>,
    },
}

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

    /// The effective config as YAML, every secret replaced by `"***"`.
    pub fn redacted_yaml(&self) -> String {
        use serde_yaml::{Mapping, Value};
        fn secret(s: &Option<SecretString>) -> Value {
            match s {
                Some(v) if !v.expose_secret().is_empty() => Value::from("***"),
                _ => Value::Null,
            }
        }
        let mut m = Mapping::new();
        m.insert("listen_addr".into(), self.listen_addr.to_string().into());
        m.insert("log_level".into(), self.log_level.clone().into());
        m.insert("workers".into(), self.workers.map(|w| Value::from(w as u64)).unwrap_or(Value::Null));
        m.insert("database_url".into(), redact_url(self.database_url.expose_secret()).into());
        m.insert("database_max_open_conns".into(), self.database_max_open_conns.into());
        m.insert("database_max_idle_conns".into(), self.database_max_idle_conns.into());
        m.insert(
            "redis_url".into(),
            self.redis_url.as_ref().map(|u| Value::from(redact_url(u.expose_secret()))).unwrap_or(Value::Null),
        );
        m.insert("master_key".into(), secret(&self.master_key));
        m.insert("secret_key".into(), secret(&self.secret_key));
        m.insert("encryption_key".into(), secret(&self.encryption_key));
        m.insert("session_expire_hours".into(), self.session_expire_hours.into());
        m.insert("default_admin_username".into(), self.default_admin_username.clone().into());
        m.insert("default_admin_password".into(), secret(&self.default_admin_password));
        let mut hc = Mapping::new();
        hc.insert("enabled".into(), self.health_check.enabled.into());
        hc.insert("interval_secs".into(), self.health_check.interval.as_secs().into());
        hc.insert("timeout_secs".into(), self.health_check.timeout.as_secs().into());
        m.insert("health_check".into(), Value::Mapping(hc));
        m.insert("load_balance_strategy".into(), self.load_balance_strategy.clone().into());
        m.insert("max_body_bytes".into(), (self.max_body_bytes as u64).into());
        m.insert("shutdown_grace_secs".into(), self.shutdown_grace.as_secs().into());
        let mut t = Mapping::new();
        t.insert("connect_secs".into(), self.upstream_timeouts.connect.as_secs().into());
        t.insert("first_byte_secs".into(), self.upstream_timeouts.first_byte.as_secs().into());
        t.insert("between_chunks_secs".into(), self.upstream_timeouts.between_chunks.as_secs().into());
        m.insert("upstream_timeouts".into(), Value::Mapping(t));
        let mut providers = Mapping::new();
        for p in &self.providers {
            let mut pm = Mapping::new();
            pm.insert("protocol".into(), p.protocol.as_str().into());
            pm.insert("base_url".into(), p.base_url.clone().into());
            pm.insert("api_key".into(), secret(&p.api_key));
            pm.insert("stream_options".into(), p.stream_options.into());
            let models: Vec<Value> = p
                .models
                .iter()
                .map(|mc| {
                    let mut mm = Mapping::new();
                    mm.insert("name".into(), mc.name.clone().into());
                    if let Some(a) = &mc.alias {
                        mm.insert("alias".into(), a.clone().into());
                    }
                    Value::Mapping(mm)
                })
                .collect();
            if !models.is_empty() {
                pm.insert("models".into(), Value::Sequence(models));
            }
            providers.insert(p.name.clone().into(), Value::Mapping(pm));
        }
        m.insert("providers".into(), Value::Mapping(providers));
        serde_yaml::to_string(&Value::Mapping(m)).unwrap_or_default()
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{}{}{}", &url[..scheme_end + 3], masked, &rest[at..])
        }
        None => url.to_string(),
    }
}

fn parse_file(text: &str, env: &dyn Env, errors: &mut Vec<ConfigError>) -> RawConfig {
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

fn env_parse<T: std::str::FromStr>(env: &dyn Env, name: &str, errors: &mut Vec<ConfigError>) -> Option<T>
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
    if let Some(url) = &redis_url {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            errors.push(ConfigError {
                path: "redis_url".into(),
                message: "must start with redis:// or rediss://".into(),
            });
        } else {
            warnings.push(
                "redis_url is set, but this build keeps shared state in process; cluster mode comes with Redis support"
                    .into(),
            );
        }
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
    let load_balance_strategy =
        env_string(env, "LOAD_BALANCE_STRATEGY").or(raw.load_balance_strategy).unwrap_or_else(|| "round_robin".into());
    if !LOAD_BALANCE_STRATEGIES.contains(&load_balance_strategy.as_str()) {
        errors.push(ConfigError {
            path: "load_balance_strategy".into(),
            message: format!("{load_balance_strategy:?} is not one of {}", LOAD_BALANCE_STRATEGIES.join(", ")),
        });
    }
    let max_body_bytes =
        env_parse(env, "MAX_BODY_BYTES", errors).or(raw.max_body_bytes).unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes < 1024 {
        errors.push(ConfigError { path: "max_body_bytes".into(), message: "must be at least 1024".into() });
    }
    let shutdown_grace =
        Duration::from_secs(env_parse(env, "SHUTDOWN_GRACE_SECS", errors).or(raw.shutdown_grace_secs).unwrap_or(30));
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

    let providers = build_providers(raw.providers, env, errors, warnings);

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
        default_admin_username,
        default_admin_password: default_admin_password.map(Into::into),
        health_check,
        load_balance_strategy,
        max_body_bytes,
        shutdown_grace,
        upstream_timeouts,
        providers,
    }
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

fn build_providers(
    raw: IndexMap<String, RawProvider>,
    env: &dyn Env,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Warnings,
) -> Vec<ProviderConfig> {
    let mut out: Vec<ProviderConfig> = Vec::new();
    let mut aliases_seen: IndexMap<String, String> = IndexMap::new();
    for (name, p) in raw {
        let path = format!("providers.{name}");
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
            errors
                .push(ConfigError { path, message: "a provider name must be non-empty, without '/' or spaces".into() });
            continue;
        }
        let known = known_provider(&name);
        let protocol = match p.protocol.as_deref() {
            Some(s) => match Protocol::parse(s) {
                Some(proto) => proto,
                None => {
                    errors.push(ConfigError {
                        path: format!("{path}.protocol"),
                        message: format!("{s:?} is not one of openai, anthropic, gemini, glm"),
                    });
                    continue;
                }
            },
            None => match known {
                Some(k) => k.protocol,
                None => {
                    errors.push(ConfigError {
                        path: format!("{path}.protocol"),
                        message: format!("required: {name:?} is not a provider llm-proxy knows, so say which protocol it speaks (openai, anthropic, gemini, glm)"),
                    });
                    continue;
                }
            },
        };
        if !protocol.is_supported() {
            errors.push(ConfigError {
                path: format!("{path}.protocol"),
                message: format!(
                    "the {} protocol is not supported by this build yet (supported: openai)",
                    protocol.as_str()
                ),
            });
            continue;
        }
        let base_url = match non_empty(p.base_url).or_else(|| known.and_then(|k| k.base_url).map(String::from)) {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                errors.push(ConfigError {
                    path: format!("{path}.base_url"),
                    message: "required for this provider".into(),
                });
                continue;
            }
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            errors.push(ConfigError {
                path: format!("{path}.base_url"),
                message: format!("{base_url:?} must start with http:// or https://"),
            });
            continue;
        }
        let api_key = non_empty(p.api_key).or_else(|| {
            known.and_then(|k| k.key_vars.iter().find_map(|v| env.var(v).filter(|s| !s.trim().is_empty())))
        });
        let needs_key = known.is_some_and(|k| !k.key_vars.is_empty());
        if needs_key && api_key.is_none() {
            warnings.push(format!("{path}: no api_key (and none in the environment); provider disabled"));
            continue;
        }
        let mut models = Vec::new();
        for (i, m) in p.models.into_iter().enumerate() {
            let (mname, alias) = match m {
                RawModel::Name(n) => (n, None),
                RawModel::Full { name, alias } => (name, alias),
            };
            if mname.trim().is_empty() {
                errors.push(ConfigError {
                    path: format!("{path}.models[{i}].name"),
                    message: "must not be empty".into(),
                });
                continue;
            }
            if let Some(a) = &alias {
                if a.trim().is_empty() || a.contains('/') {
                    errors.push(ConfigError {
                        path: format!("{path}.models[{i}].alias"),
                        message: "must be non-empty and without '/'".into(),
                    });
                    continue;
                }
                if let Some(prev) = aliases_seen.insert(a.clone(), path.clone()) {
                    errors.push(ConfigError {
                        path: format!("{path}.models[{i}].alias"),
                        message: format!("alias {a:?} is already used by {prev}"),
                    });
                }
            }
            models.push(ModelConfig { name: mname, alias });
        }
        let canonical = known.map(|k| k.name.to_string()).unwrap_or_else(|| name.clone());
        if out.iter().any(|o| o.name == canonical) {
            errors.push(ConfigError { path, message: format!("configured twice (as {canonical:?})") });
            continue;
        }
        let stream_options = p.stream_options.unwrap_or(known.is_none_or(|k| k.stream_options));
        out.push(ProviderConfig {
            name: canonical,
            protocol,
            base_url,
            api_key: api_key.map(Into::into),
            models,
            stream_options,
        });
    }
    // Providers named nowhere in the file but whose key is in the environment.
    for k in KNOWN_PROVIDERS {
        if out.iter().any(|p| p.name == k.name) || k.key_vars.is_empty() {
            continue;
        }
        let Some(key) = k.key_vars.iter().find_map(|v| env.var(v).filter(|s| !s.trim().is_empty())) else {
            continue;
        };
        let Some(base_url) = k.base_url else { continue };
        if !k.protocol.is_supported() {
            warnings.push(format!(
                "{} found in the environment, but the {} protocol is not supported by this build yet; skipped",
                k.key_vars.iter().find(|v| env.var(v).is_some()).copied().unwrap_or(k.name),
                k.protocol.as_str()
            ));
            continue;
        }
        out.push(ProviderConfig {
            name: k.name.to_string(),
            protocol: k.protocol,
            base_url: base_url.to_string(),
            api_key: Some(key.into()),
            models: Vec::new(),
            stream_options: k.stream_options,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let c = load(None, &[("OPENAI_API_KEY", "sk-a"), ("XAI_API_KEY", "xk"), ("ANTHROPIC_API_KEY", "ak")]).unwrap();
        let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "grok"]);
        assert_eq!(c.listen_addr.to_string(), "0.0.0.0:8000");
        assert_eq!(c.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(c.max_body_bytes, 10 * 1024 * 1024);
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
}
