//! Showing a config without its secrets.

use secrecy::{ExposeSecret, SecretString};

use super::Config;

impl Config {
    /// The effective config as YAML, every secret replaced by `"***"`.
    pub fn redacted_yaml(&self) -> String {
        serde_yaml::to_string(&self.redacted()).unwrap_or_default()
    }

    /// The effective config as JSON (`GET /api/settings`), every secret replaced by `"***"`.
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self.redacted()).unwrap_or_default()
    }

    fn redacted(&self) -> serde_yaml::Value {
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
        m.insert("data_dir".into(), self.data_dir.display().to_string().into());
        m.insert("secure_cookies".into(), self.secure_cookies.into());
        m.insert("default_admin_username".into(), self.default_admin_username.clone().into());
        m.insert("default_admin_password".into(), secret(&self.default_admin_password));
        let mut hc = Mapping::new();
        hc.insert("enabled".into(), self.health_check.enabled.into());
        hc.insert("interval_secs".into(), self.health_check.interval.as_secs().into());
        hc.insert("timeout_secs".into(), self.health_check.timeout.as_secs().into());
        m.insert("health_check".into(), Value::Mapping(hc));
        m.insert("load_balance_strategy".into(), self.load_balance_strategy.as_str().into());
        let mut cb = Mapping::new();
        cb.insert("failure_threshold".into(), self.circuit_breaker.failure_threshold.into());
        cb.insert("window_secs".into(), self.circuit_breaker.window.as_secs().into());
        cb.insert("cooldown_secs".into(), self.circuit_breaker.cooldown.as_secs().into());
        m.insert("circuit_breaker".into(), Value::Mapping(cb));
        m.insert("max_body_bytes".into(), (self.max_body_bytes as u64).into());
        m.insert("shutdown_grace_secs".into(), self.shutdown_grace.as_secs().into());
        m.insert("stream_keep_alive_secs".into(), self.stream_keep_alive.as_secs().into());
        let mut t = Mapping::new();
        t.insert("connect_secs".into(), self.upstream_timeouts.connect.as_secs().into());
        t.insert("first_byte_secs".into(), self.upstream_timeouts.first_byte.as_secs().into());
        t.insert("between_chunks_secs".into(), self.upstream_timeouts.between_chunks.as_secs().into());
        m.insert("upstream_timeouts".into(), Value::Mapping(t));
        let c = &self.connections;
        let mut conn = Mapping::new();
        conn.insert("max_connections".into(), (c.max_connections as u64).into());
        conn.insert("header_read_timeout_secs".into(), c.header_read_timeout.as_secs().into());
        conn.insert("idle_timeout_secs".into(), c.idle_timeout.as_secs().into());
        conn.insert("write_timeout_secs".into(), c.write_timeout.as_secs().into());
        conn.insert("max_in_flight".into(), (c.max_in_flight as u64).into());
        m.insert("connections".into(), Value::Mapping(conn));
        m.insert("max_tokens_ceiling".into(), self.max_tokens_ceiling.into());
        m.insert("log_retention_days".into(), self.log_retention_days.into());
        m.insert("response_retention_days".into(), self.response_retention_days.into());
        m.insert("admin_auth_failures_per_minute".into(), self.admin_auth_failures_per_minute.into());
        let mut providers = Mapping::new();
        for p in &self.providers {
            let mut pm = Mapping::new();
            pm.insert("protocol".into(), p.protocol.as_str().into());
            pm.insert("base_url".into(), redact_url(&p.base_url).into());
            pm.insert("api_key".into(), secret(&p.api_key));
            pm.insert("stream_options".into(), p.stream_options.into());
            pm.insert("responses_api".into(), p.responses_api.into());
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
        // Limits and budgets hold no secrets; the pricing refresh URL may carry a token.
        let mut pricing = self.pricing.clone();
        pricing.refresh_url = pricing.refresh_url.as_deref().map(redact_url);
        for (name, v) in [
            ("rate_limits", serde_yaml::to_value(&self.rate_limits)),
            ("cost_budget", serde_yaml::to_value(&self.cost_budget)),
            ("pricing", serde_yaml::to_value(&pricing)),
        ] {
            m.insert(name.into(), v.unwrap_or(Value::Null));
        }
        // Routes hold no secrets: model names, weights and examples.
        if !self.routes.is_empty() {
            m.insert("routes".into(), serde_yaml::to_value(&self.routes).unwrap_or(Value::Null));
        }
        Value::Mapping(m)
    }
}

