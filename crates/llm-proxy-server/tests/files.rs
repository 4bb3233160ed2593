//! OpenAI's Files and Batches APIs through the real server onto the mock's own: uploads streamed
//! through, each file and batch visible to the key that made it only (another key gets 404, and
//! an empty list), a batch run at the provider holding its input file with its output file the
//! same key's, keys whose spending the gateway must bound refused a batch, the provider chosen by
//! `x-llm-proxy-provider` and refused by name when it cannot serve, one log row per call. The SDK
//! suite (tests/e2e) drives the same endpoints with the official `openai` SDK.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, request_id};
use llm_proxy_core::virtual_key::KeyLimits;
use serde_json::{Value, json};

const BOUNDARY: &str = "----llmproxyfiles7MA4YWxkTrZu0gW";
const MULTIPART: &str = "multipart/form-data; boundary=----llmproxyfiles7MA4YWxkTrZu0gW";

/// A gateway that takes bodies of 8 MiB.
async fn gateway() -> Gateway {
    Gateway::start_with(Backend::Sqlite, "max_body_bytes: 8388608").await.expect("SQLite always runs")
}

/// An upload of `content` as `filename` with `purpose`, the file part first (as the Node SDK
/// sends it).
fn upload_form(filename: &str, content: &[u8], purpose: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(content);
    out.extend_from_slice(
        format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n--{BOUNDARY}--\r\n")
            .as_bytes(),
    );
    out
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Uploads to provider `oai`, streamed in 64 KiB pieces without a `content-length`.
async fn upload(gw: &Gateway, key: &str, filename: &str, content: &[u8], purpose: &str) -> reqwest::Response {
    let body = upload_form(filename, content, purpose);
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    client()
        .post(gw.url("/v1/files"))
        .bearer_auth(key)
        .header("content-type", MULTIPART)
        .header("x-llm-proxy-provider", "oai")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(pieces)))
        .send()
        .await
        .expect("answers")
}

async fn get(gw: &Gateway, key: &str, path: &str) -> reqwest::Response {
    client().get(gw.url(path)).bearer_auth(key).send().await.expect("answers")
}

async fn delete(gw: &Gateway, key: &str, path: &str) -> reqwest::Response {
    client().delete(gw.url(path)).bearer_auth(key).send().await.expect("answers")
}

async fn post(gw: &Gateway, key: &str, path: &str, body: &Value) -> reqwest::Response {
    client().post(gw.url(path)).bearer_auth(key).json(body).send().await.expect("answers")
}

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON body");
    assert_eq!(got, status, "{body}");
    body
}

