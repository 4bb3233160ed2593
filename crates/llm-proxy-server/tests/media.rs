//! OpenAI's images, audio and moderations endpoints through the real server onto the mock's own:
//! each answered as the upstream answered it, the model rewritten upstream, uploads of megabytes
//! streamed through whole (the model field before or after the file), a speech answer of
//! megabytes streamed back, other protocols refused by name, keys' model lists and limits
//! applied, one log row each, and bad bodies answered 4xx. The SDK suite (tests/e2e) drives the
//! same endpoints with the official `openai` SDK.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, request_id};
use futures_util::StreamExt;
use llm_proxy_core::virtual_key::KeyLimits;
use serde_json::{Value, json};

const BOUNDARY: &str = "----llmproxytest7MA4YWxkTrZu0gW";
const MULTIPART: &str = "multipart/form-data; boundary=----llmproxytest7MA4YWxkTrZu0gW";

async fn gateway() -> Gateway {
    Gateway::start(Backend::Sqlite).await.expect("SQLite always runs")
}

/// A gateway that takes bodies of 8 MiB.
async fn big_gateway() -> Gateway {
    Gateway::start_with(Backend::Sqlite, "max_body_bytes: 8388608").await.expect("SQLite always runs")
}

/// A multipart body: `(name, filename, content)` parts in order.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

async fn post_json(gw: &Gateway, key: &str, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new().post(gw.url(path)).bearer_auth(key).json(body).send().await.expect("answers")
}

async fn post_form(gw: &Gateway, key: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(key)
        .header("content-type", MULTIPART)
        .body(body)
        .send()
        .await
        .expect("answers")
}

/// `body` sent in 64 KiB pieces without a `content-length`, as a client streaming a file does.
async fn post_form_streamed(gw: &Gateway, key: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(key)
        .header("content-type", MULTIPART)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(pieces)))
        .send()
        .await
        .expect("answers")
}

