//! Streams: unified events → `chat.completion.chunk`s (`ChunkEncoder`), and an OpenAI-protocol
//! upstream's chunks → unified events (`ChunkDecoder`).

use serde::Deserialize;

use super::response::chat_id;
use super::{finish_reason, stop_reason, usage_to_wire};
use crate::provider::{ChatChunk, ChunkKind, ProviderError, TokenUsage};
use crate::translate::{AnswerIds, StreamDecoder, StreamEncoder, push_json_str};
use crate::unified::{StopReason, StreamEvent};

/// Writes chunks for an OpenAI client. Chunks are formatted by hand around a prefix computed once
/// (id, created, model): this runs for every token of every translated stream.
pub struct ChunkEncoder {
    id: String,
    /// Names the answer when the upstream did not.
    ids: AnswerIds,
    model: String,
    created: i64,
    include_usage: bool,
    /// `{"id":..,"object":"chat.completion.chunk","created":..,"model":..,"choices":[{"index":0,"delta":`
    prefix: Option<String>,
    stop: Option<StopReason>,
    usage: Option<TokenUsage>,
    saw_tool_call: bool,
}

impl ChunkEncoder {
    /// `model` is what the client sees (the name it asked for); `created` is in seconds.
    pub fn new(model: &str, created: i64, include_usage: bool, ids: AnswerIds) -> Self {
        Self {
            id: String::new(),
            ids,
            model: model.to_string(),
            created,
            include_usage,
            prefix: None,
            stop: None,
            usage: None,
            saw_tool_call: false,
        }
    }

    fn prefix(&mut self, out: &mut Vec<ChatChunk>) -> &str {
        if self.prefix.is_none() {
            let mut p = String::with_capacity(128);
            p.push_str("{\"id\":");
            push_json_str(&mut p, &chat_id(&self.id, &self.ids));
            p.push_str(",\"object\":\"chat.completion.chunk\",\"created\":");
            p.push_str(&self.created.to_string());
            p.push_str(",\"model\":");
            push_json_str(&mut p, &self.model);
            p.push_str(",\"choices\":[{\"index\":0,\"delta\":");
            // The first chunk announces the role, as OpenAI's does.
            let first =
                format!("{p}{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}");
            out.push(chunk(first, ChunkKind::Meta));
            self.prefix = Some(p);
        }
        self.prefix.as_deref().unwrap_or_default()
    }

    /// One chunk whose delta is `delta` (a JSON object).
    fn delta(&mut self, delta: &str, out: &mut Vec<ChatChunk>) {
        let prefix = self.prefix(out);
        let mut s = String::with_capacity(prefix.len() + delta.len() + 40);
        s.push_str(prefix);
        s.push_str(delta);
        s.push_str(",\"logprobs\":null,\"finish_reason\":null}]}");
        out.push(chunk(s, ChunkKind::Content));
    }
}

fn chunk(data: String, kind: ChunkKind) -> ChatChunk {
    ChatChunk { event: None, data, usage: None, kind }
}

impl StreamEncoder for ChunkEncoder {
    fn encode(&mut self, event: StreamEvent, out: &mut Vec<ChatChunk>) {
        match event {
            StreamEvent::Start { id, .. } => {
                if self.prefix.is_none() {
                    self.id = id;
                }
            }
            StreamEvent::Text(text) => {
                let mut d = String::from("{\"content\":");
                push_json_str(&mut d, &text);
                d.push('}');
                self.delta(&d, out);
            }
            StreamEvent::Thinking(text) => {
                let mut d = String::from("{\"reasoning_content\":");
                push_json_str(&mut d, &text);
                d.push('}');
                self.delta(&d, out);
            }
            // OpenAI clients have nowhere to keep these.
            StreamEvent::ThinkingSignature(_) | StreamEvent::RedactedThinking(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                self.saw_tool_call = true;
                let mut d = format!("{{\"tool_calls\":[{{\"index\":{index},\"id\":");
                push_json_str(&mut d, &id);
                d.push_str(",\"type\":\"function\",\"function\":{\"name\":");
                push_json_str(&mut d, &name);
                d.push_str(",\"arguments\":\"\"}}]}");
                self.delta(&d, out);
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                let mut d = format!("{{\"tool_calls\":[{{\"index\":{index},\"function\":{{\"arguments\":");
                push_json_str(&mut d, &fragment);
                d.push_str("}}]}");
                self.delta(&d, out);
            }
            StreamEvent::Stop(reason) => self.stop = Some(reason),
            StreamEvent::Usage(u) => self.usage = Some(u),
        }
    }

