//! Pure translation between the wire protocols and the unified model (`crate::unified`).
//!
//! One module per protocol, each with both directions: the client side (its request → unified,
//! unified answers → its response body and stream events) and the upstream side (unified → its
//! request body, its response body and stream events → unified). No I/O; tested on fixtures from
//! the providers' API references.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use futures_util::StreamExt;

use crate::provider::{ChatChunk, ChatStream, ChunkKind, EventStream, ProviderError};
use crate::unified::StreamEvent;

/// Upstream side of a translated stream: turns each SSE event of the upstream's protocol into
/// unified events, as they arrive.
pub trait StreamDecoder: Send {
    /// One upstream SSE event (`event:` name if any, `data:` payload). An in-band error event
    /// becomes `Err(ProviderError::Reported(..))`.
    fn decode(&mut self, event: Option<&str>, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;

    /// Whether the upstream has said its answer is complete (`message_stop`, `[DONE]`, a finish
    /// reason). A stream whose body ends before that was cut, not finished.
    fn is_finished(&self) -> bool;
}

/// Client side of a translated stream: turns unified events into the client protocol's chunks.
pub trait StreamEncoder: Send {
    fn encode(&mut self, event: StreamEvent, out: &mut Vec<ChatChunk>);

    /// The upstream finished cleanly: emit whatever closes the stream in this protocol (closing
    /// blocks, the stop reason and usage if not yet sent, `message_stop`). Not called when the
    /// stream fails; the server then sends one error event in the client's protocol.
    fn finish(&mut self, out: &mut Vec<ChatChunk>);
}

/// Encodes a translated upstream stream for the client, one upstream event at a time. Each chunk
/// carries the usage reported so far (the meter keeps the latest); the encoder's closing chunks
/// follow a clean end, and an upstream failure passes through for the server to report in the
/// client's protocol.
pub fn encode_stream(events: EventStream, encoder: Box<dyn StreamEncoder>) -> ChatStream {
    struct State {
        events: EventStream,
        encoder: Box<dyn StreamEncoder>,
        out: std::collections::VecDeque<ChatChunk>,
        buf: Vec<ChatChunk>,
        ended: bool,
    }
    let state = State { events, encoder, out: Default::default(), buf: Vec::new(), ended: false };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.out.pop_front() {
                return Some((Ok(chunk), st));
            }
            if st.ended {
                return None;
            }
            match st.events.next().await {
                Some(Ok(event)) => {
                    let usage = match &event {
                        StreamEvent::Usage(u) => Some(*u),
                        _ => None,
                    };
                    st.encoder.encode(event, &mut st.buf);
                    if let Some(u) = usage {
                        // Usage the encoder holds back (until `finish`) is still metered now, so a
                        // stream cut later is billed for what was reported.
                        match st.buf.last_mut() {
                            Some(last) => last.usage = Some(u),
                            None => st.buf.push(ChatChunk {
                                event: None,
                                data: String::new(),
                                usage: Some(u),
                                kind: ChunkKind::Hidden,
                            }),
                        }
                    }
                    st.out.extend(st.buf.drain(..));
                }
                Some(Err(e)) => {
                    st.ended = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.ended = true;
                    st.encoder.finish(&mut st.buf);
                    st.out.extend(st.buf.drain(..));
                }
            }
        }
    }))
}
