//! Pure translation between the wire protocols and the unified model (`crate::unified`).
//!
//! One module per protocol, each with both directions: the client side (its request → unified,
//! unified answers → its response body and stream events) and the upstream side (unified → its
//! request body, its response body and stream events → unified). OpenAI's Responses API and its
//! legacy Completions API have the client side only: the upstreams that speak them take them as
//! they came. No I/O and no randomness: the ids a translator makes up come from the caller's
//! `AnswerIds`. Tested on fixtures from the providers' API references.

mod answer_ids;
pub mod anthropic;
pub mod completions;
pub mod gemini;
pub mod openai;
pub mod responses;

pub use answer_ids::AnswerIds;

use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::provider::{ChatChunk, ChatStream, ChunkKind, EventStream, ProviderError};
use crate::unified::{Message, Part, Role, StreamEvent};

/// A request body for an upstream: its small fields as maps, and `messages` written straight from
/// the unified messages when serialised. The conversation is most of a body; as a tree of its own
/// (`json!` values, one map per message) it took several times the body's size.
#[derive(Debug)]
pub struct RequestBody<M> {
    /// The fields before `messages`.
    pub(crate) head: Map<String, Value>,
    pub(crate) messages: M,
    /// The fields after `messages`.
    pub(crate) tail: Map<String, Value>,
}

impl<M: serde::Serialize> serde::Serialize for RequestBody<M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.head.len() + 1 + self.tail.len()))?;
        for (k, v) in &self.head {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("messages", &self.messages)?;
        for (k, v) in &self.tail {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The turns of a conversation for protocols that want user and assistant turns alternating:
/// each a role and the span of messages it merges. Messages with no part that `keeps` (nothing to
/// send) are skipped, whatever their role, and may sit inside a span; so are system messages, which
/// these protocols take in their system prompt (`ChatRequest::system_texts`): a span's reader
/// skips those.
pub(crate) struct TurnSpans<'a> {
    messages: &'a [Message],
    at: usize,
    keeps: fn(&Part) -> bool,
}

impl<'a> TurnSpans<'a> {
    pub(crate) fn new(messages: &'a [Message], keeps: fn(&Part) -> bool) -> Self {
        Self { messages, at: 0, keeps }
    }
}

impl Iterator for TurnSpans<'_> {
    type Item = (Role, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let keeps = self.keeps;
        let kept = |m: &Message| m.role != Role::System && m.content.iter().any(keeps);
        let ms = self.messages;
        while self.at < ms.len() && !kept(&ms[self.at]) {
            self.at += 1;
        }
        let start = self.at;
        let role = ms.get(start)?.role;
        let mut end = start + 1;
        self.at = end;
        while let Some(m) = ms.get(self.at) {
            if kept(m) {
                if m.role != role {
                    break;
                }
                end = self.at + 1;
            }
            self.at += 1;
        }
        Some((role, start..end))
    }
}

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

/// The value of the first `"type"` key in `data`: the event type, which Anthropic and the Responses
/// API write first. Used only for events that come without an SSE name.
pub(crate) fn leading_type(data: &str) -> Option<&str> {
    let rest = &data[data.find("\"type\"")? + "\"type\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    rest.split('"').next()
}

/// Appends `s` as a JSON string literal: the encoders' per-token path, which formats events by hand.
/// Runs that need no escaping (nearly all text) are found eight bytes at a time and copied whole.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok())
            && !needs_escape(u64::from_le_bytes(word))
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        // Every byte escaped is ASCII, so `i` is a char boundary.
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        i += 1;
        plain = i;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether any of the eight bytes in `w` needs escaping in a JSON string: a control character, `"`
/// or `\`. (Each test is exact for the word as a whole, which is all that is asked.)
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
    below_space || has_zero(w ^ (ONES * u64::from(b'"'))) || has_zero(w ^ (ONES * u64::from(b'\\')))
}

