//! `GET /api/audit` (admins): the audit log (`crate::audit`), newest first, paged by cursor, as
//! JSON or as JSON lines for export.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::audit::{AuditEntry, AuditQuery};
use llm_proxy_core::user::Role;
use serde::Deserialize;
use serde_json::Value;

use crate::app::AppState;
use crate::error::ApiError;

#[derive(Deserialize)]
pub struct AuditParams {
    cursor: Option<String>,
    limit: Option<u32>,
    /// `jsonl`: the page as JSON lines, one entry per line (for export).
    format: Option<String>,
}

/// `GET /api/audit?cursor=&limit=&format=json|jsonl` (admins): newest first.
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.admin_caller(&parts).await?.require(Role::Admin)?;
        let Ok(Query(params)) = params else {
            return Err(ApiError::bad_request("Query parameters are `cursor`, `limit` and `format` (json, jsonl)."));
        };
        let jsonl = match params.format.as_deref() {
            None | Some("json") => false,
            Some("jsonl") => true,
            Some(_) => {
                return Err(ApiError::bad_request("`format` is `json` or `jsonl`.").with_param(Some("format".into())));
            }
        };
        let limit = params.limit.unwrap_or(100).clamp(1, 10_000);
        let query = AuditQuery { cursor: params.cursor.filter(|c| !c.is_empty()), limit };
        let entries = state.store.list_audit(&query).await.map_err(|e| {
            tracing::warn!(error = %e, "reading the audit log failed");
            ApiError::service_unavailable("The audit log is unavailable right now.")
        })?;
        let next = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.id.clone())).flatten();
        Ok((entries, next, jsonl))
    }
    .await;
    match result {
        Ok((entries, _, true)) => {
            let mut body = String::new();
            for e in &entries {
                body.push_str(&serde_json::to_string(&view(e)).unwrap_or_default());
                body.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
        }
        Ok((entries, next, false)) => {
            Json(serde_json::json!({"data": entries.iter().map(view).collect::<Vec<_>>(), "next": next}))
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// An entry as the API shows it: `before` and `after` as JSON, not text.
fn view(e: &AuditEntry) -> Value {
    let parsed = |t: &Option<String>| t.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
    serde_json::json!({
        "id": e.id,
        "at": e.at.to_i64(),
        "actor": e.actor,
        "actor_role": e.actor_role,
        "ip": e.ip,
        "action": e.action,
        "target": e.target,
        "before": parsed(&e.before),
        "after": parsed(&e.after),
    })
}
