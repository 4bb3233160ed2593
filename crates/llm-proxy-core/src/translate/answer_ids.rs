//! The ids a translated answer needs that its upstream did not give, chosen by the caller.
//!
//! Translators are pure functions of their inputs: the one random value of an answer comes in as an
//! `AnswerIds`, and every id they make up (`msg_…`, `chatcmpl-…`, `cmpl-…`, `gen-…`, `resp_…`,
//! output item and tool-call ids) is derived from it. The same input with the same `AnswerIds` gives byte-identical
//! output.

use uuid::Uuid;

/// One answer's source of made-up ids: one random value per answer (not one per id), from which
/// each id is derived. Make one per answer (`random` on the request path, `from_seed` in tests);
/// two answers sharing one would give their generated tool calls the same ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerIds(Uuid);

impl AnswerIds {
    /// Fresh ids for one answer.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Ids that depend on `seed` only, for tests and reproducible runs. Stable across builds (a
    /// fixed hash, not `std`'s), and shaped like `random`'s (a version 4 UUID).
    pub fn from_seed(seed: &str) -> Self {
        // FNV-1a over 128 bits, then a finaliser so that seeds differing in one byte differ in
        // every part of the result, prefixes included (the tags below are prefixes).
        const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
        const MIX: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
        let mut h = seed.bytes().fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
        for _ in 0..2 {
            h ^= h >> 67;
            h = h.wrapping_mul(MIX);
        }
        Self(uuid::Builder::from_random_bytes(h.to_be_bytes()).into_uuid())
    }

    /// `msg_…`: an Anthropic message id.
    pub(crate) fn message_id(&self) -> String {
        format!("msg_{}", self.0.simple())
    }

    /// `chatcmpl-…`: an OpenAI chat completion id.
    pub(crate) fn completion_id(&self) -> String {
        format!("chatcmpl-{}", self.0.simple())
    }

    /// `cmpl-…`: the id of a (legacy) text completion.
    pub(crate) fn text_completion_id(&self) -> String {
        format!("cmpl-{}", self.0.simple())
    }

    /// `gen-…`: the id of a Gemini answer that named none.
    pub(crate) fn response_id(&self) -> String {
        format!("gen-{}", self.0.simple())
    }

    /// `resp_…`: the id of a Responses API response, under which the gateway stores it.
    pub(crate) fn resp_id(&self) -> String {
        format!("resp_{}", self.0.simple())
    }

    /// The id of a Responses output item: `<prefix>_<hex>_<n>` (`msg`, `fc`, `rs`), `n` its place in
    /// the output.
    pub(crate) fn item_id(&self, prefix: &str, n: usize) -> String {
        format!("{prefix}_{}_{n}", self.0.simple())
    }

    /// The first `len` (at most 32) hex digits: the tag in generated tool-call ids
    /// (`call_<tag>_<n>`) that keeps them distinct from other answers' in one conversation.
    pub(crate) fn tag(&self, len: usize) -> String {
        let mut buf = Uuid::encode_buffer();
        let hex = self.0.simple().encode_lower(&mut buf);
        hex[..len.min(hex.len())].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_ids() {
        let (a, b) = (AnswerIds::from_seed("answer-1"), AnswerIds::from_seed("answer-1"));
        assert_eq!(a, b);
        assert_eq!(a.message_id(), b.message_id());
        // Pinned: the hash is part of what tests reproduce, so it must not change with the build.
        assert_eq!(a.tag(32), "82a4ea594e3c4fb0a81d62ce255644b3");
    }

    #[test]
    fn ids_keep_their_formats() {
        let ids = AnswerIds::random();
        for (id, prefix) in [
            (ids.message_id(), "msg_"),
            (ids.completion_id(), "chatcmpl-"),
            (ids.text_completion_id(), "cmpl-"),
            (ids.response_id(), "gen-"),
            (ids.resp_id(), "resp_"),
        ] {
            let hex = id.strip_prefix(prefix).unwrap();
            assert_eq!(hex.len(), 32, "{id}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        }
        assert_eq!(ids.item_id("fc", 3), format!("fc_{}_3", ids.tag(32)));
        assert_eq!(ids.tag(12).len(), 12);
        assert_eq!(ids.tag(99).len(), 32);
        assert!(ids.message_id().ends_with(&ids.tag(32)));
    }

    #[test]
    fn seeds_one_byte_apart_give_different_tags() {
        let tags: std::collections::HashSet<String> =
            (0..1000).map(|i| AnswerIds::from_seed(&format!("answer-{i}")).tag(12)).collect();
        assert_eq!(tags.len(), 1000);
        assert_ne!(AnswerIds::random().tag(16), AnswerIds::random().tag(16));
    }
}
