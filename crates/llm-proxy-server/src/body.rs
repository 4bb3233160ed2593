//! Reading a request body under the configured size limit.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;

use crate::error::ApiError;

/// Reads the whole body, refusing anything over `limit` bytes with 413 — early from
/// `content-length` when the client sent one, else as soon as the limit is crossed.
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(ApiError::body_too_large(limit))
            } else {
                Err(ApiError::bad_request("Could not read the request body."))
            }
        }
    }
}
