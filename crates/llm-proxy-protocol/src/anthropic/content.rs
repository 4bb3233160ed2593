//! Content blocks: what a message's `content` array holds, in requests and responses alike.
//!
//! Only the block types that have a meaning outside Anthropic are typed; anything else decodes as
//! `ContentBlock::Other` (a response or stream may carry server-tool blocks) and a request's raw
//! content is checked block by block by the translator, which names the unsupported type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text(TextBlock),
    Image(ImageBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
    Thinking(ThinkingBlock),
    RedactedThinking(RedactedThinkingBlock),
    /// A block type not typed here (`document`, `server_tool_use`, `web_search_tool_result`, ...).
    /// Decoded only; never serialized.
    #[serde(other, skip_serializing)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    /// Anthropic rejects an empty `text` in a request; responses may carry one.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    /// Citations of documents or search results supporting the text (responses, and echoed back
    /// in later requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    pub source: ImageSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline bytes; `media_type` is `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    /// A file uploaded with Anthropic's Files API: meaningful to Anthropic only.
    File {
        file_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseBlock {
    pub id: String,
    pub name: String,
    /// Always a JSON object.
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultBlock {
    pub tool_use_id: String,
    /// Optional: a result may be empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ToolResultContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

/// A tool result's `content`: a string, or `text` / `image` / `search_result` blocks. The blocks are
/// kept raw so the translator can name the one it cannot carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinkingBlock {
    pub thinking: String,
    /// Required when the block is sent back; absent from a streamed `content_block_start`, where it
    /// arrives as a `signature_delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactedThinkingBlock {
    /// Encrypted reasoning, opaque to everyone but Anthropic.
    pub data: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_decode_by_type_and_unknown_types_are_other() {
        let blocks: Vec<ContentBlock> = serde_json::from_value(json!([
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xyz"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        ]))
        .unwrap();
        assert!(matches!(blocks[1], ContentBlock::Image(ImageBlock { source: ImageSource::Url { .. }, .. })));
        assert!(
            matches!(&blocks[3], ContentBlock::ToolResult(r) if r.content == Some(ToolResultContent::Text("ok".into())))
        );
        assert_eq!(blocks[6], ContentBlock::Other);
    }

    #[test]
    fn blocks_serialize_with_their_type_first_and_without_absent_fields() {
        let block = ContentBlock::ToolUse(ToolUseBlock {
            id: "toolu_1".into(),
            name: "f".into(),
            input: json!({}),
            cache_control: None,
        });
        assert_eq!(
            serde_json::to_string(&block).unwrap(),
            r#"{"type":"tool_use","id":"toolu_1","name":"f","input":{}}"#
        );
    }
}
