//! `GET /api/logs`: the request log, newest first, paged by cursor and filtered by time, key, user,
//! model, provider, status and error kind; `GET /api/logs/{request_id}`: one row; `DELETE
//! /api/logs?...`: the rows a filter selects (admins). Admins and viewers read every row; a member
//! reads the rows of its own keys only (another's row does not exist for it).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::UnixMillis;
use llm_proxy_core::request_log::{ErrorKind, LogCursor, LogQuery, RequestLogEntry};
use llm_proxy_core::user::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::admin_auth::AdminCaller;
use crate::app::AppState;
use crate::audit;
use crate::error::ApiError;
use crate::routes::stats::parse_time;

const PARAMS: &str = "Query parameters are `cursor`, `limit` (1-1000), `key_id`, `user`, `from`, `to`, `model`, `provider`, `status` (e.g. 429 or 5xx) and `error_kind`.";

#[derive(Debug, Deserialize)]
pub struct LogParams {
    cursor: Option<String>,
    limit: Option<u32>,
    key_id: Option<String>,
    user: Option<String>,
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    status: Option<String>,
    error_kind: Option<String>,
}

#[derive(Serialize)]
struct LogView {
    #[serde(flatten)]
    entry: RequestLogEntry,
    /// RFC 3339, for humans; `created_at` stays milliseconds for programs.
    time: String,
}

fn view(entry: RequestLogEntry) -> LogView {
    LogView {
        time: chrono::DateTime::from_timestamp_millis(entry.created_at.to_i64())
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        entry,
    }
}

fn unavailable(e: &llm_proxy_core::store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "reading the request log failed");
    ApiError::service_unavailable("The request log is unavailable right now.")
}

/// The store query the parameters ask for; a member's own rows, whatever it asks for.
fn query(caller: &AdminCaller, params: LogParams) -> Result<LogQuery, ApiError> {
    let present = |p: Option<String>| p.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let cursor = match present(params.cursor) {
        None => None,
        Some(c) => Some(
            LogCursor::decode(&c)
                .ok_or_else(|| ApiError::bad_request("Invalid `cursor`.").with_param(Some("cursor".into())))?,
        ),
    };
    let time = |p: Option<String>, name: &str| -> Result<Option<UnixMillis>, ApiError> {
        present(p).map(|t| parse_time(&t, name).map(UnixMillis::from_i64)).transpose()
    };
    let status = match present(params.status) {
        None => None,
        Some(s) => Some(status_range(&s).ok_or_else(|| {
            ApiError::bad_request("`status` is a status (429) or a class (5xx).").with_param(Some("status".into()))
        })?),
    };
    let error_kind = match present(params.error_kind) {
        None => None,
        Some(k) => match ErrorKind::parse(&k) {
            ErrorKind::Unknown => {
                return Err(ApiError::bad_request(format!("`error_kind` `{}` is not a kind the log records.", k))
                    .with_param(Some("error_kind".into())));
            }
            kind => Some(kind),
        },
    };
    Ok(LogQuery {
        cursor,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
        key_id: present(params.key_id),
        user: caller.own_user().map(str::to_string).or(present(params.user)),
        from: time(params.from, "from")?,
        to: time(params.to, "to")?,
        model: present(params.model),
        provider: present(params.provider),
        status,
        error_kind,
    })
}

/// `429` → 429..=429; `5xx` → 500..=599.
fn status_range(s: &str) -> Option<(u16, u16)> {
    if let Ok(n) = s.parse::<u16>() {
        return (100..=599).contains(&n).then_some((n, n));
    }
    let class = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX"))?.parse::<u16>().ok()?;
    (1..=5).contains(&class).then_some((class * 100, class * 100 + 99))
}

pub async fn list_logs(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        let Ok(Query(params)) = params else { return Err(ApiError::bad_request(PARAMS)) };
        let query = query(&caller, params)?;
        state.store.list_logs(&query).await.map_err(|e| unavailable(&e))
    }
    .await;
    match result {
        Ok(page) => {
            let data: Vec<LogView> = page.entries.into_iter().map(view).collect();
            Json(json!({"data": data, "next": page.next.map(|c| c.encode())})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/logs/{request_id}`.
pub async fn get_log(State(state): State<AppState>, parts: Parts, Path(request_id): Path<String>) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        let entry = state.store.log_entry(&request_id).await.map_err(|e| unavailable(&e))?;
        match entry {
            Some(e) if caller.own_user().is_none_or(|own| e.user.as_deref() == Some(own)) => Ok(e),
            _ => Err(ApiError::not_found(format!(
                "No request with id `{}` in the log.",
                llm_proxy_core::request_log::clean_text(&request_id, 64)
            ))),
        }
    }
    .await;
    match result {
        Ok(e) => Json(view(e)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/logs?...` (admins): the rows the filters select; at least one filter, so that a
/// bare DELETE cannot empty the log by accident (`to=` a time to come selects every row). Usage
/// statistics stay as they were.
pub async fn delete_logs(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        caller.require(Role::Admin)?;
        let Ok(Query(params)) = params else { return Err(ApiError::bad_request(PARAMS)) };
        let query = query(&caller, params)?;
        let unfiltered = LogQuery { cursor: query.cursor.clone(), limit: query.limit, ..LogQuery::default() };
        if query == unfiltered {
            return Err(ApiError::bad_request("Name at least one filter (`to=` a time to come selects every row)."));
        }
        let deleted = state.store.delete_logs(&query).await.map_err(|e| unavailable(&e))?;
        let filter = json!({"key_id": query.key_id, "user": query.user, "from": query.from.map(UnixMillis::to_i64),
                            "to": query.to.map(UnixMillis::to_i64), "model": query.model, "provider": query.provider,
                            "status": query.status, "error_kind": query.error_kind.map(ErrorKind::as_str),
                            "deleted": deleted});
        audit::record_change(&state, &caller, &parts, "logs.delete", None, None, Some(&filter)).await;
        Ok(deleted)
    }
    .await;
    match result {
        Ok(deleted) => Json(json!({"deleted": deleted})).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_one_or_a_class() {
        assert_eq!(status_range("429"), Some((429, 429)));
        assert_eq!(status_range("5xx"), Some((500, 599)));
        assert_eq!(status_range("2XX"), Some((200, 299)));
        for bad in ["", "6xx", "0xx", "abc", "99", "700"] {
            assert_eq!(status_range(bad), None, "{bad}");
        }
    }
}
