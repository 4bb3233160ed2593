//! The work item's targets, each figure checked against its own, and the notes a reader needs to
//! trust (or distrust) the figures.

use serde_json::{Value, json};

use crate::cluster_run::{ClusterMiss, ClusterRun};
use crate::load::{RATE_LIMIT_HEADER, Run};
use crate::procstat::{Measured, mb};
use crate::report::{Check, Limit, group};

/// Gateway CPU time per non-streaming chat request, µs.
const CPU_CHAT_US: f64 = 40.0;
/// Gateway CPU time per 20-chunk stream, µs.
const CPU_STREAM_US: f64 = 120.0;
/// Gateway CPU time per translated 20-chunk stream (OpenAI client, Anthropic upstream), as a
/// multiple of the passthrough stream's in the same run.
const TRANSLATED_STREAM_FACTOR: f64 = 1.5;
/// Gateway CPU time per `POST /v1/responses` passed through to an upstream that serves it, as a
/// multiple of the chat passthrough's in the same run: the same work but for the other endpoint.
const RESPONSES_FACTOR: f64 = 1.10;
/// Gateway CPU time per chat request through a weighted route of two targets: within noise of the
/// single-model chat's in the same run, i.e. at most this factor times it plus `ROUTED_NOISE_US`.
/// Picking a target is a random number and a walk over two weights, tens of nanoseconds; what two
/// consecutive 4 s runs of one scenario differ by on these machines is larger (see bench/README.md).
const ROUTED_NOISE_FACTOR: f64 = 1.05;
const ROUTED_NOISE_US: f64 = 2.0;
/// Gateway CPU time per chat request with a key whose requests, tokens and daily budget are
/// limited (counted in process): at most this much above the unlimited chat's in the same run. The
/// checks are a few map lookups and additions per request; the band also holds the drift between
/// runs of one scenario (up to ~4 µs, see bench/README.md).
const LIMITED_PLUS_US: f64 = 10.0;
/// Redis commands a request waits for in cluster mode: one script call that checks and reserves
/// every limit at once. Settles are batched after the answer, off the request path.
const REDIS_CALLS_PER_REQUEST: f64 = 1.0;
/// The same bound when acquires cannot be told from settles (no `MONITOR` sample): every script
/// call per request, settles included. Batched under load, settles add a fraction of a call.
const REDIS_CALLS_WITH_SETTLES: f64 = 1.2;
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
    /// Closed loop, the chat request with a limited key, counted in process: gateway only.
    pub limited: &'a Measured,
    /// The same on a second gateway counting on Redis, or why it did not run.
    pub cluster: &'a Result<ClusterRun, ClusterMiss>,
    /// Closed loop, 20-chunk streams.
    pub stream: [&'a Measured; 2],
    /// Closed loop, 20-chunk streams translated from an Anthropic upstream: gateway only.
    pub translated: &'a Measured,
    /// Closed loop, the chat question through `POST /v1/responses`, passed through: gateway only.
    pub responses: &'a Measured,
    /// Closed loop, 20-chunk streams from a Responses client onto the Anthropic upstream.
    pub responses_translated: &'a Measured,
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
        Check::new(
            "limited chat CPU/request within 10 µs of chat (µs)",
            "µs",
            1,
            Limit::AtMost(f64::INFINITY),
            f.limited.cpu_us_per_req(0),
        )
        .judge_within_band("chat", cg.cpu_us_per_req(0), 1.0, LIMITED_PLUS_US)
        .invalid_if(unlimited(&f.limited.run)),
        redis_check(f.cluster),
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
        Check::new(
            "Responses passthrough CPU/request (µs)",
            "µs",
            1,
            Limit::AtMost(RESPONSES_FACTOR),
            f.responses.cpu_us_per_req(0),
        )
        .judge_ratio_to("chat CPU/request", cg.cpu_us_per_req(0)),
        Check::new(
            "translated Responses stream CPU/request (µs)",
            "µs",
            1,
            Limit::AtMost(TRANSLATED_STREAM_FACTOR),
            f.responses_translated.cpu_us_per_req(0),
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

/// Why a limited run did not measure limits, if it did not: some responses lacked the rate-limit
/// headers, so the key's limits were not checked for them.
fn unlimited(run: &Run) -> Option<String> {
    (run.rate_limited < run.ok() as u64).then(|| {
        format!(
            "{} of {} responses carried no {RATE_LIMIT_HEADER}: the key's limits did not apply",
            group((run.ok() as u64 - run.rate_limited) as f64, 0),
            group(run.ok() as f64, 0)
        )
    })
}

/// "At most one Redis round trip per request": the gateway's own commands per request, settles
/// left out, from the `MONITOR` sample; without one, every script call on the server per request
/// over the measured run, against a looser bound that allows for the batched settles.
fn redis_check(cluster: &Result<ClusterRun, ClusterMiss>) -> Check {
    const FIGURE: &str = "Redis-backed path adds at most one Redis round trip per request (calls/request)";
    let c = match cluster {
        Ok(c) => c,
        Err(miss) => {
            return Check::new(FIGURE, "calls", 3, Limit::AtMost(REDIS_CALLS_PER_REQUEST), f64::NAN)
                .invalid_if(Some(miss.reason.clone()));
        }
    };
    let requests = c.requests();
    let scripts = c.server.script_calls();
    let total = scripts as f64 / requests.max(1) as f64;
    // Fewer script calls than requests: some limits were answered by the gateway's local fallback
    // (Redis slow or unreachable), and those requests made no round trip at all.
    let fell_back = (scripts < requests).then(|| {
        format!(
            "Redis ran {} script calls for {} requests of the measured run: some limits were counted locally (fallback)",
            group(scripts as f64, 0),
            group(requests as f64, 0)
        )
    });
    let invalid = unlimited(&c.measured.run).or(fell_back);
    match &c.split {
        Ok(s) => {
            let acquired = (s.acquire < s.requests).then(|| {
                format!(
                    "only {} of the sample's {} requests acquired on Redis: the rest were counted locally",
                    group(s.acquire as f64, 0),
                    group(s.requests as f64, 0)
                )
            });
            Check::new(FIGURE, "calls", 3, Limit::AtMost(REDIS_CALLS_PER_REQUEST), s.per_request(s.request_path()))
                .note(format!(
                    "acquire {:.3} + other {:.3}, MONITOR sample of {} requests; settles {:.3} more, batched, off the \
                     request path",
                    s.per_request(s.acquire),
                    s.per_request(s.request_path() - s.acquire),
                    group(s.requests as f64, 0),
                    s.per_request(s.settle),
                ))
                .invalid_if(invalid.or(acquired))
        }
        Err(why) => Check::new(FIGURE, "calls", 3, Limit::AtMost(REDIS_CALLS_WITH_SETTLES), total)
            .note(format!(
                "all script calls of the measured run, batched settles included: acquires not told apart \
                 from settles ({why})"
            ))
            .invalid_if(invalid),
    }
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
    let limited = f.limited.busy_pct(0);
    if single.min(limited) < 90.0 {
        notes.push(format!(
            "the gateway's core was {single:.0}% busy with chat and {limited:.0}% with limited chat: below 90%, \
             each request pays more wake-ups alone, so their CPU difference is not like with like"
        ));
    }
    if let Ok(c) = f.cluster
        && c.measured.busy_pct(0) < 90.0
    {
        notes.push(format!(
            "the Redis-backed gateway's core was {:.0}% busy: Redis itself took about {:.0}% of a CPU, wherever \
             the scheduler put it, beside this tool and the upstream mock; below 90%, each request pays more \
             wake-ups alone, so its CPU per request is not like with like with chat's",
            c.measured.busy_pct(0),
            c.server.cpu.as_secs_f64() / c.measured.run.wall.as_secs_f64() * 100.0,
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

    /// A run of `ok` responses, `with_headers` of them carrying the rate-limit headers, that cost
    /// the gateway `cpu_us` each.
    fn limited_run(ok: usize, with_headers: u64, cpu_us: f64) -> Measured {
        let run = Run {
            latencies_us: vec![100; ok],
            rate_limited: with_headers,
            wall: std::time::Duration::from_secs(1),
            ..Run::default()
        };
        let cpu = std::time::Duration::from_secs_f64(cpu_us * ok as f64 / 1e6);
        Measured { run, cpu: vec![cpu], others: Default::default(), window: std::time::Duration::from_secs(1) }
    }

    fn limited_check(m: &Measured, chat_us: f64) -> Check {
        Check::new("limited", "µs", 1, Limit::AtMost(f64::INFINITY), m.cpu_us_per_req(0))
            .judge_within_band("chat", chat_us, 1.0, LIMITED_PLUS_US)
            .invalid_if(unlimited(&m.run))
    }

    #[test]
    fn limited_chat_may_cost_ten_microseconds_more_when_every_response_was_limited() {
        assert!(limited_check(&limited_run(1000, 1000, 50.0), 40.0).pass());
        assert!(!limited_check(&limited_run(1000, 1000, 50.2), 40.0).pass());
        // A response without the headers was not limited: the figure does not measure limits.
        let partly = limited_run(1000, 999, 40.0);
        assert_eq!(
            unlimited(&partly.run).as_deref(),
            Some("1 of 1,000 responses carried no x-ratelimit-limit-requests: the key's limits did not apply")
        );
        assert!(!limited_check(&partly, 40.0).pass());
    }

    fn cluster(requests: usize, script_calls: u64, split: Result<crate::redis::CallSplit, String>) -> ClusterRun {
        ClusterRun {
            measured: limited_run(requests, requests as u64, 60.0),
            server: crate::redis::ServerStats {
                calls: [("evalsha".to_string(), script_calls)].into(),
                cpu: Default::default(),
            },
            redis_version: "7".into(),
            split,
            sample_errors: 0,
            log: String::new(),
        }
    }

    fn sample(requests: u64, acquire: u64, settle: u64, other: &[(&str, u64)]) -> crate::redis::CallSplit {
        crate::redis::CallSplit {
            requests,
            acquire_script: "sha".into(),
            acquire,
            settle,
            other: other.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            foreign: 0,
        }
    }

    #[test]
    fn one_acquire_per_request_passes_and_settles_do_not_count() {
        let check = redis_check(&Ok(cluster(1000, 1100, Ok(sample(2001, 2001, 300, &[])))));
        assert!(check.pass());
        assert_eq!(check.gateway, 1.0);
        // Another command on the request path is a second round trip.
        assert!(!redis_check(&Ok(cluster(1000, 1100, Ok(sample(2001, 2001, 0, &[("hmget", 2001)]))))).pass());
        // Requests that acquired locally made no round trip: not a pass.
        let fell_back = redis_check(&Ok(cluster(1000, 1100, Ok(sample(2001, 1500, 0, &[])))));
        assert!(!fell_back.pass() && fell_back.invalid.is_some());
        let measured_fell_back = redis_check(&Ok(cluster(1000, 900, Ok(sample(2001, 2001, 0, &[])))));
        assert!(!measured_fell_back.pass() && measured_fell_back.invalid.is_some());
    }

    #[test]
    fn without_a_sample_all_script_calls_count_against_a_looser_bound() {
        assert!(redis_check(&Ok(cluster(1000, 1200, Err("no MONITOR".into())))).pass());
        assert!(!redis_check(&Ok(cluster(1000, 1201, Err("no MONITOR".into())))).pass());
    }

    #[test]
    fn unreachable_redis_is_a_miss_with_its_reason() {
        let miss = ClusterMiss { reason: "Redis unreachable at 127.0.0.1:6379: refused".into(), unreachable: true };
        let check = redis_check(&Err(miss));
        assert!(!check.pass());
        assert_eq!(check.invalid.as_deref(), Some("Redis unreachable at 127.0.0.1:6379: refused"));
        assert_eq!(check.to_json()["gateway"], Value::Null);
    }

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
