//! The Completions API passthrough: every OpenAI-protocol upstream gets a Completions client's body
//! at `…/completions` with `model` rewritten, and its answer is scanned as a chat answer is
//! (`forward`, `convert`): its chunks carry `choices[].finish_reason` and `usage` like chat
//! chunks do. A server without the endpoint answers 404, which the client sees as the upstream's
//! error.

use llm_proxy_core::provider::{ChatOutput, ProviderError};
use llm_proxy_protocol::openai::CompletionRequest;

use super::OpenAiCompat;
use crate::upstream::{on_cpu_pool, to_body_sized};

impl OpenAiCompat {
    pub(super) async fn completions(
        &self,
        model: &str,
        mut request: CompletionRequest,
    ) -> Result<ChatOutput, ProviderError> {
        let url = self.completions_url.as_ref().ok_or_else(|| {
            ProviderError::Unsupported(format!("provider `{}` does not serve the Completions API", self.name))
        })?;
        request.model = model.to_string();
        let stream = request.is_stream();
        if stream {
            if self.dialect.stream_options {
                // As for chat: the usage chunk counts the tokens; the relay strips it again if the
                // client did not ask for it.
                request.request_stream_usage();
            } else {
                request.stream_options = None;
            }
        }
        let size = request.prompt.text_len();
        let body = on_cpu_pool(size, move || to_body_sized(&request, size)).await?;
        self.forward(url, body, stream).await
    }
}
