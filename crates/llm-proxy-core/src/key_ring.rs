//! The in-memory copy of every virtual key, so authentication never waits for the database.
//!
//! A background task polls the store for keys changed since the last poll (creates, revokes) and
//! swaps in a new map; a lookup is one SHA-256 and one hash-map read. Keys created or revoked by
//! another process (the CLI, another instance) take effect within one poll interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::UnixMillis;
use crate::store::{Store, StoreError};
use crate::virtual_key::{KeyHash, KeyRecord, hash_key};

/// How often the ring asks the store for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(400);
/// Re-read this far behind the newest change seen, so a row written with a slightly older
/// timestamp (another machine's clock, a slow transaction) is still picked up.
const OVERLAP: Duration = Duration::from_secs(10);

pub struct KeyRing {
    keys: ArcSwap<HashMap<KeyHash, Arc<KeyRecord>>>,
}

/// Why a presented key was refused; all become 401 with a message saying which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Unknown,
    Revoked,
    Expired,
}

impl KeyRing {
    /// Loads every key; fails if the store cannot be read (the server should not start blind).
    pub async fn load(store: &dyn Store) -> Result<(Self, UnixMillis), StoreError> {
        let all = store.list_keys().await?;
        let watermark = all.iter().map(|k| k.updated_at).max().unwrap_or(UnixMillis::EPOCH);
        let map = all.into_iter().map(|k| (k.hash, Arc::new(k))).collect();
        Ok((Self { keys: ArcSwap::from_pointee(map) }, watermark))
    }

    /// Looks a presented secret up.
    pub fn authenticate(&self, secret: &str, now: UnixMillis) -> Result<Arc<KeyRecord>, KeyRejection> {
        let hash = hash_key(secret);
        let keys = self.keys.load();
        let record = keys.get(&hash).ok_or(KeyRejection::Unknown)?;
        // The map lookup already matched; the constant-time comparison keeps the final decision
        // free of data-dependent early exits.
        if !bool::from(record.hash.ct_eq(&hash)) {
            return Err(KeyRejection::Unknown);
        }
        if record.revoked_at.is_some() {
            return Err(KeyRejection::Revoked);
        }
        if !record.is_active(now) {
            return Err(KeyRejection::Expired);
        }
        Ok(record.clone())
    }

    /// Merges changed keys into a new map and swaps it in; a poll that brings back only rows
    /// already known (the overlap window) swaps nothing.
    pub fn apply(&self, changed: Vec<KeyRecord>) {
        let current = self.keys.load();
        let fresh: Vec<KeyRecord> =
            changed.into_iter().filter(|k| current.get(&k.hash).is_none_or(|old| **old != *k)).collect();
        if fresh.is_empty() {
            return;
        }
        let mut next = HashMap::clone(&current);
        for k in fresh {
            next.insert(k.hash, Arc::new(k));
        }
        self.keys.store(Arc::new(next));
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Polls the store until `stop` fires. Errors keep the last good copy and are retried.
    pub async fn poll(self: Arc<Self>, store: Arc<dyn Store>, mut watermark: UnixMillis, stop: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            match store.keys_updated_since(watermark - OVERLAP).await {
                Ok(changed) => {
                    if failing {
                        tracing::info!("key store reachable again");
                        failing = false;
                    }
                    if let Some(max) = changed.iter().map(|k| k.updated_at).max() {
                        watermark = watermark.max(max);
                    }
                    self.apply(changed);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot refresh virtual keys; serving the last known set");
                        failing = true;
                    }
                }
            }
        }
    }
}
