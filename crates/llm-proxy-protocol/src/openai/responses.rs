//! The Responses API (`POST /v1/responses`): the request, its input items, and the usage its
//! answers report.
//!
//! As with Chat Completions, the request keeps what the gateway does not read in `extra`, so a
//! same-protocol passthrough forwards the client's body with only `model` rewritten. `input` stays
//! JSON text, one piece per item: a passthrough never decodes it, and a translation decodes one
//! item at a time (`InputItem::from_json`). Items of types only OpenAI can serve (built-in tool
//! calls, item references) decode as `InputItem::Other`, for the translator to refuse by name.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::json::{DecodeError, decode_str, decode_value};

/// `POST /v1/responses` body. Typed where the gateway reads or must validate; the rest rides along
/// in `extra` (`include`, `truncation`, `service_tier`, `prompt_cache_key`...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    /// Absent when the conversation continues from `previous_response_id` alone, or comes from a
    /// stored prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<ResponsesInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tool definitions, each decoded by a translation (`FunctionTool` when its `type` is
    /// `function`); built-in tools (`web_search`, `file_search`, `mcp`...) are OpenAI's to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Map<String, Value>>>,
    /// `"auto"`, `"none"`, `"required"`, `{"type": "function", "name": ...}`, or a built-in tool's
    /// choice; decoded by a translation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningParam>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextParam>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Whether the response is kept for a later `previous_response_id`: absent means yes, as at
    /// OpenAI (`stores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponsesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the response is to be stored (OpenAI's default is to store it).
    pub fn stores(&self) -> bool {
        self.store.unwrap_or(true)
    }
}

/// `reasoning`: how hard a reasoning model thinks, and whether it summarises its thinking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningParam {
    /// `none`, `minimal`, `low`, `medium`, `high`, `xhigh`... (kept as text: the list grows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// `auto`, `concise` or `detailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text`: the format of the answer, and how long-winded it may be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextParam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
    /// `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text.format`. Unlike Chat Completions' `response_format`, the schema's fields sit beside
/// `type` rather than under `json_schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        /// Fields added after these, forwarded as they came.
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
}

/// `input`: a text (one user message), or the conversation's items.
#[derive(Debug, Clone)]
pub enum ResponsesInput {
    Text(String),
    Items(InputItems),
}

/// The input items as the client's JSON text, one piece per item, each checked to be an object.
/// Shared, not copied, by clones: every attempt of a route gets the same text.
#[derive(Clone)]
pub struct InputItems(Arc<[Box<RawValue>]>);

impl InputItems {
    /// Items built by the gateway (a stored conversation sent as items).
    pub fn from_values(items: &[Value]) -> Result<Self, serde_json::Error> {
        let raw: Result<Vec<Box<RawValue>>, _> = items.iter().map(serde_json::value::to_raw_value).collect();
        Ok(Self(raw?.into()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each item's JSON text, in order.
    pub fn iter(&self) -> impl Iterator<Item = &RawValue> {
        self.0.iter().map(|r| &**r)
    }

    /// The bytes the items take: what decides whether translating them is heavy work.
    pub fn text_len(&self) -> usize {
        self.0.iter().map(|r| r.get().len()).sum()
    }
}

impl fmt::Debug for InputItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputItems").field("len", &self.len()).field("bytes", &self.text_len()).finish()
    }
}

impl Serialize for ResponsesInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => s.serialize_str(text),
            Self::Items(items) => s.collect_seq(items.0.iter()),
        }
    }
}

impl<'de> Deserialize<'de> for ResponsesInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Input;
        impl<'de> Visitor<'de> for Input {
            type Value = ResponsesInput;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of input items")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ResponsesInput, E> {
                Ok(ResponsesInput::Text(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<ResponsesInput, E> {
                Ok(ResponsesInput::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ResponsesInput, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element_seed(ObjectText)? {
                    items.push(item);
                }
                Ok(ResponsesInput::Items(InputItems(items.into())))
            }
        }
        d.deserialize_any(Input)
    }
}

/// One item's text, refused inside the element (so the error names `input[i]`) unless an object.
struct ObjectText;

impl<'de> DeserializeSeed<'de> for ObjectText {
    type Value = Box<RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Box<RawValue>, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if raw.get().starts_with('{') { Ok(raw) } else { Err(de::Error::custom("an input item must be an object")) }
    }
}

/// One input item, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum InputItem {
    Message(MessageItem),
    FunctionCall(FunctionCallItem),
    FunctionCallOutput(FunctionCallOutputItem),
    Reasoning(ReasoningItem),
    /// An item of another type, by its type (`web_search_call`, `computer_call`,
    /// `item_reference`...): one that only OpenAI can take.
    Other(String),
}

