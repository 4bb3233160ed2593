//! An OpenAI client's request → the unified model.

use llm_proxy_protocol::openai::{ChatCompletionRequest, ChatMessage};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::unified::{
    ChatRequest, Extra, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, SystemPart, ToolChoice, ToolDef,
    ToolResultPart, TranslateError, WireProtocol,
};

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    Refusal { refusal: String },
    InputAudio {},
    File {},
}

#[derive(Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Deserialize)]
struct ToolCall {
    id: String,
    function: FunctionCall,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireToolChoice {
    Mode(String),
    Named { function: Named },
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchema },
}

#[derive(Deserialize)]
struct JsonSchema {
    name: String,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

/// Decodes `value` as `T`; a mismatch names the field as `path` + the path inside `value`.
fn field<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, TranslateError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let param = if inner == "." || inner.is_empty() { path.to_string() } else { format!("{path}.{inner}") };
        TranslateError::new(format!("{param}: {}", e.into_inner()), Some(param))
    })
}

fn take<T: DeserializeOwned>(map: &mut Map<String, Value>, key: &str, path: &str) -> Result<Option<T>, TranslateError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => field(v, &format!("{path}{key}")).map(Some),
    }
}

pub fn request_to_unified(r: ChatCompletionRequest) -> Result<ChatRequest, TranslateError> {
    if r.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::new(
            "`n` greater than 1 is only supported by OpenAI-protocol upstreams.",
            Some("n".into()),
        ));
    }
    let stream = r.is_stream();
    let mut out = ChatRequest {
        model: r.model,
        max_tokens: r.max_completion_tokens.or(r.max_tokens),
        temperature: r.temperature,
        top_p: r.top_p,
        stream,
        stream_usage: r.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false),
        ..Default::default()
    };
    out.messages.reserve(r.messages.len());
    // One message decoded at a time: a long conversation never exists twice in full.
    r.messages.try_for_each(|i, m| message(m, &format!("messages[{i}]"), &mut out))?;
    for (i, t) in r.tools.unwrap_or_default().into_iter().enumerate() {
        let path = format!("tools[{i}]");
        let tool: Tool = field(Value::Object(t), &path)?;
        if tool.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(TranslateError::new(
                format!("{path}: only `function` tools can be translated to this provider."),
                Some(format!("{path}.type")),
            ));
        }
        out.tools.push(ToolDef {
            name: tool.function.name,
            description: tool.function.description,
            // OpenAI allows omitting parameters for a function that takes none.
            parameters: tool
                .function
                .parameters
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            cache_control: None,
        });
    }
    let mut extra = r.extra;
    out.tool_choice = take::<WireToolChoice>(&mut extra, "tool_choice", "")?
        .map(|c| match c {
            WireToolChoice::Mode(m) => match m.as_str() {
                "auto" => Ok(ToolChoice::Auto),
                "none" => Ok(ToolChoice::None),
                "required" => Ok(ToolChoice::Required),
                other => Err(TranslateError::new(
                    format!("tool_choice: unknown mode `{other}`; use auto, none, required or a named function."),
                    Some("tool_choice".into()),
                )),
            },
            WireToolChoice::Named { function } => Ok(ToolChoice::Tool(function.name)),
        })
        .transpose()?;
    out.parallel_tool_calls = take(&mut extra, "parallel_tool_calls", "")?;
    out.stop = match take::<Stop>(&mut extra, "stop", "")? {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    out.reasoning = take::<String>(&mut extra, "reasoning_effort", "")?.map(|e| Reasoning::from_effort(&e));
    out.response_format = take::<WireResponseFormat>(&mut extra, "response_format", "")?.map(|f| match f {
        WireResponseFormat::Text => ResponseFormat::Text,
        WireResponseFormat::JsonObject => ResponseFormat::JsonObject,
        WireResponseFormat::JsonSchema { json_schema } => ResponseFormat::JsonSchema {
            name: json_schema.name,
            schema: json_schema.schema.unwrap_or(Value::Object(Map::new())),
            strict: json_schema.strict,
        },
    });
    out.user = take(&mut extra, "user", "")?;
    out.seed = take(&mut extra, "seed", "")?;
    out.presence_penalty = take(&mut extra, "presence_penalty", "")?;
    out.frequency_penalty = take(&mut extra, "frequency_penalty", "")?;
    // Not OpenAI's, but vLLM, Ollama and others accept it, and Anthropic and Gemini take it.
    out.top_k = take(&mut extra, "top_k", "")?;
    out.extra = Extra { from: Some(WireProtocol::OpenAi), fields: extra };
    Ok(out)
}

