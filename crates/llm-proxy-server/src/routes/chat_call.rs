//! What the chat endpoints (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`,
//! `/v1/completions`) share after their own checks: the chat call of one attempt, and the answer
//! in the client's protocol.

use std::future::Future;

use axum::http::HeaderMap;
use axum::response::Response;
use llm_proxy_core::provider::{ChatInput, Provider};

use crate::accounting::Demand;
use crate::attempts;
use crate::deliver::{ClientSide, deliver};
use crate::exchange::Exchange;

/// Sends `input` through the pipeline; `max_tokens` (the client's) sizes the reservation. Not an
/// `async fn`: that would hold its arguments beside the pipeline's future, doubling its size.
pub fn serve_chat<'a>(
    x: Exchange<'a>,
    input: ChatInput,
    headers: &'a HeaderMap,
    client: ClientSide,
    max_tokens: Option<u64>,
) -> impl Future<Output = Response> + Send + 'a {
    let state = x.state();
    let demand = Demand::Billed { prompt_bytes: x.body_bytes(), max_tokens };
    x.serve(
        input,
        headers,
        demand,
        |c, request| {
            let (provider, model) = (c.client.clone(), c.upstream_model().to_string());
            async move { attempts::prime(provider.chat(&model, request).await?).await }
        },
        move |output, meter, c| async move {
            deliver(output, meter, client, c.upstream_model(), c.provider_name(), state).await
        },
    )
}
