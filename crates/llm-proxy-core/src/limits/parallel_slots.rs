//! [`ParallelSlots`]: how many requests of each key are in flight on this instance, capped by the
//! key's `max_parallel`.
//!
//! Local by design, like a deployment's in-flight count: a slot belongs to a request running in
//! this process, and a shared count would leak the slots of an instance that dies. In a cluster
//! the cap therefore holds per instance.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

const SHARDS: usize = 64;

/// Key id → requests of that key in flight.
type Shard = Mutex<HashMap<String, Arc<AtomicU32>>>;

/// In-flight counts per key id. A shard lock is held only to find (or create) a key's counter;
/// taking and releasing a slot is one atomic operation on it.
///
/// A key's counter stays once created (at zero when idle): the map is bounded by the number of
/// keys, as callers pass virtual key ids only.
pub struct ParallelSlots {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

/// One request's slot, given back when dropped — on success, error, client disconnect (the future
/// holding it is dropped) and panic unwinding alike.
#[must_use = "the slot is held only while the guard lives"]
#[derive(Debug)]
pub struct SlotGuard {
    count: Arc<AtomicU32>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for ParallelSlots {
    fn default() -> Self {
        Self::new()
    }
}

impl ParallelSlots {
    pub fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), hasher: RandomState::new() }
    }

    /// Takes one of `key`'s `max` slots, or `None` when all are taken (answer with
    /// [`Refusal::parallel`](super::Refusal::parallel)). Never more than `max` at once, however
    /// many callers race; `max` 0 refuses every request.
    pub fn try_acquire(&self, key: &str, max: u32) -> Option<SlotGuard> {
        let count = self.counter(key);
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(SlotGuard { count })
    }

    /// Slots of `key` taken now.
    pub fn in_flight(&self, key: &str) -> u32 {
        let shard = self.shard(key).lock().unwrap_or_else(PoisonError::into_inner);
        shard.get(key).map_or(0, |c| c.load(Ordering::Acquire))
    }

    fn shard(&self, key: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(key) % SHARDS as u64) as usize]
    }

    fn counter(&self, key: &str) -> Arc<AtomicU32> {
        // Insert is the only write under the lock, so a poisoned lock guards a consistent map.
        let mut shard = self.shard(key).lock().unwrap_or_else(PoisonError::into_inner);
        match shard.get(key) {
            Some(c) => Arc::clone(c),
            None => Arc::clone(shard.entry(key.to_string()).or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;

    #[test]
    fn slots_are_capped_and_come_back_on_drop() {
        let slots = ParallelSlots::new();
        let a = slots.try_acquire("k1", 2).unwrap();
        let b = slots.try_acquire("k1", 2).unwrap();
        assert!(slots.try_acquire("k1", 2).is_none());
        // Another key has its own slots.
        let other = slots.try_acquire("k2", 2).unwrap();
        assert_eq!((slots.in_flight("k1"), slots.in_flight("k2")), (2, 1));

        drop(a);
        assert_eq!(slots.in_flight("k1"), 1);
        let c = slots.try_acquire("k1", 2).unwrap();
        drop((b, c, other));
        assert_eq!((slots.in_flight("k1"), slots.in_flight("k2")), (0, 0));
        assert!(slots.try_acquire("never", 0).is_none());
        assert_eq!(slots.in_flight("unknown"), 0);
    }

    #[test]
    fn a_panicking_request_gives_its_slot_back() {
        let slots = ParallelSlots::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _slot = slots.try_acquire("k", 1).unwrap();
            assert_eq!(slots.in_flight("k"), 1);
            panic!("handler bug");
        }));
        assert!(result.is_err());
        assert_eq!(slots.in_flight("k"), 0);
        assert!(slots.try_acquire("k", 1).is_some());
    }

    #[test]
    fn a_dropped_request_future_gives_its_slot_back() {
        use futures_util::FutureExt;

        let slots = ParallelSlots::new();
        let mut request = Box::pin(async {
            let _slot = slots.try_acquire("k", 1);
            std::future::pending::<()>().await;
        });
        assert!((&mut request).now_or_never().is_none());
        assert_eq!(slots.in_flight("k"), 1);
        // The client disconnects: the server drops the request's future mid-await.
        drop(request);
        assert_eq!(slots.in_flight("k"), 0);
    }

    #[test]
    fn racing_threads_never_exceed_the_cap() {
        let slots = ParallelSlots::new();
        let peak = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..2_000 {
                        if let Some(_slot) = slots.try_acquire("k", 3) {
                            peak.fetch_max(slots.in_flight("k"), Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::Relaxed) <= 3);
        assert_eq!(slots.in_flight("k"), 0);
    }
}
