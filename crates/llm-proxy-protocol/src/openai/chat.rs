use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Usage;
use crate::messages::{MessageShape, Messages};

/// `POST /v1/chat/completions` body. The typed fields are the ones the gateway reads or must
/// validate; everything else rides along in `extra` untouched (tools, images, response_format…).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    /// Kept as the client's JSON text: forwarded as is, decoded one message at a time when
    /// translated (see `crate::messages`).
    pub messages: Messages<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Map<String, Value>>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false)
    }

    /// Asks upstream for the usage chunk, which the gateway needs to count tokens; the caller strips
    /// it again if the client did not ask for it.
    pub fn request_stream_usage(&mut self) {
        self.stream_options.get_or_insert_with(StreamOptions::default).include_usage = Some(true);
    }
}

/// One message. Only `role` is checked here; content (text, image parts, tool calls) is the
/// upstream's to validate and is passed through untouched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl MessageShape for ChatMessage {
    const REQUIRED: &'static [&'static str] = &[];
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the gateway reads from each streamed `chat.completion.chunk` (or a whole completion):
/// usage, whether the chunk carries choices, whether one finished, and an in-band error.
/// Everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct ChunkScan {
    #[serde(default)]
    pub choices: Option<Vec<ChoiceScan>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Some servers report a failure inside a 200 stream as `data: {"error": {...}}`.
    #[serde(default)]
    pub error: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChoiceScan {
    #[serde(default)]
    pub finish_reason: Option<String>,
}

impl ChunkScan {
    /// Scans one chunk; a chunk that is not JSON scans as empty (the client still receives it).
    pub fn of(data: &[u8]) -> Self {
        serde_json::from_slice(data).unwrap_or_default()
    }

    /// The usage-only chunk OpenAI sends last when `include_usage` is set: usage and no choices.
    pub fn is_usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_none_or(|c| c.is_empty())
    }

    /// Whether some choice reported why it stopped: the answer is complete.
    pub fn has_finish_reason(&self) -> bool {
        self.choices.as_ref().is_some_and(|c| c.iter().any(|c| c.finish_reason.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::decode;

    #[test]
    fn keeps_unknown_fields_and_rewrites_only_model() {
        let body = br#"{"model":"fast","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"response_format":{"type":"json_object"},"seed":7}"#;
        let mut req: ChatCompletionRequest = decode(body).unwrap();
        req.model = "gpt-4o".into();
        let out: Value = serde_json::to_value(&req).unwrap();
        let mut want: Value = serde_json::from_slice(body).unwrap();
        want["model"] = "gpt-4o".into();
        assert_eq!(out, want);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = decode::<ChatCompletionRequest>(br#"{"model":"m","messages":[],"stream":"yes"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("stream"));
        let err = decode::<ChatCompletionRequest>(br#"{"model":"m","messages":[{"role":1}]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
        let err = decode::<ChatCompletionRequest>(br#"{"messages":[]}"#).unwrap_err();
        assert!(err.message.contains("missing field `model`"), "{}", err.message);
    }

    #[test]
    fn usage_request_keeps_other_stream_options() {
        let mut req: ChatCompletionRequest =
            decode(br#"{"model":"m","messages":[],"stream":true,"stream_options":{"x":1}}"#).unwrap();
        assert!(!req.wants_stream_usage());
        req.request_stream_usage();
        let out = serde_json::to_value(&req).unwrap();
        assert_eq!(out["stream_options"], serde_json::json!({"include_usage": true, "x": 1}));
    }

    #[test]
    fn scans_usage_only_chunk() {
        let s = ChunkScan::of(
            br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#,
        );
        assert!(s.is_usage_only());
        assert_eq!(s.usage.unwrap().completion_tokens, 5);
        let s = ChunkScan::of(br#"{"id":"x","choices":[{"delta":{}}],"usage":null}"#);
        assert!(!s.is_usage_only());
        assert!(s.usage.is_none());
    }
}
