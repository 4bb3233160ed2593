//! OpenAI's legacy Completions API: the reference's examples, several prompts and choices, the
//! faults, and the requests OpenAI refuses.

use serde_json::{Value, json};

use crate::Mock;

const PATH: &str = "/v1/completions";

#[tokio::test]
async fn the_documented_request_gets_a_text_completion() {
    let m = Mock::start().await;
    let body = json!({"model": "mock-a", "prompt": "Say this is a test", "max_tokens": 7, "temperature": 0});
    let answer = m.post(PATH, &[], &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let c = answer.json();
    assert_eq!((c["object"].as_str(), c["model"].as_str()), (Some("text_completion"), Some("mock-a")));
    assert!(c["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(
        c["choices"],
        json!([{"text": "echo: Say this is a test", "index": 0, "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(c["usage"], json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}));
    let seen = m.get("/_mock/requests").await;
    assert_eq!(seen[0]["path"], PATH);
    assert_eq!(seen[0]["body"], body);
}

#[tokio::test]
async fn a_stream_is_text_completion_chunks_then_usage_then_done() {
    let m = Mock::start().await;
    let body = json!({"model": "mock-a", "prompt": "Say this is a test", "stream": true,
                      "stream_options": {"include_usage": true}});
    let streamed = m.post(PATH, &[], &body).await;
    assert_eq!(streamed.events().last().unwrap().1, "[DONE]");
    let chunks = streamed.data();
    let texts: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(texts, ["Hello", " w1", " w2", ""]);
    assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["total_tokens"], 8);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion" && c["id"] == "cmpl-mock"));

    let mut plain = body.clone();
    plain.as_object_mut().unwrap().remove("stream_options");
    let chunks = m.post(PATH, &[], &plain).await.data();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage chunk unless asked for");
}

#[tokio::test]
async fn each_prompt_gets_n_choices() {
    let m = Mock::start().await;
    let c = m.post(PATH, &[], &json!({"model": "mock-a", "prompt": ["one", "two"], "n": 2, "echo": true})).await.json();
    let choices: Vec<(u64, &str)> = c["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["index"].as_u64().unwrap(), c["text"].as_str().unwrap()))
        .collect();
    assert_eq!(choices, [(0, "oneecho: one"), (1, "oneecho: one"), (2, "twoecho: two"), (3, "twoecho: two")]);
    assert_eq!(c["usage"]["completion_tokens"], 12, "each choice is generated");
    let tokens = m.post(PATH, &[], &json!({"model": "mock-a", "prompt": [1212, 318, 257]})).await.json();
    assert_eq!(tokens["choices"][0]["text"], "echo: [1212,318,257]");
    assert_eq!(tokens["usage"]["prompt_tokens"], 3, "a token id is a token");

    let chunks = m.post(PATH, &[], &json!({"model": "mock-a", "prompt": "x", "n": 2, "stream": true})).await.data();
    let indexes: Vec<u64> = chunks.iter().map(|c| c["choices"][0]["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 0, 1, 0, 1, 0, 1], "every piece, then every finish, to each choice");
}

#[tokio::test]
async fn behaviours_and_faults_as_on_chat() {
    let m = Mock::start().await;
    let c = m.post(PATH, &[], &json!({"model": "mock-max-tokens", "prompt": "x"})).await.json();
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    let c = m.post(PATH, &[], &json!({"model": "mock-echo", "prompt": "hello there", "max_tokens": 9})).await.json();
    let summary: Value = serde_json::from_str(c["choices"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!((summary["last_user_text"].as_str(), summary["max_tokens"].as_u64()), (Some("hello there"), Some(9)));
    let chunks = m.post(PATH, &[], &json!({"model": "mock-error-after-2", "prompt": "x", "stream": true})).await.data();
    assert_eq!(chunks.last().unwrap()["error"]["type"], "server_error");
    assert_eq!(m.post(PATH, &[], &json!({"model": "mock-fail-429", "prompt": "x"})).await.status, 429);
    let reasoning = m.post(PATH, &[], &json!({"model": "mock-reason", "prompt": "x", "stream": true})).await.data();
    let text: String = reasoning.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "Hello w1 w2", "no place for reasoning in a completion");
}

#[tokio::test]
async fn what_openai_refuses_is_refused() {
    let m = Mock::start().await;
    for (body, param) in [
        (json!({"model": "mock-a", "messages": [{"role": "user", "content": "x"}]}), Value::Null),
        (json!({"model": "mock-a"}), json!("prompt")),
        (json!({"model": "mock-a", "prompt": "x", "stream_options": {"include_usage": true}}), json!("stream_options")),
        (json!({"model": "mock-a", "prompt": "x", "max_tokens": "many"}), json!("max_tokens")),
        (json!({"model": "mock-tool", "prompt": "x"}), Value::Null),
    ] {
        let answer = m.post(PATH, &[], &body).await;
        assert_eq!(answer.status, 400, "{body}");
        let err = answer.json();
        assert_eq!(
            (err["error"]["type"].as_str(), &err["error"]["param"]),
            (Some("invalid_request_error"), &param),
            "{body}: {err}"
        );
    }
}
