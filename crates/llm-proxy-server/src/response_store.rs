//! The Responses API answers this gateway keeps (`llm_proxy_core::stored_response`), between the
//! endpoints and the database.
//!
//! An answer goes out before its row is written: a writer task writes the answers that arrived
//! meanwhile in one transaction (one per answer cost more than the rest of a request), and until
//! then the answer waits here, in memory, where a follow-up sent at once (an agent's next turn
//! comes in milliseconds) finds it. Reads look here first, then ask the database for the rest of
//! the chain.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::{Store, StoreError};
use llm_proxy_core::stored_response::{MAX_CHAIN, StoredResponse};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Answers waiting for their write, at most: past this (the database has been away for a while)
/// an answer is still served but not kept.
const MAX_PENDING: usize = 10_000;
/// Most answers written in one transaction.
const BATCH: usize = 64;
/// Tries of one batch, and the wait before the first retry (doubling).
const WRITE_TRIES: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// How long the writer lets a batch gather once it has one answer, as the request log's writer
/// does: a write per answer (a statement, a commit and a wake-up of the database's thread) cost
/// more than the rest of a passthrough request. Reads find the waiting answers in memory.
const BATCH_LINGER: Duration = Duration::from_millis(50);

pub struct ResponseStore {
    store: Arc<dyn Store>,
    retention: Duration,
    held: Mutex<Held>,
    queue: mpsc::Sender<Arc<StoredResponse>>,
}

#[derive(Default)]
struct Held {
    /// Answers whose write has not finished.
    pending: HashMap<String, Arc<StoredResponse>>,
    /// Answers deleted while their write was in flight: the writer deletes their rows again.
    deleted: HashSet<String>,
}

