//! The overhead benchmark: the same requests sent straight to the mock upstream (DIRECT) and through
//! `llm-proxy` in front of that mock (GATEWAY), in one run, so the difference is what the gateway
//! adds. Reports throughput, latency percentiles, the added latency, the gateway's CPU time per
//! request and its memory. Loopback only; every process it starts is killed by PID on every exit
//! path (success, error, timeout, Ctrl-C, panic). Depends on no crate of the workspace: it drives the
//! release binaries as a user would.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

/// Quiet time around each measured run (see its use).
const SETTLE: Duration = Duration::from_millis(300);

#[derive(Parser)]
#[command(about = "Measure llm-proxy against a direct call to the mock upstream.")]
struct Args {
    /// The `llm-proxy` binary (a release build).
    #[arg(long)]
    gateway_bin: PathBuf,
    /// The `llm-proxy-mock` binary (a release build).
    #[arg(long)]
    mock_bin: PathBuf,
    /// Measured requests per scenario and target.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Requests in flight at once (closed loop: each worker sends its next request on completion).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Unmeasured requests per scenario and target first (connections, caches, allocator).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Where the JSON result goes.
    #[arg(long, default_value = "results/latest.json")]
    out: PathBuf,
    /// Free-form label stored with the result (run.sh passes `git describe`).
    #[arg(long, default_value = "")]
    label: String,
    /// Stop everything and fail after this many seconds.
    #[arg(long, default_value_t = 150)]
    max_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Dropping `bench` on timeout or Ctrl-C drops its `Proc`s, which kills the children.
    let outcome = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(args.max_secs), bench(&args)) => {
            r.unwrap_or_else(|_| Err(format!("gave up after {} s", args.max_secs).into()))
        }
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A child process killed (SIGKILL to its PID) and reaped when dropped. Nothing it leaves behind
/// matters: its state lives in the bench's temp dir.
struct Proc {
    child: Child,
    pid: u32,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Result<Self> {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let child = cmd.kill_on_drop(true).spawn().map_err(|e| format!("starting {program}: {e}"))?;
        let pid = child.id().ok_or("child exited at once")?;
        Ok(Self { child, pid })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // tokio reaps a killed child in the background; the bench exits soon after anyway.
        let _ = self.child.start_kill();
    }
}

/// A temp directory removed when dropped (declared before the processes using it, so it goes last).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let path = std::env::temp_dir().join(format!("llm-proxy-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a run sends its requests.
struct Target {
    name: &'static str,
    url: String,
    key: String,
}

/// One measured run: latencies of the successful requests, sorted, in microseconds.
struct Run {
    latencies_us: Vec<u64>,
    wall: Duration,
    errors: usize,
    first_error: Option<String>,
}

impl Run {
    /// Nearest-rank percentile.
    fn pct(&self, q: f64) -> u64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.latencies_us[rank - 1]
    }

    fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.wall.as_secs_f64()
    }

    fn to_json(&self) -> Value {
        json!({
            "requests_per_sec": (self.rps() * 10.0).round() / 10.0,
            "p50_us": self.pct(0.50), "p90_us": self.pct(0.90), "p99_us": self.pct(0.99),
            "max_us": self.pct(1.0), "ok": self.latencies_us.len(), "errors": self.errors,
            "first_error": self.first_error,
        })
    }
}

