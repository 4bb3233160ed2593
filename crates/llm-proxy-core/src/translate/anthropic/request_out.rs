//! The unified model → a body for an Anthropic upstream (`/v1/messages`, `/v1/messages/count_tokens`).

use llm_proxy_protocol::anthropic::{
    ContentBlock, ImageBlock, ImageSource as WireImage, RedactedThinkingBlock, TextBlock, ThinkingBlock,
    ThinkingConfig, Tool, ToolChoice as WireToolChoice, ToolResultBlock, ToolResultContent, ToolUseBlock,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::translate::{RequestBody, TurnSpans};
use crate::unified::{
    ChatRequest, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, ToolChoice, ToolResultPart,
    TranslateError, WireProtocol,
};

/// `max_tokens` when the request has none: Anthropic requires one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

/// Anthropic accepts `top_p` with thinking on only from here up.
const MIN_TOP_P_WITH_THINKING: f64 = 0.95;

/// The body of `POST /v1/messages`.
pub fn request_from_unified(r: &ChatRequest) -> Result<RequestBody<Turns<'_>>, TranslateError> {
    let (mut out, thinking) = prompt(r)?;
    let body = &mut out.tail;
    let requested = r.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    // The thinking budget is part of `max_tokens`, which must exceed it; a request whose limit
    // would leave no room for the answer gets the budget on top of what it asked for.
    let max_tokens = match &thinking {
        Some(ThinkingConfig::Enabled { budget_tokens }) if requested <= *budget_tokens => budget_tokens + requested,
        _ => requested,
    };
    body.insert("max_tokens".into(), max_tokens.into());
    let thinking_on = matches!(thinking, Some(ThinkingConfig::Enabled { .. } | ThinkingConfig::Adaptive));
    // Anthropic rejects `temperature` and `top_k` with thinking on, and `top_p` below 0.95: they
    // are dropped rather than failing a request the client wrote for another provider.
    if !thinking_on {
        insert_some(body, "temperature", r.temperature);
        insert_some(body, "top_k", r.top_k);
    }
    insert_some(body, "top_p", r.top_p.filter(|p| !thinking_on || *p >= MIN_TOP_P_WITH_THINKING));
    if !r.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(r.stop));
    }
    if let Some(user) = &r.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    let mut output_config = Map::new();
    // Anthropic has no schema-less JSON mode: `json_object` is left to the prompt, which OpenAI
    // requires to ask for JSON anyway.
    if let Some(ResponseFormat::JsonSchema { schema, .. }) = &r.response_format {
        output_config.insert("format".into(), json!({"type": "json_schema", "schema": schema}));
    }
    if let (Some(ThinkingConfig::Adaptive), Some(Reasoning::Effort(effort))) = (&thinking, &r.reasoning) {
        output_config.insert("effort".into(), json!(effort));
    }
    if !output_config.is_empty() {
        body.insert("output_config".into(), Value::Object(output_config));
    }
    if r.stream {
        body.insert("stream".into(), true.into());
    }
    // Seed and penalties have no Anthropic counterpart and are dropped.
    if r.extra.from == Some(WireProtocol::Anthropic) {
        let fields = r.extra.fields.iter().filter(|(k, _)| !out.head.contains_key(*k) && *k != "messages");
        merge_extra(&mut out.tail, fields);
    }
    Ok(out)
}

/// The body of `POST /v1/messages/count_tokens`: the prompt only (that endpoint takes no
/// `max_tokens`, sampling settings or `stream`).
pub fn count_tokens_body(r: &ChatRequest) -> Result<RequestBody<Turns<'_>>, TranslateError> {
    prompt(r).map(|(body, _)| body)
}

