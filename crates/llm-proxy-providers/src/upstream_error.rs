//! Reading an upstream's error answer into a `ProviderError`, whatever dialect of JSON it uses.

use std::time::Duration;

use llm_proxy_core::provider::{Failure, ProviderError};
use serde_json::Value;

/// Longest upstream message passed on; longer ones are cut (they are for humans, not parsers).
const MAX_MESSAGE_CHARS: usize = 500;

/// Builds the error for an upstream `status` with `body`. Understands OpenAI's
/// `{"error":{"message","type","code"}}`, Anthropic's `{"type":"error","error":{"type","message"}}`,
/// Google's `{"error":{"code","message","status","details"}}` (also wrapped in a one-element
/// array, as Gemini's OpenAI-compatible endpoint sends it), `{"error":"text"}`, `{"message":...}`
/// and FastAPI's `{"detail":...}`; anything else is quoted as text.
/// `secret` (the provider key) is scrubbed from the message before it is cut, so no part of it
/// survives: upstreams quote a refused key ("Incorrect API key provided: sk-...").
///
/// A refused key is classified here, as the 401 it means, whatever status the upstream used:
/// Google answers a bad API key with 400 `INVALID_ARGUMENT` and an `ErrorInfo` whose reason is
/// `API_KEY_INVALID` (or `API_KEY_EXPIRED`), and that must reach the client as the gateway's own
/// credentials failing (502, text withheld), not as the client's bad request. The code is then
/// Google's reason.
///
/// Every error is classified here ([`Failure`]), where the provider's dialect is known, so the
/// server never reads an upstream's text.
pub(crate) fn from_status(status: u16, body: &[u8], retry_after: Option<&str>, secret: Option<&str>) -> ProviderError {
    let retry_after = retry_after.and_then(parse_retry_after);
    let (message, code) = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let v = match v {
                Value::Array(mut items) if items.len() == 1 => items.remove(0),
                v => v,
            };
            let err = v.get("error").unwrap_or(&Value::Null);
            if let Some(reason) = google_key_refusal(err) {
                let message = err.get("message").and_then(Value::as_str).map(String::from);
                return ProviderError::Status {
                    status: 401,
                    message: truncate(scrub(message.unwrap_or_else(|| reason.to_string()), secret)),
                    code: Some(reason.to_string()),
                    retry_after,
                    failure: Failure::Auth,
                };
            }
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .or_else(|| v.get("message").and_then(Value::as_str))
                .map(String::from)
                .or_else(|| v.get("detail").map(|d| d.as_str().map(String::from).unwrap_or_else(|| d.to_string())));
            // OpenAI: `code` (string); Google: `status` ("INVALID_ARGUMENT"); Anthropic: `type`.
            let code = err
                .get("code")
                .and_then(Value::as_str)
                .or_else(|| err.get("status").and_then(Value::as_str))
                .or_else(|| err.get("type").and_then(Value::as_str))
                .map(String::from)
                .or_else(|| err.get("code").and_then(Value::as_i64).map(|n| n.to_string()));
            (message, code)
        }
        Err(_) => (None, None),
    };
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() { "no error message".to_string() } else { text.to_string() }
    });
    let failure = classify(status, &message, code.as_deref());
    ProviderError::Status { status, message: truncate(scrub(message, secret)), code, retry_after, failure }
}

/// What an error status means.
fn classify(status: u16, message: &str, code: Option<&str>) -> Failure {
    match status {
        401 | 403 => Failure::Auth,
        429 => Failure::RateLimited,
        408 | 500..=599 => Failure::Unavailable,
        400 | 413 | 422 if is_context_overflow(message, code) => Failure::ContextOverflow,
        _ => Failure::Rejected,
    }
}

