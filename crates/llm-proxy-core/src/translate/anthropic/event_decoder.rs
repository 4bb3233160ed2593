//! Anthropic SSE events → unified stream events, for a client of another protocol.

use llm_proxy_protocol::anthropic::{ContentBlock, ContentBlockDeltaData, Delta, StreamEvent as Wire, Usage};

use super::{stop_reason_from_wire, usage_from_wire};
use crate::provider::ProviderError;
use crate::translate::StreamDecoder;
use crate::unified::StreamEvent;

/// Decodes an Anthropic stream as it arrives. Tool calls are numbered among themselves (the
/// unified index), not by content block; blocks of server tools and unknown event types are
/// skipped.
#[derive(Debug, Default)]
pub struct EventDecoder {
    /// `(block index, tool-call index)` of each tool-use block seen.
    tool_blocks: Vec<(usize, usize)>,
    /// Usage as of `message_start`: the input counts, which `message_delta` usually omits.
    input: Usage,
    finished: bool,
}

impl EventDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn tool_of_block(&self, block: usize) -> Option<usize> {
        // Arguments stream for the latest block; look there first.
        self.tool_blocks.iter().rev().find(|(b, _)| *b == block).map(|(_, tool)| *tool)
    }
}

impl StreamDecoder for EventDecoder {
    fn decode(&mut self, event: Option<&str>, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let bad = |e: serde_json::Error| {
            ProviderError::Protocol(format!("not an Anthropic stream event ({}): {e}", event.unwrap_or("unnamed")))
        };
        let wire: Wire = if event == Some("content_block_delta") {
            // Nearly every event: read straight into its shape (the event name is its `type`).
            let d: ContentBlockDeltaData = serde_json::from_str(data).map_err(bad)?;
            Wire::ContentBlockDelta { index: d.index, delta: d.delta }
        } else {
            serde_json::from_str(data).map_err(bad)?
        };
        match wire {
            Wire::MessageStart { message } => {
                out.push(StreamEvent::Start { id: message.id, model: message.model });
                // Some streams report no usage here; zeros would read as a free request.
                if let Some(usage) = message.usage {
                    self.input = usage;
                    out.push(StreamEvent::Usage(usage_from_wire(&usage)));
                }
            }
            Wire::ContentBlockStart { index, content_block } => match content_block {
                ContentBlock::Text(t) if !t.text.is_empty() => out.push(StreamEvent::Text(t.text)),
                ContentBlock::ToolUse(t) => {
                    let tool = self.tool_blocks.len();
                    self.tool_blocks.push((index, tool));
                    out.push(StreamEvent::ToolCallStart { index: tool, id: t.id, name: t.name });
                    // Anthropic starts with `input: {}` and streams the rest; a server that sends
                    // the whole input up front has its arguments passed on.
                    if t.input.as_object().is_some_and(|o| !o.is_empty()) {
                        out.push(StreamEvent::ToolCallArgs { index: tool, fragment: t.input.to_string() });
                    }
                }
                ContentBlock::Thinking(t) => {
                    if !t.thinking.is_empty() {
                        out.push(StreamEvent::Thinking(t.thinking));
                    }
                    if let Some(signature) = t.signature.filter(|s| !s.is_empty()) {
                        out.push(StreamEvent::ThinkingSignature(signature));
                    }
                }
                ContentBlock::RedactedThinking(t) => out.push(StreamEvent::RedactedThinking(t.data)),
                _ => {}
            },
            Wire::ContentBlockDelta { index, delta } => match delta {
                Delta::TextDelta { text } if !text.is_empty() => out.push(StreamEvent::Text(text)),
                Delta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    // Deltas of a server tool's block belong to no tool call of ours.
                    if let Some(tool) = self.tool_of_block(index) {
                        out.push(StreamEvent::ToolCallArgs { index: tool, fragment: partial_json });
                    }
                }
                Delta::ThinkingDelta { thinking } if !thinking.is_empty() => out.push(StreamEvent::Thinking(thinking)),
                Delta::SignatureDelta { signature } => out.push(StreamEvent::ThinkingSignature(signature)),
                _ => {}
            },
            Wire::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    out.push(StreamEvent::Stop(stop_reason_from_wire(&reason, delta.stop_sequence)));
                }
                let Some(usage) = usage else { return Ok(()) };
                // Counts are cumulative. The input ones come from `message_start` unless this event
                // restates them (it does when server tools ran, with the final figures).
                if usage.input_tokens.is_some() {
                    self.input.input_tokens = usage.input_tokens;
                    self.input.cache_creation_input_tokens =
                        usage.cache_creation_input_tokens.or(self.input.cache_creation_input_tokens);
                    self.input.cache_read_input_tokens =
                        usage.cache_read_input_tokens.or(self.input.cache_read_input_tokens);
                }
                self.input.output_tokens = usage.output_tokens;
                out.push(StreamEvent::Usage(usage_from_wire(&self.input)));
            }
            Wire::MessageStop => self.finished = true,
            Wire::Error { error } => return Err(ProviderError::Reported(error.message)),
            Wire::ContentBlockStop { .. } | Wire::Ping | Wire::Unknown => {}
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TokenUsage;
    use crate::translate::anthropic::fragments;
    use crate::unified::StopReason;
    use proptest::prelude::*;
    use serde_json::json;

    fn decode(events: &[serde_json::Value]) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut decoder = EventDecoder::new();
        let mut out = Vec::new();
        for e in events {
            decoder.decode(e["type"].as_str(), &e.to_string(), &mut out)?;
        }
        Ok(out)
    }

    fn start(usage: serde_json::Value) -> serde_json::Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude", "stop_reason": null, "stop_sequence": null, "usage": usage}})
    }

    #[test]
    fn usage_is_merged_from_start_and_delta() {
        let out = decode(&[
            start(json!({"input_tokens": 100, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 50, "output_tokens": 1})),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
        ])
        .unwrap();
        let full = |output| TokenUsage {
            prompt_tokens: 1050,
            completion_tokens: output,
            cached_tokens: 900,
            cache_write_tokens: 50,
            reasoning_tokens: 0,
        };
        assert_eq!(
            out,
            vec![
                StreamEvent::Start { id: "msg_1".into(), model: "claude".into() },
                StreamEvent::Usage(full(1)),
                StreamEvent::Stop(StopReason::EndTurn),
                StreamEvent::Usage(full(15)),
            ]
        );
    }

    #[test]
    fn a_delta_restating_input_counts_wins() {
        let out = decode(&[
            start(json!({"input_tokens": 2679, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 3})),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"input_tokens": 10682, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 510, "server_tool_use": {"web_search_requests": 1}}}),
        ])
        .unwrap();
        assert_eq!(
            out.last(),
            Some(&StreamEvent::Usage(TokenUsage {
                prompt_tokens: 10682,
                completion_tokens: 510,
                ..TokenUsage::default()
            }))
        );
    }

    #[test]
    fn tool_calls_are_numbered_among_themselves() {
        let out = decode(&[
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"x\"}"}}),
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {"full": true}}}),
        ])
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::ToolCallStart { index: 0, id: "toolu_a".into(), name: "f".into() },
                StreamEvent::ToolCallArgs { index: 0, fragment: "{}".into() },
                StreamEvent::ToolCallStart { index: 1, id: "toolu_b".into(), name: "g".into() },
                StreamEvent::ToolCallArgs { index: 1, fragment: "{\"full\":true}".into() },
            ]
        );
    }

    #[test]
    fn thinking_redacted_and_text_starts() {
        let out = decode(&[
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "EmwK"}}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": "Hi"}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": {}}}),
        ])
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::Thinking("Hmm".into()),
                StreamEvent::ThinkingSignature("EqQB".into()),
                StreamEvent::RedactedThinking("EmwK".into()),
                StreamEvent::Text("Hi".into()),
            ]
        );
    }

    #[test]
    fn message_stop_finishes_and_pings_and_unknown_events_pass() {
        let mut decoder = EventDecoder::new();
        let mut out = Vec::new();
        decoder.decode(Some("ping"), r#"{"type": "ping"}"#, &mut out).unwrap();
        decoder.decode(Some("brand_new"), r#"{"type": "brand_new", "x": 1}"#, &mut out).unwrap();
        assert!(!decoder.is_finished());
        decoder.decode(Some("message_stop"), r#"{"type":"message_stop"}"#, &mut out).unwrap();
        assert!(decoder.is_finished());
        assert!(out.is_empty());
    }

    #[test]
    fn error_events_are_reported_and_garbage_is_a_protocol_error() {
        let err = decode(&[json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})])
            .unwrap_err();
        assert!(matches!(err, ProviderError::Reported(m) if m == "Overloaded"));
        let mut decoder = EventDecoder::new();
        let err = decoder.decode(Some("content_block_delta"), "{not json", &mut Vec::new()).unwrap_err();
        assert!(matches!(err, ProviderError::Protocol(m) if m.contains("content_block_delta")));
    }

    #[test]
    fn stop_reasons_with_their_sequence() {
        let out = decode(&[json!({"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"}, "usage": {"output_tokens": 3}})]).unwrap();
        assert_eq!(out[0], StreamEvent::Stop(StopReason::StopSequence(Some("END".into()))));
    }

    proptest! {
        #[test]
        fn argument_fragments_concatenate_to_the_arguments(
            arguments in any::<String>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut events = vec![
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
            ];
            for fragment in fragments(&arguments, &cuts) {
                events.push(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": fragment}}));
            }
            events.push(json!({"type": "content_block_stop", "index": 1}));
            let mut received = String::new();
            for e in decode(&events).unwrap() {
                match e {
                    StreamEvent::ToolCallArgs { index, fragment } => {
                        prop_assert_eq!(index, 0);
                        received.push_str(&fragment);
                    }
                    StreamEvent::ToolCallStart { .. } => {}
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(received, arguments);
        }
    }
}
