//! Relaying upstream answers to the client: whole JSON bodies, and SSE streams chunk by chunk as
//! they arrive, metering each on the way.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use llm_proxy_core::provider::{ChatChunk, ChatStream, ProviderError};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::meter::RequestMeter;

/// Comment lines sent while upstream is quiet, so proxies and clients keep the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long the first chunk is awaited before answering 200. Within it, a stream that fails at once
/// still gets an honest status; past it, the client gets headers and keep-alives while a slow
/// (thinking) model works, instead of silence that idle-timeout proxies would cut.
const FIRST_CHUNK_WINDOW: Duration = Duration::from_secs(1);

pub fn json_response(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], Body::from(body)).into_response()
}

struct Relay {
    upstream: ChatStream,
    first: Option<ChatChunk>,
    /// `None` once the outcome is recorded; dropping it earlier records a client disconnect.
    meter: Option<RequestMeter>,
    client_wants_usage: bool,
    provider: String,
    /// The shutdown grace period is over.
    cut: CancellationToken,
}

/// The next upstream chunk, unless shutdown cuts the wait short.
async fn next_chunk(
    upstream: &mut ChatStream,
    cut: &CancellationToken,
    provider: &str,
) -> Result<Option<ChatChunk>, ApiError> {
    tokio::select! {
        biased;
        () = cut.cancelled() => Err(ApiError::shutting_down()),
        next = upstream.next() => next.transpose().map_err(|e| {
            tracing::debug!(%provider, error = %e, "upstream stream failed");
            ApiError::upstream(provider, &e)
        }),
    }
}

/// Waits briefly for the first chunk before answering 200, so an upstream that fails at once still
/// gets an honest status code; then streams the rest as it comes.
pub async fn sse_response(
    mut upstream: ChatStream,
    meter: RequestMeter,
    client_wants_usage: bool,
    provider: &str,
    cut: CancellationToken,
) -> Response {
    let first = tokio::select! {
        first = next_chunk(&mut upstream, &cut, provider) => Some(first),
        () = tokio::time::sleep(FIRST_CHUNK_WINDOW) => None,
    };
    let first = match first {
        None => None,
        Some(Ok(Some(chunk))) => Some(chunk),
        Some(Ok(None)) => {
            let err = ApiError::upstream(provider, &ProviderError::Interrupted("the upstream stream was empty".into()));
            meter.fail(&err);
            return err.into_response();
        }
        Some(Err(err)) => {
            meter.fail(&err);
            return err.into_response();
        }
    };
    let relay = Relay { upstream, first, meter: Some(meter), client_wants_usage, provider: provider.to_string(), cut };
    let events = futures_util::stream::unfold(relay, |mut r| async move {
        loop {
            // Once the outcome is recorded the last event has been sent: end the stream.
            r.meter.as_ref()?;
            let next = match r.first.take() {
                Some(chunk) => Ok(Some(chunk)),
                None => next_chunk(&mut r.upstream, &r.cut, &r.provider).await,
            };
            let meter = r.meter.as_mut()?;
            let event = match next {
                Ok(Some(chunk)) => {
                    if let Some(u) = chunk.usage {
                        meter.usage(u);
                    }
                    if chunk.usage_only && !r.client_wants_usage {
                        continue;
                    }
                    if !chunk.usage_only {
                        meter.first_token();
                    }
                    Event::default().data(chunk.data)
                }
                Ok(None) => {
                    r.meter.take()?.succeed(200);
                    Event::default().data("[DONE]")
                }
                Err(err) => {
                    // Headers are sent: the failure travels as one last event, OpenAI's way.
                    r.meter.take()?.fail(&err);
                    Event::default().data(err.body().to_string())
                }
            };
            return Some((Ok::<Event, Infallible>(event), r));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}
