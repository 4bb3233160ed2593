//! The `users` and `sessions` tables (core's `UserRecord`, `SessionRecord`). The SQL is the same
//! on both backends.

use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::StoreError;
use llm_proxy_core::user::{Role, SessionRecord, UserRecord};

macro_rules! user_columns {
    () => {
        "id, username, role, password_hash, created_at, updated_at, sessions_after"
    };
}

pub(crate) const INSERT_USER: &str = concat!(
    "INSERT INTO users (",
    user_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $5, $5) ON CONFLICT (username) DO NOTHING"
);
pub(crate) const USER_BY_NAME: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1");
pub(crate) const USER_BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
pub(crate) const LIST_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
/// A new password voids every session made before it.
pub(crate) const SET_PASSWORD: &str =
    "UPDATE users SET password_hash = $2, updated_at = $3, sessions_after = $3 WHERE id = $1";

pub(crate) const SET_ROLE: &str = "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1";
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";

pub(crate) const INSERT_SESSION: &str =
    "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, NULL)";
pub(crate) const SESSION_BY_ID: &str =
    "SELECT id, user_id, created_at, expires_at, revoked_at FROM sessions WHERE id = $1";
pub(crate) const REVOKE_SESSION: &str = "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub(crate) const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM sessions WHERE id IN \
     (SELECT id FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    username: String,
    role: String,
    password_hash: String,
    created_at: i64,
    updated_at: i64,
    sessions_after: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        let role =
            Role::parse(&r.role).ok_or_else(|| StoreError::Other(format!("user {} has an unknown role", r.id)))?;
        Ok(UserRecord {
            id: r.id,
            username: r.username,
            role,
            password_hash: r.password_hash,
            created_at: UnixMillis::from_i64(r.created_at),
            updated_at: UnixMillis::from_i64(r.updated_at),
            sessions_after: UnixMillis::from_i64(r.sessions_after),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> Self {
        SessionRecord {
            id: r.id,
            user_id: r.user_id,
            created_at: UnixMillis::from_i64(r.created_at),
            expires_at: UnixMillis::from_i64(r.expires_at),
            revoked_at: r.revoked_at.map(UnixMillis::from_i64),
        }
    }
}
