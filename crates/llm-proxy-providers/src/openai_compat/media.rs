//! The OpenAI endpoints passed through as they are (images, audio, moderations): the client's
//! body with `model` rewritten goes upstream, and the answer comes back with its content type — a
//! JSON one read whole for its usage, anything else (audio, text, SSE) passed on as it arrives.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use llm_proxy_core::media::{
    AnswerChunk, AnswerStream, MediaAnswer, MediaAnswerBody, MediaBody, MediaEndpoint, MediaRequest, MultipartUpload,
};
use llm_proxy_core::provider::{ProviderError, TimeoutPhase, TokenUsage};
use llm_proxy_protocol::openai::answer_usage;
use llm_proxy_protocol::sse::SseDecoder;

use super::OpenAiCompat;
use crate::http_client::{BoxError, OutBody};
use crate::upstream::{MAX_RESPONSE_BYTES, read_body, to_body};

/// `…/images/generations` and the others, in `MediaEndpoint::ALL`'s order.
pub(super) type MediaUrls = [http::Uri; MediaEndpoint::ALL.len()];

impl OpenAiCompat {
    pub(super) async fn media_call(&self, model: &str, request: MediaRequest) -> Result<MediaAnswer, ProviderError> {
        let Some(urls) = &self.media_urls else {
            // GLM speaks the chat half of the protocol only.
            return Err(request.endpoint.unsupported("glm"));
        };
        let index = MediaEndpoint::ALL.iter().position(|e| *e == request.endpoint).unwrap_or_default();
        let url = &urls[index];
        let mut headers = self.headers();
        let resp = match request.body {
            MediaBody::Json(mut body) => {
                body.model = model.to_string();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.upstream.post_body(url, headers, Either::Left(Full::new(Bytes::from(to_body(&body)?)))).await?
            }
            MediaBody::Multipart(upload) => {
                let content_type = HeaderValue::from_str(&upload.content_type)
                    .map_err(|_| ProviderError::Protocol("the upload's content type is not a header value".into()))?;
                headers.insert(CONTENT_TYPE, content_type);
                if let Some(length) = upload.upstream_length(model) {
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
                }
                let (body, replayable) = upload_body(&upload, model)?;
                let sent = self.upstream.post_body(url, headers, body).await;
                // A streamed upload is gone once sent: whatever failed, no other attempt can send it.
                sent.map_err(|e| if replayable { e } else { ProviderError::Spent(Box::new(e)) })?
            }
        };
        self.answer(resp).await
    }

    /// A passed-through answer with its status and content type: a JSON one read whole and
    /// scanned for usage, anything else passed on as it arrives.
    pub(super) async fn answer(&self, resp: http::Response<Incoming>) -> Result<MediaAnswer, ProviderError> {
        let status = resp.status().as_u16();
        let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
        let json = content_type.as_deref().is_some_and(|t| t.trim_start().starts_with("application/json"));
        let body = if json {
            let body = read_body(resp, self.upstream.timeouts.between_chunks, MAX_RESPONSE_BYTES).await?;
            let usage = answer_usage(&body).map(token_usage);
            MediaAnswerBody::Json { body, usage }
        } else {
            let sse = content_type.as_deref().is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
            MediaAnswerBody::Stream(answer_stream(resp.into_body(), self.upstream.timeouts.between_chunks, sse))
        };
        Ok(MediaAnswer { status, content_type, body })
    }
}

/// The upload with the upstream model in place of the client's: whole when the client's body was
/// all read (and so can be sent again), else the head followed by the rest as it arrives.
fn upload_body(upload: &MultipartUpload, model: &str) -> Result<(OutBody, bool), ProviderError> {
    let head = [upload.before_model.clone(), Bytes::from(model.to_string()), upload.after_model.clone()];
    match upload.take_rest()? {
        None => Ok((Either::Left(Full::new(Bytes::from(head.concat()))), true)),
        Some(rest) => {
            let frames =
                futures_util::stream::iter(head.map(Ok)).chain(rest.map_err(BoxError::from)).map_ok(Frame::data);
            Ok((Either::Right(StreamBody::new(frames).boxed_unsync()), false))
        }
    }
}

/// An answer's body as it arrives, each read within the between-chunks limit; an SSE one's events
/// are read for the usage they report.
fn answer_stream(body: Incoming, idle: std::time::Duration, sse: bool) -> AnswerStream {
    let events = sse.then(SseDecoder::new);
    Box::pin(futures_util::stream::unfold(Some((body, events)), move |state| async move {
        let (mut body, mut events) = state?;
        loop {
            return match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => Some((Err(ProviderError::Timeout(TimeoutPhase::BetweenChunks)), None)),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(ProviderError::Interrupted(e.to_string())), None)),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(bytes) => {
                        let usage = events.as_mut().and_then(|d| usage_in(d, &bytes));
                        Some((Ok(AnswerChunk { bytes, usage }), Some((body, events))))
                    }
                    // Trailers carry nothing the client needs.
                    Err(_) => continue,
                },
            };
        }
    }))
}

/// The usage reported by an event `bytes` completes, if one does. A line too long to be an
/// event the gateway reads is passed on unread.
fn usage_in(decoder: &mut SseDecoder, bytes: &[u8]) -> Option<TokenUsage> {
    let mut out = Vec::new();
    decoder.feed(bytes, &mut out).ok()?;
    out.iter().rev().find_map(|e| answer_usage(e.data.as_bytes())).map(token_usage)
}

fn token_usage((prompt_tokens, completion_tokens): (u64, u64)) -> TokenUsage {
    TokenUsage { prompt_tokens, completion_tokens, ..TokenUsage::default() }
}
