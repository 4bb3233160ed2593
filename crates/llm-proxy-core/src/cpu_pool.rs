//! Where CPU-heavy steps run: tokenizing, and decoding or translating big bodies.
//!
//! The async workers must never spend seconds on one request (two 9 MB token counts once stalled
//! `/health` for five seconds). Small inputs still run inline — a hop to another thread costs more
//! than they do — and big ones run on tokio's blocking threads, at most one per core at a time, so
//! a burst of huge requests queues here instead of taking every thread and all the memory at once.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// Inputs smaller than this run inline on the calling worker (well under a millisecond of work).
pub const INLINE_BYTES: usize = 64 * 1024;

/// How many heavy jobs run at once: one per core.
static PERMITS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// The runtime went away before the job could run (only during shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the runtime is shutting down")]
pub struct PoolClosed;

/// Runs `job`, inline when `size` (bytes of input it works on) is small, else on a blocking thread
/// once one of the pool's permits is free. A panic in `job` resumes in the caller.
pub async fn run<T, F>(size: usize, job: F) -> Result<T, PoolClosed>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if size < INLINE_BYTES {
        return Ok(job());
    }
    let _permit = PERMITS.acquire().await.map_err(|_| PoolClosed)?;
    match tokio::task::spawn_blocking(job).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(PoolClosed),
    }
}

/// Detached jobs not yet finished; shutdown waits for them ([`drain`]).
static DETACHED: AtomicUsize = AtomicUsize::new(0);

/// Runs `job` from synchronous code (a `Drop`) without blocking the caller: on a blocking thread
/// when a runtime is current, else right here (there are no async workers to protect then).
pub fn detach(job: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            DETACHED.fetch_add(1, Ordering::AcqRel);
            // Dropping the handle detaches the job; it still runs to the end.
            drop(rt.spawn_blocking(move || {
                struct Done;
                impl Drop for Done {
                    fn drop(&mut self) {
                        DETACHED.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                let _done = Done;
                job();
            }));
        }
        Err(_) => job(),
    }
}

/// Waits (up to `within`) for detached jobs to finish: at shutdown, before the request log's
/// last flush, since such a job may still be about to record a row.
pub async fn drain(within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while DETACHED.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn small_jobs_run_inline_and_big_ones_elsewhere() {
        let here = std::thread::current().id();
        let small = run(10, move || std::thread::current().id()).await.unwrap();
        assert_eq!(small, here);
        let big = run(INLINE_BYTES, move || std::thread::current().id()).await.unwrap();
        assert_ne!(big, here);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn detached_jobs_run_off_the_caller() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let here = std::thread::current().id();
        detach(move || {
            let _ = tx.send(std::thread::current().id());
        });
        assert_ne!(rx.await.unwrap(), here);
    }
}
