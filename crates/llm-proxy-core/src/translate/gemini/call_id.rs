//! Unified tool-call ids that carry what Gemini needs back in a later turn.
//!
//! A client keeps only a tool call's id, name and arguments, but two more things about a Gemini
//! function call must come back with it:
//! - the part's `thoughtSignature`: Gemini 3 rejects (400) a history whose function calls lost
//!   the signatures they were returned with;
//! - the call's own `id`, when Gemini gave one, which its `functionResponse` should echo.
//!
//! Both are folded into the unified id, using only characters every client protocol accepts in a
//! tool id (Anthropic requires `^[a-zA-Z0-9_-]+$`):
//!
//! ```text
//! gcid_<Gemini's id>  |  call_<tag>_<n>        the call; <tag> is per response, <n> counts calls
//! [__ts_<signature>]                           base64url without padding, if the part had one
//! ```
//!
//! Only a `gcid_` id is sent back to Gemini as an `id`: ids Gemini never issued (ours, or
//! `call_…` / `toolu_…` from other providers) mean nothing to it, and some Gemini endpoints reject
//! the field.

/// Marks the id of a call Gemini identified itself.
const GEMINI_ID_PREFIX: &str = "gcid_";
/// Separates the call from its thought signature.
const SIGNATURE_MARKER: &str = "__ts_";

/// A unified tool-call id for a Gemini function call.
pub(super) fn to_unified(
    gemini_id: Option<&str>,
    generated: impl FnOnce() -> String,
    signature: Option<&str>,
) -> String {
    let mut id = match gemini_id.filter(|id| !id.is_empty()) {
        Some(gid) => format!("{GEMINI_ID_PREFIX}{gid}"),
        None => generated(),
    };
    if let Some(sig) = signature.filter(|s| !s.is_empty()) {
        id.push_str(SIGNATURE_MARKER);
        id.extend(sig.chars().filter(|c| *c != '=').map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        }));
    }
    id
}

/// What a unified tool-call id says about its Gemini function call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GeminiCall {
    /// Gemini's own id, to echo in `functionCall.id` / `functionResponse.id`.
    pub id: Option<String>,
    /// The `thoughtSignature`, standard base64 with padding as Gemini sent it.
    pub signature: Option<String>,
}

/// The id without the thought signature, for protocols that limit tool-call ids (OpenAI takes at
/// most 40 characters) once a conversation leaves Gemini. Deterministic, so a call and its result
/// still match.
pub fn without_signature(id: &str) -> &str {
    id.split_once(SIGNATURE_MARKER).map_or(id, |(call, _)| call)
}

pub(super) fn from_unified(id: &str) -> GeminiCall {
    // The first marker ends the call part: base64url may itself contain `__ts_`, Gemini's ids do not.
    let (call, signature) = match id.split_once(SIGNATURE_MARKER) {
        Some((call, sig)) if !sig.is_empty() => (call, Some(standard_base64(sig))),
        _ => (id, None),
    };
    let id = call.strip_prefix(GEMINI_ID_PREFIX).filter(|gid| !gid.is_empty()).map(str::to_string);
    GeminiCall { id, signature }
}

fn standard_base64(url_safe: &str) -> String {
    let mut s: String = url_safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let padding = (4 - s.len() % 4) % 4;
    s.extend(std::iter::repeat_n('=', padding));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_id_without_signature_is_plain() {
        let id = to_unified(None, || "call_abc_0".into(), None);
        assert_eq!(id, "call_abc_0");
        assert_eq!(from_unified(&id), GeminiCall::default());
    }

    #[test]
    fn gemini_id_and_signature_round_trip() {
        let id = to_unified(Some("fc-1"), || unreachable!(), Some("CiIB+Vq/hc7l5m=="));
        assert_eq!(id, "gcid_fc-1__ts_CiIB-Vq_hc7l5m");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        assert_eq!(
            from_unified(&id),
            GeminiCall { id: Some("fc-1".into()), signature: Some("CiIB+Vq/hc7l5m==".into()) }
        );
    }

    #[test]
    fn signatures_can_be_dropped_for_other_protocols() {
        assert_eq!(without_signature("call_abc_0__ts_CiIB-Vq_hc7l5m"), "call_abc_0");
        assert_eq!(without_signature("call_abc_0"), "call_abc_0");
    }

    #[test]
    fn foreign_ids_carry_nothing() {
        assert_eq!(from_unified("call_9fK2"), GeminiCall::default());
        assert_eq!(from_unified("toolu_01A09q90qw90lq917835lq9"), GeminiCall::default());
        assert_eq!(from_unified("gcid_"), GeminiCall::default());
        assert_eq!(from_unified("call_1__ts_"), GeminiCall::default());
    }

    proptest! {
        #[test]
        fn any_base64_signature_survives(bytes in proptest::collection::vec(any::<u8>(), 1..300), gid in proptest::option::of("[a-zA-Z0-9-]{1,20}")) {
            use base64::Engine as _;
            let sig = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let id = to_unified(gid.as_deref(), || "call_t_3".into(), Some(&sig));
            prop_assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            let back = from_unified(&id);
            prop_assert_eq!(back.signature, Some(sig));
            prop_assert_eq!(back.id, gid);
        }
    }
}
