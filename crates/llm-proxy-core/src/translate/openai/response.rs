//! Complete (non-streamed) answers: unified → `chat.completion`, and back.

use serde::Deserialize;
use serde_json::{Value, json};

use super::stream::null_default;
use super::{finish_reason, stop_reason, usage_to_wire};
use crate::provider::{ProviderError, TokenUsage};
use crate::translate::AnswerIds;
use crate::unified::{ChatResponse, Part, StopReason};

/// A `chat.completion` for an OpenAI client. `created` is in seconds; `ids` gives the id when the
/// upstream named none.
pub fn response_from_unified(r: &ChatResponse, created: i64, ids: AnswerIds) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &r.content {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Thinking { text: t, .. } => reasoning.push_str(t),
            Part::ToolCall { id, name, arguments } => calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": arguments}
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    let mut out = json!({
        "id": chat_id(&r.id, &ids),
        "object": "chat.completion",
        "created": created,
        "model": r.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(r.stop_reason.as_ref().unwrap_or(&crate::unified::StopReason::EndTurn)),
        }],
    });
    if let Some(u) = &r.usage {
        out["usage"] = json!(usage_to_wire(u));
    }
    out
}

/// The id an OpenAI client sees: the upstream's, or one of this answer's.
pub(super) fn chat_id(id: &str, ids: &AnswerIds) -> String {
    if id.is_empty() { ids.completion_id() } else { id.to_string() }
}

// `null` reads as absent throughout, as in the stream decoder.
#[derive(Deserialize)]
struct Completion {
    #[serde(default, deserialize_with = "null_default")]
    id: String,
    #[serde(default, deserialize_with = "null_default")]
    model: String,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<llm_proxy_protocol::openai::Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: AssistantMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    /// OpenRouter's name for the same thing.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default, deserialize_with = "null_default")]
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default, deserialize_with = "null_default")]
    name: String,
    #[serde(default, deserialize_with = "null_default")]
    arguments: String,
}

/// A `chat.completion` from an OpenAI-protocol upstream. `ids` names the tool calls the upstream
/// gave no id.
pub fn response_to_unified(body: &[u8], ids: AnswerIds) -> Result<ChatResponse, ProviderError> {
    let c: Completion = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Protocol(format!("the upstream answer is not a chat completion: {e}")))?;
    let choice = c
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Protocol("the upstream answer has no choices".into()))?;
    let m = choice.message;
    let mut content = Vec::new();
    if let Some(text) = m.reasoning_content.or(m.reasoning).filter(|t| !t.is_empty()) {
        content.push(Part::Thinking { text, signature: None });
    }
    let refused = m.content.as_deref().is_none_or(str::is_empty) && m.refusal.as_deref().is_some_and(|r| !r.is_empty());
    if let Some(text) = m.content.or(m.refusal).filter(|t| !t.is_empty()) {
        content.push(Part::Text { text, cache_control: None });
    }
    let tag = super::call_tag(&ids);
    for (i, call) in m.tool_calls.into_iter().enumerate() {
        let id = if call.id.is_empty() { format!("call_{tag}_{i}") } else { call.id };
        content.push(Part::ToolCall { id, name: call.function.name, arguments: call.function.arguments });
    }
    let stop = if refused { Some(StopReason::ContentFilter) } else { choice.finish_reason.as_deref().map(stop_reason) };
    Ok(ChatResponse { id: c.id, model: c.model, content, stop_reason: stop, usage: c.usage.map(TokenUsage::from) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_tools_reasoning_and_cached_usage() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"deepseek-reasoner",
            "choices":[{"index":0,"message":{"role":"assistant","content":null,"reasoning_content":"Think.",
              "tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\": 1}"}}]},
              "finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29,
              "prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":4}}}"#;
        let r = response_to_unified(body, AnswerIds::from_seed("answer")).unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            r.usage,
            Some(TokenUsage {
                prompt_tokens: 20,
                completion_tokens: 9,
                cached_tokens: 8,
                cache_write_tokens: 0,
                reasoning_tokens: 4
            })
        );
        let out = response_from_unified(&r, 1, AnswerIds::from_seed("answer"));
        let want: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(out["choices"][0]["message"]["tool_calls"], want["choices"][0]["message"]["tool_calls"]);
        assert_eq!(out["choices"][0]["message"]["reasoning_content"], "Think.");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["usage"], want["usage"]);
        assert_eq!(out["id"], "chatcmpl-1");
    }

    #[test]
    fn nulls_refusals_and_missing_ids() {
        let body = br#"{"id":null,"choices":[{"message":{"role":"assistant","content":null,"refusal":"No.","tool_calls":null},"finish_reason":"stop"}]}"#;
        let ids = AnswerIds::from_seed("answer-1");
        let r = response_to_unified(body, ids).unwrap();
        assert_eq!(r.content, vec![Part::Text { text: "No.".into(), cache_control: None }]);
        assert_eq!(r.stop_reason, Some(StopReason::ContentFilter));
        let body = br#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":null}}]},"finish_reason":"tool_calls"}]}"#;
        let id = |r: &ChatResponse| match &r.content[0] {
            Part::ToolCall { id, .. } => id.clone(),
            other => panic!("{other:?}"),
        };
        let a = response_to_unified(body, ids).unwrap();
        assert_eq!(id(&a), format!("call_{}_0", ids.tag(12)));
        assert!(id(&a).len() <= 40, "OpenAI takes tool-call ids of at most 40 characters");
        assert_eq!(response_to_unified(body, ids).unwrap(), a, "same body, same ids: same answer");
        let b = response_to_unified(body, AnswerIds::from_seed("answer-2")).unwrap();
        assert_ne!(id(&a), id(&b), "generated ids differ between answers");
        // An answer without an id gets this answer's.
        let out = response_from_unified(&a, 1, ids);
        assert_eq!(out["id"].as_str().unwrap(), ids.completion_id());
        assert_eq!(out, response_from_unified(&a, 1, ids));
    }

    #[test]
    fn not_a_completion_is_a_protocol_error() {
        let ids = AnswerIds::from_seed("answer");
        assert!(matches!(response_to_unified(b"[]", ids), Err(ProviderError::Protocol(_))));
        assert!(matches!(response_to_unified(br#"{"choices":[]}"#, ids), Err(ProviderError::Protocol(_))));
    }
}
