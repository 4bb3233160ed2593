use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Content, Status};

/// The answer of `generateContent`, and each `data:` event of `streamGenerateContent?alt=sse`
/// (where every event is a whole response carrying the new parts only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// Set when the prompt itself was blocked; there are no candidates then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Absent when the candidate was blocked before producing anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Absent until the candidate is complete (on every stream event but the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

/// Why a candidate ended. Google adds values over time, so an unknown one is kept as `Other`
/// rather than failing the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FinishReason {
    /// Natural end, or one of the stop sequences.
    Stop,
    MaxTokens,
    Safety,
    Recitation,
    /// The answer was in an unsupported language.
    Language,
    Blocklist,
    ProhibitedContent,
    /// Sensitive personally identifiable information.
    Spii,
    MalformedFunctionCall,
    ImageSafety,
    ImageProhibitedContent,
    ImageRecitation,
    UnexpectedToolCall,
    TooManyToolCalls,
    /// `OTHER`, `FINISH_REASON_UNSPECIFIED` or a value newer than this list.
    Other(String),
}

impl From<String> for FinishReason {
    fn from(s: String) -> Self {
        match s.as_str() {
            "STOP" => Self::Stop,
            "MAX_TOKENS" => Self::MaxTokens,
            "SAFETY" => Self::Safety,
            "RECITATION" => Self::Recitation,
            "LANGUAGE" => Self::Language,
            "BLOCKLIST" => Self::Blocklist,
            "PROHIBITED_CONTENT" => Self::ProhibitedContent,
            "SPII" => Self::Spii,
            "MALFORMED_FUNCTION_CALL" => Self::MalformedFunctionCall,
            "IMAGE_SAFETY" => Self::ImageSafety,
            "IMAGE_PROHIBITED_CONTENT" => Self::ImageProhibitedContent,
            "IMAGE_RECITATION" => Self::ImageRecitation,
            "UNEXPECTED_TOOL_CALL" => Self::UnexpectedToolCall,
            "TOO_MANY_TOOL_CALLS" => Self::TooManyToolCalls,
            _ => Self::Other(s),
        }
    }
}

impl From<FinishReason> for String {
    fn from(r: FinishReason) -> Self {
        match r {
            FinishReason::Stop => "STOP".into(),
            FinishReason::MaxTokens => "MAX_TOKENS".into(),
            FinishReason::Safety => "SAFETY".into(),
            FinishReason::Recitation => "RECITATION".into(),
            FinishReason::Language => "LANGUAGE".into(),
            FinishReason::Blocklist => "BLOCKLIST".into(),
            FinishReason::ProhibitedContent => "PROHIBITED_CONTENT".into(),
            FinishReason::Spii => "SPII".into(),
            FinishReason::MalformedFunctionCall => "MALFORMED_FUNCTION_CALL".into(),
            FinishReason::ImageSafety => "IMAGE_SAFETY".into(),
            FinishReason::ImageProhibitedContent => "IMAGE_PROHIBITED_CONTENT".into(),
            FinishReason::ImageRecitation => "IMAGE_RECITATION".into(),
            FinishReason::UnexpectedToolCall => "UNEXPECTED_TOOL_CALL".into(),
            FinishReason::TooManyToolCalls => "TOO_MANY_TOOL_CALLS".into(),
            FinishReason::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// `SAFETY`, `OTHER`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `IMAGE_SAFETY`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_ratings: Vec<Value>,
}

/// Token counts. `promptTokenCount` includes `cachedContentTokenCount`; thinking is reported in
/// `thoughtsTokenCount`, outside `candidatesTokenCount`; tool-use prompts (e.g. search results) in
/// `toolUsePromptTokenCount`, outside `promptTokenCount`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub total_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
}

/// One `data:` of a `streamGenerateContent?alt=sse` stream: normally a response; when the
/// upstream fails after the stream began, an `{"error": {...}}` object instead.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamChunk {
    #[serde(default)]
    pub error: Option<Status>,
    #[serde(flatten)]
    pub response: GenerateContentResponse,
}

/// `countTokens` answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_content_token_count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_round_trip_and_unknown_ones_are_kept() {
        for s in ["STOP", "MAX_TOKENS", "SPII", "IMAGE_SAFETY", "OTHER", "SOMETHING_NEW"] {
            let r: FinishReason = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(serde_json::to_value(&r).unwrap(), serde_json::json!(s));
        }
        assert_eq!(FinishReason::from("OTHER".to_string()), FinishReason::Other("OTHER".into()));
    }

    #[test]
    fn stream_chunks_are_responses_or_errors() {
        let chunk: StreamChunk = serde_json::from_str(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi","thoughtSignature":"AA=="},
                {"executableCode":{"language":"PYTHON","code":"1"}}]}}],"responseId":"r"}"#,
        )
        .unwrap();
        assert!(chunk.error.is_none());
        let parts = &chunk.response.candidates[0].content.as_ref().unwrap().parts;
        assert_eq!(parts[0].text.as_deref(), Some("hi"));
        assert_eq!(parts[0].thought_signature.as_deref(), Some("AA=="));
        assert!(parts[1].extra.contains_key("executableCode"));

        let chunk: StreamChunk =
            serde_json::from_str(r#"{"error":{"code":500,"message":"boom","status":"INTERNAL"}}"#).unwrap();
        assert_eq!(chunk.error.unwrap().message, "boom");
    }
}
