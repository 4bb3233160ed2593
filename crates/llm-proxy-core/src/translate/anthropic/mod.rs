//! The Anthropic Messages API ⇄ the unified model.
//!
//! Client side (a client spoke Anthropic, the upstream speaks something else): its request becomes
//! unified (`request_to_unified`), and unified answers are encoded as a `message` object
//! (`response_from_unified`) or as SSE events (`EventEncoder`). Upstream side (the upstream speaks
//! Anthropic): a unified request becomes a `/v1/messages` or `count_tokens` body
//! (`request_from_unified`, `count_tokens_body`), whose answers come back as unified values
//! (`response_to_unified`, `EventDecoder`, `count_tokens_result`). Same protocol on both sides:
//! nothing is translated and `PassthroughScanner` only reads usage and the end off the stream.
//!
//! Usage: Anthropic's `input_tokens` excludes the cached input, unified `prompt_tokens` includes
//! it (see `crate::unified`), so `prompt = input + cache_read + cache_creation` on the way in and
//! `input = prompt - cached - cache_write` on the way out.

mod event_decoder;
mod event_encoder;
mod request_in;
mod request_out;
mod response;
mod scan;

#[cfg(test)]
mod fixture_tests;

pub use event_decoder::EventDecoder;
pub use event_encoder::EventEncoder;
pub use request_in::request_to_unified;
pub use request_out::{DEFAULT_MAX_TOKENS, Turns, count_tokens_body, request_from_unified};
pub use response::{response_from_unified, response_to_unified, usage_of_message};
pub use scan::{PassthroughScan, PassthroughScanner};

use llm_proxy_protocol::anthropic::{CountTokensResponse, ErrorBody, Usage};
use serde_json::Value;

use crate::provider::{ProviderError, TokenUsage};
use crate::unified::StopReason;

/// An Anthropic error body: `{"type":"error","error":{"type":..,"message":..}}`.
pub fn error_body(error_type: &str, message: &str) -> Value {
    serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}})
}

/// The `(message, type)` of an Anthropic error body, or `None` if `body` is not one.
pub fn error_message(body: &[u8]) -> Option<(String, String)> {
    let body: ErrorBody = serde_json::from_slice(body).ok()?;
    Some((body.error.message, body.error.kind))
}

/// The count of a `count_tokens` answer: `{"input_tokens": N}`.
pub fn count_tokens_result(body: &[u8]) -> Result<u64, ProviderError> {
    serde_json::from_slice::<CountTokensResponse>(body)
        .map(|r| r.input_tokens)
        .map_err(|e| ProviderError::Protocol(format!("not an Anthropic count_tokens answer: {e}")))
}

/// Anthropic's `stop_reason` for a stop reason.
fn stop_reason_to_wire(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::StopSequence(_) => "stop_sequence",
        StopReason::MaxTokens => "max_tokens",
        StopReason::ToolUse => "tool_use",
        StopReason::ContentFilter => "refusal",
        StopReason::PauseTurn => "pause_turn",
    }
}

/// The stop reason of Anthropic's `stop_reason` (and `stop_sequence`).
fn stop_reason_from_wire(reason: &str, stop_sequence: Option<String>) -> StopReason {
    match reason {
        "stop_sequence" => StopReason::StopSequence(stop_sequence),
        // `model_context_window_exceeded` (newer models) is a length limit like `max_tokens`.
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        "pause_turn" => StopReason::PauseTurn,
        // `end_turn`, and reasons added later: the answer is complete as far as we can tell.
        _ => StopReason::EndTurn,
    }
}

/// The `stop_reason` and `stop_sequence` to tell an Anthropic client. A turn that called tools is
/// `tool_use` even when the upstream called it a natural end (Gemini's `STOP`): Anthropic clients
/// run the tools only on `tool_use`. No reason at all is a natural end.
fn client_stop_reason(reason: Option<&StopReason>, has_tool_calls: bool) -> (&'static str, Option<String>) {
    match reason {
        Some(StopReason::StopSequence(sequence)) => ("stop_sequence", sequence.clone()),
        None | Some(StopReason::EndTurn) if has_tool_calls => ("tool_use", None),
        Some(r) => (stop_reason_to_wire(r), None),
        None => ("end_turn", None),
    }
}

