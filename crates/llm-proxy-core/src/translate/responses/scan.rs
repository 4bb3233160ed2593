//! Reading a same-protocol answer in passing: a Responses upstream's body or events are forwarded
//! as received, and the gateway only needs the usage, the end, and an in-band error.

use llm_proxy_protocol::openai::ResponseUsage;
use serde::Deserialize;

use super::usage_from_wire;
use crate::provider::{ChunkKind, ProviderError, TokenUsage};
use crate::translate::leading_type;

/// What the gateway reads of a complete `response` object: its id (the answer to keep is named
/// by it) and usage, in one pass that skips the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseScan {
    pub id: Option<String>,
    pub usage: Option<TokenUsage>,
}

pub fn scan_response(body: &[u8]) -> Result<ResponseScan, ProviderError> {
    #[derive(Deserialize)]
    struct IdAndUsage {
        /// An id that is not a string leaves the answer unkept, not the request failed.
        #[serde(default, deserialize_with = "string_or_none")]
        id: Option<String>,
        #[serde(default)]
        usage: Option<ResponseUsage>,
    }
    let r: IdAndUsage = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Protocol(format!("not a Responses API response: {e}")))?;
    Ok(ResponseScan { id: r.id, usage: r.usage.as_ref().map(usage_from_wire) })
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// What one forwarded event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventScan {
    pub kind: ChunkKind,
    /// The response's usage, on the events that end it.
    pub usage: Option<TokenUsage>,
    /// `response.completed` or `response.incomplete`: the answer is complete.
    pub finished: bool,
    /// The message of `response.failed` or of an `error` event.
    pub error: Option<String>,
}

/// Scans one event of a Responses stream. Deltas, nearly all of a stream, are classified by name
/// without being parsed; only the events that end the response are (they carry its usage).
/// `event` is the SSE event name; without one, the `type` is read off the front of `data`.
pub fn scan_event(event: Option<&str>, data: &str) -> EventScan {
    let mut scan = EventScan { kind: ChunkKind::Meta, usage: None, finished: false, error: None };
    let name = event.or_else(|| leading_type(data)).unwrap_or_default();
    match name {
        "response.completed" | "response.incomplete" | "response.failed" => {
            let Ok(Ending { response }) = serde_json::from_str::<Ending>(data) else {
                scan.error = (name == "response.failed").then(|| UNREADABLE.to_string());
                return scan;
            };
            scan.usage = response.usage.as_ref().map(usage_from_wire);
            if name == "response.failed" {
                scan.error = Some(response.error.map_or_else(|| UNREADABLE.to_string(), |e| e.message));
            } else {
                scan.finished = true;
            }
        }
        "error" => {
            scan.error =
                Some(serde_json::from_str::<ErrorScan>(data).map_or_else(|_| UNREADABLE.to_string(), |e| e.message));
        }
        delta if delta.ends_with(".delta") => scan.kind = ChunkKind::Content,
        _ => {}
    }
    scan
}

const UNREADABLE: &str = "the upstream reported an error it did not describe";

/// The id of a complete `response` object, read without decoding the rest (the gateway keeps the
/// object's text as it came).
pub fn response_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }
    serde_json::from_slice::<IdOnly>(body).ok().map(|r| r.id)
}

/// The `response` object of a `response.completed` (or `.incomplete`) event, as its text, with its
/// id: the answer to keep of a stream.
pub fn completed_response(data: &str) -> Option<(String, &str)> {
    #[derive(Deserialize)]
    struct Completed<'a> {
        #[serde(borrow)]
        response: &'a serde_json::value::RawValue,
    }
    let raw = serde_json::from_str::<Completed<'_>>(data).ok()?.response.get();
    Some((response_id(raw.as_bytes())?, raw))
}

#[derive(Deserialize)]
struct Ending {
    response: EndingResponse,
}

#[derive(Deserialize)]
struct EndingResponse {
    #[serde(default)]
    usage: Option<ResponseUsage>,
    #[serde(default)]
    error: Option<ErrorScan>,
}

#[derive(Deserialize)]
struct ErrorScan {
    #[serde(default)]
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_to_keep_is_read_off_its_text() {
        assert_eq!(
            response_id(br#"{"object":"response","output":[{"id":"msg_1"}],"id":"resp_9"}"#).as_deref(),
            Some("resp_9")
        );
        assert_eq!(response_id(b"[]"), None);
        let data = r#"{"type":"response.completed","sequence_number":7,"response":{"id":"resp_2","output":[]}}"#;
        assert_eq!(completed_response(data), Some(("resp_2".to_string(), r#"{"id":"resp_2","output":[]}"#)));
        assert_eq!(completed_response(r#"{"type":"response.completed"}"#), None);
    }

    #[test]
    fn id_and_usage_are_read_off_a_response_without_its_output() {
        let body = br#"{"id":"resp_1","output":[{"type":"anything","deep":[[[]]]}],"usage":{"input_tokens":328,
            "input_tokens_details":{"cached_tokens":300,"cache_write_tokens":0},"output_tokens":52,
            "output_tokens_details":{"reasoning_tokens":10},"total_tokens":380}}"#;
        let scan = scan_response(body).unwrap();
        assert_eq!(scan.id.as_deref(), Some("resp_1"));
        let u = scan.usage.unwrap();
        assert_eq!(
            u,
            TokenUsage {
                prompt_tokens: 328,
                completion_tokens: 52,
                cached_tokens: 300,
                cache_write_tokens: 0,
                reasoning_tokens: 10
            }
        );
        assert_eq!(scan_response(br#"{"usage":null}"#).unwrap(), ResponseScan { id: None, usage: None });
        assert!(matches!(scan_response(b"{"), Err(ProviderError::Protocol(_))));
        assert_eq!(scan_response(br#"{"id":7,"usage":null}"#).unwrap().id, None);
    }

    #[test]
    fn deltas_are_content_and_are_not_parsed() {
        for name in [
            "response.output_text.delta",
            "response.function_call_arguments.delta",
            "response.reasoning_summary_text.delta",
        ] {
            // Not JSON at all: a parse would notice; the scan must not try.
            let scan = scan_event(Some(name), "{ this is not parsed");
            assert_eq!(scan, EventScan { kind: ChunkKind::Content, usage: None, finished: false, error: None });
        }
        for name in
            ["response.created", "response.output_item.added", "response.output_text.done", "response.something_new"]
        {
            assert_eq!(scan_event(Some(name), "{ not parsed either").kind, ChunkKind::Meta);
        }
        let unnamed = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"#;
        assert_eq!(scan_event(None, unnamed).kind, ChunkKind::Content);
    }

    #[test]
    fn the_ending_events_carry_usage_and_errors() {
        let done = r#"{"type":"response.completed","response":{"id":"resp_1","status":"completed","output":[],
            "usage":{"input_tokens":37,"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}},"sequence_number":9}"#;
        let scan = scan_event(Some("response.completed"), done);
        assert!(scan.finished);
        assert_eq!(scan.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((37, 11)));
        let cut = r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":null}}"#;
        assert!(scan_event(None, cut).finished);
        let failed = r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"The model failed to generate a response."},"usage":null}}"#;
        let scan = scan_event(Some("response.failed"), failed);
        assert_eq!(scan.error.as_deref(), Some("The model failed to generate a response."));
        assert!(!scan.finished);
        let error = r#"{"type":"error","code":"ERR_SOMETHING","message":"Something went wrong","param":null,"sequence_number":1}"#;
        assert_eq!(scan_event(Some("error"), error).error.as_deref(), Some("Something went wrong"));
        assert!(scan_event(Some("error"), "oops").error.is_some());
    }
}
