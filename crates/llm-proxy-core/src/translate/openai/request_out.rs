//! The unified model → a request body for an OpenAI-protocol upstream.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::translate::RequestBody;

use crate::unified::{
    ChatRequest, Message, Part, ResponseFormat, Role, ToolChoice, ToolResultPart, TranslateError, WireProtocol,
};

/// Where OpenAI-protocol servers differ in what they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// OpenAI's reasoning models reject `max_tokens` and want `max_completion_tokens`; most
    /// compatible servers know only `max_tokens`.
    pub max_completion_tokens: bool,
    /// Accepts `stream_options.include_usage` (Mistral answers 422).
    pub stream_options: bool,
    /// Accepts `reasoning_effort`.
    pub reasoning_effort: bool,
    /// Wants earlier turns' reasoning back as `reasoning_content`: DeepSeek's thinking mode answers
    /// 400 when a tool-calling turn comes back without it. Other servers (Mistral) reject the field.
    pub reasoning_history: bool,
}

impl Dialect {
    pub const OPENAI: Self =
        Self { max_completion_tokens: true, stream_options: true, reasoning_effort: true, reasoning_history: false };
    pub const COMPATIBLE: Self =
        Self { max_completion_tokens: false, stream_options: true, reasoning_effort: false, reasoning_history: false };
    pub const DEEPSEEK: Self = Self { reasoning_history: true, ..Self::COMPATIBLE };
}

pub fn request_from_unified(
    r: &ChatRequest,
    dialect: Dialect,
) -> Result<RequestBody<ChatMessages<'_>>, TranslateError> {
    // The only messages that can fail to translate are assistant turns with images or tool
    // results: checked here, so that writing the messages later cannot fail.
    for (i, m) in r.messages.iter().enumerate() {
        if m.role == Role::Assistant
            && m.content.iter().any(|p| matches!(p, Part::Image { .. } | Part::ToolResult { .. }))
        {
            assistant_message(m, i, dialect)?;
        }
    }
    let mut body = Map::new();
    // Unknown fields of an OpenAI client go first so that translated fields win.
    if r.extra.from == Some(WireProtocol::OpenAi) {
        body.extend(r.extra.fields.clone());
    }
    body.insert("model".into(), r.model.clone().into());
    // Where the messages go; written by `ChatMessages` when the body is serialised.
    body.insert("messages".into(), Value::Null);
    if let Some(n) = r.max_tokens {
        let field = if dialect.max_completion_tokens { "max_completion_tokens" } else { "max_tokens" };
        body.insert(field.into(), n.into());
    }
    insert_opt(&mut body, "temperature", r.temperature);
    insert_opt(&mut body, "top_p", r.top_p);
    insert_opt(&mut body, "seed", r.seed);
    insert_opt(&mut body, "presence_penalty", r.presence_penalty);
    insert_opt(&mut body, "frequency_penalty", r.frequency_penalty);
    insert_opt(&mut body, "user", r.user.clone());
    // `top_k` is not OpenAI's (it answers 400 to unknown parameters), so it is dropped here.
    if !r.stop.is_empty() {
        body.insert("stop".into(), r.stop.clone().into());
    }
    if r.stream {
        body.insert("stream".into(), true.into());
        if dialect.stream_options {
            // Always asked for: the gateway needs the usage to count tokens.
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if !r.tools.is_empty() {
        let tools: Vec<Value> = r
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = d.clone().into();
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), tools.into());
        insert_opt(&mut body, "parallel_tool_calls", r.parallel_tool_calls);
    }
    if let Some(choice) = &r.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), v);
    }
    if dialect.reasoning_effort
        && let Some(effort) = r.reasoning.as_ref().and_then(|x| x.effort())
    {
        body.insert("reasoning_effort".into(), effort.into());
    }
    if let Some(f) = &r.response_format {
        let v = match f {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema, strict } => {
                let mut s = json!({"name": name, "schema": schema});
                if let Some(strict) = strict {
                    s["strict"] = (*strict).into();
                }
                json!({"type": "json_schema", "json_schema": s})
            }
        };
        body.insert("response_format".into(), v);
    }
    let (mut head, mut tail, mut after) = (Map::new(), Map::new(), false);
    for (k, v) in body {
        match k.as_str() {
            "messages" => after = true,
            _ if after => drop(tail.insert(k, v)),
            _ => drop(head.insert(k, v)),
        }
    }
    Ok(RequestBody { head, messages: ChatMessages { r, dialect }, tail })
}

