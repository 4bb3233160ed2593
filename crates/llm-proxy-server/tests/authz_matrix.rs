//! The admin API's authorization matrix: every `/api` route and method, called by every kind of
//! caller — anonymous, a bad cookie, an expired session, a member, a viewer, an admin, the master
//! key and a virtual key — answers the status the table says. The table is checked against the
//! routes `app.rs` declares: a route added without its row fails this test.

#![expect(
    clippy::disallowed_methods,
    clippy::expect_used,
    reason = "tests are clients, not the gateway: their own HTTP clients are fine, and they assert by expecting"
)]

mod common;

use common::{Backend, Gateway, MASTER_KEY};
use llm_proxy_core::user::Role;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    BadCookie,
    ExpiredSession,
    Member,
    Viewer,
    Admin,
    Master,
    VirtualKey,
}

const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::BadCookie,
    Caller::ExpiredSession,
    Caller::Member,
    Caller::Viewer,
    Caller::Admin,
    Caller::Master,
    Caller::VirtualKey,
];

/// What an authenticated caller gets, by role; the others follow from how they fail.
struct Row {
    method: &'static str,
    /// The route as `app.rs` declares it.
    route: &'static str,
    /// The path called (ids name nothing: a caller allowed in gets 404).
    path: &'static str,
    member: u16,
    viewer: u16,
    admin: u16,
}

/// `admin` also stands for the master key. Unauthenticated callers get 401, a virtual key 403,
/// except where `open` (no authentication at all) says otherwise.
const TABLE: &[Row] = &[
    Row { method: "GET", route: "/api/health", path: "/api/health", member: 200, viewer: 200, admin: 200 },
    Row { method: "GET", route: "/api/openapi.json", path: "/api/openapi.json", member: 200, viewer: 200, admin: 200 },
    Row { method: "POST", route: "/api/auth/login", path: "/api/auth/login", member: 401, viewer: 401, admin: 401 },
    Row { method: "POST", route: "/api/auth/logout", path: "/api/auth/logout", member: 204, viewer: 204, admin: 204 },
    Row { method: "GET", route: "/api/auth/me", path: "/api/auth/me", member: 200, viewer: 200, admin: 200 },
    Row { method: "POST", route: "/api/apikeys", path: "/api/apikeys", member: 201, viewer: 403, admin: 201 },
    Row { method: "GET", route: "/api/apikeys", path: "/api/apikeys", member: 200, viewer: 200, admin: 200 },
    Row { method: "GET", route: "/api/apikeys/{id}", path: "/api/apikeys/nope", member: 404, viewer: 404, admin: 404 },
    Row {
        method: "DELETE",
        route: "/api/apikeys/{id}",
        path: "/api/apikeys/nope",
        member: 404,
        viewer: 404,
        admin: 404,
    },
    Row { method: "POST", route: "/api/users", path: "/api/users", member: 403, viewer: 403, admin: 201 },
    Row { method: "GET", route: "/api/users", path: "/api/users", member: 200, viewer: 200, admin: 200 },
    Row { method: "GET", route: "/api/users/{id}", path: "/api/users/nope", member: 404, viewer: 404, admin: 404 },
    Row { method: "PATCH", route: "/api/users/{id}", path: "/api/users/nope", member: 404, viewer: 404, admin: 404 },
    Row { method: "DELETE", route: "/api/users/{id}", path: "/api/users/nope", member: 403, viewer: 403, admin: 404 },
    Row { method: "GET", route: "/api/audit", path: "/api/audit", member: 403, viewer: 403, admin: 200 },
    Row { method: "POST", route: "/api/routes", path: "/api/routes", member: 403, viewer: 403, admin: 400 },
    Row { method: "GET", route: "/api/routes", path: "/api/routes", member: 403, viewer: 200, admin: 200 },
    Row { method: "GET", route: "/api/routes/{name}", path: "/api/routes/nope", member: 403, viewer: 404, admin: 404 },
    Row { method: "PUT", route: "/api/routes/{name}", path: "/api/routes/nope", member: 403, viewer: 403, admin: 404 },
    Row {
        method: "DELETE",
        route: "/api/routes/{name}",
        path: "/api/routes/nope",
        member: 403,
        viewer: 403,
        admin: 404,
    },
    Row { method: "GET", route: "/api/logs", path: "/api/logs", member: 200, viewer: 200, admin: 200 },
    Row { method: "DELETE", route: "/api/logs", path: "/api/logs?model=none", member: 403, viewer: 403, admin: 200 },
    Row {
        method: "GET",
        route: "/api/logs/{request_id}",
        path: "/api/logs/nope",
        member: 404,
        viewer: 404,
        admin: 404,
    },
    Row { method: "GET", route: "/api/providers", path: "/api/providers", member: 403, viewer: 200, admin: 200 },
    Row { method: "GET", route: "/api/models", path: "/api/models", member: 200, viewer: 200, admin: 200 },
    Row {
        method: "GET",
        route: "/api/models/overrides",
        path: "/api/models/overrides",
        member: 403,
        viewer: 200,
        admin: 200,
    },
    Row {
        method: "PUT",
        route: "/api/models/overrides",
        path: "/api/models/overrides",
        member: 403,
        viewer: 403,
        admin: 400,
    },
    Row { method: "GET", route: "/api/settings", path: "/api/settings", member: 403, viewer: 200, admin: 200 },
    Row { method: "GET", route: "/api/stats", path: "/api/stats", member: 200, viewer: 200, admin: 200 },
];

