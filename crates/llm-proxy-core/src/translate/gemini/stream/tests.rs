use super::*;
use crate::provider::TokenUsage;
use crate::translate::gemini::tests::json_object;
use llm_proxy_protocol::sse::{SseDecoder, SseEvent};
use proptest::prelude::*;
use serde_json::{Value, json};

fn decode_all(sse: &[u8], model: &str) -> (Vec<StreamEvent>, bool) {
    let mut events = Vec::new();
    let mut sse_decoder = SseDecoder::new();
    sse_decoder.feed(sse, &mut events).unwrap();
    sse_decoder.finish(&mut events);
    let mut decoder = StreamChunkDecoder::new(model, AnswerIds::from_seed("stream"));
    let mut out = Vec::new();
    for SseEvent { event, data } in &events {
        decoder.decode(event.as_deref(), data, &mut out).unwrap();
    }
    (out, decoder.is_finished())
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn streamed_answer_with_thoughts_and_usage() {
    let (events, finished) = decode_all(&fixture("stream_thinking.sse"), "gemini-2.5-flash");
    assert!(finished);
    insta::assert_debug_snapshot!(events);
}

#[test]
fn streamed_parallel_function_calls() {
    let (events, finished) = decode_all(&fixture("stream_function_call.sse"), "gemini-3-pro-preview");
    assert!(finished);
    insta::assert_debug_snapshot!(events);
}

#[test]
fn a_stream_without_finish_reason_is_not_finished() {
    let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed("stream"));
    let mut out = Vec::new();
    d.decode(None, r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}"#, &mut out).unwrap();
    d.decode(None, "", &mut out).unwrap();
    assert!(!d.is_finished());
    let id = AnswerIds::from_seed("stream").response_id();
    assert_eq!(out[0], StreamEvent::Start { id, model: "m".into() });
    assert_eq!(out[1..], [StreamEvent::Text("Hel".into())]);
}

#[test]
fn in_band_errors_are_reported() {
    let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed("stream"));
    let mut out = Vec::new();
    let err = d
        .decode(None, r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#, &mut out)
        .unwrap_err();
    assert!(matches!(&err, ProviderError::Reported(m) if m == "The model is overloaded."), "{err:?}");
    let err = d.decode(None, r#"{"error":{"status":"INTERNAL"}}"#, &mut out).unwrap_err();
    assert!(matches!(&err, ProviderError::Reported(m) if m == "INTERNAL"), "{err:?}");
    assert!(out.is_empty());
}

#[test]
fn garbage_is_a_protocol_error() {
    let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed("stream"));
    let mut out = Vec::new();
    for data in ["[DONE]", "{not json", r#"{"candidates": 3}"#] {
        assert!(matches!(d.decode(None, data, &mut out), Err(ProviderError::Protocol(_))), "{data}");
    }
}

#[test]
fn blocked_prompt_stops_with_content_filter() {
    let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed("stream"));
    let mut out = Vec::new();
    let data = r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},"responseId":"r1"}"#;
    d.decode(None, data, &mut out).unwrap();
    assert!(d.is_finished());
    assert_eq!(
        out,
        vec![
            StreamEvent::Start { id: "r1".into(), model: "m".into() },
            StreamEvent::Stop(StopReason::ContentFilter),
            StreamEvent::Usage(TokenUsage { prompt_tokens: 9, ..TokenUsage::default() }),
        ]
    );
}

#[test]
fn only_one_stop_and_calls_count_across_chunks() {
    let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed("stream"));
    let mut out = Vec::new();
    let chunks = [
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"a","args":{"q":1}}}]}}],"responseId":"R"}"#,
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"id":"x","name":"b"}}]},"finishReason":"STOP"}]}"#,
        r#"{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7}}"#,
    ];
    for c in chunks {
        d.decode(None, c, &mut out).unwrap();
    }
    assert_eq!(
        out,
        vec![
            StreamEvent::Start { id: "R".into(), model: "m".into() },
            StreamEvent::ToolCallStart { index: 0, id: "call_R_0".into(), name: "a".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: r#"{"q":1}"#.into() },
            StreamEvent::ToolCallStart { index: 1, id: "gcid_x".into(), name: "b".into() },
            StreamEvent::ToolCallArgs { index: 1, fragment: "{}".into() },
            StreamEvent::Stop(StopReason::ToolUse),
            StreamEvent::Usage(TokenUsage { prompt_tokens: 3, completion_tokens: 4, ..TokenUsage::default() }),
        ]
    );
}

#[test]
fn finish_reasons_in_streams() {
    let stop_of = |reason: &str| {
        let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed("stream"));
        let mut out = Vec::new();
        let data = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}).to_string();
        d.decode(None, &data, &mut out).unwrap();
        assert!(d.is_finished());
        out.into_iter().find_map(|e| match e {
            StreamEvent::Stop(s) => Some(s),
            _ => None,
        })
    };
    assert_eq!(stop_of("STOP"), Some(StopReason::EndTurn));
    assert_eq!(stop_of("MAX_TOKENS"), Some(StopReason::MaxTokens));
    assert_eq!(stop_of("RECITATION"), Some(StopReason::ContentFilter));
    assert_eq!(stop_of("MALFORMED_FUNCTION_CALL"), Some(StopReason::EndTurn));
}

#[test]
fn made_up_ids_come_from_the_answer_ids() {
    // Neither a response id nor call ids: all three are made up from the answer's ids.
    let chunks = [
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"a"}},{"functionCall":{"name":"b"}}]}}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"c"}}]},"finishReason":"STOP"}]}"#,
    ];
    let decode = |seed: &str| {
        let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed(seed));
        let mut out = Vec::new();
        for c in chunks {
            d.decode(None, c, &mut out).unwrap();
        }
        out
    };
    let one = decode("answer-1");
    assert_eq!(one, decode("answer-1"), "same input, same seed: same events");
    let ids = AnswerIds::from_seed("answer-1");
    assert_eq!(one[0], StreamEvent::Start { id: ids.response_id(), model: "m".into() });
    let tag = ids.tag(16);
    assert_eq!(
        crate::translate::tool_call_ids(&one),
        [format!("call_{tag}_0"), format!("call_{tag}_1"), format!("call_{tag}_2")]
    );
    let other = crate::translate::tool_call_ids(&decode("answer-2"));
    assert!(
        crate::translate::tool_call_ids(&one).iter().all(|id| !other.contains(id)),
        "another answer's calls get other ids: {other:?}"
    );
}

proptest! {
    /// However Gemini's args look, the fragments a client concatenates parse to the same JSON.
    #[test]
    fn tool_call_fragments_rebuild_the_arguments(args in json_object(), pretty in any::<bool>()) {
        let args_text = if pretty { serde_json::to_string_pretty(&args) } else { serde_json::to_string(&args) }.unwrap();
        let data = format!(
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"functionCall":{{"name":"f","args":{args_text}}}}}]}},"finishReason":"STOP"}}]}}"#
        );
        let mut d = StreamChunkDecoder::new("m", AnswerIds::from_seed("stream"));
        let mut out = Vec::new();
        d.decode(None, &data, &mut out).unwrap();
        let joined: String = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallArgs { index: 0, fragment } => Some(fragment.as_str()),
                _ => None,
            })
            .collect();
        let rebuilt: Value = serde_json::from_str(&joined).unwrap();
        prop_assert_eq!(rebuilt, args);
    }
}
