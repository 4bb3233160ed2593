//! Rate limits, budgets, parallel slots and cost through the real server (in-process counters).
//! Prices come from an override file so the arithmetic is known: `oai/mock-priced*` costs $1 per
//! million input tokens and $2 per million output tokens.

#![expect(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    reason = "tests are clients, not the gateway: their own HTTP clients and tasks are fine, and they assert by unwrapping"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Gateway, PATIENCE, eventually, request_id};
use futures_util::StreamExt;
use llm_proxy_core::virtual_key::KeyLimits;
use llm_proxy_testkit_macros::needs_redis;
use serde_json::{Value, json};

const PRICES: &str = r#"{
  "oai/mock-priced": {"input_per_mtok": 1000000, "output_per_mtok": 2000000},
  "oai/mock-priced-no-usage": {"input_per_mtok": 1000000, "output_per_mtok": 2000000},
  "oai/mock-priced-slow-200-chunks-20": {"input_per_mtok": 1000000, "output_per_mtok": 2000000}
}"#;

/// A gateway whose price table knows the mock's priced models ($1 and $2 per token: big enough
/// that every request costs whole dollars and the arithmetic is plain).
async fn gateway(extra: &str) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.json");
    std::fs::write(&path, PRICES).unwrap();
    let yaml = format!("pricing: {{ overrides_file: \"{}\" }}\n{extra}", path.display());
    (Gateway::start_with(Backend::Sqlite, &yaml).await.unwrap(), dir)
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_after_the_limit_gets_429_with_openai_style_headers() {
    let (gw, _d) = gateway("").await;
    let limits = KeyLimits { rpm: Some(3), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    for remaining in ["2", "1", "0"] {
        let resp = gw.chat(&key, ask("oai/mock-a")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-ratelimit-limit-requests"), "3");
        assert_eq!(header(&resp, "x-ratelimit-remaining-requests"), remaining);
        assert!(!header(&resp, "x-ratelimit-reset-requests").is_empty());
    }
    let resp = gw.chat(&key, ask("oai/mock-a")).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").parse().unwrap();
    assert!((15..=21).contains(&retry), "one request frees up in 20 s: {retry}");
    assert_eq!(header(&resp, "x-ratelimit-remaining-requests"), "0");
    let rid = request_id(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("requests per minute"), "{body}");
    let row = gw.log_entry(&rid).await;
    assert_eq!((row.status, row.error_kind.map(|k| k.as_str())), (429, Some("rate_limited")));
    // Another key is not affected.
    let (_, other) = gw.create_key(&[], None).await;
    assert_eq!(gw.chat(&other, ask("oai/mock-a")).await.status(), 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limits_reserve_the_estimate_and_settle_to_the_real_count() {
    let (gw, _d) = gateway("").await;
    let limits = KeyLimits { tpm: Some(400), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    // Each request reserves its prompt estimate plus max_tokens (300): two at once do not fit...
    let big = json!({"model": "oai/mock-a", "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]});
    let resp = gw.chat(&key, big.clone()).await;
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    // ...but the mock used 5 tokens, and settling (after the answer) gives the rest back. A
    // refused try reserves nothing; without the settling, the bucket would refill the missing
    // ~200 tokens in 30 s, well past the deadline.
    let resp = eventually(PATIENCE, async || {
        let resp = gw.chat(&key, big.clone()).await;
        match resp.status().as_u16() {
            200 => Ok(resp),
            other => Err(format!("the first request's unused reservation was not given back: {other}")),
        }
    })
    .await;
    let remaining: u64 = header(&resp, "x-ratelimit-remaining-tokens").parse().unwrap();
    assert!(remaining < 100, "{remaining}");
    // A request whose reservation alone exceeds the limit is refused.
    let huge = json!({"model": "oai/mock-a", "max_tokens": 5000, "messages": [{"role": "user", "content": "hi"}]});
    let resp = gw.chat(&key, huge).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.text().await.unwrap().contains("tokens per minute"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_priced_and_a_budget_refuses_once_spent() {
    let (gw, _d) = gateway("").await;
    // The mock's usage costs $7 a request (1 prompt + 3 completion tokens). Each request reserves
    // its worst case first (about four body bytes a prompt token, plus max_tokens): ~$31.
    let limits = KeyLimits { budget_daily: Some(40.0), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    let body = json!({"model": "oai/mock-priced", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]});
    let resp = gw.chat(&key, body.clone()).await;
    assert_eq!(resp.status(), 200);
    let cost_header = header(&resp, "x-llm-proxy-cost");
    let rid = request_id(&resp);
    let row = gw.log_entry(&rid).await;
    // $1 per prompt token and $2 per completion token, on the mock's own usage.
    let want = row.prompt_tokens.unwrap() as f64 + 2.0 * row.completion_tokens.unwrap() as f64;
    assert!(want > 0.0);
    assert_eq!(row.cost_usd, Some(want));
    assert_eq!(cost_header, format!("{want:.8}"));
    assert!(!row.cost_estimated);

    // A stream with the same usage costs the same.
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let resp = gw.chat(&key, stream).await;
    let rid = request_id(&resp);
    resp.bytes().await.unwrap();
    assert_eq!(gw.log_entry(&rid).await.cost_usd, Some(want), "a stream of the same usage costs the same");

    // $14 spent of $40: the next worst case (~$31) no longer fits (nor does it while the stream's
    // own reservation is still being settled: $7 + $31 held).
    let resp = gw.chat(&key, body.clone()).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "budget_exceeded");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("daily budget") && message.contains("resets"), "{message}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_against_a_budget_for_five_overspend_by_at_most_one() {
    let (gw, _d) = gateway("").await;
    let limits = KeyLimits { budget_hourly: Some(40.0), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    let body = json!({"model": "oai/mock-priced", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (url, key, body) = (gw.url("/v1/chat/completions"), key.clone(), body.clone());
            tokio::spawn(async move {
                reqwest::Client::new().post(url).bearer_auth(key).json(&body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert!((1..=6).contains(&ok), "{ok} requests of $8 against a $40 budget succeeded");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_slots_are_released_after_errors_and_disconnects() {
    let (gw, _d) = gateway("").await;
    let limits = KeyLimits { max_parallel: Some(1), ..Default::default() };
    let (_, key) = gw.create_key_with(&[], None, limits, None).await;
    // An error releases the slot.
    assert_eq!(gw.chat(&key, ask("oai/mock-fail-500")).await.status(), 502);
    assert_eq!(gw.chat(&key, ask("oai/mock-a")).await.status(), 200);
    // While a stream holds the slot, a second request is refused...
    let mut slow = ask("oai/mock-priced-slow-200-chunks-20");
    slow["stream"] = json!(true);
    let resp = gw.chat(&key, slow).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    let refused = gw.chat(&key, ask("oai/mock-a")).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.text().await.unwrap().contains("too_many_parallel_requests"));
    // ...and a client that hangs up releases it.
    drop(body);
    eventually(PATIENCE, async || match gw.chat(&key, ask("oai/mock-a")).await.status().as_u16() {
        200 => Ok(()),
        other => Err(format!("the slot was not released after the client left: {other}")),
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_usage_is_counted_locally_and_never_free() {
    let (gw, _d) = gateway("").await;
    let (_, key) = gw.create_key(&[], None).await;
    let mut body = ask("oai/mock-priced-no-usage");
    body["stream"] = json!(true);
    let resp = gw.chat(&key, body).await;
    let rid = request_id(&resp);
    resp.bytes().await.unwrap();
    let row = gw.log_entry(&rid).await;
    assert!(row.cost_estimated, "{row:?}");
    assert!(row.prompt_tokens.unwrap() > 0 && row.completion_tokens.unwrap() > 0, "{row:?}");
    assert!(row.cost_usd.unwrap() > 0.0, "{row:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_limits_apply_per_user_per_model_and_per_ip() {
    let (gw, _d) = gateway(
        "rate_limits:\n  per_user: { requests_per_minute: 2 }\n  per_model: { oai/mock-model-capped: { requests_per_minute: 1 } }\n  per_ip_requests_per_minute: 100\n",
    )
    .await;
    let (_, a) = gw.create_key_with(&[], None, KeyLimits::default(), Some("alice")).await;
    let (_, b) = gw.create_key_with(&[], None, KeyLimits::default(), Some("alice")).await;
    assert_eq!(gw.chat(&a, ask("oai/mock-a")).await.status(), 200);
    assert_eq!(gw.chat(&b, ask("oai/mock-a")).await.status(), 200);
    let third = gw.chat(&a, ask("oai/mock-a")).await;
    assert_eq!(third.status(), 429, "alice's two keys share her limit");
    assert!(third.text().await.unwrap().contains("user"));

    let (_, c) = gw.create_key(&[], None).await;
    assert_eq!(gw.chat(&c, ask("oai/mock-model-capped")).await.status(), 200);
    assert_eq!(gw.chat(&c, ask("oai/mock-model-capped")).await.status(), 429, "the model's own limit");

    // Past 100 requests a minute from this address, requests are cut before authentication,
    // whatever their key (until then a bad key is a 401). The limit leaves room for the requests
    // above, and for the ones that waited for each new key to be accepted.
    let mut refused = None;
    for _ in 0..105 {
        let resp = gw.chat("no-such-key", ask("oai/mock-a")).await;
        match resp.status().as_u16() {
            401 => continue,
            429 => {
                refused = Some(resp.text().await.unwrap());
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let refused = refused.expect("the per-IP limit never refused");
    assert!(refused.to_lowercase().contains("address"), "{refused}");
    gw.stop().await;
}

#[needs_redis]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_hold_one_limit() {
    let Some(redis) = common::redis_url() else { return };
    // A model name of its own, so counters left by other runs (they live a minute) do not count.
    let model = format!("oai/mock-shared-{}", uuid::Uuid::new_v4().simple());
    let extra =
        format!("redis_url: \"{redis}\"\nrate_limits:\n  per_model: {{ \"{model}\": {{ requests_per_minute: 5 }} }}\n");
    let (a, _da) = gateway(&extra).await;
    let (b, _db) = gateway(&extra).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let gw = if i % 2 == 0 { &a } else { &b };
        statuses.push(gw.chat(common::MASTER_KEY, ask(&model)).await.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429, 429, 429], "one limit across both instances");
    a.stop().await;
    b.stop().await;
}

#[needs_redis]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_keep_flowing_when_redis_goes_away() {
    if common::redis_url().is_none() {
        return;
    }
    // Our own Redis, so stopping it disturbs nobody.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    eventually(PATIENCE, async || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("our redis-server did not start: {e}"))
    })
    .await;
    let model = "oai/mock-redis-outage";
    let extra = format!(
        "redis_url: \"redis://127.0.0.1:{port}\"\nrate_limits:\n  per_model: {{ \"{model}\": {{ requests_per_minute: 1000 }} }}\n"
    );
    let (gw, _d) = gateway(&extra).await;
    assert_eq!(gw.chat(common::MASTER_KEY, ask(model)).await.status(), 200);
    server.kill().unwrap();
    server.wait().unwrap();
    for _ in 0..10 {
        let started = Instant::now();
        let resp = gw.chat(common::MASTER_KEY, ask(model)).await;
        assert_eq!(resp.status(), 200, "limits fall back to local counting");
        // Redis calls have a 50 ms budget; the bound only tells that from waiting on the outage.
        assert!(started.elapsed() < Duration::from_secs(2), "a request waited {:?} on a dead Redis", started.elapsed());
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_limit_counts_all_keys_and_usage_stats_add_up() {
    let (gw, _d) = gateway(
        "routes:\n  - name: capped\n    targets: [{ model: oai/mock-priced, requests_per_minute: 2 }]\n    retries: 0\n",
    )
    .await;
    let (_, a) = gw.create_key(&[], None).await;
    let (_, b) = gw.create_key(&[], None).await;
    assert_eq!(gw.chat(&a, ask("capped")).await.status(), 200);
    assert_eq!(gw.chat(&b, ask("capped")).await.status(), 200);
    let third = gw.chat(&a, ask("capped")).await;
    assert_eq!(third.status(), 429, "the deployment's own limit, over both keys");
    assert!(third.text().await.unwrap().contains("deployment"));

    // The usage API sums what the log holds, per model.
    let stats = eventually(PATIENCE, async || {
        let s: Value = reqwest::Client::new()
            .get(gw.url("/api/stats?group_by=model"))
            .bearer_auth(common::MASTER_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match s["total"]["requests"].as_u64().unwrap_or(0) {
            3.. => Ok(s),
            _ => Err(format!("stats never counted the requests: {s}")),
        }
    })
    .await;
    let capped = stats["data"].as_array().unwrap().iter().find(|r| r["group"] == "capped").unwrap();
    assert_eq!(capped["requests"], 3);
    assert_eq!(capped["errors"], 1);
    assert!(capped["cost_usd"].as_f64().unwrap() > 0.0);
    let resp = reqwest::Client::new().get(gw.url("/api/stats")).bearer_auth(&a).send().await.unwrap();
    assert_eq!(resp.status(), 403, "the usage API is for the master key");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_pricing_refresh_neither_blocks_start_nor_loses_prices() {
    // Nothing listens on port 1: the refresh fails at once and the bundled table plus the
    // overrides stay in force.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.json");
    std::fs::write(&path, PRICES).unwrap();
    let yaml = format!(
        "pricing: {{ overrides_file: \"{}\", refresh_url: \"http://127.0.0.1:1/pricing.json\", refresh_hours: 1 }}\n",
        path.display()
    );
    let started = Instant::now();
    let gw = Gateway::start_with(Backend::Sqlite, &yaml).await.unwrap();
    assert!(started.elapsed() < PATIENCE, "start-up waited for the pricing refresh");
    let (_, key) = gw.create_key(&[], None).await;
    let resp = gw
        .chat(
            &key,
            json!({"model": "oai/mock-priced", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(!header(&resp, "x-llm-proxy-cost").is_empty(), "prices survive a failed refresh");
    gw.stop().await;
}

/// The deployments a request's log row shows it tried, in order: `(model, status)`.
async fn tried(gw: &Gateway, resp: &reqwest::Response) -> Vec<(String, u16)> {
    let row = gw.log_entry(&request_id(resp)).await;
    row.attempts.iter().map(|a| (a.model.clone(), a.status)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_over_its_own_limit_is_skipped_for_the_next_one() {
    let (gw, _d) = gateway(
        "routes:\n  - name: chain\n    targets: [{ model: oai/mock-dl-a, requests_per_minute: 1 }]\n    fallbacks: [oai/mock-dl-b, oai/mock-dl-c]\n    retries: 0\n",
    )
    .await;
    let (_, key) = gw.create_key(&[], None).await;
    let first = gw.chat(&key, ask("chain")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-llm-proxy-model"), "mock-dl-a");
    // The first target is over its limit: skipped, not a 429; the fallback serves.
    let second = gw.chat(&key, ask("chain")).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-llm-proxy-model"), "mock-dl-b");
    assert_eq!(tried(&gw, &second).await, [("mock-dl-a".into(), 429), ("mock-dl-b".into(), 200)]);
    let row = gw.log_entry(&request_id(&second)).await;
    assert_eq!(row.attempts[0].error_kind.map(|k| k.as_str()), Some("rate_limited"));
    let calls_to_a = gw.mock.state.requests().iter().filter(|r| r.body["model"] == "mock-dl-a").count();
    assert_eq!(calls_to_a, 1, "a deployment over its limit is not called");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_over_its_limit_is_skipped_and_all_over_is_429_with_the_soonest_retry() {
    let (gw, _d) = gateway(
        "routes:\n  - name: chain\n    targets: [{ model: oai/mock-fl-a, requests_per_minute: 1 }]\n    fallbacks: [oai/mock-fl-b]\n    retries: 0\n  - name: b-capped\n    targets: [{ model: oai/mock-fl-b, requests_per_minute: 2 }]\n",
    )
    .await;
    let (_, key) = gw.create_key(&[], None).await;
    assert_eq!(header(&gw.chat(&key, ask("chain")).await, "x-llm-proxy-model"), "mock-fl-a");
    assert_eq!(header(&gw.chat(&key, ask("chain")).await, "x-llm-proxy-model"), "mock-fl-b");
    assert_eq!(header(&gw.chat(&key, ask("chain")).await, "x-llm-proxy-model"), "mock-fl-b");
    // Both over: 429, and the retry-after of the one with room soonest (b: 2 a minute, one
    // back in ~30 s; a: one a minute, ~60 s).
    let refused = gw.chat(&key, ask("chain")).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=31).contains(&retry), "the soonest deployment frees up within 30 s: {retry}");
    assert_eq!(tried(&gw, &refused).await, [("mock-fl-a".into(), 429), ("mock-fl-b".into(), 429)]);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("deployment"), "{body}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_routes_target_limit_is_enforced_and_follows_a_change() {
    let (gw, _d) = gateway("").await;
    let (_, key) = gw.create_key(&[], None).await;
    let put = |rpm: u64| {
        let route: llm_proxy_core::config::RouteConfig = serde_json::from_value(json!({
            "name": "stored", "targets": [{"model": "oai/mock-sl-a", "requests_per_minute": rpm}], "retries": 0
        }))
        .unwrap();
        let store = gw.store.clone();
        async move { store.put_route(&route).await.unwrap() }
    };
    put(1).await;
    // Served once the gateway has the route, then over its limit of one a minute.
    eventually(PATIENCE, async || match gw.chat(&key, ask("stored")).await.status().as_u16() {
        200 => Ok(()),
        other => Err(format!("the stored route was not served: {other}")),
    })
    .await;
    assert_eq!(gw.chat(&key, ask("stored")).await.status(), 429);
    // Raised to 1,000 a minute: the change takes the limit along.
    put(1000).await;
    eventually(PATIENCE, async || match gw.chat(&key, ask("stored")).await.status().as_u16() {
        200 => Ok(()),
        other => Err(format!("the raised limit did not apply: {other}")),
    })
    .await;
    gw.stop().await;
}
