//! Shared test fixtures: a catalog of six providers and routes written as YAML (parsed like the
//! config file, so new optional fields of `RouteConfig` do not break the tests).

use std::sync::Arc;
use std::time::Duration;

use crate::UnixMillis;
use crate::config::{BreakerConfig, ModelConfig, ProviderConfig, RouteConfig, StrategyKind};
use crate::known_provider::Protocol;
use crate::model_catalog::ModelCatalog;
use crate::shared_state::LocalState;

use super::{Deployment, RequestContext, Route, RoutePlan, RoutingTable};

/// Providers `a`…`f`, each serving `m` and `emb`; `fast` is an alias of `a/m`.
pub fn catalog() -> ModelCatalog {
    let providers: Vec<ProviderConfig> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|name| ProviderConfig {
            name: name.to_string(),
            protocol: Protocol::Openai,
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: None,
            models: vec![
                ModelConfig { name: "m".into(), alias: (*name == "a").then(|| "fast".into()) },
                ModelConfig { name: "emb".into(), alias: None },
            ],
            stream_options: true,
            responses_api: false,
        })
        .collect();
    ModelCatalog::new(&providers)
}

pub fn breaker() -> BreakerConfig {
    BreakerConfig { failure_threshold: 3, window: Duration::from_secs(10), cooldown: Duration::from_secs(30) }
}

pub fn table(yaml: &str, state: &LocalState) -> (RoutingTable, Vec<String>) {
    let routes: Vec<RouteConfig> = serde_yaml::from_str(yaml).unwrap();
    RoutingTable::build(&routes, StrategyKind::RoundRobin, &catalog(), state, breaker())
}

/// The table's only route, with its own state.
pub fn route(yaml: &str) -> Arc<Route> {
    let (t, warnings) = table(yaml, &LocalState::new());
    assert!(warnings.is_empty(), "{warnings:?}");
    Arc::clone(t.routes().next().unwrap())
}

pub fn ctx(now_ms: u64) -> RequestContext<'static> {
    RequestContext { now: UnixMillis::from_millis(now_ms), ..Default::default() }
}

pub fn keys(ds: &[Arc<Deployment>]) -> Vec<&str> {
    ds.iter().map(|d| d.key.as_str()).collect()
}

pub fn first(plan: &RoutePlan) -> String {
    plan.attempts[0].key.to_string()
}

pub fn target<'r>(route: &'r Route, key: &str) -> &'r Arc<Deployment> {
    &route.targets().iter().find(|t| t.deployment.key.as_str() == key).unwrap().deployment
}

/// Takes a deployment out the way the health checker would.
pub fn take_out(route: &Route, key: &str) {
    target(route, key).health.record_check(UnixMillis::from_millis(0), false);
}

pub fn put_back(route: &Route, key: &str) {
    target(route, key).health.record_check(UnixMillis::from_millis(0), true);
}
