//! The Responses API's event stream. Every event is named in `event:` and repeats its name in
//! `type`, and is numbered in `sequence_number` from 0; there is no `[DONE]`: the stream ends with
//! `response.completed`, `response.incomplete` or `response.failed`. In order:
//!
//! - `response.created`, `response.in_progress` (the response, `in_progress`, no output yet);
//! - per output item, opened as the script's units change kind: `response.output_item.added`, then
//!   - reasoning: `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`…,
//!     `response.reasoning_summary_text.done`, `response.reasoning_summary_part.done`;
//!   - text: `response.content_part.added`, `response.output_text.delta`…,
//!     `response.output_text.done`, `response.content_part.done`;
//!   - a tool call: `response.function_call_arguments.delta`…, `response.function_call_arguments.done`;
//!
//!   and `response.output_item.done` with the whole item;
//! - `response.completed` or `response.incomplete`, the whole response with its usage.
//!
//! `error-after-` ends with `response.failed` (status `failed`, `error.code` `server_error`), the
//! event OpenAI ends a response that failed while generating with.

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{Value, json};

use super::{Meta, Status, output_text, status};
use crate::MockState;
use crate::script::{Script, Unit};
use crate::stream::Encoder;

/// The output item being streamed, with what it has received so far.
enum Open {
    Reasoning { text: String },
    Message { text: String },
    Call { k: usize, name: String, arguments: String },
}

pub(crate) struct EventEncoder {
    state: Arc<MockState>,
    meta: Meta,
    /// The next event's `sequence_number`.
    sequence: u64,
    /// Output items done; the open one's `output_index` is their count.
    done: Vec<Value>,
    open: Option<Open>,
}

impl EventEncoder {
    pub fn new(state: Arc<MockState>, meta: Meta) -> Self {
        EventEncoder { state, meta, sequence: 0, done: Vec::new(), open: None }
    }

    /// One event: `type` and `sequence_number` first, as OpenAI writes them, then `fields`.
    fn event(&mut self, kind: &str, fields: Value) -> Bytes {
        let mut data = json!({"type": kind, "sequence_number": self.sequence});
        self.sequence += 1;
        extend(&mut data, fields);
        Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
    }

    fn index(&self) -> usize {
        self.done.len()
    }

    /// The open item's id.
    fn item_id(&self) -> String {
        let prefix = match self.open {
            Some(Open::Reasoning { .. }) => "rs",
            Some(Open::Message { .. }) => "msg",
            Some(Open::Call { .. }) | None => "fc",
        };
        self.meta.item_id(prefix, self.index())
    }

    /// Opens `item` (closing the open one, as completed): `output_item.added` and the part it starts with.
    fn begin(&mut self, out: &mut Vec<Bytes>, item: Open) {
        self.finish(out, "completed");
        let index = self.index();
        let (added, part) = match &item {
            Open::Reasoning { .. } => (
                self.meta.reasoning_item(index, ""),
                Some((
                    "response.reasoning_summary_part.added",
                    "summary_index",
                    json!({"type": "summary_text", "text": ""}),
                )),
            ),
            Open::Message { .. } => (
                self.meta.message_item(index, None, "in_progress"),
                Some(("response.content_part.added", "content_index", output_text(""))),
            ),
            Open::Call { k, name, .. } => (self.meta.call_item(index, *k, name, "", "in_progress"), None),
        };
        self.open = Some(item);
        out.push(self.event("response.output_item.added", json!({"output_index": index, "item": added})));
        if let Some((kind, part_index, part)) = part {
            let item_id = self.item_id();
            out.push(self.event(kind, json!({"item_id": item_id, "output_index": index, part_index: 0, "part": part})));
        }
    }

