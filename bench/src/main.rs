//! The overhead benchmark: the same requests sent straight to the mock upstream (DIRECT) and through
//! `llm-proxy` in front of that mock (GATEWAY), in one run, so the difference is what the gateway
//! adds. Measures the gateway's CPU time per request, the latency it adds at a fixed rate, its
//! throughput on one core, its memory idle and with many streams open, and that streams never
//! stall; prints each figure next to its target with PASS or MISS and writes them all as JSON.
//! What rate limits and budgets cost is measured twice: counted in process, and in cluster mode on
//! a Redis server (which must run on this machine; it is only read from outside, never written).
//! `--memory` runs only the memory scenario instead (`memory.rs`): the peak resident memory of one
//! big request per case against its stated bound, and what a burst leaves behind.
//!
//! Loopback only; every process it starts is killed by PID on every exit path (success, error,
//! timeout, Ctrl-C, panic). Depends on no crate of the workspace: it drives the release binaries as
//! a user would.

mod cluster_run;
mod load;
mod memory;
mod procs;
mod procstat;
mod redis;
mod report;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::{Value, json};

use cluster_run::{ClusterMiss, ClusterRun};
use load::{Request, Run, Stop, Target};
use procs::{GatewayConfig, TempDir};
use procstat::{CpuClock, Measured, Memory, mb, measure};
use report::{Check, group, ms};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Non-streaming chat.
const CHAT_MODEL: &str = "mock-a";
/// A route of the gateway (`strategy: weighted`): the name clients send for it.
const ROUTE: &str = "bench-weighted";
/// Its targets, models of `procs::OPENAI_PROVIDER` with their weights: the chat model and another
/// that the mock answers the same way (its behaviour hangs on markers in the name; neither has
/// one), so a routed request differs from a `chat` one only by the route.
const ROUTE_TARGETS: [(&str, u32); 2] = [(CHAT_MODEL, 3), ("mock-b", 1)];
/// A stream of 20 content chunks, sent as fast as they go.
const STREAM_MODEL: &str = "mock-chunks-20";
/// The provider through which the gateway reaches the same mock with the Anthropic protocol:
/// `ANTHROPIC_PROVIDER/STREAM_MODEL` is the 20-chunk stream, translated (OpenAI request → Anthropic
/// request, Anthropic events → OpenAI chunks).
const ANTHROPIC_PROVIDER: &str = "mock-anthropic";
/// A stream of 30 chunks one second apart: held open, never finished.
const SLOW_MODEL: &str = "mock-slow-1000-chunks-30";
/// The limited key's own limits (`llm-proxy keys create --rpm --tpm --budget-daily`): far above
/// anything a run uses, so nothing is refused and every request pays for the checks.
const KEY_RPM: u64 = 100_000_000;
const KEY_TPM: u64 = 100_000_000_000;
const KEY_BUDGET_DAILY_USD: u64 = 1_000_000_000;
/// How long the idle gateway's CPU time is read over.
const IDLE: Duration = Duration::from_secs(2);

