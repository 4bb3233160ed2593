//! Routing: which upstream deployments a request to a route goes to, and in what order.
//!
//! The server holds one immutable [`RoutingTable`] per config snapshot and swaps it whole on a
//! change. Per request it calls [`Route::plan`] and walks [`RoutePlan::attempts`], asking each
//! deployment's health to `admit` the call, holding `health.start()` around it, and recording
//! the outcome; a context-window failure switches to [`RoutePlan::context_fallbacks`].
//!
//! Nothing on that path takes a lock shared by requests: a plan reads health through atomics
//! (`available`, `in_flight`, `latency_ms`), rotating strategies take a turn with one `fetch_add`
//! on the route's counter, random ones use the thread-local RNG, and semantic examples sit in a
//! `OnceLock` read without locking. Lookups by key (which may lock) happen only in
//! [`RoutingTable::build`].

mod deployment;
#[cfg(test)]
mod fixtures;
mod hash;
mod plan;
mod route;
mod semantic;
mod strategy;
mod table;

pub use deployment::{Deployment, DeploymentKey};
pub use hash::conversation_key;
pub use plan::{RequestContext, RoutePlan};
pub use route::{Route, Target};
pub use semantic::{Semantic, cosine};
pub use table::RoutingTable;
