//! The OpenAI protocol, spoken by OpenAI, Groq, xAI, DeepSeek, Mistral, OpenRouter, Together,
//! Ollama, vLLM, ZhipuAI GLM (with its own token auth) and any server configured with
//! `protocol: openai`.
//!
//! An OpenAI client's request is a same-protocol passthrough: its body goes upstream with only
//! `model` rewritten, and the answer comes back as the upstream sent it; so is a Completions
//! client's (`completions`, except to GLM) and, where the server serves it, a Responses client's
//! (`responses`); so are the images, audio and moderations endpoints (`media`). Requests from clients of other protocols are translated through the unified model
//! (`llm_proxy_core::translate::openai`). `convert` holds the passthrough scanning, this file the
//! I/O.

mod completions;
pub mod convert;
mod files;
mod media;
mod responses;

use std::collections::VecDeque;

use http::header::{AUTHORIZATION, HeaderMap};
use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
use llm_proxy_core::known_provider::Protocol;
use llm_proxy_core::media::{MediaAnswer, MediaEndpoint, MediaRequest};
use llm_proxy_core::provider::{
    ChatChunk, ChatInput, ChatOutput, ChunkKind, CompleteResponse, Provider, ProviderError,
};
use llm_proxy_core::translate::AnswerIds;
use llm_proxy_core::translate::openai::{ChunkDecoder, Dialect, request_from_unified, response_to_unified};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_core::upstream_object::PassRequest;
use llm_proxy_protocol::openai::{ChatCompletionRequest, EmbeddingsRequest};
use llm_proxy_protocol::sse::SseEvent;
use secrecy::ExposeSecret;

use crate::glm_auth::GlmToken;
use crate::sse_stream::{SseHandler, sse_stream};
use crate::upstream::{
    Upstream, join, join_uri, key_header, on_cpu_pool, scrub_reported, to_body, to_body_sized, translate, with_segment,
};
use crate::{BuildError, HttpClient};
use convert::StreamItem;

pub struct OpenAiCompat {
    /// The provider's name, as `ResponsesCall::held_by` names the provider holding a conversation.
    name: String,
    upstream: Upstream,
    /// Parsed once here: parsing (with IDNA) on every request showed in profiles.
    chat_url: http::Uri,
    embeddings_url: http::Uri,
    /// `…/completions`, for the legacy Completions API: every server of the OpenAI protocol is
    /// taken to serve it (GLM, whose own protocol has none, is not).
    completions_url: Option<http::Uri>,
    /// `…/responses`, for upstreams that serve the Responses API (`responses_api`).
    responses_url: Option<http::Uri>,
    /// The passed-through endpoints' URLs (images, audio, moderations); GLM serves none.
    media_urls: Option<media::MediaUrls>,
    /// The base URL the Files and Batches APIs' paths go under; GLM serves neither.
    files_base: Option<url::Url>,
    /// `…/models`, for the health probe.
    models_url: url::Url,
    auth: Auth,
    dialect: Dialect,
}

/// How requests prove who the gateway is.
enum Auth {
    None,
    /// `Bearer <key>`, marked sensitive so it never shows in debug output.
    Bearer(http::header::HeaderValue),
    /// ZhipuAI: a short-lived JWT signed with the key's secret half.
    Glm(GlmToken),
}

impl OpenAiCompat {
    pub fn new(config: &ProviderConfig, http: HttpClient, timeouts: UpstreamTimeouts) -> Result<Self, BuildError> {
        let key = config.api_key.as_ref().map(|k| k.expose_secret());
        let auth = match (config.protocol, key) {
            (_, None) => Auth::None,
            (Protocol::Glm, Some(k)) => Auth::Glm(GlmToken::new(k).ok_or_else(|| BuildError::InvalidKey {
                provider: config.name.clone(),
                reason: "a ZhipuAI GLM key has the form `id.secret`".into(),
            })?),
            (_, Some(_)) => match key_header(config, |k| format!("Bearer {k}"))? {
                Some(v) => Auth::Bearer(v),
                None => Auth::None,
            },
        };
        let dialect = match config.name.as_str() {
            "openai" => Dialect::OPENAI,
            "deepseek" => Dialect { stream_options: config.stream_options, ..Dialect::DEEPSEEK },
            _ => Dialect { stream_options: config.stream_options, ..Dialect::COMPATIBLE },
        };
        let responses_url =
            if config.responses_api { Some(join_uri(&config.base_url, "responses", &config.name)?) } else { None };
        let completions_url = match config.protocol {
            Protocol::Glm => None,
            _ => Some(join_uri(&config.base_url, "completions", &config.name)?),
        };
        let media_urls = match config.protocol {
            Protocol::Glm => None,
            _ => {
                let urls = MediaEndpoint::ALL.map(|e| join_uri(&config.base_url, e.path(), &config.name));
                let [a, b, c, d, e, f] = urls;
                Some([a?, b?, c?, d?, e?, f?])
            }
        };
        let files_base = match config.protocol {
            Protocol::Glm => None,
            _ => Some(join(&config.base_url, "", &config.name)?),
        };
        Ok(Self {
            name: config.name.clone(),
            media_urls,
            files_base,
            upstream: Upstream::new(config, http, timeouts),
            chat_url: join_uri(&config.base_url, "chat/completions", &config.name)?,
            embeddings_url: join_uri(&config.base_url, "embeddings", &config.name)?,
            completions_url,
            responses_url,
            models_url: join(&config.base_url, "models", &config.name)?,
            auth,
            dialect,
        })
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(v) => {
                h.insert(AUTHORIZATION, v.clone());
            }
            Auth::Glm(t) => {
                h.insert(AUTHORIZATION, t.header());
            }
        }
        h
    }

    async fn passthrough(&self, model: &str, mut request: ChatCompletionRequest) -> Result<ChatOutput, ProviderError> {
        request.model = model.to_string();
        let stream = request.is_stream();
        if stream {
            if self.dialect.stream_options {
                // The gateway needs the usage chunk to count tokens; the relay strips it again if
                // the client did not ask for it.
                request.request_stream_usage();
            } else {
                request.stream_options = None;
            }
        }
        // The messages go out as the client's text: re-encoding copies it, no more.
        let size = request.messages.raw().get().len();
        let body = on_cpu_pool(size, move || to_body_sized(&request, size)).await?;
        self.forward(&self.chat_url, body, stream).await
    }

    /// Sends a same-protocol `body` to `url`; the answer goes to the client as it came, scanned for
    /// the usage and the end (a chat answer and a completion are scanned alike: `convert`).
    async fn forward(&self, url: &http::Uri, body: Vec<u8>, stream: bool) -> Result<ChatOutput, ProviderError> {
        if !stream {
            let body = self.upstream.post_for_body(url, self.headers(), body).await?;
            let usage = convert::complete_usage(&body)?;
            return Ok(ChatOutput::Complete(CompleteResponse { usage, body, id: None }));
        }
        let resp = self.upstream.post(url, self.headers(), body).await?;
        let handler = Passthrough {
            finished: false,
            secret: self.upstream.secret.clone(),
            synthesize_usage: !self.dialect.stream_options,
        };
        let t = &self.upstream.timeouts;
        Ok(ChatOutput::Stream(sse_stream(resp, t.first_byte, t.between_chunks, handler)))
    }
}

