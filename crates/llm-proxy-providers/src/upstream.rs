//! What every adapter does the same way: send a JSON body and wait for the head under the
//! first-byte limit, map transport failures and error statuses to `ProviderError`, and read whole
//! bodies under the between-chunks limit and a size cap.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Method, Uri};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use llm_proxy_core::config::UpstreamTimeouts;
use llm_proxy_core::cpu_pool;
use llm_proxy_core::provider::{ChatInput, Failure, ProviderError, TimeoutPhase};
use llm_proxy_core::unified::ChatRequest;

use crate::HttpClient;
use crate::http_client::OutBody;
use crate::upstream_error;

/// Largest non-streamed answer read into memory.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Largest error body read: it is only quoted, and cut to a few hundred characters.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// One upstream's connection details, shared by its adapter's calls.
pub(crate) struct Upstream {
    pub http: HttpClient,
    pub timeouts: UpstreamTimeouts,
    /// The provider key, only to scrub it from upstream error messages that quote it.
    pub secret: Option<secrecy::SecretString>,
    /// `Basic` credentials from the base URL's user info (`https://user:pw@host/…`), sent unless
    /// the adapter sets its own `authorization`, as reqwest did. The URIs carry none.
    pub url_auth: Option<HeaderValue>,
}

impl Upstream {
    pub fn new(config: &llm_proxy_core::config::ProviderConfig, http: HttpClient, timeouts: UpstreamTimeouts) -> Self {
        let url_auth = url::Url::parse(config.base_url.trim()).ok().and_then(|u| basic_auth_of(&u));
        Self { http, timeouts, secret: config.api_key.clone(), url_auth }
    }

    /// `headers` with the base URL's credentials, unless the adapter set its own.
    fn with_url_auth(&self, mut headers: HeaderMap) -> HeaderMap {
        if let Some(auth) = &self.url_auth {
            headers.entry(AUTHORIZATION).or_insert_with(|| auth.clone());
        }
        headers
    }

    pub fn secret(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        self.secret.as_ref().map(|k| k.expose_secret())
    }

