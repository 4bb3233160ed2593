//! The load generators: a closed loop (N workers, each sending its next request when the last one
//! finished), an open loop at a fixed rate, and a batch of slow streams held open at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::Result;

/// The response header in which the gateway names the upstream model that served a request.
pub const SERVED_BY: &str = "x-llm-proxy-model";
/// A response header the gateway sends only when the request counted against a requests-per-minute
/// limit: its presence shows that a key's limits were checked.
pub const RATE_LIMIT_HEADER: &str = "x-ratelimit-limit-requests";

/// Where a run sends its requests.
#[derive(Clone)]
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub key: String,
}

/// What a run sends: one chat completion (or Responses API) body, streaming or not.
#[derive(Clone)]
pub struct Request {
    pub body: String,
    /// What a complete answer holds: a stream's last event, or a body's main field.
    pub complete: &'static str,
}

impl Request {
    pub fn chat(model: &str, stream: bool) -> Self {
        let mut body = json!({
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello to the overhead benchmark."}],
        });
        if stream {
            // Asked of both targets, so the mock sends the same chunks either way (the usage chunk
            // included) whether or not the gateway would add it.
            body["stream_options"] = json!({"include_usage": true});
        }
        Self { body: body.to_string(), complete: if stream { "data: [DONE]" } else { "\"choices\"" } }
    }

    /// The same question as `chat`, to `POST /v1/responses`.
    pub fn responses(model: &str, stream: bool) -> Self {
        let body = json!({"model": model, "stream": stream, "input": "Say hello to the overhead benchmark."});
        let complete = if stream { "event: response.completed" } else { "\"output\"" };
        Self { body: body.to_string(), complete }
    }
}

/// One measured run: latencies of the successful requests, sorted, in microseconds.
#[derive(Default)]
pub struct Run {
    pub latencies_us: Vec<u64>,
    pub wall: Duration,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Open loop only: how late each request left against its schedule, sorted, in microseconds.
    pub send_lag_us: Vec<u64>,
    /// Closed loop only: successful responses per value of `x-llm-proxy-model` (the upstream model
    /// that served), every one counted; empty when no response carried it (the mock's own).
    pub served_by: BTreeMap<String, u64>,
    /// Closed loop only: successful responses that carried `x-ratelimit-limit-requests`.
    pub rate_limited: u64,
}

impl Run {
    fn new(n: usize) -> Self {
        Self {
            latencies_us: Vec::with_capacity(n),
            wall: Duration::ZERO,
            errors: 0,
            first_error: None,
            send_lag_us: Vec::new(),
            served_by: BTreeMap::new(),
            rate_limited: 0,
        }
    }

    /// Counts one response served by `model`. Allocates only the first time a model is seen.
    fn count_served(&mut self, model: &str) {
        match self.served_by.get_mut(model) {
            Some(n) => *n += 1,
            None => {
                self.served_by.insert(model.to_string(), 1);
            }
        }
    }

    fn add_error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    pub fn ok(&self) -> usize {
        self.latencies_us.len()
    }

    /// Nearest-rank percentile of the latencies, in microseconds.
    pub fn pct(&self, q: f64) -> u64 {
        pct(&self.latencies_us, q)
    }

    pub fn rps(&self) -> f64 {
        self.ok() as f64 / self.wall.as_secs_f64()
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "requests_per_sec": (self.rps() * 10.0).round() / 10.0,
            "p50_us": self.pct(0.50), "p90_us": self.pct(0.90), "p99_us": self.pct(0.99),
            "max_us": self.pct(1.0), "ok": self.ok(), "errors": self.errors,
            "first_error": self.first_error, "wall_ms": self.wall.as_millis() as u64,
        });
        if !self.send_lag_us.is_empty() {
            v["send_lag_us"] = json!({"p50": pct(&self.send_lag_us, 0.5), "p99": pct(&self.send_lag_us, 0.99),
                                      "max": pct(&self.send_lag_us, 1.0)});
        }
        if !self.served_by.is_empty() {
            v["served_by"] = json!(self.served_by);
        }
        if self.rate_limited > 0 {
            v["with_rate_limit_headers"] = json!(self.rate_limited);
        }
        v
    }
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len();
    if n == 0 {
        return 0;
    }
    sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
}

