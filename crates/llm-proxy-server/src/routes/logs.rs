//! `GET /api/logs`: the request log, newest first, paged by cursor. Admins and viewers read every
//! row; a member reads the rows of its own keys only.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::request_log::{LogCursor, LogQuery, RequestLogEntry};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct LogParams {
    cursor: Option<String>,
    limit: Option<u32>,
    key_id: Option<String>,
    user: Option<String>,
}

#[derive(Serialize)]
struct LogView {
    #[serde(flatten)]
    entry: RequestLogEntry,
    /// RFC 3339, for humans; `created_at` stays milliseconds for programs.
    time: String,
}

pub async fn list_logs(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Response {
    let caller = match state.admin_caller(&parts).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(Query(params)) = params else {
        return ApiError::bad_request("Query parameters are `cursor`, `limit` (1-1000), `key_id` and `user`.")
            .into_response();
    };
    let cursor = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match LogCursor::decode(c) {
            Some(c) => Some(c),
            None => {
                return ApiError::bad_request("Invalid `cursor`.").with_param(Some("cursor".into())).into_response();
            }
        },
    };
    // A member's own rows, whatever it asks for.
    let user = caller.own_user().map(str::to_string).or(params.user);
    let query = LogQuery { cursor, limit: params.limit.unwrap_or(100).clamp(1, 1000), key_id: params.key_id, user };
    match state.store.list_logs(&query).await {
        Ok(page) => {
            let data: Vec<LogView> = page
                .entries
                .into_iter()
                .map(|entry| LogView {
                    time: chrono::DateTime::from_timestamp_millis(entry.created_at.to_i64())
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                    entry,
                })
                .collect();
            Json(serde_json::json!({"data": data, "next": page.next.map(|c| c.encode())})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the request log failed");
            ApiError::service_unavailable("The request log is unavailable right now.").into_response()
        }
    }
}