/// Appends `n` in decimal: events carry several numbers each, and `write!` goes through the
/// formatting machinery for every one.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// The ids of the tool calls a decoded stream starts, in order: for the tests of each decoder.
#[cfg(test)]
pub(crate) fn tool_call_ids(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Across protocols: what one protocol's upstream streams, the other protocol's client receives.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    /// Cuts `s` at the given byte offsets (those on char boundaries).
    fn fragments(s: &str, cuts: Vec<usize>) -> Vec<String> {
        let mut bounds: Vec<usize> = cuts.into_iter().filter(|c| *c <= s.len() && s.is_char_boundary(*c)).collect();
        bounds.extend([0, s.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        bounds.windows(2).map(|w| s[w[0]..w[1]].to_string()).collect()
    }

    fn run(
        decoder: &mut dyn StreamDecoder,
        events: &[(&str, String)],
        encoder: &mut dyn StreamEncoder,
    ) -> Vec<ChatChunk> {
        let mut out = Vec::new();
        for (name, data) in events {
            let mut unified = Vec::new();
            let name = (!name.is_empty()).then_some(*name);
            decoder.decode(name, data, &mut unified).expect("decodes");
            for e in unified {
                encoder.encode(e, &mut out);
            }
        }
        assert!(decoder.is_finished());
        encoder.finish(&mut out);
        out
    }

    /// Gemini upstream → Anthropic client, no id anywhere: the answer is a function of its input
    /// and its ids, byte for byte, and another answer's calls get other ids.
    #[test]
    fn translated_streams_are_reproducible_from_their_ids() {
        let events = [(
            "",
            json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}, "finishReason": "STOP"}]}).to_string(),
        )];
        let answer = |seed: &str| {
            let ids = AnswerIds::from_seed(seed);
            let out = run(
                &mut gemini::StreamChunkDecoder::new("m", ids),
                &events,
                &mut anthropic::EventEncoder::new("m", ids),
            );
            out.into_iter().map(|c| c.data).collect::<Vec<_>>()
        };
        let tool_id = |data: &[String]| -> String {
            data.iter()
                .map(|d| serde_json::from_str::<Value>(d).expect("json"))
                .find_map(|v| v["content_block"]["id"].as_str().map(str::to_string))
                .expect("a tool_use block")
        };
        let one = answer("answer-1");
        assert_eq!(one, answer("answer-1"));
        let other = answer("answer-2");
        assert_ne!(tool_id(&one), tool_id(&other));
    }

    proptest! {
        /// The encoders' hand-written strings read back as what was written.
        #[test]
        fn hand_escaped_strings_are_json(s in "[ -~\u{0}-\u{1f}\u{7f}\u{e9}\u{2028}\u{1f600}]{0,40}") {
            let mut out = String::from("x");
            push_json_str(&mut out, &s);
            prop_assert_eq!(serde_json::from_str::<String>(&out[1..]).ok(), Some(s));
        }

        /// The word-at-a-time scan finds every byte to escape wherever it falls in a word: the
        /// text is written exactly as one byte at a time writes it.
        #[test]
        fn hand_escaped_strings_match_a_byte_at_a_time(s in "[ -~\u{0}-\u{1f}\u{7f}\u{e9}\u{1f600}]{0,70}") {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            let mut expected = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => expected.push_str("\\\""),
                    '\\' => expected.push_str("\\\\"),
                    '\n' => expected.push_str("\\n"),
                    '\r' => expected.push_str("\\r"),
                    '\t' => expected.push_str("\\t"),
                    c if u32::from(c) < 0x20 => expected.push_str(&format!("\\u{:04x}", u32::from(c))),
                    c => expected.push(c),
                }
            }
            expected.push('"');
            prop_assert_eq!(out, expected);
        }

        /// Anthropic upstream → OpenAI client: `partial_json` fragments become `arguments`
        /// fragments that concatenate to the upstream's text byte for byte.
        #[test]
        fn anthropic_tool_arguments_reach_openai_clients_byte_for_byte(
            args in "[ -~\u{e9}\u{4e2d}\u{1f600}]{0,80}",
            cuts in proptest::collection::vec(0usize..80, 0..10),
        ) {
            let mut events = vec![
                ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}).to_string()),
                ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}).to_string()),
            ];
            for f in fragments(&args, cuts) {
                events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": f}}).to_string()));
            }
            events.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()));
            events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 9}}).to_string()));
            events.push(("message_stop", json!({"type": "message_stop"}).to_string()));
            let out = run(&mut anthropic::EventDecoder::new(), &events, &mut openai::ChunkEncoder::new("m", 1, true, AnswerIds::from_seed("encoder")));
            let mut got = String::new();
            let mut finish = Vec::new();
            for c in &out {
                let v: Value = serde_json::from_str(&c.data).expect("json");
                if let Some(a) = v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str() {
                    got.push_str(a);
                }
                if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
                    finish.push(f.to_string());
                }
            }
            prop_assert_eq!(got, args);
            prop_assert_eq!(finish, vec!["tool_calls".to_string()]);
            prop_assert_eq!(out.last().map(|c| c.kind), Some(ChunkKind::UsageOnly));
        }

        /// OpenAI upstream → Anthropic client: `arguments` fragments become `input_json_delta`s
        /// that concatenate to the upstream's text byte for byte.
        #[test]
        fn openai_tool_arguments_reach_anthropic_clients_byte_for_byte(
            args in "[ -~\u{e9}\u{4e2d}\u{1f600}]{0,80}",
            cuts in proptest::collection::vec(0usize..80, 0..10),
        ) {
            let mut events = vec![
                ("", json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}, "finish_reason": null}]}).to_string()),
            ];
            for f in fragments(&args, cuts) {
                events.push(("", json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": f}}]}, "finish_reason": null}]}).to_string()));
            }
            events.push(("", json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}).to_string()));
            events.push(("", json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}}).to_string()));
            events.push(("", "[DONE]".to_string()));
            let out = run(
                &mut openai::ChunkDecoder::new(AnswerIds::from_seed("decoder")),
                &events,
                &mut anthropic::EventEncoder::new("m", AnswerIds::from_seed("encoder")),
            );
            let mut got = String::new();
            let names: Vec<&str> = out.iter().filter_map(|c| c.event.as_deref()).collect();
            for c in &out {
                let v: Value = serde_json::from_str(&c.data).expect("json");
                if v["delta"]["type"] == "input_json_delta" {
                    got.push_str(v["delta"]["partial_json"].as_str().unwrap_or_default());
                }
                if v["type"] == "message_delta" {
                    prop_assert_eq!(&v["delta"]["stop_reason"], "tool_use");
                    prop_assert_eq!(&v["usage"]["output_tokens"], 7);
                }
            }
            prop_assert_eq!(got, args);
            prop_assert_eq!(names.first().copied(), Some("message_start"));
            prop_assert_eq!(names.last().copied(), Some("message_stop"));
        }
    }
}
