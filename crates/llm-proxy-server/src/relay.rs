//! Relaying upstream answers to the client: whole JSON bodies, and SSE streams chunk by chunk as
//! they arrive, metering each on the way.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use llm_proxy_core::provider::{ChatChunk, ChatStream, ChunkKind};
use llm_proxy_core::translate::responses::{FailureCode, ResponseMeta, failed_event};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::app::Shared;
use crate::error::ApiError;
use crate::meter::RequestMeter;

/// Most bytes gathered into one write when upstream has several events ready.
const COALESCE_BYTES: usize = 64 * 1024;

/// While gathering does not pay, every this many writes try it again.
const GATHER_PROBE: u32 = 16;

/// The write buffer's first size: about twenty chat chunks.
const OUT_CAPACITY: usize = 4 * 1024;

pub fn json_response(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], Body::from(body)).into_response()
}

/// How the client's protocol ends a stream, and says that it failed.
pub enum StreamEnding {
    /// Chat Completions and (legacy) Completions: `data: [DONE]`; a failure is
    /// `data: {"error": …}`.
    OpenAi,
    /// Messages: its own `message_stop`; a failure is `event: error`.
    Anthropic,
    /// Responses: its own `response.completed`; a failure is `response.failed`.
    Responses(Box<ResponsesEnding>),
}

pub struct ResponsesEnding {
    /// What a `response.failed` says of the response.
    pub meta: Arc<ResponseMeta>,
    pub on_complete: Option<OnComplete>,
}

/// Given the `response.completed` (or `.incomplete`) event's data, once: the answer to keep.
pub type OnComplete = Box<dyn FnOnce(&str) + Send>;

struct Relay {
    upstream: ChatStream,
    /// `None` once the outcome is recorded; dropping it earlier records a client disconnect.
    meter: Option<RequestMeter>,
    client_wants_usage: bool,
    /// How the end and errors are written.
    ending: StreamEnding,
    /// Events sent: a Responses failure is numbered after them.
    sent: u64,
    provider: String,
    /// Completes when the shutdown grace period is over. Registered once per stream rather
    /// than once per chunk.
    cut: Cut,
    /// Ticks every `stream_keep_alive`; a comment goes out if nothing was sent for half of that
    /// (one timer for the stream, not one per chunk).
    keep_alive: tokio::time::Interval,
    last_sent: tokio::time::Instant,
    /// The last step aside brought events (see the gathering below).
    gathering: bool,
    /// Waits that brought an event, this one included: 1 while the first write is gathered.
    writes: u32,
}

type Cut = Pin<Box<WaitForCancellationFutureOwned>>;

/// The next upstream chunk, unless shutdown cuts the wait short.
async fn next_chunk(upstream: &mut ChatStream, cut: &mut Cut, provider: &str) -> Result<Option<ChatChunk>, ApiError> {
    tokio::select! {
        biased;
        () = cut.as_mut() => Err(ApiError::shutting_down()),
        next = upstream.next() => next.transpose().map_err(|e| upstream_failed(provider, &e)),
    }
}

fn upstream_failed(provider: &str, e: &llm_proxy_core::provider::ProviderError) -> ApiError {
    tracing::debug!(%provider, error = %e, "upstream stream failed");
    ApiError::upstream(provider, e)
}

/// Lets the runtime's other ready tasks run before this one goes on. Measured: after one yield
/// the upstream connection's task has not yet run (this task's deferred wake-up comes first),
/// after two it has.
async fn yield_twice() {
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
}