/// What both endpoints take: model, system, messages, tools, tool choice and thinking (also
/// returned, as it shapes the generation settings).
fn prompt(r: &ChatRequest) -> Result<(RequestBody<Turns<'_>>, Option<ThinkingConfig>), TranslateError> {
    let mut head = Map::new();
    head.insert("model".into(), json!(r.model));
    if let Some(system) = system(r) {
        head.insert("system".into(), system);
    }
    // The only part that can fail to translate is a tool call's arguments: checked here, so
    // that writing the turns later cannot fail.
    for (i, m) in r.messages.iter().enumerate() {
        for p in m.content.iter().filter(|p| matches!(p, Part::ToolCall { .. })) {
            block(p, i)?;
        }
    }
    let thinking = thinking(r);
    let mut tail = Map::new();
    // Without tools there is nothing to choose from: a lone `tool_choice` is left out.
    if !r.tools.is_empty() {
        let tools: Vec<Tool> = r
            .tools
            .iter()
            .map(|t| Tool {
                name: t.name.clone(),
                description: t.description.clone(),
                // OpenAI lets a function omit its parameters; Anthropic requires an object schema.
                input_schema: if t.parameters.is_null() { json!({"type": "object"}) } else { t.parameters.clone() },
                cache_control: t.cache_control.clone(),
            })
            .collect();
        tail.insert("tools".into(), json_of(&tools));
        if let Some(choice) = tool_choice(r) {
            tail.insert("tool_choice".into(), json_of(&choice));
        }
    }
    if let Some(t) = &thinking {
        tail.insert("thinking".into(), json_of(t));
    }
    Ok((RequestBody { head, messages: Turns(&r.messages), tail }, thinking))
}

/// A string when nothing is cached (what every Anthropic-compatible server accepts), else text
/// blocks that keep each part's `cache_control`. Mid-conversation system messages are folded in
/// after the prompt: only the newest Claude models take them in place.
fn system(r: &ChatRequest) -> Option<Value> {
    let parts: Vec<(&str, Option<&Value>)> = r.system_texts().collect();
    if parts.is_empty() {
        return None;
    }
    if parts.iter().all(|(_, cache)| cache.is_none()) {
        let texts: Vec<&str> = parts.iter().map(|(text, _)| *text).collect();
        return Some(Value::String(texts.join("\n\n")));
    }
    let blocks: Vec<ContentBlock> = parts
        .iter()
        .map(|(text, cache)| {
            ContentBlock::Text(TextBlock { text: text.to_string(), cache_control: cache.cloned(), citations: None })
        })
        .collect();
    Some(json_of(&blocks))
}

fn tool_choice(r: &ChatRequest) -> Option<WireToolChoice> {
    let disable_parallel_tool_use = r.parallel_tool_calls.map(|parallel| !parallel);
    Some(match &r.tool_choice {
        // "One call at most" alone is said with the default choice.
        None if disable_parallel_tool_use == Some(true) => WireToolChoice::Auto { disable_parallel_tool_use },
        None => return None,
        Some(ToolChoice::Auto) => WireToolChoice::Auto { disable_parallel_tool_use },
        Some(ToolChoice::Required) => WireToolChoice::Any { disable_parallel_tool_use },
        Some(ToolChoice::Tool(name)) => WireToolChoice::Tool { name: name.clone(), disable_parallel_tool_use },
        Some(ToolChoice::None) => WireToolChoice::None,
    })
}

fn thinking(r: &ChatRequest) -> Option<ThinkingConfig> {
    let config = match r.reasoning.as_ref()? {
        Reasoning::Disabled | Reasoning::Budget(0) => return Some(ThinkingConfig::Disabled),
        // Only adaptive thinking yields an effort from an Anthropic client; send it back as such.
        Reasoning::Effort(_) if r.extra.from == Some(WireProtocol::Anthropic) => ThinkingConfig::Adaptive,
        other => ThinkingConfig::Enabled { budget_tokens: other.budget()?.max(MIN_THINKING_BUDGET) },
    };
    // Anthropic refuses thinking with a forced tool choice; the forced call is what the client
    // cannot do without, so thinking gives way.
    if !r.tools.is_empty() && matches!(r.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool(_))) {
        return None;
    }
    // It also refuses to continue a tool-use turn (tool results last) whose assistant part does
    // not open with its signed thinking, which a turn produced by another provider cannot have.
    let mut last_two = [None, None];
    for turn in TurnSpans::new(&r.messages, is_kept) {
        last_two = [last_two[1].take(), Some(turn)];
    }
    if let [Some((Role::Assistant, calls)), Some((Role::User, results))] =
        last_two.map(|t| t.map(|(role, range)| (role, &r.messages[range])))
        && kept_parts(results).any(|p| matches!(p, Part::ToolResult { .. }))
        && !matches!(kept_parts(calls).next(), Some(Part::Thinking { .. } | Part::RedactedThinking { .. }))
    {
        return None;
    }
    Some(config)
}

