//! The Gemini API: keys, validation, GenerateContentResponse bodies and their SSE stream.

use llm_proxy_testkit::{MockConfig, TOOL_ARGUMENTS};
use serde_json::{Value, json};

use crate::Mock;

pub const KEY: &str = "AIza-mock-key";
pub const HEADERS: [(&str, &str); 1] = [("x-goog-api-key", KEY)];

fn request() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}],
           "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}]})
}

fn status(answer: &crate::Answer) -> Value {
    answer.json()["error"]["status"].clone()
}

#[tokio::test]
async fn keys_are_checked_as_google_checks_them() {
    let m = Mock::with(MockConfig { gemini_key: Some(KEY.into()), ..MockConfig::default() }).await;
    let path = "/v1beta/models/gemini-mock:generateContent";

    let ok = m.post(path, &HEADERS, &request()).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let by_query = m.post(&format!("{path}?key={KEY}"), &[], &request()).await;
    assert_eq!(by_query.status, 200);

    let none = m.post(path, &[], &request()).await;
    assert_eq!((none.status, status(&none)), (403, json!("PERMISSION_DENIED")));
    let bearer = m.post(path, &[("authorization", &format!("Bearer {KEY}"))], &request()).await;
    assert_eq!((bearer.status, status(&bearer)), (401, json!("UNAUTHENTICATED")));
    let wrong = m.post(path, &[("x-goog-api-key", "AIza-other")], &request()).await;
    assert_eq!((wrong.status, status(&wrong)), (400, json!("INVALID_ARGUMENT")));
    assert_eq!(wrong.json()["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert_eq!(wrong.json()["error"]["code"], 400);
}

#[tokio::test]
async fn a_generate_content_response_has_what_gemini_sends() {
    let m = Mock::start().await;
    let body = m.post("/v1beta/models/gemini-mock:generateContent", &HEADERS, &request()).await.json();
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["content"]["parts"], json!([{"text": "echo: What is the weather in Paris?"}]));
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(body["usageMetadata"], json!({"promptTokenCount": 6, "candidatesTokenCount": 3, "totalTokenCount": 9}));
    assert_eq!(body["modelVersion"], "gemini-mock");
    assert!(body["responseId"].is_string());
}

#[tokio::test]
async fn the_stream_is_sse_of_whole_responses() {
    let m = Mock::start().await;
    let answer = m.post("/v1beta/models/gemini-mock:streamGenerateContent?alt=sse", &HEADERS, &request()).await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(answer.text.starts_with("data: {") && answer.text.ends_with("}\r\n\r\n"), "{:?}", answer.text);
    let chunks = answer.data();
    assert_eq!(chunks.len(), 3);
    for chunk in &chunks {
        assert_eq!(chunk["candidates"][0]["content"]["role"], "model");
        assert_eq!(chunk["modelVersion"], "gemini-mock");
        assert_eq!(chunk["usageMetadata"]["promptTokenCount"], 6);
    }
    let text: String =
        chunks.iter().filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str()).collect();
    assert_eq!(text, "Hello w1 w2");
    assert!(chunks[..2].iter().all(|c| c["candidates"][0].get("finishReason").is_none()));
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"]["candidatesTokenCount"], 3,
        "the usage grows chunk by chunk: the last is the total"
    );

    let no_sse = m.post("/v1beta/models/gemini-mock:streamGenerateContent", &HEADERS, &request()).await;
    assert_eq!((no_sse.status, status(&no_sse)), (400, json!("INVALID_ARGUMENT")));
}

#[tokio::test]
async fn a_function_call_comes_whole_and_must_be_answered() {
    let m = Mock::start().await;
    let chunks = m.post("/v1beta/models/gemini-tool:streamGenerateContent?alt=sse", &HEADERS, &request()).await.data();
    assert_eq!(chunks.len(), 1);
    let part = &chunks[0]["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"], "get_weather");
    assert_eq!(part["functionCall"]["args"], serde_json::from_str::<Value>(TOOL_ARGUMENTS).unwrap());
    assert_eq!(chunks[0]["candidates"][0]["finishReason"], "STOP");

    let mut unanswered = request();
    unanswered["contents"] = json!([
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        {"role": "user", "parts": [{"text": "well?"}]},
    ]);
    let answer = m.post("/v1beta/models/gemini-mock:generateContent", &HEADERS, &unanswered).await;
    assert_eq!((answer.status, status(&answer)), (400, json!("INVALID_ARGUMENT")));
    unanswered["contents"][2] = json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}]});
    assert_eq!(m.post("/v1beta/models/gemini-mock:generateContent", &HEADERS, &unanswered).await.status, 200);

    let mut no_tools = request();
    no_tools.as_object_mut().unwrap().remove("tools");
    assert_eq!(m.post("/v1beta/models/gemini-tool:generateContent", &HEADERS, &no_tools).await.status, 400);
}

#[tokio::test]
async fn thoughts_cache_and_finish_reasons() {
    let m = Mock::start().await;
    let chunks =
        m.post("/v1beta/models/gemini-reason-cache:streamGenerateContent?alt=sse", &HEADERS, &request()).await.data();
    assert_eq!(chunks[0]["candidates"][0]["content"]["parts"][0]["thought"], true);
    let usage = &chunks.last().unwrap()["usageMetadata"];
    assert_eq!(usage["thoughtsTokenCount"], 2);
    assert_eq!(usage["candidatesTokenCount"], 3);
    assert_eq!(usage["cachedContentTokenCount"], 1000);
    assert_eq!(usage["promptTokenCount"], 1206);
    assert_eq!(usage["totalTokenCount"], 1211);
    for (model, reason) in [("g-max-tokens", "MAX_TOKENS"), ("g-refuse", "SAFETY")] {
        let body = m.post(&format!("/v1beta/models/{model}:generateContent"), &HEADERS, &request()).await.json();
        assert_eq!(body["candidates"][0]["finishReason"], reason);
    }
    let failed = m.post("/v1beta/models/g-fail-429:generateContent", &HEADERS, &request()).await;
    assert_eq!((failed.status, status(&failed)), (429, json!("RESOURCE_EXHAUSTED")));
    assert_eq!(failed.headers["retry-after"], "7");
    let chunks =
        m.post("/v1beta/models/g-error-after-1:streamGenerateContent?alt=sse", &HEADERS, &request()).await.data();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1]["error"]["status"], "UNAVAILABLE");
}

#[tokio::test]
async fn counts_and_embeddings() {
    let m = Mock::start().await;
    let counted = m.post("/v1beta/models/gemini-mock:countTokens", &HEADERS, &request()).await.json();
    assert_eq!(counted, json!({"totalTokens": 6}));

    let one = json!({"content": {"parts": [{"text": "hello world"}]}});
    let embedded = m.post("/v1beta/models/text-embedding-mock:embedContent", &HEADERS, &one).await.json();
    assert_eq!(embedded["embedding"]["values"].as_array().unwrap().len(), 256);

    let batch = json!({"requests": [
        {"model": "models/text-embedding-mock", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/text-embedding-mock", "content": {"parts": [{"text": "b c"}]}}]});
    let embedded = m.post("/v1beta/models/text-embedding-mock:batchEmbedContents", &HEADERS, &batch).await.json();
    assert_eq!(embedded["embeddings"].as_array().unwrap().len(), 2);
    let answer = m.post("/v1beta/models/other-model:batchEmbedContents", &HEADERS, &batch).await;
    assert_eq!(answer.status, 400);
}
