//! Upstream adapters, one per wire protocol, over one pooled outbound HTTP client.
//!
//! Adapters implement `llm_proxy_core::provider::Provider`. This crate never sees axum or sqlx:
//! the server hands it a validated `ProviderConfig` and gets back a `ProviderClient`.

mod http_client;
pub mod openai_compat;
mod upstream_error;

pub use http_client::HttpClient;

use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
use llm_proxy_core::known_provider::Protocol;
use llm_proxy_core::provider::{ChatResponse, CompleteResponse, Provider, ProviderError};
use llm_proxy_protocol::openai::{ChatCompletionRequest, EmbeddingsRequest};

pub use openai_compat::OpenAiCompat;

/// One configured provider's client: an enum mirroring the protocols, so dispatch is static.
pub enum ProviderClient {
    OpenAiCompat(OpenAiCompat),
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider {provider}: the {protocol} protocol is not supported by this build")]
    Unsupported { provider: String, protocol: &'static str },
    #[error("provider {provider}: invalid base_url: {reason}")]
    InvalidUrl { provider: String, reason: String },
}

impl ProviderClient {
    pub fn new(config: &ProviderConfig, http: &HttpClient, timeouts: UpstreamTimeouts) -> Result<Self, BuildError> {
        match config.protocol {
            Protocol::Openai => Ok(Self::OpenAiCompat(OpenAiCompat::new(config, http.clone(), timeouts)?)),
            other => Err(BuildError::Unsupported { provider: config.name.clone(), protocol: other.as_str() }),
        }
    }
}

/// Forwards a `Provider` method to whichever adapter this is.
macro_rules! dispatch {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            ProviderClient::OpenAiCompat($p) => $call,
        }
    };
}

impl Provider for ProviderClient {
    async fn chat(&self, model: &str, request: ChatCompletionRequest) -> Result<ChatResponse, ProviderError> {
        dispatch!(self, p => p.chat(model, request).await)
    }

    async fn embeddings(&self, model: &str, request: EmbeddingsRequest) -> Result<CompleteResponse, ProviderError> {
        dispatch!(self, p => p.embeddings(model, request).await)
    }
}
