//! The `providers` section: known names filled in, keys found in the environment, every
//! problem reported with its path.

use indexmap::IndexMap;

use super::file::{RawModel, RawProvider};
use super::{ConfigError, Env, ModelConfig, ProviderConfig, Warnings, non_empty};
use crate::known_provider::{KNOWN_PROVIDERS, Protocol, known_provider};

/// GLM keys are `id.secret`: the id names the key in each token, the secret signs it.
fn valid_glm_key(key: &str) -> bool {
    key.split_once('.').is_some_and(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

pub(super) fn build_providers(
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
                message: format!("{:?} must start with http:// or https://", super::redact_url(&base_url)),
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
        if protocol == Protocol::Glm && api_key.as_deref().is_some_and(|k| !valid_glm_key(k)) {
            errors.push(ConfigError {
                path: format!("{path}.api_key"),
                message: "a ZhipuAI GLM key has the form `id.secret` (as the bigmodel.cn console shows it)".into(),
            });
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
        // GLM's API has no `stream_options` whatever the provider is called.
        let stream_options = p.stream_options.unwrap_or(known.map_or(protocol != Protocol::Glm, |k| k.stream_options));
        // Of the OpenAI-protocol servers, only OpenAI's own is known to serve the Responses API.
        let responses_api = p.responses_api.unwrap_or(canonical == "openai");
        if responses_api && protocol != Protocol::Openai {
            errors.push(ConfigError {
                path: format!("{path}.responses_api"),
                message: "only an OpenAI-protocol server can serve the Responses API".into(),
            });
            continue;
        }
        out.push(ProviderConfig {
            name: canonical,
            protocol,
            base_url,
            api_key: api_key.map(Into::into),
            models,
            stream_options,
            responses_api,
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
        out.push(ProviderConfig {
            name: k.name.to_string(),
            protocol: k.protocol,
            base_url: base_url.to_string(),
            api_key: Some(key.into()),
            models: Vec::new(),
            stream_options: k.stream_options,
            responses_api: k.name == "openai",
        });
    }
    out
}
