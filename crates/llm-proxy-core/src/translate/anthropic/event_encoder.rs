//! Unified stream events → Anthropic SSE events, for an Anthropic client of another upstream.

use std::borrow::Cow;

use llm_proxy_protocol::anthropic::{
    ContentBlock, Delta, Message, MessageDelta, RedactedThinkingBlock, StreamEvent as Wire, TextBlock, ThinkingBlock,
    ToolUseBlock,
};
use serde_json::{Map, Value};

use super::{client_stop_reason, usage_to_wire};
use crate::provider::{ChatChunk, ChunkKind, TokenUsage};
use crate::translate::{AnswerIds, StreamEncoder};
use crate::unified::{StopReason, StreamEvent};

/// Encodes a unified event stream as Anthropic's: `message_start` (sent lazily, before the first
/// block, so usage reported early can fill its input count), one content block per run of text,
/// of thinking, or per tool call, each opened when the kind of content changes and closed before
/// the next opens, then `message_delta` with the stop reason and usage, and `message_stop`.
///
/// Nothing is buffered: every text, thinking or argument fragment becomes one delta at once.
#[derive(Debug)]
pub struct EventEncoder {
    /// The model the client asked for, reported in `message_start`.
    model: String,
    /// The upstream's answer id, once `Start` said it.
    id: Option<String>,
    /// Names the message and tool calls when the upstream did not.
    ids: AnswerIds,
    started: bool,
    finished: bool,
    /// The open block and its index.
    open: Option<(Open, usize)>,
    next_index: usize,
    /// The block index of each tool call, by the call's unified index.
    tool_blocks: Vec<(usize, usize)>,
    stop: Option<StopReason>,
    usage: Option<TokenUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its unified index.
    Tool(usize),
}

impl EventEncoder {
    pub fn new(model: &str, ids: AnswerIds) -> Self {
        Self {
            model: model.to_string(),
            id: None,
            ids,
            started: false,
            finished: false,
            open: None,
            next_index: 0,
            tool_blocks: Vec::new(),
            stop: None,
            usage: None,
        }
    }

    fn emit(&self, out: &mut Vec<ChatChunk>, event: Wire, usage: Option<TokenUsage>) {
        let kind = match event {
            Wire::ContentBlockDelta { .. } => ChunkKind::Content,
            _ => ChunkKind::Meta,
        };
        // The wire types have string keys only and no unserializable variant is ever built here,
        // so serialization cannot fail.
        let data = serde_json::to_string(&event).unwrap_or_default();
        out.push(ChatChunk { event: Some(Cow::Borrowed(event.name())), data, usage, kind });
    }

    fn ensure_started(&mut self, out: &mut Vec<ChatChunk>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = match &self.usage {
            Some(u) => usage_to_wire(u),
            None => usage_to_wire(&TokenUsage::default()),
        };
        let message = Message {
            id: self.id.take().unwrap_or_else(|| self.ids.message_id()),
            kind: "message".into(),
            role: "assistant".into(),
            content: Vec::new(),
            model: self.model.clone(),
            stop_reason: None,
            stop_sequence: None,
            usage: Some(usage),
        };
        self.emit(out, Wire::MessageStart { message }, self.usage);
    }

    fn close(&mut self, out: &mut Vec<ChatChunk>) {
        if let Some((_, index)) = self.open.take() {
            self.emit(out, Wire::ContentBlockStop { index }, None);
        }
    }

    /// Closes the open block and starts another; returns its index.
    fn open(&mut self, out: &mut Vec<ChatChunk>, kind: Open, content_block: ContentBlock) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.emit(out, Wire::ContentBlockStart { index, content_block }, None);
        self.open = Some((kind, index));
        index
    }

    /// The index of the open block of `kind`, opening one (empty) if another kind is open.
    fn block_of(&mut self, out: &mut Vec<ChatChunk>, kind: Open) -> usize {
        self.ensure_started(out);
        match self.open {
            Some((open, index)) if open == kind => index,
            _ => {
                let block = match kind {
                    Open::Text => {
                        ContentBlock::Text(TextBlock { text: String::new(), cache_control: None, citations: None })
                    }
                    // An empty signature, as Anthropic starts its own: a block whose upstream never
                    // signs it still has the field the SDKs' thinking blocks require.
                    Open::Thinking => ContentBlock::Thinking(ThinkingBlock {
                        thinking: String::new(),
                        signature: Some(String::new()),
                    }),
                    Open::Tool(_) => tool_use(tool_id(&self.ids, self.next_index), String::new()),
                };
                self.open(out, kind, block)
            }
        }
    }

    fn delta(&mut self, out: &mut Vec<ChatChunk>, index: usize, delta: Delta) {
        self.emit(out, Wire::ContentBlockDelta { index, delta }, None);
    }
}

