//! Complete (non-streamed) answers: unified → a `text_completion` object.

use serde_json::{Value, json};

use super::finish_reason;
use crate::translate::AnswerIds;
use crate::translate::openai::usage_to_wire;
use crate::unified::{ChatResponse, Part};

/// The `text_completion` for a Completions client: the answer's text (its reasoning left out) as
/// the one choice. `model` is the model as the client named it; `created` is in seconds; the id is
/// this answer's own (`cmpl-…`), whatever the upstream called it.
pub fn response_from_unified(r: &ChatResponse, model: &str, created: i64, ids: AnswerIds) -> Value {
    let text: String = r
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let mut out = json!({
        "id": ids.text_completion_id(),
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{
            "text": text,
            "index": 0,
            "logprobs": null,
            "finish_reason": finish_reason(r.stop_reason.as_ref()),
        }],
    });
    if let Some(u) = &r.usage {
        out["usage"] = json!(usage_to_wire(u));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified::StopReason;

    #[test]
    fn reasoning_is_not_part_of_the_text() {
        let r = ChatResponse {
            id: "msg_upstream".into(),
            model: "claude-sonnet-4-5".into(),
            content: vec![
                Part::Thinking { text: "The user wants a story.".into(), signature: Some("sig".into()) },
                Part::Text { text: "Once upon".into(), cache_control: None },
                Part::Text { text: " a time".into(), cache_control: None },
            ],
            stop_reason: Some(StopReason::ContentFilter),
            usage: None,
        };
        let ids = AnswerIds::from_seed("answer");
        let out = response_from_unified(&r, "smart", 7, ids);
        assert_eq!(out["choices"][0]["text"], "Once upon a time");
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out["id"], ids.text_completion_id(), "a completion id, not the upstream's message id");
        assert_eq!(out["model"], "smart");
        assert!(out.get("usage").is_none(), "no usage reported, none made up");
        for (stop, reason) in [(StopReason::ToolUse, "stop"), (StopReason::PauseTurn, "stop")] {
            let r = ChatResponse { stop_reason: Some(stop), ..Default::default() };
            assert_eq!(response_from_unified(&r, "m", 0, ids)["choices"][0]["finish_reason"], reason);
        }
    }
}
