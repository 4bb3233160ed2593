//! `/api/routes` through the real server: a route stored over HTTP serves the very next request,
//! a replacement moves the next one, a deletion makes the name unknown again; invalid routes are
//! refused with every problem named; the config file's routes are shown read-only.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, MASTER_KEY};
use serde_json::{Value, json};

async fn call(gw: &Gateway, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, gw.url(path)).bearer_auth(MASTER_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The upstream model that served a chat to `model`, or the status when it failed.
async fn served_by(gw: &Gateway, model: &str) -> Result<String, u16> {
    let resp = gw.chat(MASTER_KEY, json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})).await;
    match resp.status().as_u16() {
        200 => Ok(resp.headers()["x-llm-proxy-model"].to_str().expect("ascii").to_string()),
        status => Err(status),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_stored_over_http_serves_the_next_request_until_deleted() {
    let file_route = "routes:\n  - name: from-file\n    targets: [{ model: mock-b }]";
    let gw = Gateway::start_with(Backend::Sqlite, file_route).await.expect("SQLite");
    let route = json!({"name": "smart", "targets": [{"model": "mock-a"}], "retries": 0});
    let (status, created) = call(&gw, reqwest::Method::POST, "/api/routes", Some(route.clone())).await;
    assert_eq!((status, created["source"].as_str()), (201, Some("database")), "{created}");
    assert_eq!(served_by(&gw, "smart").await, Ok("mock-a".into()), "the very next request");
    assert_eq!(call(&gw, reqwest::Method::POST, "/api/routes", Some(route)).await.0, 409, "it exists");

    let (_, listed) = call(&gw, reqwest::Method::GET, "/api/routes", None).await;
    let sources: Vec<(&str, &str)> = listed["data"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| (r["name"].as_str().expect("name"), r["source"].as_str().expect("source")))
        .collect();
    assert_eq!(sources, [("from-file", "file"), ("smart", "database")]);

    let moved = json!({"name": "smart", "targets": [{"model": "mock-b"}]});
    let (status, replaced) = call(&gw, reqwest::Method::PUT, "/api/routes/smart", Some(moved)).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(served_by(&gw, "smart").await, Ok("mock-b".into()), "the replacement serves the next one");
    let renamed = json!({"name": "other", "targets": [{"model": "mock-b"}]});
    assert_eq!(call(&gw, reqwest::Method::PUT, "/api/routes/smart", Some(renamed)).await.0, 400);

    for bad in [
        json!({"name": "broken", "targets": [{"model": "no-such-model"}]}),
        json!({"name": "mock-a", "targets": [{"model": "mock-b"}]}),
        json!({"name": "x", "targets": [{"model": "mock-a"}], "surprise": true}),
        json!({"name": "has space", "targets": [{"model": "mock-a"}]}),
    ] {
        let (status, err) = call(&gw, reqwest::Method::POST, "/api/routes", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} → {err}");
    }
    let (_, err) = call(
        &gw,
        reqwest::Method::POST,
        "/api/routes",
        Some(json!({"name": "broken", "targets": [{"model": "no-such-model"}]})),
    )
    .await;
    assert!(err["error"]["message"].as_str().expect("message").contains("no-such-model"), "{err}");

    let edit = json!({"name": "from-file", "targets": [{"model": "mock-a"}]});
    assert_eq!(call(&gw, reqwest::Method::PUT, "/api/routes/from-file", Some(edit.clone())).await.0, 409);
    assert_eq!(call(&gw, reqwest::Method::POST, "/api/routes", Some(edit)).await.0, 409);
    assert_eq!(call(&gw, reqwest::Method::DELETE, "/api/routes/from-file", None).await.0, 409);

    assert_eq!(call(&gw, reqwest::Method::DELETE, "/api/routes/smart", None).await.0, 204);
    assert_eq!(served_by(&gw, "smart").await, Err(404), "the name is unknown again");
    assert_eq!(call(&gw, reqwest::Method::DELETE, "/api/routes/smart", None).await.0, 404);

    let (_, audit) = call(&gw, reqwest::Method::GET, "/api/audit", None).await;
    let actions: Vec<&str> =
        audit["data"].as_array().expect("entries").iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(&actions[..3], ["route.delete", "route.update", "route.create"]);
}
