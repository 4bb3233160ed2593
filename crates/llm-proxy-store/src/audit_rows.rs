//! The `audit_log` table (core's `AuditEntry`): inserted and read, never updated or deleted. The
//! SQL is the same on both backends.

use llm_proxy_core::UnixMillis;
use llm_proxy_core::audit::AuditEntry;

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (id, at, actor, actor_role, ip, action, target, before, after) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Newest first; `$1` an entry id to start after (or NULL), `$2` rows.
pub(crate) const LIST_AUDIT: &str = "SELECT id, at, actor, actor_role, ip, action, target, before, after FROM audit_log \
     WHERE CAST($1 AS TEXT) IS NULL OR (at, id) < (SELECT at, id FROM audit_log WHERE id = $1) \
     ORDER BY at DESC, id DESC LIMIT $2";

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    at: i64,
    actor: String,
    actor_role: String,
    ip: Option<String>,
    action: String,
    target: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: UnixMillis::from_i64(r.at),
            actor: r.actor,
            actor_role: r.actor_role,
            ip: r.ip,
            action: r.action,
            target: r.target,
            before: r.before,
            after: r.after,
        }
    }
}
