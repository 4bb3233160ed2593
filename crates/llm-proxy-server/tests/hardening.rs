//! What the gateway keeps to itself: credentials inside provider URLs. None of it touches the
//! database, so these run on SQLite.

// Tests are clients, not the gateway: their own HTTP client and tasks are fine.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use common::{Backend, Gateway, MASTER_KEY};
use llm_proxy_testkit::MockConfig;
use serde_json::Value;

async fn admin(gw: &Gateway, path: &str) -> Value {
    reqwest::Client::new().get(gw.url(path)).bearer_auth(MASTER_KEY).send().await.unwrap().json().await.unwrap()
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
    gw.stop().await;
}
