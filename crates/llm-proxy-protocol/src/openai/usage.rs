use serde::{Deserialize, Serialize};

/// Token counts as OpenAI reports them; lenient so that OpenAI-compatible servers that omit a
/// field (embeddings have no `completion_tokens`) still decode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}
