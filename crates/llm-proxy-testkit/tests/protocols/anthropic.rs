//! The Anthropic Messages API: headers, validation, the message object and the event stream.

use llm_proxy_testkit::{MockConfig, TOOL_ARGUMENTS};
use serde_json::{Value, json};

use crate::Mock;

pub const KEY: &str = "sk-ant-mock-key";
pub const HEADERS: [(&str, &str); 2] = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];

fn request(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 256, "stream": stream,
           "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
           "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]})
}

fn error_type(answer: &crate::Answer) -> Value {
    let body = answer.json();
    assert_eq!(body["type"], "error", "{}", answer.text);
    body["error"]["type"].clone()
}

#[tokio::test]
async fn headers_are_checked_as_anthropic_checks_them() {
    let m = Mock::with(MockConfig { anthropic_key: Some(KEY.into()), ..MockConfig::default() }).await;
    let body = request("claude-mock", false);

    let ok = m.post("/v1/messages", &HEADERS, &body).await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let bearer_only = m
        .post(
            "/v1/messages",
            &[("authorization", &format!("Bearer {KEY}")), ("anthropic-version", "2023-06-01")],
            &body,
        )
        .await;
    assert_eq!(bearer_only.status, 401);
    assert_eq!(error_type(&bearer_only), "authentication_error");

    let wrong =
        m.post("/v1/messages", &[("x-api-key", "sk-ant-other"), ("anthropic-version", "2023-06-01")], &body).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(error_type(&wrong), "authentication_error");

    let no_version = m.post("/v1/messages", &[("x-api-key", KEY)], &body).await;
    assert_eq!(no_version.status, 400);
    assert_eq!(error_type(&no_version), "invalid_request_error");
    assert!(no_version.json()["error"]["message"].as_str().unwrap().contains("anthropic-version"));

    let counted = m.post("/v1/messages/count_tokens", &HEADERS, &body).await;
    assert_eq!(counted.json(), json!({"input_tokens": 6}));
    let counted_no_key = m.post("/v1/messages/count_tokens", &[("anthropic-version", "2023-06-01")], &body).await;
    assert_eq!(counted_no_key.status, 401);
}

#[tokio::test]
async fn without_a_configured_key_any_key_is_accepted() {
    let m = Mock::start().await;
    let answer = m
        .post("/v1/messages", &[("x-api-key", "anything"), ("anthropic-version", "2023-06-01")], &request("m", false))
        .await;
    assert_eq!(answer.status, 200);
    let message = answer.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0], json!({"type": "text", "text": "echo: What is the weather in Paris?"}));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["usage"]["input_tokens"], 6);
    assert_eq!(message["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn a_tool_result_without_its_tool_use_is_refused() {
    let m = Mock::start().await;
    let mut body = request("m", false);
    body["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "sunny"}]},
    ]);
    let answer = m.post("/v1/messages", &HEADERS, &body).await;
    assert_eq!(answer.status, 400);
    assert_eq!(error_type(&answer), "invalid_request_error");
    assert!(answer.json()["error"]["message"].as_str().unwrap().contains("toolu_2"), "{}", answer.text);

    body["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_1");
    assert_eq!(m.post("/v1/messages", &HEADERS, &body).await.status, 200);

    let mut openai_shaped = request("m", false);
    openai_shaped["messages"] = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]);
    let answer = m.post("/v1/messages", &HEADERS, &openai_shaped).await;
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"]["message"].as_str().unwrap().contains("role"));
}

#[tokio::test]
async fn a_text_stream_follows_anthropics_event_sequence() {
    let m = Mock::start().await;
    let answer = m.post("/v1/messages", &HEADERS, &request("m", true)).await;
    assert!(answer.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(answer.text.starts_with("event: message_start\ndata: {"), "{}", answer.text);
    let events = answer.events();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for ((name, _), data) in events.iter().zip(answer.data()) {
        assert_eq!(data["type"], name.as_deref().unwrap(), "each event's data says its own type");
    }
    let data = answer.data();
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 6);
    let text: String = data.iter().filter_map(|d| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "Hello w1 w2");
    assert_eq!(data[7]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[7]["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn a_streamed_tool_calls_partial_json_rebuilds_the_arguments() {
    let m = Mock::start().await;
    let data = m.post("/v1/messages", &HEADERS, &request("claude-tool", true)).await.data();
    let start = data.iter().find(|d| d["type"] == "content_block_start").unwrap();
    assert_eq!(
        start["content_block"],
        json!({"type": "tool_use", "id": "toolu_mock_0", "name": "get_weather", "input": {}})
    );
    let fragments: Vec<&str> = data
        .iter()
        .filter(|d| d["delta"]["type"] == "input_json_delta")
        .map(|d| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert!(fragments.len() > 3);
    assert_eq!(fragments.concat(), TOOL_ARGUMENTS, "the bytes, exactly");
    let message_delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");

    let body = m.post("/v1/messages", &HEADERS, &request("claude-tools-2", false)).await.json();
    assert_eq!(body["content"][0]["input"], json!({"location": "Paris, France", "unit": "celsius"}));
    assert_eq!(body["content"][1]["input"], json!({"location": "Tokyo, Japan", "unit": "celsius"}));
    assert_eq!(body["stop_reason"], "tool_use");
}

#[tokio::test]
async fn thinking_streams_with_a_signature_and_cache_is_reported_apart() {
    let m = Mock::start().await;
    let data = m.post("/v1/messages", &HEADERS, &request("claude-reason-cache", true)).await.data();
    assert_eq!(data[1]["content_block"]["type"], "thinking");
    let thinking: String = data.iter().filter_map(|d| d["delta"]["thinking"].as_str()).collect();
    assert_eq!(thinking, "Let me think about this.");
    let signature = data.iter().position(|d| d["delta"]["type"] == "signature_delta").unwrap();
    assert_eq!(data[signature + 1], json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(data[signature + 2]["content_block"]["type"], "text");
    assert_eq!(data[signature + 2]["index"], 1);
    let usage = &data[0]["message"]["usage"];
    assert_eq!(
        (&usage["input_tokens"], &usage["cache_read_input_tokens"], &usage["cache_creation_input_tokens"]),
        (&json!(6), &json!(1000), &json!(200))
    );

    let body = m.post("/v1/messages", &HEADERS, &request("claude-reason", false)).await.json();
    assert_eq!(body["content"][0]["type"], "thinking");
    assert!(body["content"][0]["signature"].is_string());
    for (model, reason) in [("m-max-tokens", "max_tokens"), ("m-refuse", "refusal")] {
        assert_eq!(m.post("/v1/messages", &HEADERS, &request(model, false)).await.json()["stop_reason"], reason);
    }
}

#[tokio::test]
async fn faults_speak_anthropic() {
    let m = Mock::start().await;
    let limited = m.post("/v1/messages", &HEADERS, &request("m-fail-429", false)).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "7");
    assert_eq!(error_type(&limited), "rate_limit_error");
    let overloaded = m.post("/v1/messages", &HEADERS, &request("m-fail-529", false)).await;
    assert_eq!(error_type(&overloaded), "overloaded_error");

    let events = m.post("/v1/messages", &HEADERS, &request("m-error-after-2", true)).await.events();
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert_eq!(serde_json::from_str::<Value>(data).unwrap()["error"]["type"], "overloaded_error");
    assert!(!events.iter().any(|(e, _)| e.as_deref() == Some("message_stop")));
}
