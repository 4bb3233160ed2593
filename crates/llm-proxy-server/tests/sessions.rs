//! Users and sessions on the admin API, through the real server: logging in sets a signed,
//! HttpOnly, SameSite=Strict cookie and returns the CSRF token; a cookie request that changes
//! anything without the token is refused; logout and a password change end sessions server-side;
//! a forged or expired cookie is no session; failed logins lock a username out; unknown users
//! and wrong passwords look the same; a member reads only its own keys' logs and usage, a viewer
//! everything but the operators' write paths.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{ADMIN_PASSWORD, Backend, Gateway, MASTER_KEY};
use llm_proxy_core::user::Role;
use serde_json::{Value, json};

async fn gateway() -> Gateway {
    Gateway::start(Backend::Sqlite).await.expect("SQLite always runs")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A logged-in session: its cookie header value and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(gw: &Gateway, username: &str, password: &str) -> reqwest::Response {
    client()
        .post(gw.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("answers")
}

async fn session(gw: &Gateway, username: &str, password: &str) -> Session {
    let resp = login(gw, username, password).await;
    assert_eq!(resp.status(), 200);
    let set = resp.headers()["set-cookie"].to_str().expect("ascii").to_string();
    let body: Value = resp.json().await.expect("json");
    let cookie = set.split(';').next().expect("a cookie").to_string();
    Session { cookie, csrf: body["csrf_token"].as_str().expect("a csrf token").to_string() }
}

async fn get(gw: &Gateway, s: &Session, path: &str) -> reqwest::Response {
    client().get(gw.url(path)).header("cookie", &s.cookie).send().await.expect("answers")
}

async fn logout(gw: &Gateway, s: &Session, csrf: Option<&str>) -> reqwest::Response {
    let mut req = client().post(gw.url("/api/auth/logout")).header("cookie", &s.cookie);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    req.send().await.expect("answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_a_strict_cookie_whose_changes_need_the_csrf_token_until_logout() {
    let gw = gateway().await;
    let resp = login(&gw, "admin", ADMIN_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let set = resp.headers()["set-cookie"].to_str().expect("ascii").to_string();
    for attribute in ["llm_proxy_session=v1.", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=86400"] {
        assert!(set.contains(attribute), "{set}");
    }
    let body: Value = resp.json().await.expect("json");
    assert_eq!((body["user"]["username"].as_str(), body["user"]["role"].as_str()), (Some("admin"), Some("admin")));
    assert!(body["user"].get("password_hash").is_none() && !body.to_string().contains("argon2"));
    let s = Session {
        cookie: set.split(';').next().expect("cookie").to_string(),
        csrf: body["csrf_token"].as_str().expect("csrf").to_string(),
    };

    let me: Value = get(&gw, &s, "/api/auth/me").await.json().await.expect("json");
    assert_eq!((me["user"]["username"].as_str(), me["csrf_token"].as_str()), (Some("admin"), Some(s.csrf.as_str())));
    assert_eq!(get(&gw, &s, "/api/logs").await.status(), 200, "an admin reads the log with its cookie");

    let refused = logout(&gw, &s, None).await;
    assert_eq!(refused.status(), 403);
    let err: Value = refused.json().await.expect("json");
    assert_eq!(err["error"]["code"], "csrf_required");
    assert_eq!(logout(&gw, &s, Some("not-the-token")).await.status(), 403);
    let out = logout(&gw, &s, Some(&s.csrf)).await;
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"));
    // The cookie kept by a client is worthless now: the session row is revoked.
    assert_eq!(get(&gw, &s, "/api/auth/me").await.status(), 401);
    assert_eq!(get(&gw, &s, "/api/logs").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_session_of_the_user() {
    let gw = gateway().await;
    let password = "ada-password-0123";
    llm_proxy_server::users::create(gw.store.as_ref(), "ada", Role::Viewer, password).await.expect("created");
    let (first, second) = (session(&gw, "ada", password).await, session(&gw, "ada", password).await);
    assert_eq!(get(&gw, &first, "/api/auth/me").await.status(), 200);
    // Sessions are stamped in milliseconds: the change comes after both.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    llm_proxy_server::users::set_password(gw.store.as_ref(), "ada", "a-new-password-456").await.expect("changed");
    for s in [&first, &second] {
        assert_eq!(get(&gw, s, "/api/auth/me").await.status(), 401);
    }
    assert_eq!(login(&gw, "ada", password).await.status(), 401, "the old password is gone");
    let third = session(&gw, "ada", "a-new-password-456").await;
    assert_eq!(get(&gw, &third, "/api/auth/me").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_cookies_are_no_session() {
    let gw = gateway().await;
    let s = session(&gw, "admin", ADMIN_PASSWORD).await;
    let (name, token) = s.cookie.split_once('=').expect("name=value");
    let (body, sig) = token.rsplit_once('.').expect("signed");
    let (prefix, _) = body.rsplit_once('.').expect("expiry");
    let forged = [
        format!("{name}={prefix}.99999999999999.{sig}"),
        format!("{name}={body}.AAAA"),
        format!("{name}=v1.{}.99999999999999.x", "0".repeat(32)),
        format!("{name}=garbage"),
    ];
    for cookie in forged {
        let resp = client().get(gw.url("/api/auth/me")).header("cookie", &cookie).send().await.expect("answers");
        assert_eq!(resp.status(), 401, "{cookie}");
    }
    let gw = Gateway::start_with(Backend::Sqlite, "session_expire_hours: 0").await.expect("SQLite always runs");
    let s = session(&gw, "admin", ADMIN_PASSWORD).await;
    assert_eq!(get(&gw, &s, "/api/auth/me").await.status(), 401, "a session of no hours is over at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_look_alike_and_lock_the_username_out() {
    // The per-address lock-out is set out of reach here, to see the per-username one alone.
    let gw = Gateway::start_with(Backend::Sqlite, "admin_auth_failures_per_minute: 1000").await.expect("SQLite");
    let wrong = login(&gw, "admin", "not-the-password").await;
    let unknown = login(&gw, "nobody", "not-the-password").await;
    assert_eq!(
        (wrong.status(), unknown.status()),
        (reqwest::StatusCode::UNAUTHORIZED, reqwest::StatusCode::UNAUTHORIZED)
    );
    let (wrong, unknown): (Value, Value) = (wrong.json().await.expect("json"), unknown.json().await.expect("json"));
    assert_eq!(wrong, unknown, "an unknown user and a wrong password get the same answer");
    for body in ["{", "[]", "{\"username\": 1}"] {
        let resp = client().post(gw.url("/api/auth/login")).body(body).send().await.expect("answers");
        assert_eq!(resp.status(), 400, "{body}");
    }

    // Nine more failures make ten for `admin`: now even its password is refused for a while.
    for _ in 0..9 {
        assert_eq!(login(&gw, "admin", "still-not-it").await.status(), 401);
    }
    let locked = login(&gw, "admin", ADMIN_PASSWORD).await;
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().contains_key("retry-after"));
    assert_eq!(login(&gw, "nobody-else", "x").await.status(), 401, "another username is not locked");
    // The master key still works (it is not a login).
    let resp = client().get(gw.url("/api/logs")).bearer_auth(MASTER_KEY).send().await.expect("answers");
    assert_eq!(resp.status(), 200);

    // Failed logins count against the address too, like failed master keys.
    let gw = Gateway::start_with(Backend::Sqlite, "admin_auth_failures_per_minute: 3").await.expect("SQLite");
    for _ in 0..3 {
        assert_eq!(login(&gw, "admin", "wrong-password").await.status(), 401);
    }
    assert_eq!(login(&gw, "admin", ADMIN_PASSWORD).await.status(), 429, "the address is locked out");
    let resp = client().get(gw.url("/api/logs")).bearer_auth(MASTER_KEY).send().await.expect("answers");
    assert_eq!(resp.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reads_its_own_keys_logs_and_usage_and_a_viewer_reads_all() {
    let gw = gateway().await;
    let store = gw.store.as_ref();
    llm_proxy_server::users::create(store, "mia", Role::Member, "mia-password-0123").await.expect("member");
    llm_proxy_server::users::create(store, "val", Role::Viewer, "val-password-0123").await.expect("viewer");
    let (_, mine) = gw.create_key_with(&[], None, Default::default(), Some("mia")).await;
    let (_, theirs) = gw.create_key_with(&[], None, Default::default(), Some("other")).await;
    let ask = json!({"model": "mock-a", "messages": [{"role": "user", "content": "hi"}]});
    let my_id = common::request_id(&gw.chat(&mine, ask.clone()).await);
    let their_id = common::request_id(&gw.chat(&theirs, ask).await);
    gw.log_entry(&my_id).await;
    gw.log_entry(&their_id).await;

    let member = session(&gw, "mia", "mia-password-0123").await;
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["request_id"].as_str().expect("id").to_string())
            .collect()
    };
    let page: Value = get(&gw, &member, "/api/logs").await.json().await.expect("json");
    assert_eq!(ids(&page), std::slice::from_ref(&my_id), "only its own key's row");
    let asked_for_other: Value = get(&gw, &member, "/api/logs?user=other").await.json().await.expect("json");
    assert_eq!(ids(&asked_for_other), std::slice::from_ref(&my_id), "asking for another user's changes nothing");
    let stats: Value = get(&gw, &member, "/api/stats").await.json().await.expect("json");
    assert_eq!(stats["total"]["requests"], 1, "{stats}");
    assert_eq!(get(&gw, &member, "/api/providers").await.status(), 403);

    let viewer = session(&gw, "val", "val-password-0123").await;
    let page: Value = get(&gw, &viewer, "/api/logs").await.json().await.expect("json");
    let all = ids(&page);
    assert!(all.contains(&my_id) && all.contains(&their_id), "{all:?}");
    let stats: Value = get(&gw, &viewer, "/api/stats").await.json().await.expect("json");
    assert_eq!(stats["total"]["requests"], 2, "{stats}");
    assert_eq!(get(&gw, &viewer, "/api/providers").await.status(), 200);

    // A virtual key is never an admin; nothing at all is a 401.
    let resp = client().get(gw.url("/api/logs")).bearer_auth(&mine).send().await.expect("answers");
    assert_eq!(resp.status(), 403);
    assert_eq!(client().get(gw.url("/api/logs")).send().await.expect("answers").status(), 401);
}
