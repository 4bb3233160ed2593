//! What the gateway keeps to itself: credentials inside provider URLs, providers a key may not
//! use, and the words of an upstream that refused the gateway's own key. None of it touches the
//! database beyond keys, so these run on SQLite.

#![expect(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    reason = "tests are clients, not the gateway: their own HTTP clients and tasks are fine, and they assert by unwrapping"
)]

mod common;

use common::{Backend, Gateway, MASTER_KEY, PATIENCE, eventually};
use llm_proxy_testkit::MockConfig;
use serde_json::{Value, json};

async fn admin(gw: &Gateway, path: &str) -> Value {
    reqwest::Client::new().get(gw.url(path)).bearer_auth(MASTER_KEY).send().await.unwrap().json().await.unwrap()
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_urls_are_listed_without_their_credentials() {
    let providers = "  vault:\n    protocol: openai\n    base_url: http://user:pw-canary@127.0.0.1:9/v1?token=tok-canary&region=eu\n    models: [m]\n  bare:\n    protocol: openai\n    base_url: https://userinfo-canary@127.0.0.1:9/v1\n    models: [m2]\n";
    let gw = Gateway::start_custom(Backend::Sqlite, providers, "", MockConfig::default()).await.unwrap();
    let listed = admin(&gw, "/api/providers").await;
    assert!(!listed.to_string().contains("canary"), "a credential is shown: {listed}");
    let url =
        |name: &str| listed["data"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["base_url"].clone();
    assert_eq!(url("vault"), "http://user:***@127.0.0.1:9/v1?token=***&region=eu");
    assert_eq!(url("bare"), "https://***@127.0.0.1:9/v1");
    let mock = listed["data"].as_array().unwrap().iter().find(|p| p["name"] == "mock").unwrap();
    // The harness's provider key is `sk-upstream-canary-0000`: its last four only.
    assert_eq!((mock["key_last4"].as_str(), mock["source"].as_str()), (Some("0000"), Some("file")));
    gw.stop().await;
}

/// `mock-twin` is served by three providers: a key sees only the ones it may use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_model_names_only_what_the_key_may_use() {
    let twins: String = ["twin1", "twin2", "twin3"]
        .iter()
        .map(|t| format!("  {t}:\n    protocol: openai\n    base_url: ${{MOCK_URL}}\n    models: [mock-twin]\n"))
        .collect();
    let gw = Gateway::start_custom(Backend::Sqlite, &twins, "", MockConfig::default()).await.unwrap();

    // One allowed: that is the one the key meant.
    let (_, one) = gw.create_key(&["twin2/mock-twin"], None).await;
    let resp = gw.chat(&one, ask("mock-twin")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llm-proxy-provider"], "twin2");

    // Several allowed: ambiguous among those only.
    let (_, two) = gw.create_key(&["twin1/mock-twin", "twin2/mock-twin"], None).await;
    let resp = gw.chat(&two, ask("mock-twin")).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_ambiguous");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("twin1/mock-twin") && message.contains("twin2/mock-twin"), "{message}");
    assert!(!message.contains("twin3"), "a provider the key may not use is named: {message}");

    // None allowed: refused as any model the key may not use, naming no provider.
    let (_, none) = gw.create_key(&["mock-a"], None).await;
    let resp = gw.chat(&none, ask("mock-twin")).await;
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap();
    assert!(body.contains("model_not_allowed"), "{body}");
    assert!(["twin1", "twin2", "twin3"].iter().all(|t| !body.contains(t)), "a provider is named: {body}");

    // The master key may use all three.
    let body: Value = gw.chat(MASTER_KEY, ask("mock-twin")).await.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("twin3/mock-twin"), "{body}");
    gw.stop().await;
}

/// Every protocol's refusal of the gateway's key — Gemini's 400 `API_KEY_INVALID` too — reaches
/// the client as a 502 that withholds the upstream's words, and takes the deployment out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_provider_key_is_a_502_from_every_protocol() {
    let mock = MockConfig {
        anthropic_key: Some("the-right-anthropic-key".into()),
        gemini_key: Some("the-right-gemini-key".into()),
        glm_key: "otherid.othersecret".into(),
    };
    let extra = r#"
health_check: { enabled: true, interval_secs: 1, timeout_secs: 1 }
routes:
  - name: gem-watched
    targets: [{ model: gem/gemini-2.5-flash }]
"#;
    let gw = Gateway::start_custom(Backend::Sqlite, "", extra, mock).await.unwrap();
    for (model, upstream_text) in [
        ("gem/gemini-2.5-flash", "API key not valid"),
        ("claude/claude-sonnet-4-5", "x-api-key"),
        ("zhipu/glm-4.5", "Authorization"),
    ] {
        for stream in [false, true] {
            let mut body = ask(model);
            body["stream"] = json!(stream);
            let resp = gw.chat(MASTER_KEY, body).await;
            assert_eq!(resp.status(), 502, "{model} (stream: {stream})");
            let text = resp.text().await.unwrap();
            assert!(text.contains("refused the gateway's credentials"), "{model}: {text}");
            assert!(!text.contains(upstream_text) && !text.contains("API_KEY_INVALID"), "{model}: {text}");
            assert!(!text.contains("身份"), "{model}: {text}");
        }
    }
    // The health check sees the refusal too (a 400 would have counted as "up").
    eventually(PATIENCE, async || {
        let p = admin(&gw, "/api/providers").await;
        let d = p["deployments"].as_array().unwrap().iter().find(|d| d["deployment"] == "gem/gemini-2.5-flash");
        if d.is_some_and(|d| d["breaker"] == "open") {
            Ok(())
        } else {
            Err(format!("the health check did not take the refused deployment out: {p}"))
        }
    })
    .await;
    gw.stop().await;
}