/// The messages of an OpenAI body, written one unified message at a time.
#[derive(Debug)]
pub struct ChatMessages<'a> {
    r: &'a ChatRequest,
    dialect: Dialect,
}

impl Serialize for ChatMessages<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        if !self.r.system.is_empty() {
            let text: Vec<&str> = self.r.system.iter().map(|s| s.text.as_str()).collect();
            seq.serialize_element(&json!({"role": "system", "content": text.join("\n")}))?;
        }
        let mut user = Vec::new();
        for (i, m) in self.r.messages.iter().enumerate() {
            match m.role {
                Role::User => {
                    user_messages(m, &mut user);
                    for v in user.drain(..) {
                        seq.serialize_element(&v)?;
                    }
                }
                // An instruction mid-conversation stays where it was given.
                Role::System => {
                    let text: Vec<&str> = m
                        .content
                        .iter()
                        .filter_map(|p| match p {
                            Part::Text { text, .. } if !text.is_empty() => Some(text.as_str()),
                            _ => None,
                        })
                        .collect();
                    if !text.is_empty() {
                        seq.serialize_element(&json!({"role": "system", "content": text.join("\n")}))?;
                    }
                }
                // Cannot fail: `request_from_unified` checked every assistant turn that can.
                Role::Assistant => {
                    seq.serialize_element(&assistant_message(m, i, self.dialect).map_err(S::Error::custom)?)?
                }
            }
        }
        seq.end()
    }
}

fn insert_opt<T: Into<Value>>(body: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        body.insert(key.into(), v.into());
    }
}

/// A user turn: tool results first, as `role: tool` messages (OpenAI wants them right after the
/// assistant's calls), then the rest as one user message. Images inside a tool result cannot go in
/// a tool message, so they follow in the user message.
fn user_messages(m: &Message, out: &mut Vec<Value>) {
    let mut parts = Vec::new();
    for p in &m.content {
        match p {
            Part::ToolResult { call_id, content, is_error, .. } => {
                let mut text = String::new();
                for c in content {
                    match c {
                        ToolResultPart::Text(t) => {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(t);
                        }
                        ToolResultPart::Image(source) => {
                            parts.push(json!({"type": "image_url", "image_url": {"url": source.to_url()}}))
                        }
                    }
                }
                // OpenAI has no error flag on tool results; the model must still learn the call failed.
                if *is_error && !text.starts_with("Error") {
                    text.insert_str(0, "Error: ");
                }
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
            }
            Part::Text { text, .. } => parts.push(json!({"type": "text", "text": text})),
            Part::Image { source, .. } => {
                parts.push(json!({"type": "image_url", "image_url": {"url": source.to_url()}}))
            }
            // Reasoning and calls are never in a user turn; nothing to send.
            Part::Thinking { .. } | Part::RedactedThinking { .. } | Part::ToolCall { .. } => {}
        }
    }
    if parts.is_empty() {
        return;
    }
    // A lone text part goes as a plain string: every OpenAI-compatible server accepts that.
    let content = match parts.as_slice() {
        [one] if one["type"] == "text" => one["text"].clone(),
        _ => Value::Array(parts),
    };
    out.push(json!({"role": "user", "content": content}));
}

