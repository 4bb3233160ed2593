//! The gateway as an attacker or a careless client meets it: connections that never finish their
//! headers, never send another request or never read their answer; more requests than it takes;
//! keyless floods; guessing at the admin key; numbers that wrap; two keys in one request.
//!
//! Connection behaviour does not depend on the database, so those cases run on SQLite only.
#![expect(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "tests are clients, not the gateway: their own HTTP clients and tasks are fine, and they assert by unwrapping"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Gateway, MASTER_KEY, PATIENCE, eventually, request_id};
use futures_util::StreamExt;
use llm_proxy_core::virtual_key::KeyLimits;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (EOF or reset); `None` if it is still open after
/// `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Instant> {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// One `GET /health` on a fresh connection, timed.
async fn health_latency(gw: &Gateway) -> Duration {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let resp = client.get(gw.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_while_health_stays_fast() {
    let gw = Gateway::start_with(Backend::Sqlite, "connections: {header_read_timeout_secs: 1, idle_timeout_secs: 3}")
        .await
        .unwrap();
    // 500 connections that trickle a request line one byte at a time, 500 that send nothing.
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..1000 {
        let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
        let trickle = i % 2 == 0;
        clients.push(tokio::spawn(async move {
            let line = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n";
            let mut sent = 0;
            let mut buf = [0u8; 1024];
            loop {
                if trickle && sent < line.len() {
                    if tcp.write_all(&line[sent..sent + 1]).await.is_err() {
                        return Instant::now();
                    }
                    sent += 1;
                }
                match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Instant::now(),
                    _ => {}
                }
            }
        }));
    }
    // The gateway keeps answering everyone else while they hang on (without the timeouts these
    // connections stayed forever, and 1,100 of them took every descriptor). The bound is loose:
    // a busy machine is slow to answer, a starved gateway does not answer at all.
    for _ in 0..5 {
        let took = health_latency(&gw).await;
        assert!(took < Duration::from_secs(5), "/health took {took:?} beside 1,000 stalled connections");
    }
    let mut latest = Duration::ZERO;
    for c in clients {
        let closed = tokio::time::timeout(Duration::from_secs(20), c).await.expect("a stalled connection stayed open");
        latest = latest.max(closed.unwrap() - started);
    }
    // Every one is closed about a second after it was accepted (generous for a busy machine;
    // without the header timeout they stay open for good).
    assert!(latest < Duration::from_secs(15), "the last stalled connection was closed after {latest:?}");

    // A keep-alive connection is left alone between requests for the idle timeout, not the
    // header timeout, then closed.
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    assert!(closed_within(&mut tcp, Duration::from_millis(1_500)).await.is_none(), "closed before the idle timeout");
    let closed = closed_within(&mut tcp, Duration::from_secs(10)).await.expect("an idle connection stayed open");
    assert!(closed - answered >= Duration::from_millis(2_900), "closed after {:?}", closed - answered);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_never_cut_by_the_connection_timeouts() {
    let gw = Gateway::start_with(Backend::Sqlite, "connections: {header_read_timeout_secs: 1, idle_timeout_secs: 1}")
        .await
        .unwrap();
    let (_, key) = gw.create_key(&[], None).await;
    // 1.5 s of upstream silence before the answer, and 1.5 s between stream chunks.
    let slow = gw.chat(&key, json!({"model": "mock-delay-1500", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(slow.status(), 200);
    let stream = gw
        .chat(
            &key,
            json!({"model": "mock-slow-1500-chunks-1", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(stream.status(), 200);
    let text = stream.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_after_the_write_timeout() {
    let gw = Gateway::start_with(Backend::Sqlite, "connections: {write_timeout_secs: 1}").await.unwrap();
    let (_, key) = gw.create_key(&[], None).await;
    // 4,000 chunks of 16 kB: far more than the socket buffers hold.
    let body =
        json!({"model": "mock-chunks-4000-pad-16000", "stream": true, "messages": [{"role": "user", "content": "x"}]})
            .to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 1024];
    let n = tcp.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // Now stop reading. The gateway's writes block; after the write timeout it lets go of the
    // connection, which ends the upstream call and records the request.
    let cancelled = || gw.mock.state.streams_cancelled.load(std::sync::atomic::Ordering::SeqCst);
    eventually(2 * PATIENCE, async || match cancelled() {
        0 => Err("a client that stopped reading still held its stream"),
        _ => Ok(()),
    })
    .await;
    eventually(PATIENCE, async || {
        let rows = gw.all_logs().await;
        if rows.iter().any(|r| r.status == 499 && r.error_kind.map(|k| k.as_str()) == Some("client_disconnect")) {
            Ok(())
        } else {
            Err(format!("no client_disconnect row: {rows:?}"))
        }
    })
    .await;
    drop(tcp);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_in_flight_requests_get_503_in_their_protocol() {
    let gw = Gateway::start_with(Backend::Sqlite, "connections: {max_in_flight: 2}").await.unwrap();
    let (_, key) = gw.create_key(&[], None).await;
    let stream =
        json!({"model": "mock-slow-1500-chunks-1", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let a = gw.chat(&key, stream.clone()).await;
    let b = gw.chat(&key, stream.clone()).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));

    let refused = gw.chat(&key, json!({"model": "default", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.headers().contains_key("x-request-id"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "gateway_overloaded", "{body}");
    let refused = gw
        .messages(&key, json!({"model": "default", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("overloaded_error")));
    // Health and the admin API are not /v1 traffic.
    assert!(health_latency(&gw).await < Duration::from_secs(5));

    // The streams count until their last byte; then there is room again.
    a.text().await.unwrap();
    b.text().await.unwrap();
    let again = gw.chat(&key, json!({"model": "default", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(again.status(), 200);
    gw.stop().await;
}

async fn keyless_requests_leave_no_rows_and_are_counted(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let stats = |gw: &Gateway| {
        let url = gw.url("/api/stats");
        async move {
            let v: Value =
                reqwest::Client::new().get(url).bearer_auth(MASTER_KEY).send().await.unwrap().json().await.unwrap();
            v["auth_failures"]["total"].as_u64().unwrap()
        }
    };
    let before = stats(&gw).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "default", "messages": [{"role": "user", "content": "x"}]});
    let statuses: Vec<u16> = futures_util::stream::iter(0..1000)
        .map(|i| {
            let (client, url, body) = (client.clone(), gw.url("/v1/chat/completions"), body.clone());
            async move {
                let req = client.post(url).json(&body);
                let req = if i % 2 == 0 { req } else { req.bearer_auth("sk-llmp-wrong") };
                req.send().await.unwrap().status().as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401));
    // A request with a key after them: once its row is written, any row of theirs would be too.
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw.chat(&key, body).await;
    gw.log_entry(&request_id(&resp)).await;
    let rows = gw.all_logs().await;
    assert_eq!(rows.len(), 1, "{} rows; only the authenticated request belongs in the log", rows.len());
    let after = stats(&gw).await;
    // The key's own creation polls with it until the gateway knows it: a few more failures.
    assert!(after - before >= 1000, "{before} → {after}");
    let v: Value = client.get(gw.url("/api/stats")).bearer_auth(MASTER_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["auth_failures"]["top_addresses"][0]["address"], "127.0.0.1", "{v}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_authentication_locks_the_address_out() {
    let gw = Gateway::start_with(Backend::Sqlite, "admin_auth_failures_per_minute: 3").await.unwrap();
    let client = reqwest::Client::new();
    let get = |key: &'static str| client.get(gw.url("/api/logs")).bearer_auth(key).send();
    assert_eq!(get(MASTER_KEY).await.unwrap().status(), 200);
    for _ in 0..3 {
        assert_eq!(get("not-the-master-key-0000").await.unwrap().status(), 401);
    }
    // Now even the right key is refused from this address, for a while.
    let locked = get(MASTER_KEY).await.unwrap();
    assert_eq!(locked.status(), 429);
    let wait: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Clients of /v1 are not affected by the admin lock-out.
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw.chat(&key, json!({"model": "default", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 200);
    gw.stop().await;
}

async fn count_tokens_is_admitted_under_the_keys_rate_limit(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let limits = KeyLimits { rpm: Some(2), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    let count = || {
        reqwest::Client::new()
            .post(gw.url("/v1/messages/count_tokens"))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "claude/claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello"}]}))
            .send()
    };
    for _ in 0..2 {
        let resp = count().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("x-ratelimit-remaining-requests"));
    }
    let upstream_before = gw.mock.state.requests().len();
    let refused = count().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(gw.mock.state.requests().len(), upstream_before, "a refused count reached the upstream");
    gw.stop().await;
}

async fn max_tokens_cannot_wrap_past_a_token_limit(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else {
        return;
    };
    let limits = KeyLimits { tpm: Some(1000), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    let chat = |max: Value| {
        gw.chat(&key, json!({"model": "default", "max_tokens": max, "messages": [{"role": "user", "content": "x"}]}))
    };
    assert_eq!(chat(json!(5000)).await.status(), 429);
    // u64::MAX once wrapped to a small reservation and got 200.
    for huge in [json!(u64::MAX), json!(u64::MAX - 10), json!(1u64 << 63)] {
        let resp = chat(huge.clone()).await;
        assert_eq!(resp.status(), 400, "max_tokens {huge}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["param"], "max_tokens", "{body}");
    }
    let resp = gw
        .chat(
            &key,
            json!({"model": "default", "max_completion_tokens": u64::MAX, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let resp = gw
        .messages(
            &key,
            json!({"model": "default", "max_tokens": u64::MAX, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    assert_eq!(chat(json!(100)).await.status(), 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_credentials_in_one_request_are_refused() {
    let gw = Gateway::start(Backend::Sqlite).await.unwrap();
    let (_, key) = gw.create_key(&[], None).await;
    let (_, other) = gw.create_key(&[], None).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "default", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("authorization", format!("Bearer {other}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "conflicting_credentials");
    let messages = |headers: Vec<(&'static str, String)>| {
        let mut req = client.post(gw.url("/v1/messages")).header("anthropic-version", "2023-06-01").json(&body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let resp = messages(vec![("x-api-key", key.clone()), ("authorization", format!("Bearer {other}"))]).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    let resp = messages(vec![("x-api-key", key.clone()), ("x-api-key", key.clone())]).await.unwrap();
    assert_eq!(resp.status(), 400);
    // The same key both ways is fine (some clients send both).
    let resp = messages(vec![("x-api-key", key.clone()), ("authorization", format!("Bearer {key}"))]).await.unwrap();
    assert_eq!(resp.status(), 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_huge_prompts_are_counted() {
    let gw = Gateway::start_with(Backend::Sqlite, "max_body_bytes: 10485760").await.unwrap();
    let (_, key) = gw.create_key(&[], None).await;
    // 9 MB of prose for an OpenAI-protocol model: no upstream counting endpoint, counted here.
    let text = "The quick brown fox jumps over the lazy dog, again and again. ".repeat(9_000_000 / 62);
    let body = json!({"model": "oai/gpt-4o", "messages": [{"role": "user", "content": text}]}).to_string();
    let counts: Vec<_> = (0..2)
        .map(|_| {
            let (url, key, body) = (gw.url("/v1/messages/count_tokens"), key.clone(), body.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .header("x-api-key", key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    while counts.iter().any(|c| !c.is_finished()) {
        worst = worst.max(health_latency(&gw).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Counting on the async workers once stalled /health for 4.9 s (longer on a busy machine);
    // off them, /health waits for nothing but the CPU.
    assert!(worst < Duration::from_secs(2), "/health took {worst:?} while prompts were counted");
    for c in counts {
        let resp = c.await.unwrap();
        assert_eq!(resp.status(), 200);
        let n = resp.json::<Value>().await.unwrap()["input_tokens"].as_u64().unwrap();
        // About 13 tokens per 62-byte sentence; extrapolated past the first megabyte.
        let sentences = 9_000_000 / 62;
        assert!((n as f64 / (13.0 * sentences as f64) - 1.0).abs() < 0.1, "{n} tokens");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_retention_deletes_old_rows_only() {
    // The background job (off here, so it cannot race the test) runs this same pass hourly.
    let gw = Gateway::start_with(Backend::Sqlite, "log_retention_days: 0").await.unwrap();
    let now = llm_proxy_core::UnixMillis::now();
    let row = |id: &str, age_days: u64| llm_proxy_core::request_log::RequestLogEntry {
        request_id: id.into(),
        created_at: now - Duration::from_secs(age_days * 86_400),
        endpoint: "chat.completions".into(),
        status: 200,
        ..Default::default()
    };
    gw.store.insert_logs(&[row("old", 31), row("older", 400), row("recent", 29)]).await.unwrap();
    let deleted = llm_proxy_server::serve::retain_logs_once(gw.store.as_ref(), 30).await.unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<String> = gw.all_logs().await.into_iter().map(|e| e.request_id).collect();
    assert_eq!(left, ["recent"]);
    gw.stop().await;
}

on_both_backends!(
    keyless_requests_leave_no_rows_and_are_counted,
    count_tokens_is_admitted_under_the_keys_rate_limit,
    max_tokens_cannot_wrap_past_a_token_limit,
);
