//! Reading an upstream SSE body as a stream: bytes → SSE events → whatever a `SseHandler` makes
//! of them (passthrough chunks or unified events), with the first-byte and between-chunks limits.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use llm_proxy_core::provider::{ProviderError, TimeoutPhase};
use llm_proxy_core::translate::StreamDecoder;
use llm_proxy_core::unified::StreamEvent;
use llm_proxy_protocol::sse::{SseDecoder, SseEvent};

use crate::upstream::source_chain;

/// What one protocol makes of its SSE events.
pub(crate) trait SseHandler: Send + 'static {
    type Item: Send + 'static;

    /// Handles one event, pushing what to yield. `Ok(true)` means the stream is complete
    /// (`[DONE]`, `message_stop`): nothing after it is read.
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Self::Item>) -> Result<bool, ProviderError>;

    /// Whether the upstream said its answer is complete. A body that ends before that was cut.
    fn finished(&self) -> bool;
}

/// Adapts a unified `StreamDecoder` as a handler: the translated path.
pub(crate) struct Translated<D>(pub D);

impl<D: StreamDecoder + 'static> SseHandler for Translated<D> {
    type Item = StreamEvent;

    fn event(&mut self, event: SseEvent, out: &mut VecDeque<StreamEvent>) -> Result<bool, ProviderError> {
        let mut events = Vec::new();
        self.0.decode(event.event.as_deref(), &event.data, &mut events)?;
        out.extend(events);
        Ok(false)
    }

    fn finished(&self) -> bool {
        self.0.is_finished()
    }
}

struct State<H: SseHandler> {
    body: Incoming,
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    pending: VecDeque<SseEvent>,
    items: VecDeque<H::Item>,
    handler: H,
    /// Fires at the read deadline. It is re-armed only when it fires, not on every chunk: a
    /// timer per chunk showed in profiles. On firing it checks when data last came.
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the last bytes arrived; `None` until the first.
    last_data: Option<tokio::time::Instant>,
    idle: Duration,
    /// The body has ended; what is pending is the last of it.
    ended: bool,
    done: bool,
}

/// The first event may take up to `first`; later ones up to `idle` after the previous.
pub(crate) fn sse_stream<H: SseHandler>(
    resp: http::Response<Incoming>,
    first: Duration,
    idle: Duration,
    handler: H,
) -> BoxStream<'static, Result<H::Item, ProviderError>> {
    let state = State {
        body: resp.into_body(),
        decoder: SseDecoder::new(),
        events: Vec::new(),
        pending: VecDeque::new(),
        items: VecDeque::new(),
        handler,
        deadline: Box::pin(tokio::time::sleep(first)),
        last_data: None,
        idle,
        ended: false,
        done: false,
    };
    // Boxed: `unfold` moves its state into each step and back out; a pointer is cheaper to move.
    futures_util::stream::unfold(Box::new(state), |mut st| async move {
        loop {
            if let Some(item) = st.items.pop_front() {
                return Some((Ok(item), st));
            }
            if st.done {
                return None;
            }
            if let Some(event) = st.pending.pop_front() {
                match st.handler.event(event, &mut st.items) {
                    Ok(false) => {}
                    Ok(true) => st.done = true,
                    Err(e) => {
                        st.done = true;
                        st.items.clear();
                        return Some((Err(e), st));
                    }
                }
                continue;
            }
            if st.ended {
                st.done = true;
                if st.handler.finished() {
                    return None;
                }
                let err = ProviderError::Interrupted("the upstream closed the stream before it finished".into());
                return Some((Err(err), st));
            }
            let next = tokio::select! {
                biased;
                next = st.body.frame() => Ok(next),
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
                Ok(Some(Ok(frame))) => {
                    // Trailers carry nothing the gateway reads.
                    let Ok(bytes) = frame.into_data() else { continue };
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
                    return Some((Err(ProviderError::Interrupted(source_chain(&e))), st));
                }
                Ok(None) => {
                    st.decoder.finish(&mut st.events);
                    st.pending.extend(st.events.drain(..));
                    st.ended = true;
                }
            }
        }
    })
    .boxed()
}
