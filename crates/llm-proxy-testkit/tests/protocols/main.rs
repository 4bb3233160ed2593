//! Drives the mock over HTTP in each protocol it speaks, as a gateway would.
#![expect(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests are clients, not the gateway: their own HTTP client is fine, and they assert by unwrapping and panicking"
)]

mod anthropic;
mod completions;
mod gemini;
mod glm;
mod openai;
mod responses;
mod routing;

use llm_proxy_testkit::{MockConfig, MockUpstream};
use serde_json::Value;

/// A mock and a client for it.
pub struct Mock {
    pub mock: MockUpstream,
    http: reqwest::Client,
}

/// One answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The server-sent events of a streamed answer: (`event:` name if any, `data:` text).
    pub fn events(&self) -> Vec<(Option<String>, String)> {
        self.text
            .replace("\r\n", "\n")
            .split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                let mut event = None;
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event: ") {
                        event = Some(name.to_string());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push(d);
                    } else {
                        panic!("not an SSE line: {line:?}");
                    }
                }
                (event, data.join("\n"))
            })
            .collect()
    }

    /// The `data:` of each event, parsed (`[DONE]` left out).
    pub fn data(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|(_, d)| d != "[DONE]")
            .map(|(_, d)| serde_json::from_str(&d).unwrap())
            .collect()
    }
}

impl Mock {
    pub async fn start() -> Self {
        Self::with(MockConfig::default()).await
    }

    pub async fn with(config: MockConfig) -> Self {
        Mock { mock: MockUpstream::start_with(config).await.unwrap(), http: reqwest::Client::new() }
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
        let mut req = self
            .http
            .post(format!("http://{}{path}", self.mock.addr))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Answer { status, headers, text: resp.text().await.unwrap() }
    }

    pub async fn get(&self, path: &str) -> Value {
        let resp = self.http.get(format!("http://{}{path}", self.mock.addr)).send().await.unwrap();
        serde_json::from_str(&resp.text().await.unwrap()).unwrap()
    }

    /// A GET with headers, its status and headers kept.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.get(format!("http://{}{path}", self.mock.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Answer { status, headers, text: resp.text().await.unwrap() }
    }
}

/// The same conversation's `echo` summary must not depend on the protocol it was sent in.
#[tokio::test]
async fn echo_summaries_agree_across_protocols() {
    let m = Mock::start().await;
    let openai = m
        .post(
            "/v1/chat/completions",
            &[],
            &serde_json::json!({"model": "m-echo", "max_tokens": 50, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "user", "content": "thanks"}],
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}),
        )
        .await;
    let anthropic = m
        .post(
            "/v1/messages",
            &anthropic::HEADERS,
            &serde_json::json!({"model": "m-echo", "max_tokens": 50, "system": "be brief", "messages": [
                {"role": "user", "content": [{"type": "text", "text": "weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
                    {"type": "text", "text": "thanks"}]}],
                "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}),
        )
        .await;
    let gemini = m
        .post(
            "/v1beta/models/m-echo:generateContent",
            &gemini::HEADERS,
            &serde_json::json!({"systemInstruction": {"parts": [{"text": "be brief"}]}, "contents": [
                {"role": "user", "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
                    {"text": "thanks"}]}],
                "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
                "generationConfig": {"maxOutputTokens": 50}}),
        )
        .await;
    let responses = m
        .post(
            "/v1/responses",
            &[],
            &serde_json::json!({"model": "m-echo", "max_output_tokens": 50, "instructions": "be brief", "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"role": "user", "content": "thanks"}],
                "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
        )
        .await;
    let expected = r#"{"system":"be brief","messages":3,"images":1,"tools":["get_weather"],"tool_results":["sunny"],"max_tokens":50,"last_user_text":"thanks"}"#;
    assert_eq!(openai.json()["choices"][0]["message"]["content"], expected, "{}", openai.text);
    assert_eq!(anthropic.json()["content"][0]["text"], expected, "{}", anthropic.text);
    assert_eq!(gemini.json()["candidates"][0]["content"]["parts"][0]["text"], expected, "{}", gemini.text);
    assert_eq!(responses.json()["output"][0]["content"][0]["text"], expected, "{}", responses.text);
}

#[tokio::test]
async fn every_request_is_recorded_without_its_keys() {
    let m = Mock::start().await;
    let user = serde_json::json!([{"role": "user", "content": "hi"}]);
    m.post("/v1/messages", &anthropic::HEADERS, &serde_json::json!({"model": "m", "max_tokens": 5, "messages": user}))
        .await;
    m.post("/v1/messages", &[], &serde_json::json!({"model": "m", "max_tokens": 5, "messages": user})).await;
    let contents = serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    m.post("/v1beta/models/m:streamGenerateContent?alt=sse&key=secret-key", &[], &contents).await;

    let recorded = m.get("/_mock/requests").await;
    let recorded = recorded.as_array().unwrap();
    assert_eq!(recorded.len(), 3, "refused requests are recorded too");
    assert_eq!(recorded[0]["path"], "/v1/messages");
    assert_eq!(recorded[0]["headers"]["x_api_key"], true);
    assert_eq!(recorded[0]["headers"]["anthropic_version"], "2023-06-01");
    assert_eq!(recorded[1]["headers"]["x_api_key"], false);
    assert_eq!(recorded[2]["path"], "/v1beta/models/m:streamGenerateContent");
    assert_eq!(recorded[2]["query"], "alt=sse&key=REDACTED");
    assert_eq!(recorded[2]["headers"]["x_goog_api_key"], false);
    assert!(!serde_json::to_string(recorded).unwrap().contains("secret-key"));
    assert!(!serde_json::to_string(recorded).unwrap().contains(anthropic::KEY));
}
