//! Complete (non-streamed) answers: unified → a `response` object, and the output items it and a
//! stream share.

use serde_json::{Value, json};

use super::meta::{Outcome, ResponseMeta};
use crate::time::UnixMillis;
use crate::translate::AnswerIds;
use crate::unified::{ChatResponse, Part, StopReason};

/// The `response` object for a Responses client. Its id is `meta`'s; `ids` names its output items.
/// `completed_at` is when the answer was complete.
pub fn response_from_unified(r: &ChatResponse, meta: &ResponseMeta, completed_at: UnixMillis, ids: AnswerIds) -> Value {
    let mut output = Vec::new();
    // The text of the message being gathered: consecutive text parts make one message.
    let mut text: Option<String> = None;
    let flush = |output: &mut Vec<Value>, text: &mut Option<String>| {
        if let Some(text) = text.take() {
            output.push(message_item(&ids.item_id("msg", output.len()), "completed", &text));
        }
    };
    for part in &r.content {
        match part {
            Part::Text { text: t, .. } if !t.is_empty() => text.get_or_insert_with(String::new).push_str(t),
            Part::Thinking { text: t, .. } if !t.is_empty() => {
                flush(&mut output, &mut text);
                output.push(reasoning_item(&ids.item_id("rs", output.len()), t));
            }
            Part::ToolCall { id, name, arguments } => {
                flush(&mut output, &mut text);
                output.push(function_call_item(&ids.item_id("fc", output.len()), "completed", id, name, arguments));
            }
            _ => {}
        }
    }
    flush(&mut output, &mut text);
    let outcome = outcome(r.stop_reason.as_ref(), completed_at);
    if matches!(outcome, Outcome::Incomplete { .. })
        && let Some(last) = output.last_mut().and_then(Value::as_object_mut)
        && last.contains_key("status")
    {
        last.insert("status".into(), "incomplete".into());
    }
    meta.object(outcome, output, r.usage.as_ref())
}

/// A response is incomplete when it was cut short, at the token limit or by a filter.
pub(super) fn outcome(stop: Option<&StopReason>, completed_at: UnixMillis) -> Outcome<'static> {
    match stop {
        Some(StopReason::MaxTokens) => Outcome::Incomplete { reason: "max_output_tokens" },
        Some(StopReason::ContentFilter) => Outcome::Incomplete { reason: "content_filter" },
        _ => Outcome::Completed { at: completed_at },
    }
}

/// An assistant `message` item with one `output_text` part.
pub(super) fn message_item(id: &str, status: &str, text: &str) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": [output_text(text)]})
}

pub(super) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `reasoning` item whose summary is the thinking the upstream showed.
pub(super) fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]})
}

pub(super) fn function_call_item(id: &str, status: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "arguments": arguments, "call_id": call_id, "name": name})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TokenUsage;
    use llm_proxy_protocol::json::decode;

    fn meta() -> ResponseMeta {
        let r = decode(br#"{"model":"smart","input":"x"}"#).unwrap();
        ResponseMeta::of(&r, UnixMillis::from_millis(1_000_000), AnswerIds::from_seed("meta"))
    }

    fn text(t: &str) -> Part {
        Part::Text { text: t.into(), cache_control: None }
    }

    #[test]
    fn items_follow_the_models_order() {
        let ids = AnswerIds::from_seed("answer");
        let r = ChatResponse {
            id: "upstream-id".into(),
            model: "claude".into(),
            content: vec![
                Part::Thinking { text: "Weather first.".into(), signature: Some("sig".into()) },
                text("Let me "),
                text("check."),
                Part::ToolCall {
                    id: "toolu_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                },
                Part::ToolCall {
                    id: "toolu_2".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Rome"}"#.into(),
                },
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Some(TokenUsage { prompt_tokens: 10, completion_tokens: 5, ..Default::default() }),
        };
        let out = response_from_unified(&r, &meta(), UnixMillis::from_millis(2_000_000), ids);
        assert_eq!(out["id"], meta().id, "the gateway's id, under which it stores the response");
        assert_eq!(out["status"], "completed");
        assert_eq!(out["completed_at"], 2000);
        assert_eq!(out["model"], "smart", "the model the client asked for");
        let output = out["output"].as_array().unwrap();
        let types: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["reasoning", "message", "function_call", "function_call"]);
        assert_eq!(output[0]["summary"], json!([{"type": "summary_text", "text": "Weather first."}]));
        assert_eq!(output[1]["content"][0]["text"], "Let me check.");
        assert_eq!(output[3]["call_id"], "toolu_2");
        assert_eq!(output[3]["arguments"], r#"{"city":"Rome"}"#);
        assert_eq!(output[3]["id"], ids.item_id("fc", 3));
        assert_eq!(out["usage"]["total_tokens"], 15);
    }

    #[test]
    fn a_cut_answer_is_incomplete() {
        let ids = AnswerIds::from_seed("answer");
        for (stop, reason) in
            [(StopReason::MaxTokens, "max_output_tokens"), (StopReason::ContentFilter, "content_filter")]
        {
            let r = ChatResponse { content: vec![text("Once upon")], stop_reason: Some(stop), ..Default::default() };
            let out = response_from_unified(&r, &meta(), UnixMillis::from_millis(0), ids);
            assert_eq!(out["status"], "incomplete");
            assert_eq!(out["incomplete_details"], json!({"reason": reason}));
            assert_eq!(out["completed_at"], Value::Null);
            assert_eq!(out["output"][0]["status"], "incomplete");
            assert_eq!(out["usage"], Value::Null, "no usage reported, none made up");
        }
        let empty = response_from_unified(&ChatResponse::default(), &meta(), UnixMillis::from_millis(0), ids);
        assert_eq!((empty["status"].as_str(), empty["output"].clone()), (Some("completed"), json!([])));
    }
}
