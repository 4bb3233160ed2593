//! ZhipuAI GLM: OpenAI-shaped answers behind a JWT signed from `id.secret`.

use llm_proxy_testkit::{DEFAULT_GLM_KEY, MockConfig, jwt};
use serde_json::{Value, json};

use crate::Mock;

const PATH: &str = "/api/paas/v4/chat/completions";

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "你好 world"}]})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn code(answer: &crate::Answer) -> Value {
    answer.json()["error"]["code"].clone()
}

#[tokio::test]
async fn a_correctly_signed_token_is_accepted_and_counted() {
    let m = Mock::start().await;
    let token = jwt::sign(DEFAULT_GLM_KEY, jwt::now_ms(), 3_600_000).unwrap();
    for _ in 0..2 {
        let answer = m.post(PATH, &[("authorization", &bearer(&token))], &chat("glm-4", false)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json()["choices"][0]["message"]["content"], "echo: 你好 world");
    }
    assert_eq!(m.get("/_mock/stats").await["glm_tokens_seen"], 1, "one token, reused");
    let another = jwt::sign(DEFAULT_GLM_KEY, jwt::now_ms() + 1, 3_600_000).unwrap();
    m.post(PATH, &[("authorization", &bearer(&another))], &chat("glm-4", false)).await;
    assert_eq!(m.mock.state.glm_tokens_seen(), 2);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_glms_codes() {
    let m = Mock::with(MockConfig { glm_key: "myid.mysecret".into(), ..MockConfig::default() }).await;
    let body = chat("glm-4", false);
    let now = jwt::now_ms();
    let cases = [
        (None, "1001"),
        (Some("myid.mysecret".to_string()), "1002"),
        (jwt::sign("myid.othersecret", now, 60_000), "1004"),
        (jwt::sign("myid.mysecret", now - 120_000, 60_000), "1003"),
        (jwt::sign("otherid.mysecret", now, 60_000), "1000"),
        // exp and timestamp in seconds instead of milliseconds: long expired.
        (jwt::sign("myid.mysecret", now / 1000, 3_600), "1003"),
    ];
    for (token, expected) in cases {
        let headers: Vec<(&str, String)> = token.iter().map(|t| ("authorization", bearer(t))).collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = m.post(PATH, &headers, &body).await;
        assert_eq!(answer.status, 401, "{token:?}: {}", answer.text);
        assert_eq!(code(&answer), expected, "{token:?}: {}", answer.text);
        assert!(answer.json()["error"]["message"].is_string());
    }
    let good = jwt::sign("myid.mysecret", now, 60_000).unwrap();
    assert_eq!(m.post(PATH, &[("authorization", &bearer(&good))], &body).await.status, 200);
}

#[tokio::test]
async fn streams_carry_usage_in_the_finish_chunk_and_faults_speak_glm() {
    let m = Mock::start().await;
    let token = jwt::sign(DEFAULT_GLM_KEY, jwt::now_ms(), 3_600_000).unwrap();
    let auth = [("authorization", bearer(&token))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(n, v)| (*n, v.as_str())).collect();

    let streamed = m.post(PATH, &auth, &chat("glm-4-reason", true)).await;
    assert_eq!(streamed.events().last().unwrap().1, "[DONE]");
    let chunks = streamed.data();
    let finish = chunks.last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["usage"]["completion_tokens"], 5);
    assert!(chunks.iter().any(|c| c["choices"][0]["delta"]["reasoning_content"].is_string()));

    let limited = m.post(PATH, &auth, &chat("glm-fail-429", false)).await;
    assert_eq!((limited.status, code(&limited)), (429, json!("1302")));
    assert_eq!(limited.headers["retry-after"], "7");

    let embedded =
        m.post("/api/paas/v4/embeddings", &auth, &json!({"model": "embedding-3", "input": ["a b", "c"]})).await.json();
    assert_eq!(embedded["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        m.post("/api/paas/v4/embeddings", &[], &json!({"model": "embedding-3", "input": "a"})).await.status,
        401
    );
}
