//! The operator's override file: prices per million tokens, keyed `provider/model`.
//!
//! ```yaml
//! openai/gpt-4o:                 # replaces the listed fields of the bundled entry
//!   input_per_mtok: 2.0
//! local/my-finetune:             # a model the table does not know: input and output are required
//!   input_per_mtok: 0.5
//!   output_per_mtok: 1.5
//!   context_window: 32768
//! ```
//! JSON with the same shape is accepted too. Unknown fields are errors, so a typo cannot silently
//! leave a price at its bundled value.

use serde::Deserialize;

use super::ModelPrice;
use super::model_id::canonical_provider;

/// One entry of the file; every field optional, so an override can change a single figure.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceOverride {
    pub input_per_mtok: Option<f64>,
    pub output_per_mtok: Option<f64>,
    pub cached_input_per_mtok: Option<f64>,
    pub cache_write_per_mtok: Option<f64>,
    pub reasoning_per_mtok: Option<f64>,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

/// One parsed entry: our provider name, the model id as written, and the figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Override {
    pub provider: String,
    pub model: String,
    pub key: String,
    pub fields: PriceOverride,
}

/// Parses and checks the whole file, reporting every bad entry, each with its key.
pub(crate) fn parse(text: &str) -> Result<Vec<Override>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: indexmap::IndexMap<String, PriceOverride> = if text.trim_start().starts_with('{') {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| format!("price overrides: {}: {}", e.path(), e.inner()))?
    } else {
        // `Option`: a YAML file of comments only is an empty document, not an error.
        let doc: Option<indexmap::IndexMap<String, PriceOverride>> =
            serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text))
                .map_err(|e| format!("price overrides: {}: {}", e.path(), e.inner()))?;
        doc.unwrap_or_default()
    };
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(raw.len());
    for (key, fields) in raw {
        match key.split_once('/') {
            Some((provider, model)) if !provider.trim().is_empty() && !model.trim().is_empty() => {
                for (name, value) in fields.prices() {
                    if let Some(v) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                        errors.push(format!("{key}.{name}: {v} is not a price (a number ≥ 0)"));
                    }
                }
                out.push(Override {
                    provider: canonical_provider(provider),
                    model: model.trim().to_owned(),
                    key: key.clone(),
                    fields,
                });
            }
            _ => errors.push(format!("{key}: keys are `provider/model`, e.g. `openai/gpt-4o`")),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(format!("price overrides: {}", errors.join("; "))) }
}

impl PriceOverride {
    fn prices(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("input_per_mtok", self.input_per_mtok),
            ("output_per_mtok", self.output_per_mtok),
            ("cached_input_per_mtok", self.cached_input_per_mtok),
            ("cache_write_per_mtok", self.cache_write_per_mtok),
            ("reasoning_per_mtok", self.reasoning_per_mtok),
        ]
    }

    /// Lays the given figures over `base`.
    pub fn apply(&self, base: &mut ModelPrice) {
        let per_token = |per_mtok: f64| per_mtok / 1e6;
        if let Some(v) = self.input_per_mtok {
            base.input = per_token(v);
        }
        if let Some(v) = self.output_per_mtok {
            base.output = per_token(v);
        }
        if let Some(v) = self.cached_input_per_mtok {
            base.cached_input = Some(per_token(v));
        }
        if let Some(v) = self.cache_write_per_mtok {
            base.cache_write = Some(per_token(v));
        }
        if let Some(v) = self.reasoning_per_mtok {
            base.reasoning = Some(per_token(v));
        }
        if let Some(v) = self.context_window {
            base.context_window = Some(v);
        }
        if let Some(v) = self.max_output_tokens {
            base.max_output_tokens = Some(v);
        }
        base.source = "override".to_owned();
    }

    /// A new entry for a model the table lacks; it needs at least the input and output prices.
    pub fn to_new_price(&self, key: &str) -> Result<ModelPrice, String> {
        let (Some(_), Some(_)) = (self.input_per_mtok, self.output_per_mtok) else {
            return Err(format!("{key}: not in the price table, so it needs both input_per_mtok and output_per_mtok"));
        };
        let mut price = ModelPrice {
            input: 0.0,
            output: 0.0,
            cached_input: None,
            cache_write: None,
            reasoning: None,
            context_window: None,
            max_output_tokens: None,
            source: String::new(),
        };
        self.apply(&mut price);
        Ok(price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_give_the_same_overrides() {
        let yaml = "xai/grok-4:\n  input_per_mtok: 3\n  output_per_mtok: 15\n";
        let json = r#"{"xai/grok-4": {"input_per_mtok": 3, "output_per_mtok": 15}}"#;
        let a = parse(yaml).unwrap();
        assert_eq!(a, parse(json).unwrap());
        assert_eq!(a[0].provider, "grok");
        assert_eq!(a[0].model, "grok-4");
    }

    #[test]
    fn openrouter_keys_keep_the_vendor_prefix_in_the_model() {
        let o = parse("openrouter/openai/gpt-4o: {input_per_mtok: 1}").unwrap();
        assert_eq!((o[0].provider.as_str(), o[0].model.as_str()), ("openrouter", "openai/gpt-4o"));
    }

    #[test]
    fn mistakes_are_reported_with_their_key() {
        let err = parse("openai/gpt-4o: {input_per_mtk: 1}").unwrap_err();
        assert!(err.contains("openai/gpt-4o") && err.contains("input_per_mtk"), "{err}");
        let err = parse("gpt-4o: {input_per_mtok: 1}").unwrap_err();
        assert!(err.contains("provider/model"), "{err}");
        let err = parse("openai/gpt-4o: {input_per_mtok: -1}").unwrap_err();
        assert!(err.contains("openai/gpt-4o.input_per_mtok"), "{err}");
        let err = parse(r#"{"openai/gpt-4o": {"input_per_mtok": "cheap"}}"#).unwrap_err();
        assert!(err.contains("openai/gpt-4o"), "{err}");
    }

    #[test]
    fn an_empty_file_overrides_nothing() {
        assert_eq!(parse("  \n").unwrap(), []);
        assert_eq!(parse("# no overrides yet\n").unwrap(), []);
    }
}
