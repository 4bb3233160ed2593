//! Unified stream events → the Responses API's events, for a Responses client of any upstream.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use super::meta::{Outcome, ResponseMeta};
use super::response::outcome;
use crate::provider::{ChatChunk, ChunkKind, TokenUsage};
use crate::time::UnixMillis;
use crate::translate::{AnswerIds, StreamEncoder, push_json_str, push_u64};
use crate::unified::{StopReason, StreamEvent};

/// Encodes a unified event stream as OpenAI streams a response: `response.created` and
/// `response.in_progress`; then each output item, opened by `response.output_item.added`, filled
/// by deltas, and closed by its `.done` events and `response.output_item.done` before the next
/// opens (a message, a reasoning summary, a function call); then `response.completed` (or
/// `response.incomplete`) with the whole response and its usage. Every event has its
/// `sequence_number`, counting from 0.
///
/// Deltas go out as they come, each written by hand around a head formatted once per item: this
/// runs for every token. The text of the open item is kept as the deltas wrote it, escaped, as the
/// `.done` events and the final response repeat it; a closed item is written once, for its
/// `response.output_item.done` and the final response.
pub struct ResponsesEncoder {
    /// Shared with the stream's ending, which writes `response.failed` from it.
    meta: Arc<ResponseMeta>,
    /// Names the output items.
    ids: AnswerIds,
    /// When the response completed, read at the end.
    clock: fn() -> UnixMillis,
    sequence_number: u64,
    started: bool,
    finished: bool,
    /// The items closed so far, as the final response lists them.
    output: Vec<ClosedItem>,
    open: Option<OpenItem>,
    /// Each tool call's unified index and output index: arguments may come after their item closed.
    calls: Vec<(usize, usize)>,
    stop: Option<StopReason>,
    usage: Option<TokenUsage>,
    /// Given the final response, once: the answer to keep.
    keep: Option<KeepAnswer>,
}

/// Called with the id and text of the final response (completed or incomplete), as it goes out:
/// the answer kept is the text the client receives, without reading the event back.
pub type KeepAnswer = Box<dyn FnOnce(&str, &str) + Send>;

struct OpenItem {
    kind: Kind,
    output_index: usize,
    id: String,
    /// The text, summary or arguments so far, escaped as inside a JSON string: escaping goes
    /// character by character, so the deltas' escaped fragments joined are the whole text's.
    escaped: String,
    /// A delta event up to its `delta` value.
    delta_head: String,
}

/// An output item once closed: its JSON text, for `response.output_item.done` and again for the
/// final response (a call's arguments may still grow in between, see `late_arguments`).
struct ClosedItem {
    kind: Kind,
    id: String,
    status: &'static str,
    /// As in [`OpenItem::escaped`].
    escaped: String,
    json: String,
}

impl ClosedItem {
    fn new(kind: Kind, id: String, status: &'static str, escaped: String) -> Self {
        let json = item_json(&kind, &id, status, &escaped);
        Self { kind, id, status, escaped, json }
    }
}

/// An output item's JSON text, fields in the order OpenAI writes them (`response::*_item`): as
/// open (`status` `in_progress`, no text yet) or closed. `text` is escaped (see
/// [`OpenItem::escaped`]).
fn item_json(kind: &Kind, id: &str, status: &str, text: &str) -> String {
    let mut o = Obj::new(96 + text.len());
    o.str("id", id);
    match kind {
        Kind::Message => {
            o.str("type", "message").str("status", status).str("role", "assistant");
            if status == "in_progress" {
                o.raw("content", "[]");
            } else {
                o.raw("content", &format!("[{}]", output_text_json(text)));
            }
        }
        Kind::Reasoning if status == "in_progress" => {
            o.str("type", "reasoning").raw("summary", "[]");
        }
        Kind::Reasoning => {
            o.str("type", "reasoning").raw("summary", &format!("[{}]", summary_text_json(text)));
        }
        Kind::Call { call_id, name, .. } => {
            o.str("type", "function_call").str("status", status).escaped("arguments", text);
            o.str("call_id", call_id).str("name", name);
        }
    }
    o.end()
}

/// An `output_text` content part; `text` is escaped.
fn output_text_json(text: &str) -> String {
    let mut o = Obj::new(64 + text.len());
    o.str("type", "output_text").escaped("text", text).raw("annotations", "[]").raw("logprobs", "[]");
    o.end()
}

