//! Model prices and limits, and what a request costs.
//!
//! The table ships inside the binary (`data/pricing.json`, built by `scripts/pricing/regenerate.py`
//! from litellm's and models.dev's public price lists), so pricing works with no network at all.
//! On top of it an operator may lay an override file, and the server may refresh the base table from
//! a URL; both are pure steps here (`PriceTable::with_overrides`, `PriceTable::from_json`) so that the
//! I/O and the swap live in the server, as in `PricingSource`'s docs.
//!
//! Prices are USD per token in memory and in the bundled file, per million tokens ("$/Mtok") in the
//! override file and in the `llm-proxy models` table: the unit operators read on price pages.

mod cost;
mod model_id;
mod overrides;
mod price_table;

use std::path::PathBuf;
use std::time::Duration;

pub use cost::{Cost, DEFAULT_MAX_OUTPUT_TOKENS, cost, estimate_max};
pub use price_table::{PriceMatch, PriceTable, format_table};

/// What one model costs and how much it takes, per token, in USD.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// A prompt token that was neither read from nor written to the provider's prompt cache.
    pub input: f64,
    /// A completion token (reasoning tokens too, unless `reasoning` prices them apart).
    pub output: f64,
    /// A prompt token read from the prompt cache; `None`: billed as `input`.
    pub cached_input: Option<f64>,
    /// A prompt token written to the prompt cache (Anthropic's 5-minute write); `None`: billed as
    /// `input`.
    pub cache_write: Option<f64>,
    /// A reasoning ("thinking") token; `None`: billed as `output`.
    pub reasoning: Option<f64>,
    /// Tokens the model takes in one request, prompt and answer together.
    pub context_window: Option<u64>,
    /// The most tokens one answer may have.
    pub max_output_tokens: Option<u64>,
    /// Where the figures came from: `litellm`, `models.dev`, `litellm+models.dev`, `override`, or
    /// whatever a refreshed table says.
    pub source: String,
}

impl ModelPrice {
    pub fn cached_input_price(&self) -> f64 {
        self.cached_input.unwrap_or(self.input)
    }

    pub fn cache_write_price(&self) -> f64 {
        self.cache_write.unwrap_or(self.input)
    }

    pub fn reasoning_price(&self) -> f64 {
        self.reasoning.unwrap_or(self.output)
    }
}

/// Where the live price table comes from and how it is kept fresh: the server's half of pricing.
///
/// The server holds the table as an `ArcSwap<PriceTable>` and follows the house rule for live state
/// (fallible prepare, infallible swap):
///
/// 1. At start-up it stores [`PricingSource::initial`]: the bundled table with the override file
///    applied. A bad override file is a config error and stops start-up, with the message returned.
/// 2. If `url` is set, a task on the `TaskTracker` (and, in a cluster, only on the holder of the
///    leader lease, publishing the result to the others) fetches it every `refresh_interval`,
///    through the shared outbound HTTP client, with a body-size cap. The body must be a table in the
///    bundled format, i.e. what `scripts/pricing/regenerate.py` writes; the raw `pricing.json` of
///    a newer llm-proxy release works.
/// 3. It calls [`PricingSource::prepare`] on the body (re-reading the override file each time, so
///    edits to it take effect at the next refresh). On `Ok` it swaps the new table in; on `Err` it
///    logs a warning with the message and keeps serving the last good table. A failed fetch, a
///    truncated or empty body, or a table with a negative price never replaces a good one.
///
/// A request loads one snapshot of the table and prices itself with it, so a swap mid-request
/// cannot mix two tables. Nothing here touches the network or the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingSource {
    /// A URL serving a table in the bundled format. `None` (the default): the bundled table only,
    /// and no network access for pricing, ever.
    pub url: Option<String>,
    /// How often to fetch `url`; [`PricingSource::DEFAULT_REFRESH_INTERVAL`] unless configured.
    pub refresh_interval: Duration,
    /// The operator's override file (YAML or JSON, `{"provider/model": {input_per_mtok, ...}}`),
    /// applied on top of every table, bundled or fetched. Overrides always win.
    pub overrides_path: Option<PathBuf>,
}

impl PricingSource {
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

    /// The table to serve before any refresh: the bundled one plus the overrides, if any.
    pub fn initial(overrides: Option<&str>) -> Result<PriceTable, String> {
        let bundled = PriceTable::bundled();
        match overrides {
            Some(text) => bundled.with_overrides(text),
            None => Ok(bundled.clone()),
        }
    }

    /// The fallible half of one refresh: a downloaded body (and the override file's current text)
    /// to a table ready to swap in. `Err` means keep the current table.
    pub fn prepare(body: &str, overrides: Option<&str>) -> Result<PriceTable, String> {
        let fetched = PriceTable::from_json(body).map_err(|e| format!("refreshed price table rejected: {e}"))?;
        match overrides {
            Some(text) => fetched.with_overrides(text),
            None => Ok(fetched),
        }
    }
}

impl Default for PricingSource {
    fn default() -> Self {
        Self { url: None, refresh_interval: Self::DEFAULT_REFRESH_INTERVAL, overrides_path: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"format": 1, "models": {"openai": {"gpt-4o": {"input": 2e-06, "output": 8e-06}}}}"#;

    #[test]
    fn the_default_source_is_the_bundled_table_refreshed_daily_if_given_a_url() {
        let source = PricingSource::default();
        assert_eq!((source.url, source.refresh_interval), (None, Duration::from_secs(86_400)));
        assert_eq!(PricingSource::initial(None).unwrap().len(), PriceTable::bundled().len());
    }

    #[test]
    fn a_refresh_keeps_the_overrides() {
        let table = PricingSource::prepare(GOOD, Some("openai/gpt-4o: {input_per_mtok: 1}")).unwrap();
        let p = table.lookup("openai", "gpt-4o").unwrap();
        assert_eq!((p.input, p.output), (1e-6, 8e-6));
    }

    #[test]
    fn a_bad_download_or_bad_overrides_never_become_the_table() {
        let live = arc_swap::ArcSwap::from_pointee(PricingSource::initial(None).unwrap());
        for (body, overrides) in [("", None), ("{\"format\": 1, \"models\": {}}", None), (GOOD, Some("gpt-4o: {}"))] {
            match PricingSource::prepare(body, overrides) {
                Ok(table) => live.store(std::sync::Arc::new(table)),
                Err(e) => assert!(e.contains("price"), "{e}"),
            }
        }
        assert_eq!(live.load().len(), PriceTable::bundled().len());
        assert!(PricingSource::initial(Some("openai/gpt-4o: {input_per_mtok: nope}")).is_err());
    }
}
