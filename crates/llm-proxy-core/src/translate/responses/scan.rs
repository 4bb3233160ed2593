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
    // The quick pass answers for nearly every body; anything it is unsure of (an escaped key, an
    // id that is not a plain string, a body serde would refuse) is read by serde, so what is
    // accepted, what is refused and the error's text are serde's.
    match quick_scan(body) {
        Some(scan) => Ok(scan),
        None => serde_scan(body),
    }
}

fn serde_scan(body: &[u8]) -> Result<ResponseScan, ProviderError> {
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

/// `scan_response` without serde's per-byte walk: a JSON validator as strict as serde's (stricter
/// where that is simpler) that reads the top-level `id` when it is a plain string and hands only
/// `usage` to serde. `None`: not sure, let serde read it.
fn quick_scan(body: &[u8]) -> Option<ResponseScan> {
    let mut r = Reader { b: body, i: 0 };
    r.ws();
    r.eat(b'{')?;
    let (mut id, mut usage) = (None, None);
    let (mut seen_id, mut seen_usage) = (false, false);
    r.ws();
    if r.peek() == Some(b'}') {
        r.i += 1;
    } else {
        loop {
            r.ws();
            r.eat(b'"')?;
            let start = r.i;
            r.string()?;
            let key = &body[start..r.i - 1];
            r.ws();
            r.eat(b':')?;
            r.ws();
            let value_start = r.i;
            match key {
                b"id" => {
                    if std::mem::replace(&mut seen_id, true) || r.peek() != Some(b'"') {
                        return None;
                    }
                    r.i += 1;
                    r.string()?;
                    let text = &body[value_start + 1..r.i - 1];
                    if text.contains(&b'\\') {
                        return None;
                    }
                    id = Some(std::str::from_utf8(text).ok()?.to_string());
                }
                b"usage" => {
                    if std::mem::replace(&mut seen_usage, true) {
                        return None;
                    }
                    r.value()?;
                    let text = &body[value_start..r.i];
                    usage = serde_json::from_slice::<Option<ResponseUsage>>(text).ok()?;
                }
                // serde matches keys after unescaping and refuses keys that are not UTF-8.
                _ if key.contains(&b'\\') || std::str::from_utf8(key).is_err() => return None,
                _ => r.value()?,
            }
            r.ws();
            match r.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    r.ws();
    (r.i == body.len()).then(|| ResponseScan { id, usage: usage.as_ref().map(usage_from_wire) })
}

/// The byte-level reader of `quick_scan`; every method returns `None` where serde would not
/// accept what it reads (or where it is not worth being sure).
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// JSON's whitespace, as serde has it.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// The rest of a string whose opening quote was read, up to and past its closing quote:
    /// control characters refused, escapes checked; other bytes pass, as serde's skip of a
    /// string lets them.
    fn string(&mut self) -> Option<()> {
        loop {
            // Most strings are short (keys, ids): a table lookup per byte beats a word test that
            // needs eight bytes before it can skip any.
            let rest = self.b.get(self.i..)?;
            let at = rest.iter().position(|&c| STOPS_STRING[usize::from(c)])?;
            self.i += at + 1;
            match rest[at] {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b.get(self.i..self.i + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 4;
                    }
                    _ => return None,
                },
                // A control character.
                _ => return None,
            }
        }
    }

    /// Digits after a number's first, as serde's `ignore_integer` reads them.
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' if matches!(self.peek(), Some(b'0'..=b'9')) => return None,
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// One value, with no recursion (serde's skip of a value has no depth limit).
    fn value(&mut self) -> Option<()> {
        // Bit `n` of `objects`: whether the container `n` deep is an object. Deeper than 64 is left
        // to serde (no allocation for the stack).
        let (mut objects, mut depth) = (0u64, 0u32);
        loop {
            // A value.
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.string()?;
                }
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'-' | b'0'..=b'9' => self.number()?,
                c @ (b'{' | b'[') => {
                    self.i += 1;
                    self.ws();
                    let closer = if c == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(closer) {
                        self.i += 1;
                    } else {
                        if depth == u64::BITS {
                            return None;
                        }
                        objects = (objects << 1) | u64::from(c == b'{');
                        depth += 1;
                        if c == b'{' {
                            self.key()?;
                        }
                        self.ws();
                        continue;
                    }
                }
                _ => return None,
            }
            // After a value: the next one in its container, or the ends of containers.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let object = objects & 1 == 1;
                self.ws();
                match self.next()? {
                    b',' => {
                        self.ws();
                        if object {
                            self.key()?;
                            self.ws();
                        }
                        break;
                    }
                    b'}' if object => (objects, depth) = (objects >> 1, depth - 1),
                    b']' if !object => (objects, depth) = (objects >> 1, depth - 1),
                    _ => return None,
                }
            }
        }
    }

    /// An object's key and its colon.
    fn key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string()?;
        self.ws();
        self.eat(b':')
    }
}

