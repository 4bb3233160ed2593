//! The processes a run starts — mock upstreams and the gateway, each pinned to one CPU with
//! `taskset` when asked — and the temp directory they use. Every process is killed by PID when its
//! `Proc` is dropped, which happens on every exit path.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Result;

/// A child process killed (SIGKILL to its PID) when dropped. Nothing it leaves behind matters: its
/// state lives in the bench's temp dir.
pub struct Proc {
    child: Child,
    pub pid: u32,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Result<Self> {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let child = cmd.kill_on_drop(true).spawn().map_err(|e| format!("starting {program}: {e}"))?;
        let pid = child.id().ok_or("child exited at once")?;
        Ok(Self { child, pid })
    }

    /// Kills the process and waits (up to 5 s) until it is gone, so that it spends no CPU time in
    /// what is measured next.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // tokio reaps a killed child in the background; the bench exits soon after anyway.
        let _ = self.child.start_kill();
    }
}

/// A temp directory removed when dropped (declared before the processes using it, so it goes last).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Result<Self> {
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

/// A command for `bin`, run on CPU `cpu` only when given. `taskset` execs the program, so the PID of
/// the child is the program's.
fn pinned(bin: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(cpu.to_string()).arg(bin);
            cmd
        }
        None => Command::new(bin),
    }
}

/// Pins this process to `cpu`. Called before any thread exists, so every thread the bench starts
/// later (the tokio workers included) inherits it.
pub fn pin_self(cpu: usize) -> Result<()> {
    set_cpus(std::process::id(), &cpu.to_string())
}

/// Lets every thread of `pid` run on the CPUs in `list` (`taskset -a -p -c LIST PID`); new threads
/// inherit it.
pub fn set_cpus(pid: u32, list: &str) -> Result<()> {
    let out = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", list, &pid.to_string()])
        .output()
        .map_err(|e| format!("running taskset (util-linux), needed to pin processes to CPUs; or pass --no-pin: {e}"))?;
    if !out.status.success() {
        return Err(format!("taskset -a -p -c {list} {pid}: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(())
}

/// The key the gateway sends upstream, and the only Anthropic key the mocks accept: a translated
/// request that lost its `x-api-key` fails instead of being measured.
pub const UPSTREAM_KEY: &str = "sk-bench-upstream";

/// Starts `llm-proxy-mock 127.0.0.1:0` and returns it with the address it listens on.
pub async fn start_mock(bin: &Path, cpu: Option<usize>) -> Result<(Proc, String)> {
    let mut mock = Proc::spawn(
        pinned(bin, cpu)
            .args(["127.0.0.1:0", "--anthropic-key", UPSTREAM_KEY])
            .stdout(Stdio::piped())
            // It lists its base URLs there, which would land amid the figures.
            .stderr(Stdio::null())
            .stdin(Stdio::null()),
    )?;
    let stdout = mock.child.stdout.take().ok_or("mock stdout")?;
    let mut first_line = String::new();
    tokio::time::timeout(Duration::from_secs(10), BufReader::new(stdout).read_line(&mut first_line))
        .await
        .map_err(|_| "the mock did not say where it listens within 10 s")??;
    let addr = first_line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected mock output {first_line:?}"))?
        .to_string();
    Ok((mock, addr))
}

/// The provider through which the gateway reaches the mock with the OpenAI protocol.
pub const OPENAI_PROVIDER: &str = "mock";
/// The same mock, as a server of the Responses API too (`responses_api`): Responses clients pass
/// through to it.
pub const RESPONSES_PROVIDER: &str = "mock-responses";

/// A route of the gateway's config: the model name clients send, and the models of
/// `OPENAI_PROVIDER` it spreads requests over, each with its weight (`strategy: weighted`).
pub struct WeightedRoute<'a> {
    pub name: &'a str,
    pub targets: &'a [(&'a str, u32)],
}

/// What a gateway's config says. Two gateways of one run differ only by `name` (their config file
/// and SQLite database in the temp dir), `port` and `redis_url`.
pub struct GatewayConfig<'a> {
    /// `<name>.yaml` and `<name>.db` in the temp dir.
    pub name: &'a str,
    pub port: u16,
    /// The mock both providers point at.
    pub mock_addr: &'a str,
    /// The models `OPENAI_PROVIDER` offers.
    pub models: &'a [&'a str],
    /// A second provider at the same mock, with the Anthropic protocol (so the gateway translates).
    pub anthropic_provider: &'a str,
    /// A route over models of `OPENAI_PROVIDER`.
    pub route: &'a WeightedRoute<'a>,
    /// Cluster mode: rate limits and budgets counted on this Redis instead of in process.
    pub redis_url: Option<&'a str>,
}

