//! Reading a same-protocol stream in passing: Anthropic events are forwarded as received, and the
//! gateway only needs to know which carry content, the usage, the end, and an in-band error.

use llm_proxy_protocol::anthropic::{ErrorBody, Usage};
use serde::Deserialize;

use super::usage_from_wire;
use crate::provider::{ChunkKind, TokenUsage};
use crate::translate::leading_type;

/// What one forwarded event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughScan {
    pub kind: ChunkKind,
    /// Usage so far, set on the events that report it (`message_start`, `message_delta`): the
    /// input counts of `message_start` merged with the cumulative output counts.
    pub usage: Option<TokenUsage>,
    /// `message_stop`: the answer is complete.
    pub finished: bool,
    /// An `error` event's message.
    pub error: Option<String>,
}

/// Scans the events of one stream in order. `content_block_delta` events, nearly all of a stream,
/// are classified by name without being parsed.
#[derive(Debug, Default)]
pub struct PassthroughScanner {
    /// Counts so far in Anthropic's terms; `message_delta` updates the output.
    counts: Usage,
    seen_usage: bool,
}

impl PassthroughScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Usage so far, for a stream that ends early.
    pub fn usage(&self) -> Option<TokenUsage> {
        self.seen_usage.then(|| usage_from_wire(&self.counts))
    }

    /// `event` is the SSE event name; without one, the `type` is read off the front of `data`.
    pub fn scan(&mut self, event: Option<&str>, data: &str) -> PassthroughScan {
        let mut scan = PassthroughScan { kind: ChunkKind::Meta, usage: None, finished: false, error: None };
        match event.or_else(|| leading_type(data)).unwrap_or_default() {
            "content_block_delta" => scan.kind = ChunkKind::Content,
            "message_start" => {
                #[derive(Deserialize)]
                struct Start {
                    message: UsageOf,
                }
                if let Ok(Start { message: UsageOf { usage: Some(usage) } }) = serde_json::from_str::<Start>(data) {
                    self.counts = usage;
                    self.seen_usage = true;
                    scan.usage = self.usage();
                }
            }
            "message_delta" => {
                if let Ok(UsageOf { usage: Some(usage) }) = serde_json::from_str::<UsageOf>(data) {
                    // Cumulative output; input counts only when restated (after server tools).
                    if usage.input_tokens.is_some() {
                        self.counts.input_tokens = usage.input_tokens;
                        self.counts.cache_creation_input_tokens =
                            usage.cache_creation_input_tokens.or(self.counts.cache_creation_input_tokens);
                        self.counts.cache_read_input_tokens =
                            usage.cache_read_input_tokens.or(self.counts.cache_read_input_tokens);
                    }
                    self.counts.output_tokens = usage.output_tokens;
                    self.seen_usage = true;
                    scan.usage = self.usage();
                }
            }
            "message_stop" => scan.finished = true,
            "error" => {
                scan.error = Some(match serde_json::from_str::<ErrorBody>(data) {
                    Ok(body) => body.error.message,
                    Err(_) => "the upstream sent an unreadable error event".to_string(),
                });
            }
            _ => {}
        }
        scan
    }
}

#[derive(Deserialize)]
struct UsageOf {
    #[serde(default)]
    usage: Option<Usage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_cumulative_across_start_and_delta() {
        let mut s = PassthroughScanner::new();
        let start = s.scan(
            Some("message_start"),
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_read_input_tokens":28,"output_tokens":2}}}"#,
        );
        assert_eq!(start.kind, ChunkKind::Meta);
        assert_eq!(
            start.usage,
            Some(TokenUsage { prompt_tokens: 500, completion_tokens: 2, cached_tokens: 28, ..TokenUsage::default() })
        );
        let delta = s.scan(
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        );
        assert_eq!(
            delta.usage,
            Some(TokenUsage { prompt_tokens: 500, completion_tokens: 89, cached_tokens: 28, ..TokenUsage::default() })
        );
        assert_eq!(s.usage(), delta.usage);
        let stop = s.scan(Some("message_stop"), r#"{"type":"message_stop"}"#);
        assert!(stop.finished && stop.usage.is_none());
    }

    #[test]
    fn deltas_are_content_and_are_not_parsed() {
        let mut s = PassthroughScanner::new();
        // Not JSON at all: a parse would notice; the scanner must not try.
        let scan = s.scan(Some("content_block_delta"), "{ this is not parsed");
        assert_eq!(scan, PassthroughScan { kind: ChunkKind::Content, usage: None, finished: false, error: None });
        for meta in ["content_block_start", "content_block_stop", "ping", "something_new"] {
            assert_eq!(s.scan(Some(meta), "{}").kind, ChunkKind::Meta);
        }
        assert_eq!(s.usage(), None);
    }

    #[test]
    fn unnamed_events_are_classified_by_their_leading_type() {
        let mut s = PassthroughScanner::new();
        let delta = r#"{"type": "content_block_delta","index": 0,"delta": {"type": "text_delta", "text": "ello"}}"#;
        assert_eq!(s.scan(None, delta).kind, ChunkKind::Content);
        assert!(s.scan(None, r#"{ "type" : "message_stop" }"#).finished);
        assert_eq!(s.scan(None, "no type here").kind, ChunkKind::Meta);
    }

    #[test]
    fn error_events_carry_their_message() {
        let mut s = PassthroughScanner::new();
        let scan = s.scan(
            Some("error"),
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        );
        assert_eq!(scan.error.as_deref(), Some("Overloaded"));
        assert!(s.scan(Some("error"), "oops").error.is_some());
    }

    #[test]
    fn a_delta_restating_input_replaces_it() {
        let mut s = PassthroughScanner::new();
        s.scan(Some("message_start"), r#"{"message":{"usage":{"input_tokens":2679,"output_tokens":3}}}"#);
        let scan = s.scan(
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{},"usage":{"input_tokens":10682,"cache_read_input_tokens":0,"output_tokens":510}}"#,
        );
        assert_eq!(scan.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((10682, 510)));
    }
}
