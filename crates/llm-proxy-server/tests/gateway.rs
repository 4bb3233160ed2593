//! The gateway end to end: a real server on a random port, the mock upstream speaking OpenAI's
//! wire format, a real database. Every case runs on SQLite and on PostgreSQL.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "tests are clients, not the gateway: their own HTTP clients and tasks are fine, and they assert by unwrapping and panicking"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Gateway, MASTER_KEY, PATIENCE, eventually, request_id};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Splits an SSE body into its `data:` payloads.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let lines: Vec<&str> =
                event.lines().filter_map(|l| l.strip_prefix("data:")).map(|l| l.trim_start()).collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

async fn passthrough_keeps_every_field_and_rewrites_only_the_model(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (key_id, key) = gw.create_key(&[], None).await;
    let body = json!({
        "model": "default",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is in this image"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "some_future_field": {"nested": [1, 2, 3]},
        "temperature": 0.25
    });
    let resp = gw.chat(&key, body.clone()).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["usage"]["total_tokens"], 8);

    let sent = &gw.mock.state.requests()[0];
    let mut expected = body;
    expected["model"] = json!("mock-a");
    assert_eq!(sent.body, expected, "only `model` may change on the way upstream");
    assert_eq!(sent.authorization.as_deref(), Some("Bearer sk-upstream-canary-0000"));

    let row = gw.log_entry(&rid).await;
    assert_eq!(row.key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(
        (row.model.as_deref(), row.provider.as_deref(), row.upstream_model.as_deref()),
        (Some("default"), Some("mock"), Some("mock-a"))
    );
    assert_eq!((row.status, row.prompt_tokens, row.completion_tokens), (200, Some(5), Some(3)));
    assert!(!row.stream && row.error_kind.is_none() && row.ttft_ms.is_some());
    gw.stop().await;
}

