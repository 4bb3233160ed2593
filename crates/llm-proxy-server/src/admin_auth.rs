//! Who is calling the admin API: the master key (a bearer token), or a user by the session cookie
//! (`crate::sessions`), whose state-changing requests must carry the session's CSRF token. A
//! virtual key is never an admin. An address that fails too often is locked out whatever it
//! sends, and a username that fails too often cannot log in for a while, so neither the master
//! key nor a password can be guessed at speed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;
use axum::http::request::Parts;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::user::{Role, UserRecord};

use crate::app::Shared;
use crate::auth::{Principal, bearer, client_ip};
use crate::error::ApiError;
use crate::sessions::{CSRF_HEADER, session_cookie};

/// An authenticated caller of `/api`.
#[derive(Debug, Clone)]
pub enum AdminCaller {
    Master,
    /// A user by a session cookie, and that session's id.
    User {
        user: UserRecord,
        session: String,
    },
}

impl AdminCaller {
    /// The master key can do what an admin can.
    pub fn role(&self) -> Role {
        match self {
            Self::Master => Role::Admin,
            Self::User { user, .. } => user.role,
        }
    }

    /// The user whose keys, logs and usage this caller sees, when it may not see everyone's.
    pub fn own_user(&self) -> Option<&str> {
        match self {
            Self::User { user, .. } if !user.role.reads_all() => Some(&user.username),
            _ => None,
        }
    }

    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role() >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("This needs the {} role.", role.as_str())).with_code("insufficient_role"))
        }
    }
}

impl Shared {
    /// Authenticates a caller of `/api`: a bearer token must be the master key; without one, the
    /// session cookie must name a live session, and a request that changes anything must carry
    /// its CSRF token in `x-csrf-token`.
    pub async fn admin_caller(&self, parts: &Parts) -> Result<AdminCaller, ApiError> {
        let ip = client_ip(&parts.extensions);
        self.check_lockout(parts)?;
        let failed = || {
            self.auth_failures.record(ip, UnixMillis::now());
            self.admin_failures.record(ip, UnixMillis::now());
        };
        let presented = bearer(&parts.headers).inspect_err(|_| failed())?;
        if let Some(secret) = presented {
            return match self.authenticate(Some(secret)).await.inspect_err(|_| failed())? {
                Principal::Master => Ok(AdminCaller::Master),
                Principal::Key(_) => {
                    Err(ApiError::forbidden("A virtual key cannot use the admin API; use the master key or log in.")
                        .with_code("admin_only"))
                }
            };
        }
        let Some(cookie) = session_cookie(&parts.headers) else {
            return Err(ApiError::unauthorized(
                "Log in (POST /api/auth/login) or send the master key as `Authorization: Bearer <key>`.",
            ));
        };
        let now = UnixMillis::now();
        let expired = || ApiError::unauthorized("The session has expired or was ended; log in again.");
        let Some(id) = self.sessions.verify(cookie, now) else {
            failed();
            return Err(expired());
        };
        let session = self.store.session(&id).await.map_err(|e| unavailable(&e))?;
        let user = match &session {
            Some(s) => self.store.user_by_id(&s.user_id).await.map_err(|e| unavailable(&e))?,
            None => None,
        };
        let (Some(session), Some(user)) = (session, user) else { return Err(expired()) };
        if !session.is_live(&user, now) {
            return Err(expired());
        }
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let token = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !self.sessions.csrf_matches(&session.id, token) {
                return Err(ApiError::forbidden(
                    "A request made with the session cookie must send its CSRF token in `x-csrf-token`.",
                )
                .with_code("csrf_required"));
            }
        }
        Ok(AdminCaller::User { user, session: session.id })
    }

    /// 429 for an address that failed too often within the last minute.
    pub fn check_lockout(&self, parts: &Parts) -> Result<(), ApiError> {
        let Some(ip) = client_ip(&parts.extensions) else { return Ok(()) };
        match self.admin_failures.locked_out(ip, UnixMillis::now(), self.admin_auth_failures_per_minute) {
            Some(wait) => Err(ApiError::rate_limited(
                "Too many failed authentications from this address; wait before trying again.",
                "too_many_auth_failures",
                wait,
            )),
            None => Ok(()),
        }
    }
}

pub fn unavailable(e: &llm_proxy_core::store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "reading users or sessions failed");
    ApiError::service_unavailable("The gateway cannot read its users right now.")
}

/// Failed logins per username: past `MAX_FAILURES` within `WINDOW`, that username cannot log in
/// until the oldest failure falls out of the window (whatever the password, from any address).
pub struct LoginFailures {
    by_user: Mutex<HashMap<String, VecDeque<UnixMillis>>>,
}

pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Usernames tracked at most: a flood of made-up names cannot grow the map without bound.
const MAX_TRACKED: usize = 100_000;

impl Default for LoginFailures {
    fn default() -> Self {
        Self { by_user: Mutex::new(HashMap::new()) }
    }
}

impl LoginFailures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<UnixMillis>>> {
        self.by_user.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `username` must wait, if it is locked.
    pub fn locked(&self, username: &str, now: UnixMillis) -> Option<Duration> {
        let mut map = self.lock();
        let failures = map.get_mut(username)?;
        while failures.front().is_some_and(|t| now.to_i64() - t.to_i64() >= WINDOW.as_millis() as i64) {
            failures.pop_front();
        }
        if failures.len() < MAX_FAILURES {
            return None;
        }
        let oldest = failures.front()?.to_i64();
        let wait_ms = (oldest + WINDOW.as_millis() as i64 - now.to_i64()).max(1000) as u64;
        Some(Duration::from_millis(wait_ms))
    }

    pub fn record(&self, username: &str, now: UnixMillis) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(username) {
            let window = WINDOW.as_millis() as i64;
            map.retain(|_, f| f.back().is_some_and(|t| now.to_i64() - t.to_i64() < window));
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let failures = map.entry(username.to_string()).or_default();
        failures.push_back(now);
        if failures.len() > MAX_FAILURES {
            failures.pop_front();
        }
    }

    pub fn clear(&self, username: &str) {
        self.lock().remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_locked_after_its_failures_until_the_window_passes() {
        let f = LoginFailures::default();
        let t = |ms: i64| UnixMillis::from_i64(ms);
        for i in 0..MAX_FAILURES as i64 {
            assert_eq!(f.locked("ada", t(i)), None);
            f.record("ada", t(i));
        }
        let wait = f.locked("ada", t(10)).expect("locked");
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(1), "{wait:?}");
        assert_eq!(f.locked("bob", t(10)), None, "another name is not");
        assert_eq!(f.locked("ada", t(WINDOW.as_millis() as i64 + 1)), None, "the first failure fell out");
        f.clear("ada");
        assert_eq!(f.locked("ada", t(20)), None);
    }
}
