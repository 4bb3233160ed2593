//! Translated requests through the real server: what the SDK suites cannot easily see — upstream
//! cancellation on a dropped client, log rows of translated streams, in-stream errors in the
//! Anthropic shape, and random bodies on `/v1/messages`. Translation does not touch the database,
//! so these run on SQLite only.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, PATIENCE, eventually, request_id};
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn gateway() -> Gateway {
    Gateway::start(Backend::Sqlite).await.expect("SQLite always runs")
}

/// Splits an SSE body into (event name, data) pairs; comments are skipped.
fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            (!data.is_empty()).then(|| (name, data.join("\n")))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_a_translated_stream_cancels_the_upstream_call() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    // Anthropic client, OpenAI upstream: the translated path.
    let resp = gw
        .messages(
            &key,
            json!({"model": "oai/mock-slow-200-chunks-50", "max_tokens": 100, "stream": true,
                   "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    // Uncancelled, the stream would end after 10 s and count as completed, never as cancelled.
    eventually(PATIENCE, async || match gw.mock.state.streams_cancelled.load(std::sync::atomic::Ordering::SeqCst) {
        0 => Err("the upstream stream outlived the client"),
        _ => Ok(()),
    })
    .await;
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (499, Some("client_disconnect")));
    assert_eq!(row.endpoint, "messages");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_streams_are_logged_with_the_usage_the_client_saw() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    // OpenAI client, Anthropic upstream, cached tokens.
    let resp = gw
        .chat(
            &key,
            json!({"model": "claude/mock-cache", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    let rid = request_id(&resp);
    let events = sse_events(&resp.text().await.unwrap());
    assert_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    let usage = &usage["usage"];
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 1000);
    let row = gw.log_entry(&rid).await;
    assert_eq!(row.status, 200);
    assert_eq!(row.provider.as_deref(), Some("claude"));
    assert_eq!(row.prompt_tokens, usage["prompt_tokens"].as_u64(), "the log counts what the client was told");
    assert_eq!(row.completion_tokens, usage["completion_tokens"].as_u64());
    assert!(row.ttft_ms.is_some());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_mid_stream_reach_anthropic_clients_as_error_events() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for model in ["claude/mock-error-after-2", "oai/mock-error-after-2", "gem/mock-error-after-2"] {
        let resp = gw
            .messages(
                &key,
                json!({"model": model, "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{model}");
        let rid = request_id(&resp);
        let events = sse_events(&resp.text().await.unwrap());
        let (name, data) = events.last().unwrap();
        assert_eq!(name.as_deref(), Some("error"), "{model}: {events:?}");
        let err: Value = serde_json::from_str(data).unwrap();
        assert_eq!(err["type"], "error", "{model}");
        assert_eq!(err["error"]["type"], "api_error", "{model}");
        assert!(!events.iter().any(|(n, _)| n.as_deref() == Some("message_stop")), "{model}: no clean end");
        let row = gw.log_entry(&rid).await;
        assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (502, Some("stream_interrupted")), "{model}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glm_requests_carry_one_cached_token_the_mock_accepts() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for stream in [false, true, false] {
        let resp = gw
            .chat(
                &key,
                json!({"model": "zhipu/glm-4.6", "stream": stream, "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    assert_eq!(gw.mock.state.glm_tokens_seen(), 1, "signed once, reused");
    let seen = gw.mock.state.requests();
    let glm: Vec<_> = seen.iter().filter(|r| r.path.starts_with("/api/paas/v4/")).collect();
    assert_eq!(glm.len(), 3);
    assert!(glm.iter().all(|r| r.body.get("stream_options").is_none()), "GLM takes no stream_options");
    gw.stop().await;
}

/// Whatever a client sends to `/v1/messages`, translated or passed through, the answer is a
/// success or an error in Anthropic's shape — never a 500 — and each request leaves one log row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_on_v1_messages_crashes_the_gateway_or_gets_a_500() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;

    const BLOCK_TYPES: [&str; 6] = ["text", "image", "tool_use", "tool_result", "thinking", "document"];
    const ROLES: [&str; 3] = ["user", "assistant", "system"];

    fn random_json(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
        match rng.gen_range(0..if depth > 3 { 5 } else { 9 }) {
            0 => Value::Null,
            1 => json!(rng.r#gen::<bool>()),
            2 => json!(rng.r#gen::<i64>()),
            3 => json!(rng.r#gen::<f64>() * 1e300),
            4 => json!((0..rng.gen_range(0..20)).map(|_| rng.r#gen::<char>()).collect::<String>()),
            5 => Value::Array((0..rng.gen_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
            // Plausible content blocks, so translation gets past the first type check.
            6 => json!({"type": BLOCK_TYPES[rng.gen_range(0..BLOCK_TYPES.len())],
                        "text": random_json(rng, depth + 1), "source": random_json(rng, depth + 1),
                        "id": random_json(rng, depth + 1), "input": random_json(rng, depth + 1),
                        "tool_use_id": random_json(rng, depth + 1), "content": random_json(rng, depth + 1)}),
            7 => json!([{"role": ROLES[rng.gen_range(0..ROLES.len())], "content": random_json(rng, depth + 1)}]),
            _ => Value::Object(
                (0..rng.gen_range(0..4)).map(|i| (format!("k{i}"), random_json(rng, depth + 1))).collect(),
            ),
        }
    }

    let fields = [
        "messages",
        "system",
        "stream",
        "max_tokens",
        "tools",
        "tool_choice",
        "thinking",
        "temperature",
        "stop_sequences",
        "metadata",
    ];
    let models = ["oai/mock-a", "gem/mock-a", "claude/mock-a", "zhipu/mock-a"];
    let client = reqwest::Client::new();
    for case in 0..240 {
        let body = if case % 4 == 0 {
            (0..rng.gen_range(0..400)).map(|_| rng.r#gen::<u8>()).collect::<Vec<u8>>()
        } else {
            let model = models[case % models.len()];
            let mut req = json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]});
            for _ in 0..rng.gen_range(1..3) {
                req[fields[rng.gen_range(0..fields.len())]] = random_json(&mut rng, 0);
            }
            serde_json::to_vec(&req).unwrap()
        };
        let path = if case % 5 == 4 { "/v1/messages/count_tokens" } else { "/v1/messages" };
        let resp = client.post(gw.url(path)).header("x-api-key", &key).body(body.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(status != 500, "case {case}: 500 for {}: {text}", String::from_utf8_lossy(&body));
        if status >= 400 {
            let err: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("case {case}: not JSON: {text}"));
            assert_eq!(err["type"], "error", "case {case}: {text}");
            assert!(err["error"]["message"].is_string() && err["error"]["type"].is_string(), "case {case}: {text}");
        }
    }
    assert_eq!(client.get(gw.url("/health")).send().await.unwrap().status(), 200);
    let rows = gw.stop().await;
    assert_eq!(rows.len(), 240, "one log row per request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_passthrough_keeps_every_field_and_speaks_anthropics_headers() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let sent = json!({
        "model": "claude/mock-text",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
        "metadata": {"user_id": "u-1"},
        "service_tier": "auto",
        "x_future_field": {"nested": [1, 2, 3]}
    });
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .bearer_auth(&key) // the SDKs' auth-token form; x-api-key is covered elsewhere
        .header("anthropic-beta", "client-chosen-beta")
        .json(&sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = gw.mock.state.requests();
    let upstream = seen.iter().find(|r| r.path == "/v1/messages").expect("the mock saw the request");
    let mut want = sent.clone();
    want["model"] = json!("mock-text");
    assert_eq!(upstream.body, want, "passthrough: only the model is rewritten");
    assert!(upstream.headers.x_api_key, "the provider key goes in x-api-key");
    assert_eq!(upstream.headers.anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(upstream.authorization, None, "the client's bearer token never goes upstream");
    assert_eq!(
        upstream.headers.anthropic_beta.as_deref(),
        Some("client-chosen-beta"),
        "betas are the protocol's: they travel with the body they make valid"
    );
    gw.stop().await;
}

/// A request as Claude Code 2.1 sends it: cached system blocks with a scope, a system message in
/// the middle of the conversation, adaptive thinking with an effort, context management, a user
/// id in `metadata`, `?beta=true` and its list of betas.
fn claude_code_request(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 32000,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral", "ttl": "1h", "scope": "global"}},
            {"type": "text", "text": "Work in /repo.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "list the files", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "The user switched to plan mode."},
            {"role": "assistant", "content": "Planning."},
            {"role": "user", "content": "go on"},
        ],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_abc_account__session_123"},
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
    })
}

const CLAUDE_CODE_BETAS: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,thinking-token-count-2026-05-13,context-management-2025-06-27,prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24";

async fn send_as_claude_code(gw: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/messages?beta=true"))
        .bearer_auth(key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", CLAUDE_CODE_BETAS)
        .json(body)
        .send()
        .await
        .expect("the gateway answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_codes_requests_reach_every_upstream_protocol() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for model in ["claude/mock-chunks-2", "oai/mock-chunks-2", "gem/mock-chunks-2", "zhipu/mock-chunks-2"] {
        let resp = send_as_claude_code(&gw, &key, &claude_code_request(model)).await;
        let status = resp.status();
        let rid = request_id(&resp);
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{model}: {body}");
        let events = sse_events(&body);
        assert_eq!(events.last().and_then(|e| e.0.as_deref()), Some("message_stop"), "{model}: {body}");
        let row = gw.log_entry(&rid).await;
        assert_eq!((row.status, row.endpoint.as_str()), (200, "messages"), "{model}");
    }
    let seen = gw.mock.state.requests();
    let anthropic = seen.iter().find(|r| r.path == "/v1/messages").expect("the Anthropic upstream was called");
    assert_eq!(anthropic.headers.anthropic_beta.as_deref(), Some(CLAUDE_CODE_BETAS));
    assert_eq!(anthropic.body["messages"][1], json!({"role": "system", "content": "The user switched to plan mode."}));
    assert!(anthropic.body["context_management"].is_object(), "passthrough keeps the body as it came");

    let openai = seen.iter().find(|r| r.path == "/v1/chat/completions").expect("the OpenAI upstream was called");
    let roles: Vec<&str> =
        openai.body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "system", "assistant", "user"], "the instruction stays where it was given");
    assert_eq!(openai.body["messages"][2]["content"], "The user switched to plan mode.");
    // `oai` is a generic OpenAI-compatible server: no `reasoning_effort` (a provider named `openai`
    // gets one; the translator's tests cover that).
    for dropped in ["context_management", "output_config", "thinking", "metadata"] {
        assert!(openai.body.get(dropped).is_none(), "{dropped} has no meaning for OpenAI: {}", openai.body);
    }
    assert!(openai.headers.anthropic_beta.is_none(), "betas go to Anthropic only");

    let gemini = seen.iter().find(|r| r.path.starts_with("/v1beta/models/")).expect("the Gemini upstream was called");
    let system: Vec<&str> = gemini.body["systemInstruction"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(system, ["You are Claude Code.", "Work in /repo.", "The user switched to plan mode."]);
    assert!(gemini.body["generationConfig"]["thinkingConfig"].is_object(), "{}", gemini.body);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn betas_are_checked_and_the_api_refuses_beta_fields_without_them() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let mut body = claude_code_request("claude/mock-chunks-2");
    body["stream"] = json!(false);
    // Without the beta, the upstream refuses the field (as Anthropic does): proof the header matters.
    let resp = gw.messages(&key, body.clone()).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("context_management"), "{err}");
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", &key)
        .header("anthropic-beta", "context-management-2025-06-27; drop table")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["type"], "error");
    assert!(err["error"]["message"].as_str().unwrap().starts_with("anthropic-beta:"), "{err}");
    let counted = reqwest::Client::new()
        .post(gw.url("/v1/messages/count_tokens?beta=true"))
        .header("x-api-key", &key)
        .header("anthropic-beta", CLAUDE_CODE_BETAS)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(counted.status(), 200, "count_tokens forwards the betas too");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_url_answers_head_and_get_without_a_key() {
    let gw = gateway().await;
    let client = reqwest::Client::new();
    let head = client.head(gw.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let get: Value = client.get(gw.url("/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(get["service"], "llm-proxy");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_gets_its_key_in_a_header_and_streams_over_sse() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for stream in [false, true] {
        let resp = gw
            .chat(&key, json!({"model": "gem/gemini-2.5-flash", "stream": stream, "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let seen = gw.mock.state.requests();
    let calls: Vec<_> = seen.iter().filter(|r| r.path.starts_with("/v1beta/models/")).collect();
    assert_eq!(calls[0].path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(calls[1].path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    assert_eq!(calls[1].query.as_deref(), Some("alt=sse"), "the key never travels in the URL");
    assert!(calls.iter().all(|c| c.headers.x_goog_api_key && c.authorization.is_none()));
    // A model id that would change the path is refused before anything is sent.
    let resp = gw.chat(&key, json!({"model": "gem/..%2Fx", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 400);
    let resp = gw.chat(&key, json!({"model": "gem/a:b?c", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 400);
    gw.stop().await;
}
