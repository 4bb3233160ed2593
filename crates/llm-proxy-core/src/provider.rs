//! The contract between the gateway and an upstream adapter.
//!
//! The adapter receives the client's request in the client's own protocol (`ChatInput`). When
//! that is the adapter's protocol it forwards it with only the model rewritten and answers in
//! kind (`ChatOutput::Complete` / `Stream`, bytes the client can take as they are); otherwise it
//! translates through the unified model (`crate::unified`) and answers with unified values
//! (`ChatOutput::Unified` / `UnifiedStream`) that the server encodes for the client. Errors say who
//! failed and whether trying again (or elsewhere) makes sense, which is what retries and fallbacks
//! need.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use llm_proxy_protocol::anthropic::MessagesRequest;
use std::sync::Arc;

use llm_proxy_protocol::openai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, ResponsesInput, ResponsesRequest,
};
use serde_json::Value;

use crate::unified::{self, StreamEvent, TranslateError, WireProtocol};

/// Token counts of one request. `prompt_tokens` counts all input, cached included; the detail
/// fields are parts of the two totals (see `crate::unified`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic bills them extra).
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
}

impl From<llm_proxy_protocol::openai::Usage> for TokenUsage {
    fn from(u: llm_proxy_protocol::openai::Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .or(u.prompt_cache_hit_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

/// A chat request as the client sent it.
#[derive(Debug, Clone)]
pub enum ChatInput {
    OpenAi(ChatCompletionRequest),
    Anthropic(MessagesRequest),
    /// Boxed: it is several times the size of the others.
    Responses(Box<ResponsesCall>),
    /// OpenAI's legacy Completions API: a prompt to continue.
    Completions(CompletionRequest),
}

/// A Responses API request, with the conversation the gateway kept before it.
#[derive(Debug, Clone)]
pub struct ResponsesCall {
    pub request: ResponsesRequest,
    /// The items of the earlier turns of a conversation the gateway stored
    /// (`previous_response_id`), oldest first; shared by every attempt.
    pub history: Arc<[Value]>,
    /// The provider that holds that conversation itself (it served the last turn as a
    /// passthrough with its own `store`): sent there, `previous_response_id` goes as it is.
    pub held_by: Option<String>,
}

impl ResponsesCall {
    /// A request that continues no stored conversation.
    pub fn new(request: ResponsesRequest) -> Self {
        Self { request, history: Arc::from(Vec::new()), held_by: None }
    }
}

impl ChatInput {
    pub fn is_stream(&self) -> bool {
        match self {
            Self::OpenAi(r) => r.is_stream(),
            Self::Anthropic(r) => r.is_stream(),
            Self::Responses(c) => c.request.is_stream(),
            Self::Completions(r) => r.is_stream(),
        }
    }

    /// The model as the client named it.
    pub fn model(&self) -> &str {
        match self {
            Self::OpenAi(r) => &r.model,
            Self::Anthropic(r) => &r.model,
            Self::Responses(c) => &c.request.model,
            Self::Completions(r) => &r.model,
        }
    }

    /// About how many bytes the conversation takes, the bulk of any request: what decides whether
    /// translating or re-encoding it is heavy work (`crate::cpu_pool`).
    pub fn size_hint(&self) -> usize {
        match self {
            Self::OpenAi(r) => r.messages.raw().get().len(),
            Self::Anthropic(r) => r.messages.raw().get().len(),
            Self::Responses(c) => {
                let input = match &c.request.input {
                    Some(ResponsesInput::Items(items)) => items.text_len(),
                    Some(ResponsesInput::Text(text)) => text.len(),
                    None => 0,
                };
                // The stored history is values, not text: about as big as its items' text.
                input + c.history.len() * 256
            }
            Self::Completions(r) => r.prompt.text_len(),
        }
    }

    /// Translates into the unified model, for an upstream of another protocol. `model` is the
    /// upstream model id.
    pub fn into_unified(self, model: &str) -> Result<unified::ChatRequest, TranslateError> {
        let mut req = match self {
            Self::OpenAi(r) => crate::translate::openai::request_to_unified(r)?,
            Self::Anthropic(r) => crate::translate::anthropic::request_to_unified(r)?,
            Self::Responses(c) => {
                let c = *c;
                crate::translate::responses::request_to_unified(c.request, &c.history)?
            }
            Self::Completions(r) => crate::translate::completions::request_to_unified(r)?,
        };
        req.model = model.to_string();
        Ok(req)
    }
}

/// A complete (non-streamed) upstream answer, as bytes in the client's protocol.
#[derive(Debug)]
pub struct CompleteResponse {
    pub body: Bytes,
    pub usage: Option<TokenUsage>,
    /// The answer's id, read in the same pass as its usage where the gateway keeps answers
    /// (the Responses API); `None` elsewhere.
    pub id: Option<String>,
}

/// What one streamed chunk is, for metering and for what the client asked to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// Carries part of the answer: the first one marks time to first token.
    Content,
    /// Framing the client needs but that is not the answer (`message_start`, `ping`, a stop).
    Meta,
    /// The usage chunk OpenAI adds at the end; dropped unless the client asked for it.
    UsageOnly,
    /// Carries only metering (usage) for the gateway; never sent.
    Hidden,
}

/// One event of a streamed chat completion, in the client's protocol.
#[derive(Debug, Clone)]
pub struct ChatChunk {
    /// The SSE `event:` name (Anthropic names every event; OpenAI none).
    pub event: Option<Cow<'static, str>>,
    /// The event's `data:` payload exactly as it goes to the client.
    pub data: String,
    pub usage: Option<TokenUsage>,
    pub kind: ChunkKind,
}

pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

pub enum ChatOutput {
    /// Same protocol as the client: the body as the client takes it.
    Complete(CompleteResponse),
    /// Same protocol as the client: chunks as the client takes them.
    Stream(ChatStream),
    /// Translated: to be encoded in the client's protocol.
    Unified(unified::ChatResponse),
    UnifiedStream(EventStream),
}

/// What an upstream's error answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The prompt does not fit the model's context window: another model may take it.
    ContextOverflow,
    /// The upstream is rate limiting the gateway: try elsewhere, or later.
    RateLimited,
    /// The upstream is overloaded or down for now (5xx, Anthropic's 529, 408).
    Unavailable,
    /// The gateway's own credentials were refused, whatever status said so.
    Auth,
    /// The request itself was refused; any deployment would refuse it too.
    Rejected,
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
        /// The upstream's `retry-after`, when it sent one in seconds.
        retry_after: Option<std::time::Duration>,
        /// What the failure means, decided by the adapter that read it (it knows its provider's
        /// dialect): the server acts on this, never on the upstream's text.
        failure: Failure,
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
    /// The request cannot be expressed in the upstream's protocol (answered with 400).
    #[error("{0}")]
    Untranslatable(TranslateError),
    /// The upstream's protocol has no such operation (e.g. embeddings on Anthropic).
    #[error("{0}")]
    Unsupported(String),
    /// The attempt failed after the request's body, which cannot be replayed (a streamed upload),
    /// went upstream: no other attempt can be made.
    #[error("{0}")]
    Spent(Box<ProviderError>),
    /// The client's body went past the gateway's limit while it was streamed upstream.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
}

impl From<TranslateError> for ProviderError {
    fn from(e: TranslateError) -> Self {
        Self::Untranslatable(e)
    }
}

/// One upstream deployment's client. `model` is the upstream model id, already resolved.
pub trait Provider: Send + Sync {
    fn protocol(&self) -> WireProtocol;

