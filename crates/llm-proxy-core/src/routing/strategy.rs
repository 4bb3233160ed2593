//! The six strategies, each as a preference order over a set of candidates: the first is the
//! strategy's choice, the rest are where retries go. A plan ranks its available candidates and its
//! unavailable ones separately, so a strategy never has to think about health.

use rand::Rng;

use super::hash::{rendezvous_hash, rendezvous_score};
use super::route::Target;
use super::{RequestContext, Semantic};
use crate::config::StrategyKind;

/// What one ranking may look at: the route's candidates and this request.
pub(super) struct Ranking<'a, 'c> {
    pub strategy: StrategyKind,
    pub candidates: &'a [Target],
    pub semantic: Option<&'a Semantic>,
    pub ctx: &'a RequestContext<'c>,
    /// This request's turn in the route's rotation (round robin and tie-breaks).
    pub tick: usize,
}

impl Ranking<'_, '_> {
    /// Whether this request takes a turn of the route's rotation counter. Only those strategies
    /// touch the shared atomic, so the others do not contend on it.
    pub fn uses_rotation(strategy: StrategyKind, ctx: &RequestContext<'_>) -> bool {
        match strategy {
            StrategyKind::RoundRobin | StrategyKind::LeastConnections => true,
            StrategyKind::ConversationHash => ctx.conversation.is_none(),
            StrategyKind::Weighted | StrategyKind::Latency | StrategyKind::Semantic => false,
        }
    }

    /// Reorders `order` (indices into `candidates`), most preferred first.
    pub fn rank<R: Rng + ?Sized>(&self, order: &mut [usize], rng: &mut R) {
        if order.len() < 2 {
            return;
        }
        match self.strategy {
            StrategyKind::RoundRobin => self.rotate(order),
            StrategyKind::Weighted => self.weighted(order, rng),
            StrategyKind::LeastConnections => self.least_connections(order),
            StrategyKind::Latency => self.latency(order, rng),
            StrategyKind::ConversationHash => match self.ctx.conversation {
                Some(key) => self.rendezvous(order, key),
                None => self.rotate(order),
            },
            StrategyKind::Semantic => self.semantic(order),
        }
    }

    /// Turn `tick` of an exact rotation over `order`. Rotating over the given set (not over all
    /// targets, skipping the unavailable) keeps the load even when one target is out: skipping
    /// would hand its turns to its neighbour.
    fn rotate(&self, order: &mut [usize]) {
        let n = order.len();
        order.rotate_left(self.tick % n);
    }

    /// Weighted random without replacement: each position drawn in proportion to the weights of
    /// the candidates not yet placed.
    fn weighted<R: Rng + ?Sized>(&self, order: &mut [usize], rng: &mut R) {
        let weight = |c: usize| u64::from(self.candidates[c].weight.max(1));
        for i in 0..order.len() - 1 {
            let total: u64 = order[i..].iter().map(|&c| weight(c)).sum();
            let mut r = rng.gen_range(0..total);
            let mut pick = i;
            for (j, &c) in order.iter().enumerate().skip(i) {
                if r < weight(c) {
                    pick = j;
                    break;
                }
                r -= weight(c);
            }
            order.swap(i, pick);
        }
    }

    /// Fewest requests in flight first; equal counts in rotation order, so idle targets share
    /// the load instead of the first one taking it all.
    fn least_connections(&self, order: &mut [usize]) {
        self.rotate(order);
        // Read each count once: they move while we sort, and a sort needs a consistent order.
        let mut keyed: Vec<(u32, usize)> =
            order.iter().map(|&c| (self.candidates[c].deployment.health.in_flight(), c)).collect();
        keyed.sort_by_key(|&(load, _)| load);
        order.iter_mut().zip(keyed).for_each(|(slot, (_, c))| *slot = c);
    }

