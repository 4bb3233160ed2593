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

    /// `GET url` as text, at most `max_bytes`, within `timeout`: for operator-configured data (the
    /// pricing registry), never a client-chosen URL.
    pub async fn fetch_text(&self, url: &str, max_bytes: usize, timeout: Duration) -> Result<String, String> {
        use futures_util::StreamExt;
        let fetch = async {
            let resp = self.inner.get(url).send().await.map_err(|e| e.without_url().to_string())?;
            if !resp.status().is_success() {
                return Err(format!("HTTP {}", resp.status().as_u16()));
            }
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| e.without_url().to_string())?;
                if body.len() + chunk.len() > max_bytes {
                    return Err(format!("larger than {max_bytes} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            String::from_utf8(body).map_err(|_| "not UTF-8".to_string())
        };
        tokio::time::timeout(timeout, fetch).await.map_err(|_| "timed out".to_string())?
    }
}
