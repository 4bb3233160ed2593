//! Reading a request body under the configured size limit.

use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;

use crate::error::ApiError;

/// How long a client may take to send its body; a slow trickle must not hold a connection forever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the whole body, refusing anything over `limit` bytes with 413 — early from
/// `content-length` when the client sent one, else as soon as the limit is crossed — and a body
/// that takes longer than `BODY_READ_TIMEOUT` with 408.
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    read_limited_within(headers, body, limit, BODY_READ_TIMEOUT).await
}

pub async fn read_limited_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    within: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    match tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::body_timeout(within)),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(ApiError::body_too_large(limit))
            } else {
                Err(ApiError::bad_request("Could not read the request body."))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_never_finishes_times_out() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream_from(rx));
        let err = read_limited_within(&HeaderMap::new(), body, 1024, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_without_content_length_is_413() {
        let chunks = futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 200]))));
        let err = read_limited(&HeaderMap::new(), Body::from_stream(chunks), 1024).await.unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Send + 'static {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
