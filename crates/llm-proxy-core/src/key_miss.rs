//! A key ring miss asked of the database, so a key made a moment ago by another instance (or the
//! CLI) works on its very next request instead of after the next poll — without letting random
//! keys load the database: misses for one key share one query (single flight), a key the database
//! does not know is remembered as unknown for a while (negative cache), and at most
//! `LOOKUPS_PER_SECOND` queries leave per instance (past that, a miss is unknown at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::UnixMillis;
use crate::store::Store;
use crate::virtual_key::{KeyHash, KeyRecord};

/// Database lookups per second, at most (per instance).
pub const LOOKUPS_PER_SECOND: u32 = 20;
/// How long a key the database did not know stays unknown without asking again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Unknown keys remembered at most; past it the oldest half is forgotten.
const MAX_NEGATIVE: usize = 10_000;

#[derive(Default)]
pub struct KeyMisses {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Unknown keys and when they may be asked again.
    unknown: HashMap<KeyHash, UnixMillis>,
    /// Lookups in flight: every miss for the key awaits the same one.
    in_flight: HashMap<KeyHash, Arc<OnceCell<Option<KeyRecord>>>>,
    /// The current second and the lookups made in it.
    second: i64,
    made: u32,
}

impl KeyMisses {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key with `hash`, as the database has it now; `None` when it has none, when it cannot
    /// be asked, or when this instance is over its lookup budget.
    pub async fn lookup(&self, store: &dyn Store, hash: KeyHash, now: UnixMillis) -> Option<KeyRecord> {
        let cell = {
            let mut s = self.lock();
            if s.unknown.get(&hash).is_some_and(|until| *until > now) {
                return None;
            }
            match s.in_flight.get(&hash) {
                Some(cell) => cell.clone(),
                None => {
                    let second = now.to_i64().div_euclid(1000);
                    if s.second != second {
                        s.second = second;
                        s.made = 0;
                    }
                    if s.made >= LOOKUPS_PER_SECOND {
                        return None;
                    }
                    s.made += 1;
                    let cell = Arc::new(OnceCell::new());
                    s.in_flight.insert(hash, cell.clone());
                    cell
                }
            }
        };
        let found = cell
            .get_or_init(|| async {
                match store.key_by_hash(&hash).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::debug!(error = %e, "a key ring miss could not be asked of the database");
                        None
                    }
                }
            })
            .await
            .clone();
        let mut s = self.lock();
        if s.in_flight.get(&hash).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            s.in_flight.remove(&hash);
            if found.is_none() {
                if s.unknown.len() >= MAX_NEGATIVE {
                    let mut oldest: Vec<UnixMillis> = s.unknown.values().copied().collect();
                    oldest.sort_unstable();
                    let cut = oldest[oldest.len() / 2];
                    s.unknown.retain(|_, until| *until > cut);
                }
                s.unknown.insert(hash, now + NEGATIVE_TTL);
            }
        }
        found
    }

    /// Forgets that `hash` was unknown (a key just made here).
    pub fn forget(&self, hash: &KeyHash) {
        self.lock().unknown.remove(hash);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::store::StoreError;
    use crate::virtual_key::{KeyLimits, hash_key};

    /// A store that knows one key and counts the questions.
    struct Counting {
        known: KeyHash,
        asked: AtomicU32,
    }

    #[async_trait]
    impl Store for Counting {
        async fn migrate(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn ready(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn insert_key(&self, _key: &crate::virtual_key::NewKey) -> Result<KeyRecord, StoreError> {
            Err(StoreError::NotFound)
        }
        async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn revoke_key(&self, _id: &str) -> Result<KeyRecord, StoreError> {
            Err(StoreError::NotFound)
        }
        async fn keys_updated_since(&self, _since: UnixMillis) -> Result<Vec<KeyRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok((*hash == self.known).then(|| KeyRecord {
                id: "k".into(),
                name: "k".into(),
                hash: *hash,
                display: "sk-…".into(),
                models: Vec::new(),
                user: None,
                created_at: UnixMillis::EPOCH,
                updated_at: UnixMillis::EPOCH,
                expires_at: None,
                revoked_at: None,
                limits: KeyLimits::default(),
            }))
        }
        async fn insert_logs(&self, _entries: &[crate::request_log::RequestLogEntry]) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_logs(
            &self,
            _query: &crate::request_log::LogQuery,
        ) -> Result<crate::request_log::LogPage, StoreError> {
            Err(StoreError::NotFound)
        }
    }

    #[tokio::test]
    async fn misses_share_one_lookup_and_unknown_keys_are_remembered() {
        let store = Counting { known: hash_key("known"), asked: AtomicU32::new(0) };
        let misses = KeyMisses::default();
        let now = UnixMillis::from_i64(1_000_000);
        let found =
            futures_util::future::join_all((0..10).map(|_| misses.lookup(&store, hash_key("known"), now))).await;
        assert!(found.iter().all(|f| f.as_ref().is_some_and(|k| k.id == "k")));
        assert_eq!(store.asked.load(Ordering::SeqCst), 1, "ten misses at once, one query");

        assert!(misses.lookup(&store, hash_key("random"), now).await.is_none());
        assert!(misses.lookup(&store, hash_key("random"), now + Duration::from_secs(1)).await.is_none());
        assert_eq!(store.asked.load(Ordering::SeqCst), 2, "an unknown key is not asked again soon");
        let later = now + NEGATIVE_TTL + Duration::from_secs(1);
        assert!(misses.lookup(&store, hash_key("random"), later).await.is_none());
        assert_eq!(store.asked.load(Ordering::SeqCst), 3, "but is after the negative cache's time");
    }

    #[tokio::test]
    async fn random_keys_cannot_load_the_database() {
        let store = Counting { known: hash_key("known"), asked: AtomicU32::new(0) };
        let misses = KeyMisses::default();
        let now = UnixMillis::from_i64(5_000_000);
        for i in 0..200 {
            misses.lookup(&store, hash_key(&format!("guess-{i}")), now).await;
        }
        assert_eq!(store.asked.load(Ordering::SeqCst), LOOKUPS_PER_SECOND, "at most the budget per second");
        misses.lookup(&store, hash_key("another"), now + Duration::from_secs(1)).await;
        assert_eq!(store.asked.load(Ordering::SeqCst), LOOKUPS_PER_SECOND + 1, "the next second has its own");
    }
}
