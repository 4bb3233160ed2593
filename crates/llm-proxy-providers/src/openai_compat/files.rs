//! OpenAI's Files and Batches APIs, passed through: the gateway names the path (from a fixed set,
//! ids checked), the body goes as it came — a file upload streamed — and the answer comes back
//! as the media endpoints' do.

use futures_util::TryStreamExt;
use http::Method;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::Frame;
use llm_proxy_core::media::MediaAnswer;
use llm_proxy_core::provider::ProviderError;
use llm_proxy_core::upstream_object::{PassBody, PassMethod, PassRequest, unsupported};

use super::OpenAiCompat;
use crate::http_client::BoxError;
use crate::upstream::to_uri;

impl OpenAiCompat {
    pub(super) async fn pass_call(&self, request: PassRequest) -> Result<MediaAnswer, ProviderError> {
        let Some(base) = &self.files_base else {
            // GLM speaks the chat half of the protocol only.
            return Err(unsupported("glm"));
        };
        let mut url = base.clone();
        url.set_path(&format!("{}/{}", base.path().trim_end_matches('/'), request.path));
        let url = to_uri(&url).map_err(ProviderError::Protocol)?;
        let method = match request.method {
            PassMethod::Get => Method::GET,
            PassMethod::Post => Method::POST,
            PassMethod::Delete => Method::DELETE,
        };
        let mut headers = self.headers();
        let (body, replayable) = match request.body {
            PassBody::Empty => (Either::Left(Full::default()), true),
            PassBody::Json(bytes) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                (Either::Left(Full::new(bytes)), true)
            }
            PassBody::Upload { content_type, content_length, body } => {
                let content_type = HeaderValue::from_str(&content_type)
                    .map_err(|_| ProviderError::Protocol("the upload's content type is not a header value".into()))?;
                headers.insert(CONTENT_TYPE, content_type);
                if let Some(length) = content_length {
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
                }
                let frames = body.map_err(BoxError::from).map_ok(Frame::data);
                (Either::Right(StreamBody::new(frames).boxed_unsync()), false)
            }
        };
        let sent = self.upstream.send(method, &url, headers, body).await;
        // A streamed upload is gone once sent: nothing can send it again.
        let resp = sent.map_err(|e| if replayable { e } else { ProviderError::Spent(Box::new(e)) })?;
        self.answer(resp).await
    }
}
