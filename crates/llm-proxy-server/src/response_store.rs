//! The Responses API answers this gateway keeps (`llm_proxy_core::stored_response`), between the
//! endpoints and the database.
//!
//! An answer goes out before its row is written: the write runs beside, and until it is done the
//! answer waits here, in memory, where a follow-up sent at once (an agent's next turn comes in
//! milliseconds) finds it. Reads look here first, then ask the database for the rest of the chain.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::{Store, StoreError};
use llm_proxy_core::stored_response::{MAX_CHAIN, StoredResponse};
use tokio_util::task::TaskTracker;

/// Answers waiting for their write, at most: past this (the database has been away for a while)
/// an answer is still served but not kept.
const MAX_PENDING: usize = 10_000;
/// Tries of one write, and the wait before the first retry (doubling).
const WRITE_TRIES: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(200);

pub struct ResponseStore {
    store: Arc<dyn Store>,
    retention: Duration,
    held: Mutex<Held>,
    /// The writes in flight, which shutdown waits for.
    writes: TaskTracker,
}

#[derive(Default)]
struct Held {
    /// Answers whose write has not finished.
    pending: HashMap<String, Arc<StoredResponse>>,
    /// Answers deleted while their write was in flight: the write deletes its row again.
    deleted: HashSet<String>,
}

impl ResponseStore {
    pub fn new(store: Arc<dyn Store>, retention_days: u32, writes: TaskTracker) -> Self {
        Self {
            store,
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            held: Mutex::new(Held::default()),
            writes,
        }
    }

    /// When an answer made now expires.
    pub fn expires_at(&self, now: UnixMillis) -> UnixMillis {
        now + self.retention
    }