    /// Closes the open item, if any, with `status`: its `…done` events, then `output_item.done`.
    fn finish(&mut self, out: &mut Vec<Bytes>, status: &str) {
        let item_id = self.item_id();
        let index = self.index();
        let Some(open) = self.open.take() else {
            return;
        };
        let with = |fields: Value| {
            let mut v = json!({"item_id": item_id, "output_index": index});
            extend(&mut v, fields);
            v
        };
        let item = match open {
            Open::Reasoning { text } => {
                let part = json!({"type": "summary_text", "text": text});
                out.push(
                    self.event("response.reasoning_summary_text.done", with(json!({"summary_index": 0, "text": text}))),
                );
                out.push(
                    self.event("response.reasoning_summary_part.done", with(json!({"summary_index": 0, "part": part}))),
                );
                self.meta.reasoning_item(index, &text)
            }
            Open::Message { text } => {
                out.push(self.event(
                    "response.output_text.done",
                    with(json!({"content_index": 0, "text": text, "logprobs": []})),
                ));
                out.push(self.event(
                    "response.content_part.done",
                    with(json!({"content_index": 0, "part": output_text(&text)})),
                ));
                self.meta.message_item(index, Some(&text), status)
            }
            Open::Call { k, name, arguments } => {
                out.push(self.event(
                    "response.function_call_arguments.done",
                    with(json!({"arguments": arguments, "name": name})),
                ));
                self.meta.call_item(index, k, &name, &arguments, status)
            }
        };
        out.push(self.event("response.output_item.done", json!({"output_index": index, "item": item})));
        self.done.push(item);
    }
}

/// `fields` added to the object `into`, after its own.
fn extend(into: &mut Value, fields: Value) {
    if let (Some(into), Value::Object(fields)) = (into.as_object_mut(), fields) {
        into.extend(fields);
    }
}

impl Encoder for EventEncoder {
    fn open(&mut self, script: &Script) -> Vec<Bytes> {
        let response = self.meta.response(script, Status::InProgress, Vec::new(), None);
        vec![
            self.event("response.created", json!({"response": response})),
            self.event("response.in_progress", json!({"response": response})),
        ]
    }

    fn unit(&mut self, _script: &Script, _i: u64, unit: Unit<'_>) -> Vec<Bytes> {
        let mut out = Vec::new();
        let (kind, delta, extra) = match unit {
            Unit::Reasoning(text) => {
                if !matches!(self.open, Some(Open::Reasoning { .. })) {
                    self.begin(&mut out, Open::Reasoning { text: String::new() });
                }
                if let Some(Open::Reasoning { text: so_far }) = &mut self.open {
                    so_far.push_str(text);
                }
                ("response.reasoning_summary_text.delta", text.to_string(), json!({"summary_index": 0}))
            }
            Unit::Text(text) => {
                if !matches!(self.open, Some(Open::Message { .. })) {
                    self.begin(&mut out, Open::Message { text: String::new() });
                }
                if let Some(Open::Message { text: so_far }) = &mut self.open {
                    so_far.push_str(&text);
                }
                ("response.output_text.delta", text, json!({"content_index": 0}))
            }
            Unit::ToolStart { index, call } => {
                self.begin(&mut out, Open::Call { k: index, name: call.name.clone(), arguments: String::new() });
                return out;
            }
            Unit::ToolArgs { fragment, .. } => {
                if let Some(Open::Call { arguments, .. }) = &mut self.open {
                    arguments.push_str(fragment);
                }
                ("response.function_call_arguments.delta", fragment.to_string(), json!({}))
            }
        };
        let mut data = json!({"item_id": self.item_id(), "output_index": self.index()});
        extend(&mut data, extra);
        data["delta"] = json!(delta);
        if kind == "response.output_text.delta" {
            data["logprobs"] = json!([]);
        }
        out.push(self.event(kind, data));
        out
    }

    fn error(&mut self, script: &Script) -> Vec<Bytes> {
        let response = self.meta.response(script, Status::Failed, self.done.clone(), None);
        vec![self.event("response.failed", json!({"response": response}))]
    }

    fn close(&mut self, script: &Script) -> Vec<Bytes> {
        let status = status(script.stop);
        let mut out = Vec::new();
        self.finish(&mut out, status.last_item());
        self.meta.remember(&self.state, &self.done);
        let response = self.meta.response(script, status, self.done.clone(), script.usage.as_ref());
        let kind = if status == Status::Completed { "response.completed" } else { "response.incomplete" };
        out.push(self.event(kind, json!({"response": response})));
        out
    }
}
