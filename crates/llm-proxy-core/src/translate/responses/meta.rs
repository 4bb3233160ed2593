//! `ResponseMeta`: what a `response` object repeats of its request, and the object around an output.

use std::sync::{Arc, OnceLock};

use llm_proxy_protocol::openai::{ResponsesRequest, TextFormat, TextParam};
use serde_json::{Map, Value, json};

use super::stream::FailureCode;
use super::usage_to_wire;
use crate::provider::TokenUsage;
use crate::time::UnixMillis;
use crate::translate::{AnswerIds, push_json_str, push_u64};

/// The fields of a `response` object that come from its request, with OpenAI's defaults where the
/// client left them out. Taken from the request before it is translated (which consumes it).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMeta {
    /// `resp_…`: the response's id, the one a later `previous_response_id` names.
    pub id: String,
    pub created_at: UnixMillis,
    /// The model as the client named it.
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub metadata: Map<String, Value>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub reasoning_effort: Option<String>,
    pub reasoning_summary: Option<String>,
    pub store: bool,
    pub temperature: f64,
    /// `text` as OpenAI repeats it: the format (plain text unless asked otherwise) and verbosity.
    /// Kept as the wire type and written only when an object is (a passthrough never writes one).
    pub text: TextParam,
    pub tool_choice: Value,
    /// The tools as sent, function tools with `strict` filled in as OpenAI does (on by default).
    pub tools: Vec<Value>,
    pub top_p: f64,
    pub user: Option<String>,
    /// The fields above as JSON text, written once when first needed: a stream's
    /// `response.created`, `.in_progress` and `.completed` each repeat them, and tools alone can be
    /// tens of KB. (A passthrough answer never needs them.)
    echo: Arc<OnceLock<Echo>>,
}

/// The echoed fields of a `response` object as JSON text, in the order OpenAI writes them:
/// those before `output`, those between it and `usage`, and those after.
#[derive(Debug, PartialEq)]
struct Echo {
    before_output: String,
    before_usage: String,
    after_usage: String,
}

/// Where a response stands, and what the object says about it.
pub(super) enum Outcome<'a> {
    InProgress,
    Completed {
        at: UnixMillis,
    },
    /// Cut short: `max_output_tokens` or `content_filter`.
    Incomplete {
        reason: &'static str,
    },
    Failed {
        code: FailureCode,
        message: &'a str,
    },
}

impl ResponseMeta {
    /// `created_at` is when the request arrived; `ids` names the response (`resp_…`).
    pub fn of(r: &ResponsesRequest, created_at: UnixMillis, ids: AnswerIds) -> Self {
        let reasoning = r.reasoning.as_ref();
        let mut text = r.text.clone().unwrap_or_default();
        if text.format.is_none() {
            text.format = Some(TextFormat::Text);
        }
        let tools = r.tools.iter().flatten().map(|t| Value::Object(echoed_tool(t))).collect();
        Self {
            id: ids.resp_id(),
            created_at,
            model: r.model.clone(),
            instructions: r.instructions.clone(),
            max_output_tokens: r.max_output_tokens,
            metadata: r.metadata.clone().unwrap_or_default(),
            parallel_tool_calls: r.parallel_tool_calls.unwrap_or(true),
            previous_response_id: r.previous_response_id.clone(),
            reasoning_effort: reasoning.and_then(|x| x.effort.clone()),
            reasoning_summary: reasoning.and_then(|x| x.summary.clone()),
            store: r.stores(),
            temperature: r.temperature.unwrap_or(1.0),
            text,
            tool_choice: r.tool_choice.clone().unwrap_or_else(|| "auto".into()),
            tools,
            top_p: r.top_p.unwrap_or(1.0),
            user: r.user.clone(),
            echo: Arc::default(),
        }
    }

