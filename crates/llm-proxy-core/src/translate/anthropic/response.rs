//! Complete (non-streamed) answers: an Anthropic `message` ⇄ `ChatResponse`.

use llm_proxy_protocol::anthropic::{
    ContentBlock, Message, RedactedThinkingBlock, TextBlock, ThinkingBlock, ToolUseBlock, Usage,
};
use serde::Deserialize;
use serde_json::Value;

use super::{client_stop_reason, stop_reason_from_wire, usage_from_wire, usage_to_wire};
use crate::provider::{ProviderError, TokenUsage};
use crate::translate::AnswerIds;
use crate::unified::{ChatResponse, Part};

/// An Anthropic upstream's `message` body as a unified answer.
pub fn response_to_unified(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let m: Message =
        serde_json::from_slice(body).map_err(|e| ProviderError::Protocol(format!("not an Anthropic message: {e}")))?;
    if m.kind != "message" {
        return Err(ProviderError::Protocol(format!("not an Anthropic message: `type` is `{}`", m.kind)));
    }
    let content = m
        .content
        .into_iter()
        .filter_map(|block| match block {
            ContentBlock::Text(t) => Some(Part::Text { text: t.text, cache_control: None }),
            ContentBlock::ToolUse(t) => Some(Part::ToolCall { id: t.id, name: t.name, arguments: t.input.to_string() }),
            ContentBlock::Thinking(t) => Some(Part::Thinking { text: t.thinking, signature: t.signature }),
            ContentBlock::RedactedThinking(t) => Some(Part::RedactedThinking { data: t.data }),
            // Server-tool blocks only come with server tools, which a translated request never
            // has; images and tool results are input, not answers.
            ContentBlock::Image(_) | ContentBlock::ToolResult(_) | ContentBlock::Other => None,
        })
        .collect();
    Ok(ChatResponse {
        id: m.id,
        model: m.model,
        content,
        stop_reason: m.stop_reason.map(|r| stop_reason_from_wire(&r, m.stop_sequence)),
        usage: m.usage.as_ref().map(usage_from_wire),
    })
}

/// A unified answer as the `message` object an Anthropic client expects. `ids` gives the id when
/// the upstream named none.
pub fn response_from_unified(r: &ChatResponse, ids: AnswerIds) -> Value {
    let has_tool_calls = r.content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let content = r
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } if text.is_empty() => None,
            Part::Text { text, .. } => {
                Some(ContentBlock::Text(TextBlock { text: text.clone(), cache_control: None, citations: None }))
            }
            Part::ToolCall { id, name, arguments } => Some(ContentBlock::ToolUse(ToolUseBlock {
                id: id.clone(),
                name: name.clone(),
                input: answer_input(arguments),
                cache_control: None,
            })),
            // The SDKs require a signature on every thinking block; another provider's
            // reasoning has none.
            Part::Thinking { text, signature } => Some(ContentBlock::Thinking(ThinkingBlock {
                thinking: text.clone(),
                signature: Some(signature.clone().unwrap_or_default()),
            })),
            Part::RedactedThinking { data } => {
                Some(ContentBlock::RedactedThinking(RedactedThinkingBlock { data: data.clone() }))
            }
            Part::Image { .. } | Part::ToolResult { .. } => None,
        })
        .collect();
    let (stop_reason, stop_sequence) = client_stop_reason(r.stop_reason.as_ref(), has_tool_calls);
    let message = Message {
        id: if r.id.is_empty() { ids.message_id() } else { r.id.clone() },
        kind: "message".into(),
        role: "assistant".into(),
        content,
        model: r.model.clone(),
        stop_reason: Some(stop_reason.into()),
        stop_sequence,
        usage: Some(usage_to_wire(&r.usage.unwrap_or_default())),
    };
    // A plain struct with string keys: serializing it cannot fail.
    serde_json::to_value(&message).unwrap_or(Value::Null)
}

/// The `input` object of a tool call's arguments. Invalid JSON (a call cut off by `max_tokens`)
/// becomes `{}`: Anthropic clients require an object, and the text is no use to them half-written.
fn answer_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    }
}