    fn finish(&mut self, out: &mut Vec<ChatChunk>) {
        let reason =
            self.stop.take().unwrap_or(if self.saw_tool_call { StopReason::ToolUse } else { StopReason::EndTurn });
        let prefix = self.prefix(out).to_string();
        out.push(chunk(
            format!("{prefix}{{}},\"logprobs\":null,\"finish_reason\":\"{}\"}}]}}", finish_reason(&reason)),
            ChunkKind::Meta,
        ));
        if self.include_usage
            && let Some(u) = &self.usage
        {
            // The usage chunk: same id, empty choices.
            let head = prefix.split(",\"choices\":").next().unwrap_or_default();
            let usage = serde_json::to_string(&usage_to_wire(u)).unwrap_or_default();
            out.push(chunk(format!("{head},\"choices\":[],\"usage\":{usage}}}"), ChunkKind::UsageOnly));
        }
    }
}

// Every field is optional and `null` reads as absent: servers differ in what they leave out or
// send as `null` (`"tool_calls": null`, `"id": null` on continuation chunks), and none of that may
// cost the client its answer.

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default, deserialize_with = "null_default")]
    id: String,
    #[serde(default, deserialize_with = "null_default")]
    model: String,
    #[serde(default, deserialize_with = "null_default")]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<llm_proxy_protocol::openai::Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    /// OpenAI streams a refusal (structured outputs) here instead of `content`.
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    tool_calls: Vec<WireToolCallDelta>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Reads `null` as the type's default.
pub(super) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// One tool call of the answer, as its deltas arrive.
struct ToolSlot {
    /// The upstream's `index`, when it sends one.
    upstream: Option<usize>,
    id: String,
    /// `ToolCallStart` has gone out (it needs the name, which may come after the first delta).
    started: bool,
    /// Argument text that came before the name.
    pending: String,
}

/// Reads an OpenAI-protocol upstream's chunks.
pub struct ChunkDecoder {
    started: bool,
    tools: Vec<ToolSlot>,
    /// Makes generated call ids unique across the turns of a conversation.
    tag: String,
    refused: bool,
    finished: bool,
}

impl ChunkDecoder {
    /// `ids` names the tool calls the upstream gives no id.
    pub fn new(ids: AnswerIds) -> Self {
        Self { started: false, tools: Vec::new(), tag: super::call_tag(&ids), refused: false, finished: false }
    }

    /// The slot a delta belongs to. With an index, the call of that index (newest first); without
    /// one, servers stream calls one after another: a new id starts the next call.
    fn slot(&mut self, index: Option<usize>, id: Option<&str>) -> usize {
        let found = match index {
            Some(i) => self.tools.iter().rposition(|t| t.upstream == Some(i)),
            None => match (self.tools.len().checked_sub(1), id) {
                (Some(last), Some(id)) if !self.tools[last].id.is_empty() && self.tools[last].id != id => None,
                (last, _) => last,
            },
        };
        found.unwrap_or_else(|| {
            self.tools.push(ToolSlot { upstream: index, id: String::new(), started: false, pending: String::new() });
            self.tools.len() - 1
        })
    }

