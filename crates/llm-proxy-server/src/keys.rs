//! Making a virtual key, the same way for the CLI and the admin API: a random secret, kept only as
//! its hash, with a time-ordered id (UUIDv7, so lists sort by creation).

use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::{Store, StoreError};
use llm_proxy_core::virtual_key::{KeyLimits, KeyRecord, NewKey, generate_key};

/// What a new key is for; its fields already checked by the caller.
pub struct KeySpec {
    pub name: String,
    pub models: Vec<String>,
    pub user: Option<String>,
    pub expires_at: Option<UnixMillis>,
    pub limits: KeyLimits,
}

/// Stores a new key; returns it and its secret, to be shown once.
pub async fn create(store: &dyn Store, spec: KeySpec) -> Result<(KeyRecord, String), StoreError> {
    let generated = generate_key();
    let models = spec.models.into_iter().map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
    let record = store
        .insert_key(&NewKey {
            id: uuid::Uuid::now_v7().to_string(),
            name: spec.name,
            hash: generated.hash,
            display: generated.display,
            models,
            user: spec.user,
            expires_at: spec.expires_at,
            limits: spec.limits,
        })
        .await?;
    Ok((record, generated.secret))
}