    /// Power of two choices: of two distinct random candidates, the one with the lower latency
    /// average (unknown counts as 0, so a new target gets tried). It avoids both herding onto
    /// the single fastest target and sending anything to the slowest. The rest follow fastest
    /// first.
    fn latency<R: Rng + ?Sized>(&self, order: &mut [usize], rng: &mut R) {
        let latency = |c: usize| self.candidates[c].deployment.health.latency_ms().unwrap_or(0.0);
        let mut keyed: Vec<(f64, usize)> = order.iter().map(|&c| (latency(c), c)).collect();
        let n = keyed.len();
        let a = rng.gen_range(0..n);
        let mut b = rng.gen_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        let winner = if keyed[b].0 < keyed[a].0 { b } else { a };
        keyed.swap(0, winner);
        keyed[1..].sort_by(|x, y| x.0.total_cmp(&y.0));
        order.iter_mut().zip(keyed).for_each(|(slot, (_, c))| *slot = c);
    }

    /// Highest rendezvous score first: a conversation keeps its target while that target is in
    /// the set, and only its own conversations move when it leaves. Ties (equal scores) fall to
    /// the raw hash so every instance breaks them the same way.
    fn rendezvous(&self, order: &mut [usize], conversation: u64) {
        let mut keyed: Vec<(f64, u64, usize)> = order
            .iter()
            .map(|&c| {
                let t = &self.candidates[c];
                let h = rendezvous_hash(conversation, t.deployment.key.as_str());
                (rendezvous_score(h, t.weight), h, c)
            })
            .collect();
        keyed.sort_by(|x, y| y.0.total_cmp(&x.0).then(y.1.cmp(&x.1)));
        order.iter_mut().zip(keyed).for_each(|(slot, (_, _, c))| *slot = c);
    }