    fn tool_delta(&mut self, call: WireToolCallDelta, out: &mut Vec<StreamEvent>) {
        let id = call.id.filter(|i| !i.is_empty());
        let (name, args) = call.function.map(|f| (f.name, f.arguments)).unwrap_or_default();
        let index = self.slot(call.index, id.as_deref());
        let tag = &self.tag;
        let slot = &mut self.tools[index];
        if slot.id.is_empty()
            && let Some(id) = id
        {
            slot.id = id;
        }
        let args = args.unwrap_or_default();
        if !slot.started {
            match name.filter(|n| !n.is_empty()) {
                Some(name) => {
                    slot.started = true;
                    if slot.id.is_empty() {
                        slot.id = format!("call_{tag}_{index}");
                    }
                    out.push(StreamEvent::ToolCallStart { index, id: slot.id.clone(), name });
                    let mut fragment = std::mem::take(&mut slot.pending);
                    fragment.push_str(&args);
                    if !fragment.is_empty() {
                        out.push(StreamEvent::ToolCallArgs { index, fragment });
                    }
                }
                None => slot.pending.push_str(&args),
            }
        } else if !args.is_empty() {
            out.push(StreamEvent::ToolCallArgs { index, fragment: args });
        }
    }

    /// Calls whose name never came still go out, so their arguments are not lost.
    fn flush_unnamed(&mut self, out: &mut Vec<StreamEvent>) {
        for (index, slot) in self.tools.iter_mut().enumerate().filter(|(_, t)| !t.started) {
            slot.started = true;
            if slot.id.is_empty() {
                slot.id = format!("call_{}_{index}", self.tag);
            }
            out.push(StreamEvent::ToolCallStart { index, id: slot.id.clone(), name: String::new() });
            let fragment = std::mem::take(&mut slot.pending);
            if !fragment.is_empty() {
                out.push(StreamEvent::ToolCallArgs { index, fragment });
            }
        }
    }
}

