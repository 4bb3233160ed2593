//! [`RoutingTable`]: every route of one config snapshot, built once, then only read. The server
//! swaps whole tables on a config change, so a request sees one consistent set of routes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use indexmap::IndexMap;

use super::route::Target;
use super::{Deployment, DeploymentKey, Route, Semantic};
use crate::config::{BreakerConfig, RouteConfig, StrategyKind};
use crate::limits::RateLimits;
use crate::model_catalog::{ModelCatalog, ResolveError, Resolved};
use crate::shared_state::SharedState;

#[derive(Default)]
pub struct RoutingTable {
    routes: IndexMap<String, Arc<Route>>,
    /// Every deployment the routes reference, one per key, in first-seen order.
    deployments: Vec<Arc<Deployment>>,
}

impl RoutingTable {
    /// Builds routes from validated configs. Names resolve through `catalog` (the providers'
    /// catalog). A route whose model no longer resolves (e.g. its provider was removed) loses that
    /// model with a warning, never a panic; a route none of whose targets resolves is left out.
    ///
    /// This is the only place that looks health up by key (`state.deployment_health`), so it is
    /// the only place that may lock; requests then use the `Arc`s stored here.
    pub fn build(
        routes: &[RouteConfig],
        default_strategy: StrategyKind,
        catalog: &ModelCatalog,
        state: &dyn SharedState,
        breaker: BreakerConfig,
    ) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let limits = deployment_limits(routes, catalog);
        let mut registry = Registry { state, breaker, limits, by_key: HashMap::new(), list: Vec::new() };
        let mut table = IndexMap::new();
        for config in routes {
            if table.contains_key(&config.name) {
                warnings.push(format!("route {:?} is defined twice; the first definition is used", config.name));
                continue;
            }
            if let Some(route) = build_route(config, default_strategy, catalog, &mut registry, &mut warnings) {
                table.insert(config.name.clone(), Arc::new(route));
            }
        }
        (Self { routes: table, deployments: registry.list }, warnings)
    }

    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    /// Every deployment referenced by a route (targets, semantic defaults, fallbacks and context
    /// fallbacks; embedding models excluded), deduplicated by key, in first-seen order: what the
    /// health checker probes and the admin API lists.
    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.deployments
    }

    /// The routes in config order.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }
}

/// The table's deployments by key, so routes naming the same model share one `Deployment`.
struct Registry<'a> {
    state: &'a dyn SharedState,
    breaker: BreakerConfig,
    /// Deployment limits by key, from every route that names the deployment as a target.
    limits: HashMap<String, RateLimits>,
    by_key: HashMap<String, Arc<Deployment>>,
    list: Vec<Arc<Deployment>>,
}

impl Registry<'_> {
    fn deployment(&mut self, resolved: Resolved) -> Arc<Deployment> {
        let key = resolved.canonical();
        if let Some(d) = self.by_key.get(&key) {
            return Arc::clone(d);
        }
        let health = self.state.deployment_health(&key, self.breaker);
        let limits = self.limits.get(&key).cloned();
        let d = Arc::new(Deployment {
            key: DeploymentKey::of(&resolved),
            target: Resolved { alias: None, ..resolved },
            health,
            limits,
        });
        self.by_key.insert(key, Arc::clone(&d));
        self.list.push(Arc::clone(&d));
        d
    }
}

/// The limits route targets set on their deployments. A deployment is one upstream model whoever
/// routes to it, so when several targets limit the same one the strictest figure of each kind
/// holds (wherever it is reached from: a target, a fallback, another route).
fn deployment_limits(routes: &[RouteConfig], catalog: &ModelCatalog) -> HashMap<String, RateLimits> {
    fn stricter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    let mut out: HashMap<String, RateLimits> = HashMap::new();
    for t in routes.iter().flat_map(|r| &r.targets) {
        if t.requests_per_minute.is_none() && t.tokens_per_minute.is_none() {
            continue;
        }
        let Ok(resolved) = catalog.resolve(&t.model) else { continue };
        let l = out.entry(resolved.canonical()).or_default();
        l.requests_per_minute = stricter(l.requests_per_minute, t.requests_per_minute);
        l.tokens_per_minute = stricter(l.tokens_per_minute, t.tokens_per_minute);
    }
    out
}

