//! The work item's targets, each figure checked against its own, and the notes a reader needs to
//! trust (or distrust) the figures.

use serde_json::{Value, json};

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
/// Gateway CPU time per chat request through a weighted route of two targets: within noise of the
/// single-model chat's in the same run, i.e. at most this factor times it plus `ROUTED_NOISE_US`.
/// Picking a target is a random number and a walk over two weights, tens of nanoseconds; what two
/// consecutive 4 s runs of one scenario differ by on these machines is larger (see bench/README.md).
const ROUTED_NOISE_FACTOR: f64 = 1.05;
const ROUTED_NOISE_US: f64 = 2.0;
/// How far, in percentage points, a target's share of the routed requests may stray from its
/// weight's before a note says the weights were not honoured. Over tens of thousands of requests
/// chance moves it by a fraction of a point.
const SPLIT_TOLERANCE_PTS: f64 = 5.0;
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
    /// Closed loop, non-streaming chat to the weighted route: gateway only.
    pub routed: &'a Measured,
    /// Which of the route's targets served those requests.
    pub split: &'a Split,
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
        Check::new(
            "routed chat CPU/request within noise of single-model chat (µs)",
            "µs",
            1,
            Limit::AtMost(f64::INFINITY),
            f.routed.cpu_us_per_req(0),
        )
        .judge_within_band("single-model chat", cg.cpu_us_per_req(0), ROUTED_NOISE_FACTOR, ROUTED_NOISE_US)
        .invalid_if(f.split.unserved()),
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
    // CPU per request falls as load rises (more work per wake-up), so two scenarios' figures compare
    // like with like only when both runs kept the gateway's core about as busy.
    let (single, routed) = (cg.busy_pct(0), f.routed.busy_pct(0));
    if single.min(routed) < 90.0 {
        notes.push(format!(
            "the gateway's core was {single:.0}% busy with single-model chat and {routed:.0}% with routed chat: \
             below 90%, each request pays more wake-ups alone, so their CPU difference is not like with like"
        ));
    }
    if let Some(off) = f.split.stray() {
        notes.push(format!("the weighted route's split strays from its weights: {off}"));
    }
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

/// Which of a weighted route's targets served a run's requests, by the `x-llm-proxy-model` header
/// of every successful response.
pub struct Split {
    /// Each target's upstream model, its weight and the responses it served.
    pub targets: Vec<(String, u32, u64)>,
    /// Successful responses in all.
    pub total: u64,
}

impl Split {
    pub fn of(run: &Run, targets: &[(&str, u32)]) -> Self {
        let targets = targets
            .iter()
            .map(|&(model, weight)| (model.to_string(), weight, run.served_by.get(model).copied().unwrap_or(0)))
            .collect();
        Self { targets, total: run.ok() as u64 }
    }

    /// Responses that named no target (another model, or no header at all).
    pub fn other(&self) -> u64 {
        self.total.saturating_sub(self.targets.iter().map(|t| t.2).sum())
    }

    fn share_pct(&self, n: u64) -> f64 {
        n as f64 * 100.0 / self.total.max(1) as f64
    }

    fn weight_pct(&self, weight: u32) -> f64 {
        weight as f64 * 100.0 / self.targets.iter().map(|t| t.1 as f64).sum::<f64>().max(1.0)
    }

    /// Why the run did not measure a route, if it did not: a target served nothing, so the figure
    /// is one model's behind a route's name. An error, never a PASS.
    pub fn unserved(&self) -> Option<String> {
        let idle: Vec<&str> = self.targets.iter().filter(|t| t.2 == 0).map(|t| t.0.as_str()).collect();
        (!idle.is_empty()).then(|| format!("{} served nothing (by x-llm-proxy-model)", idle.join(" and ")))
    }

    /// How the split strays from the weights, when a target is more than `SPLIT_TOLERANCE_PTS` off
    /// or some responses named no target.
    fn stray(&self) -> Option<String> {
        let off =
            self.targets.iter().any(|&(_, w, n)| (self.share_pct(n) - self.weight_pct(w)).abs() > SPLIT_TOLERANCE_PTS);
        (off || self.other() > 0).then(|| self.to_string())
    }

    pub fn to_json(&self) -> Value {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        json!({
            "targets": self.targets.iter().map(|(model, weight, n)| json!({
                "model": model, "weight": weight, "served": n,
                "share_pct": round(self.share_pct(*n)), "expected_pct": round(self.weight_pct(*weight)),
            })).collect::<Vec<_>>(),
            "other": self.other(),
            "total": self.total,
        })
    }
}

/// `mock-a 30,123 (75.2%, weight 3: 75%), mock-b 9,977 (24.8%, weight 1: 25%)`.
impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .targets
            .iter()
            .map(|&(ref model, w, n)| {
                format!(
                    "{model} {} ({:.1}%, weight {w}: {:.0}%)",
                    group(n as f64, 0),
                    self.share_pct(n),
                    self.weight_pct(w)
                )
            })
            .collect();
        write!(f, "{}", parts.join(", "))?;
        if self.other() > 0 {
            write!(f, ", {} naming no target", group(self.other() as f64, 0))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed_run(served: &[(&str, u64)]) -> Run {
        let mut run = Run::default();
        for &(model, n) in served {
            run.served_by.insert(model.to_string(), n);
            run.latencies_us.extend(std::iter::repeat_n(100, n as usize));
        }
        run
    }

    fn routed_check(routed_us: f64, single_us: f64, split: &Split) -> Check {
        Check::new("routed", "µs", 1, Limit::AtMost(f64::INFINITY), routed_us)
            .judge_within_band("single-model chat", single_us, ROUTED_NOISE_FACTOR, ROUTED_NOISE_US)
            .invalid_if(split.unserved())
    }

    const TARGETS: [(&str, u32); 2] = [("mock-a", 3), ("mock-b", 1)];

    #[test]
    fn the_band_is_five_percent_and_two_microseconds() {
        let split = Split::of(&routed_run(&[("mock-a", 750), ("mock-b", 250)]), &TARGETS);
        assert!(split.unserved().is_none() && split.stray().is_none());
        // 40 × 1.05 + 2 = 44.
        assert!(routed_check(44.0, 40.0, &split).pass());
        assert!(!routed_check(44.1, 40.0, &split).pass());
    }

    #[test]
    fn a_target_that_served_nothing_is_a_miss_whatever_the_figure() {
        let split = Split::of(&routed_run(&[("mock-a", 1000)]), &TARGETS);
        assert_eq!(split.unserved().as_deref(), Some("mock-b served nothing (by x-llm-proxy-model)"));
        assert!(!routed_check(40.0, 40.0, &split).pass());
        // Responses without the header count for no target.
        let split = Split::of(&routed_run(&[]), &TARGETS);
        assert_eq!(split.unserved().as_deref(), Some("mock-a and mock-b served nothing (by x-llm-proxy-model)"));
    }

    #[test]
    fn a_split_off_the_weights_is_noted() {
        let split = Split::of(&routed_run(&[("mock-a", 500), ("mock-b", 500)]), &TARGETS);
        assert!(split.unserved().is_none());
        assert_eq!(
            split.stray().as_deref(),
            Some("mock-a 500 (50.0%, weight 3: 75%), mock-b 500 (50.0%, weight 1: 25%)")
        );
    }
}
