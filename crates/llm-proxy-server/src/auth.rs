//! Who is calling: a virtual key, or the master key (admin).

use std::sync::Arc;

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use llm_proxy_core::UnixMillis;
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

/// The bearer token of `Authorization: Bearer X`. Two `Authorization` headers are refused: which
/// one a server reads differs between servers and proxies, and a request that carries two is
/// either broken or trying something.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut all = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return match headers.contains_key(axum::http::header::AUTHORIZATION) {
            true => Err(duplicate("Authorization")),
            false => Ok(None),
        };
    };
    let Ok(v) = v.to_str() else { return Ok(None) };
    let Some((scheme, token)) = v.split_once(' ') else { return Ok(None) };
    Ok(scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty()))
}

/// The key on the Anthropic endpoints: `x-api-key` (what the Anthropic SDKs send by default), or a
/// bearer token (what they send when given an auth token). Both may come, but then they must be
/// the same key: otherwise which one counts would be a guess.
pub fn anthropic_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut all = headers.get_all("x-api-key").iter();
    let api_key = match (all.next(), all.next()) {
        (_, Some(_)) => return Err(duplicate("x-api-key")),
        (None, None) => None,
        (Some(v), None) => v.to_str().ok().map(str::trim).filter(|k| !k.is_empty()),
    };
    let bearer = bearer(headers)?;
    match (api_key, bearer) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "The request carries two different API keys (`x-api-key` and `Authorization`); send one.",
        )
        .with_code("conflicting_credentials")),
        (a, b) => Ok(a.or(b)),
    }
}

fn duplicate(header: &str) -> ApiError {
    ApiError::bad_request(format!("The request carries more than one `{header}` header; send one."))
        .with_code("conflicting_credentials")
}

/// The client's address, as the listener saw it.
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

impl Shared {
    /// Authenticates a presented secret: the master key, or a key of the in-memory ring; a key
    /// the ring does not know is asked of the database (`KeyMisses`: single flight, negatively
    /// cached, rate-limited), so a key made a moment ago elsewhere works at once. A known key
    /// never waits for the database.
    pub async fn authenticate(&self, secret: Option<&str>) -> Result<Principal, ApiError> {
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
        let now = UnixMillis::now();
        let mut known = self.keys.authenticate(secret, now);
        if known == Err(KeyRejection::Unknown)
            && let Some(found) = self.key_misses.lookup(self.store.as_ref(), hash_key(secret), now).await
        {
            self.keys.apply(vec![found]);
            known = self.keys.authenticate(secret, now);
        }
        match known {
            Ok(k) => Ok(Principal::Key(k)),
            Err(KeyRejection::Unknown) => Err(ApiError::unauthorized("Invalid API key.")),
            Err(KeyRejection::Revoked) => Err(ApiError::unauthorized("This API key has been revoked.")),
            Err(KeyRejection::Expired) => Err(ApiError::unauthorized("This API key has expired.")),
        }
    }

    /// Authenticates a client of `/v1`; a failure is counted for its address (and leaves no
    /// request-log row: see `RequestMeter::fail`).
    pub async fn authenticate_client(&self, secret: Option<&str>, ip: Option<IpAddr>) -> Result<Principal, ApiError> {
        self.authenticate(secret).await.inspect_err(|_| self.auth_failures.record(ip, UnixMillis::now()))
    }
}
