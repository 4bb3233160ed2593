//! What a route hands the server for one request: [`RequestContext`] in, [`RoutePlan`] out.

use std::sync::Arc;

use super::Deployment;
use crate::UnixMillis;

/// What a strategy may look at besides health: the clock and what the server derived from the
/// request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext<'a> {
    pub now: UnixMillis,
    /// For conversation_hash: a stable hash of the conversation (see `conversation_key`).
    pub conversation: Option<u64>,
    /// For semantic: the request's embedding (None → the default target).
    pub embedding: Option<&'a [f32]>,
}

#[derive(Debug, Clone, Default)]
pub struct RoutePlan {
    /// Upstream calls to try, in order: the strategy's choice, then `retries` more on the route's
    /// targets (the next-best other target each time; the same target again only when it is the
    /// only one available), then `fallbacks` in order. At most `max_attempts` long.
    pub attempts: Vec<Arc<Deployment>>,
    /// Tried (in order) instead of the remaining attempts when an attempt fails because the
    /// request does not fit the target's context window. At most `max_attempts - 1` long, since
    /// at least one attempt came before.
    pub context_fallbacks: Vec<Arc<Deployment>>,
}

/// Cuts `entries` (each with whether it was available when planned) to `max` attempts. Entries
/// known to be unavailable go first, last ones first: an attempt that `admit` would only reject
/// must not push out a fallback that could answer. What remains keeps its order.
pub(super) fn cap(mut entries: Vec<(Arc<Deployment>, bool)>, max: usize) -> Vec<Arc<Deployment>> {
    let mut i = entries.len();
    while entries.len() > max && i > 0 {
        i -= 1;
        if !entries[i].1 {
            entries.remove(i);
        }
    }
    entries.truncate(max);
    entries.into_iter().map(|(d, _)| d).collect()
}