/// Unified usage of Anthropic's counts (the cached input added back into the prompt).
fn usage_from_wire(u: &Usage) -> TokenUsage {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
    TokenUsage {
        prompt_tokens: u.input_tokens.unwrap_or(0) + cached + cache_write,
        completion_tokens: u.output_tokens,
        cached_tokens: cached,
        cache_write_tokens: cache_write,
        // Anthropic counts thinking as output without saying how much of it there was.
        reasoning_tokens: 0,
    }
}

/// Anthropic's counts of unified usage: the cached input taken out of `input_tokens` again.
fn usage_to_wire(u: &TokenUsage) -> Usage {
    Usage {
        input_tokens: Some(u.prompt_tokens.saturating_sub(u.cached_tokens + u.cache_write_tokens)),
        cache_creation_input_tokens: Some(u.cache_write_tokens),
        cache_read_input_tokens: Some(u.cached_tokens),
        output_tokens: u.completion_tokens,
    }
}

/// Cuts `s` at the char boundaries `cuts` pick (any order, repeats allowed): one fragmentation of a
/// tool call's arguments for the stream property tests.
#[cfg(test)]
fn fragments(s: &str, cuts: &[usize]) -> Vec<String> {
    let boundaries: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
    let mut at: Vec<usize> = cuts.iter().map(|c| boundaries[c % boundaries.len()]).collect();
    at.sort_unstable();
    let mut parts = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for to in at.into_iter().chain([s.len()]) {
        parts.push(s[from..to].to_string());
        from = to;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_cached_input_as_prompt_and_back() {
        let wire = Usage {
            input_tokens: Some(100),
            cache_creation_input_tokens: Some(20),
            cache_read_input_tokens: Some(3000),
            output_tokens: 7,
        };
        let unified = usage_from_wire(&wire);
        assert_eq!(
            unified,
            TokenUsage {
                prompt_tokens: 3120,
                completion_tokens: 7,
                cached_tokens: 3000,
                cache_write_tokens: 20,
                reasoning_tokens: 0
            }
        );
        assert_eq!(usage_to_wire(&unified), wire);
    }

    #[test]
    fn usage_without_cache_fields_is_plain_input() {
        let wire = Usage { input_tokens: Some(25), output_tokens: 15, ..Usage::default() };
        assert_eq!(usage_from_wire(&wire).prompt_tokens, 25);
        // A prompt smaller than its cached part (a buggy upstream) must not underflow.
        let odd = TokenUsage { prompt_tokens: 5, cached_tokens: 10, ..TokenUsage::default() };
        assert_eq!(usage_to_wire(&odd).input_tokens, Some(0));
    }

    #[test]
    fn stop_reasons_map_both_ways() {
        let cases = [
            ("end_turn", StopReason::EndTurn),
            ("max_tokens", StopReason::MaxTokens),
            ("tool_use", StopReason::ToolUse),
            ("refusal", StopReason::ContentFilter),
            ("pause_turn", StopReason::PauseTurn),
        ];
        for (wire, unified) in cases {
            assert_eq!(stop_reason_from_wire(wire, None), unified);
            assert_eq!(stop_reason_to_wire(&unified), wire);
        }
        assert_eq!(
            stop_reason_from_wire("stop_sequence", Some("###".into())),
            StopReason::StopSequence(Some("###".into()))
        );
        assert_eq!(stop_reason_to_wire(&StopReason::StopSequence(None)), "stop_sequence");
        assert_eq!(stop_reason_from_wire("model_context_window_exceeded", None), StopReason::MaxTokens);
        assert_eq!(stop_reason_from_wire("something_new", None), StopReason::EndTurn);
    }

    #[test]
    fn error_bodies_are_built_and_read() {
        let body = error_body("invalid_request_error", "messages: field required");
        assert_eq!(
            body,
            serde_json::json!({"type":"error","error":{"type":"invalid_request_error","message":"messages: field required"}})
        );
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(
            error_message(&bytes),
            Some(("messages: field required".to_string(), "invalid_request_error".to_string()))
        );
        // The reference's overloaded error, and a newer body with a request id beside it.
        let overloaded = br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}"#;
        assert_eq!(error_message(overloaded), Some(("Overloaded".into(), "overloaded_error".into())));
        assert_eq!(error_message(b"<html>502</html>"), None);
        assert_eq!(error_message(br#"{"error":{"message":"openai shape"}}"#), None);
    }

    #[test]
    fn count_tokens_answers_are_read() {
        assert_eq!(count_tokens_result(br#"{"input_tokens": 2095}"#).unwrap(), 2095);
        assert!(matches!(count_tokens_result(b"{}"), Err(ProviderError::Protocol(_))));
    }
}
