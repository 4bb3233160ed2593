//! The Anthropic Messages API: `POST /v1/messages` (and `count_tokens`), its streaming events and
//! its error body.
//!
//! `MessagesRequest` keeps every field it does not know in `extra` and message content as raw
//! JSON, so a same-protocol passthrough forwards what the client sent with only `model` rewritten;
//! the typed content blocks in `content` are what translation decodes it into.

mod content;
mod error;
mod request;
mod response;
mod stream;

pub use content::{
    ContentBlock, ImageBlock, ImageSource, RedactedThinkingBlock, TextBlock, ThinkingBlock, ToolResultBlock,
    ToolResultContent, ToolUseBlock,
};
pub use error::{ErrorBody, ErrorDetail};
pub use request::{ClientHeaders, MessageParam, MessagesRequest, Metadata, ThinkingConfig, Tool, ToolChoice};
pub use response::{CountTokensResponse, Message, Usage};
pub use stream::{ContentBlockDeltaData, Delta, MessageDelta, StreamEvent};
