//! The Redis server behind the cluster-mode gateway, seen from outside: how many commands it ran
//! and how much CPU it spent (`INFO commandstats`, `INFO cpu`), and which commands each client sent
//! it (`MONITOR`). Speaks RESP over a plain TCP connection: a few commands need no client crate.
//! Reads only: the server is shared, so nothing here writes a key, flushes or reconfigures.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::Result;

/// The most connecting, or waiting for one reply, may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The most `Monitor::finish` waits for the commands sent before it to come through.
const MONITOR_DRAIN: Duration = Duration::from_secs(10);

/// A Redis server, by address.
pub struct Redis {
    /// `host:port`.
    pub addr: String,
    pub port: u16,
}

/// One reply (errors become `Err`). Arrays are never asked for.
enum Reply {
    Simple(String),
    Bulk(Option<Vec<u8>>),
    Int,
}

/// One connection, replies read in order.
struct Conn(BufReader<TcpStream>);

impl Conn {
    async fn call(&mut self, args: &[&str]) -> Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n", a.len()).bytes());
            out.extend(a.bytes());
            out.extend(b"\r\n");
        }
        self.0.get_mut().write_all(&out).await?;
        tokio::time::timeout(TIMEOUT, self.reply())
            .await
            .map_err(|_| format!("{}: no reply within {TIMEOUT:?}", args[0]))?
    }

    async fn reply(&mut self) -> Result<Reply> {
        let line = self.line().await?;
        let (kind, rest) = line.split_at_checked(1).ok_or("empty reply line")?;
        match kind {
            "+" => Ok(Reply::Simple(rest.to_string())),
            "-" => Err(format!("Redis answered: {rest}").into()),
            ":" => Ok(Reply::Int),
            "$" => {
                let Ok(len) = usize::try_from(rest.parse::<i64>()?) else { return Ok(Reply::Bulk(None)) };
                let mut body = vec![0; len + 2];
                self.0.read_exact(&mut body).await?;
                body.truncate(len);
                Ok(Reply::Bulk(Some(body)))
            }
            _ => Err(format!("unexpected reply {line:?}").into()),
        }
    }

    /// One line without its CRLF; an error at end of stream.
    async fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.0.read_line(&mut line).await? == 0 {
            return Err("Redis closed the connection".into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn info(&mut self, section: &str) -> Result<String> {
        match self.call(&["INFO", section]).await? {
            Reply::Bulk(Some(body)) => Ok(String::from_utf8_lossy(&body).into_owned()),
            _ => Err(format!("INFO {section}: not a bulk string").into()),
        }
    }
}

impl Redis {
    /// `redis://host[:port][/db]`. No password: the bench sends no `AUTH`.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("redis://").ok_or_else(|| format!("--redis-url {url:?}: not redis://host:port"))?;
        let hostport = rest.split('/').next().unwrap_or_default();
        if hostport.contains('@') {
            return Err(format!(
                "--redis-url {url:?}: the bench cannot log in (no AUTH); use a server without a password"
            )
            .into());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("--redis-url {url:?}: bad port"))?),
            None => (hostport, 6379),
        };
        if host.is_empty() {
            return Err(format!("--redis-url {url:?}: no host").into());
        }
        Ok(Self { addr: format!("{host}:{port}"), port })
    }

    async fn connect(&self) -> Result<Conn> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| format!("no connection to {} within {TIMEOUT:?}", self.addr))?
            .map_err(|e| format!("no connection to {}: {e}", self.addr))?;
        stream.set_nodelay(true)?;
        Ok(Conn(BufReader::new(stream)))
    }

    /// Whether the server answers; its version when it does.
    pub async fn version(&self) -> Result<String> {
        let info = self.connect().await?.info("server").await?;
        Ok(info_field(&info, "redis_version").unwrap_or("unknown").to_string())
    }

    /// Commands run so far (every client's, and the commands scripts ran) and CPU time so far.
    pub async fn stats(&self) -> Result<ServerStats> {
        let mut conn = self.connect().await?;
        let commands = conn.info("commandstats").await?;
        let cpu = conn.info("cpu").await?;
        let mut calls = BTreeMap::new();
        // cmdstat_evalsha:calls=2880,usec=51049,usec_per_call=17.73,…
        for line in commands.lines() {
            if let Some((name, fields)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':'))
                && let Some(n) = fields.split(',').find_map(|f| f.strip_prefix("calls="))
            {
                calls.insert(name.to_string(), n.parse()?);
            }
        }
        let secs =
            |name: &str| -> Result<f64> { Ok(info_field(&cpu, name).ok_or(format!("no {name} in INFO"))?.parse()?) };
        Ok(ServerStats { calls, cpu: Duration::from_secs_f64(secs("used_cpu_user")? + secs("used_cpu_sys")?) })
    }

    /// Starts watching every command the server runs (`MONITOR`) from now on.
    pub async fn monitor(&self) -> Result<Monitor> {
        let mut conn = self.connect().await?;
        match conn.call(&["MONITOR"]).await? {
            Reply::Simple(ok) if ok == "OK" => {}
            _ => return Err("MONITOR: unexpected reply".into()),
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let marker = format!("llm-proxy-bench-end-{}-{nanos}", std::process::id());
        let end = marker.clone();
        // A JoinSet aborts its task when dropped, which closes the MONITOR connection on every exit path.
        let mut task = JoinSet::new();
        task.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let line = conn.line().await?;
                let Some(command) = Command::parse(&line) else { continue };
                if command.name == "echo" && command.first_arg == end {
                    return Ok(seen);
                }
                // Commands run by scripts are shown as client `lua`: they are not round trips.
                if command.client != "lua" {
                    seen.push(command);
                }
            }
        });
        Ok(Monitor { task, marker })
    }
}