fn tool_use(id: String, name: String) -> ContentBlock {
    ContentBlock::ToolUse(ToolUseBlock { id, name, input: Value::Object(Map::new()), cache_control: None })
}

/// The id of a tool call whose arguments came before its start (and id): `toolu_<tag>_<block>`, the
/// tag telling it from other answers' calls in one conversation and the block index from this
/// answer's others. Under the 40 characters OpenAI accepts, should the conversation go there.
fn tool_id(ids: &AnswerIds, block: usize) -> String {
    format!("toolu_{}_{block}", ids.tag(16))
}

impl StreamEncoder for EventEncoder {
    fn encode(&mut self, event: StreamEvent, out: &mut Vec<ChatChunk>) {
        if self.finished {
            return;
        }
        match event {
            StreamEvent::Start { id, model } => {
                if !self.started && !id.is_empty() {
                    self.id = Some(id);
                }
                if self.model.is_empty() {
                    self.model = model;
                }
            }
            StreamEvent::Usage(u) => self.usage = Some(u),
            StreamEvent::Stop(reason) => self.stop = Some(reason),
            StreamEvent::Text(text) if text.is_empty() => {}
            StreamEvent::Text(text) => {
                let index = self.block_of(out, Open::Text);
                self.delta(out, index, Delta::TextDelta { text });
            }
            StreamEvent::Thinking(thinking) if thinking.is_empty() => {}
            StreamEvent::Thinking(thinking) => {
                let index = self.block_of(out, Open::Thinking);
                self.delta(out, index, Delta::ThinkingDelta { thinking });
            }
            StreamEvent::ThinkingSignature(signature) => {
                // The signature seals the thinking block, as in Anthropic's own streams: thinking
                // after it starts a new block.
                let index = self.block_of(out, Open::Thinking);
                self.delta(out, index, Delta::SignatureDelta { signature });
                self.close(out);
            }
            StreamEvent::RedactedThinking(data) => {
                self.ensure_started(out);
                let block = ContentBlock::RedactedThinking(RedactedThinkingBlock { data });
                self.open(out, Open::Thinking, block);
                self.close(out);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                let block = self.open(out, Open::Tool(index), tool_use(id, name));
                self.tool_blocks.push((index, block));
            }
            StreamEvent::ToolCallArgs { fragment, .. } if fragment.is_empty() => {}
            StreamEvent::ToolCallArgs { index, fragment } => {
                let block = match self.open {
                    Some((Open::Tool(open), block)) if open == index => block,
                    // Arguments for a call whose block was closed (an upstream interleaving its
                    // calls) go to that call's block: the SDKs accumulate deltas by index, and
                    // dropping or holding them back would lose or delay the arguments.
                    _ => match self.tool_blocks.iter().find(|(tool, _)| *tool == index) {
                        Some(&(_, block)) => block,
                        // Arguments before any start: give the call a block of its own.
                        None => {
                            let block = self.block_of(out, Open::Tool(index));
                            self.tool_blocks.push((index, block));
                            block
                        }
                    },
                };
                self.delta(out, block, Delta::InputJsonDelta { partial_json: fragment });
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<ChatChunk>) {
        if self.finished {
            return;
        }
        self.ensure_started(out);
        self.close(out);
        self.finished = true;
        let (stop_reason, stop_sequence) = client_stop_reason(self.stop.as_ref(), !self.tool_blocks.is_empty());
        // Anthropic always reports the output count; unknown, it is 0 as far as the client can tell.
        let usage = Some(self.usage.as_ref().map(usage_to_wire).unwrap_or_default());
        let delta = MessageDelta { stop_reason: Some(stop_reason.into()), stop_sequence };
        self.emit(out, Wire::MessageDelta { delta, usage }, self.usage);
        self.emit(out, Wire::MessageStop, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::anthropic::fragments;
    use proptest::prelude::*;
    use serde_json::json;

    fn run(events: Vec<StreamEvent>) -> Vec<ChatChunk> {
        run_with(events, AnswerIds::from_seed("encoder"))
    }

    fn run_with(events: Vec<StreamEvent>, ids: AnswerIds) -> Vec<ChatChunk> {
        let mut encoder = EventEncoder::new("claude-via-gpt", ids);
        let mut out = Vec::new();
        for e in events {
            encoder.encode(e, &mut out);
        }
        encoder.finish(&mut out);
        out
    }

    fn data(chunks: &[ChatChunk]) -> Vec<Value> {
        chunks.iter().map(|c| serde_json::from_str(&c.data).unwrap()).collect()
    }

    fn types(chunks: &[ChatChunk]) -> Vec<String> {
        chunks
            .iter()
            .map(|c| {
                let v: Value = serde_json::from_str(&c.data).unwrap();
                assert_eq!(c.event.as_deref(), v["type"].as_str(), "event name and type agree");
                match v["delta"]["type"].as_str().or(v["content_block"]["type"].as_str()) {
                    Some(inner) => format!("{}:{inner}", v["type"].as_str().unwrap()),
                    None => v["type"].as_str().unwrap().to_string(),
                }
            })
            .collect()
    }

    /// Checks the framing an Anthropic client relies on: `message_start` first, blocks opened and
    /// closed in order with indexes 0, 1, 2..., `message_delta` and `message_stop` last.
    fn assert_well_formed(chunks: &[ChatChunk]) {
        let events = data(chunks);
        assert_eq!(events.first().unwrap()["type"], "message_start");
        assert_eq!(events.last().unwrap()["type"], "message_stop");
        assert_eq!(events[events.len() - 2]["type"], "message_delta");
        let mut open: Option<u64> = None;
        let mut next = 0;
        for e in &events[1..events.len() - 2] {
            match e["type"].as_str().unwrap() {
                "content_block_start" => {
                    assert_eq!(open, None, "a block opened inside another");
                    assert_eq!(e["index"], next);
                    open = Some(next);
                    next += 1;
                }
                "content_block_stop" => {
                    assert_eq!(open, e["index"].as_u64(), "a stop without its start");
                    open = None;
                }
                "content_block_delta" => assert_eq!(open, e["index"].as_u64(), "a delta outside its block"),
                other => panic!("unexpected {other} inside the message"),
            }
        }
        assert_eq!(open, None, "a block left open");
    }

    #[test]
    fn text_then_tool_calls() {
        let chunks = run(vec![
            StreamEvent::Start { id: "chatcmpl-1".into(), model: "gpt-4o".into() },
            StreamEvent::Text("Let me ".into()),
            StreamEvent::Text("check.".into()),
            StreamEvent::ToolCallStart { index: 0, id: "call_a".into(), name: "get_weather".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: "{\"location\":".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: "\"Paris\"}".into() },
            StreamEvent::ToolCallStart { index: 1, id: "call_b".into(), name: "get_time".into() },
            StreamEvent::ToolCallArgs { index: 1, fragment: "{}".into() },
            StreamEvent::Stop(StopReason::ToolUse),
            StreamEvent::Usage(TokenUsage {
                prompt_tokens: 30,
                completion_tokens: 12,
                cached_tokens: 10,
                ..TokenUsage::default()
            }),
        ]);
        assert_well_formed(&chunks);
        assert_eq!(
            types(&chunks),
            [
                "message_start",
                "content_block_start:text",
                "content_block_delta:text_delta",
                "content_block_delta:text_delta",
                "content_block_stop",
                "content_block_start:tool_use",
                "content_block_delta:input_json_delta",
                "content_block_delta:input_json_delta",
                "content_block_stop",
                "content_block_start:tool_use",
                "content_block_delta:input_json_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let events = data(&chunks);
        assert_eq!(events[0]["message"]["id"], "chatcmpl-1");
        assert_eq!(events[0]["message"]["model"], "claude-via-gpt");
        assert_eq!(
            events[5]["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
        );
        assert_eq!(events[9]["index"], 2);
        assert_eq!(
            events[12],
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10, "output_tokens": 12}})
        );
        let kinds: Vec<ChunkKind> = chunks.iter().map(|c| c.kind).collect();
        assert_eq!(kinds[2], ChunkKind::Content);
        assert!(
            kinds
                .iter()
                .enumerate()
                .all(|(i, k)| (*k == ChunkKind::Content) == (events[i]["type"] == "content_block_delta"))
        );
        assert!(chunks[12].usage.is_some());
    }

    #[test]
    fn usage_seen_before_content_fills_message_start() {
        let chunks = run(vec![
            StreamEvent::Usage(TokenUsage { prompt_tokens: 472, ..TokenUsage::default() }),
            StreamEvent::Text("Hi".into()),
        ]);
        assert_eq!(data(&chunks)[0]["message"]["usage"]["input_tokens"], 472);
        let chunks = run(vec![
            StreamEvent::Text("Hi".into()),
            StreamEvent::Usage(TokenUsage { prompt_tokens: 9, ..TokenUsage::default() }),
        ]);
        let events = data(&chunks);
        assert_eq!(events[0]["message"]["usage"]["input_tokens"], 0);
        assert_eq!(events[0]["message"]["id"].as_str().unwrap(), AnswerIds::from_seed("encoder").message_id());
        assert_eq!(events[0]["message"]["stop_reason"], Value::Null);
        assert_eq!(events[4]["usage"]["input_tokens"], 9);
    }

    #[test]
    fn thinking_with_signature_then_redacted_then_text() {
        let chunks = run(vec![
            StreamEvent::Thinking("Let me think".into()),
            StreamEvent::Thinking(".".into()),
            StreamEvent::ThinkingSignature("EqQB".into()),
            StreamEvent::RedactedThinking("EmwK".into()),
            StreamEvent::Text("42".into()),
            StreamEvent::Stop(StopReason::EndTurn),
        ]);
        assert_well_formed(&chunks);
        assert_eq!(
            types(&chunks),
            [
                "message_start",
                "content_block_start:thinking",
                "content_block_delta:thinking_delta",
                "content_block_delta:thinking_delta",
                "content_block_delta:signature_delta",
                "content_block_stop",
                "content_block_start:redacted_thinking",
                "content_block_stop",
                "content_block_start:text",
                "content_block_delta:text_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let events = data(&chunks);
        assert_eq!(events[1]["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
        assert_eq!(events[6]["content_block"], json!({"type": "redacted_thinking", "data": "EmwK"}));
        assert_eq!(events[11]["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn an_empty_stream_is_still_a_message() {
        let chunks = run(vec![StreamEvent::Text(String::new())]);
        assert_well_formed(&chunks);
        assert_eq!(types(&chunks), ["message_start", "message_delta", "message_stop"]);
        assert_eq!(data(&chunks)[1]["usage"], json!({"output_tokens": 0}));
    }

    #[test]
    fn stop_reasons_reported() {
        let stop_of = |events: Vec<StreamEvent>| {
            let chunks = run(events);
            let delta = &data(&chunks)[chunks.len() - 2];
            (delta["delta"]["stop_reason"].as_str().unwrap().to_string(), delta["delta"]["stop_sequence"].clone())
        };
        let tool = || StreamEvent::ToolCallStart { index: 0, id: "c".into(), name: "f".into() };
        assert_eq!(stop_of(vec![tool()]).0, "tool_use");
        assert_eq!(stop_of(vec![tool(), StreamEvent::Stop(StopReason::EndTurn)]).0, "tool_use");
        assert_eq!(stop_of(vec![tool(), StreamEvent::Stop(StopReason::MaxTokens)]).0, "max_tokens");
        assert_eq!(stop_of(vec![StreamEvent::Stop(StopReason::ContentFilter)]).0, "refusal");
        assert_eq!(
            stop_of(vec![StreamEvent::Stop(StopReason::StopSequence(Some("END".into())))]),
            ("stop_sequence".into(), json!("END"))
        );
    }

    #[test]
    fn a_signature_without_thinking_and_arguments_without_a_start_get_blocks() {
        let chunks = run(vec![
            StreamEvent::ThinkingSignature("sig".into()),
            StreamEvent::ToolCallArgs { index: 3, fragment: "{}".into() },
        ]);
        assert_well_formed(&chunks);
        let events = data(&chunks);
        assert_eq!(events[1]["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
        assert_eq!(events[2]["delta"], json!({"type": "signature_delta", "signature": "sig"}));
        assert_eq!(events[4]["content_block"]["type"], "tool_use");
        let tag = AnswerIds::from_seed("encoder").tag(16);
        assert_eq!(events[4]["content_block"]["id"].as_str().unwrap(), format!("toolu_{tag}_1"));
        assert_eq!(events[5]["delta"], json!({"type": "input_json_delta", "partial_json": "{}"}));
    }

    #[test]
    fn made_up_ids_come_from_the_answer_ids() {
        let events = || {
            vec![
                StreamEvent::Text("Calling.".into()),
                StreamEvent::ToolCallArgs { index: 0, fragment: "{}".into() },
                StreamEvent::ToolCallArgs { index: 1, fragment: "{}".into() },
            ]
        };
        let bytes = |chunks: Vec<ChatChunk>| chunks.into_iter().map(|c| c.data).collect::<Vec<_>>();
        let one = bytes(run_with(events(), AnswerIds::from_seed("answer-1")));
        assert_eq!(one, bytes(run_with(events(), AnswerIds::from_seed("answer-1"))), "same seed: same bytes");
        let tool_ids = |chunks: &[String]| -> Vec<String> {
            chunks
                .iter()
                .map(|c| serde_json::from_str::<Value>(c).unwrap())
                .filter(|e| e["content_block"]["type"] == "tool_use")
                .map(|e| e["content_block"]["id"].as_str().unwrap().to_string())
                .collect()
        };
        let ids = tool_ids(&one);
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1], "calls of one answer get distinct ids");
        assert!(ids.iter().all(|id| id.len() <= 40), "{ids:?}");
        let other = tool_ids(&bytes(run_with(events(), AnswerIds::from_seed("answer-2"))));
        assert!(ids.iter().all(|id| !other.contains(id)), "another answer's calls get other ids: {ids:?} {other:?}");
    }

    #[test]
    fn interleaved_arguments_go_to_their_calls_block() {
        let chunks = run(vec![
            StreamEvent::ToolCallStart { index: 0, id: "a".into(), name: "f".into() },
            StreamEvent::ToolCallStart { index: 1, id: "b".into(), name: "g".into() },
            StreamEvent::ToolCallArgs { index: 0, fragment: "{\"x\":1}".into() },
            StreamEvent::ToolCallArgs { index: 1, fragment: "{\"y\":2}".into() },
        ]);
        let events = data(&chunks);
        assert_eq!((&events[4]["index"], &events[4]["delta"]["partial_json"]), (&json!(0), &json!("{\"x\":1}")));
        assert_eq!((&events[5]["index"], &events[5]["delta"]["partial_json"]), (&json!(1), &json!("{\"y\":2}")));
    }

    #[test]
    fn finish_is_idempotent_and_ends_encoding() {
        let mut encoder = EventEncoder::new("m", AnswerIds::from_seed("encoder"));
        let mut out = Vec::new();
        encoder.finish(&mut out);
        encoder.finish(&mut out);
        encoder.encode(StreamEvent::Text("late".into()), &mut out);
        assert_eq!(out.len(), 3);
    }

    proptest! {
        #[test]
        fn argument_fragments_arrive_verbatim_in_a_well_formed_stream(
            arguments in any::<String>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            text_before in any::<bool>(),
            second_call in any::<bool>(),
        ) {
            let mut events = Vec::new();
            if text_before {
                events.push(StreamEvent::Text("Calling.".into()));
            }
            events.push(StreamEvent::ToolCallStart { index: 0, id: "call_0".into(), name: "f".into() });
            for fragment in fragments(&arguments, &cuts) {
                events.push(StreamEvent::ToolCallArgs { index: 0, fragment });
            }
            if second_call {
                events.push(StreamEvent::ToolCallStart { index: 1, id: "call_1".into(), name: "g".into() });
                events.push(StreamEvent::ToolCallArgs { index: 1, fragment: "{}".into() });
            }
            let chunks = run(events);
            assert_well_formed(&chunks);
            let tool_block = u64::from(text_before);
            let received: String = data(&chunks)
                .iter()
                .filter(|e| e["type"] == "content_block_delta" && e["index"] == tool_block)
                .map(|e| e["delta"]["partial_json"].as_str().unwrap().to_string())
                .collect();
            prop_assert_eq!(received, arguments);
        }
    }
}
