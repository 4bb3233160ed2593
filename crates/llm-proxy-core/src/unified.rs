//! The unified chat model: what any of the client and upstream protocols can say, in one shape.
//!
//! Requests are translated client protocol → `ChatRequest` → upstream protocol only when the two
//! differ; a same-protocol request never comes here (see `provider::ChatInput`). Answers come back
//! as a `ChatResponse` or, streamed, as `StreamEvent`s that an encoder turns into the client's
//! protocol one event at a time.
//!
//! Conventions that every converter follows:
//! - Tool-call arguments and tool schemas are kept as the JSON text / value the sender produced, never
//!   re-serialised, so fragments and key order survive byte for byte.
//! - Tool results are parts of a user turn (Anthropic's shape); OpenAI's `role: "tool"` messages and
//!   Gemini's `functionResponse` parts map onto that.
//! - `TokenUsage::prompt_tokens` counts all input tokens, cached ones included (OpenAI's convention);
//!   `cached_tokens` and `cache_write_tokens` say how many of them were read from or written to the
//!   provider's prompt cache. Anthropic reports the three separately and is converted on the way.

use serde_json::{Map, Value};

pub use crate::provider::TokenUsage;

/// A chat request in no particular protocol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The upstream model id (already resolved by the catalog).
    pub model: String,
    /// System instructions, in order. Anthropic's system blocks and OpenAI's `system`/`developer`
    /// messages land here.
    pub system: Vec<SystemPart>,
    pub messages: Vec<Message>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// The client asked for a usage report at the end of the stream (OpenAI `include_usage`;
    /// Anthropic streams always carry usage).
    pub stream_usage: bool,
    pub tools: Vec<ToolDef>,
    pub tool_choice: Option<ToolChoice>,
    /// `false` asks for at most one tool call per turn.
    pub parallel_tool_calls: Option<bool>,
    pub reasoning: Option<Reasoning>,
    pub response_format: Option<ResponseFormat>,
    /// An end-user id for the provider's abuse monitoring (OpenAI `user`, Anthropic
    /// `metadata.user_id`).
    pub user: Option<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Fields of the client's body that have no unified meaning, with the protocol they came from.
    /// Encoders for the same protocol family copy them; others drop them.
    pub extra: Extra,
}

impl ChatRequest {
    /// Every system instruction in order, for protocols that hold them in one place (Anthropic's
    /// `system`, Gemini's `systemInstruction`): the system prompt, then the text of each
    /// mid-conversation system message. Each with its `cache_control`.
    pub fn system_texts(&self) -> impl Iterator<Item = (&str, Option<&Value>)> {
        let prompt = self.system.iter().map(|p| (p.text.as_str(), p.cache_control.as_ref()));
        let later = self.messages.iter().filter(|m| m.role == Role::System).flat_map(|m| {
            m.content.iter().filter_map(|p| match p {
                Part::Text { text, cache_control } => Some((text.as_str(), cache_control.as_ref())),
                _ => None,
            })
        });
        prompt.chain(later).filter(|(text, _)| !text.is_empty())
    }
}

/// Client fields without a unified meaning, and whose protocol they belong to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    pub from: Option<WireProtocol>,
    pub fields: Map<String, Value>,
}

