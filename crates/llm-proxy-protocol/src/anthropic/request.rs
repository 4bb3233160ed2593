use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::DecodeError;
use crate::messages::{MessageShape, Messages};

/// `POST /v1/messages` body. Typed fields are the ones the gateway reads or must validate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    /// Kept as the client's JSON text: forwarded as is, decoded one message at a time when
    /// translated (see `crate::messages`).
    pub messages: Messages<MessageParam>,
    /// Required by Anthropic on `/v1/messages`; absent on `count_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// A string or an array of text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The client's protocol headers, set by the server from the HTTP request (never the body).
    #[serde(skip)]
    pub headers: ClientHeaders,
}

/// The headers of an Anthropic client that belong to the protocol and travel with its request to
/// an Anthropic upstream: `anthropic-version`, and `anthropic-beta`, without which the API refuses
/// beta-only fields such as `context_management`. Nothing else a client sends goes upstream: not
/// its authorization, nothing that could choose the upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHeaders {
    pub version: Option<String>,
    pub beta: Option<String>,
}

/// Longest `anthropic-beta` accepted: Claude Code sends about 250 bytes.
const MAX_BETA_BYTES: usize = 2048;

impl ClientHeaders {
    /// Checks the two values as the API would read them: a version is a date (`2023-06-01`), betas
    /// a comma-separated list of names (`interleaved-thinking-2025-05-14,context-management-2025-06-27`).
    /// `Err` names the header.
    pub fn new(version: Option<&str>, beta: Option<&str>) -> Result<Self, DecodeError> {
        let bad = |header: &str, reason: &str| DecodeError { message: format!("{header}: {reason}"), param: None };
        let version = match version.map(str::trim) {
            None | Some("") => None,
            Some(v)
                if v.len() == 10
                    && v.bytes()
                        .enumerate()
                        .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() }) =>
            {
                Some(v.to_string())
            }
            Some(_) => return Err(bad("anthropic-version", "expected a date such as `2023-06-01`")),
        };
        let beta = match beta.map(str::trim) {
            None | Some("") => None,
            Some(b) if b.len() > MAX_BETA_BYTES => return Err(bad("anthropic-beta", "too long")),
            Some(b)
                if b.split(',').all(|name| {
                    let name = name.trim();
                    !name.is_empty()
                        && name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
                }) =>
            {
                Some(b.to_string())
            }
            Some(_) => return Err(bad("anthropic-beta", "expected comma-separated beta names")),
        };
        Ok(Self { version, beta })
    }
}

impl MessagesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// One turn: `role` is `user` or `assistant`; `content` is a string or an array of content blocks,
/// kept raw here and decoded by translation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageParam {
    pub role: String,
    pub content: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageShape for MessageParam {
    const REQUIRED: &'static [&'static str] = &["content"];
}

/// A client tool of `tools`. Server tools (`web_search_20250305`, `bash_20250124`, ...) have a
/// `type` other than `custom` and other fields; the translator checks `type` before decoding this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the tool's `input` (an object schema).
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

/// `tool_choice`. `disable_parallel_tool_use: true` asks for at most (`auto`) or exactly (`any`,
/// `tool`) one tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

/// `thinking`: extended thinking with a token budget (at least 1024, less than `max_tokens`),
/// off, or adaptive (newer models decide how much to think, guided by `output_config.effort`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingConfig {
    Enabled { budget_tokens: u64 },
    Disabled,
    Adaptive,
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque id of the end user, for Anthropic's abuse detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_headers_take_claude_codes_values_and_refuse_anything_else() {
        let betas = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27";
        let h = ClientHeaders::new(Some("2023-06-01"), Some(betas)).unwrap();
        assert_eq!((h.version.as_deref(), h.beta.as_deref()), (Some("2023-06-01"), Some(betas)));
        assert_eq!(ClientHeaders::new(None, Some(" ")).unwrap(), ClientHeaders::default());
        let err = ClientHeaders::new(Some("latest"), None).unwrap_err();
        assert!(err.message.starts_with("anthropic-version:"), "{}", err.message);
        for bad in ["a;b", "a,,b", "x\"y", &"a".repeat(3000)] {
            let err = ClientHeaders::new(None, Some(bad)).unwrap_err();
            assert!(err.message.starts_with("anthropic-beta:"), "{bad}: {}", err.message);
        }
    }
}
