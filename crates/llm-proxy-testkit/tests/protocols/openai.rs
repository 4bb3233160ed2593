//! The OpenAI protocol: what the gateway's tests have always relied on, and the new behaviours.

use llm_proxy_testkit::{SECOND_TOOL_ARGUMENTS, TOOL_ARGUMENTS};
use serde_json::{Value, json};

use crate::Mock;

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": "hello there gateway"}],
           "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]})
}

#[tokio::test]
async fn the_default_answers_are_unchanged() {
    let m = Mock::start().await;
    let body = m.post("/v1/chat/completions", &[], &chat("mock-a", false)).await.json();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hello there gateway");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"], json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}));

    let streamed = m.post("/v1/chat/completions", &[], &chat("mock-a", true)).await;
    let events = streamed.events();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks = streamed.data();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello w1 w2");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["total_tokens"], 6);
    let stats = m.get("/_mock/stats").await;
    assert_eq!((stats["streams_started"].as_u64(), stats["streams_completed"].as_u64()), (Some(1), Some(1)));
}

#[tokio::test]
async fn a_streamed_tool_call_comes_in_fragments() {
    let m = Mock::start().await;
    let chunks = m.post("/v1/chat/completions", &[], &chat("mock-tool", true)).await.data();
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert_eq!(calls[0]["id"], "call_mock_0");
    assert_eq!(calls[0]["function"], json!({"name": "get_weather", "arguments": ""}));
    assert!(calls.len() > 3, "the arguments arrive in several pieces");
    let arguments: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    assert_eq!(arguments, TOOL_ARGUMENTS);
    let finish = chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str()).unwrap();
    assert_eq!(finish, "tool_calls");

    let body = m.post("/v1/chat/completions", &[], &chat("mock-tools-2", false)).await.json();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], TOOL_ARGUMENTS);
    assert_eq!(message["tool_calls"][1]["function"]["arguments"], SECOND_TOOL_ARGUMENTS);
    assert_eq!(message["tool_calls"][1]["id"], "call_mock_1");
}

#[tokio::test]
async fn a_tool_model_needs_a_tool() {
    let m = Mock::start().await;
    let mut body = chat("mock-tool", false);
    body.as_object_mut().unwrap().remove("tools");
    let answer = m.post("/v1/chat/completions", &[], &body).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn reasoning_cache_and_stop_reasons() {
    let m = Mock::start().await;
    let chunks = m.post("/v1/chat/completions", &[], &chat("mock-reason-cache", true)).await.data();
    let reasoning: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    assert_eq!(reasoning, "Let me think about this.");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 2);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 1000);
    assert_eq!(usage["prompt_tokens"], 1203);

    let body = m.post("/v1/chat/completions", &[], &chat("mock-reason", false)).await.json();
    assert_eq!(body["choices"][0]["message"]["reasoning_content"], "Let me think about this.");
    for (model, reason) in [("mock-max-tokens", "length"), ("mock-refuse", "content_filter")] {
        let body = m.post("/v1/chat/completions", &[], &chat(model, false)).await.json();
        assert_eq!(body["choices"][0]["finish_reason"], reason);
    }
}
