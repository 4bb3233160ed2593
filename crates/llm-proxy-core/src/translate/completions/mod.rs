//! OpenAI's legacy Completions API ⇄ the unified model, client side: a Completions client (the
//! `openai` SDKs' `client.completions`, LangChain's `OpenAI` LLM, evaluation harnesses) served by
//! an upstream that has chat models only (Anthropic, Gemini, GLM).
//!
//! The prompt becomes one user message (`request_to_unified`); the answer's text is the
//! completion, encoded as a `text_completion` object (`response_from_unified`) or its chunks
//! (`CompletionEncoder`). What a chat model cannot do — several prompts, token ids, `n` or
//! `best_of` above 1, `echo`, `suffix`, `logprobs` — is refused by name. Reasoning is not part of
//! a completion's text, and without tools there are no tool calls.
//!
//! Same protocol on both sides (an OpenAI-protocol upstream serves `/completions` itself): nothing
//! is translated, and the answer is scanned like a chat answer (`ChunkScan`), whose `choices`,
//! `finish_reason` and `usage` it shares.

mod request_in;
mod response;
mod stream;

pub use request_in::request_to_unified;
pub use response::response_from_unified;
pub use stream::CompletionEncoder;

use crate::unified::StopReason;

/// A completion's `finish_reason`: the API knows `stop`, `length` and `content_filter` only.
fn finish_reason(reason: Option<&StopReason>) -> &'static str {
    match reason {
        Some(StopReason::MaxTokens) => "length",
        Some(StopReason::ContentFilter) => "content_filter",
        _ => "stop",
    }
}

#[cfg(test)]
mod fixture_tests;
