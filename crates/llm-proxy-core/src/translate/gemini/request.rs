//! Unified `ChatRequest` → Gemini `generateContent` / `countTokens` bodies.

use llm_proxy_protocol::gemini::{
    Blob, Content, CountTokensRequest, FileData, FunctionCall, FunctionCallingConfig, FunctionCallingMode,
    FunctionDeclaration, FunctionResponse, GenerateContentRequest, GenerationConfig, Part as GPart, ThinkingConfig,
    Tool, ToolConfig,
};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{call_id, model_resource};
use crate::translate::TurnSpans;
use crate::unified::{
    ChatRequest, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, ToolChoice, ToolDef, ToolResultPart,
    TranslateError, WireProtocol,
};

/// The `generateContent` (or `streamGenerateContent`) body; the model goes in the URL.
pub fn request_from_unified(r: &ChatRequest) -> Result<GenerateContentRequest<Contents<'_>>, TranslateError> {
    build(r)
}

/// The `countTokens` body: the whole generate request, so that system instruction and tools count.
pub fn count_tokens_body(r: &ChatRequest) -> Result<CountTokensRequest<Contents<'_>>, TranslateError> {
    let mut request = build(r)?;
    request.model = Some(model_resource(&r.model));
    Ok(CountTokensRequest { contents: Vec::new(), generate_content_request: Some(request) })
}

fn build(r: &ChatRequest) -> Result<GenerateContentRequest<Contents<'_>>, TranslateError> {
    // Gemini has one system instruction: mid-conversation system messages are folded into it.
    let system: Vec<GPart> = r.system_texts().map(|(text, _)| GPart::text(text)).collect();
    let mut request = GenerateContentRequest {
        model: None,
        contents: contents(r)?,
        system_instruction: (!system.is_empty()).then_some(Content { role: None, parts: system }),
        tools: Vec::new(),
        tool_config: None,
        generation_config: None,
        extra: Map::new(),
    };
    if !r.tools.is_empty() {
        request.tools =
            vec![Tool { function_declarations: r.tools.iter().map(declaration).collect(), extra: Map::new() }];
        // Without tools a tool choice means nothing, so it is only sent alongside them.
        // `parallel_tool_calls` has no Gemini equivalent and is dropped.
        request.tool_config = r.tool_choice.as_ref().map(tool_config);
    }
    // `user` has no Gemini counterpart; `stream` is the URL's business (`:streamGenerateContent`),
    // and Gemini streams always report usage, so `stream_usage` needs nothing either.
    let config = generation_config(r);
    request.generation_config = (!config.is_empty()).then_some(config);
    if r.extra.from == Some(WireProtocol::Gemini) {
        // Same-family fields the unified model has no name for (`safetySettings`, `cachedContent`);
        // never ones the gateway sets itself.
        const OWN: [&str; 6] = ["model", "contents", "systemInstruction", "tools", "toolConfig", "generationConfig"];
        for (k, v) in &r.extra.fields {
            if !OWN.contains(&k.as_str()) {
                request.extra.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(request)
}

/// Gemini wants `user` / `model` turns alternating, so consecutive messages of one role (an
/// OpenAI tool message followed by a user message, say) become one turn. Written one turn at a
/// time when serialised: the turns of a long conversation never exist all at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents<'a> {
    messages: &'a [Message],
    /// Function calls Gemini did not make get the sentinel signature (`sign_foreign_calls`).
    sign: bool,
}

impl Serialize for Contents<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        for (role, span) in TurnSpans::new(self.messages, is_kept) {
            let mut turn = Content { role: Some(role_name(role).to_string()), parts: Vec::new() };
            for i in span.filter(|&i| self.messages[i].role != Role::System) {
                // Cannot fail: `contents` checked every message that can.
                turn.parts.extend(parts(&self.messages[i], i, &self.messages[..i]).map_err(S::Error::custom)?);
            }
            if self.sign && role == Role::Assistant {
                sign_foreign_calls(&mut turn);
            }
            seq.serialize_element(&turn)?;
        }
        seq.end()
    }
}

/// The turns of `r`, checked: tool calls and results translate, and some message has content.
fn contents(r: &ChatRequest) -> Result<Contents<'_>, TranslateError> {
    for (i, msg) in r.messages.iter().enumerate() {
        if msg.content.iter().any(|p| matches!(p, Part::ToolCall { .. } | Part::ToolResult { .. })) {
            parts(msg, i, &r.messages[..i])?;
        }
    }
    if TurnSpans::new(&r.messages, is_kept).next().is_none() {
        return Err(TranslateError::new("Gemini needs at least one message with content", Some("messages".into())));
    }
    Ok(Contents { messages: &r.messages, sign: signatures_validated(&r.model) })
}

fn role_name(role: Role) -> &'static str {
    match role {
        // `TurnSpans` leaves system messages to the system instruction.
        Role::User | Role::System => "user",
        Role::Assistant => "model",
    }
}

