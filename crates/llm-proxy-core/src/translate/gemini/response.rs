//! Gemini's `GenerateContentResponse` → unified `ChatResponse`, and the pieces the stream decoder
//! shares: finish reasons, usage, tool-call ids.

use llm_proxy_protocol::gemini::{FinishReason, FunctionCall, GenerateContentResponse, UsageMetadata};
use llm_proxy_protocol::json;
use serde_json::Value;

use super::call_id;
use crate::provider::{ProviderError, TokenUsage};
use crate::translate::AnswerIds;
use crate::unified::{ChatResponse, ImageSource, Part, StopReason};

/// Decodes a `generateContent` answer. Only the first candidate is read: the gateway never asks
/// for more (`candidateCount` is not set). `ids` names the answer and its function calls when
/// Gemini did not.
pub fn response_to_unified(body: &[u8], model: &str, ids: AnswerIds) -> Result<ChatResponse, ProviderError> {
    let resp: GenerateContentResponse = json::decode(body)
        .map_err(|e| ProviderError::Protocol(format!("not a Gemini GenerateContentResponse: {e}")))?;
    // Every field is optional on the wire, so `{}` or an error body would decode as an empty answer.
    if resp.candidates.is_empty() && resp.prompt_feedback.is_none() {
        let detail = match super::error_message(body) {
            Some((message, _)) => format!("an error instead of a GenerateContentResponse: {message}"),
            None => "a GenerateContentResponse with neither candidates nor promptFeedback".to_string(),
        };
        return Err(ProviderError::Protocol(format!("Gemini answered with {detail}")));
    }

    let mut calls = CallIds::new(resp.response_id.as_deref(), &ids);
    let mut content: Vec<Part> = Vec::new();
    let candidate = resp.candidates.first();
    for part in candidate.and_then(|c| c.content.as_ref()).map(|c| c.parts.as_slice()).unwrap_or_default() {
        if let Some(call) = &part.function_call {
            let (id, name, arguments) = calls.tool_call(call, part.thought_signature.as_deref());
            content.push(Part::ToolCall { id, name, arguments });
        } else if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
            // A thought signature on a text part is dropped: Gemini only requires the ones on
            // function calls, and the unified model has nowhere to keep it.
            push_text(&mut content, text, part.is_thought());
        } else if let Some(blob) = &part.inline_data {
            let source = ImageSource::Base64 { media_type: blob.mime_type.clone(), data: blob.data.clone() };
            content.push(Part::Image { source, cache_control: None });
        }
        // Code execution and other parts have no unified form.
    }

    let saw_tool_call = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let stop_reason = match candidate {
        Some(c) => c.finish_reason.as_ref().map(|r| stop_reason(r, saw_tool_call)),
        None => prompt_blocked(&resp).then_some(StopReason::ContentFilter),
    };
    Ok(ChatResponse {
        id: resp.response_id.clone().unwrap_or_else(|| ids.response_id()),
        model: resp.model_version.clone().unwrap_or_else(|| model.to_string()),
        content,
        stop_reason,
        usage: resp.usage_metadata.as_ref().map(usage),
    })
}

/// Appends text, joining it to the previous part when that is text of the same kind.
fn push_text(content: &mut Vec<Part>, text: &str, thought: bool) {
    match content.last_mut() {
        Some(Part::Thinking { text: prev, .. }) if thought => prev.push_str(text),
        Some(Part::Text { text: prev, .. }) if !thought => prev.push_str(text),
        _ if thought => content.push(Part::Thinking { text: text.to_string(), signature: None }),
        _ => content.push(Part::Text { text: text.to_string(), cache_control: None }),
    }
}

/// Whether Gemini refused the prompt itself (no candidates then).
pub(super) fn prompt_blocked(resp: &GenerateContentResponse) -> bool {
    resp.candidates.is_empty() && resp.prompt_feedback.as_ref().is_some_and(|f| f.block_reason.is_some())
}

