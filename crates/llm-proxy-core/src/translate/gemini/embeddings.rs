//! OpenAI `/v1/embeddings` ⇄ Gemini `batchEmbedContents`.

use base64::Engine as _;
use llm_proxy_protocol::gemini::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Content, EmbedContentRequest, Part,
};
use llm_proxy_protocol::json;
use llm_proxy_protocol::openai::EmbeddingsRequest;
use serde_json::{Value, json};

use super::model_resource;
use crate::provider::ProviderError;
use crate::unified::TranslateError;

/// The `batchEmbedContents` body for an OpenAI embeddings request: one Gemini request per input
/// text, in order. `dimensions` becomes `outputDimensionality`; `encoding_format` is applied to
/// the answer (`embeddings_response`), and `user` has no Gemini counterpart.
pub fn embeddings_request(model: &str, r: &EmbeddingsRequest) -> Result<Value, TranslateError> {
    let texts: Vec<&str> = match &r.input {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) if items.is_empty() => {
            return Err(TranslateError::new("input must not be empty", Some("input".into())));
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.as_str()),
                Value::Number(_) | Value::Array(_) => Err(TranslateError::new(
                    "Gemini embeds text only; token-id input cannot be sent to it",
                    Some(format!("input[{i}]")),
                )),
                _ => Err(TranslateError::new("input items must be strings", Some(format!("input[{i}]")))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(TranslateError::new("input must be a string or an array of strings", Some("input".into()))),
    };
    let dimensions =
        match r.extra.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(d) => Some(d.as_u64().and_then(|d| u32::try_from(d).ok()).filter(|d| *d > 0).ok_or_else(|| {
                TranslateError::new("dimensions must be a positive integer", Some("dimensions".into()))
            })?),
        };
    let model = model_resource(model);
    let body = BatchEmbedContentsRequest {
        requests: texts
            .into_iter()
            .map(|text| EmbedContentRequest {
                model: model.clone(),
                content: Content { role: None, parts: vec![Part::text(text)] },
                output_dimensionality: dimensions,
                ..EmbedContentRequest::default()
            })
            .collect(),
    };
    serde_json::to_value(&body)
        .map_err(|e| TranslateError::new(format!("could not encode the Gemini request: {e}"), None))
}

/// The OpenAI embeddings list for a `batchEmbedContents` answer. With `encoding_base64` each
/// embedding is the base64 of its little-endian f32 values, as OpenAI sends it.
pub fn embeddings_response(body: &[u8], model: &str, encoding_base64: bool) -> Result<Value, ProviderError> {
    let resp: BatchEmbedContentsResponse = json::decode(body)
        .map_err(|e| ProviderError::Protocol(format!("not a Gemini batchEmbedContents response: {e}")))?;
    if resp.embeddings.is_empty() {
        return Err(ProviderError::Protocol("a Gemini batchEmbedContents response without embeddings".into()));
    }
    let data: Vec<Value> = resp
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if encoding_base64 {
                let bytes: Vec<u8> = e.values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    // Gemini reports no token count for embeddings on most models; zero says "unknown" here.
    let tokens = resp.usage_metadata.map(|u| u.prompt_token_count).unwrap_or(0);
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn openai(input: Value, extra: Value) -> EmbeddingsRequest {
        let extra: Map<String, Value> = serde_json::from_value(extra).unwrap();
        EmbeddingsRequest { model: "text-embedding-004".into(), input, extra }
    }

    #[test]
    fn one_request_per_text() {
        let body =
            embeddings_request("gemini-embedding-001", &openai(json!(["Hello", "World"]), json!({"dimensions": 768})))
                .unwrap();
        insta::assert_json_snapshot!(body);
        let single =
            embeddings_request("models/gemini-embedding-001", &openai(json!("Hi"), json!({"user": "u"}))).unwrap();
        assert_eq!(
            single,
            json!({"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "Hi"}]}}]})
        );
    }

    #[test]
    fn token_ids_and_bad_input_are_refused() {
        let err = |input: Value, extra: Value| embeddings_request("m", &openai(input, extra)).unwrap_err();
        let e = err(json!([1, 2, 3]), json!({}));
        assert_eq!(e.param.as_deref(), Some("input[0]"));
        assert!(e.message.contains("text only"), "{}", e.message);
        assert_eq!(err(json!(["a", [1, 2]]), json!({})).param.as_deref(), Some("input[1]"));
        assert_eq!(err(json!(["a", null]), json!({})).param.as_deref(), Some("input[1]"));
        assert_eq!(err(json!([]), json!({})).param.as_deref(), Some("input"));
        assert_eq!(err(json!(42), json!({})).param.as_deref(), Some("input"));
        for bad in [json!(0), json!(-3), json!(1.5), json!("256"), json!(u64::MAX)] {
            assert_eq!(err(json!("a"), json!({"dimensions": bad})).param.as_deref(), Some("dimensions"));
        }
        assert!(embeddings_request("m", &openai(json!("a"), json!({"dimensions": null}))).is_ok());
    }

    #[test]
    fn answers_become_openai_lists() {
        let body =
            std::fs::read(format!("{}/fixtures/gemini/batch_embed_response.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let floats = embeddings_response(&body, "gemini-embedding-001", false).unwrap();
        insta::assert_json_snapshot!(floats);
        let b64 = embeddings_response(&body, "gemini-embedding-001", true).unwrap();
        let encoded = b64["data"][1]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(values, vec![-0.0061293f32, 0.0264873, -0.0012001, 0.0441109]);
        assert_eq!(b64["data"][1]["index"], json!(1));
    }

    #[test]
    fn reported_usage_is_kept_and_garbage_refused() {
        let body = br#"{"embeddings":[{"values":[0.5]}],"usageMetadata":{"promptTokenCount":7}}"#;
        let resp = embeddings_response(body, "m", false).unwrap();
        assert_eq!(resp["usage"], json!({"prompt_tokens": 7, "total_tokens": 7}));
        for bad in [&b"{}"[..], b"{\"embeddings\": {}}", b"nope"] {
            assert!(matches!(embeddings_response(bad, "m", false), Err(ProviderError::Protocol(_))));
        }
    }
}
