//! The OpenAI Responses API ⇄ the unified model, client side: a Responses client (Codex CLI, the
//! `openai` SDKs' `client.responses`, the Agents SDK, the Vercel AI SDK) served by any upstream.
//!
//! Its request becomes unified (`request_to_unified`), after the items of the conversation so far
//! that the gateway stored for `previous_response_id`; unified answers are encoded as a `response`
//! object (`response_from_unified`) or its stream of events (`ResponsesEncoder`, `failed_event`).
//! What the answer repeats of the request (`instructions`, `tools`, `temperature`...) is taken
//! from it beforehand, in a `ResponseMeta`. Same protocol on both sides: nothing is translated,
//! and `scan_response` and `scan_event` read the id and usage off the answer in passing.
//!
//! The translated request keeps none of the Responses fields without a unified meaning (`store`,
//! `include`, `truncation`, `prompt_cache_key`...): they do not exist in Chat Completions, which is
//! what an OpenAI-protocol upstream speaks, and OpenAI refuses fields it does not know. Its
//! `extra.from` still says OpenAI, the family its effort levels and roles come from.
//!
//! Usage: `input_tokens` counts the cached tokens, as unified `prompt_tokens` does, so the counts
//! map one to one.

mod meta;
mod request_in;
mod response;
mod scan;
mod stream;

pub use meta::ResponseMeta;
pub use request_in::request_to_unified;
pub use response::response_from_unified;
pub use scan::{EventScan, ResponseScan, completed_response, response_id, scan_event, scan_response};
pub use stream::{FailureCode, KeepAnswer, ResponsesEncoder, failed_event};

use llm_proxy_protocol::openai::{InputTokensDetails, OutputTokensDetails, ResponseUsage, ResponsesInput};
use serde_json::{Value, json};

use crate::provider::TokenUsage;

/// The items of a request's input, as the conversation of a later `previous_response_id` starts
/// with them: a text input is the user message it stands for.
pub fn input_items(input: &ResponsesInput) -> Vec<Value> {
    match input {
        ResponsesInput::Text(text) => {
            vec![json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})]
        }
        // Each item was checked to be a JSON object when the request was decoded.
        ResponsesInput::Items(items) => items.iter().filter_map(|raw| serde_json::from_str(raw.get()).ok()).collect(),
    }
}

/// `input_items` as a JSON array's text, the items' own text kept: what the gateway stores of a
/// turn, without decoding it.
pub fn input_items_text(input: &ResponsesInput) -> String {
    match input {
        // The user message a text input stands for (`input_items`), written directly.
        ResponsesInput::Text(text) => {
            let mut out = String::with_capacity(text.len() + 80);
            out.push_str(r#"[{"type":"message","role":"user","content":[{"type":"input_text","text":"#);
            crate::translate::push_json_str(&mut out, text);
            out.push_str("}]}]");
            out
        }
        ResponsesInput::Items(items) => {
            let mut out = String::with_capacity(items.text_len() + items.len() + 2);
            out.push('[');
            for (i, raw) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(raw.get());
            }
            out.push(']');
            out
        }
    }
}

/// The output items of a `response` object, which follow its input in the conversation a later
/// `previous_response_id` continues.
pub fn output_items(response: &Value) -> Vec<Value> {
    response["output"].as_array().cloned().unwrap_or_default()
}

/// The Responses usage object, every detail present as OpenAI sends it.
fn usage_to_wire(u: &TokenUsage) -> ResponseUsage {
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: Some(InputTokensDetails {
            cached_tokens: u.cached_tokens,
            cache_write_tokens: u.cache_write_tokens,
        }),
        output_tokens: u.completion_tokens,
        output_tokens_details: Some(OutputTokensDetails { reasoning_tokens: u.reasoning_tokens }),
        total_tokens: u.prompt_tokens + u.completion_tokens,
    }
}

fn usage_from_wire(u: &ResponseUsage) -> TokenUsage {
    let input = u.input_tokens_details.unwrap_or_default();
    TokenUsage {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        cached_tokens: input.cached_tokens,
        cache_write_tokens: input.cache_write_tokens,
        reasoning_tokens: u.output_tokens_details.unwrap_or_default().reasoning_tokens,
    }
}

#[cfg(test)]
mod fixture_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use llm_proxy_protocol::json::decode;
    use llm_proxy_protocol::openai::ResponsesRequest;

    #[test]
    fn usage_maps_one_to_one() {
        let u = TokenUsage {
            prompt_tokens: 100,
            completion_tokens: 20,
            cached_tokens: 60,
            cache_write_tokens: 5,
            reasoning_tokens: 12,
        };
        let wire = usage_to_wire(&u);
        assert_eq!(
            serde_json::to_value(wire).unwrap(),
            json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 5},
                "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 120})
        );
        assert_eq!(usage_from_wire(&wire), u);
    }

    #[test]
    fn a_turn_is_stored_as_its_input_then_its_output() {
        let text: ResponsesRequest = decode(br#"{"model":"m","input":"Hi"}"#).unwrap();
        assert_eq!(
            input_items(text.input.as_ref().unwrap()),
            [json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]})]
        );
        let items: ResponsesRequest =
            decode(br#"{"model":"m","input":[{"role":"user","content":"a"},{"type":"function_call_output","call_id":"c","output":"1"}]}"#).unwrap();
        assert_eq!(
            input_items(items.input.as_ref().unwrap()),
            [
                json!({"role": "user", "content": "a"}),
                json!({"type": "function_call_output", "call_id": "c", "output": "1"})
            ]
        );
        let response = json!({"id": "resp_1", "output": [{"type": "message", "id": "msg_1"}]});
        assert_eq!(output_items(&response), [json!({"type": "message", "id": "msg_1"})]);
        assert!(output_items(&json!({"status": "failed"})).is_empty());
        let tricky: ResponsesRequest = decode(br#"{"model":"m","input":"say \"hi\"\n\u00e9\\"}"#).unwrap();
        for r in [&text, &items, &tricky] {
            let input = r.input.as_ref().unwrap();
            let parsed: Value = serde_json::from_str(&input_items_text(input)).unwrap();
            assert_eq!(parsed, Value::Array(input_items(input)), "the same items, as text");
        }
    }
}