    /// Posts `body` (JSON) with `headers` and waits for a successful response head.
    pub async fn post(
        &self,
        url: &Uri,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<http::Response<Incoming>, ProviderError> {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.post_body(url, headers, Either::Left(Full::new(Bytes::from(body)))).await
    }

    /// Posts a body of any kind (`headers` say its type) and waits for a successful response head.
    pub async fn post_body(
        &self,
        url: &Uri,
        headers: HeaderMap,
        body: OutBody,
    ) -> Result<http::Response<Incoming>, ProviderError> {
        self.send(Method::POST, url, headers, body).await
    }

    /// Sends a request of any method and waits for a successful response head.
    pub async fn send(
        &self,
        method: Method,
        url: &Uri,
        headers: HeaderMap,
        body: OutBody,
    ) -> Result<http::Response<Incoming>, ProviderError> {
        let send = self.http.send_body(method, url, self.with_url_auth(headers), body);
        let resp = match tokio::time::timeout(self.timeouts.first_byte, send).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutPhase::FirstByte)),
            Ok(Err(e)) => return Err(transport_error(e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(String::from);
        let body = read_body(resp, self.timeouts.between_chunks, MAX_ERROR_BYTES).await.unwrap_or_default();
        Err(upstream_error::from_status(status.as_u16(), &body, retry_after.as_deref(), self.secret()))
    }

    /// Posts and reads the whole answer.
    pub async fn post_for_body(&self, url: &Uri, headers: HeaderMap, body: Vec<u8>) -> Result<Bytes, ProviderError> {
        let resp = self.post(url, headers, body).await?;
        read_body(resp, self.timeouts.between_chunks, MAX_RESPONSE_BYTES).await
    }
}

impl Upstream {
    /// `GET url`: the health probe. Any answer but an outage (5xx, 429) or a refusal of the
    /// gateway's credentials (401, 403, or what the error body says is one, such as Google's 400
    /// `API_KEY_INVALID`) counts as healthy — a 404 still proves the server is up.
    pub async fn probe(&self, url: url::Url, headers: HeaderMap) -> Result<(), ProviderError> {
        let url = to_uri(&url).map_err(ProviderError::Protocol)?;
        let send = self.http.send(Method::GET, &url, self.with_url_auth(headers), Bytes::new());
        let resp = match tokio::time::timeout(self.timeouts.first_byte, send).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutPhase::FirstByte)),
            Ok(Err(e)) => return Err(transport_error(e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let body = read_body(resp, self.timeouts.between_chunks, MAX_ERROR_BYTES).await.unwrap_or_default();
        match upstream_error::from_status(status, &body, None, self.secret()) {
            e @ ProviderError::Status {
                failure: Failure::Auth | Failure::RateLimited | Failure::Unavailable, ..
            } => Err(e),
            _ => Ok(()),
        }
    }
}

impl Upstream {
    /// A translated stream: the upstream's SSE read by `decoder` into unified events, under the
    /// first-byte and between-chunks limits, with in-stream error text scrubbed of the key.
    pub fn translated_events<D>(
        &self,
        resp: http::Response<Incoming>,
        decoder: D,
    ) -> llm_proxy_core::provider::EventStream
    where
        D: llm_proxy_core::translate::StreamDecoder + 'static,
    {
        let t = &self.timeouts;
        let secret = self.secret.clone();
        let events =
            crate::sse_stream::sse_stream(resp, t.first_byte, t.between_chunks, crate::sse_stream::Translated(decoder));
        Box::pin(futures_util::StreamExt::map(events, move |e| e.map_err(|e| scrub_reported(e, secret.as_ref()))))
    }
}

/// Upstreams quote keys in error text: an in-stream error message is scrubbed like a status one.
pub(crate) fn scrub_reported(e: ProviderError, secret: Option<&secrecy::SecretString>) -> ProviderError {
    use secrecy::ExposeSecret;
    match e {
        ProviderError::Reported(m) => {
            ProviderError::Reported(upstream_error::scrub(m, secret.map(|k| k.expose_secret())))
        }
        other => other,
    }
}

/// The provider key as a header value (marked sensitive), shaped by `format` (`Bearer {k}` or the
/// bare key); a key a header cannot carry is a configuration error.
pub(crate) fn key_header(
    config: &llm_proxy_core::config::ProviderConfig,
    format: impl Fn(&str) -> String,
) -> Result<Option<HeaderValue>, crate::BuildError> {
    use secrecy::ExposeSecret;
    config
        .api_key
        .as_ref()
        .map(|k| {
            sensitive(&format(k.expose_secret())).ok_or_else(|| crate::BuildError::InvalidKey {
                provider: config.name.clone(),
                reason: "the key holds characters an HTTP header cannot carry".into(),
            })
        })
        .transpose()
}

/// `base` with one more path segment, percent-encoded (a model id may hold `/`).
pub(crate) fn with_segment(base: &url::Url, segment: &str) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push(segment);
    }
    url
}

/// Serialises a request body; a failure here is a bug in a converter, reported as a protocol error.
pub(crate) fn to_body(value: &impl serde::Serialize) -> Result<Vec<u8>, ProviderError> {
    to_body_sized(value, 0)
}

/// `to_body` into a buffer made for about `size` bytes (plus the request's other fields), so a big
/// body is written without the copies a doubling buffer makes on its way up.
pub(crate) fn to_body_sized(value: &impl serde::Serialize, size: usize) -> Result<Vec<u8>, ProviderError> {
    let mut out = Vec::with_capacity(if size < cpu_pool::INLINE_BYTES { 0 } else { size + size / 8 + 4096 });
    serde_json::to_writer(&mut out, value).map_err(|e| ProviderError::Protocol(e.to_string()))?;
    Ok(out)
}

