//! The HTTP listener: accepting connections under a cap and keeping each one honest.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection cap: 1,100 clients
//! that never finished a request line once took every file descriptor and made `/health` time out.
//! Here, in order:
//! 1. at most `connections.max_connections` are open (lowered to fit the open-file limit); past it
//!    the accept loop waits, and new clients wait in the kernel's backlog, with one log line;
//! 2. accept errors (out of descriptors) back off instead of spinning;
//! 3. each connection is watched ([`ConnState`]): a request's headers must arrive within
//!    `header_read_timeout` (from the first byte, or from the accept for a new connection), and a
//!    keep-alive connection may wait `idle_timeout` for its next request; a connection with a
//!    request in flight is never cut by either;
//! 4. a write blocked for `write_timeout` (a client that stopped reading) fails the connection
//!    ([`ConnIo`]), so an unread answer cannot pin its memory;
//! 5. at most `connections.max_in_flight` requests on `/v1` run at once (streams included until
//!    their last byte); past it they get 503 with `retry-after` in their protocol's error shape.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use llm_proxy_core::config::ConnectionLimits;
use llm_proxy_core::unified::WireProtocol;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::conn_io::ConnIo;
use crate::error::ApiError;

/// File descriptors kept back from the connection cap: upstream connections, the database, Redis,
/// log files.
const RESERVED_FDS: u64 = 128;
/// Longest pause of the accept loop after an accept error.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// At most one "connection limit reached" line per this period.
const CAP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Requests in flight on `/v1`, against `connections.max_in_flight`.
pub struct InFlight {
    count: AtomicUsize,
    max: usize,
}

impl InFlight {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { count: AtomicUsize::new(0), max })
    }

    fn try_acquire(self: &Arc<Self>) -> Option<InFlightSlot> {
        let before = self.count.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlightSlot(self.clone()))
    }

    pub fn current(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

struct InFlightSlot(Arc<InFlight>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection cap that fits the process's open-file limit: the configured one, or the soft
/// limit (raised to the hard limit first) less [`RESERVED_FDS`], whichever is lower.
pub fn effective_max_connections(configured: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the open-file limit");
            return configured;
        }
    };
    let fits = limit.saturating_sub(RESERVED_FDS.max(limit / 8)).max(1);
    let cap = configured.min(usize::try_from(fits).unwrap_or(usize::MAX));
    if cap < configured {
        tracing::warn!(
            configured,
            open_file_limit = limit,
            max_connections = cap,
            "connections.max_connections lowered to fit the open-file limit (raise it with `ulimit -n`)"
        );
    }
    cap
}

/// Serves `router` on `listener` until `graceful` fires, then stops accepting and waits for the
/// open connections to finish their requests and close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    in_flight: Arc<InFlight>,
    graceful: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(effective_max_connections(limits.max_connections)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Timeouts are the watchdog's (below), which knows whether a request is in flight.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    let mut backoff = Duration::ZERO;
    let mut last_cap_log: Option<Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if last_cap_log.is_none_or(|t| t.elapsed() >= CAP_LOG_EVERY) {
                    last_cap_log = Some(Instant::now());
                    tracing::warn!(
                        open = connections.len(),
                        "connection limit reached (connections.max_connections); new clients wait until one closes"
                    );
                }
                tokio::select! {
                    () = graceful.cancelled() => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            () = graceful.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::ZERO;
                a
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of descriptors or memory: retrying at once would spin. Wait, doubling.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = graceful.cancelled() => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        // Stream chunks are small writes; without TCP_NODELAY Nagle's algorithm holds each one
        // back until the client acknowledges the previous (about 40 ms per chunk).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (router, builder, in_flight, graceful) =
            (router.clone(), builder.clone(), in_flight.clone(), graceful.clone());
        connections.spawn(async move {
            serve_connection(tcp, peer, router, &builder, limits, in_flight, graceful).await;
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Errors that concern one half-open connection only (the next accept can go ahead).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted)
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    in_flight: Arc<InFlight>,
    graceful: CancellationToken,
) {
    let state = Arc::new(ConnState::new());
    let io = ConnIo::new(tcp, state.clone(), limits.write_timeout);
    let conn_state = state.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let active = conn_state.begin();
        let (router, in_flight) = (router.clone(), in_flight.clone());
        async move {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let path = req.uri().path();
            let slot = if path.starts_with("/v1/") {
                match in_flight.try_acquire() {
                    Some(slot) => Some(slot),
                    None => {
                        let protocol = protocol_of(path);
                        return Ok::<_, Infallible>(tracked(
                            overloaded(protocol, in_flight.max),
                            (active, None::<InFlightSlot>),
                        ));
                    }
                }
            } else {
                None
            };
            let resp = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(tracked(resp, (active, slot)))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    loop {
        let deadline = state.deadline(&limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = graceful.cancelled(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(deadline) => {
                if let Some(why) = state.expired(&limits) {
                    tracing::debug!(%peer, reason = why, "closing connection");
                    return;
                }
            }
        }
    }
}

/// The client's protocol, judged from the path, for errors answered before any handler runs.
pub fn protocol_of(path: &str) -> WireProtocol {
    if path.starts_with("/v1/messages") { WireProtocol::Anthropic } else { WireProtocol::OpenAi }
}

fn overloaded(protocol: WireProtocol, max: usize) -> Response {
    let mut resp = ApiError::overloaded(max).into_response_for(protocol);
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// `resp` with `guard` dropped only when hyper is done with its body (after the last byte of a
/// stream, or when the connection fails).
fn tracked<G: Send + Sync + Unpin + 'static>(resp: Response, guard: G) -> Response {
    resp.map(|body| Body::new(Tracked { body, _guard: guard }))
}

struct Tracked<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> http_body::Body for Tracked<G> {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// What the watchdog of one connection knows: requests in flight, and since when it has been idle
/// or reading a request's head. Times are milliseconds since the connection was accepted, plus one
/// (0 = not set).
pub struct ConnState {
    origin: Instant,
    active: AtomicUsize,
    served: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
}

impl ConnState {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            active: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    fn at(&self, stamp: u64) -> Instant {
        self.origin + Duration::from_millis(stamp.saturating_sub(1))
    }

    /// Bytes arrived; with no request in flight they start the next request's head.
    pub fn on_read(&self) {
        if self.active.load(Ordering::Relaxed) == 0 && self.head_started.load(Ordering::Relaxed) == 0 {
            self.head_started.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A request's head is complete and its handler starts; the guard ends it.
    fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    /// When to look again.
    fn deadline(&self, limits: &ConnectionLimits) -> Instant {
        if self.active.load(Ordering::Acquire) > 0 {
            return Instant::now() + limits.idle_timeout;
        }
        if self.served.load(Ordering::Relaxed) == 0 {
            return self.origin + limits.header_read_timeout;
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => self.at(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout,
            started => self.at(started) + limits.header_read_timeout,
        }
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, limits: &ConnectionLimits) -> Option<&'static str> {
        if self.active.load(Ordering::Acquire) > 0 || Instant::now() < self.deadline(limits) {
            return None;
        }
        let reading = self.served.load(Ordering::Relaxed) == 0 || self.head_started.load(Ordering::Relaxed) != 0;
        Some(if reading { "request headers not received within connections.header_read_timeout_secs" } else { "idle" })
    }
}

struct ActiveRequest(Arc<ConnState>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since.store(s.now(), Ordering::Relaxed);
        s.head_started.store(0, Ordering::Relaxed);
        s.active.fetch_sub(1, Ordering::AcqRel);
    }
}
