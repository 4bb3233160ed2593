//! Writing and reading the audit log (`llm_proxy_core::audit`): every change made through the
//! admin API or the CLI and every login, written after the change it records. The admin API waits
//! for it (it is not the request path); an entry that cannot be written is an error in the
//! gateway's own log, naming the change, since the change itself has happened.

use axum::http::request::Parts;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::audit::AuditEntry;
use llm_proxy_core::store::Store;
use llm_proxy_core::user::Role;
use serde_json::Value;

use crate::admin_auth::AdminCaller;
use crate::app::Shared;
use crate::auth::client_ip;
use crate::exchange::MASTER_OWNER;

/// Who did it, as the log names them.
pub struct Actor {
    pub name: String,
    pub role: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn of(caller: &AdminCaller, parts: &Parts) -> Self {
        let (name, role) = match caller {
            AdminCaller::Master => (MASTER_OWNER.to_string(), Role::Admin.as_str().to_string()),
            AdminCaller::User { user, .. } => (user.username.clone(), user.role.as_str().to_string()),
        };
        Self { name, role, ip: client_ip(&parts.extensions).map(|ip| ip.to_string()) }
    }

    /// The operator at the host's shell.
    pub fn cli() -> Self {
        Self { name: "(cli)".into(), role: Role::Admin.as_str().into(), ip: None }
    }
}

/// Appends an entry: `action` on `target`, with the object before and after (masked by the caller).
pub async fn record(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    before: Option<&Value>,
    after: Option<&Value>,
) {
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: UnixMillis::now(),
        actor: actor.name.clone(),
        actor_role: actor.role.clone(),
        ip: actor.ip.clone(),
        action: action.to_string(),
        target: target.map(String::from),
        before: before.map(Value::to_string),
        after: after.map(Value::to_string),
    };
    if let Err(e) = store.insert_audit(&entry).await {
        tracing::error!(error = %e, action, target, actor = %actor.name, "an audit entry could not be written");
    }
}

/// `record` for a change made through the admin API.
pub async fn record_change(
    state: &Shared,
    caller: &AdminCaller,
    parts: &Parts,
    action: &str,
    target: Option<&str>,
    before: Option<&Value>,
    after: Option<&Value>,
) {
    record(state.store.as_ref(), &Actor::of(caller, parts), action, target, before, after).await;
}