/// The wire protocols the gateway translates between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireProtocol {
    OpenAi,
    Anthropic,
    Gemini,
    /// OpenAI's Responses API: a protocol clients speak (Codex CLI, the Agents SDK). An upstream
    /// that serves it is an OpenAI-protocol provider with `responses_api`; any other is reached
    /// through the unified model.
    Responses,
    /// OpenAI's legacy Completions API (a prompt in, its continuation out): a protocol clients
    /// speak. OpenAI-protocol providers serve it themselves; a chat model of any other is reached
    /// through the unified model, the prompt as one user message.
    Completions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemPart {
    pub text: String,
    /// Anthropic `cache_control`, kept so prompt caching survives Anthropic → Anthropic-family hops.
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// An instruction given in the middle of the conversation (Anthropic's mid-conversation system
    /// messages, a Responses `developer` item after the first turn): its parts are text. It applies
    /// from where it stands; protocols with one system prompt only fold it in (`system_texts`).
    System,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text {
        text: String,
        cache_control: Option<Value>,
    },
    Image {
        source: ImageSource,
        cache_control: Option<Value>,
    },
    /// An assistant's request to call a tool. `arguments` is the JSON text exactly as produced.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// The caller's answer to a tool call (in a user turn). `name` is filled where the source
    /// protocol carries it; Gemini needs it and the encoder looks it up from the call otherwise.
    ToolResult {
        call_id: String,
        name: Option<String>,
        content: Vec<ToolResultPart>,
        is_error: bool,
        cache_control: Option<Value>,
    },
    /// Visible reasoning. `signature` is Anthropic's integrity token, required when the thinking
    /// block is sent back to Anthropic in a later turn.
    Thinking {
        text: String,
        signature: Option<String>,
    },
    /// Anthropic's encrypted reasoning; only Anthropic can read it back.
    RedactedThinking {
        data: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolResultPart {
    Text(String),
    Image(ImageSource),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// An `http(s)` URL. (A `data:` URL is parsed into `Base64`.)
    Url(String),
    Base64 {
        media_type: String,
        data: String,
    },
}

impl ImageSource {
    /// Parses an OpenAI-style image URL: `data:<type>;base64,<data>` becomes `Base64`.
    pub fn from_url(url: &str) -> Self {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((media_type, data)) = rest.split_once(";base64,")
        {
            return Self::Base64 { media_type: media_type.to_string(), data: data.to_string() };
        }
        Self::Url(url.to_string())
    }

    /// The OpenAI form: the URL, or a `data:` URL for inline bytes.
    pub fn to_url(&self) -> String {
        match self {
            Self::Url(u) => u.clone(),
            Self::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments, as the client sent it.
    pub parameters: Value,
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    /// This tool.
    Tool(String),
}

/// How much the model should think before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reasoning {
    /// OpenAI `reasoning_effort`: `minimal`, `low`, `medium`, `high`.
    Effort(String),
    /// Anthropic / Gemini thinking budget in tokens.
    Budget(u64),
    /// Thinking explicitly off.
    Disabled,
}

impl Reasoning {
    /// Reads an effort level as clients write it; `none` turns reasoning off.
    pub fn from_effort(effort: &str) -> Self {
        match effort {
            "none" => Self::Disabled,
            other => Self::Effort(other.to_string()),
        }
    }

    /// A token budget for protocols that take one.
    pub fn budget(&self) -> Option<u64> {
        match self {
            Self::Budget(b) => Some(*b),
            Self::Effort(e) => Some(match e.as_str() {
                "minimal" => 1024,
                "low" => 2048,
                "medium" => 8192,
                "high" => 16384,
                // OpenAI's `xhigh`, Anthropic's `max`: above `high`.
                "xhigh" | "max" => 32768,
                _ => 8192,
            }),
            Self::Disabled => None,
        }
    }

    /// An effort level for protocols that take one, always one OpenAI accepts.
    pub fn effort(&self) -> Option<&'static str> {
        match self {
            Self::Effort(e) => Some(match e.as_str() {
                "minimal" => "minimal",
                "low" => "low",
                "high" | "xhigh" | "max" => "high",
                _ => "medium",
            }),
            Self::Budget(b) if *b <= 2048 => Some("low"),
            Self::Budget(b) if *b <= 8192 => Some("medium"),
            Self::Budget(_) => Some("high"),
            Self::Disabled => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

/// A complete answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    pub id: String,
    pub model: String,
    /// Text, thinking and tool-call parts, in the order the model produced them.
    pub content: Vec<Part>,
    pub stop_reason: Option<StopReason>,
    pub usage: Option<TokenUsage>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A natural end (OpenAI `stop`, Anthropic `end_turn`, Gemini `STOP`).
    EndTurn,
    /// One of the client's stop sequences; which one, where the upstream says.
    StopSequence(Option<String>),
    MaxTokens,
    ToolUse,
    /// Refused or filtered for safety (OpenAI `content_filter`, Anthropic `refusal`, Gemini
    /// `SAFETY`, `RECITATION`, ...).
    ContentFilter,
    /// Anthropic `pause_turn`: a long server-side turn paused; the client may continue it.
    PauseTurn,
}

/// One step of a streamed answer. An encoder turns a sequence of these into the client's protocol.
///
/// Order: `Start` first (if the upstream has an id), then content events, then `Stop` and `Usage`
/// in either order; the end of the stream is the end of the event sequence. Tool-call `index`es
/// count the calls of this answer from 0.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Start {
        id: String,
        model: String,
    },
    Text(String),
    Thinking(String),
    /// Anthropic's signature for the thinking just streamed.
    ThinkingSignature(String),
    RedactedThinking(String),
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// A fragment of a tool call's JSON arguments, forwarded as it arrives.
    ToolCallArgs {
        index: usize,
        fragment: String,
    },
    Stop(StopReason),
    /// Usage so far; a later report replaces an earlier one.
    Usage(TokenUsage),
}

/// A request that cannot be expressed in the target protocol, or is malformed in a way its wire
/// types could not catch (e.g. a tool result with no matching call). Answered with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    pub message: String,
    /// Path of the offending field in the client's body, when known (`messages[2].content[0]`).
    pub param: Option<String>,
}

impl TranslateError {
    pub fn new(message: impl Into<String>, param: Option<String>) -> Self {
        Self { message: message.into(), param }
    }
}

impl From<llm_proxy_protocol::json::DecodeError> for TranslateError {
    fn from(e: llm_proxy_protocol::json::DecodeError) -> Self {
        Self { message: e.message, param: e.param }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_become_inline_images_and_back() {
        let img = ImageSource::from_url("data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(img, ImageSource::Base64 { media_type: "image/png".into(), data: "iVBORw0KGgo=".into() });
        assert_eq!(img.to_url(), "data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(ImageSource::from_url("https://x/y.png"), ImageSource::Url("https://x/y.png".into()));
    }

    #[test]
    fn reasoning_levels_convert_both_ways() {
        assert_eq!(Reasoning::Effort("high".into()).budget(), Some(16384));
        assert_eq!(Reasoning::Budget(1024).effort(), Some("low"));
        assert_eq!(Reasoning::Disabled.budget(), None);
        assert_eq!(Reasoning::from_effort("none"), Reasoning::Disabled);
        assert!(Reasoning::Effort("max".into()).budget() > Reasoning::Effort("high".into()).budget());
        assert_eq!(Reasoning::Effort("max".into()).effort(), Some("high"), "only levels OpenAI accepts go out");
    }
}