/// Runs a CPU-heavy step of a request of `size` bytes on the CPU pool (inline when small).
pub(crate) async fn on_cpu_pool<T: Send + 'static>(
    size: usize,
    job: impl FnOnce() -> Result<T, ProviderError> + Send + 'static,
) -> Result<T, ProviderError> {
    cpu_pool::run(size, job).await.map_err(|e| ProviderError::Protocol(e.to_string()))?
}

/// A request of another protocol, translated into the unified model and encoded for this
/// upstream by `encode` (given the request and its size), on the CPU pool when it is big. The
/// unified request is dropped before the body is sent; what the caller still needs of it is
/// whether it streams.
pub(crate) async fn translate<F>(model: &str, request: ChatInput, encode: F) -> Result<(bool, Vec<u8>), ProviderError>
where
    F: FnOnce(&ChatRequest, usize) -> Result<Vec<u8>, ProviderError> + Send + 'static,
{
    let size = request.size_hint();
    let model = model.to_string();
    on_cpu_pool(size, move || {
        let request = request.into_unified(&model)?;
        let body = encode(&request, size)?;
        Ok((request.stream, body))
    })
    .await
}

/// Reads a whole body, with the between-chunks limit on each read and a cap on the total.
pub(crate) async fn read_body(
    resp: http::Response<Incoming>,
    idle: Duration,
    max: usize,
) -> Result<Bytes, ProviderError> {
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutPhase::BetweenChunks)),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => {
                // hyper's errors quote no URL.
                return Err(ProviderError::Interrupted(e.to_string()));
            }
            Ok(Some(Ok(frame))) => {
                // Trailers carry nothing the gateway reads.
                let Ok(bytes) = frame.into_data() else { continue };
                if buf.len() + bytes.len() > max {
                    return Err(ProviderError::Protocol(format!("upstream answer larger than {max} bytes")));
                }
                buf.extend_from_slice(&bytes);
            }
        }
    }
}

pub(crate) fn transport_error(e: hyper_util::client::legacy::Error) -> ProviderError {
    if e.is_connect() {
        if caused_by::<crate::http_client::ConnectTimeout>(&e) || caused_by_io(&e, std::io::ErrorKind::TimedOut) {
            return ProviderError::Timeout(TimeoutPhase::Connect);
        }
        ProviderError::Connect(source_chain(&e))
    } else {
        ProviderError::Interrupted(source_chain(&e))
    }
}

/// `e` and its causes, outermost first.
fn causes<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// Whether `e` or one of its causes is a `T`.
fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    causes(e).any(|err| err.is::<T>())
}

/// Whether `e` or one of its causes is an I/O error of `kind`.
fn caused_by_io(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    causes(e).any(|err| err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == kind))
}

/// The client's top-level message is generic ("client error (Connect)"); the cause says what happened.
/// A URL a cause quotes (a proxy's, a redirect's) is shown without its credentials.
pub(crate) fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let msg = causes(e).map(ToString::to_string).collect::<Vec<_>>().join(": ");
    llm_proxy_core::config::redact_urls_in(&msg)
}

/// A header value that never shows in debug output.
pub(crate) fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `base` + `path` as a URL, checked once when the adapter is built. The path goes after the base's
/// path and before its query, which is kept (`…/v1?api-version=…` → `…/v1/chat/completions?api-version=…`).
pub(crate) fn join(base: &str, path: &str, provider: &str) -> Result<url::Url, crate::BuildError> {
    let invalid = |reason: String| crate::BuildError::InvalidUrl { provider: provider.to_string(), reason };
    let mut url = url::Url::parse(base.trim()).map_err(|e| invalid(e.to_string()))?;
    if url.cannot_be_a_base() {
        return Err(invalid("not a base URL".into()));
    }
    let joined = format!("{}/{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_fragment(None);
    Ok(url)
}

/// `join` as the `Uri` a request is sent to, converted once, when the adapter is built.
pub(crate) fn join_uri(base: &str, path: &str, provider: &str) -> Result<Uri, crate::BuildError> {
    to_uri(&join(base, path, provider)?)
        .map_err(|reason| crate::BuildError::InvalidUrl { provider: provider.to_string(), reason })
}

/// A parsed URL as a request `Uri`, without its user info (that goes in `Upstream::url_auth`), so
/// no credential reaches a request line or a message. The error names no URL.
pub(crate) fn to_uri(url: &url::Url) -> Result<Uri, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http or https", url.scheme()));
    }
    let bare;
    let url = if url.username().is_empty() && url.password().is_none() {
        url
    } else {
        let mut u = url.clone();
        // An http(s) URL has a host, so both succeed.
        let _ = u.set_username("");
        let _ = u.set_password(None);
        bare = u;
        &bare
    };
    Uri::try_from(url.as_str()).map_err(|e| format!("not a valid request URI: {e}"))
}

