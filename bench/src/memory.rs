//! `--memory`: what one big request costs the gateway in memory, and what it keeps after a burst.
//!
//! One body of about 10 MB (`--memory-body-mb`) made of some 270,000 short messages, alternately
//! `user` and `assistant`, goes through the gateway to the mock upstream once per case: passthrough
//! (OpenAI client, OpenAI-protocol upstream) and translated to Anthropic and to Gemini, each not
//! streamed and streamed. Every case gets a fresh gateway, so its peak resident memory (`VmHWM`)
//! is that case's alone: the figure is that peak minus the resident memory of the idle gateway just
//! before the request, checked against the case's bound times the body. The non-streamed cases then
//! send `BURST` such requests at once to the same gateway, and read its resident memory after
//! `--memory-idle-secs` of quiet: what a burst leaves behind.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Result;
use crate::procs::{self, Proc, TempDir, UPSTREAM_KEY};
use crate::procstat::{Memory, mb};

/// The stated bounds: peak RSS above the idle gateway, per byte of request body. A passthrough
/// holds the body, its messages as text and the upstream body (about 3×); a translation also holds
/// the conversation in the unified model, ~190 bytes per short message (about 8× in all).
pub const PASSTHROUGH_BOUND: f64 = 4.0;
pub const TRANSLATED_BOUND: f64 = 9.0;
/// Requests sent at once in the burst.
const BURST: usize = 8;
const MASTER_KEY: &str = "bench-master-key-0123456789";

/// One case: the model the client names (which says the upstream protocol), whether it streams,
/// and its bound.
struct Case {
    name: &'static str,
    model: &'static str,
    stream: bool,
    bound: f64,
}

const CASES: [Case; 6] = [
    Case { name: "passthrough (OpenAI)", model: "mock-a", stream: false, bound: PASSTHROUGH_BOUND },
    Case { name: "to Anthropic", model: "mock-anthropic/mock-a", stream: false, bound: TRANSLATED_BOUND },
    Case { name: "to Gemini", model: "mock-gemini/mock-a", stream: false, bound: TRANSLATED_BOUND },
    Case { name: "passthrough (OpenAI), stream", model: "mock-a", stream: true, bound: PASSTHROUGH_BOUND },
    Case { name: "to Anthropic, stream", model: "mock-anthropic/mock-a", stream: true, bound: TRANSLATED_BOUND },
    Case { name: "to Gemini, stream", model: "mock-gemini/mock-a", stream: true, bound: TRANSLATED_BOUND },
];

pub struct Options<'a> {
    pub gateway_bin: &'a Path,
    pub mock_bin: &'a Path,
    pub body_mb: f64,
    pub idle_secs: f64,
    /// Where the JSON result goes.
    pub out: &'a Path,
}