    fn echo_text(&self) -> Echo {
        /// Appends `"key":value`, the value as serde writes it, into one buffer: no string per field.
        fn field(out: &mut Vec<u8>, key: &str, v: impl serde::Serialize) {
            if !out.is_empty() {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            value(out, v);
        }
        fn value(out: &mut Vec<u8>, v: impl serde::Serialize) {
            let start = out.len();
            // Strings, numbers and maps with string keys: these always serialise.
            if serde_json::to_writer(&mut *out, &v).is_err() {
                out.truncate(start);
                out.extend_from_slice(b"null");
            }
        }
        // serde writes UTF-8 (the `null` above too): never lossy.
        let text =
            |out: Vec<u8>| String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into());
        let mut before_output = Vec::with_capacity(128);
        field(&mut before_output, "instructions", &self.instructions);
        field(&mut before_output, "max_output_tokens", self.max_output_tokens);
        field(&mut before_output, "model", &self.model);
        let mut before_usage = Vec::with_capacity(384);
        field(&mut before_usage, "parallel_tool_calls", self.parallel_tool_calls);
        field(&mut before_usage, "previous_response_id", &self.previous_response_id);
        // `{"effort":…,"summary":…}` without building the map.
        before_usage.extend_from_slice(b",\"reasoning\":{\"effort\":");
        value(&mut before_usage, &self.reasoning_effort);
        before_usage.extend_from_slice(b",\"summary\":");
        value(&mut before_usage, &self.reasoning_summary);
        before_usage.push(b'}');
        field(&mut before_usage, "store", self.store);
        field(&mut before_usage, "temperature", self.temperature);
        field(&mut before_usage, "text", &self.text);
        field(&mut before_usage, "tool_choice", &self.tool_choice);
        field(&mut before_usage, "tools", &self.tools);
        field(&mut before_usage, "top_p", self.top_p);
        // The gateway never drops input to make it fit.
        field(&mut before_usage, "truncation", "disabled");
        let mut after_usage = Vec::with_capacity(64);
        field(&mut after_usage, "user", &self.user);
        field(&mut after_usage, "metadata", &self.metadata);
        Echo { before_output: text(before_output), before_usage: text(before_usage), after_usage: text(after_usage) }
    }

    /// `object` as JSON text, `output` given as its text: written around the echoed fields'
    /// text rather than built as a tree (a stream writes three of these), numbers and the
    /// outcome's fields written directly.
    #[cfg(test)]
    pub(super) fn object_text(&self, outcome: Outcome<'_>, output: &str, usage: Option<&TokenUsage>) -> String {
        let mut out = String::with_capacity(self.object_len(output));
        self.write_object(&mut out, outcome, output, usage);
        out
    }

    /// About how long the object's text is with `output`: what to reserve for it.
    pub(super) fn object_len(&self, output: &str) -> usize {
        let e = self.echo();
        400 + e.before_output.len() + e.before_usage.len() + e.after_usage.len() + output.len()
    }

    fn echo(&self) -> &Echo {
        self.echo.get_or_init(|| self.echo_text())
    }

    /// [`Self::object_text`] appended to `out`: an event that carries the object is written
    /// around it in one buffer.
    pub(super) fn write_object(
        &self,
        out: &mut String,
        outcome: Outcome<'_>,
        output: &str,
        usage: Option<&TokenUsage>,
    ) {
        let e = self.echo();
        out.push_str("{\"id\":");
        push_json_str(out, &self.id);
        out.push_str(",\"object\":\"response\",\"created_at\":");
        push_u64(out, seconds(self.created_at));
        let (status, completed_at) = match outcome {
            Outcome::InProgress => ("in_progress", None),
            Outcome::Completed { at } => ("completed", Some(seconds(at))),
            Outcome::Incomplete { .. } => ("incomplete", None),
            Outcome::Failed { .. } => ("failed", None),
        };
        out.push_str(",\"status\":\"");
        out.push_str(status);
        out.push_str("\",\"completed_at\":");
        match completed_at {
            Some(at) => push_u64(out, at),
            None => out.push_str("null"),
        }
        out.push_str(",\"error\":");
        match outcome {
            Outcome::Failed { code, message } => {
                out.push_str("{\"code\":\"");
                out.push_str(code.as_str());
                out.push_str("\",\"message\":");
                push_json_str(out, message);
                out.push('}');
            }
            _ => out.push_str("null"),
        }
        out.push_str(",\"incomplete_details\":");
        match outcome {
            Outcome::Incomplete { reason } => {
                out.push_str("{\"reason\":");
                push_json_str(out, reason);
                out.push('}');
            }
            _ => out.push_str("null"),
        }
        out.push(',');
        out.push_str(&e.before_output);
        out.push_str(",\"output\":");
        out.push_str(output);
        out.push(',');
        out.push_str(&e.before_usage);
        out.push_str(",\"usage\":");
        match usage {
            Some(u) => push_usage(out, u),
            None => out.push_str("null"),
        }
        out.push(',');
        out.push_str(&e.after_usage);
        out.push('}');
    }