    /// Keeps `r` (in memory at once, in the database soon). Never waits.
    pub fn put(self: &Arc<Self>, r: StoredResponse) {
        let r = Arc::new(r);
        {
            let mut held = self.lock();
            if held.pending.len() >= MAX_PENDING {
                tracing::warn!(id = %r.id, "too many stored responses waiting for the database; this one is not kept");
                return;
            }
            held.pending.insert(r.id.clone(), r.clone());
        }
        let this = self.clone();
        self.writes.spawn(async move {
            let mut wait = FIRST_RETRY;
            for attempt in 1..=WRITE_TRIES {
                match this.store.put_response(&r).await {
                    Ok(()) => break,
                    Err(e) if attempt == WRITE_TRIES => {
                        tracing::warn!(id = %r.id, error = %e, "a stored response could not be written; it is lost");
                    }
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
            // Written, or given up: either way the database now has the final word.
            let deleted = {
                let mut held = this.lock();
                if held.pending.get(&r.id).is_some_and(|p| Arc::ptr_eq(p, &r)) {
                    held.pending.remove(&r.id);
                }
                held.deleted.remove(&r.id)
            };
            if deleted && let Err(e) = this.store.delete_response(&r.id, &r.key_id).await {
                tracing::warn!(id = %r.id, error = %e, "a deleted stored response could not be removed from the database");
            }
        });
    }

    /// The conversation that ends with answer `id` of `key_id`, oldest answer first; empty when
    /// there is no such answer for this key (another key's, expired or deleted).
    pub async fn chain(&self, id: &str, key_id: &str) -> Result<Vec<Arc<StoredResponse>>, StoreError> {
        let now = UnixMillis::now();
        let mut newest_first = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(id) = next.take() {
            if newest_first.len() >= MAX_CHAIN as usize {
                break;
            }
            let held = self.lock().pending.get(&id).cloned();
            match held {
                Some(r) if r.key_id == key_id && r.expires_at > now => {
                    next = r.previous_id.clone();
                    newest_first.push(r);
                }
                Some(_) => break,
                None => {
                    let left = MAX_CHAIN - newest_first.len() as u32;
                    let older = self.store.response_chain(&id, key_id, now, left).await?;
                    newest_first.extend(older.into_iter().rev().map(Arc::new));
                }
            }
        }
        newest_first.reverse();
        Ok(newest_first)
    }

    /// The answer `id`, if `key_id` made it.
    pub async fn get(&self, id: &str, key_id: &str) -> Result<Option<Arc<StoredResponse>>, StoreError> {
        let now = UnixMillis::now();
        if let Some(r) = self.lock().pending.get(id).cloned() {
            return Ok((r.key_id == key_id && r.expires_at > now).then_some(r));
        }
        Ok(self.store.response_chain(id, key_id, now, 1).await?.pop().map(Arc::new))
    }

    /// Deletes the answer `id` of `key_id`; `NotFound` when it has none.
    pub async fn delete(&self, id: &str, key_id: &str) -> Result<(), StoreError> {
        let was_pending = {
            let mut held = self.lock();
            let mine = held.pending.get(id).is_some_and(|r| r.key_id == key_id);
            if mine {
                held.pending.remove(id);
                // Its write may land after the delete below: it removes its row again.
                held.deleted.insert(id.to_string());
            }
            mine
        };
        match self.store.delete_response(id, key_id).await {
            Err(StoreError::NotFound) if was_pending => Ok(()),
            result => result,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // A panic while holding this lock leaves maps that are still consistent.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (Arc<ResponseStore>, Arc<dyn Store>) {
        let db = llm_proxy_store::connect("sqlite::memory:", 2, 1).await.unwrap();
        db.migrate().await.unwrap();
        (Arc::new(ResponseStore::new(db.clone(), 30, TaskTracker::new())), db)
    }

    fn answer(rs: &ResponseStore, id: &str, key: &str, previous: Option<&str>) -> StoredResponse {
        let now = UnixMillis::now();
        StoredResponse {
            id: id.into(),
            key_id: key.into(),
            created_at: now,
            expires_at: rs.expires_at(now),
            previous_id: previous.map(Into::into),
            upstream: None,
            input: "[]".into(),
            response: format!(r#"{{"id":"{id}"}}"#),
        }
    }

    fn ids(chain: &[Arc<StoredResponse>]) -> Vec<&str> {
        chain.iter().map(|r| r.id.as_str()).collect()
    }

    #[tokio::test]
    async fn a_follow_up_finds_its_history_before_and_after_the_write() {
        let (rs, db) = store().await;
        rs.put(answer(&rs, "resp_1", "k", None));
        rs.put(answer(&rs, "resp_2", "k", Some("resp_1")));
        // Read at once: from memory, whatever the writes are doing.
        assert_eq!(ids(&rs.chain("resp_2", "k").await.unwrap()), ["resp_1", "resp_2"]);
        assert!(rs.chain("resp_2", "other-key").await.unwrap().is_empty(), "never another key's");
        rs.writes.close();
        rs.writes.wait().await;
        assert!(rs.lock().pending.is_empty(), "written, so no longer held");
        // A third turn held in memory on top of two in the database.
        rs.put(answer(&rs, "resp_3", "k", Some("resp_2")));
        assert_eq!(ids(&rs.chain("resp_3", "k").await.unwrap()), ["resp_1", "resp_2", "resp_3"]);
        assert_eq!(db.response_chain("resp_2", "k", UnixMillis::now(), 10).await.unwrap().len(), 2);
        assert!(rs.get("resp_1", "k").await.unwrap().is_some());
        assert!(rs.get("resp_1", "other-key").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_delete_while_the_write_is_in_flight_stays_deleted() {
        let (rs, db) = store().await;
        rs.put(answer(&rs, "resp_1", "k", None));
        assert!(matches!(rs.delete("resp_1", "other-key").await, Err(StoreError::NotFound)));
        rs.delete("resp_1", "k").await.unwrap();
        rs.writes.close();
        rs.writes.wait().await;
        assert!(rs.get("resp_1", "k").await.unwrap().is_none());
        assert!(db.response_chain("resp_1", "k", UnixMillis::now(), 10).await.unwrap().is_empty());
        assert!(matches!(rs.delete("resp_1", "k").await, Err(StoreError::NotFound)));
    }
}
