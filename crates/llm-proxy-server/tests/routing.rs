//! Routes through the real server in front of the mock: every strategy spreads traffic as it
//! promises, failures are retried or failed over before the client sees a byte, breakers and health
//! checks take sick deployments out and put them back, and every choice is visible. Routing does
//! not touch the database, so these run on SQLite (stored routes run on both).

#![expect(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients and tasks are fine, and they assert by unwrapping"
)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Backend, Gateway, MASTER_KEY, PATIENCE, eventually, request_id};
use serde_json::{Value, json};

async fn gateway(extra: &str) -> Gateway {
    Gateway::start_with(Backend::Sqlite, extra).await.expect("SQLite always runs")
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Sends `n` requests to `model` one after another; counts which upstream model served each.
async fn spread(gw: &Gateway, model: &str, n: usize, body: impl Fn(usize) -> Value) -> HashMap<String, usize> {
    let mut served = HashMap::new();
    for i in 0..n {
        let mut b = body(i);
        b["model"] = json!(model);
        let resp = gw.chat(MASTER_KEY, b).await;
        assert_eq!(resp.status(), 200, "request {i}");
        *served.entry(header(&resp, "x-llm-proxy-model")).or_insert(0) += 1;
        resp.bytes().await.unwrap();
    }
    served
}

fn hello(_: usize) -> Value {
    json!({"messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_exact_and_weighted_splits_three_to_one() {
    let gw = gateway(
        r#"
routes:
  - name: rr
    strategy: round_robin
    targets: [{ model: oai/mock-rr-a }, { model: oai/mock-rr-b }, { model: oai/mock-rr-c }]
  - name: weighted
    strategy: weighted
    targets: [{ model: oai/mock-w-a, weight: 3 }, { model: oai/mock-w-b, weight: 1 }]
"#,
    )
    .await;
    let rr = spread(&gw, "rr", 30, hello).await;
    assert_eq!(rr.values().copied().collect::<Vec<_>>(), vec![10, 10, 10], "{rr:?}");

    let w = spread(&gw, "weighted", 400, hello).await;
    let a = w.get("mock-w-a").copied().unwrap_or(0) as f64 / 400.0;
    // 3:1 is 75%; ±7 points is over 3 standard deviations at n = 400.
    assert!((0.68..=0.82).contains(&a), "weighted 3:1 gave {w:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_sends_new_requests_to_the_idle_target() {
    let gw = gateway(
        r#"
routes:
  - name: lc
    strategy: least_connections
    targets: [{ model: oai/mock-delay-5000-lc-slow }, { model: oai/mock-lc-fast }]
"#,
    )
    .await;
    // A slow request holds a connection on the first target (the first of two idle ones)...
    let slow = |i| {
        let gw_url = gw.url("/v1/chat/completions");
        async move {
            reqwest::Client::new()
                .post(gw_url)
                .bearer_auth(MASTER_KEY)
                .json(&json!({"model": "lc", "messages": [{"role": "user", "content": format!("slow {i}")}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let first = tokio::spawn(slow(0));
    eventually(PATIENCE, async || match gw.mock.state.requests_for("mock-delay-5000-lc-slow") {
        0 => Err("the slow request never reached the slow target"),
        _ => Ok(()),
    })
    .await;
    // ...and while the slow target is busy (5 s), every new request goes to the idle one.
    let served = spread(&gw, "lc", 6, hello).await;
    assert_eq!(served.get("mock-lc-fast"), Some(&6), "{served:?}");
    assert_eq!(first.await.unwrap().status(), 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_strategy_moves_traffic_away_from_a_slow_target() {
    let gw = gateway(
        r#"
routes:
  - name: fastest
    strategy: latency
    targets: [{ model: oai/mock-delay-150-lat-slow }, { model: oai/mock-lat-fast }]
"#,
    )
    .await;
    spread(&gw, "fastest", 10, hello).await; // both get measured
    let later = spread(&gw, "fastest", 20, hello).await;
    let fast = later.get("mock-lat-fast").copied().unwrap_or(0);
    assert!(fast >= 17, "the faster target should take nearly all traffic once measured: {later:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_sticks_to_its_target_and_moves_when_it_fails() {
    let gw = gateway(
        r#"
circuit_breaker: { failure_threshold: 1, cooldown_secs: 60 }
routes:
  - name: sticky
    strategy: conversation_hash
    targets: [{ model: oai/mock-ch-a }, { model: oai/mock-ch-b }, { model: oai/mock-ch-c }]
"#,
    )
    .await;
    let conversation = |turn: usize| {
        let mut messages =
            vec![json!({"role": "system", "content": "You are a pirate."}), json!({"role": "user", "content": "Ahoy"})];
        for t in 0..turn {
            messages.push(json!({"role": "assistant", "content": format!("Arr {t}")}));
            messages.push(json!({"role": "user", "content": format!("More {t}")}));
        }
        json!({"messages": messages})
    };
    let turns = spread(&gw, "sticky", 8, conversation).await;
    assert_eq!(turns.len(), 1, "every turn of one conversation goes to one target: {turns:?}");
    let home = turns.keys().next().unwrap().clone();

    // Different conversations spread over the targets.
    let others =
        spread(&gw, "sticky", 30, |i| json!({"messages": [{"role": "user", "content": format!("topic {i}")}]})).await;
    assert!(others.len() >= 2, "{others:?}");

    // Its target fails: the conversation moves (the failed attempt falls over invisibly)...
    gw.mock.state.set_down(&home, true);
    let moved = spread(&gw, "sticky", 4, conversation).await;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(!moved.contains_key(&home), "{moved:?}");
    // ...and stays on its new target while the old one is out.
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_routing_picks_the_target_whose_examples_match() {
    let gw = gateway(
        r#"
routes:
  - name: by-topic
    strategy: semantic
    semantic: { embedding_model: oai/text-embedding-mock, threshold: 0.3, default: oai/mock-general }
    targets:
      - model: oai/mock-weather
        examples: ["What's the weather in Paris?", "Will it rain tomorrow in London?"]
      - model: oai/mock-code
        examples: ["Write a python function to sort a list", "Fix this rust compile error"]
"#,
    )
    .await;
    let ask = |q: &'static str| move |_| json!({"messages": [{"role": "user", "content": q}]});
    let weather = spread(&gw, "by-topic", 2, ask("Tell me the weather forecast for Paris")).await;
    assert_eq!(weather.get("mock-weather"), Some(&2), "{weather:?}");
    let code = spread(&gw, "by-topic", 2, ask("Please write a python function that sorts a list of numbers")).await;
    assert_eq!(code.get("mock-code"), Some(&2), "{code:?}");
    let other = spread(&gw, "by-topic", 1, ask("Compose a sonnet about autumn leaves")).await;
    assert_eq!(other.get("mock-general"), Some(&1), "below the threshold: the default: {other:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_fall_over_and_every_attempt_is_logged() {
    let gw = gateway(
        r#"
routes:
  - name: resilient
    targets: [{ model: oai/mock-fail-500 }]
    retries: 0
    fallbacks: [claude/mock-fallback]
  - name: strict
    targets: [{ model: oai/mock-fail-400-strict }]
    fallbacks: [oai/mock-a]
  - name: long
    targets: [{ model: oai/mock-ctx-overflow }]
    context_window_fallbacks: [gem/mock-big-context]
"#,
    )
    .await;
    // 500 → fallback (on another protocol, even): the client sees 200.
    let resp = gw.chat(MASTER_KEY, json!({"model": "resilient", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-llm-proxy-provider"), "claude");
    assert_eq!(header(&resp, "x-llm-proxy-model"), "mock-fallback");
    assert_eq!(header(&resp, "x-llm-proxy-attempts"), "2");
    let rid = request_id(&resp);
    let row = gw.log_entry(&rid).await;
    assert_eq!(row.status, 200);
    assert_eq!(row.provider.as_deref(), Some("claude"));
    let statuses: Vec<(String, u16)> = row.attempts.iter().map(|a| (a.model.clone(), a.status)).collect();
    assert_eq!(statuses, vec![("mock-fail-500".into(), 500), ("mock-fallback".into(), 200)]);
    assert_eq!(row.attempts[0].error_kind.map(|k| k.as_str()), Some("upstream_status"));

    // 400 is the request's fault: not retried, not failed over.
    let before = gw.mock.state.requests().len();
    let resp = gw.chat(MASTER_KEY, json!({"model": "strict", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(header(&resp, "x-llm-proxy-attempts"), "1");
    assert_eq!(gw.mock.state.requests().len(), before + 1);

    // Too long for the context window: the context-window fallback answers.
    let resp = gw.chat(MASTER_KEY, json!({"model": "long", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-llm-proxy-model"), "mock-big-context");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_its_retry_after() {
    let gw = gateway(
        r#"
routes:
  - name: patient
    targets: [{ model: oai/mock-flaky429-1-ra }]
    retries: 1
"#,
    )
    .await;
    let started = Instant::now();
    let resp = gw.chat(MASTER_KEY, json!({"model": "patient", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-llm-proxy-attempts"), "2");
    assert!(started.elapsed() >= Duration::from_secs(1), "retried before retry-after: {:?}", started.elapsed());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_before_its_first_byte_falls_over_without_a_trace() {
    let gw = gateway(
        r#"
routes:
  - name: stream-a
    targets: [{ model: oai/mock-fail-503 }]
    retries: 0
    fallbacks: [oai/mock-a]
  - name: stream-b
    targets: [{ model: claude/mock-error-after-0 }]
    retries: 0
    fallbacks: [oai/mock-a]
"#,
    )
    .await;
    for route in ["stream-a", "stream-b"] {
        let resp = gw
            .chat(MASTER_KEY, json!({"model": route, "stream": true, "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(resp.status(), 200, "{route}");
        assert_eq!(header(&resp, "x-llm-proxy-model"), "mock-a", "{route}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains("error"), "{route}: no trace of the failed attempt: {body}");
        assert!(body.trim_end().ends_with("data: [DONE]"), "{route}: {body}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_rejects_fast_and_closes_after_recovery() {
    let gw = gateway(
        r#"
circuit_breaker: { failure_threshold: 2, window_secs: 60, cooldown_secs: 1 }
# Only requests feed this breaker here (the health checker would take the target out on its own).
health_check: { enabled: false }
routes:
  - name: fragile
    targets: [{ model: oai/mock-brk }]
    retries: 0
"#,
    )
    .await;
    let ask = || gw.chat(MASTER_KEY, json!({"model": "fragile", "messages": [{"role": "user", "content": "x"}]}));
    gw.mock.state.set_down("mock-brk", true);
    for _ in 0..2 {
        assert_eq!(ask().await.status(), 502, "the upstream's failure comes through");
    }
    let seen = gw.mock.state.requests_for("mock-brk");
    let started = Instant::now();
    let resp = ask().await;
    assert_eq!(resp.status(), 503);
    // At once: not after waiting out the 1 s cooldown (loose, for a busy machine).
    assert!(started.elapsed() < Duration::from_millis(900), "an open breaker answers at once");
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "deployments_unavailable");
    assert_eq!(gw.mock.state.requests_for("mock-brk"), seen, "no request reached the upstream");

    let providers: Value = admin(&gw, "/api/providers").await;
    let d = providers["deployments"].as_array().unwrap().iter().find(|d| d["deployment"] == "oai/mock-brk").unwrap();
    assert_eq!(d["breaker"], "open", "{d}");

    gw.mock.state.set_down("mock-brk", false);
    tokio::time::sleep(Duration::from_millis(1100)).await; // waiting out the cooldown is the point
    assert_eq!(ask().await.status(), 200, "after the cooldown a probe goes through and succeeds");
    assert_eq!(ask().await.status(), 200, "and the breaker is closed again");
    gw.stop().await;
}

async fn admin(gw: &Gateway, path: &str) -> Value {
    reqwest::Client::new().get(gw.url(path)).bearer_auth(MASTER_KEY).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_dead_target_out_and_put_it_back() {
    let gw = gateway(
        r#"
health_check: { enabled: true, interval_secs: 1, timeout_secs: 1 }
routes:
  - name: watched
    targets: [{ model: oai/mock-hc-a }, { model: oai/mock-hc-b }]
"#,
    )
    .await;
    let state_of = |providers: &Value, key: &str| {
        providers["deployments"].as_array().unwrap().iter().find(|d| d["deployment"] == key).unwrap()["breaker"].clone()
    };
    let breaker_is = |want: &'static str| {
        let gw = &gw;
        async move || {
            let p = admin(gw, "/api/providers").await;
            if state_of(&p, "oai/mock-hc-a") == want {
                Ok(())
            } else {
                Err(format!("the health check did not make the target {want}: {p}"))
            }
        }
    };
    gw.mock.state.set_down("mock-hc-a", true);
    eventually(PATIENCE, breaker_is("open")).await;
    // Out of rotation: no request is sent to it.
    let before = gw.mock.state.requests_for("mock-hc-a");
    let served = spread(&gw, "watched", 6, hello).await;
    assert_eq!(served.get("mock-hc-b"), Some(&6), "{served:?}");
    assert_eq!(gw.mock.state.requests_for("mock-hc-a"), before);

    gw.mock.state.set_down("mock-hc-a", false);
    eventually(PATIENCE, breaker_is("closed")).await;
    let served = spread(&gw, "watched", 6, hello).await;
    assert_eq!(served.get("mock-hc-a"), Some(&3), "back in the rotation: {served:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_api_shows_health_in_flight_and_latency() {
    let gw = gateway(
        r#"
routes:
  - name: seen
    targets: [{ model: oai/mock-delay-50-seen }]
"#,
    )
    .await;
    spread(&gw, "seen", 3, hello).await;
    let p = admin(&gw, "/api/providers").await;
    let d = p["deployments"].as_array().unwrap().iter().find(|d| d["deployment"] == "oai/mock-delay-50-seen").unwrap();
    assert_eq!(d["breaker"], "closed");
    assert_eq!(d["in_flight"], 0);
    assert!(d["latency_ms"].as_f64().unwrap() >= 40.0, "{d}");
    assert!(p["data"].as_array().unwrap().iter().any(|x| x["name"] == "oai"));
    assert!(!p.to_string().contains("canary"), "no key in the providers API");
    // A virtual key may not read it.
    let (_, key) = gw.create_key(&[], None).await;
    let resp = reqwest::Client::new().get(gw.url("/api/providers")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    gw.stop().await;
}

async fn stored_routes_are_served_within_a_few_seconds(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else { return };
    let route: llm_proxy_core::config::RouteConfig = serde_json::from_value(json!({
        "name": "from-db", "strategy": "round_robin", "targets": [{"model": "oai/mock-db-a"}, {"model": "oai/mock-db-b"}]
    }))
    .unwrap();
    gw.store.put_route(&route).await.unwrap();
    let status = async || {
        let resp =
            gw.chat(MASTER_KEY, json!({"model": "from-db", "messages": [{"role": "user", "content": "x"}]})).await;
        resp.status().as_u16()
    };
    eventually(PATIENCE, async || match status().await {
        200 => Ok(()),
        other => Err(format!("a stored route was not served: {other}")),
    })
    .await;
    let served = spread(&gw, "from-db", 4, hello).await;
    assert_eq!(served.len(), 2, "{served:?}");
    gw.store.delete_route("from-db").await.unwrap();
    eventually(PATIENCE, async || match status().await {
        404 => Ok(()),
        other => Err(format!("a deleted route was still answered {other}")),
    })
    .await;
    gw.stop().await;
}

on_both_backends!(stored_routes_are_served_within_a_few_seconds);