impl GatewayConfig<'_> {
    /// Writes the config into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let config = dir.join(format!("{}.yaml", self.name));
        let targets: Vec<String> = self
            .route
            .targets
            .iter()
            .map(|(model, weight)| format!("{{ model: {OPENAI_PROVIDER}/{model}, weight: {weight} }}"))
            .collect();
        let redis = self.redis_url.map_or(String::new(), |url| format!("redis_url: \"{url}\"\n"));
        // Health checks off: background probes would land in the measured CPU time. Request logging
        // is always on: every request is written to the SQLite database.
        std::fs::write(
            &config,
            format!(
                r#"listen_addr: 127.0.0.1:{port}
log_level: warn
database_url: "sqlite://{db}"
{redis}master_key: bench-master-key-0123456789
health_check: {{ enabled: false }}
providers:
  {OPENAI_PROVIDER}:
    protocol: openai
    base_url: http://{mock_addr}/v1
    api_key: {UPSTREAM_KEY}
    models: [{models}]
  # No model list: `{anthropic_provider}/<model>` goes upstream as `<model>`, and the bare names
  # above stay `{OPENAI_PROVIDER}`'s alone (listed by both, they would be ambiguous).
  {anthropic_provider}:
    protocol: anthropic
    base_url: http://{mock_addr}
    api_key: {UPSTREAM_KEY}
  {RESPONSES_PROVIDER}:
    protocol: openai
    base_url: http://{mock_addr}/v1
    api_key: {UPSTREAM_KEY}
    responses_api: true
routes:
  - name: {route_name}
    strategy: weighted
    targets: [{targets}]
"#,
                port = self.port,
                db = dir.join(format!("{}.db", self.name)).display(),
                mock_addr = self.mock_addr,
                models = self.models.join(", "),
                anthropic_provider = self.anthropic_provider,
                route_name = self.route.name,
                targets = targets.join(", "),
            ),
        )?;
        Ok(config)
    }
}

/// The environment variable that would override the config's `redis_url`: removed for every
/// gateway command, so only the config decides whether a gateway counts on Redis.
const REDIS_URL_ENV: &str = "LLM_PROXY_REDIS_URL";

/// Creates a virtual key named `name` with `llm-proxy keys create --json` and the extra arguments
/// `limits` (`--rpm N`, …), before the gateway starts, so its key ring loads it at once.
pub async fn create_key(gateway_bin: &Path, config: &Path, name: &str, limits: &[String]) -> Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(gateway_bin)
            .args(["keys", "create", "--name", name])
            .args(limits)
            .args(["--json", "--config"])
            .arg(config)
            .env_remove(REDIS_URL_ENV)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "`llm-proxy keys create` took over 30 s")?
    .map_err(|e| format!("running {}: {e}", gateway_bin.display()))?;
    if !out.status.success() {
        return Err(format!("keys create failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let created: Value = serde_json::from_slice(&out.stdout)?;
    Ok(created["key"].as_str().ok_or("no `key` in keys create output")?.to_string())
}

/// Starts `llm-proxy serve` with `workers` runtime threads, its stderr going to `log`, and waits
/// until `/health` answers 200.
pub async fn start_gateway(
    bin: &Path,
    config: &Path,
    cpu: Option<usize>,
    workers: usize,
    log: &Path,
    health_url: &str,
) -> Result<Proc> {
    let mut gateway = Proc::spawn(
        pinned(bin, cpu)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("LLM_PROXY_WORKERS", workers.to_string())
            .env_remove(REDIS_URL_ENV)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .stdin(Stdio::null()),
    )?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = gateway.child.try_wait()? {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("the gateway exited ({status}) before becoming healthy:\n{log}").into());
        }
        if let Ok(r) = client.get(health_url).send().await
            && r.status() == 200
        {
            return Ok(gateway);
        }
        if Instant::now() > deadline {
            return Err("the gateway did not answer /health within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
