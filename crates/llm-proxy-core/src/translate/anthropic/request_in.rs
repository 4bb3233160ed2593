//! An Anthropic client's request → the unified model.

use llm_proxy_protocol::anthropic::{
    ImageBlock, ImageSource as WireImage, MessageParam, MessagesRequest, Metadata, RedactedThinkingBlock, TextBlock,
    ThinkingBlock, ThinkingConfig, Tool, ToolChoice as WireToolChoice, ToolResultBlock, ToolResultContent,
    ToolUseBlock,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::unified::{
    ChatRequest, Extra, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, SystemPart, ToolChoice, ToolDef,
    ToolResultPart, TranslateError, WireProtocol,
};

/// Translates an Anthropic Messages request. Fields without a unified meaning stay in `extra`
/// (marked as Anthropic's); content that only Anthropic can serve (documents, server tools, files)
/// is refused with the path of the offending field.
pub fn request_to_unified(r: MessagesRequest) -> Result<ChatRequest, TranslateError> {
    // The client's protocol headers mean something to Anthropic upstreams only, which never come here.
    let MessagesRequest { model, messages, max_tokens, system, stream, mut extra, headers: _ } = r;
    let system = match system {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => system_parts(v)?,
    };
    let mut turns = Vec::with_capacity(messages.len());
    // One message decoded at a time: a long conversation never exists twice in full.
    messages.try_for_each(|i, m| {
        turns.push(message(m, i)?);
        Ok::<_, TranslateError>(())
    })?;
    let messages = turns;
    let tools = match extra.remove("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => tools(v)?,
    };
    let (tool_choice, parallel_tool_calls) = match take::<WireToolChoice>(&mut extra, "tool_choice")? {
        None => (None, None),
        Some(c) => tool_choice(c),
    };
    let thinking = take::<ThinkingConfig>(&mut extra, "thinking")?;
    let mut output_config = take::<Map<String, Value>>(&mut extra, "output_config")?;
    let response_format = match output_config.as_mut().and_then(|c| c.remove("format")) {
        None | Some(Value::Null) => None,
        Some(f) => Some(output_format(f)?),
    };
    let reasoning = match thinking {
        None => None,
        Some(ThinkingConfig::Enabled { budget_tokens }) => Some(Reasoning::Budget(budget_tokens)),
        Some(ThinkingConfig::Disabled) => Some(Reasoning::Disabled),
        // Adaptive thinking is steered by an effort level, Anthropic's default being `high`.
        Some(ThinkingConfig::Adaptive) => {
            let effort = match output_config.as_mut().and_then(|c| c.remove("effort")) {
                None | Some(Value::Null) => "high".to_string(),
                Some(e) => field::<String>(e, "output_config.effort")?,
            };
            Some(Reasoning::Effort(effort))
        }
    };
    // Whatever else `output_config` holds (an effort without adaptive thinking, say) rides along
    // for Anthropic-family upstreams.
    if let Some(rest) = output_config.filter(|c| !c.is_empty()) {
        extra.insert("output_config".into(), Value::Object(rest));
    }
    let stream = stream.unwrap_or(false);
    Ok(ChatRequest {
        model,
        system,
        messages,
        max_tokens,
        temperature: take(&mut extra, "temperature")?,
        top_p: take(&mut extra, "top_p")?,
        top_k: take(&mut extra, "top_k")?,
        stop: take(&mut extra, "stop_sequences")?.unwrap_or_default(),
        stream,
        // An Anthropic stream always reports usage.
        stream_usage: stream,
        tools,
        tool_choice,
        parallel_tool_calls,
        reasoning,
        response_format,
        user: take::<Metadata>(&mut extra, "metadata")?.and_then(|m| m.user_id),
        seed: None,
        presence_penalty: None,
        frequency_penalty: None,
        extra: Extra { from: Some(WireProtocol::Anthropic), fields: extra },
    })
}

/// Longest error message quoted back to the client: serde quotes the offending value whole.
const MAX_MESSAGE_CHARS: usize = 300;

/// Decodes `value` as `T`; a mismatch names the field as `path` + the path inside `value`.
fn field<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, TranslateError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let param = match inner.as_str() {
            "." | "" | "?" => path.to_string(),
            seq if seq.starts_with('[') => format!("{path}{seq}"),
            _ => format!("{path}.{inner}"),
        };
        let mut reason = e.into_inner().to_string();
        if let Some((cut, _)) = reason.char_indices().nth(MAX_MESSAGE_CHARS) {
            reason.truncate(cut);
            reason.push('…');
        }
        invalid(&param, reason)
    })
}