/// The usage of a complete `message` body, read without decoding its content.
pub fn usage_of_message(body: &[u8]) -> Result<Option<TokenUsage>, ProviderError> {
    #[derive(Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<Usage>,
    }
    let u: UsageOnly =
        serde_json::from_slice(body).map_err(|e| ProviderError::Protocol(format!("not an Anthropic message: {e}")))?;
    Ok(u.usage.as_ref().map(usage_from_wire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified::StopReason;
    use serde_json::json;

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn the_reference_message_becomes_unified() {
        let r = response_to_unified(&bytes(json!({
            "content": [{"text": "Hi! My name is Claude.", "type": "text"}], "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "model": "claude-sonnet-4-20250514", "role": "assistant", "stop_reason": "end_turn",
            "stop_sequence": null, "type": "message", "usage": {"input_tokens": 2095, "output_tokens": 503}
        })))
        .unwrap();
        assert_eq!(r.id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
        assert_eq!(r.content, vec![Part::Text { text: "Hi! My name is Claude.".into(), cache_control: None }]);
        assert_eq!(r.stop_reason, Some(StopReason::EndTurn));
        assert_eq!(r.usage.unwrap().prompt_tokens, 2095);
    }

    #[test]
    fn stop_sequences_and_server_blocks() {
        let r = response_to_unified(&bytes(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "text", "text": "one", "citations": [{"type": "char_location"}]},
            ],
            "stop_reason": "stop_sequence", "stop_sequence": "###", "usage": {"input_tokens": 1, "output_tokens": 1}
        })))
        .unwrap();
        assert_eq!(r.content, vec![Part::Text { text: "one".into(), cache_control: None }]);
        assert_eq!(r.stop_reason, Some(StopReason::StopSequence(Some("###".into()))));
    }

    #[test]
    fn bodies_that_are_not_messages_are_protocol_errors() {
        for body in [
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            json!({"id": "x", "type": "completion", "role": "assistant", "content": [], "model": "m"}),
            json!([1, 2]),
        ] {
            assert!(matches!(response_to_unified(&bytes(body)), Err(ProviderError::Protocol(_))));
        }
        assert!(matches!(response_to_unified(b"not json"), Err(ProviderError::Protocol(_))));
    }

    #[test]
    fn an_answer_without_id_or_stop_gets_one() {
        let answer = ChatResponse {
            model: "gpt-4o".into(),
            content: vec![Part::Text { text: "Hi".into(), cache_control: None }],
            ..ChatResponse::default()
        };
        let ids = AnswerIds::from_seed("answer-1");
        let v = response_from_unified(&answer, ids);
        assert_eq!(v["id"].as_str().unwrap(), ids.message_id());
        assert_eq!(v, response_from_unified(&answer, ids), "same answer, same ids: same message");
        assert_ne!(v["id"], response_from_unified(&answer, AnswerIds::from_seed("answer-2"))["id"]);
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0})
        );
    }

    #[test]
    fn tool_calls_end_a_turn_as_tool_use_whatever_the_upstream_said() {
        let response = |stop: Option<StopReason>, arguments: &str| {
            response_from_unified(
                &ChatResponse {
                    id: "msg_1".into(),
                    model: "gemini-2.5-pro".into(),
                    content: vec![
                        Part::Text { text: String::new(), cache_control: None },
                        Part::ToolCall { id: "call_1".into(), name: "f".into(), arguments: arguments.into() },
                    ],
                    stop_reason: stop,
                    usage: None,
                },
                AnswerIds::from_seed("answer"),
            )
        };
        let v = response(Some(StopReason::EndTurn), r#"{"a":1}"#);
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"], json!([{"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}]));
        assert_eq!(response(Some(StopReason::MaxTokens), r#"{"a":"#)["content"][0]["input"], json!({}));
        assert_eq!(response(Some(StopReason::MaxTokens), r#"{"a":"#)["stop_reason"], "max_tokens");
    }

    #[test]
    fn thinking_content_filter_and_stop_sequence_answers() {
        let v = response_from_unified(
            &ChatResponse {
                id: "msg_1".into(),
                model: "m".into(),
                content: vec![
                    Part::Thinking { text: "deepseek reasoning".into(), signature: None },
                    Part::RedactedThinking { data: "EmwK".into() },
                ],
                stop_reason: Some(StopReason::ContentFilter),
                usage: None,
            },
            AnswerIds::from_seed("answer"),
        );
        assert_eq!(
            v["content"],
            json!([{"type": "thinking", "thinking": "deepseek reasoning", "signature": ""}, {"type": "redacted_thinking", "data": "EmwK"}])
        );
        assert_eq!(v["stop_reason"], "refusal");
        let v = response_from_unified(
            &ChatResponse {
                stop_reason: Some(StopReason::StopSequence(Some("END".into()))),
                ..ChatResponse::default()
            },
            AnswerIds::from_seed("answer"),
        );
        assert_eq!((&v["stop_reason"], &v["stop_sequence"]), (&json!("stop_sequence"), &json!("END")));
    }

    #[test]
    fn usage_is_read_off_a_message_without_its_content() {
        let body = bytes(json!({"id": "msg_1", "content": [{"type": "anything", "deep": [[[]]]}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 5}}));
        let u = usage_of_message(&body).unwrap().unwrap();
        assert_eq!((u.prompt_tokens, u.cached_tokens, u.completion_tokens), (100, 90, 5));
        assert_eq!(usage_of_message(b"{}").unwrap(), None);
        assert!(usage_of_message(b"{").is_err());
    }
}
