//! The contract between the gateway and an upstream adapter.
//!
//! Requests and responses are in the OpenAI shape, the gateway's lingua franca: an adapter for the
//! OpenAI protocol passes them through, others translate. Errors say who failed and whether trying
//! again (or elsewhere) makes sense, which is what retries and fallbacks need.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use llm_proxy_protocol::openai::{ChatCompletionRequest, EmbeddingsRequest};

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl From<llm_proxy_protocol::openai::Usage> for TokenUsage {
    fn from(u: llm_proxy_protocol::openai::Usage) -> Self {
        Self { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }
    }
}

/// A complete (non-streamed) upstream answer, as bytes in the OpenAI shape.
#[derive(Debug)]
pub struct CompleteResponse {
    pub body: Bytes,
    pub usage: Option<TokenUsage>,
}

/// One event of a streamed chat completion.
#[derive(Debug, Clone)]
pub struct ChatChunk {
    /// The `chat.completion.chunk` JSON, exactly as it goes to an OpenAI-protocol client.
    pub data: String,
    pub usage: Option<TokenUsage>,
    /// Carries usage and no choices: the chunk `include_usage` adds at the end.
    pub usage_only: bool,
}

pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

pub enum ChatResponse {
    Complete(CompleteResponse),
    Stream(ChatStream),
}

/// Which phase of an upstream call ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    FirstByte,
    BetweenChunks,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// No connection could be made (refused, DNS, TLS).
    #[error("could not reach the upstream: {0}")]
    Connect(String),
    #[error("upstream timed out ({0:?})")]
    Timeout(TimeoutPhase),
    /// The upstream answered with an error status. `message` is the upstream's own error message.
    #[error("upstream returned {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The upstream's `type`/`code`, when it gave one.
        code: Option<String>,
        retry_after: Option<String>,
    },
    /// The upstream answered with something that is not the protocol.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The upstream reported an error inside a stream that had begun (`data: {"error": ...}`);
    /// the message is the upstream's own.
    #[error("upstream reported an error mid-stream: {0}")]
    Reported(String),
    /// The connection broke after the answer began.
    #[error("upstream stream interrupted: {0}")]
    Interrupted(String),
}

/// One upstream deployment's client. `model` is the upstream model id, already resolved.
pub trait Provider: Send + Sync {
    fn chat(
        &self,
        model: &str,
        request: ChatCompletionRequest,
    ) -> impl Future<Output = Result<ChatResponse, ProviderError>> + Send;

    fn embeddings(
        &self,
        model: &str,
        request: EmbeddingsRequest,
    ) -> impl Future<Output = Result<CompleteResponse, ProviderError>> + Send;
}
