//! Making users: the first admin at start-up, and the `users` CLI. There are no default
//! credentials: the first admin's password is `LLM_PROXY_DEFAULT_ADMIN_PASSWORD`, or one generated
//! and printed once.

use llm_proxy_core::UnixMillis;
use llm_proxy_core::config::Config;
use llm_proxy_core::store::{Store, StoreError};
use llm_proxy_core::user::{MIN_PASSWORD_CHARS, NewUser, Role, UserRecord, valid_username};
use secrecy::ExposeSecret;

use crate::passwords;

/// Why a user could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a username is 1 to 64 letters, digits, `.`, `_`, `-` or `@`")]
    BadName,
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("a user named `{0}` exists")]
    Exists(String),
    #[error("no user is named `{0}`")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub fn check_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS { Err(UserError::ShortPassword) } else { Ok(()) }
}

/// Adds a user with `password`.
pub async fn create(store: &dyn Store, username: &str, role: Role, password: &str) -> Result<UserRecord, UserError> {
    if !valid_username(username) {
        return Err(UserError::BadName);
    }
    check_password(password)?;
    let password_hash = passwords::hash(password.to_string()).await?;
    let user = NewUser { id: uuid::Uuid::now_v7().to_string(), username: username.to_string(), role, password_hash };
    match store.insert_user(&user, UnixMillis::now()).await {
        Err(StoreError::Conflict(_)) => Err(UserError::Exists(username.to_string())),
        other => Ok(other?),
    }
}

/// Sets `username`'s password; its sessions end.
pub async fn set_password(store: &dyn Store, username: &str, password: &str) -> Result<(), UserError> {
    check_password(password)?;
    let Some(user) = store.user_by_name(username).await? else { return Err(UserError::Unknown(username.into())) };
    let hash = passwords::hash(password.to_string()).await?;
    store.set_user_password(&user.id, &hash, UnixMillis::now()).await?;
    Ok(())
}

/// At start-up: with no admin yet, makes the first one (`default_admin_username`) with the
/// configured password, or a generated one printed once on stderr. Instances starting together
/// make one between them.
pub async fn bootstrap_admin(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    if store.list_users().await?.iter().any(|u| u.role == Role::Admin) {
        return Ok(());
    }
    let (password, generated) = match &config.default_admin_password {
        Some(p) => (p.expose_secret().to_string(), false),
        None => (passwords::generate(), true),
    };
    match create(store, &config.default_admin_username, Role::Admin, &password).await {
        Ok(user) => {
            if generated {
                // Printed, never logged: it is shown this once and then exists only as a hash.
                eprintln!(
                    "\n  llm-proxy: created the first admin user `{}` with the password\n\n      {password}\n\n  It is not shown again; change it with `llm-proxy users passwd {}`.\n",
                    user.username, user.username
                );
            }
            tracing::info!(username = %user.username, "created the first admin user");
            let actor = crate::audit::Actor { name: "(startup)".into(), role: Role::Admin.as_str().into(), ip: None };
            crate::audit::record(store, &actor, "user.create", Some(&user.id), None, Some(&view(&user))).await;
            Ok(())
        }
        // Another instance made it first (or a user of that name is not an admin: said below).
        Err(UserError::Exists(name)) => {
            if store.user_by_name(&name).await?.is_some_and(|u| u.role != Role::Admin) {
                tracing::warn!(username = %name, "no admin user exists and the default admin's name is taken by another role; make one with `llm-proxy users create NAME --role admin`");
            }
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("creating the first admin user: {e}")),
    }
}

/// A user as the API shows it: never its password hash.
pub fn view(user: &UserRecord) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "username": user.username,
        "role": user.role.as_str(),
        "created_at": user.created_at.to_i64(),
        "updated_at": user.updated_at.to_i64(),
    })
}
