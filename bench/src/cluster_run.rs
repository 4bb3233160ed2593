//! The `chat limited (Redis)` scenario: a second gateway in cluster mode (`redis_url`, every limit
//! check one script call on Redis), started only for it, measured like the others (CPU per request
//! on its own core), plus what it asks of Redis per request: script calls over the measured run
//! (`INFO commandstats`, every client's), and, from a sample watched with `MONITOR` afterwards, its
//! own commands split into acquires (on the request path) and settles (batched, off it).

use std::path::Path;
use std::time::Duration;

use crate::load::{self, Request, Run, Stop, Target};
use crate::procs::{self, GatewayConfig};
use crate::procstat::{self, CpuClock, Measured, measure};
use crate::redis::{CallSplit, Redis, ServerStats};
use crate::{Args, Result};

/// How long settles get to reach Redis after the last request (the settle worker sends what has
/// queued at once; this is ample).
const SETTLE_WAIT: Duration = Duration::from_millis(300);

/// What the scenario needs from the rest of the run.
pub struct Setup<'a> {
    pub redis: &'a Redis,
    /// The gateway's config: the other gateway's, with its own name, port and `redis_url`.
    pub config: GatewayConfig<'a>,
    pub dir: &'a Path,
    /// `llm-proxy keys create` arguments for the key's limits.
    pub key_limits: &'a [String],
    pub client: &'a reqwest::Client,
    pub request: &'a Request,
    /// Processes the run started so far (their CPU time is not "others").
    pub started: &'a [u32],
    /// The mock behind the gateway.
    pub upstream: u32,
}

pub struct ClusterRun {
    /// Watched: the gateway, this tool, the upstream mock. `others` leaves out the Redis server's
    /// CPU time (`INFO cpu`), which is part of what is measured here.
    pub measured: Measured,
    /// What Redis counted over the measured run, every client's (the server is shared), the
    /// commands scripts ran included.
    pub server: ServerStats,
    pub redis_version: String,
    /// The gateway's own commands over the `MONITOR` sample; why there are none if the sample
    /// could not be made.
    pub split: Result<CallSplit, String>,
    /// Failed requests of the sample (those of the measured run are in `measured`).
    pub sample_errors: usize,
    /// What the gateway wrote to stderr.
    pub log: String,
}

impl ClusterRun {
    /// Requests the gateway answered in the measured run.
    pub fn requests(&self) -> u64 {
        (self.measured.run.ok() + self.measured.run.errors) as u64
    }
}

/// Why the scenario has no figures.
pub struct ClusterMiss {
    pub reason: String,
    /// Redis did not answer before the gateway was started: this machine lacks it, which is no
    /// fault of the gateway's, so the run does not fail for it.
    pub unreachable: bool,
}

pub async fn run(args: &Args, s: Setup<'_>) -> Result<ClusterRun, ClusterMiss> {
    let version = s
        .redis
        .version()
        .await
        .map_err(|e| ClusterMiss { reason: format!("Redis unreachable: {e}"), unreachable: true })?;
    measured(args, &s, version).await.map_err(|e| ClusterMiss { reason: e.to_string(), unreachable: false })
}

async fn measured(args: &Args, s: &Setup<'_>, redis_version: String) -> Result<ClusterRun> {
    let config = s.config.write(s.dir)?;
    let key = procs::create_key(&args.gateway_bin, &config, "bench-limited", s.key_limits).await?;
    let log = s.dir.join(format!("{}.stderr", s.config.name));
    let url = format!("http://127.0.0.1:{}", s.config.port);
    let gateway = procs::start_gateway(
        &args.gateway_bin,
        &config,
        (!args.no_pin).then_some(args.sut_cpu),
        args.workers,
        &log,
        &format!("{url}/health"),
    )
    .await?;
    let target = Target { name: "gateway", url: format!("{url}/v1/chat/completions"), key };
    let clock = CpuClock::new(&[s.started, &[gateway.pid]].concat());
    let pids = [gateway.pid, std::process::id(), s.upstream];

    let warm = load::closed_loop(s.client, &target, s.request, args.concurrency, Stop::After(args.warmup)).await;
    crate::warmed(warm, "chat limited (Redis) via gateway")?;
    // Read inside the window, after its quiet start: the warm-up's settles have landed by then,
    // and the measured run's land before the reading after it.
    let mut before = None;
    let work = async {
        before = Some(s.redis.stats().await);
        let stop = Stop::For(Duration::from_secs_f64(args.secs));
        load::closed_loop(s.client, &target, s.request, args.concurrency, stop).await
    };
    let mut measured = measure(&clock, &pids, work).await?;
    let server = s.redis.stats().await?.since(&before.ok_or("no Redis reading")??);
    measured.others = measured.others.saturating_sub(server.cpu);

    let mut sample_errors = 0;
    let split = sample(args, s, &target, gateway.pid, &mut sample_errors).await.map_err(|e| e.to_string());
    gateway.stop().await;
    Ok(ClusterRun {
        measured,
        server,
        redis_version,
        split,
        sample_errors,
        log: std::fs::read_to_string(&log).unwrap_or_default(),
    })
}

/// Watches the gateway's commands with `MONITOR` over one request sent alone (its first script call
/// is the acquire) and `--redis-sample` more at the run's concurrency. Not part of the measured run:
/// `MONITOR` costs the server and this tool CPU time for every command.
async fn sample(args: &Args, s: &Setup<'_>, target: &Target, gateway: u32, errors: &mut usize) -> Result<CallSplit> {
    let mut ports = procstat::tcp_ports_to(gateway, s.redis.port)?;
    let monitor = s.redis.monitor().await?;
    let lone = load::closed_loop(s.client, target, s.request, 1, Stop::After(1)).await;
    tokio::time::sleep(SETTLE_WAIT).await;
    let burst = load::closed_loop(s.client, target, s.request, args.concurrency, Stop::After(args.redis_sample)).await;
    tokio::time::sleep(SETTLE_WAIT).await;
    let commands = monitor.finish(s.redis).await?;
    // A connection made during the sample (a reconnection) counts too.
    ports.extend(procstat::tcp_ports_to(gateway, s.redis.port)?);
    if ports.is_empty() {
        return Err(format!("the gateway has no connection to port {}", s.redis.port).into());
    }
    let answered = |r: &Run| (r.ok() + r.errors) as u64;
    let requests = answered(&lone) + answered(&burst);
    *errors = lone.errors + burst.errors;
    if let Some(e) = lone.first_error.or(burst.first_error) {
        return Err(format!("{} request(s) of the sample failed; the first: {e}", *errors).into());
    }
    Ok(CallSplit::of(&commands, &ports, requests)?)
}