    /// Targets at or above the threshold, closest first; then the default; then the rest,
    /// closest first. Without an embedding (or before the examples are embedded): the default,
    /// then the targets in config order.
    fn semantic(&self, order: &mut [usize]) {
        let Some(semantic) = self.semantic else {
            // Semantic routing could not be set up (see the build warnings): config order.
            order.sort_unstable();
            return;
        };
        let scores = self.ctx.embedding.and_then(|q| semantic.scores(q));
        let score = |c: usize| scores.as_ref().and_then(|s| s.get(c).copied().flatten());
        let mut keyed: Vec<(u8, f32, usize)> = order
            .iter()
            .map(|&c| match score(c) {
                Some(s) if s >= semantic.threshold => (0, s, c),
                _ if c == semantic.default => (1, 0.0, c),
                s => (2, s.unwrap_or(f32::NEG_INFINITY), c),
            })
            .collect();
        keyed.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.total_cmp(&x.1)).then(x.2.cmp(&y.2)));
        order.iter_mut().zip(keyed).for_each(|(slot, (_, _, c))| *slot = c);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::super::fixtures::*;
    use super::super::{Route, conversation_key};
    use crate::UnixMillis;

    fn firsts(route: &Route, n: usize, rng: &mut StdRng) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for _ in 0..n {
            *counts.entry(first(&route.plan_with(&ctx(0), rng))).or_default() += 1;
        }
        counts
    }

    #[test]
    fn round_robin_rotates_exactly() {
        let r = route("[{name: r, strategy: round_robin, targets: [{model: a/m}, {model: b/m}, {model: c/m}]}]");
        let picks: Vec<String> = (0..7).map(|_| first(&r.plan(&ctx(0)))).collect();
        assert_eq!(picks, ["a/m", "b/m", "c/m", "a/m", "b/m", "c/m", "a/m"]);
    }

    #[test]
    fn round_robin_shares_an_unavailable_targets_turns_evenly() {
        let r = route("[{name: r, strategy: round_robin, targets: [{model: a/m}, {model: b/m}, {model: c/m}]}]");
        take_out(&r, "b/m");
        let picks: Vec<String> = (0..4).map(|_| first(&r.plan(&ctx(1)))).collect();
        assert_eq!(picks, ["a/m", "c/m", "a/m", "c/m"], "not a, c, c, a: skipping would double c's share");
    }

    #[test]
    fn weighted_splits_3_to_1() {
        let r = route("[{name: r, strategy: weighted, targets: [{model: a/m, weight: 3}, {model: b/m, weight: 1}]}]");
        let mut rng = StdRng::seed_from_u64(7);
        let counts = firsts(&r, 4000, &mut rng);
        let share = counts["a/m"] as f64 / 4000.0;
        assert!((share - 0.75).abs() <= 0.03, "a/m got {share}");
    }

    #[test]
    fn weighted_retries_draw_without_replacement() {
        let r = route(
            "[{name: r, strategy: weighted, retries: 2, targets: [{model: a/m, weight: 5}, {model: b/m}, {model: c/m}]}]",
        );
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let plan = r.plan_with(&ctx(0), &mut rng);
            let mut attempts = keys(&plan.attempts);
            attempts.sort_unstable();
            assert_eq!(attempts, ["a/m", "b/m", "c/m"]);
        }
    }

    #[test]
    fn least_connections_prefers_the_idle_target() {
        let r = route(
            "[{name: r, strategy: least_connections, retries: 2, targets: [{model: a/m}, {model: b/m}, {model: c/m}]}]",
        );
        let guards =
            [target(&r, "a/m").health.start(), target(&r, "a/m").health.start(), target(&r, "b/m").health.start()];
        for _ in 0..5 {
            assert_eq!(keys(&r.plan(&ctx(0)).attempts), ["c/m", "b/m", "a/m"]);
        }
        drop(guards);
        assert_eq!(target(&r, "a/m").health.in_flight(), 0);
        // All idle again: ties go by rotation, so the load spreads.
        let picks: Vec<String> = (0..3).map(|_| first(&r.plan(&ctx(0)))).collect();
        let mut sorted = picks.clone();
        sorted.sort();
        assert_eq!(sorted, ["a/m", "b/m", "c/m"], "{picks:?}");
    }

    #[test]
    fn latency_shifts_away_from_a_slow_target() {
        let r = route("[{name: r, strategy: latency, targets: [{model: a/m}, {model: b/m}, {model: c/m}]}]");
        let mut rng = StdRng::seed_from_u64(3);
        let before = firsts(&r, 300, &mut rng);
        assert!(before.get("a/m").copied().unwrap_or(0) > 50, "unknown latencies: all get tried {before:?}");
        for (key, ms) in [("a/m", 900), ("b/m", 40), ("c/m", 60)] {
            target(&r, key).health.record_success(UnixMillis::from_millis(0), Some(Duration::from_millis(ms)));
        }
        let after = firsts(&r, 300, &mut rng);
        assert_eq!(after.get("a/m"), None, "the slowest never wins two choices: {after:?}");
        assert!(after["b/m"] > after["c/m"], "{after:?}");
        // A new (unknown) target counts as fast, so it gets traffic to measure.
        let r2 = route("[{name: r, strategy: latency, targets: [{model: a/m}, {model: b/m}]}]");
        target(&r2, "a/m").health.record_success(UnixMillis::from_millis(0), Some(Duration::from_millis(10)));
        assert_eq!(firsts(&r2, 50, &mut rng)["b/m"], 50);
    }

    const FOUR: &str = "[{name: r, strategy: conversation_hash, retries: 3, targets: [{model: a/m}, {model: b/m}, {model: c/m}, {model: d/m}]}]";

    fn conversation(route: &Route, key: u64) -> String {
        first(&route.plan(&super::super::RequestContext {
            now: UnixMillis::from_millis(1),
            conversation: Some(key),
            embedding: None,
        }))
    }

    #[test]
    fn conversation_hash_is_stable_across_plans_and_instances() {
        let r = route(FOUR);
        let key = conversation_key(&["key-1", "Tell me about ducks"]);
        let home = conversation(&r, key);
        assert!((0..1000).all(|_| conversation(&r, key) == home));
        // Another instance: its own table and state, nothing shared.
        let other = route(FOUR);
        for i in 0..200 {
            let k = conversation_key(&["key-1", &format!("conversation {i}")]);
            assert_eq!(conversation(&r, k), conversation(&other, k));
        }
    }

    #[test]
    fn conversation_hash_moves_only_the_conversations_of_a_missing_target() {
        let r = route(FOUR);
        let homes: Vec<(u64, String)> =
            (0..400).map(|i| conversation_key(&[&i.to_string()])).map(|k| (k, conversation(&r, k))).collect();
        take_out(&r, "b/m");
        for (k, home) in &homes {
            let now = conversation(&r, *k);
            if home == "b/m" {
                assert_ne!(now, "b/m");
            } else {
                assert_eq!(&now, home, "a conversation on a healthy target stays");
            }
        }
        put_back(&r, "b/m");
        assert!(homes.iter().all(|(k, home)| &conversation(&r, *k) == home), "they come back");
    }

    #[test]
    fn conversation_hash_spreads_conversations() {
        let r = route(FOUR);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for i in 0..2000 {
            *counts.entry(conversation(&r, conversation_key(&["k", &i.to_string()]))).or_default() += 1;
        }
        assert_eq!(counts.len(), 4);
        assert!(counts.values().all(|&n| (400..=600).contains(&n)), "{counts:?}");
    }

    #[test]
    fn conversation_hash_without_a_key_rotates() {
        let r = route(FOUR);
        let picks: Vec<String> = (0..4).map(|_| first(&r.plan(&ctx(0)))).collect();
        assert_eq!(picks, ["a/m", "b/m", "c/m", "d/m"]);
    }

    const SEMANTIC: &str = r#"
