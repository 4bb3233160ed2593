//! People who manage the gateway (the admin API and the dashboard), and their sessions.
//!
//! A user has one role: `admin` (everything), `viewer` (reads everything but secrets) or `member`
//! (its own keys, logs and usage). Passwords are kept only as argon2id hashes (PHC strings). A
//! session is a row the signed cookie names: logout revokes it, and a password change revokes
//! every session of the user made before it (`sessions_after`).

use crate::UnixMillis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Viewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "viewer" => Some(Self::Viewer),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// Whether this role reads everything (all keys, logs and usage), not only its own.
    pub fn reads_all(self) -> bool {
        matches!(self, Self::Admin | Self::Viewer)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub role: Role,
    /// argon2id, as a PHC string; never leaves the server.
    pub password_hash: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Sessions made before this are void (set by a password change).
    pub sessions_after: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub password_hash: String,
}

/// A login: the row a session cookie names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
}

impl SessionRecord {
    /// Whether the session still stands for `user` at `now`.
    pub fn is_live(&self, user: &UserRecord, now: UnixMillis) -> bool {
        self.revoked_at.is_none() && self.expires_at > now && self.created_at >= user.sessions_after
    }
}

/// What a username may be: 1 to 64 characters of letters, digits and `.`, `_`, `-`, `@` — so it
/// can be a key's `user`, a log filter and a path segment without escaping.
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// The shortest password the gateway accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_plain() {
        for ok in ["admin", "ada.lovelace", "ops_team-1", "bob@example.com"] {
            assert!(valid_username(ok), "{ok}");
        }
        for bad in ["", "a b", "../x", "é", "x/y", &"a".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn a_session_ends_by_expiry_revocation_or_a_password_change() {
        let user = UserRecord {
            id: "u".into(),
            username: "ada".into(),
            role: Role::Member,
            password_hash: String::new(),
            created_at: UnixMillis::from_i64(0),
            updated_at: UnixMillis::from_i64(0),
            sessions_after: UnixMillis::from_i64(100),
        };
        let session = SessionRecord {
            id: "s".into(),
            user_id: "u".into(),
            created_at: UnixMillis::from_i64(200),
            expires_at: UnixMillis::from_i64(1_000),
            revoked_at: None,
        };
        assert!(session.is_live(&user, UnixMillis::from_i64(500)));
        assert!(!session.is_live(&user, UnixMillis::from_i64(1_000)), "expired");
        let revoked = SessionRecord { revoked_at: Some(UnixMillis::from_i64(300)), ..session.clone() };
        assert!(!revoked.is_live(&user, UnixMillis::from_i64(500)));
        let changed = UserRecord { sessions_after: UnixMillis::from_i64(250), ..user };
        assert!(!session.is_live(&changed, UnixMillis::from_i64(500)), "made before the password change");
    }

    #[test]
    fn roles_order_by_power() {
        assert!(Role::Admin > Role::Viewer && Role::Viewer > Role::Member);
        assert!(Role::Viewer.reads_all() && !Role::Member.reads_all());
        for r in [Role::Admin, Role::Viewer, Role::Member] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