async fn bench(args: &Args) -> Result<()> {
    if args.requests == 0 || args.concurrency == 0 {
        return Err("--requests and --concurrency must be positive".into());
    }
    // Declaration order is drop order reversed: gateway, then mock, then the directory.
    let dir = TempDir::new()?;

    let mut mock =
        Proc::spawn(Command::new(&args.mock_bin).arg("127.0.0.1:0").stdout(Stdio::piped()).stdin(Stdio::null()))?;
    let stdout = mock.child.stdout.take().ok_or("mock stdout")?;
    let mut first_line = String::new();
    tokio::time::timeout(Duration::from_secs(10), BufReader::new(stdout).read_line(&mut first_line))
        .await
        .map_err(|_| "the mock did not say where it listens within 10 s")??;
    let mock_addr = first_line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected mock output {first_line:?}"))?
        .to_string();

    // A free port: bind :0, read it, release it. The gateway binds it a moment later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.0.join("llm-proxy.yaml");
    // Health checks off: background probes would land in the measured CPU time.
    std::fs::write(
        &config,
        format!(
            r#"listen_addr: 127.0.0.1:{port}
log_level: warn
database_url: "sqlite://{db}"
master_key: bench-master-key-0123456789
health_check: {{ enabled: false }}
providers:
  mock:
    protocol: openai
    base_url: http://{mock_addr}/v1
    api_key: sk-bench-upstream
    models: [mock-a]
"#,
            db = dir.0.join("bench.db").display()
        ),
    )?;

    // The key exists before the gateway starts, so its key ring loads it at once.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(&args.gateway_bin)
            .args(["keys", "create", "--name", "bench", "--json", "--config"])
            .arg(&config)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "`llm-proxy keys create` took over 30 s")?
    .map_err(|e| format!("running {}: {e}", args.gateway_bin.display()))?;
    if !out.status.success() {
        return Err(format!("keys create failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let created: Value = serde_json::from_slice(&out.stdout)?;
    let key = created["key"].as_str().ok_or("no `key` in keys create output")?;

    let mut gateway = Proc::spawn(
        Command::new(&args.gateway_bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stdin(Stdio::null()),
    )?;
    let gateway_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    wait_healthy(&client, &format!("{gateway_url}/health"), &mut gateway).await?;
    let mem_idle = memory(gateway.pid)?;
    let ticks_per_sec = clock_ticks();

    let targets = [
        Target {
            name: "direct",
            url: format!("http://{mock_addr}/v1/chat/completions"),
            // The mock ignores it; sent so both requests carry the same headers.
            key: "sk-bench-upstream".into(),
        },
        Target { name: "gateway", url: format!("{gateway_url}/v1/chat/completions"), key: key.to_string() },
    ];

    let mut scenarios = Vec::new();
    let mut failed = 0;
    println!(
        "\nllm-proxy overhead: {} requests per target, concurrency {}, warm-up {}, {} CPUs (client, mock and gateway share them)\n",
        args.requests,
        args.concurrency,
        args.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<12} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "scenario", "target", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    for (name, stream) in [("chat", false), ("chat-stream", true)] {
        let body = json!({
            "model": "mock-a",
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello to the overhead benchmark."}],
        })
        .to_string();

        let mut runs = Vec::new();
        let mut cpu_us_per_req = 0.0;
        for target in &targets {
            let warm = load(&client, target, &body, stream, args.warmup, args.concurrency).await;
            if let Some(e) = warm.first_error {
                return Err(format!("{name} warm-up via {}: {e}", target.name).into());
            }
            // Settle before and after the measured run: the request-log writer lingers 50 ms
            // before writing a batch, so the warm-up's rows are written before the CPU window
            // opens and the measured run's rows are written before it closes.
            tokio::time::sleep(SETTLE).await;
            let cpu_before = cpu_ticks(gateway.pid)?;
            let run = load(&client, target, &body, stream, args.requests, args.concurrency).await;
            if target.name == "gateway" {
                tokio::time::sleep(SETTLE).await;
                let ticks = cpu_ticks(gateway.pid)? - cpu_before;
                cpu_us_per_req = ticks as f64 * 1e6 / ticks_per_sec as f64 / args.requests as f64;
            }
            print_row(name, target.name, &run);
            failed += run.errors;
            runs.push(run);
        }
        let (direct, gw) = (&runs[0], &runs[1]);
        let added = |q: f64| gw.pct(q) as i64 - direct.pct(q) as i64;
        println!(
            "{:<12} {:<8} {:>9} {:>+9.3} {:>+9.3} {:>+9.3}",
            name,
            "added",
            "",
            added(0.5) as f64 / 1000.0,
            added(0.9) as f64 / 1000.0,
            added(0.99) as f64 / 1000.0
        );
        println!(
            "{:<12} {:<8} gateway CPU {cpu_us_per_req:.0} µs/request, throughput {:.0}% of direct\n",
            name,
            "",
            gw.rps() / direct.rps() * 100.0
        );
        scenarios.push(json!({
            "name": name, "stream": stream,
            "direct": direct.to_json(), "gateway": gw.to_json(),
            "added_us": {"p50": added(0.5), "p90": added(0.9), "p99": added(0.99)},
            "gateway_cpu_us_per_request": cpu_us_per_req.round(),
        }));
    }
    let mem_loaded = memory(gateway.pid)?;
    println!(
        "gateway memory: idle RSS {:.1} MiB; after load RSS {:.1} MiB, peak RSS {:.1} MiB",
        mem_idle.0 as f64 / 1024.0,
        mem_loaded.0 as f64 / 1024.0,
        mem_loaded.1 as f64 / 1024.0
    );

    let result = json!({
        "label": args.label,
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "requests": args.requests, "concurrency": args.concurrency, "warmup": args.warmup,
        "scenarios": scenarios,
        "gateway_memory_kib": {
            "idle_rss": mem_idle.0, "idle_hwm": mem_idle.1,
            "loaded_rss": mem_loaded.0, "loaded_hwm": mem_loaded.1,
        },
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)? + "\n")?;
    println!("result written to {}", args.out.display());
    if failed > 0 {
        return Err(format!("{failed} measured requests failed; the figures are not trustworthy").into());
    }
    Ok(())
}

fn print_row(scenario: &str, target: &str, run: &Run) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{:<12} {:<8} {:>9.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7}",
        scenario,
        target,
        run.rps(),
        ms(run.pct(0.5)),
        ms(run.pct(0.9)),
        ms(run.pct(0.99)),
        ms(run.pct(1.0)),
        run.errors
    );
    if let Some(e) = &run.first_error {
        println!("    first error: {e}");
    }
}

/// Polls `/health` until it answers 200, failing fast if the gateway exits.
async fn wait_healthy(client: &reqwest::Client, url: &str, gateway: &mut Proc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = gateway.child.try_wait()? {
            return Err(format!("the gateway exited ({status}) before becoming healthy").into());
        }
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the gateway did not answer /health within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `n` requests from `concurrency` workers and times each to its last body byte.
async fn load(
    client: &reqwest::Client,
    target: &Target,
    body: &str,
    stream: bool,
    n: usize,
    concurrency: usize,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    // A JoinSet aborts its tasks when dropped, so a cancelled run leaves no request in flight.
    let mut workers = JoinSet::new();
    let start = Instant::now();
    for _ in 0..concurrency.min(n) {
        let (client, next) = (client.clone(), next.clone());
        let (url, key, body) = (target.url.clone(), target.key.clone(), body.to_string());
        workers.spawn(async move {
            let mut ok = Vec::with_capacity(n / concurrency + 1);
            let mut errors = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let t = Instant::now();
                match one(&client, &url, &key, &body, stream).await {
                    Ok(()) => ok.push(t.elapsed().as_micros() as u64),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (ok, errors)
        });
    }
    let mut run = Run { latencies_us: Vec::with_capacity(n), wall: Duration::ZERO, errors: 0, first_error: None };
    while let Some(joined) = workers.join_next().await {
        let (ok, errors) = joined.unwrap_or_else(|e| (Vec::new(), vec![format!("worker: {e}")]));
        run.latencies_us.extend(ok);
        run.errors += errors.len();
        run.first_error = run.first_error.or(errors.into_iter().next());
    }
    run.wall = start.elapsed();
    run.latencies_us.sort_unstable();
    run
}

/// One chat completion, read to the end and checked just enough to know it succeeded.
async fn one(client: &reqwest::Client, url: &str, key: &str, body: &str, stream: bool) -> Result<()> {
    let resp = client
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    let text = String::from_utf8_lossy(&bytes);
    if status != 200 {
        return Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()).into());
    }
    let complete = if stream { text.contains("data: [DONE]") } else { text.contains("\"choices\"") };
    if !complete {
        return Err(format!("incomplete body: {}", text.chars().take(200).collect::<String>()).into());
    }
    Ok(())
}

/// User + system CPU time of `pid`, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')').ok_or("bad /proc stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at indices 11 and 12.
    let utime: u64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second, as `getconf CLK_TCK` says; 100 (the Linux default) if it cannot.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// (VmRSS, VmHWM) of `pid` in KiB: resident memory now and its peak.
fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?;
    let field = |name: &str| -> Result<u64> {
        let line =
            status.lines().find(|l| l.starts_with(name)).ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(line[name.len()..].trim().trim_end_matches("kB").trim().parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
