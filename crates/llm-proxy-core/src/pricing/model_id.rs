//! How the names clients and providers use map onto the table's keys.

use crate::known_provider::known_provider;

/// Our name for a provider: lower case, aliases resolved (`xai` → `grok`, `google` → `gemini`),
/// including the vendor prefixes OpenRouter and Together put in front of model ids.
pub(crate) fn canonical_provider(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let extra = match lower.as_str() {
        "together_ai" | "togetherai" | "together-ai" => Some("together"),
        "zai" | "z-ai" | "z.ai" | "zai-org" => Some("glm"),
        "x-ai" => Some("grok"),
        "mistralai" => Some("mistral"),
        "deepseek-ai" => Some("deepseek"),
        _ => None,
    };
    if let Some(name) = extra {
        return name.to_owned();
    }
    match known_provider(&lower) {
        Some(known) => known.name.to_owned(),
        None => lower,
    }
}

/// Where `canonical_provider` sends a fallback across providers first: the vendor's own price
/// before a reseller's. Providers not listed (custom ones from overrides) come after, by name.
pub(crate) fn provider_rank(provider: &str) -> usize {
    const ORDER: &[&str] =
        &["openai", "anthropic", "gemini", "deepseek", "mistral", "grok", "glm", "groq", "together", "openrouter"];
    ORDER.iter().position(|p| *p == provider).unwrap_or(ORDER.len())
}

/// The ids to try for `model`, most specific first, all lower case: the id itself, then without a
/// `models/` prefix (Gemini), an `@version` (Vertex), snapshot suffixes (`-2024-08-06`,
/// `-20250929`, `-latest`, repeatedly), the base of a fine-tune (`ft:gpt-4o-mini:org::id` →
/// `ft:gpt-4o-mini`), and last `<id>-latest` for a bare family name whose only entry is its alias.
///
/// The suffixes must stay in step with `VERSION_SUFFIX` in `scripts/pricing/regenerate.py`, which
/// drops snapshot entries that this finds through their base.
pub(crate) fn candidates(model: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(4);
    let mut push = |id: &str| {
        if !id.is_empty() && !out.iter().any(|c| c == id) {
            out.push(id.to_owned());
        }
    };
    let lower = model.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return out;
    }
    let mut id = lower.as_str();
    push(id);
    if let Some(rest) = id.strip_prefix("models/") {
        id = rest;
        push(id);
    }
    if let Some((base, _version)) = id.split_once('@') {
        id = base;
        push(id);
    }
    if let Some(rest) = id.strip_prefix("ft:") {
        // `ft:BASE:ORG:NAME:ID`: the fine-tune's price is that of `ft:BASE`.
        let base = rest.split(':').next().unwrap_or(rest);
        id = &id[..3 + base.len()];
        push(id);
    }
    let unversioned = id;
    while let Some(base) = strip_version_suffix(id) {
        id = base;
        push(id);
    }
    if id == unversioned {
        push(&format!("{id}-latest"));
    }
    out
}

/// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`,
/// `claude-3-5-haiku-latest` → `claude-3-5-haiku`; `None` when there is no such suffix.
pub(crate) fn strip_version_suffix(id: &str) -> Option<&str> {
    if let Some(base) = id.strip_suffix("-latest") {
        return (!base.is_empty()).then_some(base);
    }
    let bytes = id.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let n = bytes.len();
    // -YYYY-MM-DD
    let dashes = n > 11 && bytes[n - 11] == b'-' && bytes[n - 6] == b'-' && bytes[n - 3] == b'-';
    if dashes && digits(n - 10..n - 6) && digits(n - 5..n - 3) && digits(n - 2..n) {
        return Some(&id[..n - 11]);
    }
    // -YYYYMMDD
    if n > 9 && bytes[n - 9] == b'-' && digits(n - 8..n) {
        return Some(&id[..n - 9]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_aliases_map_to_our_names() {
        assert_eq!(canonical_provider("OpenAI"), "openai");
        assert_eq!(canonical_provider("xai"), "grok");
        assert_eq!(canonical_provider("x-ai"), "grok");
        assert_eq!(canonical_provider("google"), "gemini");
        assert_eq!(canonical_provider("zhipuai"), "glm");
        assert_eq!(canonical_provider("together_ai"), "together");
        assert_eq!(canonical_provider("my-local-vllm"), "my-local-vllm");
    }

    #[test]
    fn snapshot_suffixes_are_stripped() {
        assert_eq!(strip_version_suffix("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(strip_version_suffix("claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
        assert_eq!(strip_version_suffix("claude-3-5-haiku-latest"), Some("claude-3-5-haiku"));
        assert_eq!(strip_version_suffix("gpt-4o"), None);
        assert_eq!(strip_version_suffix("gpt-4-0613"), None, "4-digit snapshots are not guessed at");
        assert_eq!(strip_version_suffix("-latest"), None);
        assert_eq!(strip_version_suffix("20250929"), None);
    }

    #[test]
    fn candidates_go_from_specific_to_general() {
        assert_eq!(
            candidates("models/gemini-2.5-flash"),
            ["models/gemini-2.5-flash", "gemini-2.5-flash", "gemini-2.5-flash-latest"]
        );
        assert_eq!(
            candidates("claude-3-5-sonnet@20240620"),
            ["claude-3-5-sonnet@20240620", "claude-3-5-sonnet", "claude-3-5-sonnet-latest"]
        );
        assert_eq!(candidates("GPT-4o-2024-08-06"), ["gpt-4o-2024-08-06", "gpt-4o"]);
        assert_eq!(
            candidates("ft:gpt-4o-mini-2024-07-18:acme::abc123"),
            ["ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini"]
        );
    }
}
