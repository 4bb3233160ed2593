//! Unified stream events → `text_completion` chunks, for a Completions client of a chat model.

use super::finish_reason;
use crate::provider::{ChatChunk, ChunkKind, TokenUsage};
use crate::translate::openai::usage_to_wire;
use crate::translate::{AnswerIds, StreamEncoder, push_json_str};
use crate::unified::{StopReason, StreamEvent};

/// Writes the chunks OpenAI streams a completion in: one per piece of text, each with its
/// `choices[0].text`; then one with an empty text and the `finish_reason`; then, when the client
/// set `stream_options.include_usage`, one with empty `choices` and the `usage`. (The relay ends
/// the stream with `data: [DONE]`.) Chunks are formatted by hand around a head made once: this
/// runs for every token.
pub struct CompletionEncoder {
    /// `{"id":..,"object":"text_completion","created":..,"model":..,"choices":`
    head: String,
    include_usage: bool,
    stop: Option<StopReason>,
    usage: Option<TokenUsage>,
}

impl CompletionEncoder {
    /// `model` is the model as the client named it; `created` is in seconds; `ids` names the
    /// completion.
    pub fn new(model: &str, created: i64, include_usage: bool, ids: AnswerIds) -> Self {
        let mut head = String::with_capacity(128);
        head.push_str("{\"id\":");
        push_json_str(&mut head, &ids.text_completion_id());
        head.push_str(",\"object\":\"text_completion\",\"created\":");
        head.push_str(&created.to_string());
        head.push_str(",\"model\":");
        push_json_str(&mut head, model);
        head.push_str(",\"choices\":");
        Self { head, include_usage, stop: None, usage: None }
    }

    /// One chunk whose only choice has `text` (a JSON string) and `finish` (JSON).
    fn choice(&self, text: &str, finish: &str, kind: ChunkKind) -> ChatChunk {
        let mut s = String::with_capacity(self.head.len() + text.len() + 64);
        s.push_str(&self.head);
        s.push_str("[{\"text\":");
        s.push_str(text);
        s.push_str(",\"index\":0,\"logprobs\":null,\"finish_reason\":");
        s.push_str(finish);
        s.push_str("}]}");
        chunk(s, kind)
    }
}

fn chunk(data: String, kind: ChunkKind) -> ChatChunk {
    ChatChunk { event: None, data, usage: None, kind }
}

impl StreamEncoder for CompletionEncoder {
    fn encode(&mut self, event: StreamEvent, out: &mut Vec<ChatChunk>) {
        match event {
            StreamEvent::Text(text) if !text.is_empty() => {
                let mut t = String::with_capacity(text.len() + 2);
                push_json_str(&mut t, &text);
                out.push(self.choice(&t, "null", ChunkKind::Content));
            }
            StreamEvent::Stop(reason) => self.stop = Some(reason),
            StreamEvent::Usage(u) => self.usage = Some(u),
            // Reasoning is not the completion's text; the upstream's id is not a completion's; a
            // request without tools gets no tool calls.
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<ChatChunk>) {
        let finish = format!("\"{}\"", finish_reason(self.stop.as_ref()));
        out.push(self.choice("\"\"", &finish, ChunkKind::Meta));
        if self.include_usage
            && let Some(u) = &self.usage
        {
            let usage = serde_json::to_string(&usage_to_wire(u)).unwrap_or_default();
            out.push(chunk(format!("{}[],\"usage\":{usage}}}", self.head), ChunkKind::UsageOnly));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run(events: Vec<StreamEvent>, include_usage: bool) -> Vec<ChatChunk> {
        let mut e = CompletionEncoder::new("smart", 1_690_759_702, include_usage, AnswerIds::from_seed("answer"));
        let mut out = Vec::new();
        for ev in events {
            e.encode(ev, &mut out);
        }
        e.finish(&mut out);
        out
    }

    #[test]
    fn text_deltas_then_the_finish_then_usage_when_asked() {
        let usage = TokenUsage { prompt_tokens: 5, completion_tokens: 7, ..Default::default() };
        let events = vec![
            StreamEvent::Start { id: "msg_1".into(), model: "claude".into() },
            StreamEvent::Thinking("Hmm.".into()),
            StreamEvent::Text("This".into()),
            StreamEvent::Text(String::new()),
            StreamEvent::Text(" is \"it\"\n".into()),
            StreamEvent::Stop(StopReason::MaxTokens),
            StreamEvent::Usage(usage),
        ];
        let out = run(events.clone(), true);
        let data: Vec<Value> = out.iter().map(|c| serde_json::from_str(&c.data).unwrap()).collect();
        let kinds: Vec<ChunkKind> = out.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ChunkKind::Content, ChunkKind::Content, ChunkKind::Meta, ChunkKind::UsageOnly]);
        let texts: Vec<&str> = data[..3].iter().map(|d| d["choices"][0]["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["This", " is \"it\"\n", ""]);
        assert_eq!(data[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(data[0]["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(data[3]["choices"], json!([]));
        assert_eq!(data[3]["usage"]["total_tokens"], 12);
        for d in &data {
            assert_eq!((d["object"].as_str(), d["model"].as_str()), (Some("text_completion"), Some("smart")));
            assert_eq!(d["id"], data[0]["id"], "one id for the whole stream");
        }
        assert_eq!(run(events, false).len(), 3, "no usage chunk unless asked for");
        let ended = run(Vec::new(), true);
        assert_eq!(ended.len(), 1, "no usage known: none made up");
        assert!(ended[0].data.contains("\"finish_reason\":\"stop\""));
    }
}
