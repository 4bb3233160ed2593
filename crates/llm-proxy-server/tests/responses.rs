//! The OpenAI Responses API through the real server onto every upstream protocol: answers whole
//! and streamed, function calls across turns with `previous_response_id` (on one upstream and
//! across them), stored answers readable by their key only, and random bodies. The SDK suite
//! (tests/e2e) drives the same endpoints with the official `openai` SDK and Codex CLI.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, request_id};
use serde_json::{Value, json};

const UPSTREAMS: [&str; 4] = ["oai", "claude", "gem", "zhipu"];
const TOOL_ARGUMENTS: &str = r#"{"location": "Paris, France", "unit": "celsius"}"#;

async fn gateway() -> Gateway {
    Gateway::start(Backend::Sqlite).await.expect("SQLite always runs")
}

async fn create(gw: &Gateway, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new().post(gw.url("/v1/responses")).bearer_auth(key).json(&body).send().await.expect("answers")
}

async fn get(gw: &Gateway, key: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new().get(gw.url(path)).bearer_auth(key).send().await.expect("answers")
}

/// (event name, data) of each SSE event.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let data: Value = serde_json::from_str(&data).expect("every event's data is JSON");
            (name, data)
        })
        .collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_whole_and_streamed_from_every_protocol() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for upstream in UPSTREAMS {
        let model = format!("{upstream}/mock-chunks-3");
        let resp = create(&gw, &key, json!({"model": model, "input": "Say hello", "instructions": "Be brief."})).await;
        assert_eq!(resp.status(), 200, "{upstream}");
        let rid = request_id(&resp);
        let r: Value = resp.json().await.unwrap();
        assert_eq!((r["object"].as_str(), r["status"].as_str()), (Some("response"), Some("completed")), "{r}");
        assert!(r["id"].as_str().unwrap().starts_with("resp_"), "{r}");
        assert_eq!(r["model"], model.as_str(), "the model as the client named it");
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["output"][0]["type"], "message");
        assert_eq!(r["output"][0]["content"][0]["text"], "echo: Say hello", "{upstream}: {r}");
        assert!(r["usage"]["input_tokens"].as_u64().unwrap() > 0 && r["usage"]["output_tokens"].as_u64().unwrap() > 0);
        let row = gw.log_entry(&rid).await;
        assert_eq!((row.endpoint.as_str(), row.status), ("responses", 200));
        assert_eq!(row.prompt_tokens, r["usage"]["input_tokens"].as_u64());

        let resp = create(&gw, &key, json!({"model": model, "input": "Say hello", "stream": true})).await;
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap();
        let evs = events(&body);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..2], ["response.created", "response.in_progress"], "{upstream}: {body}");
        assert_eq!(names.last(), Some(&"response.completed"), "{upstream}: {body}");
        assert!(!body.contains("[DONE]"), "a Responses stream ends with its own event");
        for (i, (_, data)) in evs.iter().enumerate() {
            assert_eq!(data["sequence_number"], i, "{upstream}: numbered from 0 without gaps: {body}");
        }
        let text: String = evs
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Hello w1 w2");
        let done = &evs.last().unwrap().1["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello w1 w2");
        assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_call_continues_with_previous_response_id_on_another_upstream() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let first = create(
        &gw,
        &key,
        json!({"model": "claude/mock-tool", "input": "Weather in Paris?", "tools": weather_tool(), "stream": true}),
    )
    .await;
    let evs = events(&first.text().await.unwrap());
    let args: String = evs
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(args, TOOL_ARGUMENTS, "streamed arguments arrive byte for byte");
    let response = &evs.last().unwrap().1["response"];
    let call = &response["output"][0];
    assert_eq!((call["type"].as_str(), call["name"].as_str()), (Some("function_call"), Some("get_weather")));
    assert_eq!(call["arguments"], TOOL_ARGUMENTS);
    let (id, call_id) = (response["id"].as_str().unwrap(), call["call_id"].as_str().unwrap());

    // The next turn names only the result: the gateway supplies the conversation, to Gemini now.
    let second = create(
        &gw,
        &key,
        json!({"model": "gem/mock-echo", "previous_response_id": id, "tools": weather_tool(),
               "input": [{"type": "function_call_output", "call_id": call_id, "output": "15 degrees"}]}),
    )
    .await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["previous_response_id"], id);
    let summary: Value = serde_json::from_str(second["output"][0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(summary["tool_results"], json!(["15 degrees"]), "{summary}");
    assert_eq!(summary["messages"], 3, "the first turn reached Gemini too: user, model's call, result: {summary}");

    // And a third turn on top of the second, back on an OpenAI-protocol upstream.
    let third = create(
        &gw,
        &key,
        json!({"model": "oai/mock-echo", "previous_response_id": second["id"], "input": "Thanks", "instructions": "Be kind."}),
    )
    .await;
    let third: Value = third.json().await.unwrap();
    let summary: Value = serde_json::from_str(third["output"][0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!((summary["last_user_text"].as_str(), summary["system"].as_str()), (Some("Thanks"), Some("Be kind.")));
    assert_eq!(summary["tool_results"], json!(["15 degrees"]));

    let items =
        get(&gw, &key, &format!("/v1/responses/{}/input_items?order=asc&limit=100", third["id"].as_str().unwrap()))
            .await
            .json::<Value>()
            .await
            .unwrap();
    let kinds: Vec<&str> =
        items["data"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap_or("message")).collect();
    assert_eq!(
        kinds,
        ["message", "function_call", "function_call_output", "message", "message"],
        "every turn's input and output, oldest first: {items}"
    );
    assert_eq!(items["has_more"], false);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_responses_belong_to_their_key() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let (_, other) = gw.create_key(&[], None).await;
    let made: Value =
        create(&gw, &key, json!({"model": "claude/mock-text", "input": "hi"})).await.json().await.unwrap();
    let id = made["id"].as_str().unwrap();
    let path = format!("/v1/responses/{id}");

    let mine = get(&gw, &key, &path).await;
    assert_eq!(mine.status(), 200);
    assert_eq!(mine.json::<Value>().await.unwrap(), made, "the object as the client received it");
    for resp in [get(&gw, &other, &path).await, get(&gw, &other, &format!("{path}/input_items")).await] {
        assert_eq!(resp.status(), 404, "another key's response does not exist for it");
        let err: Value = resp.json().await.unwrap();
        assert!(err["error"]["message"].as_str().unwrap().contains(id), "{err}");
    }
    let cont =
        create(&gw, &other, json!({"model": "claude/mock-text", "input": "more", "previous_response_id": id})).await;
    assert_eq!(cont.status(), 404, "nor can it continue it");
    assert_eq!(cont.json::<Value>().await.unwrap()["error"]["param"], "previous_response_id");
    let client = reqwest::Client::new();
    let del = client.delete(gw.url(&path)).bearer_auth(&other).send().await.unwrap();
    assert_eq!(del.status(), 404);
    let del = client.delete(gw.url(&path)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(del.json::<Value>().await.unwrap(), json!({"id": id, "object": "response", "deleted": true}));
    assert_eq!(get(&gw, &key, &path).await.status(), 404, "deleted");

    // `store: false`: nothing is kept.
    let unkept: Value = create(&gw, &key, json!({"model": "claude/mock-text", "input": "hi", "store": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unkept["store"], false);
    assert_eq!(get(&gw, &key, &format!("/v1/responses/{}", unkept["id"].as_str().unwrap())).await.status(), 404);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_failing_midway_ends_in_response_failed() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for upstream in ["oai", "claude"] {
        let resp =
            create(&gw, &key, json!({"model": format!("{upstream}/mock-error-after-2"), "input": "x", "stream": true}))
                .await;
        assert_eq!(resp.status(), 200);
        let rid = request_id(&resp);
        let evs = events(&resp.text().await.unwrap());
        let (name, data) = evs.last().unwrap();
        assert_eq!(name, "response.failed", "{upstream}: {evs:?}");
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(data["sequence_number"], evs.len() - 1, "numbered after the events sent");
        assert!(data["response"]["error"]["message"].is_string());
        assert!(gw.log_entry(&rid).await.status >= 500);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_400s() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let cases = [
        (json!({"model": "claude/mock-text"}), "input"),
        (json!({"model": "claude/mock-text", "input": [{"type": "web_search_call", "id": "ws_1"}]}), "input[0]"),
        (
            json!({"model": "claude/mock-text", "input": "x", "tool_choice": {"type": "file_search"}}),
            "tool_choice.type",
        ),
        (
            json!({"model": "claude/mock-text", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
            "input[0]",
        ),
        (json!({"model": "claude/mock-text", "input": "x", "max_output_tokens": 100_000_000}), "max_output_tokens"),
    ];
    for (body, param) in cases {
        let resp = create(&gw, &key, body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert!(err["error"]["param"].as_str().unwrap_or_default().starts_with(param), "{body}: {err}");
    }
    gw.stop().await;
}

/// Whatever a client sends to `/v1/responses`, the answer is a success or an error in OpenAI's
/// shape — never a 500 — and each request leaves one log row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_on_v1_responses_crashes_the_gateway_or_gets_a_500() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;

    const ITEM_TYPES: [&str; 6] =
        ["message", "function_call", "function_call_output", "reasoning", "item_reference", "input_text"];
    fn random_json(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
        match rng.gen_range(0..if depth > 3 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(rng.r#gen::<bool>()),
            2 => json!(rng.r#gen::<i64>()),
            3 => json!((0..rng.gen_range(0..12)).map(|_| rng.r#gen::<char>()).collect::<String>()),
            4 => json!(rng.r#gen::<f64>() * 1e300),
            5 => Value::Array((0..rng.gen_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
            // Plausible items, so translation gets past the first type check.
            6 => json!([{"type": ITEM_TYPES[rng.gen_range(0..ITEM_TYPES.len())], "role": random_json(rng, depth + 1),
                         "content": random_json(rng, depth + 1), "call_id": random_json(rng, depth + 1),
                         "output": random_json(rng, depth + 1), "arguments": random_json(rng, depth + 1),
                         "name": random_json(rng, depth + 1), "summary": random_json(rng, depth + 1)}]),
            _ => Value::Object(
                (0..rng.gen_range(0..4)).map(|i| (format!("k{i}"), random_json(rng, depth + 1))).collect(),
            ),
        }
    }
    let fields = [
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "previous_response_id",
        "stream",
        "store",
        "metadata",
        "temperature",
    ];
    let models = ["oai/mock-a", "gem/mock-a", "claude/mock-a", "zhipu/mock-a"];
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for case in 0..200 {
        let body = if case % 5 == 0 {
            (0..rng.gen_range(0..300)).map(|_| rng.r#gen::<u8>()).collect::<Vec<u8>>()
        } else {
            let mut req = json!({"model": models[case % models.len()], "input": "x"});
            for _ in 0..rng.gen_range(1..3) {
                req[fields[rng.gen_range(0..fields.len())]] = random_json(&mut rng, 0);
            }
            serde_json::to_vec(&req).unwrap()
        };
        let resp = client.post(gw.url("/v1/responses")).bearer_auth(&key).body(body.clone()).send().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_serves_responses_gets_them_as_they_came() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let sent = json!({"model": "oair/mock-text", "input": "hi", "instructions": "Be brief.",
                      "prompt_cache_key": "pc-1", "include": ["reasoning.encrypted_content"], "x_future": {"a": [1]}});
    let resp = create(&gw, &key, sent.clone()).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let first: Value = resp.json().await.unwrap();
    let seen = gw.mock.state.requests();
    let upstream = seen.iter().rfind(|r| r.path == "/v1/responses").expect("the upstream's /v1/responses was called");
    let mut want = sent.clone();
    want["model"] = json!("mock-text");
    assert_eq!(upstream.body, want, "passthrough: only the model is rewritten");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.endpoint.as_str(), row.status), ("responses", 200));
    assert_eq!(row.prompt_tokens, first["usage"]["input_tokens"].as_u64(), "usage read off the upstream's answer");

    // The upstream stored turn 1 itself: a follow-up there names it, as the client did.
    let id1 = first["id"].as_str().unwrap();
    let second: Value =
        create(&gw, &key, json!({"model": "oair/mock-echo", "previous_response_id": id1, "input": "more"}))
            .await
            .json()
            .await
            .unwrap();
    let upstream = gw.mock.state.requests().into_iter().rfind(|r| r.path == "/v1/responses").unwrap();
    assert_eq!(upstream.body["previous_response_id"], id1);
    assert_eq!(upstream.body["input"], "more", "only the new input: the upstream has the rest");

    // Elsewhere, the conversation goes as items...
    let id2 = second["id"].as_str().unwrap();
    let third: Value =
        create(&gw, &key, json!({"model": "claude/mock-echo", "previous_response_id": id2, "input": "again"}))
            .await
            .json()
            .await
            .unwrap();
    let summary: Value = serde_json::from_str(third["output"][0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!((summary["messages"].as_u64(), summary["system"].as_str()), (Some(5), None), "{summary}");

    // ...and back on the Responses upstream, which never saw turn 3, as items too, without the id.
    let id3 = third["id"].as_str().unwrap();
    let resp =
        create(&gw, &key, json!({"model": "oair/mock-text", "previous_response_id": id3, "input": "last"})).await;
    assert_eq!(resp.status(), 200);
    let upstream = gw.mock.state.requests().into_iter().rfind(|r| r.path == "/v1/responses").unwrap();
    assert!(upstream.body.get("previous_response_id").is_none(), "{}", upstream.body);
    let items = upstream.body["input"].as_array().expect("the conversation as items");
    assert_eq!(items.len(), 7, "three turns of input and output, then the new input: {}", upstream.body);

    // Streams pass through event for event; a kept stream can be read back.
    let resp = create(&gw, &key, json!({"model": "oair/mock-chunks-3", "input": "hi", "stream": true})).await;
    let evs = events(&resp.text().await.unwrap());
    assert_eq!(evs.last().unwrap().0, "response.completed");
    let streamed_id = evs.last().unwrap().1["response"]["id"].as_str().unwrap().to_string();
    assert_eq!(get(&gw, &key, &format!("/v1/responses/{streamed_id}")).await.status(), 200);
    gw.stop().await;
}