/// A chat body of `bytes` bytes at most, of as many short messages as fit.
fn big_body(model: &str, stream: bool, bytes: usize) -> (String, usize) {
    let mut body = format!(r#"{{"model":"{model}","stream":{stream},"max_tokens":16,"messages":["#);
    let mut n = 0usize;
    loop {
        let role = if n.is_multiple_of(2) { "user" } else { "assistant" };
        let msg = format!(r#"{{"role":"{role}","content":"m{n}"}}"#);
        if body.len() + msg.len() + 3 > bytes {
            break;
        }
        if n > 0 {
            body.push(',');
        }
        body.push_str(&msg);
        n += 1;
    }
    body.push_str("]}");
    (body, n)
}

fn write_config(dir: &Path, port: u16, mock_addr: &str, max_body: usize) -> Result<std::path::PathBuf> {
    let config = dir.join(format!("memory-{port}.yaml"));
    std::fs::write(
        &config,
        format!(
            r#"listen_addr: 127.0.0.1:{port}
log_level: warn
database_url: "sqlite://{db}"
master_key: {MASTER_KEY}
max_body_bytes: {max_body}
health_check: {{ enabled: false }}
providers:
  mock:
    protocol: openai
    base_url: http://{mock_addr}/v1
    api_key: {UPSTREAM_KEY}
    models: [mock-a]
  mock-anthropic:
    protocol: anthropic
    base_url: http://{mock_addr}
    api_key: {UPSTREAM_KEY}
  mock-gemini:
    protocol: gemini
    base_url: http://{mock_addr}
    api_key: {UPSTREAM_KEY}
"#,
            db = dir.join(format!("memory-{port}.db")).display(),
        ),
    )?;
    Ok(config)
}

/// Sends one request and reads the whole answer; an error unless it is a 200.
async fn send(client: &reqwest::Client, url: &str, body: String) -> Result<()> {
    let resp =
        client.post(url).bearer_auth(MASTER_KEY).header("content-type", "application/json").body(body).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if status != 200 {
        let cut: String = text.chars().take(300).collect();
        return Err(format!("{status}: {cut}").into());
    }
    Ok(())
}

/// Waits for the gateway's resident memory to stop falling (freed pages are returned lazily).
async fn settled_rss(pid: u32, at_most: Duration) -> Result<Memory> {
    let deadline = Instant::now() + at_most;
    let mut last = Memory::of(pid)?;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = Memory::of(pid)?;
    }
    Ok(last)
}

pub async fn run(opts: &Options<'_>) -> Result<bool> {
    let dir = TempDir::new()?;
    let bytes = (opts.body_mb * 1e6) as usize;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    println!(
        "\nmemory: one request of {:.1} MB (short messages) per case, each on a fresh gateway; bound: peak RSS above idle ≤ {PASSTHROUGH_BOUND} × body passed through, ≤ {TRANSLATED_BOUND} × body translated",
        opts.body_mb
    );
    let mut rows = Vec::new();
    let mut all_pass = true;
    let mut results = Vec::new();
    for case in &CASES {
        let (body, messages) = big_body(case.model, case.stream, bytes);
        // A fresh mock too: it records every request it receives, big bodies included.
        let (mock, mock_addr): (Proc, String) = procs::start_mock(opts.mock_bin, None).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = write_config(&dir.0, port, &mock_addr, 4 * bytes)?;
        let log = dir.0.join(format!("memory-{port}.stderr"));
        let url = format!("http://127.0.0.1:{port}");
        let gateway = procs::start_gateway(opts.gateway_bin, &config, None, 2, &log, &format!("{url}/health")).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = Memory::of(gateway.pid)?;
        let chat = format!("{url}/v1/chat/completions");
        let started = Instant::now();
        send(&client, &chat, body.clone()).await.map_err(|e| format!("{}: {e}", case.name))?;
        let took = started.elapsed();
        let one = Memory::of(gateway.pid)?;
        let peak_above = one.hwm_kib.saturating_sub(idle.rss_kib) as f64 * 1024.0;
        let ratio = peak_above / body.len() as f64;
        let pass = ratio <= case.bound;
        all_pass &= pass;
        let mut burst_figures = None;
        if !case.stream {
            let mut burst = tokio::task::JoinSet::new();
            for _ in 0..BURST {
                let (client, chat, body) = (client.clone(), chat.clone(), body.clone());
                burst.spawn(async move { send(&client, &chat, body).await });
            }
            while let Some(r) = burst.join_next().await {
                r?.map_err(|e| format!("{} burst: {e}", case.name))?;
            }
            let peak = Memory::of(gateway.pid)?;
            let after = settled_rss(gateway.pid, Duration::from_secs_f64(opts.idle_secs)).await?;
            burst_figures = Some((peak.hwm_kib, after.rss_kib));
        }
        gateway.stop().await;
        mock.stop().await;
        rows.push(vec![
            case.name.to_string(),
            format!("{:.1}", mb(idle.rss_kib)),
            format!("{:.1}", mb(one.hwm_kib)),
            format!("{:.1}", peak_above / 1e6),
            format!("{ratio:.2}×"),
            format!("≤ {}×", case.bound),
            format!("{:.2}", took.as_secs_f64()),
            burst_figures.map_or("-".into(), |(p, _)| format!("{:.1}", mb(p))),
            burst_figures.map_or("-".into(), |(_, a)| format!("{:.1}", mb(a))),
            if pass { "PASS".into() } else { "FAIL".into() },
        ]);
        results.push(json!({
            "case": case.name,
            "model": case.model,
            "stream": case.stream,
            "body_bytes": body.len(),
            "messages": messages,
            "idle_rss_kib": idle.rss_kib,
            "peak_rss_kib": one.hwm_kib,
            "peak_above_idle_bytes": peak_above as u64,
            "ratio_to_body": ratio,
            "bound_x_body": case.bound,
            "seconds": took.as_secs_f64(),
            "burst_peak_rss_kib": burst_figures.map(|(p, _)| p),
            "rss_after_burst_kib": burst_figures.map(|(_, a)| a),
            "pass": pass,
        }));
    }
    crate::report::table(
        &[
            "case",
            "idle MB",
            "peak MB",
            "above idle MB",
            "× body",
            "bound",
            "secs",
            "burst peak MB",
            "after burst MB",
            "result",
        ],
        &[0],
        &rows,
    );
    println!(
        "(burst: {BURST} such requests at once on the same gateway; \"after burst\": resident {:.0} s later)",
        opts.idle_secs
    );
    let out = json!({ "burst": BURST, "cases": results });
    if let Some(parent) = opts.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(opts.out, serde_json::to_string_pretty(&out)?)?;
    println!("memory: {}; written to {}", if all_pass { "PASS" } else { "FAIL" }, opts.out.display());
    Ok(all_pass)
}
