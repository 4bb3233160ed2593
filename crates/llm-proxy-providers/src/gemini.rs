//! The Gemini API (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:countTokens`, `:batchEmbedContents`). No client speaks it to the gateway, so every request is
//! translated (`llm_proxy_core::translate::gemini`).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
use llm_proxy_core::provider::{ChatInput, ChatOutput, CompleteResponse, Provider, ProviderError};
use llm_proxy_core::translate::AnswerIds;
use llm_proxy_core::translate::gemini::{
    StreamChunkDecoder, count_tokens_body, count_tokens_result, embeddings_request, embeddings_response,
    request_from_unified, response_to_unified,
};
use llm_proxy_core::unified::{TranslateError, WireProtocol};
use llm_proxy_protocol::openai::EmbeddingsRequest;

use crate::upstream::{Upstream, join, key_header, to_body, to_body_sized, to_uri, translate};
use crate::{BuildError, HttpClient};

pub struct Gemini {
    upstream: Upstream,
    /// `…/v1beta/models/`; the model and method are appended per call.
    models_url: url::Url,
    /// `models_url` without its query, as text: a request's URI is this, the model and the method,
    /// made without parsing a URL per request.
    models_prefix: String,
    key: Option<HeaderValue>,
}

impl Gemini {
    pub fn new(config: &ProviderConfig, http: HttpClient, timeouts: UpstreamTimeouts) -> Result<Self, BuildError> {
        let key = key_header(config, str::to_string)?;
        let models_url = join(&config.base_url, "v1beta/models/", &config.name)?;
        let mut prefix = models_url.clone();
        prefix.set_query(None);
        // No user info: it goes in a header (`Upstream::url_auth`).
        let prefix =
            to_uri(&prefix).map_err(|reason| BuildError::InvalidUrl { provider: config.name.clone(), reason })?;
        Ok(Self { upstream: Upstream::new(config, http, timeouts), models_prefix: prefix.to_string(), models_url, key })
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
    /// `method` may carry its own query (`streamGenerateContent?alt=sse`); the base URL's query is
    /// kept after it.
    fn url(&self, model: &str, method: &str) -> Result<http::Uri, ProviderError> {
        // A checked model id is plain characters, so it needs no escaping in a path.
        let model = checked_model(model)?;
        let (method, own) = match method.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (method, None),
        };
        let mut url = format!("{}{model}:{method}", self.models_prefix);
        match (own, self.models_url.query()) {
            (Some(own), Some(base)) => url.extend(["?", own, "&", base]),
            (Some(q), None) | (None, Some(q)) => url.extend(["?", q]),
            (None, None) => {}
        }
        http::Uri::try_from(url).map_err(|e| ProviderError::Protocol(format!("cannot build the Gemini URL: {e}")))
    }

    /// A URL relative to `…/models/` (which may carry its own query), with the base URL's query
    /// kept after it (a relative join drops it).
    fn under_models(&self, relative: &str) -> Result<url::Url, ProviderError> {
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
    fn model_url(&self, model: &str) -> Result<url::Url, ProviderError> {
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
        Ok(CompleteResponse { body: to_body(&out)?.into(), usage: None, id: None })
    }

    async fn media(
        &self,
        _model: &str,
        request: llm_proxy_core::media::MediaRequest,
    ) -> Result<llm_proxy_core::media::MediaAnswer, ProviderError> {
        Err(request.endpoint.unsupported("gemini"))
    }

    async fn pass(
        &self,
        _request: llm_proxy_core::upstream_object::PassRequest,
    ) -> Result<llm_proxy_core::media::MediaAnswer, ProviderError> {
        Err(llm_proxy_core::upstream_object::unsupported("gemini"))
    }

    async fn probe(&self, model: &str) -> Result<(), ProviderError> {
        self.upstream.probe(self.model_url(model)?, self.headers()).await
    }
}

#[cfg(test)]
mod tests {
    use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
    use llm_proxy_core::known_provider::Protocol;

    use super::Gemini;
    use crate::HttpClient;

    fn gemini(base_url: &str) -> Gemini {
        let config = ProviderConfig {
            name: "gemini".into(),
            protocol: Protocol::Gemini,
            base_url: base_url.into(),
            api_key: None,
            models: Vec::new(),
            stream_options: false,
            responses_api: false,
        };
        let timeouts = UpstreamTimeouts::default();
        Gemini::new(&config, HttpClient::new(&timeouts).unwrap(), timeouts).unwrap()
    }

    #[test]
    fn request_uris_keep_the_method_query_then_the_base_query() {
        let g = gemini("https://h/");
        assert_eq!(
            g.url("gemini-2.5-flash", "generateContent").unwrap(),
            "https://h/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            g.url("models/m", "streamGenerateContent?alt=sse").unwrap(),
            "https://h/v1beta/models/m:streamGenerateContent?alt=sse"
        );
        let g = gemini("http://h/p?x=1");
        assert_eq!(g.url("m", "countTokens").unwrap(), "http://h/p/v1beta/models/m:countTokens?x=1");
        assert_eq!(
            g.url("m", "streamGenerateContent?alt=sse").unwrap(),
            "http://h/p/v1beta/models/m:streamGenerateContent?alt=sse&x=1"
        );
        assert_eq!(g.model_url("m").unwrap().as_str(), "http://h/p/v1beta/models/m?x=1");
        assert!(g.url("a/b", "countTokens").is_err());
    }
}
