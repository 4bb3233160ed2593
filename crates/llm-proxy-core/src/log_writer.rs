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
use crate::store::Store;

const QUEUE_CAPACITY: usize = 8192;
const OVERFLOW_CAPACITY: usize = 262_144;
const BATCH_MAX: usize = 512;
/// How long the writer lingers to fill a batch once it has one entry.
const BATCH_LINGER: Duration = Duration::from_millis(50);

struct Shared {
    overflow: Mutex<VecDeque<RequestLogEntry>>,
    dropped: AtomicU64,
    written: AtomicU64,
}

/// The handle request handlers hold. Cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<RequestLogEntry>,
    shared: Arc<Shared>,
    /// Observers of every entry (live dashboard, tests); never blocks the request path.
    events: tokio::sync::broadcast::Sender<Arc<RequestLogEntry>>,
}

impl LogSink {
    /// Queues one entry without waiting.
    pub fn record(&self, entry: RequestLogEntry) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(Arc::new(entry.clone()));
        }
        if let Err(
            mpsc::error::TrySendError::Full(entry) | mpsc::error::TrySendError::Closed(entry),
        ) = self.tx.try_send(entry)
        {
            let mut overflow = self
                .shared
                .overflow
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if overflow.len() >= OVERFLOW_CAPACITY {
                let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::error!(dropped = n, "request log backlog full; dropping entries");
                }
            } else {
                overflow.push_back(entry);
            }
        }
    }

    /// Every entry recorded from now on, as it is recorded.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<RequestLogEntry>> {
        self.events.subscribe()
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
        dropped: AtomicU64::new(0),
        written: AtomicU64::new(0),
    });
    let (events, _) = tokio::sync::broadcast::channel(1024);
    (
        LogSink {
            tx,
            shared: shared.clone(),
            events,
        },
        LogWriter { rx, shared, store },
    )
}

impl LogWriter {
    /// Writes batches until `stop` fires, then drains everything queued. On shutdown a failing
    /// database is retried until `flush_deadline` passes; what is still unwritten then is reported.
    pub async fn run(mut self, stop: CancellationToken, flush_deadline: Duration) {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                got = self.rx.recv() => match got {
                    Some(e) => batch.push(e),
                    None => break,
                },
            }
            let linger = tokio::time::sleep(BATCH_LINGER);
            tokio::pin!(linger);
            while batch.len() < BATCH_MAX {
                tokio::select! {
                    got = self.rx.recv() => match got { Some(e) => batch.push(e), None => break },
                    _ = &mut linger => break,
                }
            }
            self.take_overflow(&mut batch);
            self.write_with_retry(&mut batch, &stop).await;
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
                tracing::error!(
                    unwritten = left,
                    "database unavailable at shutdown; request log entries lost"
                );
                self.shared
                    .dropped
                    .fetch_add(left as u64, Ordering::Relaxed);
                return;
            }
        }
        tracing::info!(
            written = self.shared.written.load(Ordering::Relaxed),
            "request log flushed"
        );
    }

    fn overflow_len(&self) -> usize {
        self.shared.overflow.lock().map(|o| o.len()).unwrap_or(0)
    }

    fn take_overflow(&self, batch: &mut Vec<RequestLogEntry>) {
        let mut overflow = self
            .shared
            .overflow
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while batch.len() < BATCH_MAX {
            match overflow.pop_front() {
                Some(e) => batch.push(e),
                None => break,
            }
        }
    }

    /// Retries while running; gives the batch back only once written.
    async fn write_with_retry(&self, batch: &mut Vec<RequestLogEntry>, stop: &CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.store.insert_logs(batch).await {
                Ok(()) => {
                    self.shared
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    return;
                }
                Err(e) => {
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

    async fn flush_until(
        &self,
        batch: &mut Vec<RequestLogEntry>,
        deadline: tokio::time::Instant,
    ) -> bool {
        loop {
            match self.store.insert_logs(batch).await {
                Ok(()) => {
                    self.shared
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    return true;
                }
                Err(e) => {
                    if tokio::time::Instant::now() + Duration::from_millis(250) > deadline {
                        tracing::warn!(error = %e, "request log flush failed");
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}
