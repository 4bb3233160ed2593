//! The Anthropic Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`).
//!
//! An Anthropic client's request is a same-protocol passthrough (body forwarded with only `model`
//! rewritten, events forwarded as received and scanned for usage); other clients' requests are
//! translated through the unified model (`llm_proxy_core::translate::anthropic`).

use std::borrow::Cow;
use std::collections::VecDeque;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
use llm_proxy_core::provider::{ChatChunk, ChatInput, ChatOutput, CompleteResponse, Provider, ProviderError};
use llm_proxy_core::translate::anthropic::{
    EventDecoder, PassthroughScanner, count_tokens_body, count_tokens_result, request_from_unified,
    response_to_unified, usage_of_message,
};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::anthropic::{ClientHeaders, MessagesRequest};
use llm_proxy_protocol::openai::EmbeddingsRequest;
use llm_proxy_protocol::sse::SseEvent;

use crate::sse_stream::{SseHandler, sse_stream};
use crate::upstream::{
    Upstream, join, join_uri, key_header, on_cpu_pool, scrub_reported, to_body, to_body_sized, translate, with_segment,
};
use crate::{BuildError, HttpClient};

/// The API version every request states; the wire formats here are this version's.
const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    upstream: Upstream,
    messages_url: http::Uri,
    count_url: http::Uri,
    /// `…/v1/models`, for the health probe (a model id is appended per call).
    models_url: url::Url,
    key: Option<HeaderValue>,
}

impl Anthropic {
    pub fn new(config: &ProviderConfig, http: HttpClient, timeouts: UpstreamTimeouts) -> Result<Self, BuildError> {
        let key = key_header(config, str::to_string)?;
        Ok(Self {
            upstream: Upstream::new(config, http, timeouts),
            messages_url: join_uri(&config.base_url, "v1/messages", &config.name)?,
            count_url: join_uri(&config.base_url, "v1/messages/count_tokens", &config.name)?,
            models_url: join(&config.base_url, "v1/models", &config.name)?,
            key,
        })
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(k) = &self.key {
            h.insert(HeaderName::from_static("x-api-key"), k.clone());
        }
        h.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION));
        h
    }

    /// `headers` with an Anthropic client's own version and betas: its body may hold fields that
    /// only those make valid. (Checked on the way in, so they are valid header values.)
    fn client_headers(&self, client: &ClientHeaders) -> HeaderMap {
        let mut h = self.headers();
        let mut set = |name: &'static str, value: &Option<String>| {
            if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        set("anthropic-version", &client.version);
        set("anthropic-beta", &client.beta);
        h
    }

    async fn passthrough(&self, model: &str, mut request: MessagesRequest) -> Result<ChatOutput, ProviderError> {
        request.model = model.to_string();
        let headers = self.client_headers(&request.headers);
        let stream = request.is_stream();
        // The messages go out as the client's text: re-encoding copies it, no more.
        let size = request.messages.raw().get().len();
        let body = on_cpu_pool(size, move || to_body_sized(&request, size)).await?;
        if !stream {
            let body = self.upstream.post_for_body(&self.messages_url, headers, body).await?;
            let usage = usage_of_message(&body)?;
            return Ok(ChatOutput::Complete(CompleteResponse { usage, body, id: None }));
        }
        let resp = self.upstream.post(&self.messages_url, headers, body).await?;
        let handler = Passthrough {
            scanner: PassthroughScanner::default(),
            finished: false,
            secret: self.upstream.secret.clone(),
        };
        let t = &self.upstream.timeouts;
        Ok(ChatOutput::Stream(sse_stream(resp, t.first_byte, t.between_chunks, handler)))
    }
}

impl Provider for Anthropic {
    fn protocol(&self) -> WireProtocol {
        WireProtocol::Anthropic
    }

    async fn chat(&self, model: &str, request: ChatInput) -> Result<ChatOutput, ProviderError> {
        let request = match request {
            ChatInput::Anthropic(r) => return self.passthrough(model, r).await,
            other => other,
        };
        let (stream, body) =
            translate(model, request, |r, size| to_body_sized(&request_from_unified(r)?, size)).await?;
        if !stream {
            let body = self.upstream.post_for_body(&self.messages_url, self.headers(), body).await?;
            return Ok(ChatOutput::Unified(response_to_unified(&body)?));
        }
        let resp = self.upstream.post(&self.messages_url, self.headers(), body).await?;
        Ok(ChatOutput::UnifiedStream(self.upstream.translated_events(resp, EventDecoder::new())))
    }

    async fn count_tokens(&self, model: &str, request: ChatInput) -> Result<Option<u64>, ProviderError> {
        let mut headers = self.headers();
        let body = match request {
            ChatInput::Anthropic(mut r) => {
                headers = self.client_headers(&r.headers);
                // count_tokens takes the request without the generation settings.
                r.model = model.to_string();
                r.max_tokens = None;
                r.stream = None;
                for field in ["temperature", "top_p", "top_k", "stop_sequences", "metadata", "service_tier"] {
                    r.extra.remove(field);
                }
                to_body(&r)?
            }
            other => to_body(&count_tokens_body(&other.into_unified(model)?)?)?,
        };
        let body = self.upstream.post_for_body(&self.count_url, headers, body).await?;
        count_tokens_result(&body).map(Some)
    }

    async fn embeddings(&self, _model: &str, _request: EmbeddingsRequest) -> Result<CompleteResponse, ProviderError> {
        Err(ProviderError::Unsupported("Anthropic offers no embeddings API".into()))
    }

    async fn media(
        &self,
        _model: &str,
        request: llm_proxy_core::media::MediaRequest,
    ) -> Result<llm_proxy_core::media::MediaAnswer, ProviderError> {
        Err(request.endpoint.unsupported("anthropic"))
    }

    async fn pass(
        &self,
        _request: llm_proxy_core::upstream_object::PassRequest,
    ) -> Result<llm_proxy_core::media::MediaAnswer, ProviderError> {
        Err(llm_proxy_core::upstream_object::unsupported("anthropic"))
    }

    async fn probe(&self, model: &str) -> Result<(), ProviderError> {
        self.upstream.probe(with_segment(&self.models_url, model), self.headers()).await
    }
}

/// Same-protocol streaming: events go to the client as received, with their names.
struct Passthrough {
    scanner: PassthroughScanner,
    finished: bool,
    secret: Option<secrecy::SecretString>,
}

impl SseHandler for Passthrough {
    type Item = ChatChunk;

    fn event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<bool, ProviderError> {
        let scan = self.scanner.scan(event.event.as_deref(), &event.data);
        if let Some(message) = scan.error {
            return Err(scrub_reported(ProviderError::Reported(message), self.secret.as_ref()));
        }
        self.finished |= scan.finished;
        let name = event.event.map(|e| match e.as_str() {
            // The common names without an allocation per event.
            "content_block_delta" => Cow::Borrowed("content_block_delta"),
            "content_block_start" => Cow::Borrowed("content_block_start"),
            "content_block_stop" => Cow::Borrowed("content_block_stop"),
            "message_start" => Cow::Borrowed("message_start"),
            "message_delta" => Cow::Borrowed("message_delta"),
            "message_stop" => Cow::Borrowed("message_stop"),
            "ping" => Cow::Borrowed("ping"),
            _ => Cow::Owned(e),
        });
        out.push_back(ChatChunk { event: name, data: event.data, usage: scan.usage, kind: scan.kind });
        Ok(scan.finished)
    }

    fn finished(&self) -> bool {
        self.finished
    }
}
