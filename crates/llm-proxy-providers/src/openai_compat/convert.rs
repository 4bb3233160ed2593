//! Pure functions from upstream OpenAI-protocol bytes to the gateway's events. Tested on fixtures.

use llm_proxy_core::provider::{ChatChunk, ChunkKind, ProviderError, TokenUsage};
use llm_proxy_protocol::openai::ChunkScan;

/// What one SSE `data:` payload of a chat stream means.
#[derive(Debug)]
pub enum StreamItem {
    Chunk {
        chunk: ChatChunk,
        finished: bool,
    },
    /// `[DONE]`: the stream is over.
    Done,
}

pub fn stream_item(data: String) -> Result<StreamItem, ProviderError> {
    if data.trim() == "[DONE]" {
        return Ok(StreamItem::Done);
    }
    if !needs_scan(&data) {
        // The common case, a content delta: nothing in it for the gateway, so no JSON parse.
        return Ok(StreamItem::Chunk {
            chunk: ChatChunk { event: None, kind: ChunkKind::Content, usage: None, data },
            finished: false,
        });
    }
    let scan = ChunkScan::of(data.as_bytes());
    if scan.error.is_some() {
        return Err(ProviderError::Reported(in_band_error_message(&data)));
    }
    let finished = scan.has_finish_reason();
    let kind = if scan.is_usage_only() { ChunkKind::UsageOnly } else { ChunkKind::Content };
    let chunk = ChatChunk { event: None, kind, usage: scan.usage.map(TokenUsage::from), data };
    Ok(StreamItem::Chunk { chunk, finished })
}

/// Whether a chunk may carry usage, an error or a finish reason. Strings inside content are
/// JSON-escaped (`\"usage\"`), so they cannot match these patterns.
fn needs_scan(data: &str) -> bool {
    use std::sync::LazyLock;

    use memchr::memmem::Finder;
    // Built once: `str::contains` builds a two-way searcher per call, which cost more than the
    // rest of a passthrough chunk's handling.
    static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
    static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
    static FINISH: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"finish_reason\""));
    let bytes = data.as_bytes();
    if USAGE.find(bytes).is_some() || ERROR.find(bytes).is_some() {
        return true;
    }
    FINISH.find_iter(bytes).any(|at| {
        let rest = &bytes[at + FINISH.needle().len()..];
        let value =
            rest.iter().position(|b| !matches!(b, b' ' | b':' | b'\t' | b'\n' | b'\r')).map_or(rest, |i| &rest[i..]);
        !value.starts_with(b"null")
    })
}

/// The usage-only chunk OpenAI ends an `include_usage` stream with, made from a chunk that carries
/// usage beside its choices (what servers without `stream_options` send): same fields, no choices.
pub fn usage_only_copy(data: &str) -> Option<String> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(data).ok()?;
    v.insert("choices".into(), serde_json::Value::Array(Vec::new()));
    serde_json::to_string(&v).ok()
}

/// Usage of a complete `chat.completion` or embeddings response; an error if the body is not a
/// JSON object (one parse does both jobs).
pub fn complete_usage(body: &[u8]) -> Result<Option<TokenUsage>, ProviderError> {
    serde_json::from_slice::<ChunkScan>(body)
        .map(|scan| scan.usage.map(TokenUsage::from))
        .map_err(|_| ProviderError::Protocol("the upstream answer is not a JSON object".into()))
}

fn in_band_error_message(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            e.get("message").and_then(|m| m.as_str()).or_else(|| e.as_str()).map(String::from)
        })
        .unwrap_or_else(|| "upstream reported an error mid-stream".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_chunk() {
        let data = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        let StreamItem::Chunk { chunk, finished } = stream_item(data.into()).unwrap() else { panic!() };
        assert!(!finished && chunk.kind == ChunkKind::Content && chunk.usage.is_none());
        assert_eq!(chunk.data, data, "the chunk is forwarded byte for byte");
    }

    #[test]
    fn content_that_mentions_usage_is_not_mistaken_for_usage() {
        let data = r#"{"choices":[{"index":0,"delta":{"content":"the \"usage\" and \"error\" fields"},"finish_reason":null}]}"#;
        assert!(!needs_scan(data));
        assert!(needs_scan(r#"{"choices":[{"delta":{},"finish_reason": "length"}]}"#));
        assert!(needs_scan(r#"{"choices":[],"usage":{"prompt_tokens":1}}"#));
    }

    #[test]
    fn final_chunks() {
        let data = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert!(matches!(stream_item(data.into()).unwrap(), StreamItem::Chunk { finished: true, .. }));
        let data = r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#;
        let StreamItem::Chunk { chunk, .. } = stream_item(data.into()).unwrap() else { panic!() };
        assert_eq!(chunk.kind, ChunkKind::UsageOnly);
        assert_eq!(chunk.usage, Some(TokenUsage { prompt_tokens: 9, completion_tokens: 12, ..Default::default() }));
        assert!(matches!(stream_item("[DONE]".into()).unwrap(), StreamItem::Done));
    }

    #[test]
    fn usage_only_copy_keeps_everything_but_the_choices() {
        let data = r#"{"id":"c","model":"glm-4.6","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let copy = usage_only_copy(data).unwrap();
        assert_eq!(
            copy,
            r#"{"id":"c","model":"glm-4.6","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#
        );
        let StreamItem::Chunk { chunk, .. } = stream_item(copy).unwrap() else { panic!() };
        assert_eq!(chunk.kind, ChunkKind::UsageOnly);
    }

    #[test]
    fn in_band_error() {
        let err = stream_item(r#"{"error":{"message":"overloaded","type":"server_error"}}"#.into()).unwrap_err();
        assert!(matches!(err, ProviderError::Reported(m) if m == "overloaded"));
    }

    #[test]
    fn usage_of_complete_body() {
        let body = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
        assert_eq!(
            complete_usage(body).unwrap(),
            Some(TokenUsage { prompt_tokens: 5, completion_tokens: 1, ..Default::default() })
        );
        assert!(matches!(complete_usage(b"this is not json"), Err(ProviderError::Protocol(_))));
        assert_eq!(
            complete_usage(br#"{"object":"list","data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}"#).unwrap(),
            Some(TokenUsage { prompt_tokens: 4, completion_tokens: 0, ..Default::default() })
        );
    }
}
