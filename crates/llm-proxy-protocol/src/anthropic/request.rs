use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
