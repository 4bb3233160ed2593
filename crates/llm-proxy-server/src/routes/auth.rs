//! `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`: sessions for the
//! dashboard and for people using the admin API by hand (`crate::sessions`).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use llm_proxy_core::UnixMillis;
use llm_proxy_core::user::SessionRecord;
use serde::Deserialize;
use serde_json::json;

use crate::admin_auth::{AdminCaller, unavailable};
use crate::app::AppState;
use crate::audit::{self, Actor};
use crate::auth::client_ip;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::sessions::new_id;
use crate::{passwords, users};

/// A login body is two short strings.
const MAX_LOGIN_BYTES: usize = 8 * 1024;

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(e) = state.check_lockout(&parts) {
        return e.into_response();
    }
    let bytes = match read_limited(&parts.headers, body, MAX_LOGIN_BYTES).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Ok(login) = serde_json::from_slice::<Login>(&bytes) else {
        return ApiError::bad_request("The body is `{\"username\": \"...\", \"password\": \"...\"}`.").into_response();
    };
    let now = UnixMillis::now();
    if let Some(wait) = state.login_failures.locked(&login.username, now) {
        return ApiError::rate_limited(
            "Too many failed logins for this user; wait before trying again.",
            "too_many_login_failures",
            wait,
        )
        .into_response();
    }
    let user = match state.store.user_by_name(&login.username).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e).into_response(),
    };
    // An unknown user is checked against a dummy hash: it costs what a wrong password costs.
    let ok = passwords::verify(login.password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let Some(user) = user.filter(|_| ok) else {
        let ip = client_ip(&parts.extensions);
        state.login_failures.record(&login.username, now);
        state.admin_failures.record(ip, now);
        let attempted = llm_proxy_core::request_log::clean_text(&login.username, 64);
        tracing::info!(username = %attempted, "a login failed");
        let actor = Actor { name: attempted.clone(), role: "-".into(), ip: ip.map(|ip| ip.to_string()) };
        audit::record(state.store.as_ref(), &actor, "login.failed", Some(&attempted), None, None).await;
        return ApiError::unauthorized("Invalid username or password.")
            .with_code("invalid_credentials")
            .into_response();
    };
    state.login_failures.clear(&user.username);
    let session = SessionRecord {
        id: new_id(),
        user_id: user.id.clone(),
        created_at: now,
        expires_at: now + state.sessions.ttl,
        revoked_at: None,
    };
    if let Err(e) = state.store.insert_session(&session).await {
        return unavailable(&e).into_response();
    }
    tracing::info!(username = %user.username, "logged in");
    let actor = Actor {
        name: user.username.clone(),
        role: user.role.as_str().into(),
        ip: client_ip(&parts.extensions).map(|ip| ip.to_string()),
    };
    audit::record(state.store.as_ref(), &actor, "login", Some(&user.id), None, None).await;
    let token = state.sessions.token(&session.id, session.expires_at);
    let body = json!({
        "user": users::view(&user),
        "csrf_token": state.sessions.csrf(&session.id),
        "expires_at": session.expires_at.to_i64(),
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, state.sessions.set_cookie(&token));
    resp
}

/// Ends the caller's session (the row is revoked, so the cookie is worthless even if kept).
pub async fn logout(State(state): State<AppState>, parts: Parts) -> Response {
    let caller = match state.admin_caller(&parts).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match &caller {
        AdminCaller::User { session, user } => {
            if let Err(e) = state.store.revoke_session(session, UnixMillis::now()).await {
                return unavailable(&e).into_response();
            }
            audit::record_change(&state, &caller, &parts, "logout", Some(&user.id), None, None).await;
            let mut resp = StatusCode::NO_CONTENT.into_response();
            resp.headers_mut().insert(header::SET_COOKIE, state.sessions.clear_cookie());
            resp
        }
        AdminCaller::Master => ApiError::bad_request("The master key has no session to end.").into_response(),
    }
}

/// The caller, and for a session its CSRF token (a page reloaded needs it again).
pub async fn me(State(state): State<AppState>, parts: Parts) -> Response {
    match state.admin_caller(&parts).await {
        Ok(AdminCaller::User { user, session }) => {
            Json(json!({"user": users::view(&user), "csrf_token": state.sessions.csrf(&session)})).into_response()
        }
        Ok(AdminCaller::Master) => {
            Json(json!({"user": {"username": crate::exchange::MASTER_OWNER, "role": "admin"}, "csrf_token": null}))
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}