/// Removes and decodes a top-level field; `null` counts as absent.
fn take<T: DeserializeOwned>(map: &mut Map<String, Value>, key: &str) -> Result<Option<T>, TranslateError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => field(v, key).map(Some),
    }
}

fn invalid(param: &str, reason: impl std::fmt::Display) -> TranslateError {
    TranslateError::new(format!("{param}: {reason}"), Some(param.to_string()))
}

/// Content that has no counterpart outside Anthropic.
fn anthropic_only(param: &str, what: impl std::fmt::Display) -> TranslateError {
    invalid(
        param,
        format_args!("{what} can only be sent to an Anthropic model, and this model is served by another provider"),
    )
}

fn system_parts(v: Value) -> Result<Vec<SystemPart>, TranslateError> {
    match v {
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![SystemPart { text, cache_control: None }]),
        Value::Array(blocks) => blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let path = format!("system[{i}]");
                match block_kind(&b, &path)? {
                    Kind::Text => {
                        let t: TextBlock = field(b, &path)?;
                        Ok(SystemPart { text: t.text, cache_control: t.cache_control })
                    }
                    _ => Err(invalid(&path, "the system prompt may hold `text` blocks only")),
                }
            })
            .collect(),
        _ => Err(invalid("system", "expected a string or an array of text blocks")),
    }
}

fn message(m: MessageParam, i: usize) -> Result<Message, TranslateError> {
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        // Mid-conversation instructions (Claude Code sends them): text, as the system prompt is.
        "system" => {
            let content = match m.content {
                Value::String(text) => vec![Part::Text { text, cache_control: None }],
                Value::Array(blocks) => blocks
                    .into_iter()
                    .enumerate()
                    .map(|(j, b)| {
                        let path = format!("messages[{i}].content[{j}]");
                        match block_kind(&b, &path)? {
                            Kind::Text => {
                                let t: TextBlock = field(b, &path)?;
                                Ok(Part::Text { text: t.text, cache_control: t.cache_control })
                            }
                            _ => Err(invalid(&path, "a system message may hold `text` blocks only")),
                        }
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(invalid(
                        &format!("messages[{i}].content"),
                        "expected a string or an array of text blocks",
                    ));
                }
            };
            return Ok(Message { role: Role::System, content });
        }
        other => {
            return Err(invalid(
                &format!("messages[{i}].role"),
                format_args!("expected `user`, `assistant` or `system`, got `{other}`"),
            ));
        }
    };
    let path = format!("messages[{i}].content");
    let content = match m.content {
        Value::String(text) => vec![Part::Text { text, cache_control: None }],
        Value::Array(blocks) => {
            let mut parts: Vec<Part> = blocks
                .into_iter()
                .enumerate()
                .map(|(j, b)| part(b, &format!("{path}[{j}]")))
                .collect::<Result<_, _>>()?;
            // Collecting through `Result` cannot size the `Vec` up front; a conversation holds
            // many of these.
            parts.shrink_to_fit();
            parts
        }
        _ => return Err(invalid(&path, "expected a string or an array of content blocks")),
    };
    Ok(Message { role, content })
}

/// The block types with a unified meaning.
enum Kind {
    Text,
    Image,
    ToolUse,
    ToolResult,
    Thinking,
    RedactedThinking,
}

/// Reads a block's `type` without taking the block apart, refusing the types other protocols lack
/// (`document`, `search_result`, `server_tool_use`, `web_search_tool_result`, `container_upload`,
/// `mcp_tool_use`, ...).
fn block_kind(block: &Value, path: &str) -> Result<Kind, TranslateError> {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Kind::Text),
        Some("image") => Ok(Kind::Image),
        Some("tool_use") => Ok(Kind::ToolUse),
        Some("tool_result") => Ok(Kind::ToolResult),
        Some("thinking") => Ok(Kind::Thinking),
        Some("redacted_thinking") => Ok(Kind::RedactedThinking),
        Some(other) => Err(anthropic_only(path, format_args!("a `{other}` content block"))),
        None => Err(invalid(path, "expected a content block object with a `type`")),
    }
}

