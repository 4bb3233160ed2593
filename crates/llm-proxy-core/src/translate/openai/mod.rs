//! The OpenAI Chat Completions protocol ⇄ the unified model.
//!
//! Client side: an OpenAI request becomes unified (`request_to_unified`), and unified answers are
//! encoded as a `chat.completion` (`response_from_unified`) or `chat.completion.chunk`s
//! (`ChunkEncoder`). Upstream side: a unified request becomes an OpenAI body for an
//! OpenAI-protocol server (`request_from_unified`, shaped by its `Dialect`), whose answers come
//! back as unified values (`response_to_unified`, `ChunkDecoder`).
//!
//! Reasoning text travels as `reasoning_content`, DeepSeek's field, which most OpenAI-compatible
//! servers (DeepSeek, vLLM, GLM, Qwen) use; OpenRouter's `reasoning` is read too.

mod request_in;
mod request_out;
mod response;
mod stream;

pub use request_in::request_to_unified;
pub use request_out::{ChatMessages, Dialect, request_from_unified};
pub use response::{response_from_unified, response_to_unified};
pub use stream::{ChunkDecoder, ChunkEncoder};

use crate::provider::TokenUsage;
use crate::translate::AnswerIds;
use crate::unified::StopReason;
use llm_proxy_protocol::openai::{CompletionTokensDetails, PromptTokensDetails, Usage};

/// The tag in the tool-call ids an answer's calls get when the upstream sent none
/// (`call_<tag>_<n>`): `call_0` in every turn would collide in the history a later request sends
/// to Anthropic.
fn call_tag(ids: &AnswerIds) -> String {
    ids.tag(12)
}

/// OpenAI's `finish_reason` for a stop reason.
pub fn finish_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::PauseTurn => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

/// The stop reason of an OpenAI `finish_reason`; unknown values are a natural end.
pub fn stop_reason(finish: &str) -> StopReason {
    match finish {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// The OpenAI usage object, details included only where there is something to say.
pub fn usage_to_wire(u: &TokenUsage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
        prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: Some(u.cached_tokens) }),
        completion_tokens_details: Some(CompletionTokensDetails { reasoning_tokens: Some(u.reasoning_tokens) }),
        prompt_cache_hit_tokens: None,
    }
}
