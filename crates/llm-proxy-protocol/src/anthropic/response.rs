//! The `message` object a non-streamed `POST /v1/messages` answers with (and that `message_start`
//! carries, empty), its usage, and the `count_tokens` answer.

use serde::{Deserialize, Serialize};

use super::ContentBlock;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    /// Always `"message"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `"assistant"`.
    pub role: String,
    pub content: Vec<ContentBlock>,
    pub model: String,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`; `null` only
    /// in a stream's `message_start`. Serialized even when `null`, as Anthropic does.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The custom stop sequence that was generated, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Always in a complete message; absent from some streams' `message_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Token counts as Anthropic reports them. `input_tokens` excludes the cached input: the request's
/// total input is `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`.
///
/// Every field is optional because a stream's `message_delta` usually carries `output_tokens`
/// only; its counts are cumulative, not increments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: u64,
}

/// `POST /v1/messages/count_tokens` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountTokensResponse {
    pub input_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_example_decodes() {
        let m: Message = serde_json::from_str(
            r#"{"content":[{"text":"Hi! My name is Claude.","type":"text"}],"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "model":"claude-sonnet-4-20250514","role":"assistant","stop_reason":"end_turn","stop_sequence":null,
            "type":"message","usage":{"input_tokens":2095,"output_tokens":503}}"#,
        )
        .unwrap();
        assert_eq!(m.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(m.usage.unwrap(), Usage { input_tokens: Some(2095), output_tokens: 503, ..Usage::default() });
    }

    #[test]
    fn a_message_delta_usage_has_output_tokens_only() {
        let u: Usage = serde_json::from_str(r#"{"output_tokens":15}"#).unwrap();
        assert_eq!(u, Usage { output_tokens: 15, ..Usage::default() });
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"output_tokens":15}"#);
    }
}