fn part(block: Value, path: &str) -> Result<Part, TranslateError> {
    Ok(match block_kind(&block, path)? {
        Kind::Text => {
            // Citations point into documents of this conversation, which cannot travel either;
            // the text they support can.
            let b: TextBlock = field(block, path)?;
            Part::Text { text: b.text, cache_control: b.cache_control }
        }
        Kind::Image => {
            let b: ImageBlock = field(block, path)?;
            Part::Image { source: image_source(b.source, &format!("{path}.source"))?, cache_control: b.cache_control }
        }
        Kind::ToolUse => {
            // `input` is kept as the JSON text it arrived as (modulo whitespace and key order).
            let b: ToolUseBlock = field(block, path)?;
            Part::ToolCall { id: b.id, name: b.name, arguments: b.input.to_string() }
        }
        Kind::ToolResult => {
            let b: ToolResultBlock = field(block, path)?;
            let content = match b.content {
                None => Vec::new(),
                Some(ToolResultContent::Text(text)) => vec![ToolResultPart::Text(text)],
                Some(ToolResultContent::Blocks(blocks)) => blocks
                    .into_iter()
                    .enumerate()
                    .map(|(k, b)| tool_result_part(b, &format!("{path}.content[{k}]")))
                    .collect::<Result<_, _>>()?,
            };
            Part::ToolResult {
                call_id: b.tool_use_id,
                // Anthropic's results name their call only by id.
                name: None,
                content,
                is_error: b.is_error.unwrap_or(false),
                cache_control: b.cache_control,
            }
        }
        Kind::Thinking => {
            let b: ThinkingBlock = field(block, path)?;
            // An empty signature (what a gateway answer for another provider's reasoning carries) is
            // no signature.
            Part::Thinking { text: b.thinking, signature: b.signature.filter(|s| !s.is_empty()) }
        }
        Kind::RedactedThinking => {
            let b: RedactedThinkingBlock = field(block, path)?;
            Part::RedactedThinking { data: b.data }
        }
    })
}

fn tool_result_part(block: Value, path: &str) -> Result<ToolResultPart, TranslateError> {
    match block_kind(&block, path)? {
        Kind::Text => Ok(ToolResultPart::Text(field::<TextBlock>(block, path)?.text)),
        Kind::Image => {
            let b: ImageBlock = field(block, path)?;
            Ok(ToolResultPart::Image(image_source(b.source, &format!("{path}.source"))?))
        }
        _ => Err(invalid(path, "a tool result may hold `text` and `image` blocks only")),
    }
}

fn image_source(source: WireImage, path: &str) -> Result<ImageSource, TranslateError> {
    match source {
        WireImage::Base64 { media_type, data } => Ok(ImageSource::Base64 { media_type, data }),
        WireImage::Url { url } => Ok(ImageSource::Url(url)),
        WireImage::File { .. } => Err(anthropic_only(path, "an image uploaded with the Files API")),
    }
}

fn tools(v: Value) -> Result<Vec<ToolDef>, TranslateError> {
    let list: Vec<Value> = field(v, "tools")?;
    list.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let path = format!("tools[{i}]");
            // Client tools have no `type` or `custom`; server tools (web search, code execution,
            // bash, text editor, computer use) are run by Anthropic itself.
            if let Some(kind) = t.get("type").and_then(Value::as_str).filter(|k| *k != "custom") {
                return Err(anthropic_only(&format!("{path}.type"), format_args!("the server tool `{kind}`")));
            }
            let t: Tool = field(t, &path)?;
            Ok(ToolDef {
                name: t.name,
                description: t.description,
                parameters: t.input_schema,
                cache_control: t.cache_control,
            })
        })
        .collect()
}

fn tool_choice(c: WireToolChoice) -> (Option<ToolChoice>, Option<bool>) {
    let (choice, disable_parallel) = match c {
        WireToolChoice::Auto { disable_parallel_tool_use } => (ToolChoice::Auto, disable_parallel_tool_use),
        WireToolChoice::Any { disable_parallel_tool_use } => (ToolChoice::Required, disable_parallel_tool_use),
        WireToolChoice::Tool { name, disable_parallel_tool_use } => (ToolChoice::Tool(name), disable_parallel_tool_use),
        WireToolChoice::None => (ToolChoice::None, None),
    };
    (Some(choice), disable_parallel.map(|d| !d))
}

