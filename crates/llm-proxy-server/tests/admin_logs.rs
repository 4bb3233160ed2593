//! `/api/logs` filters, one row by id, and deletion by filter through the real server, on SQLite
//! and PostgreSQL: each filter selects exactly its rows, a member reads only its own rows (another's
//! is 404), and a deletion removes what its filter names and leaves usage statistics as they were.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, MASTER_KEY, request_id};
use llm_proxy_core::user::Role;
use serde_json::{Value, json};

async fn get(gw: &Gateway, auth: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().get(gw.url(path)).bearer_auth(auth).send().await.expect("answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        page["data"].as_array().expect("rows").iter().map(|r| r["request_id"].as_str().expect("id").into()).collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn filters_select_their_rows_and_deletion_keeps_statistics(backend: Backend) {
    let Some(gw) = Gateway::start(backend).await else { return };
    llm_proxy_server::users::create(gw.store.as_ref(), "mia", Role::Member, "mia-password-0123").await.expect("user");
    let (_, mias) = gw.create_key_with(&[], None, Default::default(), Some("mia")).await;
    let (_, other) = gw.create_key(&[], None).await;
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let ok_a = request_id(&gw.chat(&mias, ask("mock-a")).await);
    let limited = request_id(&gw.chat(&other, ask("mock-fail-429")).await);
    let ok_b = request_id(&gw.chat(&other, ask("mock-b")).await);
    for id in [&ok_a, &limited, &ok_b] {
        gw.log_entry(id).await;
    }

    for (query, want) in [
        ("model=mock-b", vec![ok_b.clone()]),
        ("status=429", vec![limited.clone()]),
        ("status=4xx", vec![limited.clone()]),
        ("status=2xx", vec![ok_a.clone(), ok_b.clone()]),
        ("error_kind=upstream_status", vec![limited.clone()]),
        ("provider=mock", vec![ok_a.clone(), limited.clone(), ok_b.clone()]),
        ("user=mia", vec![ok_a.clone()]),
        ("from=2999-01-01", vec![]),
        ("to=2000-01-01", vec![]),
        ("model=mock-a&status=2xx", vec![ok_a.clone()]),
    ] {
        let (status, page) = get(&gw, MASTER_KEY, &format!("/api/logs?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(ids(&page), sorted(want), "{query}");
    }
    for bad in ["status=6xx", "error_kind=nonsense", "from=yesterday", "cursor=zzz"] {
        assert_eq!(get(&gw, MASTER_KEY, &format!("/api/logs?{bad}")).await.0, 400, "{bad}");
    }

    let (status, row) = get(&gw, MASTER_KEY, &format!("/api/logs/{limited}")).await;
    assert_eq!((status, row["status"].as_u64(), row["error_kind"].as_str()), (200, Some(429), Some("upstream_status")));
    let resp = reqwest::Client::new()
        .post(gw.url("/api/auth/login"))
        .json(&json!({"username": "mia", "password": "mia-password-0123"}))
        .send()
        .await
        .expect("answers");
    let cookie = resp.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_string();
    let as_mia = |path: String| {
        let cookie = cookie.clone();
        let url = gw.url(&path);
        async move { reqwest::Client::new().get(url).header("cookie", cookie).send().await.expect("answers").status() }
    };
    assert_eq!(as_mia(format!("/api/logs/{ok_a}")).await, 200);
    assert_eq!(as_mia(format!("/api/logs/{limited}")).await, 404, "another's row does not exist for it");

    let delete = |query: &'static str| {
        let url = gw.url(&format!("/api/logs{query}"));
        async move {
            let resp = reqwest::Client::new().delete(url).bearer_auth(MASTER_KEY).send().await.expect("answers");
            (resp.status().as_u16(), resp.json::<Value>().await.expect("json"))
        }
    };
    assert_eq!(delete("").await.0, 400, "a bare DELETE names no rows");
    assert_eq!(delete("?model=mock-b").await, (200, json!({"deleted": 1})));
    let (_, left) = get(&gw, MASTER_KEY, "/api/logs").await;
    assert_eq!(ids(&left), sorted(vec![ok_a.clone(), limited.clone()]));
    let (_, stats) = get(&gw, MASTER_KEY, "/api/stats").await;
    assert_eq!(stats["total"]["requests"], 3, "statistics keep what the log no longer has");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_their_rows_and_deletion_keeps_statistics_on_sqlite() {
    filters_select_their_rows_and_deletion_keeps_statistics(Backend::Sqlite).await;
}

#[llm_proxy_testkit_macros::needs_postgres]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_their_rows_and_deletion_keeps_statistics_on_postgres() {
    filters_select_their_rows_and_deletion_keeps_statistics(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_every_model_with_its_price() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let (status, page) = get(&gw, MASTER_KEY, "/api/models?limit=1000").await;
    assert_eq!(status, 200);
    let models = page["data"].as_array().expect("models");
    let by_id = |id: &str| models.iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("{id} listed: {page}"));
    let default = by_id("default");
    assert_eq!((default["provider"].as_str(), default["upstream_model"].as_str()), (Some("mock"), Some("mock-a")));
    assert!(models.iter().all(|m| m.get("price").is_some()), "every model says its price, or null");
    let (_, first) = get(&gw, MASTER_KEY, "/api/models?limit=1").await;
    assert_eq!(first["data"].as_array().map(Vec::len), Some(1));
    assert!(first["next"].is_string(), "more than one model: a next page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_show_the_running_configuration_without_a_secret() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let (status, settings) = get(&gw, MASTER_KEY, "/api/settings").await;
    assert_eq!(status, 200);
    let effective = &settings["effective"];
    assert_eq!((effective["master_key"].as_str(), effective["max_body_bytes"].as_u64()), (Some("***"), Some(65536)));
    let text = settings.to_string();
    for secret in [MASTER_KEY, common::ADMIN_PASSWORD, "sk-upstream-canary-0000"] {
        assert!(!text.contains(secret), "the settings show {secret}");
    }
}

/// Price overrides stored over HTTP price the very next request, show in the catalog, are refused
/// whole when any entry does not apply, and are removed with `{}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_overrides_put_over_http_price_the_next_request() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let put = |body: Value| {
        let url = gw.url("/api/models/overrides");
        async move {
            let resp =
                reqwest::Client::new().put(url).bearer_auth(MASTER_KEY).json(&body).send().await.expect("answers");
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let prices = json!({"mock/mock-a": {"input_per_mtok": 1_000_000.0, "output_per_mtok": 2_000_000.0}});
    let (status, stored) = put(prices.clone()).await;
    assert_eq!((status, &stored["overrides"]), (200, &prices), "{stored}");

    let (_, models) = get(&gw, MASTER_KEY, "/api/models?limit=1000").await;
    let default = models["data"].as_array().expect("models").iter().find(|m| m["id"] == "default").expect("listed");
    assert_eq!(default["price"]["input_cost_per_token"], 1.0, "{default}");
    let asked = json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]});
    let id = request_id(&gw.chat(MASTER_KEY, asked).await);
    let row = gw.log_entry(&id).await;
    let want = row.prompt_tokens.expect("prompt") as f64 + 2.0 * row.completion_tokens.expect("completion") as f64;
    assert_eq!(row.cost_usd, Some(want), "the next request is priced by the stored overrides");

    let (status, err) = put(json!({"mock/mock-a": {"input_per_mtok": 1.0, "bogus": 3}})).await;
    assert_eq!(status, 400, "{err}");
    let (_, still) = get(&gw, MASTER_KEY, "/api/models/overrides").await;
    assert_eq!(still["overrides"], prices, "a refused change changes nothing");

    assert_eq!(put(json!({})).await.0, 200);
    let (_, models) = get(&gw, MASTER_KEY, "/api/models?limit=1000").await;
    let default = models["data"].as_array().expect("models").iter().find(|m| m["id"] == "default").expect("listed");
    assert_eq!(default["price"], Value::Null, "removed: the mock model has no registry price");
    let (_, audit) = get(&gw, MASTER_KEY, "/api/audit").await;
    let actions: Vec<&str> =
        audit["data"].as_array().expect("entries").iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(&actions[..2], ["prices.update", "prices.update"]);
}
