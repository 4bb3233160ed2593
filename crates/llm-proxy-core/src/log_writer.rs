//! The request log's path to the database: a bounded queue drained in batches by one task.
//!
//! Recording never waits: `LogSink::record` is a non-blocking push. If the queue is full (the
//! database is slow or down), entries go to an overflow buffer that is itself capped; only past that
//! cap is an entry dropped, and every drop is counted and reported. Failed batches are retried with
//! backoff, and a batch is idempotent (rows are keyed by request id), so a retry never duplicates.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::request_log::RequestLogEntry;
use crate::store::{Store, StoreError};

const QUEUE_CAPACITY: usize = 8192;
const OVERFLOW_CAPACITY: usize = 262_144;
const BATCH_MAX: usize = 512;
/// How long the writer waits for a batch to fill once it has one entry.
const BATCH_LINGER: Duration = Duration::from_millis(50);

struct Shared {
    overflow: Mutex<VecDeque<RequestLogEntry>>,
    /// Wakes the writer when entries land in `overflow` rather than the queue it waits on.
    overflowed: tokio::sync::Notify,
    dropped: AtomicU64,
    written: AtomicU64,
}

/// The handle request handlers hold. Cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<RequestLogEntry>,
    shared: Arc<Shared>,
}

impl LogSink {
    /// Queues one entry without waiting.
    pub fn record(&self, entry: RequestLogEntry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(entry)) => {
                // The writer has finished (shutdown ran out of time): nothing will write this.
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(request_id = %entry.request_id, "request log closed; entry dropped");
            }
            Err(mpsc::error::TrySendError::Full(entry)) => {
                let mut overflow = self.shared.overflow.lock().unwrap_or_else(|p| p.into_inner());
                if overflow.len() >= OVERFLOW_CAPACITY {
                    let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::error!(dropped = n, "request log backlog full; dropping entries");
                    }
                } else {
                    overflow.push_back(entry);
                    self.shared.overflowed.notify_one();
                }
            }
        }
    }

    /// Entries given up on since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Entries written to the store since start.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }
}

/// The writer task; `run` it on the task tracker, cancel `stop` to flush and finish.
pub struct LogWriter {
    rx: mpsc::Receiver<RequestLogEntry>,
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
}

pub fn log_channel(store: Arc<dyn Store>) -> (LogSink, LogWriter) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let shared = Arc::new(Shared {
        overflow: Mutex::new(VecDeque::new()),
        overflowed: tokio::sync::Notify::new(),
        dropped: AtomicU64::new(0),
        written: AtomicU64::new(0),
    });
    (LogSink { tx, shared: shared.clone() }, LogWriter { rx, shared, store })
}

impl LogWriter {
    /// Writes batches until `stop` fires, then drains everything queued. On shutdown a failing
    /// database is retried until `flush_deadline` passes; what is still unwritten then is reported.
    pub async fn run(mut self, stop: CancellationToken, flush_deadline: Duration) {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        loop {
            if stop.is_cancelled() {
                break;
            }
            if self.overflow_len() == 0 {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    _ = self.shared.overflowed.notified() => {}
                    got = self.rx.recv() => match got {
                        Some(e) => batch.push(e),
                        None => break,
                    },
                }
            }
            // Let a batch gather by sleeping, not by waking for every entry: under load that is one
            // wake-up per batch instead of one per request. A full queue is written at once.
            if self.rx.len() < BATCH_MAX {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(BATCH_LINGER) => {}
                }
            }
            while batch.len() < BATCH_MAX {
                match self.rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            self.take_overflow(&mut batch);
            if !batch.is_empty() {
                self.write_with_retry(&mut batch, &stop).await;
            }
        }
        // Shutdown: everything queued, then everything that overflowed.
        self.rx.close();
        let deadline = tokio::time::Instant::now() + flush_deadline;
        loop {
            while batch.len() < BATCH_MAX {
                match self.rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            self.take_overflow(&mut batch);
            if batch.is_empty() {
                break;
            }
            if !self.flush_until(&mut batch, deadline).await {
                let left = batch.len() + self.rx.len() + self.overflow_len();
                tracing::error!(unwritten = left, "database unavailable at shutdown; request log entries lost");
                self.shared.dropped.fetch_add(left as u64, Ordering::Relaxed);
                return;
            }
        }
        tracing::info!(written = self.shared.written.load(Ordering::Relaxed), "request log flushed");
    }

    fn overflow_len(&self) -> usize {
        self.shared.overflow.lock().map(|o| o.len()).unwrap_or(0)
    }

    fn take_overflow(&self, batch: &mut Vec<RequestLogEntry>) {
        let mut overflow = self.shared.overflow.lock().unwrap_or_else(|p| p.into_inner());
        while batch.len() < BATCH_MAX {
            match overflow.pop_front() {
                Some(e) => batch.push(e),
                None => break,
            }
        }
    }

