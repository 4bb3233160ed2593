//! The Responses API passthrough, for upstreams that serve it (`responses_api`): the client's body
//! goes to `…/responses` with `model` rewritten, and the answer comes back as sent, read in passing
//! for its id and usage (`llm_proxy_core::translate::responses::{scan_response, scan_event}`).
//!
//! A conversation the gateway stored is sent as what the upstream can read: its
//! `previous_response_id` when this upstream holds that conversation itself, else its items
//! before the request's own input.

use std::borrow::Cow;
use std::collections::VecDeque;

use llm_proxy_core::provider::{ChatChunk, ChatOutput, CompleteResponse, ProviderError, ResponsesCall};
use llm_proxy_core::translate::responses::{input_items, scan_event, scan_response};
use llm_proxy_protocol::openai::{InputItems, ResponsesInput};
use llm_proxy_protocol::sse::SseEvent;

use super::OpenAiCompat;
use crate::sse_stream::{SseHandler, sse_stream};
use crate::upstream::{on_cpu_pool, scrub_reported, to_body_sized};

impl OpenAiCompat {
    pub(super) async fn responses(&self, model: &str, call: ResponsesCall) -> Result<ChatOutput, ProviderError> {
        let ResponsesCall { mut request, history, held_by } = call;
        request.model = model.to_string();
        if !history.is_empty() && held_by.as_deref() != Some(self.name.as_str()) {
            // This upstream never saw the conversation: it gets the items, not their id.
            request.previous_response_id = None;
            let mut items = history.to_vec();
            if let Some(input) = &request.input {
                items.extend(input_items(input));
            }
            let items = InputItems::from_values(&items).map_err(|e| ProviderError::Protocol(e.to_string()))?;
            request.input = Some(ResponsesInput::Items(items));
        }
        let stream = request.is_stream();
        let size = match &request.input {
            Some(ResponsesInput::Items(items)) => items.text_len(),
            _ => 0,
        };
        let body = on_cpu_pool(size, move || to_body_sized(&request, size)).await?;
        let url = self.responses_url.as_ref().ok_or_else(|| {
            ProviderError::Unsupported(format!("provider `{}` does not serve the Responses API", self.name))
        })?;
        if !stream {
            let body = self.upstream.post_for_body(url, self.headers(), body).await?;
            let scan = scan_response(&body)?;
            return Ok(ChatOutput::Complete(CompleteResponse { usage: scan.usage, id: scan.id, body }));
        }
        let resp = self.upstream.post(url, self.headers(), body).await?;
        let handler = Passthrough { finished: false, secret: self.upstream.secret.clone() };
        let t = &self.upstream.timeouts;
        Ok(ChatOutput::Stream(sse_stream(resp, t.first_byte, t.between_chunks, handler)))
    }
}

/// Events go to the client as received, with their names; the stream is complete at
/// `response.completed` or `response.incomplete`, and `response.failed` or `error` is the
/// upstream's failure.
struct Passthrough {
    finished: bool,
    secret: Option<secrecy::SecretString>,
}

impl SseHandler for Passthrough {
    type Item = ChatChunk;

    fn event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<bool, ProviderError> {
        let scan = scan_event(event.event.as_deref(), &event.data);
        if let Some(message) = scan.error {
            return Err(scrub_reported(ProviderError::Reported(message), self.secret.as_ref()));
        }
        self.finished |= scan.finished;
        let name = event.event.map(|e| match e.as_str() {
            // The names of nearly every event, without an allocation per event.
            "response.output_text.delta" => Cow::Borrowed("response.output_text.delta"),
            "response.function_call_arguments.delta" => Cow::Borrowed("response.function_call_arguments.delta"),
            "response.reasoning_summary_text.delta" => Cow::Borrowed("response.reasoning_summary_text.delta"),
            _ => Cow::Owned(e),
        });
        out.push_back(ChatChunk { event: name, data: event.data, usage: scan.usage, kind: scan.kind });
        Ok(scan.finished)
    }

    fn finished(&self) -> bool {
        self.finished
    }
}