pub(super) fn stop_reason(reason: &FinishReason, saw_tool_call: bool) -> StopReason {
    match reason {
        // Gemini says STOP after function calls too; clients loop on "tool use".
        FinishReason::Stop if saw_tool_call => StopReason::ToolUse,
        FinishReason::Stop => StopReason::EndTurn,
        FinishReason::MaxTokens => StopReason::MaxTokens,
        FinishReason::Safety
        | FinishReason::Recitation
        | FinishReason::Language
        | FinishReason::Blocklist
        | FinishReason::ProhibitedContent
        | FinishReason::Spii
        | FinishReason::ImageSafety
        | FinishReason::ImageProhibitedContent
        | FinishReason::ImageRecitation => StopReason::ContentFilter,
        // A malformed or unexpected call, `OTHER` and reasons newer than this code are not refusals
        // and have no unified equivalent; the answer simply ended. A call that did arrive is still
        // a tool-use turn.
        FinishReason::MalformedFunctionCall
        | FinishReason::UnexpectedToolCall
        | FinishReason::TooManyToolCalls
        | FinishReason::Other(_) => {
            if saw_tool_call {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            }
        }
    }
}

pub(super) fn usage(u: &UsageMetadata) -> TokenUsage {
    TokenUsage {
        // Tool-use prompt tokens (search results and the like) are input Gemini bills as input.
        prompt_tokens: u.prompt_token_count + u.tool_use_prompt_token_count,
        // Gemini reports thinking beside the answer; the unified convention (OpenAI's) counts it in.
        completion_tokens: u.candidates_token_count + u.thoughts_token_count,
        cached_tokens: u.cached_content_token_count,
        cache_write_tokens: 0,
        reasoning_tokens: u.thoughts_token_count,
    }
}

/// Hands out the unified ids of one answer's function calls.
pub(super) struct CallIds {
    /// Distinguishes this answer's generated ids from other answers' in the same conversation.
    tag: String,
    next: usize,
}

impl CallIds {
    /// The tag comes from Gemini's response id, or from `ids` when it gave none.
    pub(super) fn new(response_id: Option<&str>, ids: &AnswerIds) -> Self {
        // 16 characters keep plain ids under the 40 that OpenAI accepts as a tool-call id, should
        // the conversation later go there.
        const TAG_LEN: usize = 16;
        let mut tag: String =
            response_id.unwrap_or_default().chars().filter(char::is_ascii_alphanumeric).take(TAG_LEN).collect();
        if tag.is_empty() {
            tag = ids.tag(TAG_LEN);
        }
        Self { tag, next: 0 }
    }