/// A `summary_text` part of a reasoning item; `text` is escaped.
fn summary_text_json(text: &str) -> String {
    let mut o = Obj::new(48 + text.len());
    o.str("type", "summary_text").escaped("text", text);
    o.end()
}

/// A JSON object written field by field: the framing events of a stream, written as text like
/// the deltas (built as trees, they cost more than the rest of a translated stream).
struct Obj(String);

impl Obj {
    fn new(capacity: usize) -> Self {
        let mut s = String::with_capacity(capacity);
        s.push('{');
        Self(s)
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(key);
        self.0.push_str("\":");
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_json_str(&mut self.0, value);
        self
    }

    fn num(&mut self, key: &str, value: usize) -> &mut Self {
        self.key(key);
        push_u64(&mut self.0, value as u64);
        self
    }

    /// `value` is a string's text escaped already (see [`OpenItem::escaped`]).
    fn escaped(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.0.push('"');
        self.0.push_str(value);
        self.0.push('"');
        self
    }

    /// `value` is JSON text already.
    fn raw(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.0.push_str(value);
        self
    }

    fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Message,
    Reasoning,
    /// A function call, by its unified index.
    Call {
        index: usize,
        call_id: String,
        name: String,
    },
}

impl ResponsesEncoder {
    /// `meta` is the request's (its id names the response); `ids` names the output items; `clock`
    /// tells when the response completed (`UnixMillis::now`, or a fixed time in tests).
    pub fn new(meta: impl Into<Arc<ResponseMeta>>, ids: AnswerIds, clock: fn() -> UnixMillis) -> Self {
        Self {
            meta: meta.into(),
            ids,
            clock,
            sequence_number: 0,
            started: false,
            finished: false,
            output: Vec::new(),
            open: None,
            calls: Vec::new(),
            stop: None,
            usage: None,
            keep: None,
        }
    }

    /// Keeps the final response with `keep`.
    pub fn keeping(mut self, keep: KeepAnswer) -> Self {
        self.keep = Some(keep);
        self
    }

    fn next_sequence_number(&mut self) -> u64 {
        let n = self.sequence_number;
        self.sequence_number += 1;
        n
    }

    /// One framing event: `body` holds its fields after `type`; the sequence number goes last.
    fn frame(&mut self, name: &'static str, fields: impl FnOnce(&mut Obj), out: &mut Vec<ChatChunk>) {
        let mut body = Obj::new(256);
        body.str("type", name);
        fields(&mut body);
        let n = self.next_sequence_number();
        body.key("sequence_number");
        push_u64(&mut body.0, n);
        out.push(ChatChunk { event: Some(Cow::Borrowed(name)), data: body.end(), usage: None, kind: ChunkKind::Meta });
    }

    fn ensure_started(&mut self, out: &mut Vec<ChatChunk>) {
        if self.started {
            return;
        }
        self.started = true;
        let n = self.next_sequence_number();
        let (created, object) = response_event("response.created", n, self.meta.object_len("[]"), |o| {
            self.meta.write_object(o, Outcome::InProgress, "[]", None);
        });
        let n = self.next_sequence_number();
        let in_progress = response_event("response.in_progress", n, object.len(), |o| {
            o.push_str(&created.data[object]);
        });
        out.extend([created, in_progress.0]);
    }

