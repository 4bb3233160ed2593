//! The Gemini API as an upstream (`generativelanguage.googleapis.com/v1beta`): unified requests
//! to `generateContent` / `countTokens` / `batchEmbedContents` bodies, and Gemini's answers,
//! streamed or not, back to unified values. Pure functions; the adapter does the I/O.
//!
//! Gemini-specific state that a client cannot carry (a function call's `thoughtSignature` and
//! Gemini's own call id) travels inside the unified tool-call id; see `call_id`.

mod call_id;
mod embeddings;
mod request;
mod response;
mod stream;

use llm_proxy_protocol::gemini::{CountTokensResponse, ErrorBody};
use llm_proxy_protocol::json;

pub use call_id::without_signature as call_id_without_signature;
pub use embeddings::{embeddings_request, embeddings_response};
pub use request::{Contents, count_tokens_body, request_from_unified};
pub use response::response_to_unified;
pub use stream::StreamChunkDecoder;

use crate::provider::ProviderError;

/// The input token count of a `countTokens` answer.
pub fn count_tokens_result(body: &[u8]) -> Result<u64, ProviderError> {
    json::decode::<CountTokensResponse>(body)
        .map(|r| r.total_tokens)
        .map_err(|e| ProviderError::Protocol(format!("not a Gemini countTokens response: {e}")))
}

/// The message and canonical status (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...) of a Google
/// error body, `None` if the body is something else. Also reads the one-element array form that
/// the non-SSE streaming endpoint answers with.
pub fn error_message(body: &[u8]) -> Option<(String, Option<String>)> {
    // The array form first: serde would also read `[{...}]` as an `ErrorBody` (a struct from a
    // sequence), with the wrong object as its `error`.
    let error = match serde_json::from_slice::<Vec<ErrorBody>>(body) {
        Ok(list) => list.into_iter().next()?.error,
        Err(_) => serde_json::from_slice::<ErrorBody>(body).ok()?.error,
    };
    Some((error.message, error.status))
}

/// The resource name Gemini wants in a body (`models/gemini-2.5-flash`); ids that already name a
/// resource (`models/…`, `tunedModels/…`) are kept.
fn model_resource(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_string()
    } else {
        format!("models/{model}")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON object, nested a few levels: the tool-call arguments of the property tests.
    pub(in crate::translate::gemini) fn json_object() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Few enough digits that serde_json's default (not correctly rounded) float parser
            // reads them back exactly; the property is about fragments, not float parsing.
            (-1_000_000_000i64..1_000_000_000).prop_map(|i| Value::from(i as f64 / 1000.0)),
            ".{0,12}".prop_map(Value::String),
        ];
        let value = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map(".{0,8}", value, 0..6).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    #[test]
    fn count_tokens_answer_is_read() {
        let body = include_bytes!("../../../fixtures/gemini/count_tokens_response.json");
        assert_eq!(count_tokens_result(body).unwrap(), 31);
        assert!(matches!(count_tokens_result(b"{}"), Err(ProviderError::Protocol(_))));
        assert!(matches!(count_tokens_result(b"not json"), Err(ProviderError::Protocol(_))));
    }

    #[test]
    fn google_error_bodies_are_read() {
        let body = include_bytes!("../../../fixtures/gemini/error_invalid_argument.json");
        let (message, status) = error_message(body).unwrap();
        assert_eq!(message, "API key not valid. Please pass a valid API key.");
        assert_eq!(status.as_deref(), Some("INVALID_ARGUMENT"));

        let array =
            br#"[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}]"#;
        assert_eq!(
            error_message(array),
            Some(("Resource has been exhausted".into(), Some("RESOURCE_EXHAUSTED".into())))
        );
        assert_eq!(error_message(br#"{"error":{"message":"m"}}"#), Some(("m".into(), None)));
        assert_eq!(error_message(b"<html>502</html>"), None);
        assert_eq!(error_message(br#"{"candidates":[]}"#), None);
    }

    #[test]
    fn model_resource_names() {
        assert_eq!(model_resource("gemini-2.5-flash"), "models/gemini-2.5-flash");
        assert_eq!(model_resource("models/gemini-2.5-flash"), "models/gemini-2.5-flash");
        assert_eq!(model_resource("tunedModels/my-model"), "tunedModels/my-model");
    }
}