/// When a closed loop stops sending.
#[derive(Clone, Copy)]
pub enum Stop {
    After(usize),
    /// Counted from the start of the run.
    For(Duration),
}

/// Sends requests from `concurrency` workers, each sending its next one when the last finished,
/// until `stop`; times each to its last body byte.
pub async fn closed_loop(
    client: &reqwest::Client,
    target: &Target,
    req: &Request,
    concurrency: usize,
    stop: Stop,
) -> Run {
    let sent = Arc::new(AtomicUsize::new(0));
    // A JoinSet aborts its tasks when dropped, so a cancelled run leaves no request in flight.
    let mut workers = JoinSet::new();
    let start = Instant::now();
    let deadline = match stop {
        Stop::For(d) => start + d,
        Stop::After(_) => start,
    };
    for _ in 0..concurrency {
        let (client, sent, req) = (client.clone(), sent.clone(), req.clone());
        let (url, key) = (target.url.clone(), target.key.clone());
        workers.spawn(async move {
            let mut run = Run::new(1024);
            loop {
                let more = match stop {
                    Stop::After(n) => sent.fetch_add(1, Ordering::Relaxed) < n,
                    Stop::For(_) => Instant::now() < deadline,
                };
                if !more {
                    return run;
                }
                let t = Instant::now();
                match one(&client, &url, &key, &req).await {
                    Ok(answer) => {
                        run.latencies_us.push(t.elapsed().as_micros() as u64);
                        if let Some(model) = answer.served_by.as_ref().and_then(|v| v.to_str().ok()) {
                            run.count_served(model);
                        }
                        run.rate_limited += u64::from(answer.rate_limited);
                    }
                    Err(e) => run.add_error(e.to_string()),
                }
            }
        });
    }
    let mut run = Run::new(0);
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(part) => {
                run.latencies_us.extend(part.latencies_us);
                run.errors += part.errors;
                run.first_error = run.first_error.or(part.first_error);
                for (model, n) in part.served_by {
                    *run.served_by.entry(model).or_insert(0) += n;
                }
                run.rate_limited += part.rate_limited;
            }
            Err(e) => run.add_error(format!("worker: {e}")),
        }
    }
    run.wall = start.elapsed();
    run.latencies_us.sort_unstable();
    run
}

/// Sends `n` requests to each of `targets` at `rate` per second per target, on a fixed schedule
/// (open loop), each in its own task so a slow answer never delays the next send. Latency runs from
/// the *scheduled* send time, so a stalled sender shows up in the figures instead of hiding (no
/// coordinated omission). Returns one run per target.
///
/// The targets take turns, evenly spaced (with two at 500 req/s each: one request every 1 ms,
/// direct and gateway alternating), so both see the same machine at the same moments: noise that
/// comes and goes lands on both instead of skewing their difference.
///
/// The schedule is kept by a plain thread sleeping to each send time: tokio's timer has a 1 ms
/// resolution, which would offset every send by a different fraction of a millisecond.
pub async fn open_loop(client: &reqwest::Client, targets: &[&Target], req: &Request, rate: f64, n: usize) -> Vec<Run> {
    type Outcome = (usize, Result<u64, String>, u64);
    let count = targets.len();
    let period = Duration::from_secs_f64(1.0 / (rate * count as f64));
    let (tx, mut rx) = mpsc::unbounded_channel::<tokio::task::JoinHandle<Outcome>>();
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let handle = tokio::runtime::Handle::current();
    let (client, req, stopped) = (client.clone(), req.clone(), stop.0.clone());
    let ends: Vec<(Arc<str>, Arc<str>)> =
        targets.iter().map(|t| (Arc::from(t.url.as_str()), Arc::from(t.key.as_str()))).collect();
    let start = Instant::now() + Duration::from_millis(5);
    std::thread::spawn(move || {
        for k in 0..n * count {
            let due = start + period * k as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if stopped.load(Ordering::Relaxed) {
                return;
            }
            let i = k % count;
            let (client, req, (url, key)) = (client.clone(), req.clone(), ends[i].clone());
            let task = handle.spawn(async move {
                let lag = Instant::now().saturating_duration_since(due).as_micros() as u64;
                let outcome = one(&client, &url, &key, &req).await.map_err(|e| e.to_string());
                (i, outcome.map(|_| due.elapsed().as_micros() as u64), lag)
            });
            if tx.send(task).is_err() {
                return;
            }
        }
    });
    let mut tasks = Vec::with_capacity(n * count);
    // Ends when the scheduling thread has sent everything and dropped its sender.
    while let Some(task) = rx.recv().await {
        tasks.push(task);
    }
    let mut runs: Vec<Run> = (0..count).map(|_| Run::new(n)).collect();
    for task in tasks {
        match task.await {
            Ok((i, Ok(latency), lag)) => {
                runs[i].latencies_us.push(latency);
                runs[i].send_lag_us.push(lag);
            }
            Ok((i, Err(e), _)) => runs[i].add_error(e),
            Err(e) => runs[0].add_error(format!("task: {e}")),
        }
    }
    for run in &mut runs {
        run.wall = start.elapsed();
        run.latencies_us.sort_unstable();
        run.send_lag_us.sort_unstable();
    }
    runs
}

