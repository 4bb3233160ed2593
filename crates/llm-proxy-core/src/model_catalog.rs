//! Which public model names exist and which provider and upstream model each one means.
//!
//! A client names a model as an alias (`default`), as `provider/model` (`openai/gpt-4o`), or as a
//! bare upstream id (`gpt-4o`) when exactly one provider serves it. Built once per config snapshot;
//! resolution is a couple of hash lookups.

use std::collections::HashMap;

use crate::config::ProviderConfig;
use crate::known_provider::known_provider;

/// A provider of one config snapshot: its place in the config's provider list (and in the
/// snapshot's list of provider clients, built in the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProviderId(usize);

impl ProviderId {
    /// The provider at `index` of the config's provider list.
    pub fn at(index: usize) -> Self {
        Self(index)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

/// Where a public name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub provider: ProviderId,
    pub provider_name: String,
    pub upstream_model: String,
    /// The alias, when the client used one.
    pub alias: Option<String>,
}

impl Resolved {
    /// `provider/model`, the canonical public name.
    pub fn canonical(&self) -> String {
        format!("{}/{}", self.provider_name, self.upstream_model)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    Unknown,
    /// Several providers serve this bare id; the client must say `provider/model`.
    Ambiguous(Vec<String>),
}

struct Entry {
    name: String,
    /// Explicit models, or the known provider's defaults when the config lists none.
    models: Vec<String>,
    /// No explicit list: `provider/anything` is passed to the upstream as asked.
    open: bool,
}

pub struct ModelCatalog {
    entries: Vec<Entry>,
    aliases: HashMap<String, (usize, String)>,
    /// Bare upstream id → providers listing it explicitly.
    explicit: HashMap<String, Vec<usize>>,
    /// Bare upstream id → providers serving it by default.
    defaults: HashMap<String, Vec<usize>>,
}

/// One row of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub owned_by: String,
    pub resolved: Resolved,
}

impl ModelCatalog {
    pub fn new(providers: &[ProviderConfig]) -> Self {
        let mut entries = Vec::new();
        let mut aliases = HashMap::new();
        let mut explicit: HashMap<String, Vec<usize>> = HashMap::new();
        let mut defaults: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, p) in providers.iter().enumerate() {
            let open = p.models.is_empty();
            let models: Vec<String> = if open {
                known_provider(&p.name).map(|k| k.models.iter().map(|m| m.to_string()).collect()).unwrap_or_default()
            } else {
                p.models.iter().map(|m| m.name.clone()).collect()
            };
            for m in &p.models {
                if let Some(a) = &m.alias {
                    aliases.insert(a.clone(), (i, m.name.clone()));
                }
            }
            let index = if open { &mut defaults } else { &mut explicit };
            for m in &models {
                index.entry(m.clone()).or_default().push(i);
            }
            entries.push(Entry { name: p.name.clone(), models, open });
        }
        Self { entries, aliases, explicit, defaults }
    }

    pub fn resolve(&self, name: &str) -> Result<Resolved, ResolveError> {
        if let Some((i, model)) = self.aliases.get(name) {
            return Ok(self.resolved(*i, model, Some(name.to_string())));
        }
        if let Some((prefix, model)) = name.split_once('/')
            && !model.is_empty()
        {
            let canonical = known_provider(prefix).map(|k| k.name).unwrap_or(prefix);
            if let Some(i) = self.entries.iter().position(|e| e.name == canonical) {
                let e = &self.entries[i];
                if e.open || e.models.iter().any(|m| m == model) {
                    return Ok(self.resolved(i, model, None));
                }
                // Not this provider's: the whole name may still be another provider's model id
                // (`openai/gpt-oss-20b` served by groq).
            }
        }
        for index in [&self.explicit, &self.defaults] {
            match index.get(name).map(Vec::as_slice) {
                Some([i]) => return Ok(self.resolved(*i, name, None)),
                Some(many) if many.len() > 1 => {
                    return Err(ResolveError::Ambiguous(
                        many.iter().map(|i| format!("{}/{name}", self.entries[*i].name)).collect(),
                    ));
                }
                _ => {}
            }
        }
        Err(ResolveError::Unknown)
    }

    fn resolved(&self, i: usize, model: &str, alias: Option<String>) -> Resolved {
        Resolved {
            provider: ProviderId(i),
            provider_name: self.entries[i].name.clone(),
            upstream_model: model.to_string(),
            alias,
        }
    }

