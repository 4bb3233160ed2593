//! OpenAI's legacy Completions API through the real server onto every upstream protocol: passed
//! through to the OpenAI-protocol mock (its own `/v1/completions`), translated for the chat models
//! of Anthropic, Gemini and GLM; whole and streamed, what a chat model cannot do refused by name,
//! a stream failing midway, and random bodies. The SDK suite (tests/e2e) drives the same endpoint
//! with the official `openai` SDK.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, request_id};
use serde_json::{Value, json};

const UPSTREAMS: [&str; 4] = ["oai", "claude", "gem", "zhipu"];

async fn gateway() -> Gateway {
    Gateway::start(Backend::Sqlite).await.expect("SQLite always runs")
}

async fn complete(gw: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new().post(gw.url("/v1/completions")).bearer_auth(key).json(body).send().await.expect("answers")
}

/// The `data:` of each event, as text (`[DONE]` included).
fn data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| block.lines().filter_map(|l| l.strip_prefix("data: ")).collect::<String>())
        .collect()
}

fn chunks(body: &str) -> Vec<Value> {
    data(body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("every chunk is JSON"))
        .collect()
}

/// The last request the mock received for `model` (the upstream model id).
fn upstream_body(gw: &Gateway, model: &str) -> Value {
    let seen = gw.mock.state.requests();
    seen.into_iter().rfind(|r| r.body["model"] == model).expect("the upstream was called").body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_whole_and_streamed_from_every_protocol() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for upstream in UPSTREAMS {
        let model = format!("{upstream}/mock-chunks-3");
        let resp = complete(&gw, &key, &json!({"model": model, "prompt": "Say hello", "max_tokens": 20})).await;
        assert_eq!(resp.status(), 200, "{upstream}");
        let rid = request_id(&resp);
        let c: Value = resp.json().await.unwrap();
        assert_eq!(c["object"], "text_completion", "{upstream}: {c}");
        assert!(c["id"].as_str().unwrap().starts_with("cmpl-"), "{c}");
        assert_eq!(c["choices"][0]["text"], "echo: Say hello", "{upstream}: {c}");
        assert_eq!((c["choices"][0]["index"].as_u64(), &c["choices"][0]["logprobs"]), (Some(0), &Value::Null));
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        if upstream != "oai" {
            assert_eq!(c["model"], model.as_str(), "a translated answer names the model as the client did");
        }
        let usage = &c["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0 && usage["completion_tokens"].as_u64().unwrap() > 0);
        let row = gw.log_entry(&rid).await;
        assert_eq!((row.endpoint.as_str(), row.status), ("completions", 200));
        assert_eq!(row.prompt_tokens, usage["prompt_tokens"].as_u64());

        let streamed =
            json!({"model": model, "prompt": "Say hello", "stream": true, "stream_options": {"include_usage": true}});
        let body = complete(&gw, &key, &streamed).await.text().await.unwrap();
        assert_eq!(data(&body).last().map(String::as_str), Some("[DONE]"), "{upstream}: {body}");
        let cs = chunks(&body);
        let text: String = cs.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
        assert_eq!(text, "Hello w1 w2", "{upstream}: {body}");
        let finish: Vec<&str> = cs.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
        assert_eq!(finish, ["stop"], "{upstream}");
        let last = cs.last().unwrap();
        assert_eq!(
            (&last["choices"], last["usage"]["completion_tokens"].as_u64()),
            (&json!([]), Some(3)),
            "{upstream}"
        );
        assert!(cs.iter().all(|c| c["object"] == "text_completion"), "{upstream}: {body}");

        // Not asked for: no usage chunk, though the gateway still counted the tokens.
        let resp = complete(&gw, &key, &json!({"model": model, "prompt": "Say hello", "stream": true})).await;
        let rid = request_id(&resp);
        let body = resp.text().await.unwrap();
        assert!(chunks(&body).iter().all(|c| c.get("usage").is_none_or(Value::is_null)), "{upstream}: {body}");
        assert_eq!(gw.log_entry(&rid).await.completion_tokens, Some(3), "{upstream}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_protocol_upstream_gets_the_body_as_it_came() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let sent = json!({"model": "oai/mock-a", "prompt": ["Say this", "is a test"], "max_tokens": 7, "temperature": 0.5,
        "n": 2, "best_of": 3, "echo": true, "logprobs": 2, "suffix": ".", "stop": ["\n"], "seed": 7, "user": "u1",
        "logit_bias": {"50256": -100}, "presence_penalty": 0.1, "frequency_penalty": 0.2});
    let resp = complete(&gw, &key, &sent).await;
    assert_eq!(resp.status(), 200);
    let c: Value = resp.json().await.unwrap();
    assert_eq!(c["choices"].as_array().unwrap().len(), 4, "two choices for each of two prompts: {c}");
    assert_eq!(c["choices"][3]["text"], "is a testecho: is a test");
    let mut want = sent.clone();
    want["model"] = json!("mock-a");
    assert_eq!(upstream_body(&gw, "mock-a"), want, "passthrough: only the model is rewritten");

    // A stream asks the upstream for its usage; the client that did not ask sees none.
    let streamed = json!({"model": "oai/mock-b", "prompt": "x", "stream": true});
    let body = complete(&gw, &key, &streamed).await.text().await.unwrap();
    assert_eq!(upstream_body(&gw, "mock-b")["stream_options"], json!({"include_usage": true}));
    assert!(chunks(&body).iter().all(|c| c.get("usage").is_none()), "{body}");

    // What the upstream refuses, the client hears from it.
    let resp = complete(&gw, &key, &json!({"model": "oai/mock-a", "prompt": "x", "top_k": 40})).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("top_k"), "the field went upstream: {err}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_model_gets_the_prompt_as_one_user_message() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let resp =
        complete(&gw, &key, &json!({"model": "claude/mock-echo", "prompt": ["Once upon a time"], "stop": "\n"})).await;
    let c: Value = resp.json().await.unwrap();
    let summary: Value = serde_json::from_str(c["choices"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(summary["messages"], 1);
    assert_eq!(summary["last_user_text"], "Once upon a time");
    assert_eq!(summary["max_tokens"], 16, "OpenAI's default, not the chat model's");
    let sent = upstream_body(&gw, "mock-echo");
    assert_eq!(sent["stop_sequences"], json!(["\n"]), "{sent}");

    // Thinking is not part of a completion's text.
    let c: Value =
        complete(&gw, &key, &json!({"model": "claude/mock-reason", "prompt": "x"})).await.json().await.unwrap();
    assert_eq!(c["choices"][0]["text"], "echo: x");
    let body = complete(&gw, &key, &json!({"model": "gem/mock-reason-max-tokens", "prompt": "x", "stream": true}))
        .await
        .text()
        .await
        .unwrap();
    let text: String = chunks(&body).iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "Hello w1 w2");
    assert!(body.contains("\"finish_reason\":\"length\""), "{body}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_usage_is_counted_from_the_prompt() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for upstream in ["oai", "claude"] {
        let prompt = "hello world, hello world";
        let body = json!({"model": format!("{upstream}/mock-no-usage"), "prompt": prompt, "stream": true});
        let resp = complete(&gw, &key, &body).await;
        let rid = request_id(&resp);
        resp.text().await.unwrap();
        let row = gw.log_entry(&rid).await;
        assert!(row.cost_estimated, "{upstream}");
        let counted = llm_proxy_core::token_estimate::count_text(prompt);
        assert_eq!(row.prompt_tokens, Some(counted), "{upstream}: the prompt as o200k_base counts it, no chat framing");
        // One per chunk that went out (a passthrough's finish chunk counts too).
        assert!(row.completion_tokens.is_some_and(|n| n >= 3), "{upstream}: {:?}", row.completion_tokens);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_chat_model_cannot_do_is_a_clear_400() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let cases = [
        ("n", json!(2)),
        ("best_of", json!(2)),
        ("echo", json!(true)),
        ("suffix", json!(" The end.")),
        ("logprobs", json!(1)),
        ("prompt", json!(["one", "two"])),
        ("prompt", json!([1212, 318])),
        ("prompt", json!(7)),
        ("max_tokens", json!(100_000_000)),
    ];
    let mut ids = Vec::new();
    for upstream in ["claude", "gem", "zhipu"] {
        for (field, value) in &cases {
            let mut body = json!({"model": format!("{upstream}/mock-a"), "prompt": "x"});
            body[field] = value.clone();
            let resp = complete(&gw, &key, &body).await;
            assert_eq!(resp.status(), 400, "{body}");
            ids.push(request_id(&resp));
            let err: Value = resp.json().await.unwrap();
            assert_eq!(err["error"]["param"], *field, "{body}: {err}");
            assert_eq!(err["error"]["type"], "invalid_request_error");
        }
    }
    let missing = complete(&gw, &key, &json!({"model": "claude/mock-a"})).await;
    assert_eq!(missing.status(), 400);
    assert!(missing.text().await.unwrap().contains("prompt"));
    let rows = gw.stop().await;
    for id in ids {
        let row = rows.iter().find(|r| r.request_id == id).expect("one log row per refusal");
        assert_eq!((row.endpoint.as_str(), row.status), ("completions", 400));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_failing_midway_ends_in_an_error_event() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for upstream in ["oai", "claude"] {
        let body = json!({"model": format!("{upstream}/mock-error-after-2"), "prompt": "x", "stream": true});
        let resp = complete(&gw, &key, &body).await;
        assert_eq!(resp.status(), 200);
        let rid = request_id(&resp);
        let events = data(&resp.text().await.unwrap());
        let last: Value = serde_json::from_str(events.last().unwrap()).expect("the error event is JSON");
        assert!(last["error"]["message"].is_string(), "{upstream}: {events:?}");
        assert!(!events.iter().any(|e| e == "[DONE]"), "a failed stream does not end cleanly");
        assert!(gw.log_entry(&rid).await.status >= 500);
    }
    gw.stop().await;
}

/// Whatever a client sends to `/v1/completions`, the answer is a success or an error in OpenAI's
/// shape — never a 500 — and each request leaves one log row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_on_v1_completions_crashes_the_gateway_or_gets_a_500() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;

    fn random_json(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
        match rng.gen_range(0..if depth > 3 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(rng.r#gen::<bool>()),
            2 => json!(rng.gen_range(-3i64..70_000)),
            3 => json!((0..rng.gen_range(0..12)).map(|_| rng.r#gen::<char>()).collect::<String>()),
            4 => json!(rng.r#gen::<f64>() * 1e300),
            5 => Value::Array((0..rng.gen_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
            // Plausible token prompts, so translation gets past the type check.
            6 => json!((0..rng.gen_range(0..4)).map(|_| rng.gen_range(0u32..100_000)).collect::<Vec<_>>()),
            _ => Value::Object(
                (0..rng.gen_range(0..4)).map(|i| (format!("k{i}"), random_json(rng, depth + 1))).collect(),
            ),
        }
    }
    let fields = [
        "prompt",
        "max_tokens",
        "n",
        "best_of",
        "echo",
        "suffix",
        "logprobs",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "logit_bias",
        "seed",
        "user",
    ];
    let models = ["oai/mock-a", "gem/mock-a", "claude/mock-a", "zhipu/mock-a"];
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for case in 0..200 {
        let body = if case % 5 == 0 {
            (0..rng.gen_range(0..300)).map(|_| rng.r#gen::<u8>()).collect::<Vec<u8>>()
        } else {
            let mut req = json!({"model": models[case % models.len()], "prompt": "x"});
            for _ in 0..rng.gen_range(1..3) {
                req[fields[rng.gen_range(0..fields.len())]] = random_json(&mut rng, 0);
            }
            serde_json::to_vec(&req).unwrap()
        };
        let resp = client.post(gw.url("/v1/completions")).bearer_auth(&key).body(body.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        ids.push(request_id(&resp));
        let text = resp.text().await.unwrap();
        assert!(status != 500, "case {case}: 500 for {}: {text}", String::from_utf8_lossy(&body));
        if status >= 400 {
            let err: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("case {case}: not JSON: {text}"));
            assert!(err["error"]["message"].is_string(), "case {case}: {text}");
        }
    }
    let rows = gw.stop().await;
    for id in ids {
        assert_eq!(rows.iter().filter(|r| r.request_id == id).count(), 1, "one log row for {id}");
    }
}
