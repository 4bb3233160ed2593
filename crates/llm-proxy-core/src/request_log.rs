//! One row of the request log: what a request asked, where it went and what it cost.

use serde::Serialize;

use crate::UnixMillis;

/// Low-cardinality reasons a request (or one upstream attempt) did not succeed, shared by the
/// log, metrics and tests. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    BodyTooLarge,
    UpstreamStatus,
    UpstreamConnect,
    UpstreamTimeout,
    UpstreamProtocol,
    StreamInterrupted,
    /// A rate limit, budget or parallel-request cap of the gateway's refused it.
    RateLimited,
    /// Every deployment that could serve it had its circuit breaker open.
    UpstreamUnavailable,
    ClientDisconnect,
    /// Still running when the shutdown grace period ended.
    Shutdown,
    /// The gateway was at its limit of requests in flight.
    Overloaded,
    Internal,
    /// A stored kind this build does not know (written by a newer instance sharing the
    /// database): read, never written.
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Authentication => "authentication",
            Self::Permission => "permission",
            Self::NotFound => "not_found",
            Self::BodyTooLarge => "body_too_large",
            Self::UpstreamStatus => "upstream_status",
            Self::UpstreamConnect => "upstream_connect",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamProtocol => "upstream_protocol",
            Self::StreamInterrupted => "stream_interrupted",
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::ClientDisconnect => "client_disconnect",
            Self::Shutdown => "shutdown",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// The kind a stored name stands for; a name this build does not know is `Unknown`.
    pub fn parse(name: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(name.to_string())).unwrap_or(Self::Unknown)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP-ish status recorded for a client that went away before the answer was complete
/// (nginx's convention; never sent on the wire).
pub const STATUS_CLIENT_CLOSED: u16 = 499;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RequestLogEntry {
    /// The `x-request-id` the client saw.
    pub request_id: String,
    pub created_at: UnixMillis,
    pub key_id: Option<String>,
    /// The `user` of the key, copied when the request is logged so that usage per user survives
    /// the key's revocation (and a later change of its user).
    pub user: Option<String>,
    /// `chat.completions`, `embeddings`, ...
    pub endpoint: String,
    /// The model name as the client wrote it.
    pub model: Option<String>,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub latency_ms: u64,
    /// Time to the first content chunk of a stream (or to the whole answer when not streaming).
    pub ttft_ms: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Prompt tokens read from the upstream's prompt cache (a part of `prompt_tokens`).
    pub cached_tokens: Option<u64>,
    /// Prompt tokens written to the upstream's prompt cache (Anthropic bills these apart).
    pub cache_write_tokens: Option<u64>,
    /// Completion tokens spent on reasoning (a part of `completion_tokens`).
    pub reasoning_tokens: Option<u64>,
    /// Priced from the registry; `None` until the model has a known price.
    pub cost_usd: Option<f64>,
    /// The token counts (and so the cost) were counted by the gateway, not reported by the
    /// upstream: a stream cut short, or an upstream that reports no usage.
    pub cost_estimated: bool,
    pub error_kind: Option<ErrorKind>,
    /// A short, secret-free description for operators.
    pub error_message: Option<String>,
    /// Every upstream call made for this request, in order (retries and fallbacks included); the
    /// last one is the answer the client got. Empty when no upstream was called.
    pub attempts: Vec<AttemptRecord>,
}

/// One upstream call of a request.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AttemptRecord {
    pub provider: String,
    pub model: String,
    /// The upstream's HTTP status, or the status the gateway answered for a failure without one
    /// (502 unreachable, 504 timeout); 200 for the attempt that answered.
    pub status: u16,
    pub latency_ms: u64,
    /// Why the attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
}