    /// Whether a key limited to `allowed` may reach `target` under the name `requested`.
    ///
    /// An alias in the list grants that alias only (the operator may point it elsewhere later); a
    /// `provider/model` or bare id grants that deployment under any name that leads to it.
    pub fn allows(&self, allowed: &[String], requested: &str, target: &Resolved) -> bool {
        allowed.is_empty()
            || allowed.iter().any(|entry| {
                entry == requested
                    || (!self.aliases.contains_key(entry)
                        && self
                            .resolve(entry)
                            .is_ok_and(|r| r.provider == target.provider && r.upstream_model == target.upstream_model))
            })
    }

    /// Every public name: aliases first, then `provider/model` for each listed model.
    pub fn list(&self) -> Vec<ListedModel> {
        let mut out: Vec<ListedModel> = self
            .aliases
            .iter()
            .map(|(alias, (i, model))| ListedModel {
                id: alias.clone(),
                owned_by: self.entries[*i].name.clone(),
                resolved: self.resolved(*i, model, Some(alias.clone())),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        for (i, e) in self.entries.iter().enumerate() {
            for m in &e.models {
                out.push(ListedModel {
                    id: format!("{}/{m}", e.name),
                    owned_by: e.name.clone(),
                    resolved: self.resolved(i, m, None),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::known_provider::Protocol;

    fn provider(name: &str, models: &[(&str, Option<&str>)]) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            protocol: Protocol::Openai,
            base_url: "http://x".into(),
            api_key: None,
            models: models
                .iter()
                .map(|(n, a)| ModelConfig { name: n.to_string(), alias: a.map(String::from) })
                .collect(),
            stream_options: true,
            responses_api: false,
        }
    }

    #[test]
    fn resolves_aliases_prefixed_and_bare_names() {
        let c = ModelCatalog::new(&[
            provider("openai", &[]),
            provider("local", &[("llama3", Some("default")), ("qwen", None)]),
            provider("groq", &[]),
        ]);
        let r = c.resolve("default").unwrap();
        assert_eq!((r.provider_name.as_str(), r.upstream_model.as_str()), ("local", "llama3"));
        assert_eq!(c.resolve("openai/gpt-4o-2024-08-06").unwrap().upstream_model, "gpt-4o-2024-08-06");
        assert_eq!(c.resolve("gpt-4o").unwrap().provider_name, "openai");
        assert_eq!(c.resolve("qwen").unwrap().provider_name, "local");
        // a configured provider's prefix wins over a bare id that contains '/'
        assert_eq!(c.resolve("openai/gpt-oss-20b").unwrap().provider_name, "openai");
        assert_eq!(c.resolve("groq/openai/gpt-oss-20b").unwrap().upstream_model, "openai/gpt-oss-20b");
        assert_eq!(c.resolve("local/not-listed"), Err(ResolveError::Unknown));
        let c2 = ModelCatalog::new(&[provider("openai", &[("gpt-4o", None)]), provider("groq", &[])]);
        assert_eq!(c2.resolve("openai/gpt-oss-20b").unwrap().provider_name, "groq", "falls through to bare ids");
        assert_eq!(c.resolve("nope"), Err(ResolveError::Unknown));
        assert_eq!(c.resolve("xai/grok-4"), Err(ResolveError::Unknown), "grok is not configured");
    }

    #[test]
    fn key_model_lists_grant_deployments_but_aliases_only_themselves() {
        let c = ModelCatalog::new(&[provider("openai", &[]), provider("local", &[("llama3", Some("default"))])]);
        let allows = |allowed: &[&str], name: &str| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            c.allows(&allowed, name, &c.resolve(name).unwrap())
        };
        assert!(allows(&[], "gpt-4o"), "an empty list allows everything");
        assert!(allows(&["gpt-4o"], "openai/gpt-4o") && allows(&["openai/gpt-4o"], "gpt-4o"));
        assert!(!allows(&["gpt-4o"], "gpt-4o-mini"));
        assert!(allows(&["local/llama3"], "default"), "the deployment, under its alias too");
        assert!(allows(&["default"], "default") && !allows(&["default"], "local/llama3"));
    }

    #[test]
    fn bare_ids_served_twice_are_ambiguous() {
        let c = ModelCatalog::new(&[provider("a", &[("m", None)]), provider("b", &[("m", None)])]);
        assert_eq!(c.resolve("m"), Err(ResolveError::Ambiguous(vec!["a/m".into(), "b/m".into()])));
        assert_eq!(c.resolve("b/m").unwrap().provider, ProviderId::at(1));
    }

    #[test]
    fn lists_aliases_then_canonical_names() {
        let c = ModelCatalog::new(&[provider("local", &[("llama3", Some("default"))]), provider("deepseek", &[])]);
        let ids: Vec<_> = c.list().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["default", "local/llama3", "deepseek/deepseek-chat", "deepseek/deepseek-reasoner"]);
    }
}
