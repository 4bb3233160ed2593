//! The OpenAI protocol, spoken by OpenAI, Groq, xAI, DeepSeek, Mistral, OpenRouter, Together,
//! Ollama, vLLM and any server configured with `protocol: openai`.
//!
//! Same-protocol passthrough: the client's body goes upstream with only `model` rewritten, and the
//! answer comes back as the upstream sent it. The wire types are `llm_proxy_protocol::openai`;
//! `convert` holds the pure parts, this file the I/O.

pub mod convert;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use llm_proxy_core::config::{ProviderConfig, UpstreamTimeouts};
use llm_proxy_core::provider::{ChatChunk, ChatResponse, CompleteResponse, Provider, ProviderError, TimeoutPhase};
use llm_proxy_protocol::openai::{ChatCompletionRequest, EmbeddingsRequest};
use llm_proxy_protocol::sse::{SseDecoder, SseEvent};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::upstream_error;
use crate::{BuildError, HttpClient};
use convert::StreamItem;

/// Largest non-streamed answer read into memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub struct OpenAiCompat {
    http: HttpClient,
    /// Parsed once here: parsing (with IDNA) on every request showed in profiles.
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    /// `Bearer <key>`, marked sensitive so it never shows in debug output.
    auth: Option<HeaderValue>,
    /// The key itself, only to scrub it from upstream error messages that quote it.
    key: Option<secrecy::SecretString>,
    /// The upstream accepts `stream_options` (see `ProviderConfig::stream_options`).
    stream_options: bool,
    timeouts: UpstreamTimeouts,
}

impl OpenAiCompat {
    pub fn new(config: &ProviderConfig, http: HttpClient, timeouts: UpstreamTimeouts) -> Result<Self, BuildError> {
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{}/{path}", config.base_url))
                .map_err(|e| BuildError::InvalidUrl { provider: config.name.clone(), reason: e.to_string() })
        };
        let auth = config.api_key.as_ref().and_then(|k| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", k.expose_secret())).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Ok(Self {
            http,
            chat_url: url("chat/completions")?,
            embeddings_url: url("embeddings")?,
            auth,
            key: config.api_key.clone(),
            stream_options: config.stream_options,
            timeouts,
        })
    }

    /// Sends `body` and waits for the response head, mapping every failure to a `ProviderError`.
    async fn send(&self, url: &reqwest::Url, body: &impl Serialize) -> Result<reqwest::Response, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|e| ProviderError::Protocol(e.to_string()))?;
        let mut req = self.http.inner.post(url.clone()).header(CONTENT_TYPE, "application/json").body(body);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let resp = match tokio::time::timeout(self.timeouts.first_byte, req.send()).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutPhase::FirstByte)),
            Ok(Err(e)) => return Err(transport_error(e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(String::from);
        let body = read_body(resp, self.timeouts.between_chunks, 64 * 1024).await.unwrap_or_default();
        Err(upstream_error::from_status(status.as_u16(), &body, retry_after, self.secret()))
    }

    async fn complete(&self, url: &reqwest::Url, body: &impl Serialize) -> Result<CompleteResponse, ProviderError> {
        let resp = self.send(url, body).await?;
        let body = read_body(resp, self.timeouts.between_chunks, MAX_RESPONSE_BYTES).await?;
        let usage = convert::complete_usage(&body)?;
        Ok(CompleteResponse { usage, body })
    }
}

impl OpenAiCompat {
    fn secret(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.expose_secret())
    }
}

impl Provider for OpenAiCompat {
    async fn chat(&self, model: &str, mut request: ChatCompletionRequest) -> Result<ChatResponse, ProviderError> {
        request.model = model.to_string();
        if !request.is_stream() {
            return self.complete(&self.chat_url, &request).await.map(ChatResponse::Complete);
        }
        if self.stream_options {
            // The gateway needs the usage chunk to count tokens; the relay strips it again if
            // the client did not ask for it.
            request.request_stream_usage();
        } else {
            request.stream_options = None;
        }
        let resp = self.send(&self.chat_url, &request).await?;
        let key = self.key.clone();
        let chunks = chunk_stream(resp.bytes_stream().boxed(), self.timeouts.first_byte, self.timeouts.between_chunks)
            .map(move |item| {
                item.map_err(|e| match e {
                    ProviderError::Reported(m) => {
                        ProviderError::Reported(upstream_error::scrub(m, key.as_ref().map(|k| k.expose_secret())))
                    }
                    other => other,
                })
            });
        Ok(ChatResponse::Stream(Box::pin(chunks)))
    }

