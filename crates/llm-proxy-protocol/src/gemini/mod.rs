//! The Gemini API (`generativelanguage.googleapis.com/v1beta`): `generateContent`,
//! `streamGenerateContent?alt=sse`, `countTokens`, `batchEmbedContents` and the Google error body.
//!
//! Field names are the REST API's camelCase JSON names. Every struct the gateway decodes from
//! Gemini is lenient (`default` everywhere, unknown fields ignored or kept in `extra`), because
//! Google adds response fields often and a new field must never fail a request. The model is named
//! in the URL (`models/{model}:generateContent`), not in the body, except inside `countTokens`'
//! `generateContentRequest` and each `batchEmbedContents` request.

mod content;
mod embeddings;
mod error;
mod request;
mod response;

pub use content::{Blob, Content, FileData, FunctionCall, FunctionResponse, Part};
pub use embeddings::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, ContentEmbedding, EmbedContentRequest, EmbeddingUsage,
};
pub use error::{ErrorBody, Status};
pub use request::{
    CountTokensRequest, FunctionCallingConfig, FunctionCallingMode, FunctionDeclaration, GenerateContentRequest,
    GenerationConfig, ThinkingConfig, Tool, ToolConfig,
};
pub use response::{
    Candidate, CountTokensResponse, FinishReason, GenerateContentResponse, PromptFeedback, StreamChunk, UsageMetadata,
};