- name: r
  strategy: semantic
  retries: 0
  semantic: {embedding_model: a/emb, threshold: 0.8, default: e/m}
  targets:
    - {model: a/m, examples: ["write code"]}
    - {model: b/m, examples: ["write a poem", "write a song"]}
    - {model: c/m}
"#;

    fn semantic_pick(route: &Route, q: &[f32]) -> String {
        first(&route.plan(&super::super::RequestContext {
            now: UnixMillis::from_millis(1),
            conversation: None,
            embedding: Some(q),
        }))
    }

    #[test]
    fn semantic_picks_the_closest_target_above_the_threshold() {
        let r = route(SEMANTIC);
        let s = r.semantic().unwrap();
        assert_eq!(s.embedding_model, "a/emb");
        assert_eq!(
            s.examples(),
            [(0, "write code".to_string()), (1, "write a poem".to_string()), (1, "write a song".to_string())]
        );
        assert_eq!(semantic_pick(&r, &[1.0, 0.0, 0.0]), "e/m", "before the examples are embedded: the default");
        s.set_example_embeddings(vec![(0, vec![1.0, 0.0, 0.0]), (1, vec![0.0, 1.0, 0.0]), (1, vec![0.0, 0.6, 0.8])]);
        assert_eq!(semantic_pick(&r, &[0.9, 0.1, 0.0]), "a/m");
        assert_eq!(semantic_pick(&r, &[0.0, 0.5, 0.7]), "b/m", "its second example matches");
        assert_eq!(semantic_pick(&r, &[0.5, 0.5, 0.0]), "e/m", "0.71 is below the threshold: the default");
        assert_eq!(semantic_pick(&r, &[0.0, 0.0, 0.0]), "e/m");
        assert_eq!(first(&r.plan(&ctx(1))), "e/m", "no embedding: the default");
        // The best target unavailable: the next one above the threshold, else the default.
        take_out(&r, "a/m");
        assert_eq!(semantic_pick(&r, &[0.9, 0.1, 0.0]), "e/m");
    }

    #[test]
    fn semantic_default_is_the_first_target_unless_named() {
        let r = route(
            "[{name: r, strategy: semantic, semantic: {embedding_model: a/emb}, targets: [{model: b/m, examples: [x]}, {model: c/m}]}]",
        );
        assert_eq!(first(&r.plan(&ctx(0))), "b/m");
    }
}