    /// Writes `batch`, retrying while running. An unreachable database is waited for; a batch the
    /// database keeps refusing for another reason is written row by row, so one bad row (which
    /// should not exist: entries are sanitized when recorded) cannot block the log.
    async fn write_with_retry(&self, batch: &mut Vec<RequestLogEntry>, stop: &CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut refusals = 0;
        while !batch.is_empty() {
            match self.store.insert_logs(batch).await {
                Ok(()) => {
                    self.shared.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    return;
                }
                Err(e) => {
                    if !matches!(e, StoreError::Unavailable(_)) {
                        refusals += 1;
                        if refusals >= 3 {
                            self.write_row_by_row(batch).await;
                            refusals = 0;
                            continue;
                        }
                    }
                    tracing::warn!(error = %e, rows = batch.len(), "request log write failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return, // the shutdown drain retries this batch
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Writes each row alone, dropping (and counting) the ones the database refuses; rows hit by an
    /// outage stay in `batch` for the next attempt.
    async fn write_row_by_row(&self, batch: &mut Vec<RequestLogEntry>) {
        for row in std::mem::take(batch) {
            match self.store.insert_logs(std::slice::from_ref(&row)).await {
                Ok(()) => {
                    self.shared.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(StoreError::Unavailable(_)) => batch.push(row),
                Err(e) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(request_id = %row.request_id, error = %e, "the database refused a request log row; dropped");
                }
            }
        }
    }

    async fn flush_until(&self, batch: &mut Vec<RequestLogEntry>, deadline: tokio::time::Instant) -> bool {
        loop {
            match self.store.insert_logs(batch).await {
                Ok(()) => {
                    self.shared.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    return true;
                }
                Err(StoreError::Unavailable(e)) => {
                    if tokio::time::Instant::now() + Duration::from_millis(250) > deadline {
                        tracing::warn!(error = %e, "request log flush failed");
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(_) => {
                    self.write_row_by_row(batch).await;
                    if batch.is_empty() {
                        return true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::disallowed_methods, reason = "a test runs the writer as its own task")]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU32;

    use async_trait::async_trait;

    use super::*;
    use crate::request_log::{LogPage, LogQuery};
    use crate::store::StoreError;
    use crate::virtual_key::{KeyRecord, NewKey};

    /// A database that fails the next `fail_next` writes (forever if `u32::MAX`), and otherwise
    /// keeps rows by request id, as the real stores do.
    #[derive(Default)]
    struct FlakyStore {
        fail_next: AtomicU32,
        rows: Mutex<HashMap<String, RequestLogEntry>>,
    }

    #[async_trait]
    impl Store for FlakyStore {
        async fn migrate(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn ready(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn insert_key(&self, _: &NewKey) -> Result<KeyRecord, StoreError> {
            Err(StoreError::Other("unused".into()))
        }
        async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn revoke_key(&self, _: &str) -> Result<KeyRecord, StoreError> {
            Err(StoreError::NotFound)
        }
        async fn keys_updated_since(&self, _: crate::UnixMillis) -> Result<Vec<KeyRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn insert_logs(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError> {
            if entries.iter().any(|e| e.request_id.starts_with("bad")) {
                return Err(StoreError::Other("invalid byte sequence for encoding UTF8: 0x00".into()));
            }
            let fail = self.fail_next.load(Ordering::SeqCst);
            if fail > 0 {
                if fail != u32::MAX {
                    self.fail_next.fetch_sub(1, Ordering::SeqCst);
                }
                return Err(StoreError::Unavailable("disk full".into()));
            }
            let mut rows = self.rows.lock().unwrap();
            for e in entries {
                rows.entry(e.request_id.clone()).or_insert_with(|| e.clone());
            }
            Ok(())
        }
        async fn list_logs(&self, _: &LogQuery) -> Result<LogPage, StoreError> {
            Ok(LogPage::default())
        }
    }

    fn entry(i: usize) -> RequestLogEntry {
        RequestLogEntry { request_id: format!("r{i:06}"), status: 200, ..Default::default() }
    }

    #[tokio::test]
    async fn a_failing_database_delays_rows_but_loses_none() {
        let store = Arc::new(FlakyStore { fail_next: AtomicU32::new(3), ..Default::default() });
        let (sink, writer) = log_channel(store.clone());
        let stop = CancellationToken::new();
        let task = tokio::spawn(writer.run(stop.clone(), Duration::from_secs(5)));
        for i in 0..20_000 {
            sink.record(entry(i)); // more than the queue holds: the overflow takes the rest
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.rows.lock().unwrap().len() < 20_000 {
            assert!(tokio::time::Instant::now() < deadline, "rows never reached the store");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!((sink.written(), sink.dropped()), (20_000, 0));
    }

    #[tokio::test]
    async fn shutdown_flushes_everything_queued() {
        let store = Arc::new(FlakyStore::default());
        let (sink, writer) = log_channel(store.clone());
        for i in 0..5_000 {
            sink.record(entry(i));
        }
        let stop = CancellationToken::new();
        stop.cancel(); // stopped before the writer ever ran: the drain alone must write it all
        writer.run(stop, Duration::from_secs(5)).await;
        assert_eq!(store.rows.lock().unwrap().len(), 5_000);
    }

    #[tokio::test]
    async fn a_database_down_at_shutdown_is_given_up_on_after_the_deadline_and_counted() {
        let store = Arc::new(FlakyStore { fail_next: AtomicU32::new(u32::MAX), ..Default::default() });
        let (sink, writer) = log_channel(store.clone());
        for i in 0..10 {
            sink.record(entry(i));
        }
        let stop = CancellationToken::new();
        stop.cancel();
        let started = std::time::Instant::now();
        writer.run(stop, Duration::from_millis(600)).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(sink.dropped(), 10);
    }

    #[tokio::test]
    async fn a_row_the_database_refuses_is_dropped_alone_and_counted() {
        let store = Arc::new(FlakyStore::default());
        let (sink, writer) = log_channel(store.clone());
        let stop = CancellationToken::new();
        let task = tokio::spawn(writer.run(stop.clone(), Duration::from_secs(5)));
        for i in 0..100 {
            sink.record(entry(i));
        }
        sink.record(RequestLogEntry { request_id: "bad-row".into(), ..Default::default() });
        for i in 100..200 {
            sink.record(entry(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.rows.lock().unwrap().len() < 200 {
            assert!(tokio::time::Instant::now() < deadline, "good rows were blocked by the bad one");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!((sink.written(), sink.dropped()), (200, 1));
    }
}
