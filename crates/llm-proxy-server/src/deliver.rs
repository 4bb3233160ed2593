//! Turning an adapter's answer into the client's response: same-protocol answers go out as they
//! came; translated (unified) answers are encoded in the client's protocol first.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use llm_proxy_core::UnixMillis;
use llm_proxy_core::provider::ChatOutput;
use llm_proxy_core::stored_response::StoredResponse;
use llm_proxy_core::translate::completions::{self, CompletionEncoder};
use llm_proxy_core::translate::responses::{self, KeepAnswer, ResponseMeta, ResponsesEncoder};
use llm_proxy_core::translate::{self, AnswerIds, StreamEncoder, anthropic, openai};

use crate::app::Shared;
use crate::meter::RequestMeter;
use crate::relay::{self, OnComplete, ResponsesEnding, StreamEnding};
use crate::response_store::ResponseStore;

/// The client's protocol, with what its encoders need.
#[derive(Debug, Clone)]
pub enum ClientSide {
    OpenAi {
        include_usage: bool,
    },
    /// The legacy Completions API; `model` is the model as the client named it, which a translated
    /// answer repeats.
    Completions {
        include_usage: bool,
        model: String,
    },
    Anthropic,
    Responses(Box<ResponsesClient>),
}

/// A Responses API client: what its answer repeats of the request, and how to keep the answer.
#[derive(Debug, Clone)]
pub struct ResponsesClient {
    /// Shared, not copied, with the encoder and the stream's ending (tools alone can be tens of KB).
    pub meta: Arc<ResponseMeta>,
    /// `None` when the client sent `store: false`.
    pub keep: Option<Keep>,
}

/// What a kept answer is stored with besides itself.
#[derive(Debug, Clone)]
pub struct Keep {
    pub key_id: String,
    pub previous_id: Option<String>,
    /// This turn's input items, as a JSON array.
    pub input: String,
}

impl Keep {
    /// Keeps an answer: `response` is the object's text as the client received it, `id` its id.
    /// `held_by`: the provider that stored it too.
    fn put(&self, store: &ResponseStore, id: String, response: String, held_by: Option<&str>) {
        let now = UnixMillis::now();
        store.put(StoredResponse {
            id,
            key_id: self.key_id.clone(),
            created_at: now,
            expires_at: store.expires_at(now),
            previous_id: self.previous_id.clone(),
            upstream: held_by.map(String::from),
            input: self.input.clone(),
            response,
        });
    }

    /// For a translated stream: keeps the final response the encoder wrote.
    fn on_encoded(self, store: Arc<ResponseStore>) -> KeepAnswer {
        Box::new(move |id: &str, response: &str| self.put(&store, id.to_string(), response.to_string(), None))
    }

    /// For a passthrough stream: keeps the answer of its `response.completed` event.
    fn on_complete(self, store: Arc<ResponseStore>, held_by: Option<String>) -> OnComplete {
        Box::new(move |data: &str| match responses::completed_response(data) {
            Some((id, response)) => self.put(&store, id, response.to_string(), held_by.as_deref()),
            None => tracing::warn!("a response.completed event without a readable response cannot be kept"),
        })
    }
}

impl ClientSide {
    fn ending(&self) -> StreamEnding {
        match self {
            // A Completions stream ends and fails as a chat stream does.
            Self::OpenAi { .. } | Self::Completions { .. } => StreamEnding::OpenAi,
            Self::Anthropic => StreamEnding::Anthropic,
            Self::Responses(r) => {
                StreamEnding::Responses(Box::new(ResponsesEnding { meta: r.meta.clone(), on_complete: None }))
            }
        }
    }
}