/// Makes client-supplied text fit to store and show: control characters escaped
/// ([`escape_controls`]: a NUL would make PostgreSQL refuse the whole batch, a newline forges log
/// lines, an ESC drives the terminal of whoever reads them) and at most `max_chars` characters,
/// counted after escaping (an escape is never cut in half).
pub fn clean_text(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut kept = 0;
    for c in s.chars() {
        let escaped = escape_char(c);
        let n = escaped.as_ref().map_or(1, |e| e.chars().count());
        if kept + n > max_chars {
            out.push('…');
            return out;
        }
        kept += n;
        match escaped {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    out
}

/// `s` with every control character (C0, DEL, C1) written visibly as Rust writes it in a string
/// literal: `\n`, `\t`, `\r`, `\0`, else `\u{1b}`. Other text, backslashes included, is unchanged.
/// For client- or user-chosen text that is stored or printed (model names, error messages, key
/// and user names).
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match escape_char(c) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn escape_char(c: char) -> Option<String> {
    c.is_control().then(|| c.escape_debug().to_string())
}

/// Which page of the log to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Opaque cursor from the previous page's `next`.
    pub cursor: Option<LogCursor>,
    pub limit: u32,
    pub key_id: Option<String>,
    /// Only the requests of keys of this user.
    pub user: Option<String>,
    /// Only requests made at or after `from` and before `to`.
    pub from: Option<UnixMillis>,
    pub to: Option<UnixMillis>,
    /// The model as the client named it.
    pub model: Option<String>,
    /// The provider that served it (or was tried last).
    pub provider: Option<String>,
    /// Statuses in this range, both ends included (`429`, or `500..=599` for `5xx`).
    pub status: Option<(u16, u16)>,
    pub error_kind: Option<ErrorKind>,
}

/// Position in the newest-first order: `(created_at, request_id)` of the last row seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCursor {
    pub created_at: UnixMillis,
    pub request_id: String,
}

impl LogCursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at, self.request_id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (ts, id) = s.split_once('_')?;
        // Parsed as the database integer, as before the type: a negative cursor (never one this
        // gateway hands out) still means "before every row" rather than a malformed cursor.
        Some(Self { created_at: UnixMillis::from_i64(ts.parse().ok()?), request_id: id.to_string() })
    }
}

#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub entries: Vec<RequestLogEntry>,
    pub next: Option<LogCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_stored_by_name_and_unknown_names_still_read() {
        for kind in [ErrorKind::ClientDisconnect, ErrorKind::UpstreamStatus, ErrorKind::RateLimited] {
            assert_eq!(ErrorKind::parse(kind.as_str()), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::Value::from(kind.as_str()));
        }
        assert_eq!(ErrorKind::parse("something_newer"), ErrorKind::Unknown);
        let attempt: AttemptRecord =
            serde_json::from_str(r#"{"provider":"p","model":"m","status":500,"latency_ms":3,"error_kind":"new"}"#)
                .unwrap();
        assert_eq!(attempt.error_kind, Some(ErrorKind::Unknown));
    }

    #[test]
    fn clean_text_escapes_controls_and_caps_length() {
        assert_eq!(clean_text("a\0b", 10), "a\\0b");
        assert_eq!(clean_text("abcdef", 3), "abc…");
        assert_eq!(clean_text("abc", 3), "abc");
        assert_eq!(clean_text("ab\u{1b}[2J", 5), "ab…", "an escape is kept whole or not at all");
    }

    #[test]
    fn control_characters_are_escaped_visibly() {
        let forged = "gpt-4o\n2025-01-01 INFO admin logged in\u{1b}]0;pwned\u{7}\u{7f}\u{9b}31m\t\\ é";
        let cleaned = clean_text(forged, 1000);
        assert_eq!(cleaned, "gpt-4o\\n2025-01-01 INFO admin logged in\\u{1b}]0;pwned\\u{7}\\u{7f}\\u{9b}31m\\t\\ é");
        assert!(!cleaned.chars().any(char::is_control), "{cleaned:?}");
        assert_eq!(escape_controls(forged), cleaned);
        assert!(matches!(escape_controls("plain/model-1.5 é"), std::borrow::Cow::Borrowed(_)));
    }
}