impl Provider for OpenAiCompat {
    fn protocol(&self) -> WireProtocol {
        WireProtocol::OpenAi
    }

    async fn chat(&self, model: &str, request: ChatInput) -> Result<ChatOutput, ProviderError> {
        let request = match request {
            ChatInput::OpenAi(r) => return self.passthrough(model, r).await,
            ChatInput::Responses(c) if self.responses_url.is_some() => return self.responses(model, *c).await,
            ChatInput::Completions(r) if self.completions_url.is_some() => return self.completions(model, r).await,
            other => other,
        };
        let dialect = self.dialect;
        let (stream, body) =
            translate(model, request, move |r, size| to_body_sized(&request_from_unified(r, dialect)?, size)).await?;
        // Ids for the tool calls the upstream leaves unnamed: the translators make up none themselves.
        let ids = AnswerIds::random();
        if !stream {
            let body = self.upstream.post_for_body(&self.chat_url, self.headers(), body).await?;
            return Ok(ChatOutput::Unified(response_to_unified(&body, ids)?));
        }
        let resp = self.upstream.post(&self.chat_url, self.headers(), body).await?;
        Ok(ChatOutput::UnifiedStream(self.upstream.translated_events(resp, ChunkDecoder::new(ids))))
    }

    async fn count_tokens(&self, _model: &str, _request: ChatInput) -> Result<Option<u64>, ProviderError> {
        // The OpenAI protocol has no counting endpoint; the gateway estimates.
        Ok(None)
    }

    async fn embeddings(&self, model: &str, mut request: EmbeddingsRequest) -> Result<CompleteResponse, ProviderError> {
        request.model = model.to_string();
        let body = self.upstream.post_for_body(&self.embeddings_url, self.headers(), to_body(&request)?).await?;
        let usage = convert::complete_usage(&body)?;
        Ok(CompleteResponse { usage, body, id: None })
    }

    async fn media(&self, model: &str, request: MediaRequest) -> Result<MediaAnswer, ProviderError> {
        self.media_call(model, request).await
    }

    async fn pass(&self, request: PassRequest) -> Result<MediaAnswer, ProviderError> {
        self.pass_call(request).await
    }

    async fn probe(&self, model: &str) -> Result<(), ProviderError> {
        self.upstream.probe(with_segment(&self.models_url, model), self.headers()).await
    }
}

/// Same-protocol streaming: chunks are forwarded as received, scanned only for what the gateway
/// needs. Ends at `[DONE]`; a body that ends before `[DONE]` and before any choice finished is an
/// interrupted stream, not a short answer.
struct Passthrough {
    finished: bool,
    secret: Option<secrecy::SecretString>,
    /// The upstream was not asked for the usage chunk (it takes no `stream_options`) and puts usage
    /// in a content chunk instead: a usage-only chunk is made from that one, so a client that set
    /// `include_usage` gets the chunk OpenAI's contract promises.
    synthesize_usage: bool,
}

impl SseHandler for Passthrough {
    type Item = ChatChunk;

    fn event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<bool, ProviderError> {
        match convert::stream_item(event.data).map_err(|e| scrub_reported(e, self.secret.as_ref()))? {
            StreamItem::Done => Ok(true),
            StreamItem::Chunk { chunk, finished } => {
                self.finished |= finished;
                let copy = (self.synthesize_usage && chunk.usage.is_some() && chunk.kind == ChunkKind::Content)
                    .then(|| convert::usage_only_copy(&chunk.data))
                    .flatten();
                out.push_back(chunk);
                if let Some(data) = copy {
                    self.synthesize_usage = false;
                    // Usage is already metered from the chunk it came in.
                    out.push_back(ChatChunk { event: None, data, usage: None, kind: ChunkKind::UsageOnly });
                }
                Ok(false)
            }
        }
    }

    fn finished(&self) -> bool {
        self.finished
    }
}