/// The last request the mock received on `path`.
fn upstream_request(gw: &Gateway, path: &str) -> Value {
    gw.mock.state.requests().into_iter().rfind(|r| r.path == path).expect("the upstream was called").body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_as_the_upstream_did_with_the_model_rewritten() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;

    let resp =
        post_json(&gw, &key, "/v1/images/generations", &json!({"model": "oai/gpt-image-1", "prompt": "a red cat"}))
            .await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let image: Value = resp.json().await.unwrap();
    assert_eq!(image["data"][0]["b64_json"], llm_proxy_testkit::media::PNG_BASE64);
    assert_eq!(upstream_request(&gw, "/v1/images/generations")["model"], "gpt-image-1", "the model is rewritten");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.endpoint.as_str(), row.status), ("images.generations", 200));
    assert_eq!((row.prompt_tokens, row.completion_tokens), (Some(3), Some(272)), "gpt-image-1 reports usage");

    let edit = form(&[
        ("image[]", Some("cat.png"), b"\x89PNG fake"),
        ("prompt", None, b"make it blue"),
        ("model", None, b"oai/dall-e-2"),
        ("response_format", None, b"url"),
    ]);
    let resp = post_form(&gw, &key, "/v1/images/edits", edit).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let edited: Value = resp.json().await.unwrap();
    assert!(edited["data"][0]["url"].as_str().unwrap().ends_with(".png"), "{edited}");
    let seen = upstream_request(&gw, "/v1/images/edits");
    assert_eq!(seen["model"], "dall-e-2");
    assert_eq!(seen["fields"], json!(["image[]", "prompt", "model", "response_format"]));
    assert_eq!(seen["files"][0]["bytes"], 9);
    assert_eq!(gw.log_entry(&rid).await.endpoint, "images.edits");

    let resp = post_json(
        &gw,
        &key,
        "/v1/moderations",
        &json!({"model": "oai/omni-moderation-latest",
                                                                "input": ["hello", "flag-me now"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let m: Value = resp.json().await.unwrap();
    assert_eq!((m["results"][0]["flagged"].clone(), m["results"][1]["flagged"].clone()), (json!(false), json!(true)));
    assert_eq!(m["results"][1]["categories"]["violence"], true);
    assert_eq!(gw.log_entry(&rid).await.endpoint, "moderations");

    let resp =
        post_json(&gw, &key, "/v1/audio/speech", &json!({"model": "oai/tts-1", "input": "hi there", "voice": "alloy"}))
            .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    let rid = request_id(&resp);
    assert_eq!(resp.bytes().await.unwrap().len(), 4096);
    assert_eq!(upstream_request(&gw, "/v1/audio/speech")["model"], "tts-1");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.endpoint.as_str(), row.status), ("audio.speech", 200));

    let speech_sse = json!({"model": "oai/gpt-4o-mini-tts", "input": "hi", "voice": "alloy", "stream_format": "sse"});
    let resp = post_json(&gw, &key, "/v1/audio/speech", &speech_sse).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    assert!(text.contains("speech.audio.delta") && text.contains("speech.audio.done"), "{text}");

    let audio = form(&[("file", Some("hello.mp3"), &[1u8; 1000]), ("model", None, b"oai/gpt-4o-transcribe")]);
    let resp = post_form(&gw, &key, "/v1/audio/transcriptions", audio).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["text"], "transcribed 1000 bytes of hello.mp3");
    let row = gw.log_entry(&rid).await;
    assert_eq!(
        (row.endpoint.as_str(), row.prompt_tokens, row.completion_tokens),
        ("audio.transcriptions", Some(2), Some(5))
    );

    let audio =
        form(&[("model", None, b"oai/whisper-1"), ("file", Some("a.wav"), b"abc"), ("response_format", None, b"text")]);
    let resp = post_form(&gw, &key, "/v1/audio/translations", audio).await;
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let rid = request_id(&resp);
    assert_eq!(resp.text().await.unwrap(), "transcribed 3 bytes of a.wav\n");
    assert_eq!(gw.log_entry(&rid).await.endpoint, "audio.translations");

    let audio =
        form(&[("file", Some("s.mp3"), b"abcd"), ("model", None, b"oai/gpt-4o-transcribe"), ("stream", None, b"true")]);
    let resp = post_form(&gw, &key, "/v1/audio/transcriptions", audio).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let rid = request_id(&resp);
    let text = resp.text().await.unwrap();
    assert!(text.contains("transcript.text.done") && text.contains("transcribed 4 bytes of s.mp3"), "{text}");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.prompt_tokens, row.completion_tokens), (Some(1), Some(5)), "the usage of the last event");
    assert!(row.stream, "an answer in SSE is logged as a stream, whatever the upload's fields");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_megabyte_upload_arrives_whole_wherever_its_model_field_is() {
    let gw = big_gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let file = vec![0x5au8; 3 * 1024 * 1024];
    let model_first = form(&[("model", None, b"oai/whisper-1"), ("file", Some("big.mp3"), &file)]);
    let model_last = form(&[
        ("file", Some("big.mp3"), &file),
        ("response_format", None, b"json"),
        ("model", None, b"oai/whisper-1"),
    ]);
    for (what, body) in [("model first", model_first), ("model last", model_last)] {
        for streamed in [false, true] {
            let resp = if streamed {
                post_form_streamed(&gw, &key, "/v1/audio/transcriptions", body.clone()).await
            } else {
                post_form(&gw, &key, "/v1/audio/transcriptions", body.clone()).await
            };
            assert_eq!(resp.status(), 200, "{what}, streamed: {streamed}");
            let t: Value = resp.json().await.unwrap();
            assert_eq!(t["text"], "transcribed 3145728 bytes of big.mp3", "{what}, streamed: {streamed}");
            let seen = upstream_request(&gw, "/v1/audio/transcriptions");
            assert_eq!(seen["model"], "whisper-1", "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_megabyte_speech_answer_streams_back_as_it_comes() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let body = json!({"model": "oai/tts-1-kb-3072", "input": "a long story", "voice": "alloy"});
    let resp = post_json(&gw, &key, "/v1/audio/speech", &body).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let mut stream = resp.bytes_stream();
    let (mut bytes, mut pieces) = (Vec::new(), 0);
    while let Some(piece) = stream.next().await {
        bytes.extend_from_slice(&piece.unwrap());
        pieces += 1;
    }
    assert_eq!(bytes.len(), 3 * 1024 * 1024);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8), "the audio arrives as sent");
    assert!(pieces > 1, "passed on as it came, not in one piece");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.endpoint.as_str(), row.status), ("audio.speech", 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_of_other_protocols_are_refused_by_name() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for provider in ["claude", "gem", "zhipu"] {
        let body = json!({"model": format!("{provider}/some-model"), "input": "hi", "voice": "alloy"});
        let resp = post_json(&gw, &key, "/v1/audio/speech", &body).await;
        assert_eq!(resp.status(), 400, "{provider}");
        let rid = request_id(&resp);
        let err: Value = resp.json().await.unwrap();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{provider}`")) && message.contains("/v1/audio/speech"), "{message}");
        assert!(message.contains("OpenAI-protocol provider"), "{message}");
        assert_eq!(gw.log_entry(&rid).await.status, 400);
        let audio = form(&[("model", None, format!("{provider}/m").as_bytes()), ("file", Some("a.mp3"), b"abc")]);
        let resp = post_form(&gw, &key, "/v1/audio/transcriptions", audio).await;
        assert_eq!(resp.status(), 400, "{provider}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_model_lists_and_limits_apply() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&["oai/tts-1"], None).await;
    let resp = post_json(&gw, &key, "/v1/images/generations", &json!({"model": "oai/dall-e-3", "prompt": "x"})).await;
    assert_eq!(resp.status(), 403);
    let audio = form(&[("model", None, b"oai/whisper-1"), ("file", Some("a.mp3"), b"abc")]);
    assert_eq!(post_form(&gw, &key, "/v1/audio/transcriptions", audio).await.status(), 403);

    let limits = KeyLimits { rpm: Some(2), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    let body = json!({"model": "oai/omni-moderation-latest", "input": "hi"});
    for _ in 0..2 {
        assert_eq!(post_json(&gw, &key, "/v1/moderations", &body).await.status(), 200);
    }
    let resp = post_json(&gw, &key, "/v1/moderations", &body).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let resp = post_json(&gw, "sk-not-a-key", "/v1/moderations", &body).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_come_back_in_openai_shape_without_the_key() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    for (model, status) in [("oai/mock-fail-500", 502), ("oai/mock-fail-400", 400), ("oai/mock-fail-401", 502)] {
        let resp = post_json(&gw, &key, "/v1/images/generations", &json!({"model": model, "prompt": "x"})).await;
        assert_eq!(resp.status(), status, "{model}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains("canary"), "{text}");
        let err: Value = serde_json::from_str(&text).unwrap();
        assert!(err["error"]["message"].is_string(), "{text}");
    }
    let audio = form(&[("model", None, b"oai/mock-fail-500"), ("file", Some("a.mp3"), b"abc")]);
    assert_eq!(post_form(&gw, &key, "/v1/audio/transcriptions", audio).await.status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_never_a_500() {
    let gw = gateway().await;
    let (_, key) = gw.create_key(&[], None).await;
    let no_model = form(&[("file", Some("a.mp3"), b"abc"), ("prompt", None, b"hi")]);
    let resp = post_form(&gw, &key, "/v1/audio/transcriptions", no_model).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["param"], "model", "{err}");
    for broken in [&b"not multipart at all"[..], b"--x\r\nno end", format!("--{BOUNDARY}\r\nX: y\r\n\r\nv").as_bytes()]
    {
        let resp = post_form(&gw, &key, "/v1/audio/transcriptions", broken.to_vec()).await;
        assert_eq!(resp.status(), 400, "{}", String::from_utf8_lossy(broken));
    }
    for (path, body) in
        [("/v1/audio/speech", "{}"), ("/v1/moderations", "not json"), ("/v1/moderations", "{\"model\": 3}")]
    {
        let resp = reqwest::Client::new()
            .post(gw.url(path))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path} {body}");
    }
    // Where OpenAI has a default model, a request without one gets it, routed like any name.
    let resp = post_json(&gw, &key, "/v1/moderations", &serde_json::json!({"input": "hi"})).await;
    let rid = request_id(&resp);
    assert_eq!(gw.log_entry(&rid).await.model.as_deref(), Some("omni-moderation-latest"));
    // Past the 64 KiB limit: with the model after the file, while it is held; with the model
    // first, while the rest streams upstream.
    let file = vec![1u8; 100 * 1024];
    let late = form(&[("file", Some("a.mp3"), &file), ("model", None, b"oai/whisper-1")]);
    assert_eq!(post_form_streamed(&gw, &key, "/v1/audio/transcriptions", late).await.status(), 413);
    let early = form(&[("model", None, b"oai/whisper-1"), ("file", Some("a.mp3"), &file)]);
    let resp = post_form_streamed(&gw, &key, "/v1/audio/transcriptions", early).await;
    assert_eq!(resp.status(), 413);
    let rid = request_id(&resp);
    assert_eq!(gw.log_entry(&rid).await.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_falls_back_only_while_it_can_be_sent_again() {
    let routes = "max_body_bytes: 1048576\nroutes:\n  - name: shaky-stt\n    targets: [{ model: oai/mock-fail-500 }]\n    \
                  retries: 0\n    fallbacks: [oai/whisper-1]";
    let gw = Gateway::start_with(Backend::Sqlite, routes).await.expect("SQLite always runs");
    let (_, key) = gw.create_key(&[], None).await;
    // Read whole before routing (the model comes last): the fallback gets it.
    let small = form(&[("file", Some("a.mp3"), b"abc"), ("model", None, b"shaky-stt")]);
    let resp = post_form(&gw, &key, "/v1/audio/transcriptions", small).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llm-proxy-attempts"], "2");
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["text"], "transcribed 3 bytes of a.mp3");
    // Streamed upstream after the model: once sent, the failure is final.
    let file = vec![9u8; 512 * 1024];
    let big = form(&[("model", None, b"shaky-stt"), ("file", Some("b.mp3"), &file)]);
    let resp = post_form_streamed(&gw, &key, "/v1/audio/transcriptions", big).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-llm-proxy-attempts"], "1");
}
