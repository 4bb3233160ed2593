//! The admin API's keys and users through the real server: a key made over HTTP answers on the
//! very next request and is refused once revoked; two members never see, read or revoke each
//! other's keys (404, not 403); a viewer reads all and writes nothing; nothing a body adds can
//! set what its sender may not; users are made, changed and deleted by admins, a member changes
//! only its own password and only with the current one.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, MASTER_KEY};
use llm_proxy_core::user::Role;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// How a request authenticates: the master key, or a session's cookie and CSRF token.
enum As {
    Master,
    Session { cookie: String, csrf: String },
}

async fn log_in(gw: &Gateway, username: &str, password: &str) -> As {
    let resp = client()
        .post(gw.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200, "{username} logs in");
    let cookie = resp.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_string();
    let body: Value = resp.json().await.expect("json");
    As::Session { cookie, csrf: body["csrf_token"].as_str().expect("csrf").to_string() }
}

async fn call(gw: &Gateway, who: &As, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client().request(method, gw.url(path));
    req = match who {
        As::Master => req.bearer_auth(MASTER_KEY),
        As::Session { cookie, csrf } => req.header("cookie", cookie).header("x-csrf-token", csrf),
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn member(gw: &Gateway, name: &str, role: Role) -> As {
    let password = format!("{name}-password-0123");
    llm_proxy_server::users::create(gw.store.as_ref(), name, role, &password).await.expect("user");
    log_in(gw, name, &password).await
}

fn chat() -> Value {
    json!({"model": "mock-a", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_over_http_answers_at_once_and_stops_when_revoked() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let asked =
        json!({"name": "app", "user": "ada", "models": ["mock-a"], "rpm": 100, "budget_daily": 5.0, "expires": "30d"});
    let (status, created) = call(&gw, &As::Master, reqwest::Method::POST, "/api/apikeys", Some(asked)).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().expect("the secret, once").to_string();
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!((created["limits"]["rpm"].as_u64(), created["user"].as_str()), (Some(100), Some("ada")));
    assert!(created["expires_at"].is_number());

    assert_eq!(gw.chat(&secret, chat()).await.status(), 200, "the very next request");

    let (_, listed) = call(&gw, &As::Master, reqwest::Method::GET, "/api/apikeys", None).await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(&secret[8..]), "a list never shows a secret");
    let (status, one) = call(&gw, &As::Master, reqwest::Method::GET, &format!("/api/apikeys/{id}"), None).await;
    assert_eq!((status, one.get("key")), (200, None));

    let (status, revoked) = call(&gw, &As::Master, reqwest::Method::DELETE, &format!("/api/apikeys/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_number());
    assert_eq!(gw.chat(&secret, chat()).await.status(), 401, "refused on the next request");

    for bad in [
        json!({"name": "x", "id": "chosen"}),
        json!({"name": "x", "revoked_at": 1}),
        json!({"name": ""}),
        json!({"name": "x", "rpm": 0}),
        json!({"name": "x", "budget_daily": -1}),
        json!({"name": "x", "expires": "soon"}),
        json!({"name": "x", "user": "../etc"}),
        json!({"name": 7}),
    ] {
        let (status, err) = call(&gw, &As::Master, reqwest::Method::POST, "/api/apikeys", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} → {err}");
        assert!(err["error"]["message"].is_string());
    }
    let huge = "x".repeat(70 * 1024);
    let (status, _) = call(&gw, &As::Master, reqwest::Method::POST, "/api/apikeys", Some(json!({"name": huge}))).await;
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_never_see_each_others_keys_and_a_viewer_writes_nothing() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let (alice, bob, val) = (
        member(&gw, "alice", Role::Member).await,
        member(&gw, "bob", Role::Member).await,
        member(&gw, "val", Role::Viewer).await,
    );

    let (status, a_key) = call(&gw, &alice, reqwest::Method::POST, "/api/apikeys", Some(json!({"name": "a"}))).await;
    assert_eq!((status, a_key["user"].as_str()), (201, Some("alice")), "a member's key is its own");
    let a_id = a_key["id"].as_str().expect("id");
    let (status, _) =
        call(&gw, &alice, reqwest::Method::POST, "/api/apikeys", Some(json!({"name": "b", "user": "bob"}))).await;
    assert_eq!(status, 403, "not for someone else");
    let (_, b_key) = call(&gw, &bob, reqwest::Method::POST, "/api/apikeys", Some(json!({"name": "b"}))).await;

    let (_, bobs) = call(&gw, &bob, reqwest::Method::GET, "/api/apikeys", None).await;
    let ids: Vec<&str> = bobs["data"].as_array().expect("list").iter().map(|k| k["id"].as_str().expect("id")).collect();
    assert_eq!(ids, [b_key["id"].as_str().expect("id")]);
    let (_, filtered) = call(&gw, &bob, reqwest::Method::GET, "/api/apikeys?user=alice", None).await;
    assert_eq!(filtered["data"], json!([]), "asking for another's keys shows none");
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let (status, err) = call(&gw, &bob, method, &format!("/api/apikeys/{a_id}"), None).await;
        assert_eq!(status, 404, "another's key does not exist for it: {err}");
    }
    assert_eq!(gw.chat(a_key["key"].as_str().expect("secret"), chat()).await.status(), 200, "still alive");

    let (_, all) = call(&gw, &val, reqwest::Method::GET, "/api/apikeys", None).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2));
    let (status, _) = call(&gw, &val, reqwest::Method::POST, "/api/apikeys", Some(json!({"name": "v"}))).await;
    assert_eq!(status, 403);
    let (status, _) = call(&gw, &val, reqwest::Method::DELETE, &format!("/api/apikeys/{a_id}"), None).await;
    assert_eq!(status, 403);

    // A cookie request that changes something needs the session's CSRF token.
    let As::Session { cookie, .. } = &alice else { unreachable!("a session") };
    let resp = client()
        .post(gw.url("/api/apikeys"))
        .header("cookie", cookie)
        .json(&json!({"name": "no-token"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_managed_by_admins_and_a_member_changes_only_its_own_password() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let asked = json!({"username": "mia", "password": "mia-password-0123", "role": "member"});
    let (status, mia) = call(&gw, &As::Master, reqwest::Method::POST, "/api/users", Some(asked.clone())).await;
    assert_eq!((status, mia["role"].as_str()), (201, Some("member")), "{mia}");
    assert!(mia.get("password_hash").is_none() && !mia.to_string().contains("argon2"));
    let mia_id = mia["id"].as_str().expect("id").to_string();
    assert_eq!(call(&gw, &As::Master, reqwest::Method::POST, "/api/users", Some(asked)).await.0, 409);
    for bad in [
        json!({"username": "x y", "password": "long-enough-pass", "role": "member"}),
        json!({"username": "short", "password": "short", "role": "member"}),
        json!({"username": "king", "password": "long-enough-pass", "role": "king"}),
        json!({"username": "sneaky", "password": "long-enough-pass", "role": "member", "id": "mine"}),
    ] {
        assert_eq!(
            call(&gw, &As::Master, reqwest::Method::POST, "/api/users", Some(bad.clone())).await.0,
            400,
            "{bad}"
        );
    }

    let session = log_in(&gw, "mia", "mia-password-0123").await;
    let (_, listed) = call(&gw, &session, reqwest::Method::GET, "/api/users", None).await;
    let names: Vec<&str> =
        listed["data"].as_array().expect("list").iter().map(|u| u["username"].as_str().expect("name")).collect();
    assert_eq!(names, ["mia"], "a member sees itself only");
    let admin = gw.store.user_by_name("admin").await.expect("store").expect("the first admin");
    let (status, _) = call(&gw, &session, reqwest::Method::GET, &format!("/api/users/{}", admin.id), None).await;
    assert_eq!(status, 404);
    let me = format!("/api/users/{mia_id}");
    let (status, _) = call(&gw, &session, reqwest::Method::PATCH, &me, Some(json!({"role": "admin"}))).await;
    assert_eq!(status, 403, "a member cannot raise its own role");
    let (status, _) = call(&gw, &session, reqwest::Method::POST, "/api/users", Some(json!({}))).await;
    assert_eq!(status, 403);
    let (status, _) =
        call(&gw, &session, reqwest::Method::PATCH, &me, Some(json!({"password": "a-new-password-01"}))).await;
    assert_eq!(status, 403, "not without the current password");
    let change = json!({"password": "a-new-password-01", "current_password": "mia-password-0123"});
    let (status, _) = call(&gw, &session, reqwest::Method::PATCH, &me, Some(change)).await;
    assert_eq!(status, 200);
    assert_eq!(call(&gw, &session, reqwest::Method::GET, "/api/auth/me", None).await.0, 401, "its sessions ended");

    let (status, promoted) = call(&gw, &As::Master, reqwest::Method::PATCH, &me, Some(json!({"role": "viewer"}))).await;
    assert_eq!((status, promoted["role"].as_str()), (200, Some("viewer")));
    let session = log_in(&gw, "mia", "a-new-password-01").await;
    let (_, key) =
        call(&gw, &As::Master, reqwest::Method::POST, "/api/apikeys", Some(json!({"name": "m", "user": "mia"}))).await;
    let secret = key["key"].as_str().expect("secret").to_string();
    assert_eq!(gw.chat(&secret, chat()).await.status(), 200);
    assert_eq!(call(&gw, &As::Master, reqwest::Method::DELETE, &me, None).await.0, 204);
    assert_eq!(gw.chat(&secret, chat()).await.status(), 401, "a deleted user's keys are revoked with it");
    assert_eq!(call(&gw, &session, reqwest::Method::GET, "/api/auth/me", None).await.0, 401, "deleted, logged out");
    assert_eq!(call(&gw, &As::Master, reqwest::Method::GET, &me, None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_and_login_is_in_the_audit_log_with_no_secret() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let (_, created) =
        call(&gw, &As::Master, reqwest::Method::POST, "/api/apikeys", Some(json!({"name": "audited"}))).await;
    let secret = created["key"].as_str().expect("secret").to_string();
    let key_id = created["id"].as_str().expect("id").to_string();
    call(&gw, &As::Master, reqwest::Method::DELETE, &format!("/api/apikeys/{key_id}"), None).await;
    let asked = json!({"username": "aud", "password": "aud-password-0123", "role": "member"});
    let (_, user) = call(&gw, &As::Master, reqwest::Method::POST, "/api/users", Some(asked)).await;
    let user_id = user["id"].as_str().expect("id").to_string();
    let change = json!({"password": "aud-password-4567"});
    call(&gw, &As::Master, reqwest::Method::PATCH, &format!("/api/users/{user_id}"), Some(change)).await;
    let failed = client()
        .post(gw.url("/api/auth/login"))
        .json(&json!({"username": "aud", "password": "wrong-guess-999"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(failed.status(), 401);
    let member = log_in(&gw, "aud", "aud-password-4567").await;
    assert_eq!(call(&gw, &member, reqwest::Method::GET, "/api/audit", None).await.0, 403, "admins only");

    let (status, page) = call(&gw, &As::Master, reqwest::Method::GET, "/api/audit", None).await;
    assert_eq!(status, 200);
    let entries = page["data"].as_array().expect("entries");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(
        actions,
        ["login", "login.failed", "user.update", "user.create", "key.revoke", "key.create", "user.create"],
        "newest first, back to the first admin made at start-up"
    );
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).expect("entry");
    let create = find("key.create");
    assert_eq!((create["actor"].as_str(), create["target"].as_str()), (Some("(master key)"), Some(key_id.as_str())));
    assert_eq!(create["after"]["name"], "audited");
    assert!(create["ip"].as_str().is_some_and(|ip| ip.starts_with("127.")), "{create}");
    assert!(find("key.revoke")["after"]["revoked_at"].is_number());
    assert_eq!(find("user.update")["after"]["password"], "changed");
    let failed = find("login.failed");
    assert_eq!((failed["actor"].as_str(), failed["target"].as_str()), (Some("aud"), Some("aud")));
    let text = page.to_string();
    for secret_text in [&secret[8..], "aud-password-0123", "aud-password-4567", "wrong-guess-999", "argon2"] {
        assert!(!text.contains(secret_text), "the audit log holds {secret_text}");
    }

    // Paged by cursor, and exported as JSON lines.
    let (_, first) = call(&gw, &As::Master, reqwest::Method::GET, "/api/audit?limit=4", None).await;
    let cursor = first["next"].as_str().expect("a next page");
    let (_, second) =
        call(&gw, &As::Master, reqwest::Method::GET, &format!("/api/audit?limit=4&cursor={cursor}"), None).await;
    let rest: Vec<&str> =
        second["data"].as_array().expect("entries").iter().map(|e| e["action"].as_str().expect("a")).collect();
    assert_eq!(rest, ["key.revoke", "key.create", "user.create"]);
    let resp = client().get(gw.url("/api/audit?format=jsonl")).bearer_auth(MASTER_KEY).send().await.expect("answers");
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> =
        resp.text().await.expect("text").lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[6]["actor"], "(startup)");
}

/// A key written to the database by another process (the CLI, another instance) answers on its
/// very first request, before any poll could have brought it: the key ring miss asks the
/// database. Random keys stay 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_elsewhere_works_on_its_first_request() {
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let generated = llm_proxy_core::virtual_key::generate_key();
    gw.store
        .insert_key(&llm_proxy_core::virtual_key::NewKey {
            id: uuid::Uuid::now_v7().to_string(),
            name: "elsewhere".into(),
            hash: generated.hash,
            display: generated.display,
            models: Vec::new(),
            user: None,
            expires_at: None,
            limits: Default::default(),
        })
        .await
        .expect("inserted");
    // No wait for the poll.
    assert_eq!(gw.chat(&generated.secret, chat()).await.status(), 200);
    for i in 0..50 {
        assert_eq!(gw.chat(&format!("sk-llmp-random-guess-{i:040}"), chat()).await.status(), 401);
    }
}

/// Whatever a body holds, the admin API's writes (and `/v1/batches`) answer a success or an error
/// in the API's shape — never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_on_the_admin_api_gets_a_500() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let gw = Gateway::start(Backend::Sqlite).await.expect("SQLite");
    let (_, mia) = call(
        &gw,
        &As::Master,
        reqwest::Method::POST,
        "/api/users",
        Some(json!({"username": "fuzz", "password": "fuzz-password-0123", "role": "member"})),
    )
    .await;
    let user_path = format!("/api/users/{}", mia["id"].as_str().expect("id"));

    fn random_json(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
        match rng.gen_range(0..if depth > 2 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(rng.r#gen::<bool>()),
            2 => json!(rng.r#gen::<i64>()),
            3 => json!((0..rng.gen_range(0..16)).map(|_| rng.r#gen::<char>()).collect::<String>()),
            4 => json!(rng.r#gen::<f64>() * 1e300),
            5 => json!(["admin", "member", "viewer", "30d", "mock-a", "", "x/y"][rng.gen_range(0..7)]),
            6 => Value::Array((0..rng.gen_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
            _ => Value::Object(
                (0..rng.gen_range(0..3)).map(|i| (format!("k{i}"), random_json(rng, depth + 1))).collect(),
            ),
        }
    }
    let targets: [(reqwest::Method, &str, &[&str]); 5] = [
        (
            reqwest::Method::POST,
            "/api/apikeys",
            &["name", "user", "models", "rpm", "tpm", "max_parallel", "budget_daily", "expires"],
        ),
        (reqwest::Method::POST, "/api/users", &["username", "password", "role"]),
        (reqwest::Method::PATCH, user_path.as_str(), &["role", "password", "current_password"]),
        (
            reqwest::Method::POST,
            "/api/routes",
            &["name", "targets", "strategy", "fallbacks", "retries", "timeout_secs"],
        ),
        (reqwest::Method::POST, "/v1/batches", &["input_file_id", "endpoint", "completion_window", "metadata"]),
    ];
    for case in 0..250 {
        let (method, path, fields) = &targets[case % targets.len()];
        let body = if case % 7 == 0 {
            (0..rng.gen_range(0..200)).map(|_| rng.r#gen::<u8>()).collect::<Vec<u8>>()
        } else {
            let mut obj = serde_json::Map::new();
            for _ in 0..rng.gen_range(0..4) {
                obj.insert(fields[rng.gen_range(0..fields.len())].to_string(), random_json(&mut rng, 0));
            }
            serde_json::to_vec(&Value::Object(obj)).expect("json")
        };
        let resp = client()
            .request(method.clone(), gw.url(path))
            .bearer_auth(MASTER_KEY)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        assert!(status < 500, "case {case}: {status} for {method} {path} {}: {text}", String::from_utf8_lossy(&body));
        if status >= 400 {
            let err: Value = serde_json::from_str(&text).unwrap_or_default();
            assert!(err["error"]["message"].is_string(), "case {case}: {text}");
        }
    }
}
