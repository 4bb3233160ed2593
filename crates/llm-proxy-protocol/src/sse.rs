//! Server-sent events: an incremental decoder for upstream streams.
//!
//! Follows the WHATWG event-stream rules that matter for LLM APIs: `\n`, `\r\n` and `\r` line
//! endings, multi-line `data:` joined with `\n`, comment lines (`:`) ignored, one optional space after
//! the colon stripped, and an event dispatched on a blank line.

use bytes::{Buf, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the stream named one (Anthropic does; OpenAI does not).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental decoder: feed it chunks as they arrive, take events out as they complete.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The previous chunk ended in `\r`; a `\n` starting the next chunk belongs to that line ending.
    pending_cr: bool,
    /// `buf[..scanned]` holds no line ending: a long line arriving in small reads is scanned once.
    scanned: usize,
}

/// Upper bound on one line, so a peer that never sends a newline cannot grow memory without bound.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The stream broke the event-stream format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    LineTooLong,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("event-stream line or event longer than 16 MiB")
    }
}

impl std::error::Error for SseError {}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `chunk` and pushes every event it completes onto `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut chunk = chunk;
        if chunk.is_empty() {
            return Ok(());
        }
        if self.pending_cr {
            self.pending_cr = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        let result = if self.buf.is_empty() {
            // The usual case, a read that holds whole events: its lines are read where they are,
            // and only an unfinished last line is copied.
            let (used, result) = self.lines(chunk, 0, out);
            self.buf.extend_from_slice(&chunk[used..]);
            result
        } else {
            self.buf.extend_from_slice(chunk);
            let mut buf = std::mem::take(&mut self.buf);
            let (used, result) = self.lines(&buf, self.scanned, out);
            buf.advance(used);
            self.buf = buf;
            result
        };
        // What is left holds no line ending: a long line arriving in small reads is scanned once.
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(SseError::LineTooLong);
        }
        result
    }

    /// Reads the complete lines of `bytes`, of which `bytes[..from]` holds no line ending, and
    /// returns how many bytes they took.
    fn lines(&mut self, bytes: &[u8], mut from: usize, out: &mut Vec<SseEvent>) -> (usize, Result<(), SseError>) {
        let mut start = 0;
        // memchr looks at a word (or a vector) at a time, not a byte.
        while let Some(found) = memchr::memchr2(b'\n', b'\r', &bytes[from..]) {
            let end = from + found;
            let line = &bytes[start..end];
            start = end + 1;
            if bytes[end] == b'\r' {
                match bytes.get(start) {
                    Some(b'\n') => start += 1,
                    None => self.pending_cr = true,
                    Some(_) => {}
                }
            }
            from = start;
            self.line(line, out);
            if self.data.len() > MAX_LINE_BYTES {
                // Many `data:` lines without the blank line that ends an event.
                return (start, Err(SseError::LineTooLong));
            }
        }
        (start, Ok(()))
    }

    /// Dispatches a final event that the peer did not terminate with a blank line.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buf.is_empty() {
            self.scanned = 0;
            let line = std::mem::take(&mut self.buf);
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 is checked a word at a time; only invalid input takes the per-character path
        // that replaces what is broken.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // id, retry and unknown fields carry nothing the gateway needs
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent { event: self.event.take(), data: std::mem::take(&mut self.data) });
        }
        self.event = None;
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out).unwrap();
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn decodes_openai_style_stream_split_anywhere() {
        let whole = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        for split in 0..whole.len() {
            let (a, b) = whole.split_at(split);
            let events = decode_all(&[a, b]);
            let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["{\"a\":1}", "{\"b\":2}", "[DONE]"], "split at {split}");
        }
    }

    #[test]
    fn handles_crlf_cr_comments_event_names_and_multiline_data() {
        let events = decode_all(&[b": ping\r\nevent: message_start\r\ndata: x\r", b"\ndata:y\r\rdata: z"]);
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("message_start".into()), data: "x\ny".into() },
                SseEvent { event: None, data: "z".into() },
            ]
        );
    }

    proptest::proptest! {
        /// However the network splits a stream, the events are the same, and no input panics.
        #[test]
        fn any_split_decodes_like_the_whole(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512), cuts in proptest::collection::vec(0usize..512, 0..8)) {
            let whole = decode_all(&[&bytes]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for c in cuts {
                pieces.push(&bytes[start..c]);
                start = c;
            }
            pieces.push(&bytes[start..]);
            proptest::prop_assert_eq!(decode_all(&pieces), whole);
        }
    }

    #[test]
    fn refuses_an_event_without_end() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let line = format!("data: {}\n", "a".repeat(1 << 20));
        let result = (0..20).try_for_each(|_| d.feed(line.as_bytes(), &mut out));
        assert_eq!(result, Err(SseError::LineTooLong));
    }

    #[test]
    fn refuses_a_line_without_end() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let big = vec![b'a'; MAX_LINE_BYTES + 1];
        assert_eq!(d.feed(&big, &mut out), Err(SseError::LineTooLong));
    }
}