/// `output_config.format`: Anthropic's structured outputs, a JSON schema the answer must match.
fn output_format(f: Value) -> Result<ResponseFormat, TranslateError> {
    #[derive(Deserialize)]
    struct Format {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        schema: Value,
    }
    const PATH: &str = "output_config.format";
    let f: Format = field(f, PATH)?;
    if f.kind != "json_schema" {
        return Err(invalid(&format!("{PATH}.type"), format_args!("unsupported output format `{}`", f.kind)));
    }
    // Anthropic's schemas are unnamed and always enforced.
    Ok(ResponseFormat::JsonSchema { name: "response".into(), schema: f.schema, strict: Some(true) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<ChatRequest, TranslateError> {
        request_to_unified(serde_json::from_value(body).unwrap())
    }

    fn with_content(content: Value) -> Result<ChatRequest, TranslateError> {
        parse(json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": content},
        ]}))
    }

    fn param(r: Result<ChatRequest, TranslateError>) -> String {
        r.unwrap_err().param.unwrap()
    }

    #[test]
    fn plain_fields_map_over() {
        let r = parse(json!({
            "model": "claude", "max_tokens": 512, "stream": true, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
            "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}, "service_tier": "auto",
            "messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}],
        }))
        .unwrap();
        assert_eq!(r.model, "claude");
        assert_eq!(r.max_tokens, Some(512));
        assert!(r.stream && r.stream_usage);
        assert_eq!((r.temperature, r.top_p, r.top_k), (Some(0.5), Some(0.9), Some(40)));
        assert_eq!(r.stop, vec!["END"]);
        assert_eq!(r.user.as_deref(), Some("u-1"));
        assert_eq!(r.extra.from, Some(WireProtocol::Anthropic));
        assert_eq!(r.extra.fields, json!({"service_tier": "auto"}).as_object().unwrap().clone());
        assert_eq!(
            r.messages,
            vec![
                Message { role: Role::User, content: vec![Part::Text { text: "Hello".into(), cache_control: None }] },
                Message { role: Role::Assistant, content: vec![Part::Text { text: "Hi".into(), cache_control: None }] },
            ]
        );
    }

    #[test]
    fn system_is_a_string_or_text_blocks_with_cache_control() {
        let r = parse(json!({"model": "m", "messages": [], "system": "Be brief."})).unwrap();
        assert_eq!(r.system, vec![SystemPart { text: "Be brief.".into(), cache_control: None }]);
        let r = parse(json!({"model": "m", "messages": [], "system": [
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}},
        ]}))
        .unwrap();
        assert_eq!(r.system[1].cache_control, Some(json!({"type": "ephemeral"})));
        let err =
            parse(json!({"model": "m", "messages": [], "system": [{"type": "image", "source": {}}]})).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("system[0]"));
        assert_eq!(param(parse(json!({"model": "m", "messages": [], "system": 5}))), "system");
    }

    #[test]
    fn system_messages_mid_conversation_keep_their_place() {
        let r = parse(json!({"model": "m", "system": "Be brief.", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "Now answer in French.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "system", "content": "Be terse."},
        ]}))
        .unwrap();
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::System, Role::Assistant, Role::System]);
        let texts: Vec<&str> = r.system_texts().map(|(t, _)| t).collect();
        assert_eq!(texts, ["Be brief.", "Now answer in French.", "Be terse."]);
        let bad = parse(json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}]}]}));
        assert_eq!(param(bad), "messages[0].content[0]");
    }

    #[test]
    fn unknown_roles_are_refused() {
        let err = parse(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
        assert!(err.message.contains("`tool`"), "{}", err.message);
    }

    #[test]
    fn images_by_base64_and_url() {
        let r = with_content(json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
            {"type": "image", "source": {"type": "url", "url": "https://x/a.jpg"}, "cache_control": {"type": "ephemeral"}},
        ]))
        .unwrap();
        assert_eq!(
            r.messages[1].content,
            vec![
                Part::Image {
                    source: ImageSource::Base64 { media_type: "image/png".into(), data: "iVBOR".into() },
                    cache_control: None
                },
                Part::Image {
                    source: ImageSource::Url("https://x/a.jpg".into()),
                    cache_control: Some(json!({"type": "ephemeral"}))
                },
            ]
        );
    }

    #[test]
    fn a_bad_image_source_names_its_path() {
        let bad = with_content(json!([{"type": "image", "source": {"type": "base64", "data": "x"}}]));
        let err = bad.unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].content[0].source"));
        assert!(err.message.contains("media_type"), "{}", err.message);
        let file = with_content(json!([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]));
        assert_eq!(param(file), "messages[1].content[0].source");
        let unknown =
            with_content(json!([{"type": "text", "text": "x"}, {"type": "image", "source": {"type": "ftp"}}]));
        assert_eq!(param(unknown), "messages[1].content[1].source.type");
    }

    #[test]
    fn tool_use_input_becomes_argument_text() {
        let r = parse(json!({"model": "m", "messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris", "days": [1, 2]}},
        ]}]}))
        .unwrap();
        let Part::ToolCall { id, name, arguments } = &r.messages[0].content[0] else { panic!() };
        assert_eq!((id.as_str(), name.as_str()), ("toolu_1", "get_weather"));
        assert_eq!(serde_json::from_str::<Value>(arguments).unwrap(), json!({"location": "Paris", "days": [1, 2]}));
    }

    #[test]
    fn tool_results_with_string_or_block_content_and_errors() {
        let r = with_content(json!([
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "cache_control": {"type": "ephemeral"}, "content": [
                {"type": "text", "text": "failed"},
                {"type": "image", "source": {"type": "url", "url": "https://x/err.png"}},
            ]},
            {"type": "tool_result", "tool_use_id": "toolu_3"},
        ]))
        .unwrap();
        assert_eq!(
            r.messages[1].content,
            vec![
                Part::ToolResult {
                    call_id: "toolu_1".into(),
                    name: None,
                    content: vec![ToolResultPart::Text("15 degrees".into())],
                    is_error: false,
                    cache_control: None
                },
                Part::ToolResult {
                    call_id: "toolu_2".into(),
                    name: None,
                    content: vec![
                        ToolResultPart::Text("failed".into()),
                        ToolResultPart::Image(ImageSource::Url("https://x/err.png".into()))
                    ],
                    is_error: true,
                    cache_control: Some(json!({"type": "ephemeral"}))
                },
                Part::ToolResult {
                    call_id: "toolu_3".into(),
                    name: None,
                    content: vec![],
                    is_error: false,
                    cache_control: None
                },
            ]
        );
        let doc = with_content(json!([{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "search_result", "source": "s", "title": "t", "content": []},
        ]}]));
        assert_eq!(param(doc), "messages[1].content[0].content[0]");
    }

    #[test]
    fn thinking_blocks_keep_their_signature() {
        let r = parse(json!({"model": "m", "messages": [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me see", "signature": "EqQB"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "thinking", "thinking": "from another model", "signature": ""},
        ]}]}))
        .unwrap();
        assert_eq!(
            r.messages[0].content,
            vec![
                Part::Thinking { text: "Let me see".into(), signature: Some("EqQB".into()) },
                Part::RedactedThinking { data: "EmwKAhgB".into() },
                Part::Thinking { text: "from another model".into(), signature: None },
            ]
        );
    }

    #[test]
    fn blocks_only_anthropic_serves_are_refused_by_type_and_path() {
        for kind in ["document", "search_result", "server_tool_use", "web_search_tool_result", "container_upload"] {
            let err = with_content(json!([{"type": "text", "text": "x"}, {"type": kind}])).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("messages[1].content[1]"));
            assert!(err.message.contains(&format!("`{kind}`")), "{}", err.message);
        }
        assert_eq!(param(with_content(json!([{"text": "no type"}]))), "messages[1].content[0]");
        assert_eq!(param(with_content(json!(42))), "messages[1].content");
        let missing = with_content(json!([{"type": "tool_use", "id": "t", "input": {}}])).unwrap_err();
        assert_eq!(missing.param.as_deref(), Some("messages[1].content[0]"));
        assert!(missing.message.contains("`name`"), "{}", missing.message);
    }

    #[test]
    fn tools_and_tool_choice() {
        let r = parse(json!({"model": "m", "messages": [],
            "tools": [
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                {"type": "custom", "name": "other", "input_schema": {"type": "object", "properties": {}}},
            ],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        }))
        .unwrap();
        assert_eq!(
            r.tools[0],
            ToolDef {
                name: "get_weather".into(),
                description: Some("Weather".into()),
                parameters: json!({"type": "object"}),
                cache_control: Some(json!({"type": "ephemeral"}))
            }
        );
        assert_eq!(r.tools[1].description, None);
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
        assert_eq!(r.parallel_tool_calls, Some(false));

        let choice = |c: Value| parse(json!({"model": "m", "messages": [], "tool_choice": c})).unwrap();
        let r = choice(json!({"type": "auto"}));
        assert_eq!((r.tool_choice, r.parallel_tool_calls), (Some(ToolChoice::Auto), None));
        let r = choice(json!({"type": "any", "disable_parallel_tool_use": false}));
        assert_eq!((r.tool_choice, r.parallel_tool_calls), (Some(ToolChoice::Required), Some(true)));
        assert_eq!(choice(json!({"type": "none"})).tool_choice, Some(ToolChoice::None));
        assert_eq!(param(parse(json!({"model": "m", "messages": [], "tool_choice": {"type": "tool"}}))), "tool_choice");
    }

    #[test]
    fn server_tools_are_refused() {
        let err = parse(json!({"model": "m", "messages": [], "tools": [
            {"name": "f", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ]}))
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tools[1].type"));
        assert!(err.message.contains("`web_search_20250305`"), "{}", err.message);
        let missing_schema = parse(json!({"model": "m", "messages": [], "tools": [{"name": "f"}]}));
        assert_eq!(param(missing_schema), "tools[0]");
    }

    #[test]
    fn thinking_config_becomes_reasoning() {
        let thinking = |t: Value, extra: Value| {
            let mut body = json!({"model": "m", "messages": [], "thinking": t});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            parse(body).unwrap()
        };
        let r = thinking(json!({"type": "enabled", "budget_tokens": 16000}), json!({}));
        assert_eq!(r.reasoning, Some(Reasoning::Budget(16000)));
        assert_eq!(thinking(json!({"type": "disabled"}), json!({})).reasoning, Some(Reasoning::Disabled));
        let r = thinking(json!({"type": "adaptive"}), json!({"output_config": {"effort": "medium"}}));
        assert_eq!(r.reasoning, Some(Reasoning::Effort("medium".into())));
        assert!(r.extra.fields.is_empty());
        assert_eq!(thinking(json!({"type": "adaptive"}), json!({})).reasoning, Some(Reasoning::Effort("high".into())));
        let bad = parse(json!({"model": "m", "messages": [], "thinking": {"type": "enabled"}}));
        assert_eq!(param(bad), "thinking");
    }

    #[test]
    fn output_config_format_is_a_json_schema_response_format() {
        let schema =
            json!({"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": false});
        let r = parse(json!({"model": "m", "messages": [],
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}}))
        .unwrap();
        assert_eq!(
            r.response_format,
            Some(ResponseFormat::JsonSchema { name: "response".into(), schema, strict: Some(true) })
        );
        // An effort without adaptive thinking has no unified meaning; it stays Anthropic's.
        assert_eq!(r.reasoning, None);
        assert_eq!(r.extra.fields.get("output_config"), Some(&json!({"effort": "low"})));
        let bad = parse(json!({"model": "m", "messages": [], "output_config": {"format": {"type": "xml"}}}));
        assert_eq!(param(bad), "output_config.format.type");
    }

    #[test]
    fn mistyped_top_level_fields_name_themselves() {
        assert_eq!(param(parse(json!({"model": "m", "messages": [], "temperature": "hot"}))), "temperature");
        assert_eq!(
            param(parse(json!({"model": "m", "messages": [], "stop_sequences": ["a", 1]}))),
            "stop_sequences[1]"
        );
        assert_eq!(param(parse(json!({"model": "m", "messages": [], "metadata": {"user_id": 5}}))), "metadata.user_id");
    }

    #[test]
    fn long_offending_values_are_not_quoted_whole() {
        let err = parse(json!({"model": "m", "messages": [], "temperature": "x".repeat(10_000)})).unwrap_err();
        assert!(err.message.chars().count() < 400, "{}", err.message.len());
    }
}
