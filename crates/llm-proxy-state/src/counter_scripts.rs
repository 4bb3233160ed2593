//! [`CounterScripts`]: the two Lua scripts behind [`crate::RedisCounters`] and the pure functions
//! that turn limits into their arguments and their replies back into limit states. No I/O here,
//! so the encoding is unit-tested without a server.

use std::time::Duration;

use llm_proxy_core::shared_state::{Limit, LimitState, Settle};
use redis::Script;

/// Lua numbers are doubles: integers above this lose precision, so every number sent is capped
/// to it (a limit that large is unlimited in practice).
pub(crate) const MAX_SAFE: u64 = (1 << 53) - 1;

/// The scripts, hashed once. `redis::Script` sends `EVALSHA` and, when the server answers
/// `NOSCRIPT` (first use, or after a restart or `SCRIPT FLUSH`), loads the script and retries.
pub(crate) struct CounterScripts {
    pub acquire: Script,
    pub settle: Script,
}

impl CounterScripts {
    pub fn new() -> Self {
        Self { acquire: Script::new(ACQUIRE_LUA), settle: Script::new(SETTLE_LUA) }
    }
}

pub(crate) const ACQUIRE_LUA: &str = include_str!("lua/acquire.lua");
pub(crate) const SETTLE_LUA: &str = include_str!("lua/settle.lua");

/// KEYS and ARGV of one `acquire.lua` call.
pub(crate) fn acquire_args(prefix: &str, limits: &[Limit]) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::with_capacity(limits.len());
    let mut args = Vec::with_capacity(limits.len() * 4);
    for limit in limits {
        keys.push(format!("{prefix}{}", limit.key()));
        match limit {
            Limit::Rate { limit, period, cost, .. } => {
                args.extend(["r".to_string(), num(*limit), num(period_us(*period)), num(*cost)]);
            }
            Limit::Budget { limit, window_end, reserve, .. } => {
                args.extend(["b".to_string(), num(*limit), num(window_end.as_millis()), num(*reserve)]);
            }
        }
    }
    (keys, args)
}

/// KEYS and ARGV of one `settle.lua` call, without the settles that change nothing; `None` when
/// none is left (no round trip needed).
pub(crate) fn settle_args(prefix: &str, settles: &[Settle]) -> Option<(Vec<String>, Vec<String>)> {
    let mut keys = Vec::with_capacity(settles.len());
    let mut args = Vec::with_capacity(settles.len() * 4);
    for settle in settles {
        match settle {
            Settle::Rate { key, limit, period, delta } => {
                if *limit == 0 || *delta == 0 {
                    continue;
                }
                let delta = delta.clamp(&-(MAX_SAFE as i64), &(MAX_SAFE as i64)).to_string();
                keys.push(format!("{prefix}{key}"));
                args.extend(["r".to_string(), num(*limit), num(period_us(*period)), delta]);
            }
            Settle::Budget { key, window_end, reserved, spent } => {
                if *reserved == 0 && *spent == 0 {
                    continue;
                }
                keys.push(format!("{prefix}{key}"));
                args.extend(["b".to_string(), num(window_end.as_millis()), num(*reserved), num(*spent)]);
            }
        }
    }
    (!keys.is_empty()).then_some((keys, args))
}

/// The states of `acquire.lua`'s reply, or `None` when the reply does not have the expected shape
/// (a script from another version answering, say): the caller treats that as a failed call.
pub(crate) fn parse_acquire(reply: &[i64], limits: usize) -> Option<(bool, Vec<LimitState>)> {
    let (&all, rest) = reply.split_first()?;
    if rest.len() != limits * 4 {
        return None;
    }
    let states = rest
        .chunks_exact(4)
        .map(|c| LimitState {
            allowed: c[0] == 1,
            remaining: non_negative(c[1]),
            reset: Duration::from_micros(non_negative(c[2])),
            retry_after: Duration::from_micros(non_negative(c[3])),
        })
        .collect();
    Some((all == 1, states))
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn num(v: u64) -> String {
    v.min(MAX_SAFE).to_string()
}

/// The period in µs, at least 1 so that the script never divides by zero.
fn period_us(period: Duration) -> u64 {
    u64::try_from(period.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_SAFE)
}

#[cfg(test)]
mod tests {
    use llm_proxy_core::UnixMillis;

    use super::*;

    fn at(ms: u64) -> UnixMillis {
        UnixMillis::from_millis(ms)
    }

    #[test]
    fn limits_become_prefixed_keys_and_four_arguments_each() {
        let limits = [
            Limit::Rate { key: "rl:req:key:k".into(), limit: 5, period: Duration::from_secs(60), cost: 1 },
            Limit::Budget {
                key: "budget:key:k:day:2026-11-22".into(),
                limit: u64::MAX,
                window_end: at(7),
                reserve: 30,
            },
        ];
        let (keys, args) = acquire_args("llmp:", &limits);
        assert_eq!(keys, ["llmp:rl:req:key:k", "llmp:budget:key:k:day:2026-11-22"]);
        assert_eq!(args, ["r", "5", "60000000", "1", "b", "9007199254740991", "7", "30"]);
    }

    #[test]
    fn settles_that_change_nothing_cost_no_round_trip() {
        let minute = Duration::from_secs(60);
        let noop = [
            Settle::Rate { key: "a".into(), limit: 10, period: minute, delta: 0 },
            Settle::Rate { key: "b".into(), limit: 0, period: minute, delta: 5 },
            Settle::Budget { key: "c".into(), window_end: at(1), reserved: 0, spent: 0 },
        ];
        assert_eq!(settle_args("p:", &noop), None);

        let mixed = [
            noop[0].clone(),
            Settle::Rate { key: "t".into(), limit: 1000, period: Duration::ZERO, delta: -300 },
            Settle::Budget { key: "b".into(), window_end: at(9), reserved: 300, spent: 100 },
        ];
        let (keys, args) = settle_args("p:", &mixed).unwrap();
        assert_eq!(keys, ["p:t", "p:b"]);
        assert_eq!(args, ["r", "1000", "1", "-300", "b", "9", "300", "100"]);
    }

    #[test]
    fn replies_become_limit_states_and_bad_shapes_are_rejected() {
        let (all, states) = parse_acquire(&[0, 1, 4, 12_000_000, 0, 0, 0, 5, 60_000_000], 2).unwrap();
        assert!(!all);
        assert_eq!(
            states,
            [
                LimitState { allowed: true, remaining: 4, reset: Duration::from_secs(12), retry_after: Duration::ZERO },
                LimitState {
                    allowed: false,
                    remaining: 0,
                    reset: Duration::from_micros(5),
                    retry_after: Duration::from_secs(60)
                },
            ]
        );
        assert_eq!(parse_acquire(&[1, 1, 0, 0], 1), None);
        assert_eq!(parse_acquire(&[], 0), None);
        assert_eq!(parse_acquire(&[1], 0), Some((true, vec![])));
    }

    #[test]
    fn the_scripts_use_the_servers_clock_and_take_no_time_argument() {
        for script in [ACQUIRE_LUA, SETTLE_LUA] {
            assert!(script.contains("redis.call('TIME')"));
        }
        // Every argument is one of the four per limit (kind, limit, period or window end, cost):
        // there is no slot for the caller's "now".
        for script in [ACQUIRE_LUA, SETTLE_LUA] {
            let uses: Vec<_> = script.match_indices("ARGV[").map(|(i, _)| &script[i..i + 11]).collect();
            assert!(!uses.is_empty());
            assert!(uses.iter().all(|u| u.starts_with("ARGV[j + ")), "{uses:?}");
        }
    }
}