    /// The `response` object: these fields around `output`, in the order OpenAI writes them.
    pub(super) fn object(&self, outcome: Outcome<'_>, output: Vec<Value>, usage: Option<&TokenUsage>) -> Value {
        let (status, completed_at, error, incomplete) = outcome_fields(outcome);
        json!({
            "id": self.id,
            "object": "response",
            "created_at": seconds(self.created_at),
            "status": status,
            "completed_at": completed_at,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "reasoning": {"effort": self.reasoning_effort, "summary": self.reasoning_summary},
            "store": self.store,
            "temperature": self.temperature,
            "text": text_value(&self.text),
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "top_p": self.top_p,
            // The gateway never drops input to make it fit.
            "truncation": "disabled",
            "usage": usage.map(usage_to_wire),
            "user": self.user,
            "metadata": self.metadata,
        })
    }
}

/// `status`, `completed_at`, `error` and `incomplete_details` of a response in this state.
fn outcome_fields(outcome: Outcome<'_>) -> (&'static str, Value, Value, Value) {
    match outcome {
        Outcome::InProgress => ("in_progress", Value::Null, Value::Null, Value::Null),
        Outcome::Completed { at } => ("completed", seconds(at).into(), Value::Null, Value::Null),
        Outcome::Incomplete { reason } => ("incomplete", Value::Null, Value::Null, json!({"reason": reason})),
        Outcome::Failed { code, message } => {
            ("failed", Value::Null, json!({"code": code.as_str(), "message": message}), Value::Null)
        }
    }
}

/// The usage object as `usage_to_wire` has it, every detail present as OpenAI sends it.
fn push_usage(out: &mut String, u: &TokenUsage) {
    out.push_str("{\"input_tokens\":");
    push_u64(out, u.prompt_tokens);
    out.push_str(",\"input_tokens_details\":{\"cached_tokens\":");
    push_u64(out, u.cached_tokens);
    out.push_str(",\"cache_write_tokens\":");
    push_u64(out, u.cache_write_tokens);
    out.push_str("},\"output_tokens\":");
    push_u64(out, u.completion_tokens);
    out.push_str(",\"output_tokens_details\":{\"reasoning_tokens\":");
    push_u64(out, u.reasoning_tokens);
    out.push_str("},\"total_tokens\":");
    push_u64(out, u.prompt_tokens + u.completion_tokens);
    out.push('}');
}

/// Seconds since the epoch, as the Responses API counts time.
fn seconds(t: UnixMillis) -> u64 {
    t.as_millis() / 1000
}

fn echoed_tool(tool: &Map<String, Value>) -> Map<String, Value> {
    let mut tool = tool.clone();
    if tool.get("type").and_then(Value::as_str) == Some("function") && tool.get("strict").is_none_or(Value::is_null) {
        tool.insert("strict".into(), true.into());
    }
    tool
}

