//! From the model a client named to a plan of upstream calls: a route's strategy, retries and
//! fallbacks, or the one deployment a plain model name means.

use std::sync::Arc;

use axum::http::HeaderMap;
use llm_proxy_core::model_catalog::{ResolveError, Resolved};
use llm_proxy_core::provider::{ChatInput, Provider};
use llm_proxy_core::routing::{Deployment, RequestContext, Route};
use llm_proxy_protocol::openai::EmbeddingsRequest;
use serde_json::Value;

use crate::app::{Live, Shared};
use crate::attempts::{Candidate, Plan};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::meter::RequestMeter;

/// What a model name leads to.
pub enum Resolution {
    Route(Arc<Route>),
    Single(Candidate),
}

/// Resolves the model the client named (a route first, then the catalog), checks the key may use
/// it, and returns the config snapshot it was resolved in: the whole request uses that one.
pub fn resolve(
    state: &Shared,
    principal: &Principal,
    model: &str,
    meter: &mut RequestMeter,
) -> Result<(Arc<Live>, Resolution), ApiError> {
    let live = state.live.load_full();
    if let Some(route) = live.routes.route(model) {
        if !principal.allows_route(model) {
            return Err(ApiError::forbidden(format!("This API key may not use the model `{model}`.")));
        }
        let route = route.clone();
        return Ok((live, Resolution::Route(route)));
    }
    let target = match live.catalog.resolve(model) {
        Ok(t) => t,
        Err(ResolveError::Unknown) => return Err(ApiError::model_not_found(model)),
        Err(ResolveError::Ambiguous(candidates)) => {
            // Only the candidates this key may use count: the one it may use is what it meant,
            // and the others are not named to it (they are none of its business).
            let mut allowed: Vec<Resolved> = candidates
                .iter()
                .filter_map(|c| live.catalog.resolve(c).ok())
                .filter(|t| principal.allows(&live.catalog, model, t))
                .collect();
            match allowed.len() {
                0 => return Err(ApiError::forbidden(format!("This API key may not use the model `{model}`."))),
                1 => allowed.remove(0),
                _ => {
                    let names: Vec<String> = allowed.iter().map(Resolved::canonical).collect();
                    return Err(ApiError::bad_request(format!(
                        "The model `{model}` is served by several providers; name one of: {}.",
                        names.join(", ")
                    ))
                    .with_param(Some("model".into()))
                    .with_code("model_ambiguous"));
                }
            }
        }
    };
    if !principal.allows(&live.catalog, model, &target) {
        return Err(ApiError::forbidden(format!("This API key may not use the model `{model}`.")));
    }
    meter.set_target(&target);
    let candidate = Candidate::direct(live.client(target.provider).clone(), target);
    Ok((live, Resolution::Single(candidate)))
}

fn candidate(live: &Live, d: &Arc<Deployment>) -> Candidate {
    Candidate::routed(live.client(d.target.provider).clone(), Arc::clone(d))
}

/// The plan for a request. `deadline` bounds a single model's attempt; a route has its own.
pub async fn plan(
    live: &Live,
    resolution: Resolution,
    request: Option<&ChatInput>,
    headers: &HeaderMap,
    deadline: std::time::Duration,
) -> Result<Plan, ApiError> {
    let route = match resolution {
        Resolution::Single(c) => return Ok(Plan::single(c, deadline)),
        Resolution::Route(r) => r,
    };
    // Hashing the conversation reads the prompt: only the strategy that uses it pays for it.
    let conversation = request
        .filter(|_| route.strategy == llm_proxy_core::config::StrategyKind::ConversationHash)
        .map(|r| r.conversation_key(headers.get("x-session-id").and_then(|v| v.to_str().ok())));
    let embedding = match (route.semantic(), request) {
        (Some(semantic), Some(r)) => {
            // Boxed: an embeddings call is a big future, and only semantic routes make one.
            Box::pin(ensure_examples(live, semantic)).await;
            match r.last_user_text() {
                Some(text) if semantic.ready() => Box::pin(embed(live, &semantic.embedding_model, vec![text]))
                    .await
                    .map_err(|e| tracing::warn!(route = %route.name, error = %e.message, "cannot embed the request; using the default target"))
                    .ok()
                    .and_then(|mut v| v.pop()),
                _ => None,
            }
        }
        _ => None,
    };
    let ctx = RequestContext { now: llm_proxy_core::UnixMillis::now(), conversation, embedding: embedding.as_deref() };
    let p = route.plan(&ctx);
    Ok(Plan {
        attempts: p.attempts.iter().map(|d| candidate(live, d)).collect(),
        context_fallbacks: p.context_fallbacks.iter().map(|d| candidate(live, d)).collect(),
        deadline: route.timeout,
    })
}

/// Embeds a semantic route's example prompts, once (the route keeps them until the config changes).
async fn ensure_examples(live: &Live, semantic: &llm_proxy_core::routing::Semantic) {
    if semantic.ready() {
        return;
    }
    let examples = semantic.examples();
    let texts: Vec<String> = examples.iter().map(|(_, t)| t.clone()).collect();
    match embed(live, &semantic.embedding_model, texts).await {
        Ok(vectors) if vectors.len() == examples.len() => {
            semantic.set_example_embeddings(examples.into_iter().map(|(i, _)| i).zip(vectors).collect());
        }
        Ok(_) => tracing::warn!("the embedding model answered with the wrong number of vectors"),
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot embed the semantic route's examples; retrying on the next request")
        }
    }
}

/// Embeds `texts` with `model` through the gateway's own providers.
async fn embed(live: &Live, model: &str, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ApiError> {
    let target = live.catalog.resolve(model).map_err(|_| ApiError::model_not_found(model))?;
    let client = &live.client(target.provider);
    let mut extra = serde_json::Map::new();
    extra.insert("encoding_format".into(), "float".into());
    let request = EmbeddingsRequest { model: target.upstream_model.clone(), input: Value::from(texts), extra };
    let done = client
        .embeddings(&target.upstream_model, request)
        .await
        .map_err(|e| ApiError::upstream(&target.provider_name, &e))?;
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        index: usize,
        embedding: Vec<f32>,
    }
    let mut list: List = serde_json::from_slice(&done.body).map_err(|_| ApiError::internal())?;
    list.data.sort_by_key(|i| i.index);
    Ok(list.data.into_iter().map(|i| i.embedding).collect())
}
