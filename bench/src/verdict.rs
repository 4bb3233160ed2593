//! The work item's targets, each figure checked against its own, and the notes a reader needs to
//! trust (or distrust) the figures.

use crate::load::Run;
use crate::procstat::{Measured, mb};
use crate::report::{Check, Limit, group};

/// Gateway CPU time per non-streaming chat request, µs.
const CPU_CHAT_US: f64 = 40.0;
/// Gateway CPU time per 20-chunk stream, µs.
const CPU_STREAM_US: f64 = 120.0;
/// Gateway CPU time per translated 20-chunk stream (OpenAI client, Anthropic upstream), as a
/// multiple of the passthrough stream's in the same run.
const TRANSLATED_STREAM_FACTOR: f64 = 1.5;
/// Latency the gateway adds at the fixed rate, ms.
const ADDED_P50_MS: f64 = 0.3;
const ADDED_P99_MS: f64 = 1.0;
/// Non-streaming requests per second with the gateway on one core.
const RPS_ONE_CORE: f64 = 10_000.0;
/// Gateway resident memory, MB (10^6 bytes).
const RSS_IDLE_MB: f64 = 30.0;
const RSS_STREAMS_MB: f64 = 150.0;
/// What one delayed-ACK stall costs a stream when TCP_NODELAY is not set, ms.
pub const STALL_MS: f64 = 40.0;

/// Everything the checks read. Pairs are `[direct, gateway]`.
pub struct Figures<'a> {
    /// Closed loop, non-streaming chat: CPU per request and throughput.
    pub chat: [&'a Measured; 2],
    /// Closed loop, 20-chunk streams.
    pub stream: [&'a Measured; 2],
    /// Closed loop, 20-chunk streams translated from an Anthropic upstream: gateway only.
    pub translated: &'a Measured,
    /// Open loop at the fixed rate.
    pub fixed: [&'a Run; 2],
    /// 20-chunk streams one at a time.
    pub alone: [&'a Run; 2],
    pub rss_idle_kib: u64,
    pub rss_streams_kib: u64,
    pub streams: usize,
    pub concurrency: usize,
    /// Requests per second of the fixed-rate runs.
    pub rate: f64,
    /// The most CPU other processes used during a measured run, % of one CPU.
    pub noisiest: f64,
}

fn ms(r: &Run, q: f64) -> f64 {
    r.pct(q) as f64 / 1000.0
}

pub fn checks(f: &Figures) -> Vec<Check> {
    let [cd, cg] = f.chat;
    let [sd, sg] = f.stream;
    let [fd, fg] = f.fixed;
    let [ad, ag] = f.alone;
    // A stall per stream would cap the closed-loop stream rate at `concurrency` per 40 ms.
    let stall_cap = f.concurrency as f64 * 1000.0 / STALL_MS;
    vec![
        Check::new("CPU per chat request (µs)", "µs", 1, Limit::AtMost(CPU_CHAT_US), cg.cpu_us_per_req(0))
            .direct(cd.cpu_us_per_req(0)),
        Check::new("CPU per 20-chunk stream (µs)", "µs", 1, Limit::AtMost(CPU_STREAM_US), sg.cpu_us_per_req(0))
            .direct(sd.cpu_us_per_req(0)),
        Check::new(
            "translated stream CPU/request (µs)",
            "µs",
            1,
            Limit::AtMost(TRANSLATED_STREAM_FACTOR),
            f.translated.cpu_us_per_req(0),
        )
        .judge_ratio_to("passthrough stream CPU/request", sg.cpu_us_per_req(0)),
        Check::new(format!("p50 latency at {} req/s (ms)", f.rate), "ms", 3, Limit::AtMost(ADDED_P50_MS), ms(fg, 0.5))
            .direct(ms(fd, 0.5))
            .judge_added(),
        Check::new(format!("p99 latency at {} req/s (ms)", f.rate), "ms", 3, Limit::AtMost(ADDED_P99_MS), ms(fg, 0.99))
            .direct(ms(fd, 0.99))
            .judge_added(),
        Check::new("chat throughput, one core (req/s)", "req/s", 0, Limit::AtLeast(RPS_ONE_CORE), cg.run.rps())
            .direct(cd.run.rps()),
        Check::new("RSS idle (MB)", "MB", 1, Limit::AtMost(RSS_IDLE_MB), mb(f.rss_idle_kib)),
        Check::new("RSS with the streams open (MB)", "MB", 1, Limit::AtMost(RSS_STREAMS_MB), mb(f.rss_streams_kib))
            .note(format!("{} streams", group(f.streams as f64, 0))),
        Check::new("20-chunk stream rate (streams/s)", "streams/s", 0, Limit::AtLeast(stall_cap), sg.run.rps())
            .direct(sd.run.rps())
            .note("a 40 ms stall per stream caps it there".into()),
        Check::new("20-chunk stream alone, p99 (ms)", "ms", 3, Limit::Below(STALL_MS), ms(ag, 0.99))
            .direct(ms(ad, 0.99))
            .note("one stall is 40 ms".into()),
    ]
}

pub fn notes(f: &Figures) -> Vec<String> {
    let [cd, cg] = f.chat;
    let mut notes = Vec::new();
    for (what, [direct, gateway]) in [("chat request", f.chat), ("20-chunk stream", f.stream)] {
        let floor = 2.0 * direct.cpu_us_per_req(0);
        notes.push(format!(
            "CPU floor per {what}: the mock alone spends {:.1} µs; a proxy makes two such HTTP exchanges, so about \
             {floor:.0} µs; the gateway spends {:.1} µs ({:.1}x the floor)",
            direct.cpu_us_per_req(0),
            gateway.cpu_us_per_req(0),
            gateway.cpu_us_per_req(0) / floor
        ));
    }
    if f.noisiest > 10.0 {
        notes.push(format!(
            "NOISY: other processes (or the hypervisor) took up to {:.0}% of a CPU during a measured run; rerun on a quiet machine",
            f.noisiest
        ));
    }
    if ms(f.alone[0], 0.5) >= STALL_MS {
        notes.push(format!(
            "the MOCK stalls: direct 20-chunk streams take {:.0} ms one at a time, so the mock upstream does not set \
             TCP_NODELAY; every stream through the gateway waits for it too, and the streaming figures measure the mock",
            ms(f.alone[0], 0.5)
        ));
    }
    // CPU per request falls as load rises (more work per wake-up), so the ratio compares like with
    // like only when both runs kept the gateway's core about as busy.
    let (passthrough, translated) = (f.stream[1].busy_pct(0), f.translated.busy_pct(0));
    if passthrough.min(translated) < 90.0 {
        notes.push(format!(
            "the gateway's core was {passthrough:.0}% busy with passthrough streams and {translated:.0}% with \
             translated ones: below 90%, each request pays more wake-ups alone, so their CPU ratio is not like \
             with like"
        ));
    }
    if cg.busy_pct(0) < 90.0 {
        notes.push(format!(
            "the gateway's core was {:.0}% busy in the chat throughput run: the load generator's core bounds it; \
             at 100% the gateway would do about {} req/s (1 s / CPU per request)",
            cg.busy_pct(0),
            group(1e6 / cg.cpu_us_per_req(0), 0)
        ));
    }
    if cd.busy_pct(0) < 90.0 {
        notes.push(format!(
            "the direct mock's core was {:.0}% busy: the direct throughput is the load generator's limit, not the mock's",
            cd.busy_pct(0)
        ));
    }
    notes
}
