//! Who is calling: a virtual key, or the master key (admin).

use std::sync::Arc;

use axum::http::HeaderMap;
use llm_proxy_core::key_ring::KeyRejection;
use llm_proxy_core::virtual_key::KeyRecord;
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

    pub fn allows_model<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> bool {
        match self {
            Self::Master => true,
            Self::Key(k) => k.allows_model(names),
        }
    }
}

/// The bearer token of `Authorization: Bearer X`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl Shared {
    /// Authenticates a presented secret without touching the database.
    pub fn authenticate(&self, secret: Option<&str>) -> Result<Principal, ApiError> {
        let Some(secret) = secret else {
            return Err(ApiError::unauthorized(
                "Missing API key. Send it as `Authorization: Bearer <key>`; create one with `llm-proxy keys create`.",
            ));
        };
        if let Some(master) = &self.master_key
            && bool::from(master.expose_secret().as_bytes().ct_eq(secret.as_bytes()))
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
