//! What the mock keeps of each request, so tests can assert what the gateway sent: served at
//! `/_mock/requests`. Secrets are not kept, except `authorization` (a test proves with it which
//! upstream key the gateway used); the Anthropic and Gemini key headers are kept as booleans.

use axum::http::HeaderMap;
use serde_json::Value;

/// One request as the mock received it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub headers: RecordedHeaders,
    /// The query string, with the value of any `key=` parameter (Gemini's API key) replaced by
    /// `REDACTED`.
    pub query: Option<String>,
}

/// The headers that tell how the gateway spoke to a provider.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecordedHeaders {
    /// Every header name, lower case, in the order received.
    pub names: Vec<String>,
    /// Whether a non-empty `x-api-key` (Anthropic's key header) came.
    pub x_api_key: bool,
    pub anthropic_version: Option<String>,
    pub anthropic_beta: Option<String>,
    /// Whether a non-empty `x-goog-api-key` (Gemini's key header) came.
    pub x_goog_api_key: bool,
    pub content_type: Option<String>,
}

impl Recorded {
    pub(crate) fn new(path: &str, headers: &HeaderMap, query: Option<&str>, body: Value) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let present = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
        Recorded {
            path: path.into(),
            authorization: text("authorization"),
            body,
            headers: RecordedHeaders {
                names: headers.keys().map(|k| k.as_str().to_string()).collect(),
                x_api_key: present("x-api-key"),
                anthropic_version: text("anthropic-version"),
                anthropic_beta: text("anthropic-beta"),
                x_goog_api_key: present("x-goog-api-key"),
                content_type: text("content-type"),
            },
            query: query.map(redact_key),
        }
    }
}

fn redact_key(query: &str) -> String {
    query
        .split('&')
        .map(|pair| if pair.starts_with("key=") { "key=REDACTED" } else { pair })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `name` in a query string (no percent-decoding: the mock's parameters are plain).
pub(crate) fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gemini_key_is_not_kept() {
        assert_eq!(redact_key("alt=sse&key=secret"), "alt=sse&key=REDACTED");
        assert_eq!(query_param(Some("alt=sse&key=k"), "key"), Some("k"));
        assert_eq!(query_param(Some("alternative=1"), "alt"), None);
    }
}
