//! A Completions request checked as OpenAI checks it: the fields the API documents, each of its
//! type and within its range, and no other field (OpenAI refuses what it does not know, so a chat
//! field sent here shows).

use serde_json::Value;

use crate::refusal::Refusal;

/// Every field of `CreateCompletionRequest`.
const FIELDS: [&str; 18] = [
    "model",
    "prompt",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
];

pub(crate) fn request(body: &Value) -> Result<(), Refusal> {
    let Some(fields) = body.as_object() else {
        return Err(Refusal::bad_request("The request body must be a JSON object.".into()));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Refusal::bad_request(format!("Unrecognized request argument supplied: {unknown}")));
    }
    if !body["model"].is_string() {
        return Err(Refusal::missing("model"));
    }
    let Some(prompt) = fields.get("prompt") else {
        return Err(Refusal::missing("prompt"));
    };
    if !is_prompt(prompt) {
        return Err(Refusal::invalid_type("prompt", "a string or an array of strings or tokens", prompt));
    }
    for (field, expected, ok) in [
        ("stream", "a boolean", body["stream"].is_boolean()),
        ("echo", "a boolean", body["echo"].is_boolean()),
        ("suffix", "a string", body["suffix"].is_string()),
        ("user", "a string", body["user"].is_string()),
        ("seed", "an integer", body["seed"].is_i64() || body["seed"].is_u64()),
        ("logit_bias", "an object", body["logit_bias"].is_object()),
        ("stream_options", "an object", body["stream_options"].is_object()),
        ("stop", "a string or an array of strings", is_stop(&body["stop"])),
    ] {
        if !ok && !body[field].is_null() {
            return Err(Refusal::invalid_type(field, expected, &body[field]));
        }
    }
    for (field, min, max) in [("max_tokens", 0, u64::MAX), ("n", 1, 128), ("best_of", 0, 20), ("logprobs", 0, 5)] {
        integer_in(body, field, min, max)?;
    }
    for (field, min, max) in [
        ("temperature", 0.0, 2.0),
        ("top_p", 0.0, 1.0),
        ("presence_penalty", -2.0, 2.0),
        ("frequency_penalty", -2.0, 2.0),
    ] {
        number_in(body, field, min, max)?;
    }
    let n = body["n"].as_u64().unwrap_or(1);
    if body["best_of"].as_u64().is_some_and(|b| b < n) {
        return Err(Refusal::new("best_of must be greater than or equal to n.".into(), "best_of", None));
    }
    let streamed = body["stream"] == true;
    if streamed && body["best_of"].as_u64().is_some_and(|b| b > 1) {
        return Err(Refusal::new("Cannot stream results with best_of > 1.".into(), "best_of", None));
    }
    if !streamed && !body["stream_options"].is_null() {
        return Err(Refusal::new(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.".into(),
            "stream_options",
            None,
        ));
    }
    Ok(())
}

/// A string, `null`, or a non-empty array of strings, of token ids, or of non-empty token-id arrays.
fn is_prompt(prompt: &Value) -> bool {
    let tokens = |v: &Value| v.as_array().is_some_and(|ids| !ids.is_empty() && ids.iter().all(Value::is_u64));
    match prompt {
        Value::Null | Value::String(_) => true,
        Value::Array(items) if items.is_empty() => false,
        Value::Array(items) => {
            items.iter().all(Value::is_string) || items.iter().all(Value::is_u64) || items.iter().all(tokens)
        }
        _ => false,
    }
}

/// A string, or up to four strings.
fn is_stop(stop: &Value) -> bool {
    match stop {
        Value::String(_) => true,
        Value::Array(items) => items.len() <= 4 && items.iter().all(Value::is_string),
        _ => false,
    }
}

fn integer_in(body: &Value, field: &str, min: u64, max: u64) -> Result<(), Refusal> {
    let v = &body[field];
    if v.is_null() {
        return Ok(());
    }
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        Some(n) => Err(Refusal::new(format!("{n} is not within [{min}, {max}] - '{field}'"), field, None)),
        None if v.is_i64() => {
            Err(Refusal::new(format!("{v} is less than the minimum of {min} - '{field}'"), field, None))
        }
        None => Err(Refusal::invalid_type(field, "an integer", v)),
    }
}

fn number_in(body: &Value, field: &str, min: f64, max: f64) -> Result<(), Refusal> {
    let v = &body[field];
    match v.as_f64() {
        _ if v.is_null() => Ok(()),
        Some(x) if (min..=max).contains(&x) => Ok(()),
        Some(x) => Err(Refusal::new(format!("{x} is not within [{min}, {max}] - '{field}'"), field, None)),
        None => Err(Refusal::invalid_type(field, "a number", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: Value) -> Refusal {
        request(&body).expect_err("refused")
    }

    #[test]
    fn the_documented_request_passes_and_chat_fields_do_not() {
        assert_eq!(
            request(&json!({"model": "m", "prompt": "Say this is a test", "max_tokens": 7, "temperature": 0})),
            Ok(())
        );
        assert_eq!(
            request(&json!({"model": "m", "prompt": [[1212, 318], [13]], "n": 2, "best_of": 3, "echo": true,
            "logprobs": 5, "stop": ["\n"], "suffix": null, "logit_bias": {"50256": -100}})),
            Ok(())
        );
        assert_eq!(
            refused(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).message,
            "Unrecognized request argument supplied: messages"
        );
        assert_eq!(refused(json!({"model": "m", "prompt": "x", "max_completion_tokens": 5})).param, None);
        assert_eq!(refused(json!({"model": "m"})).param.as_deref(), Some("prompt"));
    }

    #[test]
    fn types_and_ranges_name_the_field() {
        for (field, value) in [
            ("prompt", json!(5)),
            ("prompt", json!(["a", 1])),
            ("prompt", json!([])),
            ("n", json!(0)),
            ("logprobs", json!(6)),
            ("max_tokens", json!(-1)),
            ("temperature", json!(3)),
            ("stop", json!(["a", "b", "c", "d", "e"])),
            ("echo", json!("yes")),
            ("best_of", json!(1)),
            ("stream_options", json!({"include_usage": true})),
        ] {
            let mut body = json!({"model": "m", "prompt": "x", "n": 2});
            body[field] = value.clone();
            assert_eq!(refused(body).param.as_deref(), Some(field), "{field}: {value}");
        }
        let streamed = json!({"model": "m", "prompt": "x", "stream": true, "best_of": 2});
        assert_eq!(refused(streamed).param.as_deref(), Some("best_of"), "best_of cannot be streamed");
    }
}