    /// Unified (id, name, arguments JSON text) of a function call.
    pub(super) fn tool_call(&mut self, call: &FunctionCall, signature: Option<&str>) -> (String, String, String) {
        let n = self.next;
        self.next += 1;
        let id = call_id::to_unified(call.id.as_deref(), || format!("call_{}_{n}", self.tag), signature);
        let arguments = match &call.args {
            Some(args) if !args.is_null() => args.to_string(),
            // A function without parameters comes with no `args`; clients expect an object.
            _ => Value::Object(Default::default()).to_string(),
        };
        (id, call.name.clone(), arguments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn decode(body: &[u8], model: &str) -> Result<ChatResponse, ProviderError> {
        response_to_unified(body, model, AnswerIds::from_seed("answer"))
    }

    #[test]
    fn text_answer() {
        let resp = decode(&fixture("response_text.json"), "gemini-2.5-flash").unwrap();
        insta::assert_debug_snapshot!(resp);
    }

    #[test]
    fn function_call_answer_with_thought_signature() {
        let resp = decode(&fixture("response_function_call.json"), "gemini-3-pro-preview").unwrap();
        insta::assert_debug_snapshot!(resp);
        let Part::ToolCall { id, .. } = &resp.content[1] else { panic!("{:?}", resp.content) };
        let call = call_id::from_unified(id);
        assert_eq!(call.signature.as_deref(), Some("CiQBcsjafLNBzYQqkfk7ruG5Y7Zs+QBVqN/KPQU5kh6VZ4Tr2x4="));
        assert_eq!(call.id, None);
    }

    #[test]
    fn blocked_prompt_is_an_empty_filtered_answer() {
        let mut resp = decode(&fixture("response_blocked_prompt.json"), "gemini-2.5-flash").unwrap();
        assert_eq!(resp.id, AnswerIds::from_seed("answer").response_id());
        resp.id = "<generated>".into();
        insta::assert_debug_snapshot!(resp);
    }

    #[test]
    fn what_is_not_a_response_is_a_protocol_error() {
        for body in [&b"{}"[..], b"[]", b"<html>", br#"{"candidates": "x"}"#] {
            let err = decode(body, "m").unwrap_err();
            assert!(matches!(err, ProviderError::Protocol(_)), "{err:?}");
        }
        let err = decode(&fixture("error_invalid_argument.json"), "m").unwrap_err();
        let ProviderError::Protocol(message) = err else { panic!() };
        assert!(message.contains("API key not valid"), "{message}");
    }

    #[test]
    fn finish_reasons() {
        use FinishReason as F;
        assert_eq!(stop_reason(&F::Stop, false), StopReason::EndTurn);
        assert_eq!(stop_reason(&F::Stop, true), StopReason::ToolUse);
        assert_eq!(stop_reason(&F::MaxTokens, true), StopReason::MaxTokens);
        for filtered in ["SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"]
        {
            assert_eq!(stop_reason(&F::from(filtered.to_string()), false), StopReason::ContentFilter, "{filtered}");
        }
        for other in ["MALFORMED_FUNCTION_CALL", "OTHER", "FINISH_REASON_UNSPECIFIED", "SOMETHING_NEW"] {
            assert_eq!(stop_reason(&F::from(other.to_string()), false), StopReason::EndTurn, "{other}");
        }
    }

    #[test]
    fn usage_follows_the_unified_convention() {
        let u = UsageMetadata {
            prompt_token_count: 100,
            candidates_token_count: 20,
            total_token_count: 157,
            cached_content_token_count: 60,
            thoughts_token_count: 30,
            tool_use_prompt_token_count: 7,
        };
        assert_eq!(
            usage(&u),
            TokenUsage {
                prompt_tokens: 107,
                completion_tokens: 50,
                cached_tokens: 60,
                cache_write_tokens: 0,
                reasoning_tokens: 30
            }
        );
        let t = usage(&u);
        assert_eq!(t.prompt_tokens + t.completion_tokens, u.total_token_count);
    }

    #[test]
    fn adjacent_texts_merge_and_calls_get_distinct_ids() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[
            {"text":"Let me ","thought":true},{"text":"think.","thought":true},
            {"text":"Hel"},{"text":"lo"},
            {"functionCall":{"name":"a","args":{"x":1}}},
            {"functionCall":{"name":"b"}},
            {"functionCall":{"id":"fc_7","name":"c","args":{}}}
        ]},"finishReason":"STOP"}],"responseId":"r-1_x"}"#;
        let resp = decode(body, "m").unwrap();
        assert_eq!(resp.model, "m");
        assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(resp.usage, None);
        assert_eq!(
            resp.content,
            vec![
                Part::Thinking { text: "Let me think.".into(), signature: None },
                Part::Text { text: "Hello".into(), cache_control: None },
                Part::ToolCall { id: "call_r1x_0".into(), name: "a".into(), arguments: r#"{"x":1}"#.into() },
                Part::ToolCall { id: "call_r1x_1".into(), name: "b".into(), arguments: "{}".into() },
                Part::ToolCall { id: "gcid_fc_7".into(), name: "c".into(), arguments: "{}".into() },
            ]
        );
    }

    #[test]
    fn generated_call_ids_differ_between_answers_without_response_id() {
        let body = br#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"a"}}]},"finishReason":"STOP"}]}"#;
        let answer = |seed: &str| response_to_unified(body, "m", AnswerIds::from_seed(seed)).unwrap();
        assert_eq!(answer("answer-1"), answer("answer-1"), "same body, same seed: same answer");
        let ids: Vec<String> = ["answer-1", "answer-2"]
            .into_iter()
            .map(|seed| match &answer(seed).content[0] {
                Part::ToolCall { id, .. } => id.clone(),
                p => panic!("{p:?}"),
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[0], format!("call_{}_0", AnswerIds::from_seed("answer-1").tag(16)));
        assert!(ids.iter().all(|id| id.starts_with("call_") && id.ends_with("_0") && id.len() <= 40), "{ids:?}");
    }

    #[test]
    fn image_output_and_unknown_parts() {
        let body = br#"{"candidates":[{"content":{"parts":[
            {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
            {"executableCode":{"language":"PYTHON","code":"print(1)"}},
            {"text":""}
        ]},"finishReason":"SAFETY"}],"modelVersion":"gemini-2.5-flash-image"}"#;
        let resp = decode(body, "m").unwrap();
        assert_eq!(resp.model, "gemini-2.5-flash-image");
        assert_eq!(resp.stop_reason, Some(StopReason::ContentFilter));
        assert_eq!(
            resp.content,
            vec![Part::Image {
                source: ImageSource::Base64 { media_type: "image/png".into(), data: "iVBORw0KGgo=".into() },
                cache_control: None
            }]
        );
    }
}
