//! What a request cost, and the most it can cost (for budget reservations).
//!
//! Sums are exact: each per-token price is turned once into whole pico-USD (10⁻¹² USD, so a price
//! down to $0.000001 per million tokens survives) and multiplied by integer token counts, so the
//! same usage always costs the same micro-dollars, whichever path (streamed or not) reported it.

use super::ModelPrice;
use crate::provider::TokenUsage;

/// Output tokens assumed for a reservation when neither the request nor the table says more.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4096;

const PICO_PER_MICRO: u128 = 1_000_000;

/// What one request cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// Exact to the pico-dollar; for logs and dashboards.
    pub usd: f64,
    /// Micro-USD, rounded up; what budgets count. Never 0 when any token was billed at a price
    /// above 0, so a stream of tiny requests cannot spend without being counted.
    pub micros: u64,
}

impl Cost {
    pub const ZERO: Cost = Cost { usd: 0.0, micros: 0 };

    fn from_pico(pico: u128) -> Self {
        Self { usd: pico as f64 / 1e12, micros: micros_rounded_up(pico) }
    }
}

/// The cost of `usage` at `price`.
///
/// `usage` follows `TokenUsage`'s convention: `prompt_tokens` includes `cached_tokens` and
/// `cache_write_tokens`, and `completion_tokens` includes `reasoning_tokens`. So:
/// - input = (prompt − cached − cache write) × input + cached × cached input + cache write × cache
///   write (each of the last two falls back to the input price when unpriced);
/// - output = (completion − reasoning) × output + reasoning × reasoning (falling back to output).
///
/// A provider that reports more cached or reasoning tokens than the total is believed on the parts,
/// and the total is not allowed to go negative.
pub fn cost(price: &ModelPrice, usage: &TokenUsage) -> Cost {
    let uncached = usage.prompt_tokens.saturating_sub(usage.cached_tokens).saturating_sub(usage.cache_write_tokens);
    let plain_output = usage.completion_tokens.saturating_sub(usage.reasoning_tokens);
    let pico = tokens_at(uncached, price.input)
        + tokens_at(usage.cached_tokens, price.cached_input_price())
        + tokens_at(usage.cache_write_tokens, price.cache_write_price())
        + tokens_at(plain_output, price.output)
        + tokens_at(usage.reasoning_tokens, price.reasoning_price());
    Cost::from_pico(pico)
}

/// The most a request can cost, in micro-USD, for reserving budget before the call.
///
/// Every prompt token is priced as uncached input, or as a cache write where that is dearer
/// (Anthropic); the answer is taken to be `max_output_tokens` long (the request's `max_tokens`),
/// else the model's maximum, else [`DEFAULT_MAX_OUTPUT_TOKENS`], all at the dearer of the output
/// and reasoning prices.
pub fn estimate_max(price: &ModelPrice, prompt_tokens_estimate: u64, max_output_tokens: Option<u64>) -> u64 {
    let output_tokens = max_output_tokens.or(price.max_output_tokens).unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS);
    let input_price = price.input.max(price.cache_write_price());
    let output_price = price.output.max(price.reasoning_price());
    micros_rounded_up(tokens_at(prompt_tokens_estimate, input_price) + tokens_at(output_tokens, output_price))
}

/// `tokens` at a per-token USD price, in pico-USD. A positive price is at least 1 pico-USD, so it
/// never rounds away to free.
fn tokens_at(tokens: u64, usd_per_token: f64) -> u128 {
    if tokens == 0 || usd_per_token.is_nan() || usd_per_token <= 0.0 {
        return 0;
    }
    // Prices are validated finite and non-negative when a table is built; the cast saturates anyway.
    let pico_per_token = ((usd_per_token * 1e12).round() as u128).max(1);
    u128::from(tokens) * pico_per_token
}

