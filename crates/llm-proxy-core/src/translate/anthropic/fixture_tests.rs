//! The examples of Anthropic's API reference (in `fixtures/anthropic/`), through every direction.

use llm_proxy_protocol::anthropic::MessagesRequest;
use llm_proxy_protocol::sse::{SseDecoder, SseEvent};
use serde_json::Value;

use super::*;
use crate::provider::{ChatChunk, ChunkKind, TokenUsage};
use crate::translate::{AnswerIds, StreamDecoder, StreamEncoder};
use crate::unified::{ChatRequest, StreamEvent};

const REQUEST_TOOLS_IMAGES: &str = include_str!("../../../fixtures/anthropic/request_tools_images.json");
const REQUEST_THINKING: &str = include_str!("../../../fixtures/anthropic/request_thinking.json");
const RESPONSE_TOOL_USE: &str = include_str!("../../../fixtures/anthropic/response_tool_use.json");
const STREAM_TOOL_USE: &str = include_str!("../../../fixtures/anthropic/stream_tool_use.sse");
const STREAM_THINKING: &str = include_str!("../../../fixtures/anthropic/stream_thinking.sse");

fn sse(text: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    SseDecoder::new().feed(text.as_bytes(), &mut events).unwrap();
    events
}

fn decode(text: &str) -> Vec<StreamEvent> {
    let mut decoder = EventDecoder::new();
    let mut out = Vec::new();
    for e in sse(text) {
        decoder.decode(e.event.as_deref(), &e.data, &mut out).unwrap();
    }
    assert!(decoder.is_finished(), "the stream ends with message_stop");
    out
}

/// The SSE text an Anthropic client receives for these events.
fn encode(model: &str, events: Vec<StreamEvent>) -> String {
    let mut encoder = EventEncoder::new(model, AnswerIds::from_seed("fixture"));
    let mut chunks: Vec<ChatChunk> = Vec::new();
    for e in events {
        encoder.encode(e, &mut chunks);
    }
    encoder.finish(&mut chunks);
    chunks.iter().map(|c| format!("event: {}\ndata: {}\n\n", c.event.as_deref().unwrap(), c.data)).collect()
}

fn round_trip(fixture: &str) -> (ChatRequest, Value) {
    let original: Value = serde_json::from_str(fixture).unwrap();
    let request: MessagesRequest = serde_json::from_value(original.clone()).unwrap();
    let unified = request_to_unified(request).unwrap();
    assert_eq!(
        serde_json::to_value(request_from_unified(&unified).unwrap()).unwrap(),
        original,
        "Anthropic → unified → Anthropic changes nothing"
    );
    (unified, original)
}

#[test]
fn request_with_system_tools_images_and_tool_results() {
    let (unified, _) = round_trip(REQUEST_TOOLS_IMAGES);
    insta::assert_debug_snapshot!("request_tools_images_unified", unified);
}

#[test]
fn request_with_thinking_history() {
    let (unified, original) = round_trip(REQUEST_THINKING);
    insta::assert_debug_snapshot!("request_thinking_unified", unified);
    // Counting tokens sends the prompt without generation settings.
    let mut expected = original;
    let fields = expected.as_object_mut().unwrap();
    fields.remove("max_tokens");
    fields.remove("stream");
    assert_eq!(serde_json::to_value(count_tokens_body(&unified).unwrap()).unwrap(), expected);
}

#[test]
fn response_with_tool_use() {
    let unified = response_to_unified(RESPONSE_TOOL_USE.as_bytes()).unwrap();
    insta::assert_debug_snapshot!("response_tool_use_unified", unified);
    assert_eq!(usage_of_message(RESPONSE_TOOL_USE.as_bytes()).unwrap(), unified.usage);
    // Encoded for an Anthropic client, it is the original message again.
    let original: Value = serde_json::from_str(RESPONSE_TOOL_USE).unwrap();
    assert_eq!(response_from_unified(&unified, AnswerIds::from_seed("fixture")), original);
}

#[test]
fn streamed_text_and_tool_use() {
    let events = decode(STREAM_TOOL_USE);
    insta::assert_debug_snapshot!("stream_tool_use_decoded", events);
    let arguments: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallArgs { index: 0, fragment } => Some(fragment.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(arguments, r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#);
    insta::assert_snapshot!("stream_tool_use_reencoded", encode("claude-opus-4-1-20250805", events));
}

#[test]
fn streamed_thinking() {
    let events = decode(STREAM_THINKING);
    insta::assert_debug_snapshot!("stream_thinking_decoded", events);
    insta::assert_snapshot!("stream_thinking_reencoded", encode("claude-opus-4-1-20250805", events));
}

#[test]
fn passthrough_scan_of_a_streamed_tool_use() {
    let mut scanner = PassthroughScanner::new();
    let scans: Vec<PassthroughScan> =
        sse(STREAM_TOOL_USE).iter().map(|e| scanner.scan(e.event.as_deref(), &e.data)).collect();
    let content = scans.iter().filter(|s| s.kind == ChunkKind::Content).count();
    assert_eq!(content, 22, "every content_block_delta, nothing else");
    let usages: Vec<TokenUsage> = scans.iter().filter_map(|s| s.usage).collect();
    assert_eq!(usages.len(), 2);
    assert_eq!(
        usages[1],
        TokenUsage { prompt_tokens: 472, completion_tokens: 89, ..TokenUsage::default() },
        "message_start's input with message_delta's output"
    );
    assert!(scans.last().unwrap().finished);
    assert!(scans.iter().all(|s| s.error.is_none()));
    // The translated stream reports the same usage.
    let last_usage = decode(STREAM_TOOL_USE).into_iter().rev().find_map(|e| match e {
        StreamEvent::Usage(u) => Some(u),
        _ => None,
    });
    assert_eq!(last_usage, Some(usages[1]));
}