/// An assistant turn. Reasoning from earlier turns goes back only where the server wants it
/// (`Dialect::reasoning_history`).
fn assistant_message(m: &Message, index: usize, dialect: Dialect) -> Result<Value, TranslateError> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &m.content {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::ToolCall { id, name, arguments } => {
                let arguments = if arguments.is_empty() { "{}" } else { arguments.as_str() };
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            Part::Image { .. } | Part::ToolResult { .. } => {
                return Err(TranslateError::new(
                    format!("messages[{index}]: an assistant turn cannot carry images or tool results."),
                    Some(format!("messages[{index}].content")),
                ));
            }
            Part::Thinking { text: t, .. } => reasoning.push_str(t),
            Part::RedactedThinking { .. } => {}
        }
    }
    let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        msg["tool_calls"] = calls.into();
    }
    if dialect.reasoning_history && !reasoning.is_empty() {
        msg["reasoning_content"] = reasoning.into();
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified::{ImageSource, Reasoning, SystemPart, ToolDef};

    /// The body as JSON, as the upstream receives it.
    fn request_from_unified(r: &ChatRequest, dialect: Dialect) -> Result<Value, TranslateError> {
        super::request_from_unified(r, dialect).map(|b| serde_json::to_value(b).unwrap())
    }

    fn req() -> ChatRequest {
        ChatRequest {
            model: "gpt-4o".into(),
            system: vec![SystemPart { text: "Be brief.".into(), cache_control: None }],
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![
                        Part::Text { text: "Look".into(), cache_control: None },
                        Part::Image {
                            source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAA".into() },
                            cache_control: None,
                        },
                    ],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Part::Thinking { text: "hmm".into(), signature: Some("sig".into()) },
                        Part::ToolCall { id: "t1".into(), name: "f".into(), arguments: r#"{"a":1}"#.into() },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Part::ToolResult {
                            call_id: "t1".into(),
                            name: None,
                            content: vec![ToolResultPart::Text("boom".into())],
                            is_error: true,
                            cache_control: None,
                        },
                        Part::Text { text: "and?".into(), cache_control: None },
                    ],
                },
            ],
            max_tokens: Some(100),
            stream: true,
            tools: vec![ToolDef { name: "f".into(), description: None, parameters: json!({}), cache_control: None }],
            tool_choice: Some(ToolChoice::Required),
            reasoning: Some(Reasoning::Budget(4000)),
            top_k: Some(5),
            ..Default::default()
        }
    }

    #[test]
    fn encodes_a_tool_conversation() {
        let body = request_from_unified(&req(), Dialect::OPENAI).unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
                {"role": "user", "content": "and?"}
            ])
        );
        assert_eq!(body["max_completion_tokens"], 100);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["tool_choice"], "required");
        assert_eq!(body["reasoning_effort"], "medium");
        assert!(body.get("top_k").is_none());
    }

    #[test]
    fn system_messages_mid_conversation_stay_in_place() {
        let mut r = req();
        let said = |t: &str| Part::Text { text: t.into(), cache_control: None };
        r.messages.insert(1, Message { role: Role::System, content: vec![said("Use tools."), said("Be quick.")] });
        let body = request_from_unified(&r, Dialect::OPENAI).unwrap();
        let roles: Vec<&str> =
            body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "system", "assistant", "tool", "user"]);
        assert_eq!(body["messages"][2], json!({"role": "system", "content": "Use tools.\nBe quick."}));
    }

    #[test]
    fn compatible_servers_get_max_tokens_and_no_reasoning_effort() {
        let body = request_from_unified(&req(), Dialect::COMPATIBLE).unwrap();
        assert_eq!(body["max_tokens"], 100);
        assert!(body.get("max_completion_tokens").is_none() && body.get("reasoning_effort").is_none());
        let body = request_from_unified(&req(), Dialect { stream_options: false, ..Dialect::COMPATIBLE }).unwrap();
        assert!(body.get("stream_options").is_none());
        assert!(body["messages"][2].get("reasoning_content").is_none(), "reasoning is not sent back by default");
    }

    #[test]
    fn deepseek_gets_its_reasoning_back_on_tool_turns() {
        let body = request_from_unified(&req(), Dialect::DEEPSEEK).unwrap();
        assert_eq!(body["messages"][2]["reasoning_content"], "hmm");
        assert!(body["messages"][2]["tool_calls"].is_array());
    }
}
