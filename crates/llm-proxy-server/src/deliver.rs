//! Turning an adapter's answer into the client's response: same-protocol answers go out as they
//! came; translated (unified) answers are encoded in the client's protocol first.

use axum::response::Response;
use bytes::Bytes;
use llm_proxy_core::provider::ChatOutput;
use llm_proxy_core::translate::{self, AnswerIds, StreamEncoder, anthropic, openai};
use llm_proxy_core::unified::WireProtocol;

use crate::app::Shared;
use crate::meter::RequestMeter;
use crate::relay;

/// The client's protocol, with what its encoders need.
#[derive(Debug, Clone, Copy)]
pub enum ClientSide {
    OpenAi { include_usage: bool },
    Anthropic,
}

impl ClientSide {
    pub fn protocol(self) -> WireProtocol {
        match self {
            Self::OpenAi { .. } => WireProtocol::OpenAi,
            Self::Anthropic => WireProtocol::Anthropic,
        }
    }
}

/// `model` is the upstream model id, for translated answers whose upstream did not name one.
pub async fn deliver(
    output: ChatOutput,
    mut meter: RequestMeter,
    client: ClientSide,
    model: &str,
    provider: &str,
    state: &Shared,
) -> Response {
    let protocol = client.protocol();
    match output {
        ChatOutput::Complete(done) => {
            meter.first_token();
            if let Some(u) = done.usage {
                meter.usage(u);
            }
            let cost = meter.cost_usd();
            meter.succeed(200);
            with_cost(relay::json_response(done.body), cost)
        }
        ChatOutput::Stream(chunks) => {
            let wants_usage = match client {
                ClientSide::OpenAi { include_usage } => include_usage,
                ClientSide::Anthropic => true,
            };
            relay::sse_response(chunks, meter, wants_usage, protocol, provider, state).await
        }
        ChatOutput::Unified(mut answer) => {
            if answer.model.is_empty() {
                answer.model = model.to_string();
            }
            // The answer's id where the upstream named none: the translators make up none themselves.
            let ids = AnswerIds::random();
            let body = match client {
                ClientSide::OpenAi { .. } => openai::response_from_unified(&answer, now_secs(), ids),
                ClientSide::Anthropic => anthropic::response_from_unified(&answer, ids),
            };
            meter.first_token();
            if let Some(u) = answer.usage {
                meter.usage(u);
            }
            let cost = meter.cost_usd();
            meter.succeed(200);
            with_cost(relay::json_response(Bytes::from(body.to_string())), cost)
        }
        ChatOutput::UnifiedStream(events) => {
            let ids = AnswerIds::random();
            let encoder: Box<dyn StreamEncoder> = match client {
                ClientSide::OpenAi { include_usage } => {
                    Box::new(openai::ChunkEncoder::new(model, now_secs(), include_usage, ids))
                }
                ClientSide::Anthropic => Box::new(anthropic::EventEncoder::new(model, ids)),
            };
            // The encoder already leaves out what the client did not ask for.
            relay::sse_response(translate::encode_stream(events, encoder), meter, true, protocol, provider, state).await
        }
    }
}

/// `x-llm-proxy-cost`: what the request cost in USD, for answers whose usage is known when the
/// headers go out (not streams).
pub fn with_cost(mut resp: Response, cost: Option<f64>) -> Response {
    if let Some(usd) = cost
        && let Ok(v) = axum::http::HeaderValue::from_str(&format!("{usd:.8}"))
    {
        resp.headers_mut().insert("x-llm-proxy-cost", v);
    }
    resp
}

/// Seconds since the epoch, as OpenAI's `created` field counts them.
fn now_secs() -> i64 {
    llm_proxy_core::UnixMillis::now().to_i64() / 1000
}
