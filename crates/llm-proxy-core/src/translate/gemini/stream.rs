//! `streamGenerateContent?alt=sse` → unified stream events.
//!
//! Each SSE `data:` is a whole `GenerateContentResponse` holding only what is new: text and
//! thought parts are deltas, a function call arrives whole in one part, the finish reason comes
//! with the last candidate chunk and usage with (nearly) every chunk. There is no `[DONE]`; a
//! finish reason is what says the answer is complete.

use llm_proxy_protocol::gemini::StreamChunk;
use llm_proxy_protocol::json;

use super::response::{CallIds, prompt_blocked, stop_reason, usage};
use crate::provider::ProviderError;
use crate::translate::{AnswerIds, StreamDecoder};
use crate::unified::{StopReason, StreamEvent};

pub struct StreamChunkDecoder {
    /// The upstream model id, for `Start` when Gemini names no `modelVersion`.
    model: String,
    /// Names the answer and its function calls when Gemini did not.
    answer_ids: AnswerIds,
    /// Set by the first chunk, which also emits `Start`.
    ids: Option<CallIds>,
    /// Tool calls seen so far: the next call's index, and whether the stop is a tool-use one.
    calls: usize,
    finished: bool,
}

impl StreamChunkDecoder {
    pub fn new(model: &str, answer_ids: AnswerIds) -> Self {
        Self { model: model.to_string(), answer_ids, ids: None, calls: 0, finished: false }
    }
}

impl StreamDecoder for StreamChunkDecoder {
    fn decode(&mut self, _event: Option<&str>, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let chunk: StreamChunk = json::decode(data.as_bytes())
            .map_err(|e| ProviderError::Protocol(format!("not a Gemini stream chunk: {e}")))?;
        if let Some(error) = chunk.error {
            let message = match (error.message.is_empty(), error.status) {
                (false, _) => error.message,
                (true, Some(status)) => status,
                (true, None) => "unknown error".to_string(),
            };
            return Err(ProviderError::Reported(message));
        }
        let resp = chunk.response;

        let ids = match &mut self.ids {
            Some(ids) => ids,
            None => {
                out.push(StreamEvent::Start {
                    id: resp.response_id.clone().unwrap_or_else(|| self.answer_ids.response_id()),
                    model: resp.model_version.clone().unwrap_or_else(|| self.model.clone()),
                });
                self.ids.insert(CallIds::new(resp.response_id.as_deref(), &self.answer_ids))
            }
        };

        let candidate = resp.candidates.first();
        for part in candidate.and_then(|c| c.content.as_ref()).map(|c| c.parts.as_slice()).unwrap_or_default() {
            if let Some(call) = &part.function_call {
                let (id, name, arguments) = ids.tool_call(call, part.thought_signature.as_deref());
                let index = self.calls;
                self.calls += 1;
                out.push(StreamEvent::ToolCallStart { index, id, name });
                out.push(StreamEvent::ToolCallArgs { index, fragment: arguments });
            } else if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                // Signature-only parts (empty text carrying a `thoughtSignature`) are skipped.
                out.push(if part.is_thought() {
                    StreamEvent::Thinking(text.to_string())
                } else {
                    StreamEvent::Text(text.to_string())
                });
            }
            // Streamed images and code execution have no unified event.
        }

        if !self.finished {
            let stop = match candidate {
                Some(c) => c.finish_reason.as_ref().map(|r| stop_reason(r, self.calls > 0)),
                None => prompt_blocked(&resp).then_some(StopReason::ContentFilter),
            };
            if let Some(stop) = stop {
                out.push(StreamEvent::Stop(stop));
                self.finished = true;
            }
        }
        if let Some(u) = &resp.usage_metadata {
            out.push(StreamEvent::Usage(usage(u)));
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests;
