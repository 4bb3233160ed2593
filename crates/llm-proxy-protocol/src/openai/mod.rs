//! The OpenAI API: Chat Completions, Embeddings, Models and the error body.
//!
//! Request types keep every field they do not know in `extra`, so a same-protocol passthrough
//! forwards what the client sent with only `model` rewritten.

mod chat;
mod embeddings;
mod error;
mod models;
mod usage;

pub use chat::{ChatCompletionRequest, ChatMessage, ChoiceScan, ChunkScan, StreamOptions};
pub use embeddings::EmbeddingsRequest;
pub use error::{ErrorBody, ErrorDetail};
pub use models::{ModelList, ModelObject};
pub use usage::{CompletionTokensDetails, PromptTokensDetails, Usage};