fn resolve(
    catalog: &ModelCatalog,
    route: &str,
    what: &str,
    model: &str,
    warnings: &mut Vec<String>,
) -> Option<Resolved> {
    match catalog.resolve(model) {
        Ok(r) => Some(r),
        Err(e) => {
            let why = match e {
                ResolveError::Unknown => "no configured provider serves it".to_string(),
                ResolveError::Ambiguous(c) => format!("it is ambiguous between {}", c.join(", ")),
            };
            warnings.push(format!("route {route:?}: {what} {model:?} no longer resolves ({why}); it is left out"));
            None
        }
    }
}

/// One route, or `None` (with a warning) when none of its targets resolves. Names are resolved
/// before anything is registered, so a route left out adds no deployments to the table.
fn build_route(
    config: &RouteConfig,
    default_strategy: StrategyKind,
    catalog: &ModelCatalog,
    registry: &mut Registry<'_>,
    warnings: &mut Vec<String>,
) -> Option<Route> {
    let name = config.name.as_str();
    let mut targets = Vec::new();
    let mut examples = Vec::new();
    for (i, t) in config.targets.iter().enumerate() {
        if let Some(r) = resolve(catalog, name, &format!("target {i}"), &t.model, warnings) {
            examples.extend(t.examples.iter().map(|e| (targets.len(), e.clone())));
            targets.push((r, t));
        }
    }
    if targets.is_empty() {
        warnings.push(format!("route {name:?} is left out: none of its targets resolves"));
        return None;
    }
    let strategy = config.strategy.unwrap_or(default_strategy);
    let fallbacks: Vec<Resolved> =
        config.fallbacks.iter().filter_map(|f| resolve(catalog, name, "fallback", f, warnings)).collect();
    let context_fallbacks: Vec<Resolved> = config
        .context_window_fallbacks
        .iter()
        .filter_map(|f| resolve(catalog, name, "context window fallback", f, warnings))
        .collect();

    // Semantic: the embedding model (not a deployment) and where unmatched requests go.
    let mut semantic = None;
    let mut extra_default = None;
    if strategy == StrategyKind::Semantic {
        match &config.semantic {
            None => warnings.push(format!(
                "route {name:?}: strategy semantic without a `semantic` section; requests go to the first target"
            )),
            Some(s) => {
                let mut default = 0;
                if let Some(d) = &s.default
                    && let Some(r) = resolve(catalog, name, "semantic default", d, warnings)
                {
                    let key = r.canonical();
                    match targets.iter().position(|(t, _)| t.canonical() == key) {
                        Some(i) => default = i,
                        None => {
                            default = targets.len();
                            extra_default = Some(r);
                        }
                    }
                }
                let embedding = resolve(catalog, name, "embedding model", &s.embedding_model, warnings);
                let model = embedding.as_ref().map_or_else(|| s.embedding_model.clone(), Resolved::canonical);
                let examples = if embedding.is_some() { std::mem::take(&mut examples) } else { Vec::new() };
                let sem = Semantic::new(model, s.threshold, default, targets.len(), examples);
                if embedding.is_none() {
                    // Nothing to embed with: mark it ready with no examples, so every request
                    // goes to the default and the server does not try to embed.
                    sem.set_example_embeddings(Vec::new());
                }
                semantic = Some(sem);
            }
        }
    }

    // Register in reading order: targets, the semantic default, fallbacks, context fallbacks.
    let target_count = targets.len();
    let mut candidates: Vec<Target> = targets
        .into_iter()
        .map(|(r, t)| Target {
            deployment: registry.deployment(r),
            weight: t.weight.max(1),
            max_in_flight: t.max_in_flight,
        })
        .collect();
    if let Some(r) = extra_default {
        candidates.push(Target { deployment: registry.deployment(r), weight: 1, max_in_flight: None });
    }
    let fallbacks = fallbacks.into_iter().map(|r| registry.deployment(r)).collect();
    let context_fallbacks = context_fallbacks.into_iter().map(|r| registry.deployment(r)).collect();
    Some(Route {
        name: config.name.clone(),
        strategy,
        retries: config.retries(),
        max_attempts: config.max_attempts().max(1),
        timeout: config.timeout(),
        candidates,
        targets: target_count,
        fallbacks,
        context_fallbacks,
        rotation: AtomicUsize::new(0),
        semantic,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::UnixMillis;
    use crate::shared_state::{BreakerState, LocalState};

    #[test]
    fn deployments_are_shared_by_key_in_first_seen_order() {
        let state = LocalState::new();
        let (t, warnings) = table(
            r#"
- name: one
  targets: [{model: fast}, {model: b/m}]
  fallbacks: [c/m]
- name: two
  strategy: semantic
  semantic: {embedding_model: f/emb, default: e/m}
  targets: [{model: b/m, examples: [x]}, {model: a/m}]
  context_window_fallbacks: [d/m]
"#,
            &state,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(keys(t.deployments()), ["a/m", "b/m", "c/m", "e/m", "d/m"], "the embedding model is not one");
        let (one, two) = (t.route("one").unwrap(), t.route("two").unwrap());
        assert!(Arc::ptr_eq(&one.targets()[0].deployment, &two.targets()[1].deployment), "the alias and the name");
        assert_eq!(one.targets()[0].deployment.target.alias, None);
        assert_eq!((one.strategy, two.strategy), (StrategyKind::RoundRobin, StrategyKind::Semantic));
        assert_eq!(t.routes().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        assert!(t.route("three").is_none());
    }

    #[test]
    fn health_survives_a_rebuild() {
        let state = LocalState::new();
        let yaml = "[{name: r, targets: [{model: a/m}, {model: b/m}]}]";
        let (before, _) = table(yaml, &state);
        before.deployments()[0].health.record_check(UnixMillis::from_millis(1), false);
        let (after, _) = table(yaml, &state);
        assert!(Arc::ptr_eq(&before.deployments()[0].health, &after.deployments()[0].health));
        assert_eq!(after.deployments()[0].health.snapshot(UnixMillis::from_millis(2)).breaker, BreakerState::Open);
    }

    #[test]
    fn models_that_no_longer_resolve_are_left_out_with_a_warning() {
        let (t, warnings) = table(
            r#"
- name: partly
  targets: [{model: gone/m}, {model: b/m, examples: [y]}]
  fallbacks: [gone/x, c/m]
  strategy: semantic
  semantic: {embedding_model: gone/emb, default: gone/m}
- name: wholly
  targets: [{model: gone/m}]
  fallbacks: [c/m]
- name: partly
  targets: [{model: d/m}]
"#,
            &LocalState::new(),
        );
        assert_eq!(warnings.len(), 7, "{warnings:#?}");
        assert!(warnings[0].contains(r#"route "partly": target 0 "gone/m" no longer resolves"#), "{}", warnings[0]);
        assert!(warnings.iter().any(|w| w.contains(r#"route "wholly" is left out"#)));
        assert!(warnings.iter().any(|w| w.contains("defined twice")));
        let partly = t.route("partly").unwrap();
        assert_eq!(keys(&partly.targets().iter().map(|t| Arc::clone(&t.deployment)).collect::<Vec<_>>()), ["b/m"]);
        assert_eq!(keys(partly.fallbacks()), ["c/m"]);
        // No embedding model: semantic routing is off and every request goes to the default.
        let s = partly.semantic().unwrap();
        assert!(s.ready() && s.examples().is_empty());
        assert_eq!(first(&partly.plan(&ctx(0))), "b/m");
        assert!(t.route("wholly").is_none());
        assert_eq!(keys(t.deployments()), ["b/m", "c/m"], "a route left out registers nothing");
    }

    #[test]
    fn semantic_examples_point_at_the_targets_that_remain() {
        let (t, _) = table(
            "[{name: r, strategy: semantic, semantic: {embedding_model: a/emb}, targets: [{model: gone/m, examples: [x]}, {model: b/m, examples: [y, z]}]}]",
            &LocalState::new(),
        );
        let s = t.route("r").unwrap().semantic().unwrap();
        assert_eq!(s.examples(), [(0, "y".to_string()), (0, "z".to_string())]);
    }
}
