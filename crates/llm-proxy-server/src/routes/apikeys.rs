//! `/api/apikeys`: virtual keys over HTTP. Admins manage every key; a member creates, sees and
//! revokes its own (keys whose `user` is its username) and no other — another's key does not
//! exist for it (404); a viewer reads every key. The secret is in the creation's answer only.
//! A key made or revoked here takes effect on this instance's very next request (other instances
//! see it within their key poll).

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::StoreError;
use llm_proxy_core::user::{Role, valid_username};
use llm_proxy_core::virtual_key::{KeyLimits, KeyRecord, parse_duration};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin_auth::AdminCaller;
use crate::app::{AppState, Shared};
use crate::audit;
use crate::error::ApiError;
use crate::routes::admin_json::{PageParams, page, read_json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    user: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    rpm: Option<u64>,
    tpm: Option<u64>,
    max_parallel: Option<u32>,
    budget_hourly: Option<f64>,
    budget_daily: Option<f64>,
    budget_monthly: Option<f64>,
    /// A lifetime: `30d`, `12h`, `2w`.
    expires: Option<String>,
}

/// A key as the API shows it: never its hash, never its secret.
fn view(k: &KeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "display": k.display,
        "models": k.models,
        "user": k.user,
        "created_at": k.created_at.to_i64(),
        "updated_at": k.updated_at.to_i64(),
        "expires_at": k.expires_at.map(UnixMillis::to_i64),
        "revoked_at": k.revoked_at.map(UnixMillis::to_i64),
        "limits": k.limits,
    })
}

fn unavailable(e: &StoreError) -> ApiError {
    tracing::warn!(error = %e, "reading or writing keys failed");
    ApiError::service_unavailable("Keys cannot be read or written right now.")
}

fn key_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No key with id `{}`.", llm_proxy_core::request_log::clean_text(id, 64)))
}

/// Whether `caller` may see `key`.
fn visible(caller: &AdminCaller, key: &KeyRecord) -> bool {
    caller.own_user().is_none_or(|own| key.user.as_deref() == Some(own))
}

/// `POST /api/apikeys` → 201 with the secret (`key`), shown only here.
pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let caller = match state.admin_caller(&parts).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let asked: CreateKey = match read_json(&parts.headers, body).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match create_key(&state, &caller, asked).await {
        Ok(record) => {
            let (body, secret) = record;
            let mut shown = body.clone();
            audit::record_change(&state, &caller, &parts, "key.create", body["id"].as_str(), None, Some(&body)).await;
            shown["key"] = json!(secret);
            (StatusCode::CREATED, Json(shown)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Makes the key: its view (no secret) and the secret, to be shown once.
async fn create_key(state: &Shared, caller: &AdminCaller, asked: CreateKey) -> Result<(Value, String), ApiError> {
    let user = match caller.role() {
        Role::Admin => asked.user,
        Role::Member => match (asked.user, caller.own_user()) {
            (None, Some(own)) => Some(own.to_string()),
            (Some(u), Some(own)) if u == own => Some(u),
            _ => {
                return Err(
                    ApiError::forbidden("A member creates keys for itself only.").with_code("insufficient_role")
                );
            }
        },
        Role::Viewer => return Err(ApiError::forbidden("A viewer cannot create keys.").with_code("insufficient_role")),
    };
    let name = asked.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(invalid("name", "`name` is 1 to 128 characters, none of them control characters."));
    }
    if user.as_deref().is_some_and(|u| !valid_username(u)) {
        return Err(invalid("user", "`user` is a username: letters, digits, `.`, `_`, `-` or `@`."));
    }
    let models: Vec<String> = asked.models.iter().map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
    if models.iter().any(|m| m.len() > 256 || m.chars().any(char::is_control)) {
        return Err(invalid("models", "`models` are model names without control characters."));
    }
    let limits = KeyLimits {
        rpm: asked.rpm,
        tpm: asked.tpm,
        max_parallel: asked.max_parallel,
        budget_hourly: asked.budget_hourly,
        budget_daily: asked.budget_daily,
        budget_monthly: asked.budget_monthly,
    };
    if let Err((field, why)) = limits.check() {
        return Err(invalid(field, &format!("`{field}` {why}.")));
    }
    let expires_at = match asked.expires.as_deref() {
        None => None,
        Some(s) => match parse_duration(s) {
            Some(d) => Some(UnixMillis::now() + d),
            None => return Err(invalid("expires", "`expires` is a number and one of s, m, h, d, w (e.g. `30d`).")),
        },
    };
    let spec = crate::keys::KeySpec { name, models, user, expires_at, limits };
    let (record, secret) = crate::keys::create(state.store.as_ref(), spec).await.map_err(|e| unavailable(&e))?;
    // This instance knows it at once; the others at their next poll, or at its first use there
    // (a key ring miss asks the database).
    state.keys.apply(vec![record.clone()]);
    state.key_misses.forget(&record.hash);
    Ok((view(&record), secret))
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::bad_request(message).with_param(Some(field.to_string()))
}

#[derive(Deserialize)]
pub struct ListParams {
    #[serde(flatten)]
    page: PageParams,
    user: Option<String>,
}

/// `GET /api/apikeys?cursor=&limit=&user=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let caller = match state.admin_caller(&parts).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(Query(params)) = params else {
        return ApiError::bad_request("Query parameters are `cursor`, `limit` and `user`.").into_response();
    };
    let mut keys = match state.store.list_keys().await {
        Ok(k) => k,
        Err(e) => return unavailable(&e).into_response(),
    };
    keys.retain(|k| visible(&caller, k) && params.user.as_deref().is_none_or(|u| k.user.as_deref() == Some(u)));
    // Ids are UUIDv7: their order is their creation's.
    keys.sort_by(|a, b| b.id.cmp(&a.id));
    match page(keys, |k| k.id.as_str(), &params.page) {
        Ok((data, next)) => {
            Json(json!({"data": data.iter().map(view).collect::<Vec<_>>(), "next": next})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn find(state: &Shared, caller: &AdminCaller, id: &str) -> Result<KeyRecord, ApiError> {
    let keys = state.store.list_keys().await.map_err(|e| unavailable(&e))?;
    keys.into_iter().find(|k| k.id == id && visible(caller, k)).ok_or_else(|| key_not_found(id))
}

/// `GET /api/apikeys/{id}`.
pub async fn get(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        find(&state, &caller, &id).await
    }
    .await;
    match result {
        Ok(k) => Json(view(&k)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/apikeys/{id}`: revokes the key (its row stays, for the log).
pub async fn revoke(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        let key = find(&state, &caller, &id).await?;
        if caller.role() == Role::Viewer {
            return Err(ApiError::forbidden("A viewer cannot revoke keys.").with_code("insufficient_role"));
        }
        let revoked = match state.store.revoke_key(&key.id).await {
            Ok(k) => k,
            Err(StoreError::NotFound) => return Err(key_not_found(&id)),
            Err(e) => return Err(unavailable(&e)),
        };
        state.keys.apply(vec![revoked.clone()]);
        audit::record_change(
            &state,
            &caller,
            &parts,
            "key.revoke",
            Some(&key.id),
            Some(&view(&key)),
            Some(&view(&revoked)),
        )
        .await;
        Ok(revoked)
    }
    .await;
    match result {
        Ok(k) => Json(view(&k)).into_response(),
        Err(e) => e.into_response(),
    }
}