impl InputItem {
    /// Decodes an item kept as JSON text; `path` names it in errors (`input[3]`).
    pub fn from_json(text: &str, path: &str) -> Result<Self, DecodeError> {
        Self::decode(text, path)
    }

    /// Decodes an item given as a value (history the gateway stored).
    pub fn from_value(value: &Value, path: &str) -> Result<Self, DecodeError> {
        Self::decode(value, path)
    }

    fn decode<S: ItemSource>(source: S, path: &str) -> Result<Self, DecodeError> {
        let head: Head = source.peek(path)?;
        let kind = match (head.kind, head.role, head.id) {
            (Some(kind), _, _) => kind,
            // The API takes a message without its `type`, and an item reference without its own.
            (None, Some(_), _) => "message".to_string(),
            (None, None, Some(_)) => "item_reference".to_string(),
            (None, None, None) => {
                return Err(DecodeError { message: "missing field `type`".into(), param: Some(path.to_string()) });
            }
        };
        Ok(match kind.as_str() {
            "message" => Self::Message(source.decode(path)?),
            "function_call" => Self::FunctionCall(source.decode(path)?),
            "function_call_output" => Self::FunctionCallOutput(source.decode(path)?),
            "reasoning" => Self::Reasoning(source.decode(path)?),
            _ => Self::Other(kind),
        })
    }
}

/// What says which item an item is.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    role: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<IgnoredAny>,
}

/// An item as text or as a value: read twice, once for its type and once as that type.
trait ItemSource {
    fn peek<T: DeserializeOwned>(&self, path: &str) -> Result<T, DecodeError>;
    fn decode<T: DeserializeOwned>(self, path: &str) -> Result<T, DecodeError>;
}

impl ItemSource for &str {
    fn peek<T: DeserializeOwned>(&self, path: &str) -> Result<T, DecodeError> {
        decode_str(self, path)
    }

    fn decode<T: DeserializeOwned>(self, path: &str) -> Result<T, DecodeError> {
        decode_str(self, path)
    }
}

impl ItemSource for &Value {
    fn peek<T: DeserializeOwned>(&self, path: &str) -> Result<T, DecodeError> {
        T::deserialize(*self).map_err(|e| DecodeError { message: e.to_string(), param: Some(path.to_string()) })
    }

    fn decode<T: DeserializeOwned>(self, path: &str) -> Result<T, DecodeError> {
        decode_value(self, path)
    }
}

/// A `message` item: a turn of the conversation, or an instruction (`system`, `developer`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessageItem {
    pub role: MessageRole,
    pub content: Content,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    Assistant,
    System,
    Developer,
}

/// A message's content or a function's output: a text, or parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for Content {
    // By hand rather than `untagged`: a bad part is then named (`content[2]`) rather than the whole
    // content said to match no variant.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// One part of a message's content (or of a function's output).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        text: String,
    },
    /// An image by URL (a `data:` URL for inline bytes) or by the id of a file uploaded to OpenAI.
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
        /// `low`, `high`, `auto` or `original`.
        #[serde(default)]
        detail: Option<String>,
    },
    /// A file (PDF...) by id, URL or inline data.
    InputFile {},
    /// Text of an earlier answer, in an assistant message.
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
}

/// A `function_call` item: a call the model made in an earlier turn.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionCallItem {
    /// Pairs the call with its `function_call_output`.
    pub call_id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them.
    #[serde(default)]
    pub arguments: String,
    /// The item's own id (`fc_...`), when it came from a response.
    #[serde(default)]
    pub id: Option<String>,
}

/// A `function_call_output` item: the caller's result of a call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionCallOutputItem {
    pub call_id: String,
    pub output: Content,
}