/// Whether `parts` makes a Gemini part of this one.
fn is_kept(p: &Part) -> bool {
    match p {
        Part::Text { text, .. } => !text.is_empty(),
        Part::Image { .. } | Part::ToolCall { .. } | Part::ToolResult { .. } => true,
        Part::Thinking { .. } | Part::RedactedThinking { .. } => false,
    }
}

/// Stands in for the thought signature of function calls Gemini did not make (a history from
/// another provider, or a call the client wrote). Gemini 3 validates signatures on function calls
/// and documents this value as the way to skip that check for such calls.
const SKIP_SIGNATURE_VALIDATION: &str = "skip_thought_signature_validator";

/// Gemini 1.x and 2.x never validate thought signatures; sending them the sentinel would only risk
/// an "invalid signature" error. Unknown names (newer models, `-latest` aliases) are assumed to.
fn signatures_validated(model: &str) -> bool {
    let name = model.strip_prefix("models/").unwrap_or(model);
    !(name.starts_with("gemini-1") || name.starts_with("gemini-2") || name.starts_with("gemma"))
}

/// Gemini signs only the first of parallel calls, so a turn with any signature is Gemini's own;
/// a turn with calls but none is foreign and gets the sentinel on its first call.
fn sign_foreign_calls(turn: &mut Content) {
    if turn.parts.iter().any(|p| p.function_call.is_some() && p.thought_signature.is_some()) {
        return;
    }
    if let Some(first) = turn.parts.iter_mut().find(|p| p.function_call.is_some()) {
        first.thought_signature = Some(SKIP_SIGNATURE_VALIDATION.to_string());
    }
}

/// The Gemini parts of message `i`; `earlier` are the messages before it.
fn parts(msg: &Message, i: usize, earlier: &[Message]) -> Result<Vec<GPart>, TranslateError> {
    let mut out = Vec::with_capacity(msg.content.len());
    for (j, part) in msg.content.iter().enumerate() {
        let path = || format!("messages[{i}].content[{j}]");
        match part {
            Part::Text { text, .. } => {
                // Gemini rejects empty text parts.
                if !text.is_empty() {
                    out.push(GPart::text(text));
                }
            }
            Part::Image { source, .. } => out.push(image_part(source)),
            Part::ToolCall { id, name, arguments } => {
                let call = call_id::from_unified(id);
                let args = arguments_object(arguments)
                    .map_err(|m| TranslateError::new(m, Some(format!("{}.arguments", path()))))?;
                out.push(GPart {
                    function_call: Some(FunctionCall { id: call.id, name: name.clone(), args: Some(args) }),
                    thought_signature: call.signature,
                    ..GPart::default()
                });
            }
            Part::ToolResult { call_id: result_for, name, content, is_error, .. } => {
                let name = match name {
                    Some(n) => n.clone(),
                    None => called_function(earlier, result_for).ok_or_else(|| {
                        TranslateError::new(
                            format!(
                                "tool result for call `{result_for}` has no function name and no earlier tool call has \
                                 that id; Gemini needs the name"
                            ),
                            Some(path()),
                        )
                    })?,
                };
                let text = content
                    .iter()
                    .filter_map(|c| match c {
                        ToolResultPart::Text(t) => Some(t.as_str()),
                        ToolResultPart::Image(_) => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push(GPart {
                    function_response: Some(FunctionResponse {
                        id: call_id::from_unified(result_for).id,
                        name,
                        response: function_response_body(text, *is_error),
                    }),
                    ..GPart::default()
                });
                // Images a tool returned follow its response as ordinary parts of the user turn.
                out.extend(content.iter().filter_map(|c| match c {
                    ToolResultPart::Image(img) => Some(image_part(img)),
                    ToolResultPart::Text(_) => None,
                }));
            }
            // Gemini takes no reasoning as input: its own thoughts come back only as signatures
            // (carried on tool-call ids), and foreign thinking text or Anthropic's encrypted blocks
            // would be read as ordinary text or rejected.
            Part::Thinking { .. } | Part::RedactedThinking { .. } => {}
        }
    }
    Ok(out)
}

/// A tool call's arguments as the JSON object Gemini's `args` must be.
fn arguments_object(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("tool call arguments must be a JSON object for Gemini".into()),
        Err(e) => Err(format!("tool call arguments are not valid JSON: {e}")),
    }
}

/// The name of the function that call `id` invoked, from the nearest earlier tool call with it.
fn called_function(earlier: &[Message], id: &str) -> Option<String> {
    earlier.iter().rev().flat_map(|m| m.content.iter()).find_map(|p| match p {
        Part::ToolCall { id: call, name, .. } if call == id => Some(name.clone()),
        _ => None,
    })
}

/// `functionResponse.response` must be a JSON object: a result that is one is sent as it is, any
/// other text is wrapped as `content`, and an error as `error` (the keys Google's examples use).
fn function_response_body(text: String, is_error: bool) -> Value {
    if is_error {
        return Value::Object(Map::from_iter([("error".to_string(), Value::String(text))]));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::from_iter([("content".to_string(), Value::String(text))])),
    }
}