/// `model` is the upstream model id, for translated answers whose upstream did not name one.
pub async fn deliver(
    output: ChatOutput,
    mut meter: RequestMeter,
    mut client: ClientSide,
    model: &str,
    provider: &str,
    state: &Shared,
) -> Response {
    let mut ending = client.ending();
    // Only an OpenAI client may leave the usage chunk out; the others always get their usage.
    let wants_usage = !matches!(
        client,
        ClientSide::OpenAi { include_usage: false } | ClientSide::Completions { include_usage: false, .. }
    );
    // A passthrough's answer is the upstream's own: it keeps it too, unless told not to.
    let (keep, upstream_keeps) = match &mut client {
        ClientSide::Responses(r) => (r.keep.take(), r.meta.store),
        _ => (None, false),
    };
    let held_by = |passthrough: bool| (passthrough && upstream_keeps).then(|| provider.to_string());
    match output {
        ChatOutput::Complete(done) => {
            meter.first_token();
            if let Some(u) = done.usage {
                meter.usage(u);
            }
            if let Some(keep) = &keep {
                // The id was read with the usage, in the adapter's one pass over the body.
                match (done.id, std::str::from_utf8(&done.body)) {
                    (Some(id), Ok(text)) => keep.put(&state.responses, id, text.to_string(), held_by(true).as_deref()),
                    _ => tracing::warn!("an upstream Responses answer without a readable id cannot be kept"),
                }
            }
            let cost = meter.cost_usd();
            meter.succeed(200);
            with_cost(relay::json_response(done.body), cost)
        }
        ChatOutput::Stream(chunks) => {
            if let (StreamEnding::Responses(r), Some(keep)) = (&mut ending, keep) {
                r.on_complete = Some(keep.on_complete(state.responses.clone(), held_by(true)));
            }
            relay::sse_response(chunks, meter, wants_usage, ending, provider, state).await
        }
        ChatOutput::Unified(mut answer) => {
            if answer.model.is_empty() {
                answer.model = model.to_string();
            }
            // The answer's id where the upstream named none: the translators make up none themselves.
            let ids = AnswerIds::random();
            let body = match (&client, &ending) {
                (ClientSide::Completions { model, .. }, _) => {
                    completions::response_from_unified(&answer, model, now_secs(), ids).to_string()
                }
                (_, StreamEnding::OpenAi) => openai::response_from_unified(&answer, now_secs(), ids).to_string(),
                (_, StreamEnding::Anthropic) => anthropic::response_from_unified(&answer, ids).to_string(),
                (_, StreamEnding::Responses(r)) => {
                    let body = responses::response_from_unified(&answer, &r.meta, UnixMillis::now(), ids).to_string();
                    if let Some(keep) = &keep {
                        keep.put(&state.responses, r.meta.id.clone(), body.clone(), None);
                    }
                    body
                }
            };
            meter.first_token();
            if let Some(u) = answer.usage {
                meter.usage(u);
            }
            let cost = meter.cost_usd();
            meter.succeed(200);
            with_cost(relay::json_response(Bytes::from(body)), cost)
        }
        ChatOutput::UnifiedStream(events) => {
            let ids = AnswerIds::random();
            let encoder: Box<dyn StreamEncoder> = match (&client, &mut ending) {
                (ClientSide::Completions { model, .. }, _) => {
                    Box::new(CompletionEncoder::new(model, now_secs(), wants_usage, ids))
                }
                (_, StreamEnding::OpenAi) => Box::new(openai::ChunkEncoder::new(model, now_secs(), wants_usage, ids)),
                (_, StreamEnding::Anthropic) => Box::new(anthropic::EventEncoder::new(model, ids)),
                (_, StreamEnding::Responses(r)) => {
                    let encoder = ResponsesEncoder::new(r.meta.clone(), ids, UnixMillis::now);
                    match keep {
                        // The encoder hands over the response it writes: nothing to read back.
                        Some(keep) => Box::new(encoder.keeping(keep.on_encoded(state.responses.clone()))),
                        None => Box::new(encoder),
                    }
                }
            };
            // The encoder already leaves out what the client did not ask for.
            relay::sse_response(translate::encode_stream(events, encoder), meter, true, ending, provider, state).await
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
