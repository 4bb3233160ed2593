//! A `multipart/form-data` upload read only as far as its `model` field, so it can be routed and
//! the model rewritten without holding the file: the bytes up to the end of the field are held
//! (under the body limit), and the rest streams upstream as it arrives, counted against the same
//! limit on its way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use llm_proxy_core::media::{MultipartUpload, UploadStream};
use llm_proxy_protocol::multipart::{ModelFieldScan, Scan, boundary};
use tokio::time::Instant;

use crate::body::BODY_READ_TIMEOUT;
use crate::error::ApiError;

/// An upload read as far as its model, and what its streamed rest says of the body limit.
pub struct UploadHead {
    pub upload: MultipartUpload,
    /// Bytes read so far.
    pub read: usize,
    /// Set when the rest went past the limit on its way upstream (the upload was then cut).
    pub over_limit: Arc<AtomicBool>,
}

/// Whether a request's body is multipart (the other bodies the endpoints take are JSON).
pub fn is_multipart(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|t| boundary(t).is_some())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// Reads `body` up to the end of its `model` field: 400 when it has none or is not multipart, 413
/// past `limit`, 408 when the client takes longer than `BODY_READ_TIMEOUT` (after which the rest
/// of the body must keep up `MIN_UPLOAD_RATE`).
pub async fn read_head(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<UploadHead, ApiError> {
    let content_type = content_type(headers).unwrap_or_default();
    let Some(boundary) = boundary(content_type) else {
        return Err(ApiError::bad_request("Expected a `multipart/form-data` body with a boundary."));
    };
    let content_length = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let deadline = Instant::now() + BODY_READ_TIMEOUT;
    let mut scan = ModelFieldScan::new(boundary);
    let mut held = BytesMut::new();
    let mut ended = false;
    let field = loop {
        match scan.scan(&held, ended) {
            Scan::Found(field) => break field,
            Scan::Missing => {
                return Err(
                    ApiError::bad_request("The multipart body has no `model` field.").with_param(Some("model".into()))
                );
            }
            Scan::Malformed(why) => return Err(ApiError::bad_request(format!("Malformed multipart body: {why}."))),
            Scan::More => {}
        }
        match next_data(&mut body, deadline).await? {
            None => ended = true,
            Some(bytes) => {
                if held.len() + bytes.len() > limit {
                    return Err(ApiError::body_too_large(limit));
                }
                held.extend_from_slice(&bytes);
            }
        }
    };
    let read = held.len();
    let mut held = held.freeze();
    let after_model = held.split_off(field.end);
    let before_model = held.split_to(field.start);
    let over_limit = Arc::new(AtomicBool::new(false));
    let rest = (!ended && !body.is_end_stream()).then(|| {
        let stream = limited(body, limit - read, deadline, over_limit.clone());
        Arc::new(std::sync::Mutex::new(Some(stream)))
    });
    let upload = MultipartUpload {
        content_type: content_type.to_string(),
        before_model,
        model: field.value,
        after_model,
        content_length,
        rest,
    };
    Ok(UploadHead { upload, read, over_limit })
}

/// A multipart upload sent on whole, as it arrives (a file for the Files API, which has no model
/// to read first): 400 when it is not multipart, 413 when its length says it is past `limit` —
/// and past `limit` on its way, it is cut. It must keep up `MIN_UPLOAD_RATE` after its first
/// `BODY_READ_TIMEOUT`.
pub fn whole(headers: &HeaderMap, body: Body, limit: usize) -> Result<WholeUpload, ApiError> {
    let content_type = content_type(headers).unwrap_or_default();
    if boundary(content_type).is_none() {
        return Err(ApiError::bad_request("Expected a `multipart/form-data` body with a boundary."));
    }
    let content_length = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let over_limit = Arc::new(AtomicBool::new(false));
    let body = limited(body, limit, Instant::now() + BODY_READ_TIMEOUT, over_limit.clone());
    Ok(WholeUpload { content_type: content_type.to_string(), content_length, body, over_limit })
}

pub struct WholeUpload {
    pub content_type: String,
    pub content_length: Option<u64>,
    pub body: UploadStream,
    /// Set when the body went past the limit on its way upstream (it was then cut).
    pub over_limit: Arc<AtomicBool>,
}

/// The next data frame of the client's body; `None` at its end.
async fn next_data(body: &mut Body, deadline: Instant) -> Result<Option<Bytes>, ApiError> {
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(ApiError::body_timeout(BODY_READ_TIMEOUT)),
            Ok(None) => return Ok(None),
            Ok(Some(Err(_))) => return Err(ApiError::bad_request("Could not read the request body.")),
            Ok(Some(Ok(frame))) => {
                if let Ok(bytes) = frame.into_data() {
                    return Ok(Some(bytes));
                }
            }
        }
    }
}

/// The slowest a streamed upload may arrive once its first `BODY_READ_TIMEOUT` is over: each byte
/// past that extends its deadline by `1 / MIN_UPLOAD_RATE` s. A file of hundreds of megabytes
/// cannot arrive within a fixed minute, while a client that trickles a byte now and then is
/// still cut off.
const MIN_UPLOAD_RATE: u64 = 64 * 1024;

/// The rest of the body, ended with an error (which aborts the upstream request) past `remaining`
/// bytes, setting `over`, or past `deadline` extended by the bytes streamed so far
/// (`MIN_UPLOAD_RATE`).
fn limited(body: Body, remaining: usize, deadline: Instant, over: Arc<AtomicBool>) -> UploadStream {
    Box::pin(futures_util::stream::unfold(Some((body, remaining, 0u64)), move |state| {
        let over = over.clone();
        async move {
            let (mut body, remaining, streamed) = state?;
            let error = |kind, what: &str| Some((Err(std::io::Error::new(kind, what.to_string())), None));
            match next_data(&mut body, extended(deadline, streamed)).await {
                Err(e) if e.status.as_u16() == 408 => {
                    error(std::io::ErrorKind::TimedOut, "the client's body timed out")
                }
                Err(_) => error(std::io::ErrorKind::UnexpectedEof, "the client's body broke off"),
                Ok(None) => None,
                Ok(Some(bytes)) if bytes.len() > remaining => {
                    over.store(true, Ordering::Release);
                    error(std::io::ErrorKind::InvalidData, "the client's body is over the limit")
                }
                Ok(Some(bytes)) => {
                    let remaining = remaining - bytes.len();
                    let streamed = streamed + bytes.len() as u64;
                    Some((Ok(bytes), Some((body, remaining, streamed))))
                }
            }
        }
    }))
}

/// `deadline` extended by the time `streamed` bytes may take at `MIN_UPLOAD_RATE`.
fn extended(deadline: Instant, streamed: u64) -> Instant {
    deadline + Duration::from_millis(streamed.saturating_mul(1000) / MIN_UPLOAD_RATE)
}

/// Whether the rest of an upload went past the limit.
pub fn went_over(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_keeping_up_the_minimum_rate_is_never_cut() {
        let start = Instant::now();
        assert_eq!(extended(start, 0), start);
        // 256 MiB may take 4096 s past the first minute; a trickle gains next to nothing.
        assert_eq!(extended(start, 256 * 1024 * 1024), start + Duration::from_secs(4096));
        assert_eq!(extended(start, 10), start);
    }
}
