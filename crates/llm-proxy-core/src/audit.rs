//! The audit log: an append-only record of every change made through the admin API and every
//! login, with who did it, from where, and the object before and after. What goes in is already
//! masked (key views carry no secret, user views no password hash, a password change is recorded
//! as changed, never as text).

use crate::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// UUIDv7: ordered by time.
    pub id: String,
    pub at: UnixMillis,
    /// A username, or the master key's stand-in.
    pub actor: String,
    pub actor_role: String,
    pub ip: Option<String>,
    /// `login`, `login.failed`, `logout`, `key.create`, `key.revoke`, `user.create`,
    /// `user.update`, `user.delete`, `route.create`, `route.update`, `route.delete`, ...
    pub action: String,
    /// The id or name of what changed.
    pub target: Option<String>,
    /// The object before and after, as JSON text.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Which page of the audit log to read: newest first, after `cursor` (an entry id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub cursor: Option<String>,
    pub limit: u32,
}