#[derive(Serialize)]
struct OutMessage {
    role: &'static str,
    content: OutContent,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// The messages as Anthropic turns: consecutive messages of one role merged (Anthropic wants them
/// alternating) and messages left empty (all their parts dropped) skipped. In a user turn tool
/// results come first, as Anthropic requires. Written one turn at a time.
#[derive(Debug)]
pub struct Turns<'a>(&'a [Message]);

impl Serialize for Turns<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        for (role, range) in TurnSpans::new(self.0, is_kept) {
            let mut blocks = Vec::new();
            for (i, m) in self.0[range.clone()].iter().enumerate() {
                if m.role == Role::System {
                    continue;
                }
                for p in &m.content {
                    // Cannot fail: `prompt` checked every tool call.
                    if let Some(b) = block(p, range.start + i).map_err(S::Error::custom)? {
                        blocks.push(b);
                    }
                }
            }
            let role = match role {
                Role::User => {
                    // A stable sort: the results keep their order, and so does the rest.
                    blocks.sort_by_key(|b| !matches!(b, ContentBlock::ToolResult(_)));
                    "user"
                }
                Role::Assistant => "assistant",
                // `TurnSpans` leaves system messages to `system`.
                Role::System => continue,
            };
            seq.serialize_element(&OutMessage { role, content: content(blocks) })?;
        }
        seq.end()
    }
}

/// Whether `block` makes a block of this part (what it drops, it drops here too).
fn is_kept(p: &Part) -> bool {
    match p {
        Part::Text { text, .. } => !text.is_empty(),
        Part::Thinking { signature, .. } => signature.as_ref().is_some_and(|s| !s.is_empty()),
        Part::Image { .. } | Part::ToolCall { .. } | Part::ToolResult { .. } | Part::RedactedThinking { .. } => true,
    }
}

/// The parts of `messages` that make blocks, in order.
fn kept_parts(messages: &[Message]) -> impl Iterator<Item = &Part> {
    messages.iter().filter(|m| m.role != Role::System).flat_map(|m| m.content.iter()).filter(|p| is_kept(p))
}

/// A lone uncached text block as the string shorthand, anything else as blocks.
fn content(mut blocks: Vec<ContentBlock>) -> OutContent {
    if let [ContentBlock::Text(TextBlock { cache_control: None, citations: None, .. })] = blocks.as_slice()
        && let Some(ContentBlock::Text(t)) = blocks.pop()
    {
        return OutContent::Text(t.text);
    }
    OutContent::Blocks(blocks)
}

fn block(p: &Part, message: usize) -> Result<Option<ContentBlock>, TranslateError> {
    Ok(Some(match p {
        // Anthropic rejects empty text blocks.
        Part::Text { text, .. } if text.is_empty() => return Ok(None),
        Part::Text { text, cache_control } => {
            ContentBlock::Text(TextBlock { text: text.clone(), cache_control: cache_control.clone(), citations: None })
        }
        Part::Image { source, cache_control } => {
            ContentBlock::Image(ImageBlock { source: image(source), cache_control: cache_control.clone() })
        }
        Part::ToolCall { id, name, arguments } => ContentBlock::ToolUse(ToolUseBlock {
            id: id.clone(),
            name: name.clone(),
            input: tool_input(arguments).map_err(|reason| {
                let param = format!("messages[{message}]");
                TranslateError::new(
                    format!("{param}: the arguments of tool call `{name}` ({id}) are not a JSON object: {reason}"),
                    Some(param),
                )
            })?,
            cache_control: None,
        }),
        Part::ToolResult { call_id, content, is_error, cache_control, .. } => {
            ContentBlock::ToolResult(ToolResultBlock {
                tool_use_id: call_id.clone(),
                content: tool_result_content(content),
                is_error: is_error.then_some(true),
                cache_control: cache_control.clone(),
            })
        }
        Part::Thinking { text, signature: Some(signature) } if !signature.is_empty() => {
            ContentBlock::Thinking(ThinkingBlock { thinking: text.clone(), signature: Some(signature.clone()) })
        }
        // Unsigned reasoning is another model's; Anthropic refuses thinking blocks it did not sign.
        Part::Thinking { .. } => return Ok(None),
        Part::RedactedThinking { data } => ContentBlock::RedactedThinking(RedactedThinkingBlock { data: data.clone() }),
    }))
}

