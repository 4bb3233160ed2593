//! `/api/users`: admins make, change and delete users; viewers read them all; a member sees
//! itself only (anyone else does not exist for it) and may change its own password, giving the
//! current one — never its role.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::StoreError;
use llm_proxy_core::user::{Role, UserRecord};
use serde::Deserialize;
use serde_json::json;

use crate::admin_auth::{AdminCaller, unavailable};
use crate::app::{AppState, Shared};
use crate::audit;
use crate::error::ApiError;
use crate::routes::admin_json::{PageParams, page, read_json};
use crate::users::{self, UserError, view};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    password: String,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeUser {
    role: Option<Role>,
    password: Option<String>,
    /// Required when a user changes its own password.
    current_password: Option<String>,
}

fn user_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No user with id `{}`.", llm_proxy_core::request_log::clean_text(id, 64)))
}

fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::BadName => ApiError::bad_request(e.to_string()).with_param(Some("username".into())),
        UserError::ShortPassword => ApiError::bad_request(e.to_string()).with_param(Some("password".into())),
        UserError::Exists(_) => ApiError::conflict(e.to_string()),
        UserError::Unknown(_) => ApiError::not_found(e.to_string()),
        UserError::Store(e) => unavailable(&e),
        UserError::Other(e) => {
            tracing::warn!(error = %e, "making a user failed");
            ApiError::service_unavailable("The user could not be made right now.")
        }
    }
}

/// `POST /api/users` (admins) → 201.
pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        caller.require(Role::Admin)?;
        let asked: CreateUser = read_json(&parts.headers, body).await?;
        let user = users::create(state.store.as_ref(), &asked.username, asked.role, &asked.password)
            .await
            .map_err(user_error)?;
        audit::record_change(&state, &caller, &parts, "user.create", Some(&user.id), None, Some(&view(&user))).await;
        Ok::<_, ApiError>(user)
    }
    .await;
    match result {
        Ok(u) => (StatusCode::CREATED, Json(view(&u))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/users?cursor=&limit=`: by username.
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        let Ok(Query(params)) = params else {
            return Err(ApiError::bad_request("Query parameters are `cursor` and `limit`."));
        };
        let mut all = state.store.list_users().await.map_err(|e| unavailable(&e))?;
        all.retain(|u| visible(&caller, u));
        page(all, |u| u.id.as_str(), &params)
    }
    .await;
    match result {
        Ok((data, next)) => {
            Json(json!({"data": data.iter().map(view).collect::<Vec<_>>(), "next": next})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn visible(caller: &AdminCaller, user: &UserRecord) -> bool {
    caller.own_user().is_none_or(|own| user.username == own)
}

async fn find(state: &Shared, caller: &AdminCaller, id: &str) -> Result<UserRecord, ApiError> {
    match state.store.user_by_id(id).await.map_err(|e| unavailable(&e))? {
        Some(u) if visible(caller, &u) => Ok(u),
        _ => Err(user_not_found(id)),
    }
}

/// `GET /api/users/{id}`.
pub async fn get(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        find(&state, &caller, &id).await
    }
    .await;
    match result {
        Ok(u) => Json(view(&u)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PATCH /api/users/{id}`: an admin sets anyone's role or password (not its own role: an admin
/// cannot lock every admin out by accident); a user its own password, with the current one.
pub async fn change(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        let user = find(&state, &caller, &id).await?;
        let asked: ChangeUser = read_json(&parts.headers, body).await?;
        let is_self = match &caller {
            AdminCaller::User { user: me, .. } => me.id == user.id,
            AdminCaller::Master => false,
        };
        if caller.role() != Role::Admin && !is_self {
            return Err(ApiError::forbidden("Only an admin changes other users.").with_code("insufficient_role"));
        }
        if let Some(role) = asked.role {
            if caller.role() != Role::Admin {
                return Err(ApiError::forbidden("Only an admin sets roles.").with_code("insufficient_role"));
            }
            if is_self && role != user.role {
                return Err(ApiError::bad_request("An admin cannot change its own role; another admin can."));
            }
            state.store.set_user_role(&user.id, role, UnixMillis::now()).await.map_err(|e| unavailable(&e))?;
        }
        let password_changed = asked.password.is_some();
        if let Some(password) = asked.password {
            if caller.role() != Role::Admin {
                let current = asked.current_password.unwrap_or_default();
                if !crate::passwords::verify(current, Some(user.password_hash.clone())).await {
                    return Err(ApiError::forbidden("`current_password` is not this user's password.")
                        .with_param(Some("current_password".into()))
                        .with_code("invalid_credentials"));
                }
            }
            users::set_password(state.store.as_ref(), &user.username, &password).await.map_err(user_error)?;
        }
        let after =
            state.store.user_by_id(&user.id).await.map_err(|e| unavailable(&e))?.ok_or_else(|| user_not_found(&id))?;
        let mut shown = view(&after);
        if password_changed {
            // Recorded as changed, never as text.
            shown["password"] = json!("changed");
        }
        audit::record_change(&state, &caller, &parts, "user.update", Some(&user.id), Some(&view(&user)), Some(&shown))
            .await;
        Ok(after)
    }
    .await;
    match result {
        Ok(u) => Json(view(&u)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A deleted user's keys are revoked with it: a key never outlives its owner's rights.
async fn revoke_keys_of(state: &Shared, caller: &AdminCaller, parts: &Parts, username: &str) -> Result<(), ApiError> {
    let keys = state.store.list_keys().await.map_err(|e| unavailable(&e))?;
    for key in keys.into_iter().filter(|k| k.user.as_deref() == Some(username) && k.revoked_at.is_none()) {
        let revoked = state.store.revoke_key(&key.id).await.map_err(|e| unavailable(&e))?;
        state.keys.apply(vec![revoked.clone()]);
        let after =
            json!({"id": revoked.id, "name": revoked.name, "user": revoked.user, "revoked_at": revoked.revoked_at});
        audit::record_change(state, caller, parts, "key.revoke", Some(&revoked.id), None, Some(&after)).await;
    }
    Ok(())
}

/// `DELETE /api/users/{id}` (admins): the user, its sessions and its keys (revoked) go.
pub async fn delete(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Response {
    let result = async {
        let caller = state.admin_caller(&parts).await?;
        caller.require(Role::Admin)?;
        let user = find(&state, &caller, &id).await?;
        if let AdminCaller::User { user: me, .. } = &caller
            && me.id == user.id
        {
            return Err(ApiError::bad_request("A user cannot delete itself."));
        }
        match state.store.delete_user(&user.id).await {
            Ok(()) => {
                audit::record_change(&state, &caller, &parts, "user.delete", Some(&user.id), Some(&view(&user)), None)
                    .await;
                revoke_keys_of(&state, &caller, &parts, &user.username).await?;
                Ok(())
            }
            Err(StoreError::NotFound) => Err(user_not_found(&id)),
            Err(e) => Err(unavailable(&e)),
        }
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
