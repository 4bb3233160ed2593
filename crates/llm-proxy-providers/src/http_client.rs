//! The one outbound HTTP client: a single connection pool shared by every adapter.
//!
//! hyper's pooled client over rustls (webpki roots, ring), not reqwest: reqwest re-parsed each
//! request's URL into an `http::Uri` and cloned it for the response, and its layers and boxing
//! cost about 30k instructions per request. Adapters build their `Uri`s once, when they are built.
//! What reqwest gave that is kept: the connect timeout (TCP, proxy and TLS together), keep-alive
//! and `TCP_NODELAY`, idle connections kept 90 s, HTTP/2 when the server offers it, no redirects
//! (hyper follows none), and the proxies of `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use llm_proxy_core::config::UpstreamTimeouts;
use tower_service::Service;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: whole (every JSON call, unboxed), or streamed (an upload passed on as it
/// arrives).
pub(crate) type OutBody = Either<Full<Bytes>, UnsyncBoxBody<Bytes, BoxError>>;
type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<TimedConnector, OutBody>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the pool. Only a connect timeout is set here: first-byte and between-chunk limits are
    /// applied per call, because one total timeout would cut long but healthy streams.
    pub fn new(timeouts: &UpstreamTimeouts) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        // https URIs reach the TLS layer through this connector.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(30)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(ProxyConnector { http, proxies: Arc::new(Matcher::from_env()) });
        let connector = TimedConnector { https, timeout: timeouts.connect };
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { inner })
    }

    /// Sends `method uri` with `headers` (plus the user agent and `accept: */*`, as reqwest sent).
    pub(crate) fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.send_body(method, uri, headers, Either::Left(Full::new(body)))
    }

    /// `send` with a body of either kind.
    pub(crate) fn send_body(
        &self,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: OutBody,
    ) -> hyper_util::client::legacy::ResponseFuture {
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("llm-proxy/", env!("CARGO_PKG_VERSION"))));
        headers.entry(ACCEPT).or_insert(HeaderValue::from_static("*/*"));
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers;
        self.inner.request(req)
    }

    /// `GET url` as text, at most `max_bytes`, within `timeout`: for operator-configured data (the
    /// pricing registry), never a client-chosen URL. Errors never quote the URL.
    pub async fn fetch_text(&self, url: &str, max_bytes: usize, timeout: Duration) -> Result<String, String> {
        let uri: Uri = url.parse().map_err(|_| "not a valid URL".to_string())?;
        let fetch = async {
            let resp = self
                .send(Method::GET, &uri, HeaderMap::new(), Bytes::new())
                .await
                .map_err(|e| crate::upstream::source_chain(&e))?;
            if !resp.status().is_success() {
                return Err(format!("HTTP {}", resp.status().as_u16()));
            }
            let mut body = Vec::new();
            let mut stream: Incoming = resp.into_body();
            while let Some(frame) = stream.frame().await {
                let frame = frame.map_err(|e| crate::upstream::source_chain(&e))?;
                let Ok(chunk) = frame.into_data() else { continue };
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

/// The connect timeout over the whole connection set-up (TCP, a proxy's `CONNECT`, TLS), as
/// reqwest's `connect_timeout` was.
#[derive(Clone)]
struct TimedConnector {
    https: HttpsConnector<ProxyConnector>,
    timeout: Duration,
}

/// The error of a connection not made within the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out")]
pub(crate) struct ConnectTimeout;

impl Service<Uri> for TimedConnector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.https.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connect = self.https.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connect).await {
                Ok(r) => r,
                Err(_) => Err(ConnectTimeout.into()),
            }
        })
    }
}

/// TCP to the upstream, or through a `CONNECT` tunnel to it when the environment names a proxy
/// for its URL (with the proxy URL's credentials as basic auth). A plain-http upstream is tunnelled
/// too, where reqwest sent it to the proxy in absolute form: one path for both.
#[derive(Clone)]
struct ProxyConnector {
    http: HttpConnector,
    proxies: Arc<Matcher>,
}

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // HttpConnector is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self.proxies.intercept(&dst) {
            None => {
                let connect = self.http.call(dst);
                Box::pin(async move { connect.await.map_err(Into::into) })
            }
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.http.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let connect = tunnel.call(dst);
                Box::pin(async move { connect.await.map_err(Into::into) })
            }
        }
    }
}
