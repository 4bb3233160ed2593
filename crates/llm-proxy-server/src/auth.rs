//! Who is calling: a virtual key, or the master key (admin).

use std::sync::Arc;

use axum::http::HeaderMap;
use llm_proxy_core::key_ring::KeyRejection;
use llm_proxy_core::model_catalog::{ModelCatalog, Resolved};
use llm_proxy_core::virtual_key::{KeyRecord, hash_key};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::app::Shared;
use crate::error::ApiError;

#[derive(Debug, Clone)]
pub enum Principal {
    Master,
    Key(Arc<KeyRecord>),
}

impl Principal {
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::Master => None,
            Self::Key(k) => Some(&k.id),
        }
    }

    /// The user a virtual key belongs to.
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Master => None,
            Self::Key(k) => k.user.as_deref(),
        }
    }

    /// Whether this caller may use the route `name` (a key's model list names routes by name).
    pub fn allows_route(&self, name: &str) -> bool {
        match self {
            Self::Master => true,
            Self::Key(k) => k.models.is_empty() || k.models.iter().any(|m| m == name),
        }
    }

    /// Whether this caller may reach `target` under the name `requested`.
    pub fn allows(&self, catalog: &ModelCatalog, requested: &str, target: &Resolved) -> bool {
        match self {
            Self::Master => true,
            Self::Key(k) => catalog.allows(&k.models, requested, target),
        }
    }
}

/// The bearer token of `Authorization: Bearer X`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The key on the Anthropic endpoints: `x-api-key` (what the Anthropic SDKs send by default), or a
/// bearer token (what they send when given an auth token).
pub fn anthropic_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .or_else(|| bearer(headers))
}

impl Shared {
    /// Authenticates a presented secret without touching the database.
    pub fn authenticate(&self, secret: Option<&str>) -> Result<Principal, ApiError> {
        let Some(secret) = secret else {
            return Err(ApiError::unauthorized(
                "Missing API key. Send it as `Authorization: Bearer <key>` (or `x-api-key: <key>` on /v1/messages); create one with `llm-proxy keys create`.",
            ));
        };
        // Digests have one length, so the comparison does not reveal the master key's length.
        if let Some(master) = &self.master_key
            && bool::from(hash_key(master.expose_secret()).ct_eq(&hash_key(secret)))
        {
            return Ok(Principal::Master);
        }
        match self.keys.authenticate(secret, llm_proxy_core::now_ms()) {
            Ok(k) => Ok(Principal::Key(k)),
            Err(KeyRejection::Unknown) => Err(ApiError::unauthorized("Invalid API key.")),
            Err(KeyRejection::Revoked) => Err(ApiError::unauthorized("This API key has been revoked.")),
            Err(KeyRejection::Expired) => Err(ApiError::unauthorized("This API key has expired.")),
        }
    }

    /// Only the master key may use the admin API.
    pub fn authenticate_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.authenticate(bearer(headers))? {
            Principal::Master => Ok(()),
            Principal::Key(_) => {
                Err(ApiError::forbidden("This endpoint needs the master key.").with_code("admin_only"))
            }
        }
    }
}
