use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Content;

/// `POST /v1beta/models/{model}:generateContent` (and `:streamGenerateContent`) body. `C` is what
/// writes `contents`: the wire type, or (for a request the gateway writes) something that writes
/// the turns without holding them all at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest<C = Vec<Content>> {
    /// `models/{model}`; only inside `countTokens`' `generateContentRequest`, where the schema
    /// requires it. The generate endpoints take the model from the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub contents: C,
    /// Text parts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// `safetySettings`, `cachedContent`, ...: fields the gateway does not set itself.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool the model may use. Only `functionDeclarations` is typed; built-in tools
/// (`googleSearch`, `codeExecution`, `urlContext`, ...) ride in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub function_declarations: Vec<FunctionDeclaration>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One function. `parameters` takes Gemini's OpenAPI-3.0-subset `Schema` (a protobuf message:
/// unknown keywords such as `$schema` or `additionalProperties` fail the request, and `type`
/// cannot be a list); `parametersJsonSchema` takes JSON Schema. The two are mutually exclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_json_schema: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_calling_config: Option<FunctionCallingConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FunctionCallingMode>,
    /// Only with mode `ANY` (or `VALIDATED`): the functions the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FunctionCallingMode {
    /// The model decides between text and a call.
    Auto,
    /// The model must call a function.
    Any,
    /// No function calls.
    None,
    /// Like `AUTO`, with calls constrained to the declared schemas.
    Validated,
}

/// Sampling and output settings. Every field is optional; an empty config is omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// OpenAPI-subset `Schema`; see `FunctionDeclaration::parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// JSON Schema (supported keywords: `$id`, `$defs`, `$ref`, `$anchor`, `type`, `format`,
    /// `title`, `description`, `enum`, `items`, `prefixItems`, `minItems`, `maxItems`, `minimum`,
    /// `maximum`, `anyOf`, `oneOf`, `properties`, `additionalProperties`, `required`). Requires
    /// `responseMimeType`; exclusive with `responseSchema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl GenerationConfig {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Thinking models only. `thinkingBudget` is in tokens (`0` turns thinking off where the model
/// allows it, `-1` lets the model decide); Gemini 3 prefers `thinkingLevel` but still accepts a
/// budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<String>,
}

/// `POST /v1beta/models/{model}:countTokens` body: either bare `contents`, or a whole
/// `generateContentRequest` (with its `model`) so that system instruction and tools count too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensRequest<C = Vec<Content>> {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_content_request: Option<GenerateContentRequest<C>>,
}