/// Adds one OpenAI message to `out`: system text to the system prompt, the rest as turns.
fn message(m: ChatMessage, path: &str, out: &mut ChatRequest) -> Result<(), TranslateError> {
    let mut rest = m.rest;
    let prefix = format!("{path}.");
    match m.role.as_str() {
        "system" | "developer" => {
            let content: Content = take(&mut rest, "content", &prefix)?.unwrap_or(Content::Text(String::new()));
            for part in content_parts(content, &format!("{path}.content"))? {
                match part {
                    Part::Text { text, .. } => out.system.push(SystemPart { text, cache_control: None }),
                    _ => {
                        return Err(TranslateError::new(
                            format!("{path}.content: a system message may hold text only."),
                            Some(format!("{path}.content")),
                        ));
                    }
                }
            }
        }
        "user" => {
            let content: Content = take(&mut rest, "content", &prefix)?.ok_or_else(|| {
                TranslateError::new(format!("{path}.content is required."), Some(format!("{path}.content")))
            })?;
            let parts = content_parts(content, &format!("{path}.content"))?;
            out.messages.push(Message { role: Role::User, content: parts });
        }
        "assistant" => {
            // DeepSeek-style reasoning sent back in history.
            let reasoning = take::<String>(&mut rest, "reasoning_content", &prefix)?.filter(|t| !t.is_empty());
            let content = match take::<Content>(&mut rest, "content", &prefix)? {
                Some(content) => content_parts(content, &format!("{path}.content"))?,
                None => Vec::new(),
            };
            let calls: Vec<ToolCall> = take(&mut rest, "tool_calls", &prefix)?.unwrap_or_default();
            // Sized exactly: a conversation holds many of these, and a growing `Vec` would keep
            // room for four parts in each.
            let mut parts = Vec::with_capacity(usize::from(reasoning.is_some()) + content.len() + calls.len());
            if let Some(text) = reasoning {
                parts.push(Part::Thinking { text, signature: None });
            }
            parts.extend(content);
            for c in calls {
                parts.push(Part::ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments });
            }
            out.messages.push(Message { role: Role::Assistant, content: parts });
        }
        "tool" => {
            let call_id: String = take(&mut rest, "tool_call_id", &prefix)?.ok_or_else(|| {
                TranslateError::new(format!("{path}.tool_call_id is required."), Some(format!("{path}.tool_call_id")))
            })?;
            let content: Content = take(&mut rest, "content", &prefix)?.unwrap_or(Content::Text(String::new()));
            let content = content_parts(content, &format!("{path}.content"))?
                .into_iter()
                .filter_map(|p| match p {
                    Part::Text { text, .. } => Some(ToolResultPart::Text(text)),
                    Part::Image { source, .. } => Some(ToolResultPart::Image(source)),
                    _ => None,
                })
                .collect();
            let name = find_call_name(&out.messages, &call_id);
            let part = Part::ToolResult { call_id, name, content, is_error: false, cache_control: None };
            // Results of one assistant turn's calls travel together in one user turn.
            match out.messages.last_mut() {
                Some(last)
                    if last.role == Role::User && last.content.iter().all(|p| matches!(p, Part::ToolResult { .. })) =>
                {
                    last.content.push(part)
                }
                _ => out.messages.push(Message { role: Role::User, content: vec![part] }),
            }
        }
        other => {
            return Err(TranslateError::new(
                format!("{path}.role: unknown role `{other}`; use system, developer, user, assistant or tool."),
                Some(format!("{path}.role")),
            ));
        }
    }
    Ok(())
}

/// The name of the tool a call id refers to, from earlier assistant turns.
fn find_call_name(messages: &[Message], call_id: &str) -> Option<String> {
    messages.iter().rev().flat_map(|m| m.content.iter()).find_map(|p| match p {
        Part::ToolCall { id, name, .. } if id == call_id => Some(name.clone()),
        _ => None,
    })
}

fn content_parts(content: Content, path: &str) -> Result<Vec<Part>, TranslateError> {
    match content {
        Content::Text(text) if text.is_empty() => Ok(Vec::new()),
        Content::Text(text) => Ok(vec![Part::Text { text, cache_control: None }]),
        Content::Parts(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                    Ok(Part::Text { text, cache_control: None })
                }
                ContentPart::ImageUrl { image_url } => {
                    Ok(Part::Image { source: ImageSource::from_url(&image_url.url), cache_control: None })
                }
                ContentPart::InputAudio {} | ContentPart::File {} => Err(TranslateError::new(
                    format!("{path}[{i}]: audio and file parts can only go to OpenAI-protocol upstreams."),
                    Some(format!("{path}[{i}].type")),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            // Collecting through `Result` cannot size the `Vec` up front; a conversation holds
            // many of these.
            .map(|mut parts| {
                parts.shrink_to_fit();
                parts
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_proxy_protocol::json::decode;

    fn unify(body: &str) -> Result<ChatRequest, TranslateError> {
        request_to_unified(decode(body.as_bytes()).expect("valid request"))
    }

    #[test]
    fn tool_conversation() {
        let r = unify(
            r#"{"model":"m","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}}]},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                    {"id":"c2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"18C"},
                {"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"21C"}]}],
              "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
              "tool_choice":{"type":"function","function":{"name":"get_weather"}},
              "stop":"END","max_completion_tokens":50,"reasoning_effort":"low","logprobs":true}"#,
        )
        .unwrap();
        assert_eq!(r.system, vec![SystemPart { text: "Be brief.".into(), cache_control: None }]);
        assert_eq!(r.messages.len(), 3, "both tool results share one user turn");
        assert_eq!(
            r.messages[1].content[1],
            Part::ToolCall { id: "c2".into(), name: "get_weather".into(), arguments: r#"{"city":"Rome"}"#.into() }
        );
        assert!(matches!(&r.messages[2].content[0],
            Part::ToolResult { call_id, name: Some(n), .. } if call_id == "c1" && n == "get_weather"));
        assert!(matches!(&r.messages[0].content[1], Part::Image { source: ImageSource::Base64 { .. }, .. }));
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
        assert_eq!(r.stop, vec!["END".to_string()]);
        assert_eq!(r.max_tokens, Some(50));
        assert_eq!(r.reasoning, Some(Reasoning::Effort("low".into())));
        assert_eq!(r.extra.fields.get("logprobs"), Some(&Value::Bool(true)), "unknown fields ride along");
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            unify(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#)
                .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
        let e = unify(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = unify(r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].tool_call_id"));
        let e =
            unify(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let e = unify(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
        let e = unify(r#"{"model":"m","messages":[{"role":"user","content":5}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
    }
}
