//! The examples of OpenAI's Completions API reference (in `fixtures/completions/`: the examples of
//! `POST /completions` in openai/openai-openapi, their model named), through every direction, and
//! an Anthropic upstream's stream read by a Completions client.
//!
//! The reference's streamed example is one chunk (written there without a comma after `model`;
//! `stream_chunk.json` has it). An answer here has every field an example shows, with its value,
//! ids aside (this answer's own, with the same `cmpl-` prefix), except `system_fingerprint`: the
//! configuration of OpenAI's backend, which a chat model of another provider does not have.

use llm_proxy_protocol::json::decode;
use llm_proxy_protocol::sse::SseDecoder;
use serde_json::{Map, Value};

use super::*;
use crate::provider::{ChunkKind, TokenUsage};
use crate::translate::{AnswerIds, StreamDecoder, StreamEncoder, anthropic};
use crate::unified::{ChatResponse, Message, Part, Role, StopReason};

const REQUEST: &str = include_str!("../../../fixtures/completions/request.json");
const RESPONSE: &str = include_str!("../../../fixtures/completions/response.json");
const STREAM_CHUNK: &str = include_str!("../../../fixtures/completions/stream_chunk.json");
const ANTHROPIC_STREAM: &str = include_str!("../../../fixtures/anthropic/stream_thinking.sse");

fn object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).expect("a JSON object")
}

/// Asserts that `ours` has every documented field but `system_fingerprint`, with the documented
/// value (an id by its prefix); `newer` are the fields it may have besides, at any depth.
fn assert_documented(ours: &Value, documented: &Value, newer: &[&str]) {
    match (ours, documented) {
        (Value::Object(o), Value::Object(d)) => {
            for (key, want) in d.iter().filter(|(k, _)| *k != "system_fingerprint") {
                let got = o.get(key).unwrap_or_else(|| panic!("`{key}` is missing from {ours}"));
                if key == "id" {
                    assert!(got.as_str().is_some_and(|id| id.starts_with("cmpl-")), "{got}");
                } else {
                    assert_documented(got, want, newer);
                }
            }
            for key in o.keys().filter(|k| !d.contains_key(*k)) {
                assert!(newer.contains(&key.as_str()), "`{key}` is not in the reference");
            }
        }
        (Value::Array(o), Value::Array(d)) => {
            assert_eq!(o.len(), d.len(), "{ours} vs {documented}");
            o.iter().zip(d).for_each(|(o, d)| assert_documented(o, d, newer));
        }
        _ => assert_eq!(ours, documented),
    }
}

#[test]
fn the_documented_request_is_one_user_message() {
    let r = request_to_unified(decode(REQUEST.as_bytes()).expect("the reference's request decodes")).unwrap();
    assert_eq!(r.model, "gpt-3.5-turbo-instruct");
    assert_eq!(
        r.messages,
        [Message {
            role: Role::User,
            content: vec![Part::Text { text: "Say this is a test".into(), cache_control: None }]
        }]
    );
    assert!(r.system.is_empty() && r.tools.is_empty());
    assert_eq!((r.max_tokens, r.temperature, r.stream), (Some(7), Some(0.0), false));
}

#[test]
fn the_documented_response_comes_from_a_chat_answer() {
    let documented: Value = serde_json::from_str(RESPONSE).unwrap();
    let answer = ChatResponse {
        id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
        model: "claude-sonnet-4-5".into(),
        content: vec![Part::Text { text: "\n\nThis is indeed a test".into(), cache_control: None }],
        stop_reason: Some(StopReason::MaxTokens),
        usage: Some(TokenUsage { prompt_tokens: 5, completion_tokens: 7, ..Default::default() }),
    };
    let ours = response_from_unified(&answer, "gpt-3.5-turbo-instruct", 1_589_478_378, AnswerIds::from_seed("a"));
    // The usage details every OpenAI usage object has grown since the example was written.
    assert_documented(&ours, &documented, &["prompt_tokens_details", "completion_tokens_details"]);
}

#[test]
fn a_chat_models_stream_reads_as_the_documented_chunks() {
    let mut events = Vec::new();
    let mut sse = SseDecoder::new();
    sse.feed(ANTHROPIC_STREAM.as_bytes(), &mut events).expect("an event stream");
    sse.finish(&mut events);
    let mut decoder = anthropic::EventDecoder::new();
    let mut encoder = CompletionEncoder::new("gpt-3.5-turbo-instruct", 1_690_759_702, true, AnswerIds::from_seed("a"));
    let mut chunks = Vec::new();
    for event in events {
        let mut unified = Vec::new();
        decoder.decode(event.event.as_deref(), &event.data, &mut unified).expect("decodes");
        unified.into_iter().for_each(|e| encoder.encode(e, &mut chunks));
    }
    assert!(decoder.is_finished());
    encoder.finish(&mut chunks);

    let data: Vec<Value> = chunks.iter().map(|c| serde_json::from_str(&c.data).expect("JSON")).collect();
    let mut first_documented = object(STREAM_CHUNK);
    first_documented.insert(
        "choices".into(),
        serde_json::json!([{"text": "27 * 453 = 12,231", "index": 0,
        "logprobs": null, "finish_reason": null}]),
    );
    assert_documented(&data[0], &Value::Object(first_documented), &[]);
    assert_eq!(data.len(), 2, "the thinking is not the completion's text, and the stream reported no usage: {data:?}");
    assert_eq!(chunks[0].kind, ChunkKind::Content);
    assert_eq!(
        (data[1]["choices"][0]["text"].as_str(), data[1]["choices"][0]["finish_reason"].as_str()),
        (Some(""), Some("stop"))
    );
}