/// Two chat requests in the batch input format.
fn batch_input() -> Vec<u8> {
    let line = |id: &str, text: &str| {
        json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}})
        .to_string()
    };
    format!("{}\n{}\n", line("r1", "hello one"), line("r2", "hello two")).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_up_streamed_and_is_its_keys_alone() {
    let gw = gateway().await;
    let (owner_id, key) = gw.create_key(&[], None).await;
    let (_, other) = gw.create_key(&[], None).await;

    // Two megabytes, streamed both ways.
    let content: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let resp = upload(&gw, &key, "data.bin", &content, "assistants").await;
    assert_eq!(resp.headers()["x-llm-proxy-provider"], "oai");
    let rid = request_id(&resp);
    let file = json_of(resp, 200).await;
    let id = file["id"].as_str().expect("an id").to_string();
    assert_eq!((file["object"].as_str(), file["bytes"].as_u64()), (Some("file"), Some(content.len() as u64)));
    assert_eq!(file["purpose"], "assistants");
    let seen = gw.mock.state.requests().into_iter().rfind(|r| r.path == "/v1/files").expect("uploaded").body;
    assert_eq!(seen["bytes"], content.len(), "the whole file reached the provider");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.endpoint.as_str(), row.status, row.provider.as_deref()), ("files.create", 200, Some("oai")));
    assert_eq!(row.key_id.as_deref(), Some(owner_id.as_str()));

    let listed = json_of(get(&gw, &key, "/v1/files").await, 200).await;
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert_eq!(listed["has_more"], false);
    let retrieved = json_of(get(&gw, &key, &format!("/v1/files/{id}")).await, 200).await;
    assert_eq!(retrieved["filename"], "data.bin");
    let resp = get(&gw, &key, &format!("/v1/files/{id}/content")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("content").as_ref(), content.as_slice(), "the bytes come back unchanged");

    // To another key the file does not exist.
    for path in [format!("/v1/files/{id}"), format!("/v1/files/{id}/content")] {
        let err = json_of(get(&gw, &other, &path).await, 404).await;
        assert_eq!(err["error"]["message"], format!("No such File object: {id}"));
    }
    assert_eq!(delete(&gw, &other, &format!("/v1/files/{id}")).await.status(), 404);
    let theirs = json_of(get(&gw, &other, "/v1/files").await, 200).await;
    assert_eq!(theirs["data"], json!([]));

    let deleted = json_of(delete(&gw, &key, &format!("/v1/files/{id}")).await, 200).await;
    assert_eq!(deleted, json!({"id": id, "object": "file", "deleted": true}));
    assert_eq!(get(&gw, &key, &format!("/v1/files/{id}")).await.status(), 404);
    assert_eq!(json_of(get(&gw, &key, "/v1/files").await, 200).await["data"], json!([]));

    // An id that could leave its path is simply unknown.
    assert_eq!(get(&gw, &key, "/v1/files/..%2Fmodels").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_where_its_file_is_and_its_output_is_the_same_keys() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let (_, other) = gw.create_key(&[], None).await;
    let input = json_of(upload(&gw, &key, "input.jsonl", &batch_input(), "batch").await, 200).await;
    let input_id = input["id"].as_str().expect("an id");

    let create = json!({"input_file_id": input_id, "endpoint": "/v1/chat/completions", "completion_window": "24h",
                        "metadata": {"job": "nightly"}});
    // Another key cannot run a batch on this key's file.
    let err = json_of(post(&gw, &other, "/v1/batches", &create).await, 404).await;
    assert_eq!(err["error"]["param"], "input_file_id");

    let resp = post(&gw, &key, "/v1/batches", &create).await;
    let rid = request_id(&resp);
    let batch = json_of(resp, 200).await;
    let batch_id = batch["id"].as_str().expect("an id").to_string();
    assert_eq!((batch["status"].as_str(), batch["metadata"]["job"].as_str()), (Some("validating"), Some("nightly")));
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.endpoint.as_str(), row.status, row.provider.as_deref()), ("batches.create", 200, Some("oai")));

    let done = json_of(get(&gw, &key, &format!("/v1/batches/{batch_id}")).await, 200).await;
    assert_eq!(done["status"], "completed");
    let output = done["output_file_id"].as_str().expect("an output file");
    let resp = get(&gw, &key, &format!("/v1/files/{output}/content")).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("content");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["custom_id"], "r1");
    assert_eq!(lines[1]["response"]["body"]["choices"][0]["message"]["content"], "batch: hello two");

    // Neither the batch nor its output exists for another key.
    assert_eq!(get(&gw, &other, &format!("/v1/batches/{batch_id}")).await.status(), 404);
    assert_eq!(get(&gw, &other, &format!("/v1/files/{output}/content")).await.status(), 404);
    assert_eq!(json_of(get(&gw, &other, "/v1/batches").await, 200).await["data"], json!([]));

    let listed = json_of(get(&gw, &key, "/v1/batches").await, 200).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["status"], "completed", "a list shows the batch as it is now");

    // The provider's own refusal passes through: a finished batch cannot be cancelled.
    let refused = json_of(post(&gw, &key, &format!("/v1/batches/{batch_id}/cancel"), &json!({})).await, 409).await;
    assert!(refused["error"]["message"].as_str().expect("a message").contains("completed"), "{refused}");
    let second = json_of(post(&gw, &key, "/v1/batches", &create).await, 200).await;
    let second_id = second["id"].as_str().expect("an id");
    let cancelled = json_of(post(&gw, &key, &format!("/v1/batches/{second_id}/cancel"), &json!({})).await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");

    let page = json_of(get(&gw, &key, "/v1/batches?limit=1").await, 200).await;
    assert_eq!((page["data"][0]["id"].as_str(), page["has_more"].as_bool()), (Some(second_id), Some(true)));
    let next = json_of(get(&gw, &key, &format!("/v1/batches?limit=1&after={second_id}")).await, 200).await;
    assert_eq!((next["data"][0]["id"].as_str(), next["has_more"].as_bool()), (Some(batch_id.as_str()), Some(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_spending_the_gateway_bounds_cannot_start_a_batch() {
    let gw = gateway().await;
    let (_, restricted) = gw.create_key(&["oai/gpt-4o-mini"], None).await;
    let budget = KeyLimits { budget_daily: Some(5.0), ..KeyLimits::default() };
    let (_, budgeted) = gw.create_key_with(&[], None, budget, None).await;
    let counted = KeyLimits { rpm: Some(100), ..KeyLimits::default() };
    let (_, counted) = gw.create_key_with(&[], None, counted, None).await;

    for (key, says) in [(&restricted, "restricted to some models"), (&budgeted, "daily budget")] {
        let input = json_of(upload(&gw, key, "input.jsonl", &batch_input(), "batch").await, 200).await;
        let create =
            json!({"input_file_id": input["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
        let err = json_of(post(&gw, key, "/v1/batches", &create).await, 403).await;
        assert!(err["error"]["message"].as_str().expect("a message").contains(says), "{err}");
    }
    // A limit on request counts alone bounds a batch as well as any call.
    let input = json_of(upload(&gw, &counted, "input.jsonl", &batch_input(), "batch").await, 200).await;
    let create = json!({"input_file_id": input["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    json_of(post(&gw, &counted, "/v1/batches", &create).await, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_counts_against_the_keys_request_limit() {
    let gw = gateway().await;
    let limits = KeyLimits { rpm: Some(2), ..KeyLimits::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    let file = json_of(upload(&gw, &key, "a.txt", b"abc", "assistants").await, 200).await;
    let id = file["id"].as_str().expect("an id");
    json_of(get(&gw, &key, &format!("/v1/files/{id}")).await, 200).await;
    let resp = get(&gw, &key, &format!("/v1/files/{id}/content")).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_is_named_or_refused_by_name() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let send = |provider: Option<&'static str>| {
        let mut req = client()
            .post(gw.url("/v1/files"))
            .bearer_auth(&key)
            .header("content-type", MULTIPART)
            .body(upload_form("a.txt", b"abc", "assistants"));
        if let Some(p) = provider {
            req = req.header("x-llm-proxy-provider", p);
        }
        req.send()
    };
    // The test gateway has several OpenAI-protocol providers and none named `openai`.
    let err = json_of(send(None).await.expect("answers"), 400).await;
    let message = err["error"]["message"].as_str().expect("a message");
    assert!(message.contains("x-llm-proxy-provider") && message.contains("oai"), "{message}");
    let err = json_of(send(Some("claude")).await.expect("answers"), 400).await;
    assert!(err["error"]["message"].as_str().expect("a message").contains("`claude` speaks the anthropic protocol"));
    let err = json_of(send(Some("nope")).await.expect("answers"), 400).await;
    assert!(err["error"]["message"].as_str().expect("a message").contains("No provider is named `nope`"));
    let err = json_of(send(Some("zhipu")).await.expect("answers"), 400).await;
    assert!(err["error"]["message"].as_str().expect("a message").contains("`zhipu` speaks the glm protocol"), "{err}");
    json_of(send(Some("mock")).await.expect("answers"), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_and_bodies_are_refused_and_logged() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite always runs");
    let (_, key) = gw.create_key(&[], None).await;
    // Past the harness's 64 KiB limit: refused by its length, or cut on its way when it has none.
    let big = vec![b'x'; 100 * 1024];
    let resp = client()
        .post(gw.url("/v1/files"))
        .bearer_auth(&key)
        .header("content-type", MULTIPART)
        .header("x-llm-proxy-provider", "oai")
        .body(upload_form("big.bin", &big, "assistants"))
        .send()
        .await
        .expect("answers");
    let rid = request_id(&resp);
    json_of(resp, 413).await;
    assert_eq!(gw.log_entry(&rid).await.status, 413);
    json_of(upload(&gw, &key, "big.bin", &big, "assistants").await, 413).await;

    let resp = client()
        .post(gw.url("/v1/files"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("x-llm-proxy-provider", "oai")
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert!(json_of(resp, 400).await["error"]["message"].as_str().expect("a message").contains("multipart"));
    for body in [json!({}), json!({"input_file_id": 7}), json!([1])] {
        json_of(post(&gw, &key, "/v1/batches", &body).await, 400).await;
    }
    let resp = client().post(gw.url("/v1/batches")).bearer_auth(&key).body("{not json").send().await.expect("answers");
    json_of(resp, 400).await;
    json_of(get(&gw, &key, "/v1/batches?limit=0").await, 400).await;
    json_of(get(&gw, &key, "/v1/files?order=sideways").await, 400).await;
    assert_eq!(get(&gw, "sk-not-a-key", "/v1/files").await.status(), 401);
}