/// Routes needing no authentication at all, and what anyone gets.
fn open(route: &str) -> bool {
    matches!(route, "/api/health" | "/api/auth/login" | "/api/openapi.json")
}

fn expected(row: &Row, caller: Caller) -> u16 {
    if open(row.route) {
        return row.admin;
    }
    match caller {
        Caller::Anonymous | Caller::BadCookie | Caller::ExpiredSession => 401,
        Caller::VirtualKey => 403,
        Caller::Member => row.member,
        Caller::Viewer => row.viewer,
        // The master key has no session to end.
        Caller::Master if row.route == "/api/auth/logout" => 400,
        Caller::Admin | Caller::Master => row.admin,
    }
}

/// The `/api` routes and methods `app.rs` declares.
fn declared() -> Vec<(String, String)> {
    let source = include_str!("../src/app.rs");
    let mut found = Vec::new();
    for piece in source.split(".route(").skip(1) {
        let Some(path) = piece.trim_start().strip_prefix('"').and_then(|p| p.split('"').next()) else { continue };
        if !path.starts_with("/api") {
            continue;
        }
        let piece = piece.split(".route(").next().unwrap_or(piece);
        for method in ["get", "post", "put", "patch", "delete"] {
            if piece.contains(&format!("{method}(routes::")) {
                found.push((method.to_uppercase(), path.to_string()));
            }
        }
    }
    found
}

#[test]
fn every_declared_admin_route_has_a_row() {
    let declared = declared();
    assert!(declared.len() >= TABLE.len(), "the scan of app.rs found too little: {declared:?}");
    for (method, route) in &declared {
        assert!(
            TABLE.iter().any(|r| r.method == method && r.route == route),
            "{method} {route} is declared in app.rs but has no row in the authorization matrix"
        );
    }
    for row in TABLE {
        assert!(
            declared.iter().any(|(m, r)| m == row.method && r == row.route),
            "{} {} is in the matrix but not declared",
            row.method,
            row.route
        );
    }
}

#[test]
fn the_openapi_document_describes_every_declared_route_and_no_other() {
    let doc: Value = serde_json::from_str(llm_proxy_server::routes::openapi::DOCUMENT).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut declared = declared();
    declared.sort();
    documented.sort();
    assert_eq!(documented, declared, "the OpenAPI document and app.rs disagree");
}

async fn login(gw: &Gateway, username: &str, password: &str) -> (String, String) {
    let resp = reqwest::Client::new()
        .post(gw.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_string();
    let body: Value = resp.json().await.expect("json");
    (cookie, body["csrf_token"].as_str().expect("csrf").to_string())
}

async fn run_matrix(backend: Backend) {
    let Some(gw) = Gateway::start_with(backend, "admin_auth_failures_per_minute: 100000").await else {
        return;
    };
    let store = gw.store.as_ref();
    for (name, role) in [("mem", Role::Member), ("vie", Role::Viewer), ("adm", Role::Admin), ("old", Role::Member)] {
        llm_proxy_server::users::create(store, name, role, &format!("{name}-password-0123")).await.expect("user");
    }
    let (_, virtual_key) = gw.create_key(&[], None).await;
    // A session that ended: logged in, then its password changed.
    let (expired_cookie, expired_csrf) = login(&gw, "old", "old-password-0123").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    llm_proxy_server::users::set_password(store, "old", "old-password-4567").await.expect("passwd");

    let mut failures = Vec::new();
    let mut n = 0;
    for row in TABLE {
        for caller in CALLERS {
            n += 1;
            let method = reqwest::Method::from_bytes(row.method.as_bytes()).expect("method");
            let mut req = reqwest::Client::new().request(method, gw.url(row.path));
            req = match caller {
                Caller::Anonymous => req,
                Caller::BadCookie => req.header("cookie", "llm_proxy_session=v1.abc.99999999999999.forged"),
                Caller::ExpiredSession => req.header("cookie", &expired_cookie).header("x-csrf-token", &expired_csrf),
                Caller::Member | Caller::Viewer | Caller::Admin => {
                    let name = match caller {
                        Caller::Member => "mem",
                        Caller::Viewer => "vie",
                        _ => "adm",
                    };
                    // A fresh session each time: a logout in the table ends only its own.
                    let (cookie, csrf) = login(&gw, name, &format!("{name}-password-0123")).await;
                    req.header("cookie", cookie).header("x-csrf-token", csrf)
                }
                Caller::Master => req.bearer_auth(MASTER_KEY),
                Caller::VirtualKey => req.bearer_auth(&virtual_key),
            };
            let body = match (row.method, row.route) {
                ("POST", "/api/apikeys") => json!({"name": format!("k{n}")}),
                ("POST", "/api/users") => {
                    json!({"username": format!("u{n}"), "password": "matrix-password-0123", "role": "member"})
                }
                ("POST", "/api/auth/login") => json!({"username": "adm", "password": "wrong-password"}),
                ("PATCH", _) => json!({"role": "viewer"}),
                _ => Value::Null,
            };
            if !body.is_null() {
                req = req.json(&body);
            }
            let got = req.send().await.expect("answers").status().as_u16();
            let want = expected(row, caller);
            if got != want {
                failures.push(format!("{} {} as {caller:?}: got {got}, want {want}", row.method, row.path));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} cells differ:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_the_matrix_says_on_sqlite() {
    run_matrix(Backend::Sqlite).await;
}

#[llm_proxy_testkit_macros::needs_postgres]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_the_matrix_says_on_postgres() {
    run_matrix(Backend::Postgres).await;
}