/// Tells the scheduling thread to stop when the run is dropped (timeout, Ctrl-C).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Streams held open at once: their tasks (dropping them closes every stream) and how opening went.
pub struct HeldStreams {
    /// Keeps reading each stream until dropped.
    pub tasks: JoinSet<()>,
    /// Streams whose first chunk arrived.
    pub open: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// From the first send until the last stream got its first chunk (or `within` ran out).
    pub all_open_after: Duration,
}

/// Sends `n` streaming requests at once on their own connections and waits, up to `within`, until
/// each has received its first chunk. The streams stay open, read as they come, until the returned
/// tasks are dropped.
pub async fn open_streams(target: &Target, req: &Request, n: usize, within: Duration) -> Result<HeldStreams> {
    // Its own client: one connection per stream, none kept for reuse afterwards, no total timeout
    // (the streams are dropped, not finished).
    let client =
        reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(0).connect_timeout(within).build()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for _ in 0..n {
        let (client, tx) = (client.clone(), tx.clone());
        let (url, key, body) = (target.url.clone(), target.key.clone(), req.body.clone());
        tasks.spawn(async move {
            let first = async {
                let mut resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if resp.status() != 200 {
                    return Err(format!("HTTP {}", resp.status()).into());
                }
                resp.chunk().await?.ok_or("the stream ended before its first chunk")?;
                Ok::<_, crate::Error>(resp)
            };
            match first.await {
                Ok(mut resp) => {
                    let _ = tx.send(Ok(()));
                    while let Ok(Some(_)) = resp.chunk().await {}
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    }
    drop(tx);
    let mut held = HeldStreams { tasks, open: 0, errors: 0, first_error: None, all_open_after: Duration::ZERO };
    let deadline = tokio::time::Instant::now() + within;
    while held.open + held.errors < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(()))) => held.open += 1,
            Ok(Some(Err(e))) => {
                held.errors += 1;
                held.first_error.get_or_insert(e);
            }
            Ok(None) => break,
            Err(_) => {
                held.first_error.get_or_insert(format!("not open within {} s", within.as_secs()));
                break;
            }
        }
    }
    held.all_open_after = start.elapsed();
    Ok(held)
}

/// What a successful response said about how the gateway served it.
struct Answer {
    /// `x-llm-proxy-model`, if any (a shared slice of the read buffer: no copy).
    served_by: Option<HeaderValue>,
    /// Whether it carried `x-ratelimit-limit-requests`.
    rate_limited: bool,
}

/// One chat completion, read to the end and checked just enough to know it succeeded.
async fn one(client: &reqwest::Client, url: &str, key: &str, req: &Request) -> Result<Answer> {
    let resp = client
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(req.body.clone())
        .send()
        .await?;
    let status = resp.status();
    let served_by = resp.headers().get(SERVED_BY).cloned();
    let rate_limited = resp.headers().contains_key(RATE_LIMIT_HEADER);
    let bytes = resp.bytes().await?;
    let text = String::from_utf8_lossy(&bytes);
    if status != 200 {
        return Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()).into());
    }
    if !text.contains(req.complete) {
        return Err(format!("incomplete body: {}", text.chars().take(200).collect::<String>()).into());
    }
    Ok(Answer { served_by, rate_limited })
}