async fn streams_end_with_done_and_hide_the_usage_chunk_unless_asked(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw
        .chat(
            &key,
            json!({"model": "mock/mock-b", "stream": true, "messages": [{"role": "user", "content": "one two"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let rid = request_id(&resp);
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks.len(), 4, "3 content chunks and the finish chunk: {events:?}");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "the client did not ask for usage");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello w1 w2");
    // ...but the gateway asked upstream for it, to count tokens.
    assert_eq!(gw.mock.state.requests()[0].body["stream_options"]["include_usage"], true);
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.status, row.stream, row.prompt_tokens, row.completion_tokens), (200, true, Some(2), Some(3)));
    assert!(row.ttft_ms.is_some());

    let resp = gw
        .chat(&key, json!({"model": "mock-b", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    let events = sse_data(&resp.text().await.unwrap());
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 3);
    gw.stop().await;
}

async fn upstreams_that_reject_stream_options_still_stream_and_count_tokens(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else { return };
    let (_, key) = gw.create_key(&[], None).await;
    for body in [
        json!({"model": "mistral/mock-mistral-style", "stream": true, "messages": [{"role": "user", "content": "a b c"}]}),
        json!({"model": "mock-mistral-style", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "a b c"}]}),
    ] {
        let resp = gw.chat(&key, body).await;
        assert_eq!(resp.status(), 200);
        let rid = request_id(&resp);
        let events = sse_data(&resp.text().await.unwrap());
        assert_eq!(events.last().unwrap(), "[DONE]");
        let row = gw.log_entry(&rid).await;
        assert_eq!(
            (row.provider.as_deref(), row.prompt_tokens, row.completion_tokens),
            (Some("mistral"), Some(3), Some(3))
        );
    }
    assert!(
        gw.mock.state.requests().iter().all(|r| r.body.get("stream_options").is_none()),
        "Mistral answers 422 to it"
    );
    gw.stop().await;
}

async fn a_model_that_thinks_before_its_first_chunk_gets_headers_first(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else { return };
    let (_, key) = gw.create_key(&[], None).await;
    let started = Instant::now();
    let resp = gw
        .chat(&key, json!({"model": "mock-think-1800", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    let headers_at = started.elapsed();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    let first_chunk_at = started.elapsed();
    assert!(
        first_chunk_at >= headers_at + Duration::from_millis(300),
        "headers at {headers_at:?} should come well before the first chunk at {first_chunk_at:?}"
    );
    while body.next().await.is_some() {}
    gw.stop().await;
}

async fn a_quiet_stream_gets_keep_alive_comments(backend: Backend) {
    let Some(gw) = Gateway::start_with(backend, "stream_keep_alive_secs: 1").await else { return };
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw
        .chat(
            &key,
            json!({"model": "mock-slow-1500-chunks-1", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    let body = resp.text().await.unwrap();
    assert!(body.contains("\n\n: keep-alive\n\n"), "no keep-alive during 1.5 s of silence: {body}");
    assert_eq!(sse_data(&body).last().unwrap(), "[DONE]");
    gw.stop().await;
}

async fn stream_chunks_arrive_as_upstream_sends_them(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let started = Instant::now();
    let resp = gw
        .chat(&key, json!({"model": "mock-slow-300", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("Hello"));
    while body.next().await.is_some() {}
    let total = started.elapsed();
    // The mock waits 300 ms between its 5 events; buffering would deliver everything at the end.
    assert!(total >= Duration::from_millis(1200), "{total:?}");
    assert!(total - first_at >= Duration::from_millis(900), "first chunk at {first_at:?}, end at {total:?}");
    gw.stop().await;
}

async fn a_slow_reader_holds_the_upstream_back_instead_of_filling_memory(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else { return };
    let (_, key) = gw.create_key(&[], None).await;
    // 4,000 chunks of 16 kB: 64 MB, far more than the socket buffers between mock, gateway and
    // client (loopback buffers grow to ~20 MB in all here).
    let resp = gw
        .chat(&key, json!({"model": "mock-chunks-4000-pad-16000", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = gw.mock.state.events_sent.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("events sent while the client paused: {sent}");
    assert!(sent < 2500, "the gateway read {sent} of 4000 events ahead of a client that stopped reading");
    let mut bytes = 0usize;
    let mut tail = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        tail = chunk.to_vec();
    }
    assert!(bytes > 64_000_000, "the whole stream arrives once the client reads again: {bytes} bytes");
    assert!(String::from_utf8_lossy(&tail).ends_with("data: [DONE]\n\n"));
    assert_eq!(gw.log_entry(&rid).await.status, 200);
    gw.stop().await;
}

async fn embeddings_pass_through_and_are_logged(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&json!({"model": "text-embedding-mock", "input": ["a b c", "d"], "encoding_format": "float"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(gw.mock.state.requests()[0].body["encoding_format"], "float");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.endpoint.as_str(), row.prompt_tokens, row.status), ("embeddings", Some(4), 200));

    let resp = reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&json!({"model": "text-embedding-mock", "input": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["param"], "input");
    gw.stop().await;
}

async fn models_list_only_what_the_key_may_use(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, all) = gw.create_key(&[], None).await;
    let (_, limited) = gw.create_key(&["default", "mock/mock-b"], None).await;
    let list = |key: String| {
        let url = gw.url("/v1/models");
        async move {
            let body: Value =
                reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
            assert_eq!(body["object"], "list");
            body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    let everything = list(all.clone()).await;
    assert!(everything.contains(&"default".to_string()) && everything.contains(&"dead/dead-model".to_string()));
    // Allowing an alias allows that name only, not the deployment's other names.
    assert_eq!(list(limited.clone()).await, ["default", "mock/mock-b"]);
    // A bare id grants the deployment under every name that reaches it.
    let (_, bare) = gw.create_key(&["mock-a"], None).await;
    assert_eq!(list(bare.clone()).await, ["default", "mock/mock-a"]);
    assert_eq!(
        gw.chat(&bare, json!({"model": "mock/mock-a", "messages": [{"role": "user", "content": "x"}]})).await.status(),
        200
    );

    let retrieve = |key: &str, id: &str| {
        reqwest::Client::new().get(gw.url(&format!("/v1/models/{id}"))).bearer_auth(key.to_string()).send()
    };
    let one: Value = retrieve(&limited, "default").await.unwrap().json().await.unwrap();
    assert_eq!((one["id"].as_str(), one["owned_by"].as_str()), (Some("default"), Some("mock")));
    assert_eq!(retrieve(&all, "dead/dead-model").await.unwrap().status(), 200);
    assert_eq!(retrieve(&limited, "mock/mock-a").await.unwrap().status(), 404, "not the key's: as if absent");
    assert_eq!(retrieve(&all, "nope").await.unwrap().status(), 404);
    let resp =
        gw.chat(&limited, json!({"model": "mock-fail-500", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 403);
    let rid = request_id(&resp);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "permission_error");
    assert_eq!(gw.log_entry(&rid).await.error_kind.map(|k| k.as_str()), Some("permission"));
    assert_eq!(
        gw.chat(&limited, json!({"model": "mock-b", "messages": [{"role": "user", "content": "x"}]})).await.status(),
        200
    );
    gw.stop().await;
}

async fn bad_requests_get_openai_errors_and_a_log_row(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let client = reqwest::Client::new();
    let post = |body: &'static str, auth: Option<&str>| {
        let mut req = client.post(gw.url("/v1/chat/completions")).header("content-type", "application/json").body(body);
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        req.send()
    };
    let cases: Vec<(reqwest::Response, u16, &str, Option<&str>)> = vec![
        (post("{not json", Some(&key)).await.unwrap(), 400, "invalid_request_error", None),
        (
            post(r#"{"model":"default","messages":[],"stream":"yes"}"#, Some(&key)).await.unwrap(),
            400,
            "invalid_request_error",
            Some("stream"),
        ),
        (
            post(r#"{"model":"default","messages":[{"role":7}]}"#, Some(&key)).await.unwrap(),
            400,
            "invalid_request_error",
            Some("messages[0].role"),
        ),
        (
            post(r#"{"model":"default","messages":[]}"#, Some(&key)).await.unwrap(),
            400,
            "invalid_request_error",
            Some("messages"),
        ),
        (
            post(r#"{"model":"gpt-nope","messages":[{"role":"user","content":"x"}]}"#, Some(&key)).await.unwrap(),
            404,
            "invalid_request_error",
            Some("model"),
        ),
        (post("{}", None).await.unwrap(), 401, "authentication_error", None),
        (post("{}", Some("sk-llmp-not-a-real-key")).await.unwrap(), 401, "authentication_error", None),
    ];
    let mut ids = Vec::new();
    let mut unauthenticated = Vec::new();
    for (resp, status, kind, param) in cases {
        assert_eq!(resp.status(), status);
        if status == 401 {
            unauthenticated.push(request_id(&resp))
        } else {
            ids.push(request_id(&resp))
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert_eq!(body["error"]["param"].as_str(), param, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // PostgreSQL text cannot hold NUL; the row must still be written, and nothing may get stuck.
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "nul\u{0}model", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    ids.push(request_id(&resp));
    let huge = format!(r#"{{"model":"default","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(70_000));
    let resp = client.post(gw.url("/v1/chat/completions")).bearer_auth(&key).body(huge).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    ids.push(request_id(&resp));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let resp = client.post(gw.url("/v1/chat/completions")).bearer_auth(&key).body(deep).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    ids.push(request_id(&resp));
    for id in &ids {
        let row = gw.log_entry(id).await;
        assert!(row.status >= 400 && row.error_kind.is_some(), "{row:?}");
    }
    // A caller that never authenticated leaves no row (it is counted per address instead).
    let logged = gw.all_logs().await;
    assert!(unauthenticated.iter().all(|id| logged.iter().all(|e| &e.request_id != id)), "a 401 was logged");
    assert_eq!(gw.mock.state.requests().len(), 0, "nothing invalid reached the upstream");
    let unknown_path = client.get(gw.url("/v1/nope")).send().await.unwrap();
    assert_eq!(unknown_path.status(), 404);
    assert!(unknown_path.headers().contains_key("x-request-id"));
    let wrong_method = client.get(gw.url("/v1/chat/completions")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    gw.stop().await;
}

async fn revoked_and_expired_keys_stop_working(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (id, key) = gw.create_key(&[], None).await;
    let body = json!({"model": "default", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(gw.chat(&key, body.clone()).await.status(), 200);
    gw.store.revoke_key(&id).await.unwrap();
    // The README promises a second; a busy machine may take longer, and "never" must still fail.
    let refused = eventually(PATIENCE, async || {
        let resp = gw.chat(&key, body.clone()).await;
        match resp.status().as_u16() {
            401 => Ok(resp.json::<Value>().await.unwrap()),
            other => Err(format!("a revoked key still got {other}")),
        }
    })
    .await;
    let msg = refused["error"]["message"].as_str().unwrap();
    assert!(msg.contains("revoked"), "{msg}");
    let (_, expired) = gw.create_key(&[], Some(llm_proxy_core::UnixMillis::now() - Duration::from_secs(1))).await;
    let resp = gw.chat(&expired, body.clone()).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("expired"));
    assert_eq!(gw.chat(MASTER_KEY, body).await.status(), 200, "the master key is accepted on /v1");
    gw.stop().await;
}

async fn upstream_failures_map_to_honest_statuses(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
    let cases = [
        ("mock-fail-500", 502, "upstream_error", "upstream_status", Some("HTTP 500: mock failure 500")),
        ("mock-fail-429", 429, "rate_limit_error", "upstream_status", Some("mock failure 429")),
        (
            "mock-fail-400",
            400,
            "invalid_request_error",
            "upstream_status",
            Some("rejected the request: mock failure 400"),
        ),
        ("mock-fail-401", 502, "upstream_error", "upstream_status", Some("refused the gateway's credentials")),
        ("mock-delay-5000", 504, "upstream_error", "upstream_timeout", None),
        ("dead-model", 502, "upstream_error", "upstream_connect", None),
        ("mock-not-json", 502, "upstream_error", "upstream_protocol", None),
    ];
    for (model, status, kind, log_kind, message) in cases {
        let resp = gw.chat(&key, ask(model)).await;
        assert_eq!(resp.status(), status, "{model}");
        let rid = request_id(&resp);
        if model == "mock-fail-429" {
            assert_eq!(resp.headers()["retry-after"], "7");
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind, "{model}: {body}");
        if let Some(m) = message {
            assert!(body["error"]["message"].as_str().unwrap().contains(m), "{model}: {body}");
        }
        assert!(!body.to_string().contains("canary"), "the provider key leaked: {body}");
        let row = gw.log_entry(&rid).await;
        assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (status, Some(log_kind)), "{model}");
        assert_eq!(row.provider.as_deref(), Some(if model == "dead-model" { "dead" } else { "mock" }));
    }
    // A stream that fails before its first chunk still gets a real status code.
    let resp = gw
        .chat(&key, json!({"model": "mock-fail-500", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(resp.status(), 502);
    gw.stop().await;
}

async fn a_stream_cut_midway_ends_with_an_error_event(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw.chat(&key, json!({"model": "mock-slow-50-cut-after-2", "stream": true, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    let err: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(err["error"]["type"], "upstream_error");
    assert!(!events.contains(&"[DONE]".to_string()));
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (502, Some("stream_interrupted")));
    gw.stop().await;
}

async fn an_error_the_upstream_reports_mid_stream_reaches_the_client(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else { return };
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw
        .chat(
            &key,
            json!({"model": "mock-error-after-2", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    let err: Value = serde_json::from_str(&events[2]).unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("mock overloaded mid-stream"), "{err}");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (502, Some("stream_interrupted")));
    gw.stop().await;
}

async fn a_client_disconnect_cancels_the_upstream_call(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw
        .chat(
            &key,
            json!({"model": "mock-slow-200-chunks-50", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    let rid = request_id(&resp);
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    // Uncancelled, the stream would end after 10 s and count as completed, never as cancelled.
    eventually(PATIENCE, async || match gw.mock.state.streams_cancelled.load(std::sync::atomic::Ordering::SeqCst) {
        0 => Err("the upstream stream was still running after the client left"),
        _ => Ok(()),
    })
    .await;
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (499, Some("client_disconnect")));
    assert_eq!(gw.mock.state.streams_completed.load(std::sync::atomic::Ordering::SeqCst), 0);
    gw.stop().await;
}

async fn a_client_that_gives_up_on_a_non_streamed_answer_is_logged_at_once(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let err = impatient
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "mock-delay-5000", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    let row = eventually(PATIENCE, async || gw.all_logs().await.into_iter().next().ok_or("no log row")).await;
    // Dropped with the client (at 0.3 s), not answered when the upstream finally replied at 5 s.
    assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (499, Some("client_disconnect")));
    assert!(row.latency_ms < 4000, "{row:?}");
    gw.stop().await;
}

async fn every_request_leaves_exactly_one_row_and_shutdown_flushes(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let model = ["default", "mock-fail-500", "nope", "mock-b"][i % 4];
        let stream = i % 3 == 0;
        let resp = gw
            .chat(&key, json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]}))
            .await;
        ids.push(request_id(&resp));
        let _ = resp.bytes().await;
    }
    // A slow stream in flight when shutdown starts is allowed to finish.
    let resp = gw
        .chat(&key, json!({"model": "mock-slow-300", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    ids.push(request_id(&resp));
    // Its headers have arrived, so it is in flight now.
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    let rows = gw.stop().await;
    let streamed = reader.await.unwrap();
    assert!(streamed.contains("[DONE]"), "the in-flight stream was cut: {streamed}");
    let mut logged: Vec<String> = rows.iter().map(|r| r.request_id.clone()).collect();
    logged.sort();
    ids.sort();
    assert_eq!(logged, ids, "one row per request, no more, no less");
}

async fn requests_still_running_when_the_grace_period_ends_are_ended_and_logged(backend: Backend) {
    let Some(gw) = Gateway::start_with(backend, "shutdown_grace_secs: 1").await else { return };
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw
        .chat(
            &key,
            json!({"model": "mock-slow-200-chunks-50", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    let stream_id = request_id(&resp);
    let stream_reader = tokio::spawn(async move { resp.text().await.unwrap() });
    let url = gw.url("/v1/chat/completions");
    let plain_key = key.clone();
    let plain = tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(url)
            .bearer_auth(plain_key)
            .json(&json!({"model": "oai/mock-delay-15000", "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap();
        (request_id(&resp), resp.status().as_u16(), resp.text().await.unwrap())
    });
    // Shut down once the plain request has reached the upstream (which answers it after 15 s).
    eventually(PATIENCE, async || match gw.mock.state.requests_for("mock-delay-15000") {
        0 => Err("the plain request never reached the upstream"),
        _ => Ok(()),
    })
    .await;
    let started = Instant::now();
    let rows = gw.stop().await;
    // The grace period is 1 s (then 2 s to wind down and the log's flush); waiting for the
    // requests instead would take 15 s (plain) and 10 s (the stream). The bound sits well between,
    // so a busy machine cannot fail it.
    assert!(started.elapsed() < Duration::from_millis(8000), "shutdown took {:?}", started.elapsed());

    let streamed = stream_reader.await.unwrap();
    assert!(streamed.contains("shutting_down") && !streamed.contains("[DONE]"), "{streamed}");
    let (plain_id, status, body) = plain.await.unwrap();
    assert_eq!(status, 503, "{body}");
    for id in [stream_id, plain_id] {
        let row = rows.iter().find(|r| r.request_id == id).expect("the cut request was logged before exit");
        assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (503, Some("shutdown")));
    }
}

async fn admin_log_api_pages_newest_first(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let (_, key) = gw.create_key(&[], None).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let resp = gw.chat(&key, json!({"model": "default", "messages": [{"role": "user", "content": "x"}]})).await;
        ids.push(request_id(&resp));
    }
    gw.log_entry(ids.last().unwrap()).await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(gw.url("/api/logs")).send().await.unwrap().status(), 401);
    assert_eq!(client.get(gw.url("/api/logs")).bearer_auth(&key).send().await.unwrap().status(), 403);
    let mut seen = Vec::new();
    let mut url = gw.url("/api/logs?limit=2");
    loop {
        let page: Value = client.get(&url).bearer_auth(MASTER_KEY).send().await.unwrap().json().await.unwrap();
        for e in page["data"].as_array().unwrap() {
            // Every field of a row is present; cost stays empty until pricing exists.
            assert!(e.get("cost_usd").is_some_and(Value::is_null), "{e}");
            assert_eq!((e["status"].as_u64(), e["prompt_tokens"].as_u64()), (Some(200), Some(1)), "{e}");
            assert!(e["time"].as_str().unwrap().contains('T'));
            seen.push(e["request_id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(c) => url = gw.url(&format!("/api/logs?limit=2&cursor={c}")),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every row once");
    assert_eq!(
        client.get(gw.url("/api/logs?cursor=garbage")).bearer_auth(MASTER_KEY).send().await.unwrap().status(),
        400
    );
    gw.stop().await;
}

async fn health_never_needs_the_database_but_ready_does(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    assert_eq!(client.get(gw.url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(gw.url("/api/health")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(gw.url("/ready")).send().await.unwrap().status(), 200);
    if backend == Backend::Postgres {
        gw.drop_database_now().await;
        assert_eq!(client.get(gw.url("/ready")).send().await.unwrap().status(), 503);
        assert_eq!(client.get(gw.url("/health")).send().await.unwrap().status(), 200);
        // Requests keep flowing: authentication and logging do not wait for the database.
        let resp =
            gw.chat(MASTER_KEY, json!({"model": "default", "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!(resp.status(), 200);
        return; // the database is gone; nothing to flush into
    }
    gw.stop().await;
}

on_both_backends!(
    passthrough_keeps_every_field_and_rewrites_only_the_model,
    streams_end_with_done_and_hide_the_usage_chunk_unless_asked,
    stream_chunks_arrive_as_upstream_sends_them,
    a_quiet_stream_gets_keep_alive_comments,
    a_model_that_thinks_before_its_first_chunk_gets_headers_first,
    a_slow_reader_holds_the_upstream_back_instead_of_filling_memory,
    upstreams_that_reject_stream_options_still_stream_and_count_tokens,
    embeddings_pass_through_and_are_logged,
    models_list_only_what_the_key_may_use,
    bad_requests_get_openai_errors_and_a_log_row,
    revoked_and_expired_keys_stop_working,
    upstream_failures_map_to_honest_statuses,
    a_stream_cut_midway_ends_with_an_error_event,
    a_client_disconnect_cancels_the_upstream_call,
    an_error_the_upstream_reports_mid_stream_reaches_the_client,
    a_client_that_gives_up_on_a_non_streamed_answer_is_logged_at_once,
    every_request_leaves_exactly_one_row_and_shutdown_flushes,
    requests_still_running_when_the_grace_period_ends_are_ended_and_logged,
    admin_log_api_pages_newest_first,
    health_never_needs_the_database_but_ready_does,
    no_request_body_crashes_the_gateway_or_gets_a_500,
);

/// Whatever a client sends, the gateway answers in OpenAI's error shape (or serves it) and never
/// fails with a 500 or falls over. Bodies are random bytes and valid requests with fields replaced
/// by random JSON of any type; the seed is printed so a failure can be replayed.
async fn no_request_body_crashes_the_gateway_or_gets_a_500(backend: Backend) {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Some(gw) = Gateway::start(backend).await else { return };
    let (_, key) = gw.create_key(&[], None).await;
    let client = reqwest::Client::new();

    fn random_json(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
        match rng.gen_range(0..if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(rng.r#gen::<bool>()),
            2 => json!(rng.r#gen::<i64>()),
            3 => json!(rng.r#gen::<f64>() * 1e300),
            // Any char, NUL included: PostgreSQL refuses NUL in text, so this reaches the log writer.
            4 => json!((0..rng.gen_range(0..20)).map(|_| rng.r#gen::<char>()).collect::<String>()),
            5 => Value::Array((0..rng.gen_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
            _ => Value::Object(
                (0..rng.gen_range(0..4)).map(|i| (format!("k{i}"), random_json(rng, depth + 1))).collect(),
            ),
        }
    }

    let fields = ["model", "messages", "stream", "stream_options", "max_tokens", "temperature", "n", "tools", "input"];
    for case in 0..300 {
        let (path, body) = if case % 3 == 0 {
            let len = rng.gen_range(0..600);
            ("/v1/chat/completions", (0..len).map(|_| rng.r#gen::<u8>()).collect::<Vec<u8>>())
        } else {
            let mut req = json!({"model": "default", "messages": [{"role": "user", "content": "x"}], "input": "x"});
            for _ in 0..rng.gen_range(1..3) {
                let field = fields[rng.gen_range(0..fields.len())];
                req[field] = random_json(&mut rng, 0);
            }
            let path = if case % 2 == 0 { "/v1/chat/completions" } else { "/v1/embeddings" };
            (path, serde_json::to_vec(&req).unwrap())
        };
        let resp = client.post(gw.url(path)).bearer_auth(&key).body(body.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(status != 500, "case {case}: 500 for {}: {text}", String::from_utf8_lossy(&body));
        if status >= 400 {
            let err: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("case {case}: not JSON: {text}"));
            assert!(err["error"]["message"].is_string() && err["error"]["type"].is_string(), "case {case}: {text}");
        }
    }
    assert_eq!(client.get(gw.url("/health")).send().await.unwrap().status(), 200);
    let rows = gw.stop().await;
    assert_eq!(rows.len(), 300, "one log row per request, garbage included");
}
