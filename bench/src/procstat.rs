//! What `/proc` says about a process: CPU time, memory, threads, open files, CPU affinity.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Result;
use crate::load::Run;

/// Quiet time around each CPU-measured run (see `measure`).
const SETTLE: Duration = Duration::from_millis(300);

/// User + system CPU time of `pid`, all its threads (live and exited), in clock ticks: fields 14 and
/// 15 of /proc/<pid>/stat.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
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
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Reads the CPU time of some processes, and of everything else on the machine, before and after a
/// stretch of work.
pub struct CpuClock {
    ticks_per_sec: u64,
    /// This process and every process it started: the rest of the machine's CPU time (and steal)
    /// is noise.
    ours: Vec<u32>,
}

/// CPU times at one moment, in ticks.
pub struct Reading {
    procs: Vec<u64>,
    others: u64,
    at: Instant,
}

/// CPU time spent between a reading and now.
pub struct Spent {
    /// By each watched process.
    pub procs: Vec<Duration>,
    /// By processes this bench did not start (a build, another benchmark) and by the hypervisor
    /// (steal): noise in every figure.
    pub others: Duration,
    /// The wall time in between.
    pub window: Duration,
}

impl Spent {
    /// The share of it that belongs to `run`, served by watched process `i`.
    pub fn split(&self, i: usize, run: Run) -> Measured {
        Measured { run, cpu: vec![self.procs[i]], others: self.others, window: self.window }
    }
}

impl CpuClock {
    pub fn new(started: &[u32]) -> Self {
        let mut ours = vec![std::process::id()];
        ours.extend(started);
        Self { ticks_per_sec: clock_ticks(), ours }
    }

    /// The CPU time of each of `pids` so far, and of the processes not ours.
    pub fn read(&self, pids: &[u32]) -> Result<Reading> {
        let procs = pids.iter().map(|&pid| cpu_ticks(pid)).collect::<Result<Vec<_>>>()?;
        let ours = self.ours.iter().map(|&pid| cpu_ticks(pid)).sum::<Result<u64>>()?;
        Ok(Reading { procs, others: machine_ticks()?.saturating_sub(ours), at: Instant::now() })
    }

    /// CPU time spent since `before`, read with the same `pids`.
    pub fn since(&self, pids: &[u32], before: &Reading) -> Result<Spent> {
        let after = self.read(pids)?;
        let d = |a: u64, b: u64| Duration::from_secs_f64(a.saturating_sub(b) as f64 / self.ticks_per_sec as f64);
        Ok(Spent {
            procs: after.procs.iter().zip(&before.procs).map(|(a, b)| d(*a, *b)).collect(),
            others: d(after.others, before.others),
            window: before.at.elapsed(),
        })
    }
}

/// User and system time of all processes on the machine so far, plus the time the hypervisor took
/// from its virtual CPUs (steal), in clock ticks (the `cpu` line of /proc/stat). Interrupt time is
/// left out: processes are not charged for it either, and the bench's own loopback traffic causes
/// most of it.
fn machine_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).ok_or("no cpu line in /proc/stat")?;
    let f: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal ...
    let field = |i: usize| f.get(i).copied().ok_or("short cpu line in /proc/stat");
    Ok(field(0)? + field(1)? + field(2)? + field(7).unwrap_or(0))
}

/// A process's memory and size, from /proc/<pid>/status and /proc/<pid>/fd.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// Resident memory now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident memory so far (VmHWM), KiB.
    pub hwm_kib: u64,
    pub threads: u64,
    /// Open file descriptors (sockets included).
    pub fds: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field =
            |name: &str| -> Result<u64> { Ok(status_field(&status, name)?.trim_end_matches("kB").trim().parse()?) };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
        Ok(Self { rss_kib: field("VmRSS")?, hwm_kib: field("VmHWM")?, threads: field("Threads")?, fds })
    }
}

