//! `POST /v1/embeddings`.

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use llm_proxy_core::provider::Provider;
use llm_proxy_protocol::openai::EmbeddingsRequest;
use serde_json::Value;

use crate::app::{AppState, RequestId};
use crate::body::read_limited;
use crate::error::ApiError;
use crate::meter::RequestMeter;
use crate::relay;
use crate::routes::{authenticate, decode_body, route};

pub async fn embeddings(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    request: Request,
) -> Response {
    let mut meter = RequestMeter::start(state.logs.clone(), &id.0, "embeddings");
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let result = async {
        let principal = authenticate(&state, &headers, &mut meter)?;
        let bytes = state.unless_cut(read_limited(&headers, body, state.max_body_bytes)).await?;
        let request: EmbeddingsRequest = decode_body(&bytes)?;
        meter.set_model(&request.model, false);
        let valid_input = match &request.input {
            Value::String(_) => true,
            Value::Array(items) => !items.is_empty(),
            _ => false,
        };
        if !valid_input {
            return Err(ApiError::bad_request(
                "`input` must be a string, or a non-empty array of strings or token arrays.",
            )
            .with_param(Some("input".into())));
        }
        let target = route(&state, &principal, &request.model, &mut meter)?;
        let call = async {
            target
                .client
                .embeddings(&target.upstream_model, request)
                .await
                .map_err(|e| ApiError::upstream(&target.provider_name, &e))
        };
        state.unless_cut(call).await
    }
    .await;
    match result {
        Ok(done) => {
            if let Some(u) = done.usage {
                meter.usage(u);
            }
            meter.succeed(200);
            relay::json_response(done.body)
        }
        Err(e) => {
            meter.fail(&e);
            e.into_response()
        }
    }
}