/// The URL's user info as a `Basic` header (percent-decoded, marked sensitive), as reqwest made it.
fn basic_auth_of(url: &url::Url) -> Option<HeaderValue> {
    use base64::Engine;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let mut plain = percent_decoded(url.username())?;
    plain.push(':');
    if let Some(pw) = url.password() {
        plain.push_str(&percent_decoded(pw)?);
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
    sensitive(&format!("Basic {encoded}"))
}

/// `%XX` escapes decoded; `None` when the result is not UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod join_tests {
    use super::join;

    #[test]
    fn the_path_goes_before_the_query() {
        let url = |base: &str| join(base, "chat/completions", "p").unwrap().to_string();
        assert_eq!(url("http://h/v1"), "http://h/v1/chat/completions");
        assert_eq!(url("http://h/v1/"), "http://h/v1/chat/completions");
        assert_eq!(url("http://h"), "http://h/chat/completions");
        assert_eq!(
            url("http://h/openai/v1?api-version=2024-10-21"),
            "http://h/openai/v1/chat/completions?api-version=2024-10-21"
        );
        assert!(join("not a url", "x", "p").is_err());
    }

    #[test]
    fn request_uris_carry_no_credentials() {
        use super::join_uri;
        assert_eq!(join_uri("https://h/v1", "models", "p").unwrap(), "https://h/v1/models");
        assert_eq!(join_uri("https://user:p%40ss@h/v1", "models", "p").unwrap(), "https://h/v1/models");
        let auth = super::basic_auth_of(&url::Url::parse("https://user:p%40ss@h/v1").unwrap()).unwrap();
        assert!(auth.is_sensitive());
        assert_eq!(auth, "Basic dXNlcjpwQHNz", "user:p@ss");
        assert!(super::basic_auth_of(&url::Url::parse("https://h/v1").unwrap()).is_none());
        assert!(join_uri("ftp://h/v1", "models", "p").is_err());
    }

    /// The connect timeout covers the TLS handshake, as reqwest's did: a server that accepts the
    /// TCP connection and never answers the handshake is a connect timeout, not a first-byte one.
    #[tokio::test]
    async fn a_silent_tls_handshake_is_a_connect_timeout() {
        use super::join_uri;
        use llm_proxy_core::config::UpstreamTimeouts;
        use llm_proxy_core::provider::{ProviderError, TimeoutPhase};
        use std::time::Duration;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let timeouts = UpstreamTimeouts {
            connect: Duration::from_millis(200),
            first_byte: Duration::from_secs(30),
            between_chunks: Duration::from_secs(30),
        };
        let http = crate::HttpClient::new(&timeouts).unwrap();
        let upstream = super::Upstream { http, timeouts, secret: None, url_auth: None };
        let uri = join_uri(&format!("https://127.0.0.1:{port}"), "x", "p").unwrap();
        let post = upstream.post(&uri, Default::default(), b"{}".to_vec());
        // Accepted and held open, silent.
        let (result, _conn) = tokio::join!(post, listener.accept());
        assert!(matches!(result, Err(ProviderError::Timeout(TimeoutPhase::Connect))), "{result:?}");
    }
}