/// The local ports of `pid`'s TCP connections to port `remote_port` (at any address): its sockets
/// are the `socket:[INODE]` links in /proc/<pid>/fd, and /proc/<pid>/net/tcp and tcp6 list every
/// connection of its network namespace with its inode. A server that logs its clients by address
/// (Redis's `MONITOR`) can then tell this process's commands from everyone else's.
pub fn tcp_ports_to(pid: u32, remote_port: u16) -> Result<Vec<u16>> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        // A descriptor closed between listing and reading is simply not a connection any more.
        let Ok(target) = std::fs::read_link(fd?.path()) else { continue };
        if let Some(inode) = target.to_str().and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')) {
            inodes.insert(inode.to_string());
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else { continue };
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …;
        // addresses are hex `ADDR:PORT`, the port in host order.
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| addr.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if let (Some(local), Some(remote), Some(inode)) = (f.get(1), f.get(2), f.get(9))
                && port(remote) == Some(remote_port)
                && inodes.contains(*inode)
                && let Some(p) = port(local)
            {
                ports.push(p);
            }
        }
    }
    Ok(ports)
}

/// Megabytes (10^6 bytes, as the targets are written) from KiB.
pub fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// The CPUs this process may run on (`Cpus_allowed_list`, e.g. `0-1` or `1`).
pub fn own_cpus() -> Result<String> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(status_field(&status, "Cpus_allowed_list")?.to_string())
}

/// This process's soft limit on open files (`ulimit -n`); `None` when unlimited.
pub fn open_files_limit() -> Result<Option<u64>> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).ok_or("no open-files limit in /proc")?;
    let soft = line["Max open files".len()..].split_whitespace().next().ok_or("bad /proc/self/limits")?;
    Ok(soft.parse().ok())
}

/// The value of `Name:` in a /proc status file.
fn status_field<'a>(status: &'a str, name: &str) -> Result<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .ok_or_else(|| format!("no {name} in /proc status").into())
}

/// A run with the CPU time each watched process spent on it.
pub struct Measured {
    pub run: Run,
    /// CPU time of each watched process.
    pub cpu: Vec<Duration>,
    /// CPU time of processes not ours during the run, and the time it was read over.
    pub others: Duration,
    pub window: Duration,
}

impl Measured {
    /// CPU time of watched process `i` per successful request, in µs.
    pub fn cpu_us_per_req(&self, i: usize) -> f64 {
        self.cpu[i].as_secs_f64() * 1e6 / self.run.ok().max(1) as f64
    }

    /// How busy watched process `i` kept a CPU during the run, in percent.
    pub fn busy_pct(&self, i: usize) -> f64 {
        self.cpu[i].as_secs_f64() / self.run.wall.as_secs_f64() * 100.0
    }

    /// How busy processes not ours kept the machine during the run, in percent of one CPU.
    pub fn others_pct(&self) -> f64 {
        self.others.as_secs_f64() / self.window.as_secs_f64() * 100.0
    }

    pub fn to_json(&self, names: &[&str]) -> Value {
        let mut v = self.run.to_json();
        v["other_processes_cpu_pct"] = json!(self.others_pct().round());
        for (i, name) in names.iter().enumerate() {
            v[format!("{name}_cpu_us_per_request")] = json!((self.cpu_us_per_req(i) * 10.0).round() / 10.0);
            v[format!("{name}_cpu_busy_pct")] = json!(self.busy_pct(i).round());
        }
        v
    }
}

/// Runs `work` and reads the CPU time `pids` spent on it. The settle time before and after lets
/// earlier work finish first and this work's tail land inside the window: the request-log writer
/// lingers 50 ms before writing a batch.
pub async fn measure(clock: &CpuClock, pids: &[u32], work: impl Future<Output = Run>) -> Result<Measured> {
    let (mut runs, spent) = measure_each(clock, pids, async { vec![work.await] }).await?;
    let run = runs.pop().ok_or("no run")?;
    Ok(Measured { cpu: spent.procs, others: spent.others, window: spent.window, run })
}

/// Like `measure`, for work producing one run per watched process (`Spent::split` pairs them).
pub async fn measure_each(
    clock: &CpuClock,
    pids: &[u32],
    work: impl Future<Output = Vec<Run>>,
) -> Result<(Vec<Run>, Spent)> {
    tokio::time::sleep(SETTLE).await;
    let before = clock.read(pids)?;
    let runs = work.await;
    tokio::time::sleep(SETTLE).await;
    Ok((runs, clock.since(pids, &before)?))
}
