use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"error": {...}}`: the body of every Google API error (and of an error inside a stream).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: Status,
}

/// `google.rpc.Status` as JSON: the HTTP `code`, a human `message`, the canonical `status` name
/// (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...) and typed `details`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}
