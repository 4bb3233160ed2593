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

use crate::error::ApiError;
use crate::meter::RequestMeter;

/// Comment lines sent while upstream is quiet, so proxies and clients keep the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
}

/// Waits for the first chunk before answering 200, so an upstream that fails at once still gets
/// an honest status code; then streams the rest as it comes.
pub async fn sse_response(
    mut upstream: ChatStream,
    meter: RequestMeter,
    client_wants_usage: bool,
    provider: &str,
) -> Response {
    let first = match upstream.next().await {
        Some(Ok(chunk)) => chunk,
        other => {
            let e = match other {
                Some(Err(e)) => e,
                _ => ProviderError::Interrupted("the upstream stream was empty".into()),
            };
            let err = ApiError::upstream(provider, &e);
            meter.fail(&err);
            return err.into_response();
        }
    };
    let relay = Relay {
        upstream,
        first: Some(first),
        meter: Some(meter),
        client_wants_usage,
        provider: provider.to_string(),
    };
    let events = futures_util::stream::unfold(relay, |mut r| async move {
        loop {
            let meter = r.meter.as_mut()?;
            let next = match r.first.take() {
                Some(c) => Some(Ok(c)),
                None => r.upstream.next().await,
            };
            match next {
                Some(Ok(chunk)) => {
                    if let Some(u) = chunk.usage {
                        meter.usage(u);
                    }
                    if chunk.usage_only {
                        if !r.client_wants_usage {
                            continue;
                        }
                    } else {
                        meter.first_token();
                    }
                    return Some((
                        Ok::<Event, Infallible>(Event::default().data(chunk.data)),
                        r,
                    ));
                }
                None => {
                    if let Some(m) = r.meter.take() {
                        m.succeed(200);
                    }
                    return Some((Ok(Event::default().data("[DONE]")), r));
                }
                Some(Err(e)) => {
                    tracing::debug!(provider = %r.provider, error = %e, "upstream stream failed");
                    let err = ApiError::upstream(&r.provider, &e);
                    if let Some(m) = r.meter.take() {
                        m.fail(&err);
                    }
                    return Some((Ok(Event::default().data(err.body().to_string())), r));
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}
