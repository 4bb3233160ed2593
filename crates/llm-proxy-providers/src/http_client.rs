//! The one outbound HTTP client: a single connection pool shared by every adapter.

use std::time::Duration;

use llm_proxy_core::config::UpstreamTimeouts;

/// Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    pub(crate) inner: reqwest::Client,
}

impl HttpClient {
    /// Builds the pool. Only a connect timeout is set here: first-byte and between-chunk limits are
    /// applied per call, because one total timeout would cut long but healthy streams.
    pub fn new(timeouts: &UpstreamTimeouts) -> Result<Self, reqwest::Error> {
        #[allow(clippy::disallowed_methods)] // this is the one place the client is built
        let inner = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            // A redirect could carry the provider key to a host the operator never configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("llm-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { inner })
    }
}