/// Whether a refusal says the prompt does not fit the model's context window, in each provider's
/// words: OpenAI's `context_length_exceeded` ("This model's maximum context length is…"),
/// Anthropic's "prompt is too long: N tokens > M maximum", Gemini's "The input token count (N)
/// exceeds the maximum number of tokens allowed", GLM's code 1261 ("Prompt exceeds max length"),
/// and the wordings of OpenAI-compatible servers (vLLM, Ollama, DeepSeek).
fn is_context_overflow(message: &str, code: Option<&str>) -> bool {
    if matches!(code, Some("context_length_exceeded" | "1261")) {
        return true;
    }
    let m = message.to_ascii_lowercase();
    [
        "context length",
        "context window",
        "maximum context",
        "prompt is too long",
        "prompt exceeds max length",
        "input token count",
        "too many tokens",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `retry-after` in seconds (the HTTP-date form is rare from APIs and treated as absent), at most
/// an hour.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The reason of a Google `ErrorInfo` detail that says the API key was refused: a bad or expired
/// key (Google answers both with 400). Keys blocked for a service, referrer or IP come as 403,
/// which is a refusal already.
fn google_key_refusal(err: &Value) -> Option<&str> {
    err.get("details")?.as_array()?.iter().find_map(|d| {
        let reason = d.get("reason")?.as_str()?;
        matches!(reason, "API_KEY_INVALID" | "API_KEY_EXPIRED").then_some(reason)
    })
}

/// Replaces every occurrence of `secret` in `message`, and the credentials of every URL it quotes
/// (an upstream may echo the request URL, with a `base_url`'s `user:pass@` or `?token=`).
pub(crate) fn scrub(message: String, secret: Option<&str>) -> String {
    let message = match secret {
        Some(s) if !s.is_empty() && message.contains(s) => message.replace(s, "[REDACTED]"),
        _ => message,
    };
    llm_proxy_core::config::redact_urls_in(&message)
}

fn truncate(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_MESSAGE_CHARS) {
        s.truncate(i);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(e: ProviderError) -> (u16, String, Option<String>) {
        match e {
            ProviderError::Status { status, message, code, .. } => (status, message, code),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_the_common_dialects() {
        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            parts(from_status(429, openai, None, None)),
            (429, "Rate limit reached".into(), Some("rate_limit_exceeded".into()))
        );
        assert_eq!(parts(from_status(500, br#"{"error":"boom"}"#, None, None)).1, "boom");
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            parts(from_status(529, anthropic, None, None)),
            (529, "Overloaded".into(), Some("overloaded_error".into()))
        );
        let google = br#"{"error":{"code":400,"message":"Bad thing","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            parts(from_status(400, google, None, None)),
            (400, "Bad thing".into(), Some("INVALID_ARGUMENT".into()))
        );
        assert_eq!(parts(from_status(400, br#"{"detail":[{"loc":["body"]}]}"#, None, None)).1, r#"[{"loc":["body"]}]"#);
        assert_eq!(parts(from_status(502, b"<html>Bad Gateway</html>", None, None)).1, "<html>Bad Gateway</html>");
        assert_eq!(parts(from_status(503, b"", None, None)).1, "no error message");
    }

    fn failure(e: &ProviderError) -> Failure {
        match e {
            ProviderError::Status { failure, .. } => *failure,
            other => panic!("{other:?}"),
        }
    }

    /// Each provider's own words for "the prompt does not fit", as the mock and the real APIs
    /// send them, and the other classes by status.
    #[test]
    fn failures_are_classified_in_each_providers_dialect() {
        let overflow: [&[u8]; 4] = [
            br#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
            br#"{"error":{"code":400,"message":"The input token count (1100000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
            br#"{"error":{"code":"1261","message":"Prompt exceeds max length"}}"#,
        ];
        for body in overflow {
            assert_eq!(
                failure(&from_status(400, body, None, None)),
                Failure::ContextOverflow,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let bad = br#"{"error":{"message":"messages: roles must alternate","type":"invalid_request_error"}}"#;
        assert_eq!(failure(&from_status(400, bad, None, None)), Failure::Rejected);
        assert_eq!(failure(&from_status(404, bad, None, None)), Failure::Rejected);
        assert_eq!(failure(&from_status(401, bad, None, None)), Failure::Auth);
        assert_eq!(failure(&from_status(403, bad, None, None)), Failure::Auth);
        assert_eq!(failure(&from_status(529, bad, None, None)), Failure::Unavailable);
        assert_eq!(failure(&from_status(408, bad, None, None)), Failure::Unavailable);
        let limited = from_status(429, bad, Some("7"), None);
        assert_eq!(failure(&limited), Failure::RateLimited);
        assert!(matches!(limited, ProviderError::Status { retry_after: Some(d), .. } if d == Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("99999"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn the_key_is_scrubbed_before_the_message_is_cut() {
        let key = "sk-secret-key-0123456789";
        let body = format!(r#"{{"error":{{"message":"{}Incorrect API key provided: {key}"}}}}"#, "x".repeat(490));
        let (_, message, _) = parts(from_status(401, body.as_bytes(), None, Some(key)));
        assert!(!message.contains("sk-secret"), "{message}");
    }

    #[test]
    fn a_key_google_refuses_with_400_is_an_auth_failure() {
        // Gemini's answer to a bad API key, as it sends it.
        let body = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#;
        let (status, _, code) = parts(from_status(400, body, None, None));
        assert_eq!((status, code.as_deref()), (401, Some("API_KEY_INVALID")));
        assert_eq!(failure(&from_status(400, body, None, None)), Failure::Auth);
        // The same through Gemini's OpenAI-compatible endpoint, which wraps it in an array.
        let wrapped = [b"[".as_slice(), body, b"]"].concat();
        assert_eq!(parts(from_status(400, &wrapped, None, None)).0, 401);
        // Any other 400 stays the client's business.
        let bad = br#"{"error":{"code":400,"message":"Bad thing","status":"INVALID_ARGUMENT","details":[{"reason":"FIELD_INVALID"}]}}"#;
        assert_eq!(parts(from_status(400, bad, None, None)).0, 400);
    }

    #[test]
    fn credentials_of_quoted_urls_are_scrubbed() {
        let body = br#"{"error":{"message":"no route for http://u:pass@h/v1/chat?token=T"}}"#;
        let (_, message, _) = parts(from_status(404, body, None, None));
        assert_eq!(message, "no route for http://u:***@h/v1/chat?token=***");
    }

    #[test]
    fn long_messages_are_cut() {
        let body = format!(r#"{{"error":{{"message":"{}"}}}}"#, "x".repeat(2000));
        assert_eq!(parts(from_status(400, body.as_bytes(), None, None)).1.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
