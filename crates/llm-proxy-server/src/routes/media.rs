//! `POST /v1/images/generations`, `/v1/images/edits`, `/v1/audio/speech`,
//! `/v1/audio/transcriptions`, `/v1/audio/translations` and `/v1/moderations`: passed through to
//! OpenAI-protocol upstreams with only `model` rewritten, through the same pipeline as every other
//! endpoint (authenticated, routed, limited by request count, logged). A multipart upload is read
//! only as far as its `model` field and streams upstream from there (`crate::upload`); an answer
//! that is not JSON (audio, text, SSE) streams back as it arrives.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use llm_proxy_core::media::{AnswerStream, MediaAnswer, MediaAnswerBody, MediaBody, MediaEndpoint, MediaRequest};
use llm_proxy_core::provider::{Provider, ProviderError};
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::openai::ModelledBody;

use crate::accounting::Demand;
use crate::app::{AppState, RequestId};
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::meter::RequestMeter;
use crate::upload;

pub async fn images_generations(state: State<AppState>, id: Extension<RequestId>, request: Request) -> Response {
    pass(state, id, MediaEndpoint::ImagesGenerations, request).await
}

pub async fn images_edits(state: State<AppState>, id: Extension<RequestId>, request: Request) -> Response {
    pass(state, id, MediaEndpoint::ImagesEdits, request).await
}

pub async fn audio_speech(state: State<AppState>, id: Extension<RequestId>, request: Request) -> Response {
    pass(state, id, MediaEndpoint::AudioSpeech, request).await
}

pub async fn audio_transcriptions(state: State<AppState>, id: Extension<RequestId>, request: Request) -> Response {
    pass(state, id, MediaEndpoint::AudioTranscriptions, request).await
}

pub async fn audio_translations(state: State<AppState>, id: Extension<RequestId>, request: Request) -> Response {
    pass(state, id, MediaEndpoint::AudioTranslations, request).await
}

pub async fn moderations(state: State<AppState>, id: Extension<RequestId>, request: Request) -> Response {
    pass(state, id, MediaEndpoint::Moderations, request).await
}

/// Reads the request as its content type says (a multipart upload up to its model, else JSON),
/// then serves it.
async fn pass(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    endpoint: MediaEndpoint,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let name = endpoint.log_name();
    if upload::is_multipart(&parts.headers) {
        let mut x = match Exchange::authenticate(&state, &id, name, WireProtocol::OpenAi, &parts).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let head = match state.unless_cut(upload::read_head(&parts.headers, body, state.max_body_bytes)).await {
            Ok(h) => h,
            Err(e) => return x.fail(e),
        };
        x.set_model(&head.upload.model, false);
        x.set_body_bytes(head.read);
        let request = MediaRequest { endpoint, body: MediaBody::Multipart(head.upload) };
        return serve(x, request, &parts.headers, Some((head.over_limit, state.max_body_bytes))).await;
    }
    let accepted = Exchange::accept(&state, &id, name, WireProtocol::OpenAi, &parts, body).await;
    let (mut x, mut body): (_, ModelledBody) = match accepted {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if body.model.is_empty() {
        match endpoint.default_model() {
            Some(model) => body.model = model.to_string(),
            None => {
                return x.fail(ApiError::bad_request("`model` is required.").with_param(Some("model".into())));
            }
        }
    }
    // Speech answers in SSE when asked (`stream_format: "sse"`); the other JSON endpoints never stream.
    let stream = body.extra.get("stream_format").and_then(|v| v.as_str()) == Some("sse");
    x.set_model(&body.model, stream);
    serve(x, MediaRequest { endpoint, body: MediaBody::Json(body) }, &parts.headers, None).await
}

/// The pipeline: each admitted deployment's adapter passes the request on; a cut upload (past the
/// body limit on its way upstream) is answered 413, whatever the upstream made of it.
async fn serve(
    x: Exchange<'_>,
    request: MediaRequest,
    headers: &HeaderMap,
    over_limit: Option<(Arc<AtomicBool>, usize)>,
) -> Response {
    Box::pin(x.serve(
        request,
        headers,
        Demand::RequestOnly,
        |c, request| {
            let (provider, model) = (c.client.clone(), c.upstream_model().to_string());
            let over_limit = over_limit.clone();
            async move {
                provider.media(&model, request).await.map_err(|e| match over_limit {
                    Some((over, limit)) if upload::went_over(&over) => ProviderError::BodyTooLarge { limit },
                    _ => e,
                })
            }
        },
        |answer, meter, c| async move { respond(answer, meter, c.provider_name().to_string()) },
    ))
    .await
}

/// The upstream's answer with its status and content type; a streamed one is metered to its end.
pub(crate) fn respond(answer: MediaAnswer, mut meter: RequestMeter, provider: String) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let body = match answer.body {
        MediaAnswerBody::Json { body, usage } => {
            if let Some(u) = usage {
                meter.usage(u);
            }
            meter.succeed(status.as_u16());
            Body::from(body)
        }
        MediaAnswerBody::Stream(stream) => {
            if answer.content_type.as_deref().is_some_and(|t| t.trim_start().starts_with("text/event-stream")) {
                meter.set_streamed();
            }
            Body::from_stream(Metered { stream, meter: Some(meter), status: status.as_u16(), provider })
        }
    };
    let mut resp = (status, body).into_response();
    if let Some(t) = answer.content_type.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert(CONTENT_TYPE, t);
    }
    resp
}

/// A streamed answer that records the request when it ends: served at the end of the upstream's
/// body, failed when it breaks off (the client's body is then cut too), and a client that goes
/// away first is the meter's `Drop`.
struct Metered {
    stream: AnswerStream,
    meter: Option<RequestMeter>,
    status: u16,
    provider: String,
}

impl Stream for Metered {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.stream.as_mut().poll_next(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let (Some(u), Some(meter)) = (chunk.usage, self.meter.as_mut()) {
                    meter.usage(u);
                }
                Poll::Ready(Some(Ok(chunk.bytes)))
            }
            Poll::Ready(None) => {
                if let Some(meter) = self.meter.take() {
                    meter.succeed(self.status);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(meter) = self.meter.take() {
                    meter.fail(&ApiError::upstream(&self.provider, &e));
                }
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
        }
    }
}
