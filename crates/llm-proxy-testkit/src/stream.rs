//! Streams a [`Script`] through a protocol's [`Encoder`], applying the stream faults the same way
//! on every protocol: `think-` (wait before the first frame), `slow-` (between frames),
//! `cut-after-` and `error-after-` (at a step: each unit of the answer is a step, then each closing
//! frame). Frames are rendered as they are sent, so a huge stream starts at once; the stream
//! counters of [`MockState`] are kept here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::response::Response;

use crate::MockState;
use crate::script::{Script, Unit};

/// One protocol's stream framing.
pub(crate) trait Encoder: Send + 'static {
    /// Frames before the first unit.
    fn open(&mut self, _script: &Script) -> Vec<Bytes> {
        Vec::new()
    }
    /// Frames for unit `i`.
    fn unit(&mut self, script: &Script, i: u64, unit: Unit<'_>) -> Vec<Bytes>;
    /// The in-band error that ends the stream early.
    fn error(&mut self, script: &Script) -> Vec<Bytes>;
    /// Frames after the last unit; sending the last one completes the stream.
    fn close(&mut self, script: &Script) -> Vec<Bytes>;
}

enum Frame {
    Data(Bytes),
    /// The frame that completes the stream.
    Last(Bytes),
    Cut,
}

struct Driver<E> {
    script: Script,
    encoder: E,
    guard: StreamGuard,
    queue: VecDeque<Frame>,
    opened: bool,
    step: u64,
    closing: Option<Vec<Bytes>>,
    finished: bool,
    sent: u64,
}

impl<E: Encoder> Driver<E> {
    fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                return Some(frame);
            }
            if self.finished {
                return None;
            }
            self.advance();
        }
    }

    fn advance(&mut self) {
        if !self.opened {
            self.opened = true;
            self.queue.extend(self.encoder.open(&self.script).into_iter().map(Frame::Data));
            return;
        }
        let i = self.step;
        self.step += 1;
        if self.script.cut_after == Some(i) {
            self.queue.push_back(Frame::Cut);
            self.finished = true;
            return;
        }
        if self.script.error_after == Some(i) {
            self.queue.extend(self.encoder.error(&self.script).into_iter().map(Frame::Data));
            self.finished = true;
            return;
        }
        let units = self.script.units();
        if i < units {
            if let Some(unit) = self.script.unit(i) {
                self.queue.extend(self.encoder.unit(&self.script, i, unit).into_iter().map(Frame::Data));
            }
            return;
        }
        let closing = self.closing.get_or_insert_with(|| self.encoder.close(&self.script));
        let j = (i - units) as usize;
        match closing.get(j) {
            Some(bytes) if j + 1 == closing.len() => {
                self.queue.push_back(Frame::Last(bytes.clone()));
                self.finished = true;
            }
            Some(bytes) => self.queue.push_back(Frame::Data(bytes.clone())),
            None => self.finished = true,
        }
    }
}

/// The streamed answer: `content_type` and the frames of `encoder`.
pub(crate) fn respond<E: Encoder>(
    state: Arc<MockState>,
    script: Script,
    encoder: E,
    content_type: &'static str,
) -> Response {
    state.streams_started.fetch_add(1, Ordering::SeqCst);
    let (think, slow) = (script.think, script.slow);
    let driver = Driver {
        script,
        encoder,
        guard: StreamGuard { state, done: false },
        queue: VecDeque::new(),
        opened: false,
        step: 0,
        closing: None,
        finished: false,
        sent: 0,
    };
    let stream = futures_util::stream::unfold(Some(driver), move |driver| async move {
        let mut driver = driver?;
        let frame = driver.next_frame()?;
        if driver.sent == 0 && !think.is_zero() {
            tokio::time::sleep(think).await;
        }
        if driver.sent > 0 && !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        let bytes = match frame {
            Frame::Cut => return Some((Err(std::io::Error::other("mock cut the stream")), None)),
            Frame::Data(bytes) => bytes,
            Frame::Last(bytes) => {
                driver.guard.done = true;
                bytes
            }
        };
        driver.sent += 1;
        driver.guard.state.events_sent.fetch_add(1, Ordering::SeqCst);
        Some((Ok::<_, std::io::Error>(bytes), Some(driver)))
    });
    Response::builder()
        .header("content-type", content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::from("mock response build failed")))
}

/// Counts the stream as completed or cancelled when its body is dropped.
struct StreamGuard {
    state: Arc<MockState>,
    done: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.done { &self.state.streams_completed } else { &self.state.streams_cancelled };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}