/// A `reasoning` item of an earlier answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReasoningItem {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub summary: Vec<SummaryPart>,
    /// The reasoning text itself, where the model shows it.
    #[serde(default)]
    pub content: Option<Vec<ReasoningPart>>,
    /// The reasoning sealed by OpenAI, which only OpenAI can read.
    #[serde(default)]
    pub encrypted_content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SummaryPart {
    SummaryText { text: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningPart {
    ReasoningText { text: String },
}

/// A `function` tool. Flat, unlike Chat Completions' `{"type": "function", "function": {...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionTool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments; absent for a function that takes none.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Whether the arguments must match the schema exactly (the Responses API's default).
    #[serde(default)]
    pub strict: Option<bool>,
}

/// A response's `usage`. `input_tokens` counts the cached ones too. Lenient, for compatible servers
/// that leave details out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_details: Option<InputTokensDetails>,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
    #[serde(default)]
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::decode;
    use serde_json::json;

    #[test]
    fn keeps_unknown_fields_and_rewrites_only_model() {
        let body = br#"{"model":"fast","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]},
            {"type":"web_search_call","id":"ws_1","status":"completed"}],
            "tools":[{"type":"web_search_preview"}],"text":{"format":{"type":"json_schema","name":"x","schema":{},"strict":true,"new":1},"verbosity":"low"},
            "reasoning":{"effort":"high","generate_summary":"auto"},"include":["reasoning.encrypted_content"],"truncation":"auto","store":false}"#;
        let mut req: ResponsesRequest = decode(body).unwrap();
        assert!(!req.stores());
        req.model = "gpt-5".into();
        let out = serde_json::to_value(&req).unwrap();
        let mut want: Value = serde_json::from_slice(body).unwrap();
        want["model"] = "gpt-5".into();
        assert_eq!(out, want);
    }

    #[test]
    fn input_is_a_text_or_objects() {
        let req: ResponsesRequest = decode(br#"{"model":"m","input":"Hello!"}"#).unwrap();
        assert!(matches!(req.input, Some(ResponsesInput::Text(ref t)) if t == "Hello!"));
        assert!(req.stores(), "OpenAI stores responses unless told not to");
        let err =
            decode::<ResponsesRequest>(br#"{"model":"m","input":[{"role":"user","content":"x"},"x"]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[1]"));
        let err = decode::<ResponsesRequest>(br#"{"model":"m","input":5}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input"));
        let from_value: ResponsesRequest =
            serde_json::from_value(json!({"model": "m", "input": [{"role": "user", "content": "x"}]})).unwrap();
        let Some(ResponsesInput::Items(items)) = from_value.input else { panic!("items") };
        assert_eq!(items.iter().map(RawValue::get).collect::<Vec<_>>(), [r#"{"role":"user","content":"x"}"#]);
    }

    #[test]
    fn items_decode_by_type_and_messages_need_none() {
        let item = |v: Value| InputItem::from_json(&v.to_string(), "input[0]");
        assert_eq!(
            item(json!({"role": "developer", "content": "Be brief."})).unwrap(),
            InputItem::Message(MessageItem {
                role: MessageRole::Developer,
                content: Content::Text("Be brief.".into())
            })
        );
        assert_eq!(
            item(json!({"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}", "id": "fc_1", "status": "completed"})).unwrap(),
            InputItem::FunctionCall(FunctionCallItem { call_id: "call_1".into(), name: "f".into(), arguments: "{}".into(), id: Some("fc_1".into()) })
        );
        assert_eq!(
            item(json!({"type": "computer_call", "id": "cu_1"})).unwrap(),
            InputItem::Other("computer_call".into())
        );
        assert_eq!(item(json!({"id": "msg_1"})).unwrap(), InputItem::Other("item_reference".into()));
        assert_eq!(item(json!({})).unwrap_err().param.as_deref(), Some("input[0]"));
        let reasoning = item(json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Hm."}], "encrypted_content": "gAAA"})).unwrap();
        assert!(
            matches!(reasoning, InputItem::Reasoning(ReasoningItem { summary, .. }) if summary == [SummaryPart::SummaryText { text: "Hm.".into() }])
        );
    }

    #[test]
    fn bad_items_name_the_field() {
        let err = InputItem::from_json(
            r#"{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text"}]}"#,
            "input[2]",
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[2].content[1]"));
        assert!(err.message.contains("missing field `text`"), "{}", err.message);
        let err = InputItem::from_value(&json!({"type": "function_call", "name": "f"}), "input[0]").unwrap_err();
        assert!(err.message.contains("call_id"), "{}", err.message);
        let err = InputItem::from_json(r#"{"role":"wizard","content":"x"}"#, "input[0]").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[0].role"));
        assert!(InputItem::from_json("[1]", "input[0]").is_err());
    }

    #[test]
    fn usage_reads_with_or_without_details() {
        let u: ResponseUsage =
            serde_json::from_value(json!({"input_tokens": 36, "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123}))
            .unwrap();
        assert_eq!(u.input_tokens_details.map(|d| d.cached_tokens), Some(4));
        let u: ResponseUsage =
            serde_json::from_value(json!({"input_tokens": 37, "output_tokens": 11, "total_tokens": 48})).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.input_tokens_details), (37, 11, None));
    }
}
