//! [`Deployment`]: one upstream model on one provider, with its health.

use std::fmt;
use std::sync::Arc;

use crate::limits::RateLimits;
use crate::model_catalog::Resolved;
use crate::shared_state::DeploymentHealth;

/// `provider/model`: names a deployment in the shared state (its health, its own limits) and in
/// the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DeploymentKey(String);

impl DeploymentKey {
    pub fn of(target: &Resolved) -> Self {
        Self(target.canonical())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `provider/model` that routes send requests to. A table holds one per key, shared by every
/// route that names it, so all of them see the same breaker and in-flight count.
pub struct Deployment {
    pub key: DeploymentKey,
    /// Where to send the request. `alias` is `None`: routes name deployments, clients do not.
    pub target: Resolved,
    pub health: Arc<dyn DeploymentHealth>,
    /// Its own requests and tokens per minute over all keys (route targets'
    /// `requests_per_minute` / `tokens_per_minute`), checked before each call to it.
    pub limits: Option<RateLimits>,
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment").field("key", &self.key).finish_non_exhaustive()
    }
}