/// Streams the upstream's chunks to the client as they come. The first chunk has already been
/// awaited (see `attempts::prime`), so failures before it got an honest status or another
/// deployment; what fails from here on ends the stream with one error event.
pub async fn sse_response(
    upstream: ChatStream,
    meter: RequestMeter,
    client_wants_usage: bool,
    ending: StreamEnding,
    provider: &str,
    state: &Shared,
) -> Response {
    let cut: Cut = Box::pin(state.cut.clone().cancelled_owned());
    let every = state.stream_keep_alive;
    let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let relay = Relay {
        upstream,
        meter: Some(meter),
        client_wants_usage,
        ending,
        sent: 0,
        provider: provider.to_string(),
        cut,
        keep_alive,
        last_sent: tokio::time::Instant::now(),
        gathering: true,
        writes: 0,
    };
    // Boxed: `unfold` moves its state into each step and back out; a pointer is cheaper to move.
    let body = futures_util::stream::unfold(Box::new(relay), |mut r| async move {
        // Room for a typical gathered write at once: growing by doubling from the first event's
        // size copied the buffer four or five times per write.
        let mut out = BytesMut::with_capacity(OUT_CAPACITY);
        loop {
            // Once the outcome is recorded the last event has been sent: end the stream.
            r.meter.as_ref()?;
            let next = tokio::select! {
                biased;
                next = next_chunk(&mut r.upstream, &mut r.cut, &r.provider) => next,
                _ = r.keep_alive.tick() => {
                    if r.last_sent.elapsed() < r.keep_alive.period() / 2 {
                        continue;
                    }
                    r.last_sent = tokio::time::Instant::now();
                    return Some((Ok::<Bytes, Infallible>(Bytes::from_static(b": keep-alive\n\n")), r));
                }
            };
            // Gather while it pays: stepping aside costs an idle runtime a poll of its I/O driver
            // (a system call) each time, pure cost for a model that writes a token every few tens
            // of milliseconds. After a step aside that brought nothing, only every
            // `GATHER_PROBE`th write tries again.
            r.writes = r.writes.wrapping_add(1);
            let gather = r.writes > 1 && (r.gathering || r.writes % GATHER_PROBE == 0);
            r.relay(next, &mut out);
            // Take whatever else upstream has ready: one write (and one TCP segment) for several
            // events instead of one each. The upstream connection's task hands its body over one
            // frame at a time, so when none is ready this task steps aside, which lets that task
            // decode the next frame it already holds or has just received (and wake this one with
            // it); stepping aside costs far less than a write. One that brings nothing ends the
            // gathering. The first write goes out without waiting, so that the response head and
            // the first events leave in one segment (a wait made the server send the head alone).
            // The shutdown cut is not polled here: it is checked at the next wait, and polling
            // it per event (a lock inside the token) cost more than the event's relay.
            while r.meter.is_some() && out.len() < COALESCE_BYTES {
                let next = if gather {
                    tokio::select! {
                        biased;
                        next = r.upstream.next() => {
                            r.gathering = true;
                            next
                        }
                        () = yield_twice() => {
                            r.gathering = false;
                            break;
                        }
                    }
                } else {
                    match r.upstream.next().now_or_never() {
                        Some(next) => next,
                        None => break,
                    }
                };
                r.relay(next.transpose().map_err(|e| upstream_failed(&r.provider, &e)), &mut out);
            }
            if !out.is_empty() {
                r.last_sent = tokio::time::Instant::now();
                return Some((Ok(out.freeze()), r));
            }
        }
    });
    let mut resp = Body::from_stream(body).into_response();
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers responses unless told not to; a buffered stream is not a stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

impl Relay {
    /// Meters one upstream item and appends what the client should see of it to `out`.
    fn relay(&mut self, next: Result<Option<ChatChunk>, ApiError>, out: &mut BytesMut) {
        let Some(meter) = self.meter.as_mut() else { return };
        match next {
            Ok(Some(chunk)) => {
                if let Some(u) = chunk.usage {
                    meter.usage(u);
                }
                match chunk.kind {
                    ChunkKind::Hidden => return,
                    ChunkKind::UsageOnly if !self.client_wants_usage => return,
                    ChunkKind::Content => {
                        meter.first_token();
                        meter.content_chunk();
                    }
                    ChunkKind::UsageOnly | ChunkKind::Meta => {}
                }
                if let StreamEnding::Responses(r) = &mut self.ending
                    && matches!(chunk.event.as_deref(), Some("response.completed" | "response.incomplete"))
                    && let Some(keep) = r.on_complete.take()
                {
                    keep(&chunk.data);
                }
                self.sent += 1;
                push_event(out, chunk.event.as_deref(), &chunk.data);
            }
            Ok(None) => {
                if let Some(m) = self.meter.take() {
                    m.succeed(200);
                }
                // Anthropic and Responses streams end with their own last event.
                if matches!(self.ending, StreamEnding::OpenAi) {
                    push_event(out, None, "[DONE]");
                }
            }
            Err(err) => {
                // Headers are sent: the failure travels as one last event, in the client's protocol.
                if let Some(m) = self.meter.take() {
                    m.fail(&err);
                }
                match &self.ending {
                    StreamEnding::Anthropic => push_event(out, Some("error"), &err.anthropic_body().to_string()),
                    StreamEnding::OpenAi => push_event(out, None, &err.body().to_string()),
                    StreamEnding::Responses(r) => {
                        let code = FailureCode::for_status(err.status.as_u16());
                        let failed = failed_event(&r.meta, self.sent, code, &err.message);
                        push_event(out, failed.event.as_deref(), &failed.data);
                    }
                }
            }
        }
    }
}

/// Appends one SSE event; each line of `data` gets its own `data:` field.
fn push_event(out: &mut BytesMut, event: Option<&str>, data: &str) {
    // Room for the usual one-line event at once: growing the buffer field by field reallocated
    // it several times per event. Further lines of a multi-line event grow it as needed.
    out.reserve(event.map_or(0, |name| "event: \n".len() + name.len()) + "data: \n\n".len() + data.len());
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\n");
    }
    // memchr: `str::split` walks the payload a character at a time.
    let mut rest = data.as_bytes();
    loop {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\n");
        match next {
            Some(more) => rest = more,
            None => break,
        }
    }
    out.extend_from_slice(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_line_by_line() {
        let mut out = BytesMut::new();
        push_event(&mut out, Some("error"), "{\"a\":1}");
        push_event(&mut out, None, "one\ntwo\n");
        push_event(&mut out, None, "");
        assert_eq!(&out[..], b"event: error\ndata: {\"a\":1}\n\ndata: one\ndata: two\ndata: \n\ndata: \n\n");
    }
}
