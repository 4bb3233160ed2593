//! `POST /v1/embeddings`.

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::Response;
use llm_proxy_core::provider::Provider;
use llm_proxy_core::unified::WireProtocol;
use llm_proxy_protocol::openai::EmbeddingsRequest;
use serde_json::Value;

use crate::accounting::Demand;
use crate::app::{AppState, RequestId};
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::relay;

pub async fn embeddings(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let accepted = Exchange::accept(&state, &id, "embeddings", WireProtocol::OpenAi, &parts, body).await;
    let (mut x, request): (_, EmbeddingsRequest) = match accepted {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    x.set_model(&request.model, false);
    let valid_input = match &request.input {
        Value::String(_) => true,
        Value::Array(items) => !items.is_empty(),
        _ => false,
    };
    if !valid_input {
        return x.fail(
            ApiError::bad_request("`input` must be a string, or a non-empty array of strings or token arrays.")
                .with_param(Some("input".into())),
        );
    }
    // Embeddings have no answer tokens: the input alone is reserved.
    let demand = Demand::Billed { prompt_bytes: x.body_bytes(), max_tokens: Some(0) };
    Box::pin(x.serve(
        request,
        &parts.headers,
        demand,
        |c, request| {
            let (provider, model) = (c.client.clone(), c.upstream_model().to_string());
            async move { provider.embeddings(&model, request).await }
        },
        |done, mut meter, _| async move {
            if let Some(u) = done.usage {
                meter.usage(u);
            }
            meter.succeed(200);
            relay::json_response(done.body)
        },
    ))
    .await
}
