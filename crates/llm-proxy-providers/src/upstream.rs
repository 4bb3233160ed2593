//! What every adapter does the same way: send a JSON body and wait for the head under the
//! first-byte limit, map transport failures and error statuses to `ProviderError`, and read whole
//! bodies under the between-chunks limit and a size cap.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use llm_proxy_core::config::UpstreamTimeouts;
use llm_proxy_core::cpu_pool;
use llm_proxy_core::provider::{ChatInput, Failure, ProviderError, TimeoutPhase};
use llm_proxy_core::unified::ChatRequest;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::HttpClient;
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
}

impl Upstream {
    pub fn secret(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        self.secret.as_ref().map(|k| k.expose_secret())
    }

    /// Posts `body` (JSON) with `headers` and waits for a successful response head.
    pub async fn post(
        &self,
        url: &reqwest::Url,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ProviderError> {
        let req =
            self.http.inner.post(url.clone()).headers(headers).header(CONTENT_TYPE, "application/json").body(body);
        let resp = match tokio::time::timeout(self.timeouts.first_byte, req.send()).await {
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
    pub async fn post_for_body(
        &self,
        url: &reqwest::Url,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Bytes, ProviderError> {
        let resp = self.post(url, headers, body).await?;
        read_body(resp, self.timeouts.between_chunks, MAX_RESPONSE_BYTES).await
    }
}

impl Upstream {
    /// `GET url`: the health probe. Any answer but an outage (5xx, 429) or a refusal of the
    /// gateway's credentials (401, 403, or what the error body says is one, such as Google's 400
    /// `API_KEY_INVALID`) counts as healthy — a 404 still proves the server is up.
    pub async fn probe(&self, url: reqwest::Url, headers: HeaderMap) -> Result<(), ProviderError> {
        let req = self.http.inner.get(url).headers(headers);
        let resp = match tokio::time::timeout(self.timeouts.first_byte, req.send()).await {
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
    pub fn translated_events<D>(&self, resp: reqwest::Response, decoder: D) -> llm_proxy_core::provider::EventStream
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
) -> Result<Option<reqwest::header::HeaderValue>, crate::BuildError> {
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
pub(crate) fn with_segment(base: &reqwest::Url, segment: &str) -> reqwest::Url {
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
pub(crate) async fn read_body(resp: reqwest::Response, idle: Duration, max: usize) -> Result<Bytes, ProviderError> {
    let mut stream = resp.bytes_stream();
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutPhase::BetweenChunks)),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => {
                return Err(ProviderError::Interrupted(e.without_url().to_string()));
            }
            Ok(Some(Ok(bytes))) => {
                if buf.len() + bytes.len() > max {
                    return Err(ProviderError::Protocol(format!("upstream answer larger than {max} bytes")));
                }
                buf.extend_from_slice(&bytes);
            }
        }
    }
}

pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    let e = e.without_url();
    if e.is_timeout() {
        ProviderError::Timeout(if e.is_connect() { TimeoutPhase::Connect } else { TimeoutPhase::FirstByte })
    } else if e.is_connect() {
        ProviderError::Connect(source_chain(&e))
    } else {
        ProviderError::Interrupted(source_chain(&e))
    }
}

/// reqwest's top-level message is generic ("error sending request"); the cause says what happened.
/// A URL a cause quotes (a proxy's, a redirect's) is shown without its credentials.
pub(crate) fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    llm_proxy_core::config::redact_urls_in(&msg)
}

/// A header value that never shows in debug output.
pub(crate) fn sensitive(value: &str) -> Option<reqwest::header::HeaderValue> {
    let mut v = reqwest::header::HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `base` + `path` as a URL, checked once when the adapter is built. The path goes after the base's
/// path and before its query, which is kept (`…/v1?api-version=…` → `…/v1/chat/completions?api-version=…`).
pub(crate) fn join(base: &str, path: &str, provider: &str) -> Result<reqwest::Url, crate::BuildError> {
    let invalid = |reason: String| crate::BuildError::InvalidUrl { provider: provider.to_string(), reason };
    let mut url = reqwest::Url::parse(base.trim()).map_err(|e| invalid(e.to_string()))?;
    if url.cannot_be_a_base() {
        return Err(invalid("not a base URL".into()));
    }
    let joined = format!("{}/{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_fragment(None);
    Ok(url)
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
}
