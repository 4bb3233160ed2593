//! The Gemini API (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:countTokens`, `:batchEmbedContents`). No client speaks it to the gateway, so every request is
//! translated (`llm_proxy_core::translate::gemini`).

use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
use llm_proxy_core::provider::{ChatInput, ChatOutput, CompleteResponse, Provider, ProviderError};
use llm_proxy_core::translate::AnswerIds;
use llm_proxy_core::translate::gemini::{
    StreamChunkDecoder, count_tokens_body, count_tokens_result, embeddings_request, embeddings_response,
    request_from_unified, response_to_unified,
};
use llm_proxy_core::unified::{TranslateError, WireProtocol};
use llm_proxy_protocol::openai::EmbeddingsRequest;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::upstream::{Upstream, join, key_header, to_body, to_body_sized, translate};
use crate::{BuildError, HttpClient};

pub struct Gemini {
    upstream: Upstream,
    /// `…/v1beta/models/`; the model and method are appended per call.
    models_url: reqwest::Url,
    key: Option<HeaderValue>,
}

impl Gemini {
    pub fn new(config: &ProviderConfig, http: HttpClient, timeouts: UpstreamTimeouts) -> Result<Self, BuildError> {
        let key = key_header(config, str::to_string)?;
        Ok(Self {
            upstream: Upstream { http, timeouts, secret: config.api_key.clone() },
            models_url: join(&config.base_url, "v1beta/models/", &config.name)?,
            key,
        })
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        // The key goes in a header, never the `?key=` query string, so it cannot end up in a URL
        // that an error message or a log line quotes.
        if let Some(k) = &self.key {
            h.insert(HeaderName::from_static("x-goog-api-key"), k.clone());
        }
        h
    }

    /// `…/models/{model}:{method}`.
    fn url(&self, model: &str, method: &str) -> Result<reqwest::Url, ProviderError> {
        let model = checked_model(model)?;
        // "./" keeps `gemini-2.5-flash:` from parsing as a URL scheme.
        self.under_models(&format!("./{model}:{method}"))
    }

    /// A URL relative to `…/models/` (which may carry its own query), with the base URL's query
    /// kept after it (a relative join drops it).
    fn under_models(&self, relative: &str) -> Result<reqwest::Url, ProviderError> {
        let mut url = self
            .models_url
            .join(relative)
            .map_err(|e| ProviderError::Protocol(format!("cannot build the Gemini URL: {e}")))?;
        if let Some(base) = self.models_url.query() {
            let merged = match url.query() {
                Some(own) => format!("{own}&{base}"),
                None => base.to_string(),
            };
            url.set_query(Some(&merged));
        }
        Ok(url)
    }

    /// `…/models/{model}`: the model resource, the health probe's target.
    fn model_url(&self, model: &str) -> Result<reqwest::Url, ProviderError> {
        let model = checked_model(model)?;
        self.under_models(&format!("./{model}"))
    }
}

/// The model id, checked to be one path segment of plain characters: it comes from the client when
/// the provider has no model list. Gemini's own resource name (`models/gemini-2.5-flash`) is
/// accepted for the same model.
fn checked_model(model: &str) -> Result<&str, ProviderError> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let plain = !model.is_empty()
        && model != "."
        && model != ".."
        && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if plain {
        Ok(model)
    } else {
        Err(ProviderError::Untranslatable(TranslateError::new(
            format!("`{model}` is not a valid Gemini model id (letters, digits, `-`, `.`, `_`)."),
            Some("model".into()),
        )))
    }
}

impl Provider for Gemini {
    fn protocol(&self) -> WireProtocol {
        WireProtocol::Gemini
    }

    async fn chat(&self, model: &str, request: ChatInput) -> Result<ChatOutput, ProviderError> {
        let (stream, body) =
            translate(model, request, |r, size| to_body_sized(&request_from_unified(r)?, size)).await?;
        // The ids this answer needs where Gemini names none: the translators make up none themselves.
        let ids = AnswerIds::random();
        if !stream {
            let url = self.url(model, "generateContent")?;
            let body = self.upstream.post_for_body(&url, self.headers(), body).await?;
            return Ok(ChatOutput::Unified(response_to_unified(&body, model, ids)?));
        }
        let url = self.url(model, "streamGenerateContent?alt=sse")?;
        let resp = self.upstream.post(&url, self.headers(), body).await?;
        Ok(ChatOutput::UnifiedStream(self.upstream.translated_events(resp, StreamChunkDecoder::new(model, ids))))
    }

    async fn count_tokens(&self, model: &str, request: ChatInput) -> Result<Option<u64>, ProviderError> {
        let body = to_body(&count_tokens_body(&request.into_unified(model)?)?)?;
        let body = self.upstream.post_for_body(&self.url(model, "countTokens")?, self.headers(), body).await?;
        count_tokens_result(&body).map(Some)
    }

    async fn embeddings(&self, model: &str, request: EmbeddingsRequest) -> Result<CompleteResponse, ProviderError> {
        let base64 = request.extra.get("encoding_format").and_then(|v| v.as_str()) == Some("base64");
        let body = to_body(&embeddings_request(model, &request)?)?;
        let body = self.upstream.post_for_body(&self.url(model, "batchEmbedContents")?, self.headers(), body).await?;
        let out = embeddings_response(&body, model, base64)?;
        // Gemini reports no token counts for embeddings.
        Ok(CompleteResponse { body: to_body(&out)?.into(), usage: None })
    }

    async fn probe(&self, model: &str) -> Result<(), ProviderError> {
        self.upstream.probe(self.model_url(model)?, self.headers()).await
    }
}