fn text_value(text: &TextParam) -> Value {
    // The wire type has string keys only: it always serialises.
    serde_json::to_value(text).unwrap_or_else(|_| json!({"format": {"type": "text"}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_proxy_protocol::json::decode;

    #[test]
    fn defaults_are_openais() {
        let r: ResponsesRequest = decode(br#"{"model":"smart","input":"x"}"#).unwrap();
        let meta = ResponseMeta::of(&r, UnixMillis::from_millis(1_741_476_542_500), AnswerIds::from_seed("meta"));
        let object = meta.object(Outcome::InProgress, Vec::new(), None);
        assert_eq!(
            object,
            json!({"id": AnswerIds::from_seed("meta").resp_id(), "object": "response", "created_at": 1741476542,
                "status": "in_progress", "completed_at": null, "error": null, "incomplete_details": null,
                "instructions": null, "max_output_tokens": null, "model": "smart", "output": [],
                "parallel_tool_calls": true, "previous_response_id": null, "reasoning": {"effort": null, "summary": null},
                "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
                "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": null, "user": null, "metadata": {}})
        );
    }

    #[test]
    fn the_request_is_repeated() {
        let r: ResponsesRequest = decode(
            br#"{"model":"smart","input":"x","instructions":"Be brief.","max_output_tokens":64,"metadata":{"k":"v"},
            "parallel_tool_calls":false,"previous_response_id":"resp_0","reasoning":{"effort":"low","summary":"auto"},
            "store":false,"temperature":0.2,"top_p":0.9,"user":"u1","text":{"verbosity":"low"},
            "tools":[{"type":"function","name":"f","parameters":{}},{"type":"function","name":"g","parameters":{},"strict":false}],
            "tool_choice":"required"}"#,
        )
        .unwrap();
        let meta = ResponseMeta::of(&r, UnixMillis::from_millis(0), AnswerIds::from_seed("meta"));
        let o = meta.object(Outcome::Failed { code: FailureCode::ServerError, message: "boom" }, Vec::new(), None);
        assert_eq!(o["status"], "failed");
        assert_eq!(o["error"], json!({"code": "server_error", "message": "boom"}));
        assert_eq!(o["reasoning"], json!({"effort": "low", "summary": "auto"}));
        assert_eq!(o["text"], json!({"format": {"type": "text"}, "verbosity": "low"}));
        assert_eq!(o["tools"][0]["strict"], true, "function tools are strict unless said otherwise");
        assert_eq!(o["tools"][1]["strict"], false);
        for (field, want) in [
            ("instructions", json!("Be brief.")),
            ("max_output_tokens", json!(64)),
            ("metadata", json!({"k": "v"})),
            ("parallel_tool_calls", json!(false)),
            ("previous_response_id", json!("resp_0")),
            ("store", json!(false)),
            ("temperature", json!(0.2)),
            ("top_p", json!(0.9)),
            ("user", json!("u1")),
            ("tool_choice", json!("required")),
        ] {
            assert_eq!(o[field], want, "{field}");
        }
    }

    #[test]
    fn the_object_written_as_text_is_the_object() {
        let r: ResponsesRequest = decode(
            br#"{"model":"m","input":"x","instructions":"Be \"brief\".","max_output_tokens":50,"metadata":{"k":"v"},
                "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":"required",
                "reasoning":{"effort":"low"},"text":{"format":{"type":"json_object"}},"user":"u","store":false}"#,
        )
        .unwrap();
        let meta = ResponseMeta::of(&r, UnixMillis::from_millis(1_700_000_000_000), AnswerIds::from_seed("t"));
        let usage = TokenUsage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 3,
            cache_write_tokens: 2,
            reasoning_tokens: u64::MAX / 4,
        };
        let output = vec![json!({"type": "message", "id": "msg_1", "content": []})];
        let outcomes = || {
            [
                Outcome::InProgress,
                Outcome::Completed { at: UnixMillis::from_millis(1_700_000_001_000) },
                Outcome::Incomplete { reason: "max_output_tokens" },
                Outcome::Failed { code: FailureCode::ServerError, message: "upstream \"gone\"" },
            ]
        };
        for usage in [Some(&usage), None] {
            for (a, b) in outcomes().into_iter().zip(outcomes()) {
                let text = meta.object_text(a, &Value::Array(output.clone()).to_string(), usage);
                let parsed: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(parsed, meta.object(b, output.clone(), usage), "{text}");
            }
        }
    }
}