impl ResponseStore {
    /// The store and its writer, which runs until `stop` and then writes what is queued.
    pub fn new(
        store: Arc<dyn Store>,
        retention_days: u32,
        stop: CancellationToken,
    ) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let (queue, rx) = mpsc::channel(MAX_PENDING);
        let this = Arc::new(Self {
            store,
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            held: Mutex::new(Held::default()),
            queue,
        });
        let writer = this.clone().write_batches(rx, stop);
        (this, writer)
    }

    /// When an answer made now expires.
    pub fn expires_at(&self, now: UnixMillis) -> UnixMillis {
        now + self.retention
    }

    /// Keeps `r` (in memory at once, in the database soon). Never waits.
    pub fn put(&self, r: StoredResponse) {
        let r = Arc::new(r);
        // Held before it is queued: the writer lets go of it only after writing it.
        self.lock().pending.insert(r.id.clone(), r.clone());
        if self.queue.try_send(r.clone()).is_err() {
            tracing::warn!(id = %r.id, "too many stored responses waiting for the database; this one is not kept");
            let mut held = self.lock();
            if held.pending.get(&r.id).is_some_and(|p| Arc::ptr_eq(p, &r)) {
                held.pending.remove(&r.id);
            }
        }
    }

    async fn write_batches(self: Arc<Self>, mut rx: mpsc::Receiver<Arc<StoredResponse>>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    // A full batch is written at once; a shutdown cuts the wait short.
                    if batch.len() < BATCH {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep(BATCH_LINGER) => {}
                        }
                        while batch.len() < BATCH {
                            match rx.try_recv() {
                                Ok(r) => batch.push(r),
                                Err(_) => break,
                            }
                        }
                    }
                }
                () = stop.cancelled() => {
                    // Shutting down: what is queued is written, then the writer ends.
                    rx.close();
                    while rx.recv_many(&mut batch, BATCH).await > 0 {
                        self.write(&mut batch).await;
                    }
                    return;
                }
            }
            self.write(&mut batch).await;
        }
    }

    /// Writes one batch (retrying a failure a few times), then lets go of it.
    async fn write(&self, batch: &mut Vec<Arc<StoredResponse>>) {
        let rows: Vec<StoredResponse> = batch.iter().map(|r| (**r).clone()).collect();
        let mut wait = FIRST_RETRY;
        for attempt in 1..=WRITE_TRIES {
            match self.store.put_responses(&rows).await {
                Ok(()) => break,
                Err(e) if attempt == WRITE_TRIES => {
                    tracing::warn!(answers = rows.len(), error = %e, "stored responses could not be written; they are lost");
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        // Written, or given up: either way the database now has the final word.
        let deleted: Vec<Arc<StoredResponse>> = {
            let mut held = self.lock();
            batch
                .drain(..)
                .filter(|r| {
                    if held.pending.get(&r.id).is_some_and(|p| Arc::ptr_eq(p, r)) {
                        held.pending.remove(&r.id);
                    }
                    held.deleted.remove(&r.id)
                })
                .collect()
        };
        for r in deleted {
            if let Err(e) = self.store.delete_response(&r.id, &r.key_id).await {
                tracing::warn!(id = %r.id, error = %e, "a deleted stored response could not be removed from the database");
            }
        }
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

    struct Running {
        rs: Arc<ResponseStore>,
        db: Arc<dyn Store>,
        stop: CancellationToken,
        writer: tokio_util::task::TaskTracker,
    }

    impl Running {
        /// Stops the writer once it has written everything queued.
        async fn flush(self) -> (Arc<ResponseStore>, Arc<dyn Store>) {
            self.stop.cancel();
            self.writer.close();
            self.writer.wait().await;
            (self.rs, self.db)
        }
    }

    async fn store() -> Running {
        let db = llm_proxy_store::connect("sqlite::memory:", 2, 1).await.unwrap();
        db.migrate().await.unwrap();
        let stop = CancellationToken::new();
        let (rs, writer) = ResponseStore::new(db.clone(), 30, stop.clone());
        let tracker = tokio_util::task::TaskTracker::new();
        tracker.spawn(writer);
        Running { rs, db, stop, writer: tracker }
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
        let running = store().await;
        let rs = running.rs.clone();
        rs.put(answer(&rs, "resp_1", "k", None));
        rs.put(answer(&rs, "resp_2", "k", Some("resp_1")));
        // Read at once: from memory, whatever the writer is doing.
        assert_eq!(ids(&rs.chain("resp_2", "k").await.unwrap()), ["resp_1", "resp_2"]);
        assert!(rs.chain("resp_2", "other-key").await.unwrap().is_empty(), "never another key's");
        for _ in 0..500 {
            if rs.lock().pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rs.lock().pending.is_empty(), "written, so no longer held");
        let db = running.db.clone();
        assert_eq!(db.response_chain("resp_2", "k", UnixMillis::now(), 10).await.unwrap().len(), 2);
        // A third turn on top of two in the database.
        rs.put(answer(&rs, "resp_3", "k", Some("resp_2")));
        assert_eq!(ids(&rs.chain("resp_3", "k").await.unwrap()), ["resp_1", "resp_2", "resp_3"]);
        assert!(rs.get("resp_1", "k").await.unwrap().is_some());
        assert!(rs.get("resp_1", "other-key").await.unwrap().is_none());
        let (_, db) = running.flush().await;
        assert_eq!(db.response_chain("resp_3", "k", UnixMillis::now(), 10).await.unwrap().len(), 3, "flushed at stop");
    }

    #[tokio::test]
    async fn a_delete_while_the_write_is_in_flight_stays_deleted() {
        let running = store().await;
        let rs = running.rs.clone();
        rs.put(answer(&rs, "resp_1", "k", None));
        assert!(matches!(rs.delete("resp_1", "other-key").await, Err(StoreError::NotFound)));
        rs.delete("resp_1", "k").await.unwrap();
        let (rs, db) = running.flush().await;
        assert!(rs.get("resp_1", "k").await.unwrap().is_none());
        assert!(db.response_chain("resp_1", "k", UnixMillis::now(), 10).await.unwrap().is_empty());
        assert!(matches!(rs.delete("resp_1", "k").await, Err(StoreError::NotFound)));
    }
}
