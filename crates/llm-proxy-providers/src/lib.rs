//! Upstream adapters, one per wire protocol, over one pooled outbound HTTP client.
//!
//! Adapters implement `llm_proxy_core::provider::Provider`. This crate never sees axum or sqlx:
//! the server hands it a validated `ProviderConfig` and gets back a `ProviderClient`.

pub mod anthropic;
pub mod gemini;
mod glm_auth;
mod http_client;
pub mod openai_compat;
mod sse_stream;
mod upstream;
mod upstream_error;

pub use http_client::HttpClient;

use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
use llm_proxy_core::known_provider::Protocol;
use llm_proxy_core::media::{MediaAnswer, MediaRequest};
use llm_proxy_core::provider::{ChatInput, ChatOutput, CompleteResponse, Provider, ProviderError};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_core::upstream_object::PassRequest;
use llm_proxy_protocol::openai::EmbeddingsRequest;

pub use anthropic::Anthropic;
pub use gemini::Gemini;
pub use openai_compat::OpenAiCompat;

/// One configured provider's client: an enum mirroring the protocols, so dispatch is static.
#[expect(
    clippy::large_enum_variant,
    reason = "one per provider, made once at start and kept in an `Arc`: never moved on the request path"
)]
pub enum ProviderClient {
    OpenAiCompat(OpenAiCompat),
    Anthropic(Anthropic),
    Gemini(Gemini),
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider {provider}: invalid base_url: {reason}")]
    InvalidUrl { provider: String, reason: String },
    #[error("provider {provider}: invalid api_key: {reason}")]
    InvalidKey { provider: String, reason: String },
}

impl ProviderClient {
    pub fn new(config: &ProviderConfig, http: &HttpClient, timeouts: UpstreamTimeouts) -> Result<Self, BuildError> {
        match config.protocol {
            Protocol::Openai | Protocol::Glm => {
                Ok(Self::OpenAiCompat(OpenAiCompat::new(config, http.clone(), timeouts)?))
            }
            Protocol::Anthropic => Ok(Self::Anthropic(Anthropic::new(config, http.clone(), timeouts)?)),
            Protocol::Gemini => Ok(Self::Gemini(Gemini::new(config, http.clone(), timeouts)?)),
        }
    }
}

/// Forwards a `Provider` method to whichever adapter this is.
macro_rules! dispatch {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            ProviderClient::OpenAiCompat($p) => $call,
            ProviderClient::Anthropic($p) => $call,
            ProviderClient::Gemini($p) => $call,
        }
    };
}

impl Provider for ProviderClient {
    fn protocol(&self) -> WireProtocol {
        dispatch!(self, p => p.protocol())
    }

    async fn chat(&self, model: &str, request: ChatInput) -> Result<ChatOutput, ProviderError> {
        dispatch!(self, p => p.chat(model, request).await)
    }

    async fn count_tokens(&self, model: &str, request: ChatInput) -> Result<Option<u64>, ProviderError> {
        dispatch!(self, p => p.count_tokens(model, request).await)
    }

    async fn embeddings(&self, model: &str, request: EmbeddingsRequest) -> Result<CompleteResponse, ProviderError> {
        dispatch!(self, p => p.embeddings(model, request).await)
    }

    async fn media(&self, model: &str, request: MediaRequest) -> Result<MediaAnswer, ProviderError> {
        dispatch!(self, p => p.media(model, request).await)
    }

    async fn pass(&self, request: PassRequest) -> Result<MediaAnswer, ProviderError> {
        dispatch!(self, p => p.pass(request).await)
    }

    async fn probe(&self, model: &str) -> Result<(), ProviderError> {
        dispatch!(self, p => p.probe(model).await)
    }
}