/// The bytes that end a run of a string's plain text: `"`, `\\` and control characters.
const STOPS_STRING: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

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

    /// What the quick pass accepts, serde accepts with the same reading; what it is unsure of,
    /// serde reads.
    fn agrees(body: &[u8]) -> bool {
        let quick = quick_scan(body);
        let serde = serde_scan(body);
        if let Some(q) = &quick {
            assert_eq!(Some(q), serde.as_ref().ok(), "{}", String::from_utf8_lossy(body));
        }
        quick.is_some()
    }

    #[test]
    fn the_quick_pass_reads_what_serde_reads() {
        let usual = br#" {"id":"resp_1","object":"response","created_at":1741476542,"status":"completed",
            "error":null,"output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant",
            "content":[{"type":"output_text","text":"Hi \"there\"\n\u00e9 \/","annotations":[],"logprobs":[]}]}],
            "temperature":1.0,"top_p":-0.5e-3,"n":0,"big":12E+2,"t":true,"f":false,"tools":[],"metadata":{},
            "usage":{"input_tokens":3,"input_tokens_details":{"cached_tokens":1},"output_tokens":2,"extra":[{}],
            "output_tokens_details":{"reasoning_tokens":0},"total_tokens":5}}
            "#;
        assert!(agrees(usual));
        for body in [
            &b"{}"[..],
            br#"{"usage":null}"#,
            br#"{"id":"resp_1"}"#,
            br#"{"a":[[],[{}],{"b":[1,2]}]}"#,
            b"{\"id\":\"r\xc3\xa9\",\"a\":\"\xc3\xa9\"}",
        ] {
            assert!(agrees(body), "{}", String::from_utf8_lossy(body));
        }
        // Refused by both, or left to serde.
        for body in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            br#"{"id":"a"} x"#,
            br#"{"id":"a",}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":{"b":1,}}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":1e}"#,
            br#"{"a":-}"#,
            br#"{"a":tru}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12g4"}"#,
            b"{\"a\":\"tab\there\"}",
            br#"{"a" 1}"#,
            br#"{"a":1 "b":2}"#,
            br#"{"a":[1}"#,
            br#"{"a":{"b"}}"#,
            br#"{1:2}"#,
            br#"{"id":"a","id":"b"}"#,
            br#"{"usage":null,"usage":null}"#,
            br#"{"usage":"many"}"#,
            br#"{"usage":{"input_tokens":-1}}"#,
            br#"{"i\u0064":"x"}"#,
            br#"{"id":"a\"b"}"#,
            br#"{"id":7}"#,
            b"{\"id\":\"\xff\"}",
            b"{\"\xff\":1}",
        ] {
            assert!(!agrees(body), "{}", String::from_utf8_lossy(body));
        }
        // Deeper than the quick pass keeps count of: serde's skip has no limit.
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(70), "]".repeat(70));
        assert!(!agrees(deep.as_bytes()));
        assert!(scan_response(deep.as_bytes()).is_ok());
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(64), "]".repeat(64));
        assert!(agrees(deep.as_bytes()));
        // Left to serde, which reads them as before.
        assert_eq!(scan_response(br#"{"i\u0064":"x"}"#).unwrap().id.as_deref(), Some("x"));
        assert_eq!(scan_response(br#"{"id":"a\"b"}"#).unwrap().id.as_deref(), Some("a\"b"));
        assert_eq!(scan_response(br#"{"id":7}"#).unwrap().id, None);
        assert!(scan_response(br#"{"id":"a","id":"b"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn the_quick_pass_never_disagrees_with_serde(body in proptest::collection::vec(proptest::sample::select(
            b"{}[]\",:01-.eE+ \n\tnultrfasidug\\x\xc3\xa9".to_vec()), 0..40)) {
            agrees(&body);
        }

        #[test]
        fn a_body_one_byte_off_is_read_as_serde_reads_it(at in 0usize..200, byte in proptest::sample::select(
            b"{}[]\",:01-.eE+ \n\tnultrfasidug\\x\xff".to_vec()), insert: bool) {
            let mut body = br#"{"id":"resp_1","output":[{"t":"x\"y","n":[1.5e3,-0,true,null,{}]}],"usage":{"input_tokens":3,"output_tokens":2},"z":false}"#.to_vec();
            let at = at % body.len();
            if insert { body.insert(at, byte) } else { body[at] = byte }
            agrees(&body);
        }
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