    /// Closes the open item unless it is of `kind`, and opens one of `kind` if none is open.
    fn item_of(&mut self, kind: Kind, out: &mut Vec<ChatChunk>) {
        self.ensure_started(out);
        if self.open.as_ref().is_some_and(|o| o.kind == kind) {
            return;
        }
        self.close("completed", out);
        let output_index = self.output.len();
        let (prefix, delta_type) = match kind {
            Kind::Message => ("msg", "response.output_text.delta"),
            Kind::Reasoning => ("rs", "response.reasoning_summary_text.delta"),
            Kind::Call { .. } => ("fc", "response.function_call_arguments.delta"),
        };
        let id = self.ids.item_id(prefix, output_index);
        let item = item_json(&kind, &id, "in_progress", "");
        self.frame(
            "response.output_item.added",
            |o| {
                o.num("output_index", output_index).raw("item", &item);
            },
            out,
        );
        match &kind {
            Kind::Message => self.frame(
                "response.content_part.added",
                |o| {
                    o.str("item_id", &id).num("output_index", output_index).num("content_index", 0);
                    o.raw("part", &output_text_json(""));
                },
                out,
            ),
            Kind::Reasoning => self.frame(
                "response.reasoning_summary_part.added",
                |o| {
                    o.str("item_id", &id).num("output_index", output_index).num("summary_index", 0);
                    o.raw("part", r#"{"type":"summary_text","text":""}"#);
                },
                out,
            ),
            Kind::Call { index, .. } => self.calls.push((*index, output_index)),
        }
        let mut delta_head = format!("{{\"type\":\"{delta_type}\",\"item_id\":");
        push_json_str(&mut delta_head, &id);
        delta_head.push_str(",\"output_index\":");
        push_u64(&mut delta_head, output_index as u64);
        delta_head.push(',');
        delta_head.push_str(match kind {
            Kind::Message => "\"content_index\":0,\"delta\":",
            Kind::Reasoning => "\"summary_index\":0,\"delta\":",
            Kind::Call { .. } => "\"delta\":",
        });
        self.open = Some(OpenItem { kind, output_index, id, escaped: String::new(), delta_head });
    }

    /// A delta of the open item.
    fn delta(&mut self, fragment: &str, out: &mut Vec<ChatChunk>) {
        let Some(open) = self.open.as_mut() else { return };
        let sequence_number = self.sequence_number;
        self.sequence_number += 1;
        let mut data = String::with_capacity(open.delta_head.len() + fragment.len() + 48);
        data.push_str(&open.delta_head);
        let start = data.len();
        push_json_str(&mut data, fragment);
        // Without its quotes.
        open.escaped.push_str(&data[start + 1..data.len() - 1]);
        if open.kind == Kind::Message {
            data.push_str(",\"logprobs\":[]");
        }
        data.push_str(",\"sequence_number\":");
        push_u64(&mut data, sequence_number);
        data.push('}');
        let name = match open.kind {
            Kind::Message => "response.output_text.delta",
            Kind::Reasoning => "response.reasoning_summary_text.delta",
            Kind::Call { .. } => "response.function_call_arguments.delta",
        };
        out.push(ChatChunk { event: Some(Cow::Borrowed(name)), data, usage: None, kind: ChunkKind::Content });
    }

    /// Closes the open item, if any, with the events that repeat its whole text; `status` is the
    /// item's (`completed`, or `incomplete` when the answer was cut).
    fn close(&mut self, status: &'static str, out: &mut Vec<ChatChunk>) {
        let Some(OpenItem { kind, output_index, id, escaped: text, .. }) = self.open.take() else { return };
        let head = |o: &mut Obj, index: &str| {
            o.str("item_id", &id).num("output_index", output_index).num(index, 0);
        };
        match &kind {
            Kind::Message => {
                self.frame(
                    "response.output_text.done",
                    |o| {
                        head(o, "content_index");
                        o.escaped("text", &text).raw("logprobs", "[]");
                    },
                    out,
                );
                self.frame(
                    "response.content_part.done",
                    |o| {
                        head(o, "content_index");
                        o.raw("part", &output_text_json(&text));
                    },
                    out,
                );
            }
            Kind::Reasoning => {
                self.frame(
                    "response.reasoning_summary_text.done",
                    |o| {
                        head(o, "summary_index");
                        o.escaped("text", &text);
                    },
                    out,
                );
                let part = summary_text_json(&text);
                self.frame(
                    "response.reasoning_summary_part.done",
                    |o| {
                        head(o, "summary_index");
                        o.raw("part", &part);
                    },
                    out,
                );
            }
            Kind::Call { name, .. } => self.frame(
                "response.function_call_arguments.done",
                |o| {
                    o.str("item_id", &id)
                        .num("output_index", output_index)
                        .str("name", name)
                        .escaped("arguments", &text);
                },
                out,
            ),
        }
        let item = ClosedItem::new(kind, id, status, text);
        self.frame(
            "response.output_item.done",
            |o| {
                o.num("output_index", output_index).raw("item", &item.json);
            },
            out,
        );
        self.output.push(item);
    }

    /// Arguments for a call whose item was closed (an upstream interleaving its calls): they go to
    /// that item, in the final response and as a delta for clients that follow `output_index`.
    fn late_arguments(&mut self, output_index: usize, fragment: &str, out: &mut Vec<ChatChunk>) {
        let Some(item) = self.output.get_mut(output_index) else { return };
        let mut quoted = String::with_capacity(fragment.len() + 2);
        push_json_str(&mut quoted, fragment);
        item.escaped.push_str(&quoted[1..quoted.len() - 1]);
        item.json = item_json(&item.kind, &item.id, item.status, &item.escaped);
        let id = item.id.clone();
        let mut chunk = Vec::with_capacity(1);
        self.frame(
            "response.function_call_arguments.delta",
            |o| {
                o.str("item_id", &id).num("output_index", output_index).str("delta", fragment);
            },
            &mut chunk,
        );
        out.extend(chunk.into_iter().map(|c| ChatChunk { kind: ChunkKind::Content, ..c }));
    }
}

impl StreamEncoder for ResponsesEncoder {
    fn encode(&mut self, event: StreamEvent, out: &mut Vec<ChatChunk>) {
        if self.finished {
            return;
        }
        match event {
            // The response has the gateway's id and the model the client named.
            StreamEvent::Start { .. } => {}
            StreamEvent::Usage(u) => self.usage = Some(u),
            StreamEvent::Stop(reason) => self.stop = Some(reason),
            StreamEvent::Text(text) if text.is_empty() => {}
            StreamEvent::Text(text) => {
                self.item_of(Kind::Message, out);
                self.delta(&text, out);
            }
            StreamEvent::Thinking(text) if text.is_empty() => {}
            StreamEvent::Thinking(text) => {
                self.item_of(Kind::Reasoning, out);
                self.delta(&text, out);
            }
            // A signature seals a thinking block: thinking after it is another reasoning item.
            StreamEvent::ThinkingSignature(_) => {
                if self.open.as_ref().is_some_and(|o| o.kind == Kind::Reasoning) {
                    self.close("completed", out);
                }
            }
            // Anthropic's sealed thinking: no Responses client can send it back to Anthropic.
            StreamEvent::RedactedThinking(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                self.item_of(Kind::Call { index, call_id: id, name }, out);
            }
            StreamEvent::ToolCallArgs { fragment, .. } if fragment.is_empty() => {}
            StreamEvent::ToolCallArgs { index, fragment } => {
                match &self.open {
                    Some(OpenItem { kind: Kind::Call { index: open, .. }, .. }) if *open == index => {}
                    _ => match self.calls.iter().find(|(call, _)| *call == index) {
                        Some(&(_, output_index)) => return self.late_arguments(output_index, &fragment, out),
                        // Arguments before the call's start: the call gets an item of its own.
                        None => {
                            let call_id = format!("call_{}_{index}", self.ids.tag(12));
                            self.item_of(Kind::Call { index, call_id, name: String::new() }, out);
                        }
                    },
                }
                self.delta(&fragment, out);
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<ChatChunk>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.ensure_started(out);
        let outcome = outcome(self.stop.as_ref(), (self.clock)());
        let (name, item_status) = match outcome {
            Outcome::Incomplete { .. } => ("response.incomplete", "incomplete"),
            _ => ("response.completed", "completed"),
        };
        self.close(item_status, out);
        let mut output = String::with_capacity(2 + self.output.iter().map(|i| i.json.len() + 1).sum::<usize>());
        output.push('[');
        for (i, item) in self.output.iter().enumerate() {
            if i > 0 {
                output.push(',');
            }
            output.push_str(&item.json);
        }
        output.push(']');
        let n = self.next_sequence_number();
        let (event, object) = response_event(name, n, self.meta.object_len(&output), |o| {
            self.meta.write_object(o, outcome, &output, self.usage.as_ref());
        });
        if let Some(keep) = self.keep.take() {
            keep(&self.meta.id, &event.data[object]);
        }
        out.push(ChatChunk { usage: self.usage, ..event });
    }
}

/// The `error.code` of a response that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    ServerError,
    RateLimitExceeded,
}

impl FailureCode {
    /// The code for a failure the gateway answers with this HTTP status.
    pub fn for_status(status: u16) -> Self {
        if status == 429 { Self::RateLimitExceeded } else { Self::ServerError }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerError => "server_error",
            Self::RateLimitExceeded => "rate_limit_exceeded",
        }
    }
}

/// The event that ends a stream whose upstream failed after the response began:
/// `response.failed`, the response with `status: "failed"` and its `error`. `sequence_number` is
/// the number of events the client was sent before it.
pub fn failed_event(meta: &ResponseMeta, sequence_number: u64, code: FailureCode, message: &str) -> ChatChunk {
    let failed = Outcome::Failed { code, message };
    response_event("response.failed", sequence_number, meta.object_len("[]"), |o| {
        meta.write_object(o, failed, "[]", None);
    })
    .0
}

/// An event that carries the whole response (`response.created`, `.completed`, …): `object`
/// writes the object's text (about `len` bytes) into the event's, and where it lies there is
/// returned with the event (the answer kept, the next event that repeats it).
fn response_event(
    name: &'static str,
    sequence_number: u64,
    len: usize,
    object: impl FnOnce(&mut String),
) -> (ChatChunk, Range<usize>) {
    let mut data = String::with_capacity(len + name.len() + 64);
    data.push_str("{\"type\":\"");
    data.push_str(name);
    data.push_str("\",\"response\":");
    let start = data.len();
    object(&mut data);
    let end = data.len();
    data.push_str(",\"sequence_number\":");
    push_u64(&mut data, sequence_number);
    data.push('}');
    (ChatChunk { event: Some(Cow::Borrowed(name)), data, usage: None, kind: ChunkKind::Meta }, start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_proxy_protocol::json::decode;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn encoder() -> ResponsesEncoder {
        let r = decode(br#"{"model":"smart","input":"x","stream":true}"#).unwrap();
        let meta = ResponseMeta::of(&r, UnixMillis::from_millis(1_000_000), AnswerIds::from_seed("meta"));
        ResponsesEncoder::new(meta, AnswerIds::from_seed("encoder"), || UnixMillis::from_millis(2_000_000))
    }

    fn run(events: Vec<StreamEvent>) -> Vec<ChatChunk> {
        let mut e = encoder();
        let mut out = Vec::new();
        for event in events {
            e.encode(event, &mut out);
        }
        e.finish(&mut out);
        out
    }

    fn data(chunks: &[ChatChunk]) -> Vec<Value> {
        chunks.iter().map(|c| serde_json::from_str(&c.data).unwrap()).collect()
    }

    fn names(chunks: &[ChatChunk]) -> Vec<&str> {
        chunks.iter().map(|c| c.event.as_deref().unwrap()).collect()
    }

    /// What a client that follows the events ends up with, built the way the `openai` SDKs build
    /// their snapshot: items by `output_index`, parts by `content_index` / `summary_index`, deltas
    /// appended, `output_item.done` replacing the item. Checks the sequence numbers and event
    /// names on the way, and returns the snapshot's output and the final response.
    fn follow(chunks: &[ChatChunk]) -> (Vec<Value>, Value) {
        let mut output: Vec<Value> = Vec::new();
        let mut last = Value::Null;
        for (i, (chunk, e)) in chunks.iter().zip(data(chunks)).enumerate() {
            assert_eq!(e["sequence_number"], i, "{e}");
            assert_eq!(chunk.event.as_deref(), e["type"].as_str());
            let at = e["output_index"].as_u64().map(|i| i as usize);
            let delta = e["delta"].as_str().unwrap_or_default();
            match e["type"].as_str().unwrap() {
                "response.output_item.added" => {
                    assert_eq!(at, Some(output.len()), "items are added in order");
                    output.push(e["item"].clone());
                }
                "response.content_part.added" => {
                    output[at.unwrap()]["content"].as_array_mut().unwrap().push(e["part"].clone())
                }
                "response.reasoning_summary_part.added" => {
                    output[at.unwrap()]["summary"].as_array_mut().unwrap().push(e["part"].clone())
                }
                "response.output_text.delta" => {
                    let part = &mut output[at.unwrap()]["content"][e["content_index"].as_u64().unwrap() as usize];
                    part["text"] = format!("{}{delta}", part["text"].as_str().unwrap()).into();
                }
                "response.reasoning_summary_text.delta" => {
                    let part = &mut output[at.unwrap()]["summary"][e["summary_index"].as_u64().unwrap() as usize];
                    part["text"] = format!("{}{delta}", part["text"].as_str().unwrap()).into();
                }
                "response.function_call_arguments.delta" => {
                    let item = &mut output[at.unwrap()];
                    item["arguments"] = format!("{}{delta}", item["arguments"].as_str().unwrap()).into();
                }
                "response.output_text.done" => {
                    assert_eq!(output[at.unwrap()]["content"][0]["text"], e["text"], "done repeats the deltas")
                }
                "response.function_call_arguments.done" => {
                    assert_eq!(output[at.unwrap()]["arguments"], e["arguments"], "done repeats the deltas")
                }
                "response.output_item.done" => {
                    let done = &e["item"];
                    let mut seen = output[at.unwrap()].clone();
                    // The one field that changes when an item closes.
                    if let Some(status) = done.get("status") {
                        seen["status"] = status.clone();
                    }
                    assert_eq!(&seen, done, "the item closed is the item followed");
                    output[at.unwrap()] = e["item"].clone();
                }
                _ => {}
            }
            last = e;
        }
        (output, last["response"].clone())
    }

    #[test]
    fn switching_from_text_to_a_call_closes_the_message_first() {
        let out = run(vec![
            StreamEvent::Start { id: "msg_up".into(), model: "claude".into() },
            StreamEvent::Text("Let me check.".into()),
            StreamEvent::ToolCallStart { index: 0, id: "toolu_1".into(), name: "weather".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: "{\"city\":".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: "\"Paris\"}".into() },
            StreamEvent::Stop(StopReason::ToolUse),
            StreamEvent::Usage(TokenUsage { prompt_tokens: 9, completion_tokens: 4, ..Default::default() }),
        ]);
        assert_eq!(
            names(&out),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let kinds: Vec<ChunkKind> = out.iter().map(|c| c.kind).collect();
        assert_eq!(kinds.iter().filter(|k| **k == ChunkKind::Content).count(), 3, "the deltas are the content");
        let (output, response) = follow(&out);
        assert_eq!(response["output"], Value::Array(output));
        assert_eq!(response["output"][1]["call_id"], "toolu_1");
        assert_eq!(response["output"][1]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(response["usage"]["input_tokens"], 9);
        assert_eq!(response["completed_at"], 2000);
        assert_eq!(out.last().unwrap().usage.map(|u| u.completion_tokens), Some(4));
    }

    #[test]
    fn thinking_is_a_reasoning_summary() {
        let out = run(vec![
            StreamEvent::Thinking("Two ".into()),
            StreamEvent::Thinking("cities.".into()),
            StreamEvent::ThinkingSignature("sig".into()),
            StreamEvent::Thinking("Then more.".into()),
            StreamEvent::Text("Hi".into()),
        ]);
        assert_eq!(
            names(&out)[2..10],
            [
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
            ]
        );
        let (output, response) = follow(&out);
        assert_eq!(response["output"], Value::Array(output));
        let types: Vec<&str> =
            response["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["reasoning", "reasoning", "message"], "a signature seals a reasoning item");
        assert_eq!(response["output"][0]["summary"], json!([{"type": "summary_text", "text": "Two cities."}]));
        assert_eq!(response["status"], "completed");
    }

    #[test]
    fn a_cut_answer_ends_incomplete() {
        let out = run(vec![StreamEvent::Text("Once upon".into()), StreamEvent::Stop(StopReason::MaxTokens)]);
        let last = data(&out).pop().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(last["response"]["usage"], Value::Null);
    }

    #[test]
    fn an_empty_answer_is_still_framed() {
        let out = run(Vec::new());
        assert_eq!(names(&out), ["response.created", "response.in_progress", "response.completed"]);
        let (output, response) = follow(&out);
        assert!(output.is_empty() && response["output"] == json!([]));
        assert_eq!(data(&out)[0]["response"]["status"], "in_progress");
    }

    #[test]
    fn arguments_after_their_item_closed_still_reach_the_response() {
        let out = run(vec![
            StreamEvent::ToolCallStart { index: 0, id: "a".into(), name: "f".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: "{\"x\":".into() },
            StreamEvent::ToolCallStart { index: 1, id: "b".into(), name: "g".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: "1}".into() },
            StreamEvent::ToolCallArgs { index: 1, fragment: "{}".into() },
            StreamEvent::ToolCallArgs { index: 2, fragment: "{\"early\":1}".into() },
        ]);
        let (_, response) = follow(&out);
        let args: Vec<&str> =
            response["output"].as_array().unwrap().iter().map(|i| i["arguments"].as_str().unwrap()).collect();
        assert_eq!(args, ["{\"x\":1}", "{}", "{\"early\":1}"]);
        let tag = AnswerIds::from_seed("encoder").tag(12);
        assert_eq!(response["output"][2]["call_id"], format!("call_{tag}_2"), "arguments before any start get a call");
    }

    #[test]
    fn a_failure_mid_stream_is_a_failed_response() {
        let mut e = encoder();
        let mut out = Vec::new();
        e.encode(StreamEvent::Text("Hel".into()), &mut out);
        let failed = failed_event(&e.meta, out.len() as u64, FailureCode::for_status(429), "Upstream rate limited.");
        assert_eq!(failed.event.as_deref(), Some("response.failed"));
        let v: Value = serde_json::from_str(&failed.data).unwrap();
        assert_eq!(v["sequence_number"], out.len());
        assert_eq!(v["response"]["id"], e.meta.id);
        assert_eq!(v["response"]["status"], "failed");
        assert_eq!(v["response"]["error"], json!({"code": "rate_limit_exceeded", "message": "Upstream rate limited."}));
        assert_eq!(FailureCode::for_status(502), FailureCode::ServerError);
        let scanned = crate::translate::responses::scan_event(failed.event.as_deref(), &failed.data);
        assert_eq!(scanned.error.as_deref(), Some("Upstream rate limited."), "a Responses client reads it back");
    }

    /// Cuts `s` at the char boundaries `cuts` pick.
    fn fragments(s: &str, cuts: &[usize]) -> Vec<String> {
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let mut at: Vec<usize> = cuts.iter().map(|c| bounds[c % bounds.len()]).collect();
        at.sort_unstable();
        let mut from = 0;
        let mut parts = Vec::new();
        for to in at.into_iter().chain([s.len()]) {
            parts.push(s[from..to].to_string());
            from = to;
        }
        parts
    }

    proptest! {
        /// Streamed arguments cut anywhere arrive byte for byte: concatenated from the deltas, in
        /// `function_call_arguments.done`, in the closed item and in the final response.
        #[test]
        fn tool_arguments_arrive_byte_for_byte(
            args in "[ -~\u{e9}\u{4e2d}\u{1f600}\n\t\"\\\\]{0,80}",
            cuts in proptest::collection::vec(0usize..100, 0..10),
            text_first in any::<bool>(),
        ) {
            let mut events = Vec::new();
            if text_first {
                events.push(StreamEvent::Text("Checking.".into()));
            }
            events.push(StreamEvent::ToolCallStart { index: 0, id: "call_1".into(), name: "f".into() });
            for fragment in fragments(&args, &cuts) {
                events.push(StreamEvent::ToolCallArgs { index: 0, fragment });
            }
            events.push(StreamEvent::Stop(StopReason::ToolUse));
            let out = run(events);
            let all = data(&out);
            let deltas: String = all.iter()
                .filter(|e| e["type"] == "response.function_call_arguments.delta")
                .map(|e| e["delta"].as_str().unwrap())
                .collect();
            prop_assert_eq!(&deltas, &args);
            let done = all.iter().find(|e| e["type"] == "response.function_call_arguments.done").unwrap();
            prop_assert_eq!(done["arguments"].as_str(), Some(args.as_str()));
            let item_done = all.iter().rfind(|e| e["type"] == "response.output_item.done").unwrap();
            prop_assert_eq!(item_done["item"]["arguments"].as_str(), Some(args.as_str()));
            let (output, response) = follow(&out);
            prop_assert_eq!(&response["output"], &Value::Array(output));
            let call = response["output"].as_array().unwrap().last().unwrap();
            prop_assert_eq!(call["arguments"].as_str(), Some(args.as_str()));
        }

        /// Any mix of text, thinking and calls: a client following the events ends up with the
        /// final response's output.
        #[test]
        fn following_the_events_gives_the_final_output(steps in proptest::collection::vec((0u8..4, "[a-z \u{e9}\"]{0,6}"), 0..24)) {
            let mut events = Vec::new();
            let mut calls = 0;
            for (kind, text) in steps {
                events.push(match kind {
                    0 => StreamEvent::Text(text),
                    1 => StreamEvent::Thinking(text),
                    2 => {
                        calls += 1;
                        StreamEvent::ToolCallStart { index: calls - 1, id: format!("c{calls}"), name: text }
                    }
                    _ => StreamEvent::ToolCallArgs { index: calls.saturating_sub(1), fragment: text },
                });
            }
            let out = run(events);
            let (output, response) = follow(&out);
            prop_assert_eq!(&response["output"], &Value::Array(output));
        }
    }
}