impl StreamDecoder for ChunkDecoder {
    fn decode(&mut self, _event: Option<&str>, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if data.trim() == "[DONE]" {
            self.finished = true;
            return Ok(());
        }
        let c: WireChunk = serde_json::from_str(data)
            .map_err(|e| ProviderError::Protocol(format!("the upstream sent a chunk that is not JSON: {e}")))?;
        if let Some(err) = c.error {
            let msg = err
                .get("message")
                .and_then(|m| m.as_str())
                .or_else(|| err.as_str())
                .unwrap_or("upstream reported an error mid-stream");
            return Err(ProviderError::Reported(msg.to_string()));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { id: c.id, model: c.model });
        }
        if let Some(choice) = c.choices.into_iter().next() {
            let delta = choice.delta.unwrap_or_default();
            if let Some(t) = delta.reasoning_content.or(delta.reasoning).filter(|t| !t.is_empty()) {
                out.push(StreamEvent::Thinking(t));
            }
            if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
                out.push(StreamEvent::Text(t));
            }
            if let Some(t) = delta.refusal.filter(|t| !t.is_empty()) {
                self.refused = true;
                out.push(StreamEvent::Text(t));
            }
            for call in delta.tool_calls {
                self.tool_delta(call, out);
            }
            if let Some(reason) = choice.finish_reason {
                self.finished = true;
                self.flush_unnamed(out);
                let reason = if self.refused { StopReason::ContentFilter } else { stop_reason(&reason) };
                out.push(StreamEvent::Stop(reason));
            }
        }
        if let Some(u) = c.usage {
            out.push(StreamEvent::Usage(TokenUsage::from(u)));
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn decode_all(chunks: &[&str]) -> (Vec<StreamEvent>, bool) {
        decode_with(chunks, AnswerIds::from_seed("decoder"))
    }

    fn decode_with(chunks: &[&str], ids: AnswerIds) -> (Vec<StreamEvent>, bool) {
        let mut d = ChunkDecoder::new(ids);
        let mut out = Vec::new();
        for c in chunks {
            d.decode(None, c, &mut out).unwrap();
        }
        (out, d.is_finished())
    }

    #[test]
    fn decodes_text_reasoning_tools_and_usage() {
        let (events, finished) = decode_all(&[
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"reasoning_content":"Hm."},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#,
            "[DONE]",
        ]);
        assert!(finished);
        assert_eq!(
            events,
            vec![
                StreamEvent::Start { id: "c1".into(), model: "m".into() },
                StreamEvent::Thinking("Hm.".into()),
                StreamEvent::Text("Hi".into()),
                StreamEvent::ToolCallStart { index: 0, id: "call_1".into(), name: "f".into() },
                StreamEvent::ToolCallArgs { index: 0, fragment: "{\"a\"".into() },
                StreamEvent::ToolCallArgs { index: 0, fragment: ":1}".into() },
                StreamEvent::Stop(StopReason::ToolUse),
                StreamEvent::Usage(TokenUsage { prompt_tokens: 5, completion_tokens: 3, ..Default::default() }),
            ]
        );
    }

    #[test]
    fn nulls_read_as_absent() {
        let (events, _) = decode_all(&[
            r#"{"id":null,"model":null,"choices":[{"index":0,"delta":{"content":"Hi","tool_calls":null},"finish_reason":null}]}"#,
            r#"{"id":"x","choices":null,"usage":null}"#,
        ]);
        assert_eq!(events[1], StreamEvent::Text("Hi".into()));
    }

    #[test]
    fn servers_that_repeat_id_and_name_on_every_delta_make_one_call() {
        let (events, _) = decode_all(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":":1}"}}]}}]}"#,
        ]);
        let starts = events.iter().filter(|e| matches!(e, StreamEvent::ToolCallStart { .. })).count();
        assert_eq!(starts, 1, "{events:?}");
        let args: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallArgs { index: 0, fragment } => Some(fragment.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, r#"{"a":1}"#);
    }

    #[test]
    fn calls_without_index_follow_their_ids_and_late_names_wait() {
        let (events, _) = decode_all(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"arguments":"{\"x\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"f","arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{\"y\":2}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        assert_eq!(
            &events[1..],
            &[
                StreamEvent::ToolCallStart { index: 0, id: "a".into(), name: "f".into() },
                StreamEvent::ToolCallArgs { index: 0, fragment: r#"{"x":1}"#.into() },
                StreamEvent::ToolCallStart { index: 1, id: "b".into(), name: "g".into() },
                StreamEvent::ToolCallArgs { index: 1, fragment: r#"{"y":2}"#.into() },
                StreamEvent::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[test]
    fn a_streamed_refusal_is_text_that_stops_as_a_refusal() {
        let (events, _) = decode_all(&[
            r#"{"choices":[{"delta":{"refusal":"I can't help with that."}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(events[1], StreamEvent::Text("I can't help with that.".into()));
        assert_eq!(events[2], StreamEvent::Stop(StopReason::ContentFilter));
    }

    #[test]
    fn in_band_error_and_garbage() {
        let mut d = ChunkDecoder::new(AnswerIds::from_seed("decoder"));
        let err = d.decode(None, r#"{"error":{"message":"overloaded"}}"#, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, ProviderError::Reported(m) if m == "overloaded"));
        assert!(matches!(d.decode(None, "nope", &mut Vec::new()), Err(ProviderError::Protocol(_))));
    }

    fn encode_all(events: Vec<StreamEvent>, include_usage: bool) -> Vec<ChatChunk> {
        let mut e = ChunkEncoder::new("smart", 7, include_usage, AnswerIds::from_seed("encoder"));
        let mut out = Vec::new();
        for ev in events {
            e.encode(ev, &mut out);
        }
        e.finish(&mut out);
        out
    }

    #[test]
    fn encodes_chunks_openai_clients_parse() {
        let out = encode_all(
            vec![
                StreamEvent::Start { id: "msg_1".into(), model: "claude".into() },
                StreamEvent::Text("Hel\"lo".into()),
                StreamEvent::ToolCallStart { index: 0, id: "toolu_1".into(), name: "f".into() },
                StreamEvent::ToolCallArgs { index: 0, fragment: "{\"a\":".into() },
                StreamEvent::Stop(StopReason::ToolUse),
                StreamEvent::Usage(TokenUsage {
                    prompt_tokens: 3,
                    completion_tokens: 2,
                    cached_tokens: 1,
                    ..Default::default()
                }),
            ],
            true,
        );
        let json: Vec<Value> = out.iter().map(|c| serde_json::from_str(&c.data).unwrap()).collect();
        assert_eq!(json.len(), 6);
        assert_eq!(json[0]["choices"][0]["delta"], serde_json::json!({"role": "assistant", "content": ""}));
        assert_eq!(json[1]["choices"][0]["delta"]["content"], "Hel\"lo");
        assert_eq!(json[1]["id"], "msg_1");
        assert_eq!(json[1]["model"], "smart");
        assert_eq!(json[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(json[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{\"a\":");
        assert_eq!(json[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(json[5]["choices"], serde_json::json!([]));
        assert_eq!(json[5]["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        assert_eq!(out[5].kind, ChunkKind::UsageOnly);
        assert_eq!(out[1].kind, ChunkKind::Content);
        let without = encode_all(vec![StreamEvent::Usage(TokenUsage::default())], false);
        assert!(without.iter().all(|c| c.kind != ChunkKind::UsageOnly), "no usage chunk unless asked for");
    }

    #[test]
    fn made_up_ids_come_from_the_answer_ids() {
        // No id for the answer nor for its calls: the decoder and the encoder make them up.
        let chunks = [
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ];
        let seeded = |seed: &str| {
            let ids = AnswerIds::from_seed(seed);
            let (events, _) = decode_with(&chunks, ids);
            let mut e = ChunkEncoder::new("smart", 7, false, ids);
            let mut out = Vec::new();
            for ev in events.iter().cloned() {
                e.encode(ev, &mut out);
            }
            e.finish(&mut out);
            let data: Vec<String> = out.into_iter().map(|c| c.data).collect();
            (events, data)
        };
        let (events, data) = seeded("answer-1");
        assert_eq!(seeded("answer-1"), (events.clone(), data.clone()), "same input, same seed: same bytes");
        let tag = AnswerIds::from_seed("answer-1").tag(12);
        assert_eq!(crate::translate::tool_call_ids(&events), [format!("call_{tag}_0"), format!("call_{tag}_1")]);
        let first: Value = serde_json::from_str(&data[0]).unwrap();
        assert_eq!(first["id"].as_str().unwrap(), AnswerIds::from_seed("answer-1").completion_id());
        let (other, _) = seeded("answer-2");
        let (a, b) = (crate::translate::tool_call_ids(&events), crate::translate::tool_call_ids(&other));
        assert!(a.iter().all(|id| !b.contains(id)), "another answer's calls get other ids: {a:?} {b:?}");
    }

    proptest! {
        /// Whatever the fragmentation, an OpenAI client concatenating `arguments` gets the upstream's
        /// text byte for byte, through decoding and encoding.
        #[test]
        fn tool_arguments_survive_any_chunking(args in "[ -~\u{e9}\u{4e2d}]{0,60}", cuts in proptest::collection::vec(0usize..60, 0..8)) {
            let mut bounds: Vec<usize> = cuts.into_iter().filter(|c| *c <= args.len() && args.is_char_boundary(*c)).collect();
            bounds.extend([0, args.len()]);
            bounds.sort_unstable();
            bounds.dedup();
            let mut chunks = vec![r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":""}}]}}]}"#.to_string()];
            for w in bounds.windows(2) {
                let frag = serde_json::to_string(&args[w[0]..w[1]]).unwrap();
                chunks.push(format!(r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{frag}}}}}]}}}}]}}"#));
            }
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let (events, _) = decode_all(&refs);
            let out = encode_all(events, false);
            let mut got = String::new();
            for c in &out {
                let v: Value = serde_json::from_str(&c.data).unwrap();
                if let Some(a) = v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str() {
                    got.push_str(a);
                }
            }
            prop_assert_eq!(got, args);
        }
    }
}