    fn chat(&self, model: &str, request: ChatInput) -> impl Future<Output = Result<ChatOutput, ProviderError>> + Send;

    /// Input tokens of a request as the upstream counts them, or `None` where the upstream has no
    /// counting endpoint (the gateway then estimates).
    fn count_tokens(
        &self,
        model: &str,
        request: ChatInput,
    ) -> impl Future<Output = Result<Option<u64>, ProviderError>> + Send;

    fn embeddings(
        &self,
        model: &str,
        request: EmbeddingsRequest,
    ) -> impl Future<Output = Result<CompleteResponse, ProviderError>> + Send;

    /// An OpenAI endpoint passed through as it is (images, audio, moderations), with `model`
    /// rewritten; adapters of other protocols answer `ProviderError::Unsupported`.
    fn media(
        &self,
        model: &str,
        request: crate::media::MediaRequest,
    ) -> impl Future<Output = Result<crate::media::MediaAnswer, ProviderError>> + Send;

    /// A call to the provider's Files or Batches API, passed through as it is; adapters of
    /// protocols without them answer `ProviderError::Unsupported`.
    fn pass(
        &self,
        request: crate::upstream_object::PassRequest,
    ) -> impl Future<Output = Result<crate::media::MediaAnswer, ProviderError>> + Send;

    /// A cheap health probe that spends no tokens (the provider's model lookup). `Ok` when the
    /// deployment answers and accepts the gateway's credentials, even if it does not know the
    /// model by that route (some servers have no per-model lookup).
    fn probe(&self, model: &str) -> impl Future<Output = Result<(), ProviderError>> + Send;
}
