//! The OpenAI API: Chat Completions, Responses, (legacy) Completions, Embeddings, Models, the
//! passed-through endpoints (images, audio, moderations: `media`) and the error body.
//!
//! Request types keep every field they do not know in `extra`, so a same-protocol passthrough
//! forwards what the client sent with only `model` rewritten.

mod chat;
mod completions;
mod embeddings;
mod error;
mod media;
mod models;
mod responses;
mod usage;

pub use chat::{ChatCompletionRequest, ChatMessage, ChoiceScan, ChunkScan, StreamOptions};
pub use completions::{CompletionRequest, Prompt, Stop};
pub use embeddings::EmbeddingsRequest;
pub use error::{ErrorBody, ErrorDetail};
pub use media::{ModelledBody, answer_usage};
pub use models::{ModelList, ModelObject};
pub use responses::{
    Content, ContentPart, FunctionCallItem, FunctionCallOutputItem, FunctionTool, InputItem, InputItems,
    InputTokensDetails, MessageItem, MessageRole, OutputTokensDetails, ReasoningItem, ReasoningParam, ReasoningPart,
    ResponseUsage, ResponsesInput, ResponsesRequest, SummaryPart, TextFormat, TextParam,
};
pub use usage::{CompletionTokensDetails, PromptTokensDetails, Usage};