/// A `Key:value` field of an `INFO` section.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

/// What a Redis server counted so far: calls per command (`INFO commandstats`: every client's, and
/// the commands scripts ran inside them) and its CPU time (`INFO cpu`, user + system).
pub struct ServerStats {
    pub calls: BTreeMap<String, u64>,
    pub cpu: Duration,
}

impl ServerStats {
    /// What was counted between `before` and `self`; commands not run meanwhile and the bench's own
    /// `INFO` left out.
    pub fn since(&self, before: &Self) -> Self {
        let calls = self
            .calls
            .iter()
            .filter(|(name, _)| *name != "info")
            .map(|(name, n)| (name.clone(), n.saturating_sub(before.calls.get(name).copied().unwrap_or(0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        Self { calls, cpu: self.cpu.saturating_sub(before.cpu) }
    }

    /// Script calls: `EVALSHA` and `EVAL` (and their read-only forms), each one round trip.
    pub fn script_calls(&self) -> u64 {
        ["evalsha", "eval", "evalsha_ro", "eval_ro"].iter().filter_map(|c| self.calls.get(*c)).sum()
    }

    pub fn to_json(&self, requests: u64) -> Value {
        let per = |n: u64| (n as f64 / requests.max(1) as f64 * 1000.0).round() / 1000.0;
        json!({
            "script_calls": self.script_calls(),
            "script_calls_per_request": per(self.script_calls()),
            "server_cpu_us_per_request": (self.cpu.as_secs_f64() * 1e6 / requests.max(1) as f64 * 10.0).round() / 10.0,
            "commands": self.calls,
        })
    }
}

/// Commands seen by `MONITOR` until `finish`.
pub struct Monitor {
    /// The one task reading the connection.
    task: JoinSet<Result<Vec<Command>>>,
    /// Sent with `ECHO` by `finish`: once the watcher sees it, it has seen everything run before.
    marker: String,
}

impl Monitor {
    /// Every command run between `Redis::monitor` and now, in order (none run by scripts).
    pub async fn finish(mut self, redis: &Redis) -> Result<Vec<Command>> {
        redis.connect().await?.call(&["ECHO", &self.marker]).await?;
        match tokio::time::timeout(MONITOR_DRAIN, self.task.join_next()).await {
            Ok(Some(joined)) => joined.map_err(|e| format!("MONITOR reader: {e}"))?,
            Ok(None) => Err("MONITOR reader: gone".into()),
            Err(_) => Err(format!("MONITOR did not show the end marker within {MONITOR_DRAIN:?}").into()),
        }
    }
}

/// One command as `MONITOR` shows it: `+1795319291.261266 [0 127.0.0.1:39046] "EVALSHA" "d1c…" "3" …`.
#[derive(Debug, PartialEq)]
pub struct Command {
    /// The client's address (`127.0.0.1:39046`), or `lua` for a command a script ran.
    pub client: String,
    /// Lower case.
    pub name: String,
    /// As shown (escapes kept), or a hash of it when longer than a SHA (a script body).
    pub first_arg: String,
}

impl Command {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix('+')?;
        let open = rest.find('[')?;
        let args_at = rest.find(" \"")?;
        let (db_client, args) = (rest.get(open + 1..args_at)?.strip_suffix(']')?, &rest[args_at + 1..]);
        let client = db_client.split_once(' ')?.1.to_string();
        let mut quoted = quoted(args);
        let name = quoted.next()?.to_ascii_lowercase();
        let first = quoted.next().unwrap_or_default();
        let first_arg = if first.len() <= 64 {
            first.to_string()
        } else {
            let mut h = DefaultHasher::new();
            first.hash(&mut h);
            format!("#{:016x}", h.finish())
        };
        Some(Self { client, name, first_arg })
    }

    /// Which script a script call runs (its SHA, or a hash of its body), `None` for other commands.
    fn script(&self) -> Option<&str> {
        matches!(self.name.as_str(), "evalsha" | "eval" | "evalsha_ro" | "eval_ro").then_some(&self.first_arg)
    }
}

/// The quoted words of a `MONITOR` line, escapes kept.
fn quoted(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let start = rest.find('"')? + 1;
        let bytes = rest.as_bytes();
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        let word = rest.get(start..i.min(bytes.len()))?;
        rest = rest.get(i + 1..).unwrap_or_default();
        Some(word)
    })
}

/// The commands one client (the gateway) sent while `requests` requests went through it, the first
/// of them sent alone to an idle gateway: the first script that client calls is that request's
/// admission, the acquire script; any other script is a settle (applied after the answer, batched,
/// off the request path); every other command is counted as on the request path.
#[derive(Debug, PartialEq)]
pub struct CallSplit {
    pub requests: u64,
    /// The acquire script's SHA (or body hash).
    pub acquire_script: String,
    /// Its calls.
    pub acquire: u64,
    /// Calls of other scripts.
    pub settle: u64,
    /// Every other command, by name.
    pub other: BTreeMap<String, u64>,
    /// Commands by other clients meanwhile (the server is shared), not counted above.
    pub foreign: u64,
}

impl CallSplit {
    /// Splits `commands` of the clients on local `ports`; an error when that client called no script.
    pub fn of(commands: &[Command], ports: &[u16], requests: u64) -> Result<Self, String> {
        let ours = |c: &&Command| {
            c.client.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_some_and(|p| ports.contains(&p))
        };
        let acquire_script = commands
            .iter()
            .filter(ours)
            .find_map(Command::script)
            .ok_or("the gateway sent no script call to Redis: its limits were not counted there")?
            .to_string();
        let mut split = Self { requests, acquire_script, acquire: 0, settle: 0, other: BTreeMap::new(), foreign: 0 };
        for c in commands {
            if !ours(&c) {
                split.foreign += 1;
                continue;
            }
            match c.script() {
                Some(s) if s == split.acquire_script => split.acquire += 1,
                Some(_) => split.settle += 1,
                None => *split.other.entry(c.name.clone()).or_insert(0) += 1,
            }
        }
        Ok(split)
    }