    async fn embeddings(&self, model: &str, mut request: EmbeddingsRequest) -> Result<CompleteResponse, ProviderError> {
        request.model = model.to_string();
        self.complete(&self.embeddings_url, &request).await
    }
}

/// Reads a whole body, with the between-chunks limit on each read and a cap on the total.
async fn read_body(resp: reqwest::Response, idle: Duration, max: usize) -> Result<Bytes, ProviderError> {
    let mut stream = resp.bytes_stream();
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutPhase::BetweenChunks)),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => {
                return Err(ProviderError::Interrupted(e.without_url().to_string()));
            }
            Ok(Some(Ok(bytes))) => {
                if buf.len() + bytes.len() > max {
                    return Err(ProviderError::Protocol(format!("upstream answer larger than {max} bytes")));
                }
                buf.extend_from_slice(&bytes);
            }
        }
    }
}

fn transport_error(e: reqwest::Error) -> ProviderError {
    let e = e.without_url();
    if e.is_timeout() {
        ProviderError::Timeout(if e.is_connect() { TimeoutPhase::Connect } else { TimeoutPhase::FirstByte })
    } else if e.is_connect() {
        ProviderError::Connect(source_chain(&e))
    } else {
        ProviderError::Interrupted(source_chain(&e))
    }
}

/// reqwest's top-level message is generic ("error sending request"); the cause says what happened.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

struct StreamState {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    pending: VecDeque<SseEvent>,
    /// Fires at the read deadline. It is re-armed only when it fires, not on every chunk: a
    /// timer per chunk showed in profiles. On firing it checks when data last came.
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the last bytes arrived; `None` until the first.
    last_data: Option<tokio::time::Instant>,
    idle: Duration,
    finished: bool,
    done: bool,
}

/// Upstream bytes → SSE events → chunks, ending at `[DONE]`. A body that ends before `[DONE]` and
/// before any choice finished is an interrupted stream, not a short answer.
/// The first event may take up to `first`; later ones up to `idle` after the previous.
fn chunk_stream(
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    first: Duration,
    idle: Duration,
) -> llm_proxy_core::provider::ChatStream {
    let state = StreamState {
        body,
        decoder: SseDecoder::new(),
        events: Vec::new(),
        pending: VecDeque::new(),
        deadline: Box::pin(tokio::time::sleep(first)),
        last_data: None,
        idle,
        finished: false,
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(event) = st.pending.pop_front() {
                match convert::stream_item(event.data) {
                    Ok(StreamItem::Done) => return None,
                    Ok(StreamItem::Chunk { chunk, finished }) => {
                        st.finished |= finished;
                        return Some((Ok::<ChatChunk, ProviderError>(chunk), st));
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
            let next = tokio::select! {
                biased;
                next = st.body.next() => Ok(next),
                () = st.deadline.as_mut() => Err(()),
            };
            match next {
                Err(()) => {
                    let now = tokio::time::Instant::now();
                    match st.last_data.map(|t| t + st.idle).filter(|d| *d > now) {
                        Some(later) => st.deadline.as_mut().reset(later),
                        None => {
                            st.done = true;
                            let phase = if st.last_data.is_some() {
                                TimeoutPhase::BetweenChunks
                            } else {
                                TimeoutPhase::FirstByte
                            };
                            return Some((Err(ProviderError::Timeout(phase)), st));
                        }
                    }
                }
                Ok(Some(Ok(bytes))) => {
                    let now = tokio::time::Instant::now();
                    if st.last_data.is_none() {
                        // From here on the limit is the silence between chunks.
                        st.deadline.as_mut().reset(now + st.idle);
                    }
                    st.last_data = Some(now);
                    if let Err(e) = st.decoder.feed(&bytes, &mut st.events) {
                        st.done = true;
                        return Some((Err(ProviderError::Protocol(e.to_string())), st));
                    }
                    st.pending.extend(st.events.drain(..));
                }
                Ok(Some(Err(e))) => {
                    st.done = true;
                    return Some((Err(ProviderError::Interrupted(source_chain(&e.without_url()))), st));
                }
                Ok(None) => {
                    st.decoder.finish(&mut st.events);
                    if st.events.is_empty() {
                        st.done = true;
                        if st.finished {
                            return None;
                        }
                        let err =
                            ProviderError::Interrupted("the upstream closed the stream before it finished".into());
                        return Some((Err(err), st));
                    }
                    st.pending.extend(st.events.drain(..));
                }
            }
        }
    })
    .boxed()
}