fn image_part(source: &ImageSource) -> GPart {
    match source {
        ImageSource::Base64 { media_type, data } => {
            GPart { inline_data: Some(Blob { mime_type: media_type.clone(), data: data.clone() }), ..GPart::default() }
        }
        // `inlineData` needs the bytes, which the gateway does not fetch (no I/O here, and fetching
        // client-named URLs would be an SSRF hole). `fileData.fileUri` takes Files API URIs, `gs://`
        // objects and public or signed HTTPS URLs, which Gemini fetches itself; the MIME type is
        // required, so it is guessed from the extension.
        ImageSource::Url(url) => GPart {
            file_data: Some(FileData { mime_type: Some(image_mime_from_url(url).to_string()), file_uri: url.clone() }),
            ..GPart::default()
        },
    }
}

fn image_mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let ext = file.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        _ => "image/jpeg",
    }
}

fn declaration(tool: &ToolDef) -> FunctionDeclaration {
    FunctionDeclaration {
        name: tool.name.clone(),
        description: tool.description.clone(),
        // `parameters` is an OpenAPI-subset protobuf message that fails the whole request on
        // keywords clients send every day (`additionalProperties`, `$schema`, `type` lists, ...);
        // `parametersJsonSchema` takes the client's JSON Schema as it is.
        parameters: None,
        parameters_json_schema: json_schema(&tool.parameters),
    }
}

/// A client's JSON Schema for Gemini's `*JsonSchema` fields: `$schema` (a meta-schema URL with no
/// meaning to Gemini, which some endpoints reject) is removed; an empty schema means "no
/// parameters", which Gemini expresses by omitting the field.
fn json_schema(schema: &Value) -> Option<Value> {
    let Value::Object(map) = schema else { return None };
    let mut map = map.clone();
    map.remove("$schema");
    (!map.is_empty()).then_some(Value::Object(map))
}

fn tool_config(choice: &ToolChoice) -> ToolConfig {
    let (mode, allowed) = match choice {
        ToolChoice::Auto => (FunctionCallingMode::Auto, Vec::new()),
        ToolChoice::None => (FunctionCallingMode::None, Vec::new()),
        ToolChoice::Required => (FunctionCallingMode::Any, Vec::new()),
        ToolChoice::Tool(name) => (FunctionCallingMode::Any, vec![name.clone()]),
    };
    ToolConfig {
        function_calling_config: Some(FunctionCallingConfig { mode: Some(mode), allowed_function_names: allowed }),
    }
}

fn generation_config(r: &ChatRequest) -> GenerationConfig {
    let mut c = GenerationConfig {
        stop_sequences: r.stop.clone(),
        max_output_tokens: r.max_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        top_k: r.top_k,
        seed: r.seed,
        presence_penalty: r.presence_penalty,
        frequency_penalty: r.frequency_penalty,
        ..GenerationConfig::default()
    };
    match &r.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => c.response_mime_type = Some("application/json".into()),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            // `responseJsonSchema` takes JSON Schema (`responseSchema` has the OpenAPI-subset
            // problems of function `parameters`). Gemini always holds to the schema; `strict`
            // and the schema's name have no counterpart.
            c.response_mime_type = Some("application/json".into());
            c.response_json_schema = json_schema(schema);
        }
    }
    c.thinking_config = r.reasoning.as_ref().map(|reasoning| match reasoning {
        // Models that cannot stop thinking (2.5 Pro) answer 400 to a zero budget: that is the
        // client's request as asked, and the upstream's message says so.
        Reasoning::Disabled => ThinkingConfig { thinking_budget: Some(0), ..ThinkingConfig::default() },
        // Gemini 3 prefers `thinkingLevel` but still takes a budget, which every thinking model
        // understands; efforts become budgets through the unified table.
        Reasoning::Budget(_) | Reasoning::Effort(_) => ThinkingConfig {
            thinking_budget: reasoning
                .budget()
                .map(|b| i64::try_from(b.min(max_thinking_budget(&r.model))).unwrap_or(i64::MAX)),
            include_thoughts: Some(true),
            thinking_level: None,
        },
    });
    c
}

/// The largest thinking budget a model takes; Gemini answers 400 above it (2.5 Pro: 32768; Flash and
/// Flash-Lite: 24576). Anthropic clients ask for more (Claude Code's 31999), so budgets are clamped.
fn max_thinking_budget(model: &str) -> u64 {
    if model.contains("pro") { 32768 } else { 24576 }
}

#[cfg(test)]
mod tests;