/// Anthropic's `input` object of a tool call's argument text; no text at all is no arguments.
fn tool_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn tool_result_content(parts: &[ToolResultPart]) -> Option<ToolResultContent> {
    let parts: Vec<_> = parts.iter().filter(|p| !matches!(p, ToolResultPart::Text(t) if t.is_empty())).collect();
    match parts.as_slice() {
        [] => None,
        [ToolResultPart::Text(text)] => Some(ToolResultContent::Text(text.clone())),
        _ => Some(ToolResultContent::Blocks(
            parts
                .iter()
                .map(|p| match p {
                    ToolResultPart::Text(text) => json!({"type": "text", "text": text}),
                    ToolResultPart::Image(source) => json!({"type": "image", "source": json_of(&image(source))}),
                })
                .collect(),
        )),
    }
}

fn image(source: &ImageSource) -> WireImage {
    match source {
        ImageSource::Url(url) => WireImage::Url { url: url.clone() },
        ImageSource::Base64 { media_type, data } => {
            WireImage::Base64 { media_type: media_type.clone(), data: data.clone() }
        }
    }
}

fn insert_some<T: Into<Value>>(body: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        body.insert(key.into(), v.into());
    }
}

/// Adds the client's own fields where the translation did not set one; objects set on both sides
/// (`output_config`) are merged, the translation's keys winning.
fn merge_extra<'e>(body: &mut Map<String, Value>, extra: impl Iterator<Item = (&'e String, &'e Value)>) {
    for (key, value) in extra {
        match (body.get_mut(key), value) {
            (None, _) => {
                body.insert(key.clone(), value.clone());
            }
            (Some(Value::Object(ours)), Value::Object(theirs)) => {
                for (k, v) in theirs {
                    ours.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            (Some(_), _) => {}
        }
    }
}

/// The JSON of a wire type. These are plain structs with string keys, whose serialization cannot
/// fail; `Null` stands in for the impossible.
fn json_of<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified::{Extra, SystemPart, ToolDef};

    /// The body as JSON, as the upstream receives it.
    fn request_from_unified(r: &ChatRequest) -> Result<Value, TranslateError> {
        super::request_from_unified(r).map(|b| serde_json::to_value(b).unwrap())
    }

    fn user(text: &str) -> Message {
        Message { role: Role::User, content: vec![Part::Text { text: text.into(), cache_control: None }] }
    }

    fn assistant(content: Vec<Part>) -> Message {
        Message { role: Role::Assistant, content }
    }

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest { model: "claude-sonnet-4-5".into(), messages, ..ChatRequest::default() }
    }

    fn call(id: &str, arguments: &str) -> Part {
        Part::ToolCall { id: id.into(), name: "get_weather".into(), arguments: arguments.into() }
    }

    fn result(id: &str, text: &str) -> Part {
        Part::ToolResult {
            call_id: id.into(),
            name: None,
            content: vec![ToolResultPart::Text(text.into())],
            is_error: false,
            cache_control: None,
        }
    }

    #[test]
    fn a_minimal_request_gets_the_default_max_tokens() {
        let body = request_from_unified(&request(vec![user("Hello")])).unwrap();
        assert_eq!(
            body,
            json!({"model": "claude-sonnet-4-5", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": "Hello"}]})
        );
    }

    #[test]
    fn sampling_stop_user_and_stream() {
        let r = ChatRequest {
            max_tokens: Some(100),
            temperature: Some(0.2),
            top_p: Some(0.5),
            top_k: Some(3),
            stop: vec!["END".into()],
            user: Some("u-1".into()),
            stream: true,
            seed: Some(7),
            presence_penalty: Some(1.0),
            ..request(vec![user("x")])
        };
        let body = request_from_unified(&r).unwrap();
        assert_eq!(body["max_tokens"], 100);
        assert_eq!((&body["temperature"], &body["top_p"], &body["top_k"]), (&json!(0.2), &json!(0.5), &json!(3)));
        assert_eq!(body["stop_sequences"], json!(["END"]));
        assert_eq!(body["metadata"], json!({"user_id": "u-1"}));
        assert_eq!(body["stream"], true);
        assert!(body.get("seed").is_none() && body.get("presence_penalty").is_none());
    }

    #[test]
    fn system_is_a_string_unless_something_is_cached() {
        let part = |text: &str, cache: bool| SystemPart {
            text: text.into(),
            cache_control: cache.then(|| json!({"type": "ephemeral"})),
        };
        let r = ChatRequest { system: vec![part("a", false), part("", false), part("b", false)], ..request(vec![]) };
        assert_eq!(request_from_unified(&r).unwrap()["system"], "a\n\nb");
        let r = ChatRequest { system: vec![part("a", false), part("b", true)], ..request(vec![]) };
        assert_eq!(
            request_from_unified(&r).unwrap()["system"],
            json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}])
        );
        let r = ChatRequest { system: vec![part("", false)], ..request(vec![]) };
        assert!(request_from_unified(&r).unwrap().get("system").is_none());
    }

    #[test]
    fn system_messages_mid_conversation_fold_into_system() {
        let mut r = request(vec![
            user("a"),
            Message {
                role: Role::System,
                content: vec![Part::Text { text: "Answer in French.".into(), cache_control: None }],
            },
            user("b"),
        ]);
        r.system = vec![SystemPart { text: "Be brief.".into(), cache_control: None }];
        let body = request_from_unified(&r).unwrap();
        assert_eq!(body["system"], "Be brief.\n\nAnswer in French.");
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
        );
    }

    #[test]
    fn consecutive_turns_merge_and_empty_parts_vanish() {
        let r = request(vec![
            user("a"),
            user(""),
            user("b"),
            assistant(vec![Part::Text { text: String::new(), cache_control: None }]),
            user("c"),
            assistant(vec![Part::Thinking { text: "unsigned".into(), signature: None }]),
            assistant(vec![Part::Thinking { text: "signed by nobody".into(), signature: Some(String::new()) }]),
        ]);
        assert_eq!(
            request_from_unified(&r).unwrap()["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "text", "text": "c"}]}])
        );
    }

    #[test]
    fn tool_calls_and_results_round_out_a_turn() {
        let r = request(vec![
            user("Weather in Paris and Rome?"),
            assistant(vec![call("toolu_1", r#"{"location":"Paris"}"#), call("toolu_2", "")]),
            // OpenAI puts each result in its own message and the user's next words after them.
            Message { role: Role::User, content: vec![result("toolu_1", "15 degrees")] },
            Message {
                role: Role::User,
                content: vec![
                    Part::Text { text: "Also, thanks!".into(), cache_control: None },
                    Part::ToolResult {
                        call_id: "toolu_2".into(),
                        name: Some("get_weather".into()),
                        content: vec![
                            ToolResultPart::Text("no data".into()),
                            ToolResultPart::Image(ImageSource::Url("https://x/map.png".into())),
                        ],
                        is_error: true,
                        cache_control: None,
                    },
                ],
            },
        ]);
        assert_eq!(
            request_from_unified(&r).unwrap()["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [
                        {"type": "text", "text": "no data"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/map.png"}},
                    ]},
                    {"type": "text", "text": "Also, thanks!"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_arguments_that_are_not_an_object_are_refused() {
        for bad in ["{\"location\":", "[1, 2]", "\"Paris\""] {
            let r = request(vec![user("x"), assistant(vec![call("toolu_1", bad)])]);
            let err = request_from_unified(&r).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("messages[1]"), "{bad}");
            assert!(err.message.contains("toolu_1"), "{}", err.message);
        }
    }

    #[test]
    fn images_and_thinking_blocks() {
        let r = request(vec![
            Message {
                role: Role::User,
                content: vec![Part::Image {
                    source: ImageSource::Base64 { media_type: "image/png".into(), data: "iVBOR".into() },
                    cache_control: Some(json!({"type": "ephemeral"})),
                }],
            },
            assistant(vec![
                Part::Thinking { text: "hmm".into(), signature: Some("EqQB".into()) },
                Part::RedactedThinking { data: "EmwK".into() },
                Part::Text { text: "Done".into(), cache_control: None },
            ]),
        ]);
        assert_eq!(
            request_from_unified(&r).unwrap()["messages"],
            json!([
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}, "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "EqQB"},
                    {"type": "redacted_thinking", "data": "EmwK"},
                    {"type": "text", "text": "Done"},
                ]},
            ])
        );
    }

    #[test]
    fn tools_and_choices() {
        let tool = ToolDef { name: "f".into(), description: None, parameters: Value::Null, cache_control: None };
        let with = |choice: Option<ToolChoice>, parallel: Option<bool>| {
            let r = ChatRequest {
                tools: vec![tool.clone()],
                tool_choice: choice,
                parallel_tool_calls: parallel,
                ..request(vec![user("x")])
            };
            request_from_unified(&r).unwrap()
        };
        let body = with(None, None);
        assert_eq!(body["tools"], json!([{"name": "f", "input_schema": {"type": "object"}}]));
        assert!(body.get("tool_choice").is_none());
        assert_eq!(with(None, Some(false))["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        assert!(with(None, Some(true)).get("tool_choice").is_none());
        assert_eq!(with(Some(ToolChoice::Auto), None)["tool_choice"], json!({"type": "auto"}));
        assert_eq!(
            with(Some(ToolChoice::Required), Some(true))["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": false})
        );
        assert_eq!(
            with(Some(ToolChoice::Tool("f".into())), Some(false))["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        assert_eq!(with(Some(ToolChoice::None), Some(false))["tool_choice"], json!({"type": "none"}));
        // No tools: nothing to choose from.
        let r = ChatRequest { tool_choice: Some(ToolChoice::Required), ..request(vec![user("x")]) };
        assert!(request_from_unified(&r).unwrap().get("tool_choice").is_none());
    }

    #[test]
    fn a_thinking_budget_raises_max_tokens_and_drops_incompatible_sampling() {
        let r = ChatRequest {
            max_tokens: Some(1000),
            reasoning: Some(Reasoning::Budget(2000)),
            temperature: Some(0.7),
            top_k: Some(5),
            top_p: Some(0.9),
            ..request(vec![user("x")])
        };
        let body = request_from_unified(&r).unwrap();
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 2000}));
        assert_eq!(body["max_tokens"], 3000);
        assert!(body.get("temperature").is_none() && body.get("top_k").is_none() && body.get("top_p").is_none());
        let r = ChatRequest { max_tokens: Some(20000), top_p: Some(0.95), ..r };
        let body = request_from_unified(&r).unwrap();
        assert_eq!((&body["max_tokens"], &body["top_p"]), (&json!(20000), &json!(0.95)));
    }

    #[test]
    fn reasoning_maps_to_thinking() {
        let thinking_of = |reasoning: Reasoning, from: Option<WireProtocol>| {
            let r = ChatRequest {
                reasoning: Some(reasoning),
                extra: Extra { from, fields: Map::new() },
                ..request(vec![user("x")])
            };
            request_from_unified(&r).unwrap()
        };
        let body = thinking_of(Reasoning::Effort("high".into()), Some(WireProtocol::OpenAi));
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 16384}));
        assert_eq!(body["max_tokens"], 16384 + DEFAULT_MAX_TOKENS);
        assert_eq!(thinking_of(Reasoning::Budget(100), None)["thinking"]["budget_tokens"], MIN_THINKING_BUDGET);
        assert_eq!(thinking_of(Reasoning::Budget(0), None)["thinking"], json!({"type": "disabled"}));
        assert_eq!(thinking_of(Reasoning::Disabled, None)["thinking"], json!({"type": "disabled"}));
        let body = thinking_of(Reasoning::Effort("low".into()), Some(WireProtocol::Anthropic));
        assert_eq!(body["thinking"], json!({"type": "adaptive"}));
        assert_eq!(body["output_config"], json!({"effort": "low"}));
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn thinking_gives_way_to_a_forced_tool_and_to_an_unsigned_tool_turn() {
        let tool =
            ToolDef { name: "f".into(), description: None, parameters: json!({"type": "object"}), cache_control: None };
        let thinking = |messages: Vec<Message>, choice: Option<ToolChoice>| {
            let r = ChatRequest {
                reasoning: Some(Reasoning::Effort("medium".into())),
                tools: vec![tool.clone()],
                tool_choice: choice,
                ..request(messages)
            };
            request_from_unified(&r).unwrap().get("thinking").cloned()
        };
        assert!(thinking(vec![user("x")], Some(ToolChoice::Auto)).is_some());
        assert_eq!(thinking(vec![user("x")], Some(ToolChoice::Required)), None);
        assert_eq!(thinking(vec![user("x")], Some(ToolChoice::Tool("f".into()))), None);
        // A tool loop started by another provider: its call carries no signed thinking.
        let unsigned = vec![
            user("x"),
            assistant(vec![call("toolu_1", "{}")]),
            Message { role: Role::User, content: vec![result("toolu_1", "ok")] },
        ];
        assert_eq!(thinking(unsigned, None), None);
        let signed = vec![
            user("x"),
            assistant(vec![Part::Thinking { text: "t".into(), signature: Some("s".into()) }, call("toolu_1", "{}")]),
            Message { role: Role::User, content: vec![result("toolu_1", "ok")] },
        ];
        assert!(thinking(signed, None).is_some());
        // A finished tool loop followed by a new question is fine.
        let finished = vec![
            user("x"),
            assistant(vec![call("toolu_1", "{}")]),
            Message { role: Role::User, content: vec![result("toolu_1", "ok")] },
            assistant(vec![Part::Text { text: "done".into(), cache_control: None }]),
            user("next"),
        ];
        assert!(thinking(finished, None).is_some());
    }

    #[test]
    fn response_formats() {
        let schema = json!({"type": "object", "properties": {}, "additionalProperties": false});
        let r = ChatRequest {
            response_format: Some(ResponseFormat::JsonSchema {
                name: "x".into(),
                schema: schema.clone(),
                strict: None,
            }),
            ..request(vec![user("x")])
        };
        assert_eq!(
            request_from_unified(&r).unwrap()["output_config"],
            json!({"format": {"type": "json_schema", "schema": schema}})
        );
        let r = ChatRequest { response_format: Some(ResponseFormat::JsonObject), ..request(vec![user("x")]) };
        assert!(request_from_unified(&r).unwrap().get("output_config").is_none());
    }

    #[test]
    fn extra_fields_travel_only_between_anthropic_ends() {
        let fields = json!({"service_tier": "auto", "model": "not this", "output_config": {"effort": "low", "format": "not this"}});
        let fields = fields.as_object().unwrap().clone();
        let r = ChatRequest {
            response_format: Some(ResponseFormat::JsonSchema { name: "x".into(), schema: json!({}), strict: None }),
            extra: Extra { from: Some(WireProtocol::Anthropic), fields: fields.clone() },
            ..request(vec![user("x")])
        };
        let body = request_from_unified(&r).unwrap();
        assert_eq!(body["service_tier"], "auto");
        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert_eq!(body["output_config"], json!({"effort": "low", "format": {"type": "json_schema", "schema": {}}}));
        let r = ChatRequest { extra: Extra { from: Some(WireProtocol::OpenAi), fields }, ..request(vec![user("x")]) };
        assert!(request_from_unified(&r).unwrap().get("service_tier").is_none());
    }

    #[test]
    fn count_tokens_bodies_hold_the_prompt_only() {
        let r = ChatRequest {
            max_tokens: Some(10),
            temperature: Some(0.1),
            stream: true,
            reasoning: Some(Reasoning::Budget(2048)),
            extra: Extra {
                from: Some(WireProtocol::Anthropic),
                fields: json!({"service_tier": "auto"}).as_object().unwrap().clone(),
            },
            tools: vec![ToolDef {
                name: "f".into(),
                description: Some("d".into()),
                parameters: json!({"type": "object"}),
                cache_control: None,
            }],
            system: vec![SystemPart { text: "Be brief.".into(), cache_control: None }],
            ..request(vec![user("Hello")])
        };
        assert_eq!(
            serde_json::to_value(count_tokens_body(&r).unwrap()).unwrap(),
            json!({
                "model": "claude-sonnet-4-5",
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "Hello"}],
                "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            })
        );
    }
}