fn micros_rounded_up(pico: u128) -> u64 {
    u64::try_from(pico.div_ceil(PICO_PER_MICRO)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A price from $/Mtok figures, as on the providers' price pages.
    fn per_mtok(input: f64, output: f64) -> ModelPrice {
        ModelPrice {
            input: input / 1e6,
            output: output / 1e6,
            cached_input: None,
            cache_write: None,
            reasoning: None,
            context_window: None,
            max_output_tokens: None,
            source: "test".into(),
        }
    }

    fn usage(prompt: u64, completion: u64) -> TokenUsage {
        TokenUsage { prompt_tokens: prompt, completion_tokens: completion, ..TokenUsage::default() }
    }

    #[test]
    fn openai_cached_prompt_tokens_are_billed_at_the_cached_price() {
        // gpt-4o: $2.50 input, $1.25 cached input, $10 output per Mtok.
        let price = ModelPrice { cached_input: Some(1.25e-6), ..per_mtok(2.5, 10.0) };
        let u = TokenUsage { cached_tokens: 1_024, ..usage(3_000, 500) };
        // 1,976 × 2.5 + 1,024 × 1.25 + 500 × 10 = 4,940 + 1,280 + 5,000 = 11,220 µ$
        let c = cost(&price, &u);
        assert_eq!(c.micros, 11_220);
        assert!((c.usd - 0.011_22).abs() < 1e-12, "{}", c.usd);
    }

    #[test]
    fn anthropic_cache_reads_and_writes_have_their_own_prices() {
        // claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output per Mtok.
        // Anthropic reported input_tokens 200, cache_read 10,000, cache_creation 2,000; the adapter
        // folds them into prompt_tokens = 12,200.
        let price = ModelPrice { cached_input: Some(0.3e-6), cache_write: Some(3.75e-6), ..per_mtok(3.0, 15.0) };
        let u = TokenUsage { cached_tokens: 10_000, cache_write_tokens: 2_000, ..usage(12_200, 1_000) };
        // 200 × 3 + 10,000 × 0.3 + 2,000 × 3.75 + 1,000 × 15 = 600 + 3,000 + 7,500 + 15,000 µ$
        assert_eq!(cost(&price, &u).micros, 26_100);
    }

    #[test]
    fn gemini_thoughts_are_billed_at_the_reasoning_price() {
        // gemini-2.5-flash-preview: $0.15 input, $0.60 output, $3.50 thinking output per Mtok.
        let price = ModelPrice { reasoning: Some(3.5e-6), ..per_mtok(0.15, 0.6) };
        // candidatesTokenCount 400 + thoughtsTokenCount 1,600 → completion 2,000, reasoning 1,600.
        let u = TokenUsage { reasoning_tokens: 1_600, ..usage(10_000, 2_000) };
        // 10,000 × 0.15 + 400 × 0.6 + 1,600 × 3.5 = 1,500 + 240 + 5,600 µ$
        assert_eq!(cost(&price, &u).micros, 7_340);

        // Priced like output when the table has no separate reasoning price.
        let plain = per_mtok(0.15, 0.6);
        assert_eq!(cost(&plain, &u).micros, 1_500 + 1_200);
    }

    #[test]
    fn deepseek_cache_hits_are_cheap() {
        // deepseek-chat: $0.28 miss, $0.028 hit, $0.42 output per Mtok.
        let price = ModelPrice { cached_input: Some(0.028e-6), ..per_mtok(0.28, 0.42) };
        // DeepSeek reports its hits in `prompt_cache_hit_tokens`, part of `prompt_tokens`.
        let u: TokenUsage = serde_json::from_str::<llm_proxy_protocol::openai::Usage>(
            r#"{"prompt_tokens":60000,"completion_tokens":1000,"total_tokens":61000,
                "prompt_cache_hit_tokens":50000,"prompt_cache_miss_tokens":10000}"#,
        )
        .unwrap()
        .into();
        assert_eq!(u.cached_tokens, 50_000);
        // 10,000 × 0.28 + 50,000 × 0.028 + 1,000 × 0.42 = 2,800 + 1,400 + 420 µ$
        assert_eq!(cost(&price, &u).micros, 4_620);
    }

    #[test]
    fn unpriced_cache_tokens_fall_back_to_the_input_price() {
        let price = per_mtok(1.0, 2.0);
        let u = TokenUsage { cached_tokens: 300, cache_write_tokens: 200, ..usage(1_000, 0) };
        assert_eq!(cost(&price, &u).micros, 1_000);
    }

    #[test]
    fn streamed_and_non_streamed_usage_cost_the_same() {
        // mistral-large: $2 input, $6 output per Mtok. A stream reports its usage on the last chunk;
        // whichever path reports it, the same numbers cost the same.
        let price = per_mtok(2.0, 6.0);
        let non_streamed: TokenUsage = serde_json::from_str::<llm_proxy_protocol::openai::Usage>(
            r#"{"prompt_tokens":1234,"completion_tokens":567,"total_tokens":1801}"#,
        )
        .unwrap()
        .into();
        let streamed = usage(1_234, 567);
        assert_eq!(non_streamed, streamed);
        // 1,234 × 2 + 567 × 6 = 2,468 + 3,402 µ$
        assert_eq!(cost(&price, &non_streamed), cost(&price, &streamed));
        assert_eq!(cost(&price, &streamed).micros, 5_870);
    }

    #[test]
    fn a_priced_token_never_costs_zero() {
        // One token of text-embedding-3-small: $0.02 per Mtok = 0.02 µ$.
        let price = per_mtok(0.02, 0.0);
        let c = cost(&price, &usage(1, 0));
        assert_eq!(c.micros, 1);
        assert!(c.usd > 0.0);
        // Even a price below the pico-dollar resolution.
        assert_eq!(cost(&per_mtok(1e-9, 0.0), &usage(1, 0)).micros, 1);
    }

    #[test]
    fn free_models_and_empty_usage_cost_nothing() {
        assert_eq!(cost(&per_mtok(0.0, 0.0), &usage(1_000, 1_000)), Cost::ZERO);
        assert_eq!(cost(&per_mtok(3.0, 15.0), &TokenUsage::default()), Cost::ZERO);
    }

    #[test]
    fn inconsistent_usage_does_not_underflow() {
        let price = ModelPrice { cached_input: Some(0.5e-6), ..per_mtok(1.0, 2.0) };
        let u = TokenUsage { cached_tokens: 2_000, reasoning_tokens: 50, ..usage(1_000, 10) };
        assert_eq!(cost(&price, &u).micros, 1_000 + 100);
    }

    #[test]
    fn rounding_is_up_to_the_next_micro_dollar() {
        // 3 tokens at $0.15 per Mtok = 0.45 µ$ → 1; 10 tokens = 1.5 µ$ → 2.
        assert_eq!(cost(&per_mtok(0.15, 0.0), &usage(3, 0)).micros, 1);
        assert_eq!(cost(&per_mtok(0.15, 0.0), &usage(10, 0)).micros, 2);
    }

    #[test]
    fn reservations_assume_the_worst() {
        let price = ModelPrice {
            cached_input: Some(0.3e-6),
            cache_write: Some(3.75e-6),
            max_output_tokens: Some(64_000),
            ..per_mtok(3.0, 15.0)
        };
        // The request's max_tokens: 1,000 × 3.75 (cache write is dearer) + 500 × 15.
        assert_eq!(estimate_max(&price, 1_000, Some(500)), 3_750 + 7_500);
        // The model's max output.
        assert_eq!(estimate_max(&price, 1_000, None), 3_750 + 64_000 * 15);
        // Neither: 4,096 tokens.
        let plain = per_mtok(1.0, 2.0);
        assert_eq!(estimate_max(&plain, 100, None), 100 + DEFAULT_MAX_OUTPUT_TOKENS * 2);
        // Reasoning dearer than output.
        let thinking = ModelPrice { reasoning: Some(3.5e-6), ..per_mtok(0.15, 0.6) };
        assert_eq!(estimate_max(&thinking, 0, Some(1_000)), 3_500);
    }

    #[test]
    fn a_reservation_covers_any_real_cost_of_the_same_request() {
        let price = ModelPrice {
            cached_input: Some(0.3e-6),
            cache_write: Some(3.75e-6),
            reasoning: Some(20e-6),
            ..per_mtok(3.0, 15.0)
        };
        for (cached, write, reasoning) in [(0, 0, 0), (500, 0, 0), (0, 1_000, 0), (200, 300, 400), (0, 0, 500)] {
            let u = TokenUsage {
                prompt_tokens: 1_000,
                completion_tokens: 500,
                cached_tokens: cached,
                cache_write_tokens: write,
                reasoning_tokens: reasoning,
            };
            assert!(cost(&price, &u).micros <= estimate_max(&price, 1_000, Some(500)), "{u:?}");
        }
    }
}