/// Hides the credentials of a `scheme://user:password@host/path?token=...` URL, wherever they are:
/// the password (the user stays, it names an account), a user-only userinfo (`https://KEY@host`
/// carries a token there), and the value of every query parameter that looks secret
/// ([`secret_param`]). Used for every URL the gateway shows: database and Redis URLs, provider
/// `base_url`s, URLs quoted in upstream error text.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The last '@' before the query ends the user info, even if the password holds a '/'.
    let mut out = head.to_string();
    match before_query.rfind('@') {
        Some(at) => {
            let userinfo = &before_query[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None if userinfo.is_empty() => {}
                None => out.push_str("***"),
            }
            out.push_str(&before_query[at..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !v.is_empty() && secret_param(k) => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// Whether a query parameter named `name` likely carries a credential: the short names services
/// use for them, and any name containing key, token, secret, password, signature or credential
/// (`X-Amz-Signature`, `sslpassword`), whatever the case.
fn secret_param(name: &str) -> bool {
    const EXACT: [&str; 5] = ["pass", "pwd", "sig", "auth", "code"];
    const PARTS: [&str; 6] = ["key", "token", "secret", "password", "signature", "credential"];
    let name = name.to_ascii_lowercase();
    EXACT.contains(&name.as_str()) || PARTS.iter().any(|p| name.contains(p))
}

/// `text` with every `http://` or `https://` URL in it passed through [`redact_url`]: for
/// messages that may quote a URL (upstream errors, transport failures).
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["http://", "https://"].iter().filter_map(|s| find_ci(rest, s)).min() {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        // A URL ends where whitespace, a quote or a closing bracket begins.
        let end =
            tail.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`')).unwrap_or(tail.len());
        out.push_str(&redact_url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The byte offset of `needle` (ASCII) in `haystack`, ignoring ASCII case.
fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::{redact_url, redact_urls_in};
    use crate::config::{Config, Overrides};

    #[test]
    fn passwords_are_hidden_wherever_they_are() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u:pa/ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact_url("postgres://app:x@db/llm?sslmode=require&password=s3cret&sslpassword=x"),
            "postgres://app:***@db/llm?sslmode=require&password=***&sslpassword=***"
        );
        assert_eq!(redact_url("sqlite://data/llm-proxy.db"), "sqlite://data/llm-proxy.db");
        assert_eq!(redact_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
    }

    #[test]
    fn user_only_userinfo_and_secret_query_parameters_are_hidden() {
        assert_eq!(redact_url("https://sk-abc@api.example/v1"), "https://***@api.example/v1");
        assert_eq!(redact_url("http://user:pass@host/v1?token=T"), "http://user:***@host/v1?token=***");
        for name in [
            "key",
            "api_key",
            "apikey",
            "token",
            "access_token",
            "secret",
            "password",
            "pass",
            "sig",
            "signature",
            "auth",
            "code",
            "X-Goog-Api-Key",
            "clientSecret",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
        ] {
            assert_eq!(redact_url(&format!("https://h/p?a=1&{name}=T&b=2")), format!("https://h/p?a=1&{name}=***&b=2"));
        }
        assert_eq!(redact_url("https://h/v1?alt=sse&model=m"), "https://h/v1?alt=sse&model=m", "others stay");
    }

    #[test]
    fn urls_quoted_in_text_are_redacted() {
        assert_eq!(
            redact_urls_in("cannot reach \"http://u:pass@h/v1?key=T\": refused; see HTTPS://x@docs/a"),
            "cannot reach \"http://u:***@h/v1?key=***\": refused; see HTTPS://***@docs/a"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
    }

    #[test]
    fn config_check_shows_no_credential_of_a_base_url() {
        let file = "providers:\n  local:\n    protocol: openai\n    base_url: http://user:pw-canary@h/v1?token=tok-canary\n  bare:\n    protocol: openai\n    base_url: https://userinfo-canary@h/v1\npricing:\n  refresh_url: https://h/p.json?sig=sig-canary\n";
        let env = |_: &str| None::<String>;
        let (c, _) = Config::load(Some(file), &env, &Overrides::default()).unwrap();
        let out = c.redacted_yaml();
        assert!(!out.contains("canary"), "a credential leaked in:\n{out}");
        assert!(out.contains("http://user:***@h/v1?token=***"), "{out}");
    }
}
