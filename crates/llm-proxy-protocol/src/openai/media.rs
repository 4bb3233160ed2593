//! The endpoints the gateway passes through to OpenAI-protocol upstreams without reading them
//! (images, audio, moderations): their JSON bodies are decoded only as far as `model`, and their
//! answers only for `usage`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A JSON body of a passed-through endpoint (`images/generations`, `audio/speech`,
/// `moderations`): the model, which the gateway routes on and rewrites, and everything else as the
/// client wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelledBody {
    /// Empty when the client named none (some endpoints have a default: see the server).
    #[serde(default)]
    pub model: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The token counts of a passed-through answer, when it reports them: image generations of
/// `gpt-image-1` and transcriptions of `gpt-4o-transcribe` say `input_tokens`/`output_tokens`;
/// `prompt_tokens`/`completion_tokens` are taken too, for servers that answer in chat terms. A
/// transcription billed by duration (`{"type": "duration", "seconds": …}`) has no tokens: `None`.
pub fn answer_usage(body: &[u8]) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    struct Answer {
        usage: Option<Counts>,
    }
    #[derive(Deserialize)]
    struct Counts {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
    }
    let u = serde_json::from_slice::<Answer>(body).ok()?.usage?;
    let input = u.input_tokens.or(u.prompt_tokens);
    let output = u.output_tokens.or(u.completion_tokens);
    (input.is_some() || output.is_some()).then(|| (input.unwrap_or(0), output.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_in_either_vocabulary() {
        let image = br#"{"created":1,"data":[],"usage":{"input_tokens":50,"output_tokens":272,"total_tokens":322,
            "input_tokens_details":{"text_tokens":50,"image_tokens":0}}}"#;
        assert_eq!(answer_usage(image), Some((50, 272)));
        assert_eq!(answer_usage(br#"{"usage":{"prompt_tokens":3,"completion_tokens":0}}"#), Some((3, 0)));
        assert_eq!(answer_usage(br#"{"text":"hi","usage":{"type":"duration","seconds":3}}"#), None);
        assert_eq!(answer_usage(br#"{"text":"hi"}"#), None);
        assert_eq!(answer_usage(b"plain text"), None);
    }

    #[test]
    fn unknown_fields_ride_along() {
        let body: ModelledBody = serde_json::from_str(r#"{"model":"m","prompt":"a cat","n":2}"#).unwrap();
        assert_eq!(body.model, "m");
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"model":"m","prompt":"a cat","n":2}"#);
    }
}