    /// Round trips a request waits for: the acquire calls and every command that is no settle.
    pub fn request_path(&self) -> u64 {
        self.acquire + self.other.values().sum::<u64>()
    }

    pub fn per_request(&self, n: u64) -> f64 {
        n as f64 / self.requests.max(1) as f64
    }

    pub fn to_json(&self) -> Value {
        let per = |n: u64| (self.per_request(n) * 1000.0).round() / 1000.0;
        json!({
            "requests": self.requests,
            "acquire_script": self.acquire_script,
            "acquire_calls": self.acquire, "acquire_per_request": per(self.acquire),
            "settle_calls": self.settle, "settle_per_request": per(self.settle),
            "other_commands": self.other,
            "request_path_per_request": per(self.request_path()),
            "other_clients_commands": self.foreign,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(client: &str, name: &str, first: &str) -> Command {
        Command { client: client.into(), name: name.into(), first_arg: first.into() }
    }

    #[test]
    fn monitor_lines_give_client_command_and_first_argument() {
        let line = r#"+1795319291.261266 [0 127.0.0.1:39046] "EVALSHA" "d1ce" "3" "llmp:rl:req:key:k""#;
        assert_eq!(Command::parse(line), Some(cmd("127.0.0.1:39046", "evalsha", "d1ce")));
        assert_eq!(Command::parse(r#"+1.5 [0 lua] "TIME""#), Some(cmd("lua", "time", "")));
        let escaped = r#"+1.5 [3 127.0.0.1:1] "ECHO" "a \"b\" \\" "x""#;
        assert_eq!(Command::parse(escaped), Some(cmd("127.0.0.1:1", "echo", r#"a \"b\" \\"#)));
        // A script body stands for itself by a hash, the same for the same body.
        let body = "x".repeat(100);
        let long = Command::parse(&format!(r#"+1.5 [0 127.0.0.1:1] "EVAL" "{body}" "0""#)).unwrap();
        assert!(long.first_arg.starts_with('#') && long.first_arg.len() == 17);
        assert_eq!(
            Command::parse(&format!(r#"+2.5 [0 127.0.0.1:2] "eval" "{body}""#)).unwrap().first_arg,
            long.first_arg
        );
        assert_eq!(Command::parse("+OK"), None);
    }

    #[test]
    fn the_first_script_of_the_gateway_is_the_acquire_and_others_are_settles() {
        let commands = [
            cmd("127.0.0.1:9", "evalsha", "settle-of-someone-else"),
            cmd("127.0.0.1:7", "evalsha", "acq"),
            cmd("127.0.0.1:7", "evalsha", "set"),
            cmd("127.0.0.1:7", "evalsha", "acq"),
            cmd("127.0.0.1:7", "evalsha", "acq"),
            cmd("127.0.0.1:7", "script", "load"),
            cmd("127.0.0.1:7", "evalsha", "set"),
        ];
        let split = CallSplit::of(&commands, &[7], 3).unwrap();
        assert_eq!((split.acquire_script.as_str(), split.acquire, split.settle, split.foreign), ("acq", 3, 2, 1));
        assert_eq!(split.request_path(), 4);
        assert!(CallSplit::of(&commands[5..6], &[7], 1).is_err());
    }

    #[test]
    fn urls() {
        let r = Redis::from_url("redis://127.0.0.1:6379").unwrap();
        assert_eq!((r.addr.as_str(), r.port), ("127.0.0.1:6379", 6379));
        assert_eq!(Redis::from_url("redis://localhost/2").unwrap().addr, "localhost:6379");
        assert!(Redis::from_url("redis://u:p@h:1").is_err());
        assert!(Redis::from_url("rediss://h:1").is_err());
    }

    #[test]
    fn deltas_leave_out_info_and_unchanged_commands() {
        let stats = |pairs: &[(&str, u64)], cpu_ms| ServerStats {
            calls: pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            cpu: Duration::from_millis(cpu_ms),
        };
        let before = stats(&[("evalsha", 10), ("info", 3), ("get", 4)], 100);
        let after = stats(&[("evalsha", 25), ("eval", 1), ("info", 6), ("get", 4)], 150);
        let d = after.since(&before);
        assert_eq!(d.calls, BTreeMap::from([("eval".to_string(), 1), ("evalsha".to_string(), 15)]));
        assert_eq!((d.script_calls(), d.cpu), (16, Duration::from_millis(50)));
    }
}