#[derive(Parser)]
#[command(about = "Measure llm-proxy against a direct call to the mock upstream.")]
struct Args {
    /// The `llm-proxy` binary (a release build).
    #[arg(long)]
    gateway_bin: PathBuf,
    /// The `llm-proxy-mock` binary (a release build).
    #[arg(long)]
    mock_bin: PathBuf,
    /// Seconds of each closed-loop run (throughput and CPU per request).
    #[arg(long, default_value_t = 4.0)]
    secs: f64,
    /// Requests in flight at once in the closed-loop runs.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Unmeasured requests before each closed-loop run (connections, caches, allocator).
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Requests per second of the fixed-rate (open-loop) latency runs.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Measured requests per target at that rate.
    #[arg(long, default_value_t = 5000)]
    rate_requests: usize,
    /// 20-chunk streams sent one at a time, per target, to catch stalls between chunks.
    #[arg(long, default_value_t = 200)]
    stall_requests: usize,
    /// Slow streams held open at once through the gateway while its memory is read.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// The gateway's runtime worker threads (LLM_PROXY_WORKERS).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The CPU of the process under test: the gateway, or the mock in the direct runs.
    #[arg(long, default_value_t = 0)]
    sut_cpu: usize,
    /// The CPU of the load generator (this process) and of the mock behind the gateway.
    #[arg(long, default_value_t = 1)]
    load_cpu: usize,
    /// Pin nothing (the throughput figure is then not "on one core").
    #[arg(long)]
    no_pin: bool,
    /// Where the JSON result goes.
    #[arg(long, default_value = "results/latest.json")]
    out: PathBuf,
    /// Free-form label stored with the result (run.sh passes `git describe`).
    #[arg(long, default_value = "")]
    label: String,
    /// The Redis server of the cluster-mode scenario (`redis://host:port`, no password). It must
    /// run on this machine: its CPU time is taken out of `others`. Only read (INFO, MONITOR).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Requests of the cluster-mode gateway watched with MONITOR (after its measured run) to tell
    /// its acquire calls from its settles.
    #[arg(long, default_value_t = 2000)]
    redis_sample: usize,
    /// Run only the memory scenario (see bench/README.md): peak RSS of one big request per case
    /// against the stated bound, and RSS after a burst. Its JSON goes beside `--out`, as
    /// `memory.json`.
    #[arg(long)]
    memory: bool,
    /// The memory scenario's request body, in MB.
    #[arg(long, default_value_t = 10.0)]
    memory_body_mb: f64,
    /// Seconds of quiet after the memory scenario's burst before RSS is read.
    #[arg(long, default_value_t = 5.0)]
    memory_idle_secs: f64,
    /// Stop everything and fail after this many seconds.
    #[arg(long, default_value_t = 170)]
    max_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    // The CPUs this process may use before it pins itself: the latency runs get them all back.
    let all_cpus = match procstat::own_cpus() {
        Ok(list) => list,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Before the runtime exists, so all its threads inherit the CPU.
    if !args.no_pin
        && let Err(e) = procs::pin_self(args.load_cpu)
    {
        eprintln!("bench: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `bench` on timeout or Ctrl-C drops its `Proc`s, which kills the children.
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(args.max_secs), chosen(&args, cpus, &all_cpus)) => {
                r.unwrap_or_else(|_| Err(format!("gave up after {} s", args.max_secs).into()))
            }
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The memory scenario when asked for, else the overhead benchmark.
async fn chosen(args: &Args, cpus: usize, all_cpus: &str) -> Result<()> {
    if !args.memory {
        return bench(args, cpus, all_cpus).await;
    }
    let out = args.out.with_file_name("memory.json");
    let opts = memory::Options {
        gateway_bin: &args.gateway_bin,
        mock_bin: &args.mock_bin,
        body_mb: args.memory_body_mb,
        idle_secs: args.memory_idle_secs,
        out: &out,
    };
    if memory::run(&opts).await? { Ok(()) } else { Err("peak memory over the stated bound".into()) }
}

/// Fails on the first error of a warm-up: the measured figures would mean nothing.
fn warmed(run: Run, what: &str) -> Result<()> {
    match run.first_error {
        Some(e) => Err(format!("{what} warm-up: {e}").into()),
        None => Ok(()),
    }
}

async fn bench(args: &Args, cpus: usize, all_cpus: &str) -> Result<()> {
    if args.concurrency == 0
        || args.rate_requests == 0
        || args.stall_requests == 0
        || args.streams == 0
        || args.redis_sample == 0
    {
        return Err("counts and --concurrency must be positive".into());
    }
    // Each held stream is a socket in this process, two in the gateway and one in the mock.
    let fds_needed = 2 * args.streams as u64 + 512;
    if let Some(limit) = procstat::open_files_limit()?
        && limit < fds_needed
    {
        return Err(format!(
            "{} streams need about {fds_needed} open files per process; `ulimit -n` is {limit} (run.sh raises it)",
            args.streams
        )
        .into());
    }
    let (sut_cpu, load_cpu) = if args.no_pin { (None, None) } else { (Some(args.sut_cpu), Some(args.load_cpu)) };
    let redis = redis::Redis::from_url(&args.redis_url)?;

    // Declaration order is drop order reversed: processes first, then the directory.
    let dir = TempDir::new()?;
    let (direct_mock, direct_addr) = procs::start_mock(&args.mock_bin, sut_cpu).await?;
    let (upstream, upstream_addr) = procs::start_mock(&args.mock_bin, load_cpu).await?;
    // A free port: bind :0, read it, release it. The gateway binds it a moment later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut models = vec![CHAT_MODEL, STREAM_MODEL, SLOW_MODEL];
    models.extend(ROUTE_TARGETS.iter().map(|t| t.0).filter(|m| *m != CHAT_MODEL));
    let route = procs::WeightedRoute { name: ROUTE, targets: &ROUTE_TARGETS };
    let gateway_config = GatewayConfig {
        name: "gateway",
        port,
        mock_addr: &upstream_addr,
        models: &models,
        anthropic_provider: ANTHROPIC_PROVIDER,
        route: &route,
        redis_url: None,
    };
    let config = gateway_config.write(&dir.0)?;
    let key = procs::create_key(&args.gateway_bin, &config, "bench", &[]).await?;
    let key_limits = [
        "--rpm".to_string(),
        KEY_RPM.to_string(),
        "--tpm".into(),
        KEY_TPM.to_string(),
        "--budget-daily".into(),
        KEY_BUDGET_DAILY_USD.to_string(),
    ];
    let limited_key = procs::create_key(&args.gateway_bin, &config, "bench-limited", &key_limits).await?;
    let gateway_url = format!("http://127.0.0.1:{port}");
    let gateway_log = dir.0.join("gateway.stderr");
    let gateway = procs::start_gateway(
        &args.gateway_bin,
        &config,
        sut_cpu,
        args.workers,
        &gateway_log,
        &format!("{gateway_url}/health"),
    )
    .await?;
    let clock = CpuClock::new(&[direct_mock.pid, upstream.pid, gateway.pid]);
    // Idle: memory after start-up, and what the gateway burns doing nothing (timers, tasks).
    let idle = measure(&clock, &[gateway.pid], async {
        tokio::time::sleep(IDLE).await;
        Run::default()
    })
    .await?;
    let idle_cpu_pct = idle.cpu[0].as_secs_f64() / idle.window.as_secs_f64() * 100.0;
    let mem_idle = Memory::of(gateway.pid)?;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let direct = Target {
        name: "direct",
        url: format!("http://{direct_addr}/v1/chat/completions"),
        // The mock's OpenAI endpoint ignores it; sent so both requests carry the same headers.
        key: procs::UPSTREAM_KEY.into(),
    };
    let via = Target { name: "gateway", url: format!("{gateway_url}/v1/chat/completions"), key };
    let placement = match (sut_cpu, load_cpu) {
        (Some(s), Some(l)) => format!(
            "CPU {s}: the process under test alone (the gateway; the direct mock in direct runs). \
             CPU {l}: this load generator and the mock behind the gateway. The fixed-rate and held-stream \
             runs unpin everything (CPUs {all_cpus}), as in a deployment."
        ),
        _ => "nothing pinned: every process shares every CPU".into(),
    };
    println!("\nllm-proxy overhead ({} CPUs; this tool runs on CPU {})", cpus, procstat::own_cpus()?);
    println!("{placement}");
    println!(
        "gateway: auth on (virtual key), request logging on (SQLite), {} worker thread(s); idle: RSS {:.1} MB, CPU {:.1}% of a core",
        args.workers,
        mb(mem_idle.rss_kib),
        idle_cpu_pct,
    );
    println!(
        "(`others`: CPU time of processes this bench did not start, and hypervisor steal, in % of one CPU: \
         noise when above a few %)\n"
    );
    // 1. Closed loop: throughput on one core and CPU time per request.
    let chat = Request::chat(CHAT_MODEL, false);
    let routed = Request::chat(ROUTE, false);
    let stream20 = Request::chat(STREAM_MODEL, true);
    let translated_model = format!("{ANTHROPIC_PROVIDER}/{STREAM_MODEL}");
    let translated = Request::chat(&translated_model, true);
    let responses_model = format!("{}/{CHAT_MODEL}", procs::RESPONSES_PROVIDER);
    let responses = Request::responses(&responses_model, false);
    let responses_translated = Request::responses(&translated_model, true);
    println!(
        "closed loop: {} in flight, {} s per run (CPU µs/request of the process under test)",
        args.concurrency, args.secs
    );
    let me = std::process::id();
    // Watched: the process under test, this load generator, the mock behind the gateway.
    let direct_run = (&direct, vec![direct_mock.pid, me]);
    let gateway_run = (&via, vec![gateway.pid, me, upstream.pid]);
    let limited_via = Target { key: limited_key, ..via.clone() };
    let limited_gateway_run = (&limited_via, vec![gateway.pid, me, upstream.pid]);
    let via_responses = Target { url: format!("{gateway_url}/v1/responses"), ..via.clone() };
    let responses_run = (&via_responses, vec![gateway.pid, me, upstream.pid]);
    let mut closed = ClosedLoop { args, client: &client, clock: &clock, rows: Vec::new(), noisiest: 0.0, failed: 0 };
    let chat_runs = closed.scenario("chat", &chat, &[&direct_run, &gateway_run]).await?;
    // Right after the single-model chat, so the two gateway figures see the same machine.
    // Gateway only: a route is the gateway's.
    let routed_run = closed.scenario("chat routed", &routed, &[&gateway_run]).await?.remove(0);
    // The same question through the Responses API, passed through to the mock's /v1/responses.
    let responses_pass = closed.scenario("responses", &responses, &[&responses_run]).await?.remove(0);
    // The same gateway and request as chat, with a key whose limits it checks for every request.
    let limited_run = closed.scenario("chat limited (in-process)", &chat, &[&limited_gateway_run]).await?.remove(0);
    // The same with the limits on Redis: another gateway, started (and stopped) for this run only.
    // The second gateway's own free port.
    let cluster_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cluster = cluster_run::run(
        args,
        cluster_run::Setup {
            redis: &redis,
            config: GatewayConfig {
                name: "gateway-redis",
                port: cluster_port,
                redis_url: Some(&args.redis_url),
                ..gateway_config
            },
            dir: &dir.0,
            key_limits: &key_limits,
            client: &client,
            request: &chat,
            started: &[direct_mock.pid, upstream.pid, gateway.pid],
            upstream: upstream.pid,
        },
    )
    .await;
    if let Ok(c) = &cluster {
        closed.row("chat limited (Redis)", "gateway", &c.measured);
        closed.failed += c.sample_errors;
    }
    let stream_runs = closed.scenario("stream-20", &stream20, &[&direct_run, &gateway_run]).await?;
    // Right after the passthrough streams, so the two gateway figures see the same machine.
    // Gateway only: the client speaks OpenAI, the mock behind the gateway Anthropic.
    let translated_run = closed.scenario("stream-20 translated", &translated, &[&gateway_run]).await?.remove(0);
    // A Responses client onto the Anthropic upstream: translated both ways.
    let responses_translated_run =
        closed.scenario("stream-20 responses translated", &responses_translated, &[&responses_run]).await?.remove(0);
    let ClosedLoop { mut rows, mut noisiest, mut failed, .. } = closed;
    report::table(
        &[
            "scenario",
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "CPU µs/req",
            "CPU busy",
            "client µs/req",
            "upstream µs/req",
            "others",
        ],
        &[0, 1],
        &rows,
    );
    let single = &chat_runs[1];
    let split = verdict::Split::of(&routed_run.run, &ROUTE_TARGETS);
    let route_targets: Vec<String> =
        ROUTE_TARGETS.iter().map(|(m, w)| format!("{}/{m} (weight {w})", procs::OPENAI_PROVIDER)).collect();
    let routed_diff = routed_run.cpu_us_per_req(0) - single.cpu_us_per_req(0);
    println!(
        "  (chat routed: model {ROUTE}, the same request as chat to a weighted route over {}; gateway CPU \
         {:.1} µs/request against {:.1} single-model: {}; served by x-llm-proxy-model: {split})",
        route_targets.join(" and "),
        routed_run.cpu_us_per_req(0),
        single.cpu_us_per_req(0),
        signed_diff(routed_diff, single.cpu_us_per_req(0)),
    );
    // The figure would be one model's behind a route's name: an error, reported with the rest.
    let unserved = split.unserved();
    if let Some(why) = &unserved {
        println!("  chat routed: ERROR: {why}; the routed figure does not measure a route");
    }
    let key_desc = format!(
        "a key limited to {} requests/min, {} tokens/min and ${}/day",
        group(KEY_RPM as f64, 0),
        group(KEY_TPM as f64, 0),
        group(KEY_BUDGET_DAILY_USD as f64, 0)
    );
    let limited_diff = limited_run.cpu_us_per_req(0) - single.cpu_us_per_req(0);
    println!(
        "  (chat limited (in-process): the chat request with {key_desc}, counted in process; gateway CPU {:.1} \
         µs/request against {:.1} chat: {}; {} of {} responses carried {})",
        limited_run.cpu_us_per_req(0),
        single.cpu_us_per_req(0),
        signed_diff(limited_diff, single.cpu_us_per_req(0)),
        group(limited_run.run.rate_limited as f64, 0),
        group(limited_run.run.ok() as f64, 0),
        load::RATE_LIMIT_HEADER,
    );
    match &cluster {
        Ok(c) => print_cluster(c, &args.redis_url, single, &limited_run),
        Err(miss) => println!("  (chat limited (Redis): not run: {})", miss.reason),
    }
    println!(
        "  (stream-20 translated: model {translated_model}, OpenAI client → gateway → the mock's Anthropic \
         /v1/messages; the gateway translates the request and every event)"
    );
    println!(
        "  (responses: model {responses_model}, POST /v1/responses passed through to the mock's /v1/responses; \
         stream-20 responses translated: model {translated_model}, Responses client → the mock's Anthropic \
         /v1/messages)"
    );

    // 2. Streams one at a time: any stall between chunks shows as ≥ 40 ms.
    let mut stall = Vec::new();
    rows.clear();
    for target in [&direct, &via] {
        let run = load::closed_loop(&client, target, &stream20, 1, Stop::After(args.stall_requests)).await;
        failed += run.errors;
        rows.push(vec![
            target.name.to_string(),
            ms(run.pct(0.5)),
            ms(run.pct(0.99)),
            ms(run.pct(1.0)),
            run.errors.to_string(),
        ]);
        stall.push(run);
    }
    println!("\n20-chunk streams one at a time, {} per target", args.stall_requests);
    report::table(&["target", "p50 ms", "p99 ms", "max ms", "errors"], &[0], &rows);

    // 3. Open loop at a fixed rate: the latency the gateway adds. Unpinned from here on: with the
    // client and the upstream mock forced onto one CPU, and the gateway's request-log writer onto
    // its worker's, each would wait for the other, adding latency no deployment would see.
    if !args.no_pin {
        for pid in [std::process::id(), gateway.pid, upstream.pid, direct_mock.pid] {
            procs::set_cpus(pid, all_cpus)?;
        }
    }
    // Direct and gateway requests alternate in one run; see `open_loop`.
    let pair = [&direct, &via];
    let warm = load::open_loop(&client, &pair, &chat, args.rate, (args.rate as usize / 2).max(1)).await;
    for (run, target) in warm.into_iter().zip(pair) {
        warmed(run, &format!("fixed-rate via {}", target.name))?;
    }
    let both = load::open_loop(&client, &pair, &chat, args.rate, args.rate_requests);
    let (runs, spent) = procstat::measure_each(&clock, &[direct_mock.pid, gateway.pid], both).await?;
    let fixed: Vec<_> = runs.into_iter().enumerate().map(|(i, run)| spent.split(i, run)).collect();
    rows.clear();
    for (m, target) in fixed.iter().zip(pair) {
        failed += m.run.errors;
        rows.push(vec![
            target.name.to_string(),
            ms(m.run.pct(0.5)),
            ms(m.run.pct(0.9)),
            ms(m.run.pct(0.99)),
            ms(m.run.pct(1.0)),
            m.run.errors.to_string(),
            ms(load::pct(&m.run.send_lag_us, 0.99)),
            format!("{:.1}", m.cpu_us_per_req(0)),
            format!("{:.0}%", m.others_pct()),
        ]);
    }
    noisiest = noisiest.max(fixed[0].others_pct());
    println!(
        "\nchat at a fixed {} req/s per target, {} each, direct and gateway alternating (latency from the scheduled send time)",
        args.rate, args.rate_requests
    );
    report::table(
        &["target", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "send lag p99", "CPU µs/req", "others"],
        &[0],
        &rows,
    );

    // 4. Memory with many slow streams open through the gateway.
    let slow = Request::chat(SLOW_MODEL, true);
    let held = load::open_streams(&via, &slow, args.streams, Duration::from_secs(30)).await?;
    // Every stream passes at least one more chunk (a second apart) before memory is read.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mem_streams = Memory::of(gateway.pid)?;
    drop(held.tasks);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_after = Memory::of(gateway.pid)?;
    failed += args.streams - held.open;
    println!(
        "\n{} slow streams through the gateway: {} open after {} ms{}",
        args.streams,
        held.open,
        held.all_open_after.as_millis(),
        held.first_error.as_ref().map_or(String::new(), |e| format!(" (first error: {e})"))
    );
    rows.clear();
    for (when, m) in [("idle", mem_idle), ("streams open", mem_streams), ("streams closed", mem_after)] {
        rows.push(vec![
            when.to_string(),
            format!("{:.1}", mb(m.rss_kib)),
            format!("{:.1}", mb(m.hwm_kib)),
            m.threads.to_string(),
            m.fds.to_string(),
        ]);
    }
    report::table(&["gateway", "RSS MB", "peak MB", "threads", "open fds"], &[0], &rows);

    // The verdict.
    let figures = verdict::Figures {
        chat: [&chat_runs[0], &chat_runs[1]],
        routed: &routed_run,
        split: &split,
        limited: &limited_run,
        cluster: &cluster,
        stream: [&stream_runs[0], &stream_runs[1]],
        translated: &translated_run,
        responses: &responses_pass,
        responses_translated: &responses_translated_run,
        fixed: [&fixed[0].run, &fixed[1].run],
        alone: [&stall[0], &stall[1]],
        rss_idle_kib: mem_idle.rss_kib,
        rss_streams_kib: mem_streams.rss_kib,
        streams: args.streams,
        concurrency: args.concurrency,
        rate: args.rate,
        noisiest,
    };
    let (checks, notes) = (verdict::checks(&figures), verdict::notes(&figures));
    println!("\nresult ({})", if args.label.is_empty() { "unlabelled" } else { &args.label });
    report::print_checks(&checks);
    for note in &notes {
        println!("  * {note}");
    }
    print_log("the gateway", &std::fs::read_to_string(&gateway_log).unwrap_or_default());
    if let Ok(c) = &cluster {
        print_log("the Redis-backed gateway", &c.log);
    }

    let [cd, cg] = figures.chat;
    let [sd, sg] = figures.stream;
    let [fd, fg] = figures.fixed;
    let added = |q: f64| fg.pct(q) as i64 - fd.pct(q) as i64;
    let memory_json: Vec<Value> = [("idle", mem_idle), ("streams_open", mem_streams), ("streams_closed", mem_after)]
        .iter()
        .map(|(when, m)| {
            json!({"when": when, "rss_kib": m.rss_kib, "hwm_kib": m.hwm_kib, "threads": m.threads, "fds": m.fds})
        })
        .collect();
    let result = json!({
        "label": args.label,
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        "cpus": cpus,
        "pinning": if args.no_pin { Value::Null } else { json!({"sut_cpu": args.sut_cpu, "load_cpu": args.load_cpu}) },
        "options": {
            "secs": args.secs, "concurrency": args.concurrency, "warmup": args.warmup, "rate": args.rate,
            "rate_requests": args.rate_requests, "stall_requests": args.stall_requests,
            "streams": args.streams, "gateway_workers": args.workers,
            "redis_url": args.redis_url, "redis_sample": args.redis_sample,
        },
        "closed_loop": [
            {"scenario": "chat", "model": CHAT_MODEL,
             "direct": cd.to_json(&["mock", "client"]), "gateway": cg.to_json(&["gateway", "client", "upstream_mock"])},
            {"scenario": "chat-routed", "model": ROUTE,
             "route": {"strategy": "weighted", "targets": ROUTE_TARGETS.iter().map(|(m, w)| {
                 json!({"model": format!("{}/{m}", procs::OPENAI_PROVIDER), "weight": w})
             }).collect::<Vec<_>>()},
             "split": split.to_json(),
             "vs_single_model": {
                 "single_model_gateway_cpu_us_per_request": (cg.cpu_us_per_req(0) * 10.0).round() / 10.0,
                 "routed_gateway_cpu_us_per_request": (routed_run.cpu_us_per_req(0) * 10.0).round() / 10.0,
                 "difference_us": (routed_diff * 10.0).round() / 10.0,
             },
             "direct": Value::Null, "gateway": routed_run.to_json(&["gateway", "client", "upstream_mock"])},
            {"scenario": "chat-limited", "model": CHAT_MODEL, "key_limits": key_limits_json(), "counters": "in-process",
             "vs_chat": {
                 "chat_gateway_cpu_us_per_request": (cg.cpu_us_per_req(0) * 10.0).round() / 10.0,
                 "limited_gateway_cpu_us_per_request": (limited_run.cpu_us_per_req(0) * 10.0).round() / 10.0,
                 "difference_us": (limited_diff * 10.0).round() / 10.0,
             },
             "direct": Value::Null, "gateway": limited_run.to_json(&["gateway", "client", "upstream_mock"])},
            cluster_json(&cluster, &args.redis_url, cg, &limited_run),
            {"scenario": "stream-20", "model": STREAM_MODEL,
             "direct": sd.to_json(&["mock", "client"]), "gateway": sg.to_json(&["gateway", "client", "upstream_mock"])},
            {"scenario": "stream-20-translated", "model": translated_model,
             "client_protocol": "openai", "upstream_protocol": "anthropic",
             "direct": Value::Null, "gateway": figures.translated.to_json(&["gateway", "client", "upstream_mock"])},
            {"scenario": "responses", "model": responses_model,
             "client_protocol": "responses", "upstream_protocol": "responses",
             "direct": Value::Null, "gateway": figures.responses.to_json(&["gateway", "client", "upstream_mock"])},
            {"scenario": "stream-20-responses-translated", "model": translated_model,
             "client_protocol": "responses", "upstream_protocol": "anthropic",
             "direct": Value::Null,
             "gateway": figures.responses_translated.to_json(&["gateway", "client", "upstream_mock"])},
        ],
        "stream_one_at_a_time": {"model": STREAM_MODEL, "direct": stall[0].to_json(), "gateway": stall[1].to_json()},
        "fixed_rate": {
            "model": CHAT_MODEL, "rate": args.rate,
            "direct": fixed[0].to_json(&["mock"]), "gateway": fixed[1].to_json(&["gateway"]),
            "added_us": {
                "p50": added(0.5), "p90": added(0.9), "p99": added(0.99),
            },
        },
        "streams_held": {
            "model": SLOW_MODEL, "requested": args.streams, "open": held.open, "errors": held.errors,
            "first_error": held.first_error, "all_open_ms": held.all_open_after.as_millis() as u64,
        },
        "gateway_memory": memory_json,
        "gateway_idle_cpu_pct": (idle_cpu_pct * 10.0).round() / 10.0,
        "other_processes_max_cpu_pct": noisiest.round(),
        "checks": checks.iter().map(Check::to_json).collect::<Vec<_>>(),
        "all_pass": checks.iter().all(Check::pass),
        "notes": notes,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)? + "\n")?;
    println!("\nresult written to {}", args.out.display());
    if failed > 0 {
        return Err(format!("{failed} measured requests failed; the figures are not trustworthy").into());
    }
    if let Some(why) = unserved {
        return Err(format!("the weighted route's {why}: the routed figure does not measure a route").into());
    }
    if let Err(ClusterMiss { reason, unreachable: false }) = &cluster {
        return Err(format!("chat limited (Redis): {reason}").into());
    }
    Ok(())
}

/// The closed-loop runs: each scenario's warm-up and measured run against each of its targets, and
/// the table rows they make.
struct ClosedLoop<'a> {
    args: &'a Args,
    client: &'a reqwest::Client,
    clock: &'a CpuClock,
    rows: Vec<Vec<String>>,
    /// The most CPU other processes used during a measured run, % of one CPU.
    noisiest: f64,
    /// Failed measured requests.
    failed: usize,
}

impl ClosedLoop<'_> {
    /// Runs `req` against each of `runs` (a target and the processes watched: the one under test
    /// first, then this tool and, behind a gateway, the upstream mock), one measured run each.
    async fn scenario(&mut self, name: &str, req: &Request, runs: &[&(&Target, Vec<u32>)]) -> Result<Vec<Measured>> {
        let mut measured = Vec::new();
        for (target, pids) in runs {
            let warm =
                load::closed_loop(self.client, target, req, self.args.concurrency, Stop::After(self.args.warmup)).await;
            warmed(warm, &format!("{name} via {}", target.name))?;
            let stop = Stop::For(Duration::from_secs_f64(self.args.secs));
            let work = load::closed_loop(self.client, target, req, self.args.concurrency, stop);
            let m = measure(self.clock, pids, work).await?;
            self.row(name, target.name, &m);
            measured.push(m);
        }
        Ok(measured)
    }

    /// The table row of one measured run, and its tallies.
    fn row(&mut self, name: &str, target: &str, m: &Measured) {
        self.failed += m.run.errors;
        self.rows.push(vec![
            name.to_string(),
            target.to_string(),
            group(m.run.rps(), 0),
            ms(m.run.pct(0.5)),
            ms(m.run.pct(0.99)),
            ms(m.run.pct(1.0)),
            m.run.errors.to_string(),
            format!("{:.1}", m.cpu_us_per_req(0)),
            format!("{:.0}%", m.busy_pct(0)),
            format!("{:.1}", m.cpu_us_per_req(1)),
            m.cpu.get(2).map_or("-".into(), |_| format!("{:.1}", m.cpu_us_per_req(2))),
            format!("{:.0}%", m.others_pct()),
        ]);
        self.noisiest = self.noisiest.max(m.others_pct());
        if let Some(e) = &m.run.first_error {
            println!("  {name} via {target}: first error: {e}");
        }
    }
}

/// `+1.0 µs, +2.4%`: a CPU difference against `base`.
fn signed_diff(diff: f64, base: f64) -> String {
    format!("{}{diff:.1} µs, {:+.1}%", if diff >= 0.0 { "+" } else { "" }, diff / base * 100.0)
}

/// The first lines a gateway wrote to stderr, if it wrote any.
fn print_log(who: &str, log: &str) {
    if !log.trim().is_empty() {
        let lines: Vec<&str> = log.lines().collect();
        println!(
            "\n{who} wrote {} line(s) to stderr; the first:\n  {}",
            lines.len(),
            lines[..lines.len().min(3)].join("\n  ")
        );
    }
}

/// The line under the closed-loop table for the Redis-backed run.
fn print_cluster(c: &ClusterRun, url: &str, chat: &Measured, limited: &Measured) {
    let cpu = c.measured.cpu_us_per_req(0);
    let requests = c.requests();
    let sample = match &c.split {
        Ok(s) => format!(
            "MONITOR sample of {} requests, the gateway's own commands: acquire {:.3}, settle {:.3} (batched, \
             after the answer), other {:.3} per request",
            group(s.requests as f64, 0),
            s.per_request(s.acquire),
            s.per_request(s.settle),
            s.per_request(s.request_path() - s.acquire),
        ),
        Err(why) => format!("no MONITOR sample: {why}"),
    };
    println!(
        "  (chat limited (Redis): the same key on a second gateway with redis_url {url} (Redis {}), its own \
         SQLite database, started for this run only; gateway CPU {cpu:.1} µs/request against {:.1} limited in \
         process ({}) and {:.1} chat ({}); {} of {} responses carried {}; Redis over the measured run (all its \
         clients): {:.3} script calls and {:.1} µs of server CPU per request, the CPU left out of `others`; \
         {sample})",
        c.redis_version,
        limited.cpu_us_per_req(0),
        signed_diff(cpu - limited.cpu_us_per_req(0), limited.cpu_us_per_req(0)),
        chat.cpu_us_per_req(0),
        signed_diff(cpu - chat.cpu_us_per_req(0), chat.cpu_us_per_req(0)),
        group(c.measured.run.rate_limited as f64, 0),
        group(c.measured.run.ok() as f64, 0),
        load::RATE_LIMIT_HEADER,
        c.server.script_calls() as f64 / requests.max(1) as f64,
        c.server.cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
    );
}

fn key_limits_json() -> Value {
    json!({"rpm": KEY_RPM, "tpm": KEY_TPM, "budget_daily_usd": KEY_BUDGET_DAILY_USD})
}

/// The `closed_loop` entry of the Redis-backed run.
fn cluster_json(cluster: &Result<ClusterRun, ClusterMiss>, url: &str, chat: &Measured, limited: &Measured) -> Value {
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let mut v = json!({
        "scenario": "chat-limited-redis", "model": CHAT_MODEL, "key_limits": key_limits_json(),
        "counters": "redis", "redis_url": url, "direct": Value::Null,
    });
    match cluster {
        Ok(c) => {
            let cpu = c.measured.cpu_us_per_req(0);
            v["redis_version"] = json!(c.redis_version);
            v["vs_chat"] = json!({
                "chat_gateway_cpu_us_per_request": round(chat.cpu_us_per_req(0)),
                "limited_in_process_gateway_cpu_us_per_request": round(limited.cpu_us_per_req(0)),
                "limited_redis_gateway_cpu_us_per_request": round(cpu),
                "difference_to_chat_us": round(cpu - chat.cpu_us_per_req(0)),
                "difference_to_limited_in_process_us": round(cpu - limited.cpu_us_per_req(0)),
            });
            v["redis_measured_run"] = c.server.to_json(c.requests());
            v["redis_sample"] = match &c.split {
                Ok(s) => s.to_json(),
                Err(why) => json!({"error": why}),
            };
            v["gateway"] = c.measured.to_json(&["gateway", "client", "upstream_mock"]);
            v["gateway"]["other_processes_exclude"] = json!("the Redis server's CPU time (INFO cpu)");
        }
        Err(miss) => {
            v["gateway"] = Value::Null;
            v["not_run"] = json!({"reason": miss.reason, "redis_unreachable": miss.unreachable});
        }
    }
    v
}
