//! A Completions client's request → the unified model: the prompt is one user message.

use llm_proxy_protocol::openai::{CompletionRequest, Prompt};
use serde_json::Value;

use crate::unified::{ChatRequest, Extra, Message, Part, Role, TranslateError, WireProtocol};

/// Translates a Completions request for a chat model. Refused, with the field at fault: a prompt
/// that is not one text (a chat model reads text, and answers one conversation at a time), and
/// the parameters it has no counterpart for. Their defaults (`n: 1`, `echo: false`...) are fine.
pub fn request_to_unified(r: CompletionRequest) -> Result<ChatRequest, TranslateError> {
    if r.n.is_some_and(|n| n > 1) {
        return Err(refused("n", "more than one completion per prompt"));
    }
    if r.best_of.is_some_and(|n| n > 1) {
        return Err(refused("best_of", "choosing the best of several completions"));
    }
    if r.echo == Some(true) {
        return Err(refused("echo", "repeating the prompt in the answer"));
    }
    if r.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(refused("suffix", "inserting text before a suffix"));
    }
    if r.logprobs.is_some() {
        return Err(refused("logprobs", "log probabilities of the tokens"));
    }
    let text = prompt_text(r.prompt)?;
    let stream = r.stream.unwrap_or(false);
    let mut extra = r.extra;
    let top_k = match extra.remove("top_k") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| TranslateError::new("top_k: expected a non-negative integer", Some("top_k".into())))?,
        ),
    };
    // Token ids of the model's tokenizer: meaningful to an OpenAI-protocol model only, which gets
    // them as a chat client's would (see `Extra`).
    if let Some(bias) = r.logit_bias.filter(|b| !b.is_empty()) {
        extra.insert("logit_bias".into(), Value::Object(bias));
    }
    Ok(ChatRequest {
        model: r.model,
        messages: vec![Message { role: Role::User, content: vec![Part::Text { text, cache_control: None }] }],
        // OpenAI's default is short; a chat model's default would be another answer.
        max_tokens: Some(r.max_tokens.unwrap_or(CompletionRequest::DEFAULT_MAX_TOKENS)),
        temperature: r.temperature,
        top_p: r.top_p,
        top_k,
        stop: r.stop.map(|s| s.into_vec()).unwrap_or_default(),
        stream,
        stream_usage: r.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false),
        user: r.user,
        seed: r.seed,
        presence_penalty: r.presence_penalty,
        frequency_penalty: r.frequency_penalty,
        extra: Extra { from: Some(WireProtocol::OpenAi), fields: extra },
        ..Default::default()
    })
}

/// The one text a chat model is given.
fn prompt_text(prompt: Prompt) -> Result<String, TranslateError> {
    let text = match prompt {
        Prompt::Text(text) => text,
        Prompt::Texts(mut texts) if texts.len() == 1 => texts.pop().unwrap_or_default(),
        Prompt::Texts(texts) if texts.len() > 1 => {
            return Err(refused("prompt", "several prompts in one request (send one request per prompt)"));
        }
        Prompt::Tokens(_) | Prompt::TokenLists(_) => {
            return Err(refused("prompt", "a prompt of token ids (send it as text)"));
        }
        Prompt::Texts(_) | Prompt::Null => String::new(),
    };
    if text.is_empty() {
        return Err(TranslateError::new(
            "prompt: this model is a chat model, and needs a prompt text to answer",
            Some("prompt".into()),
        ));
    }
    Ok(text)
}

fn refused(param: &str, what: &str) -> TranslateError {
    TranslateError::new(
        format!(
            "{param}: {what} is only supported by OpenAI-protocol upstreams, and this model is a chat model of another provider"
        ),
        Some(param.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_proxy_protocol::json::decode;
    use serde_json::json;

    fn translate(body: Value) -> Result<ChatRequest, TranslateError> {
        request_to_unified(decode(body.to_string().as_bytes()).unwrap())
    }

    #[test]
    fn what_a_chat_model_cannot_do_is_refused_by_name() {
        for (field, value) in [
            ("n", json!(2)),
            ("best_of", json!(3)),
            ("echo", json!(true)),
            ("suffix", json!(" end.")),
            ("logprobs", json!(0)),
            ("prompt", json!(["one", "two"])),
            ("prompt", json!([1212, 318])),
            ("prompt", json!([[1212], [318]])),
            ("prompt", json!(null)),
            ("prompt", json!("")),
            ("prompt", json!([])),
            ("top_k", json!("many")),
        ] {
            let mut body = json!({"model": "m", "prompt": "x"});
            body[field] = value.clone();
            let err = translate(body).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(field), "{field}: {value}");
            assert!(err.message.starts_with(&format!("{field}: ")), "{}", err.message);
        }
    }

    #[test]
    fn the_parameters_defaults_are_fine() {
        let r = translate(json!({"model": "m", "prompt": ["Once upon a time"], "n": 1, "best_of": 1, "echo": false,
            "suffix": "", "logprobs": null, "logit_bias": {}, "top_k": 40, "vendor_knob": 1}))
        .unwrap();
        assert_eq!(
            r.messages,
            [Message {
                role: Role::User,
                content: vec![Part::Text { text: "Once upon a time".into(), cache_control: None }]
            }]
        );
        assert_eq!(r.top_k, Some(40));
        assert_eq!(r.max_tokens, Some(16), "OpenAI's default, not the chat model's");
        assert_eq!(r.extra.fields.keys().collect::<Vec<_>>(), ["vendor_knob"], "empty logit_bias left out");
        let biased = translate(json!({"model": "m", "prompt": "x", "logit_bias": {"50256": -100}})).unwrap();
        assert_eq!(biased.extra.fields["logit_bias"], json!({"50256": -100}));
    }
}
