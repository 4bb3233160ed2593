//! [`LocalCounters`]: the rate-limit and budget counters of a single instance, kept in this process.
//!
//! Counters live in 64 shards, each a `Mutex<HashMap>`, chosen by the hash of the key. A request
//! locks only the shards of its own keys (a handful), always in ascending shard order, so two
//! requests that share no shard never wait for each other and two that do cannot deadlock. Inside
//! the locks a call is a few hash look-ups and integer operations.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::counters::{Acquired, Counters, Limit, LimitState, Settle};
use crate::UnixMillis;

const SHARDS: usize = 64;
/// A shard is swept of run-out counters on an insert when it has grown past twice its size after
/// the last sweep (but not below this size), or a minute after the last sweep: amortised O(1) per
/// insert, and a shard holds little more than the counters live now plus those created in the last
/// minute or two — a flood of one-off keys (e.g. client IPs) cannot grow it without bound.
const MIN_SWEEP_LEN: usize = 64;
const SWEEP_EVERY: Duration = Duration::from_secs(60);

type Clock = Arc<dyn Fn() -> UnixMillis + Send + Sync>;

/// In-process [`Counters`].
///
/// Rate limits are GCRA with the theoretical arrival time (TAT) kept in microseconds: a unit of
/// `limit` per `period` takes `period / limit`, which is often below a millisecond (100,000 tokens
/// per minute is 0.6 ms a token). A request's share is rounded down to whole microseconds, so a
/// limit that does not divide its period still lets exactly `limit` units through at once.
///
/// A budget admits a reservation when the window's spend plus reservations stays within the limit
/// *and* the budget is not yet used up: a spent budget refuses even a request estimated at $0,
/// whose real cost is unknown. A budget of 0, like a rate limit of 0, refuses everything.
pub struct LocalCounters {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Injectable so tests step time instead of sleeping.
    clock: Clock,
}

#[derive(Default)]
struct Shard {
    /// Rate key → TAT (Unix µs). An entry whose TAT has passed means a full bucket, the same as no
    /// entry, so it may be dropped at any time.
    rates: HashMap<String, u64>,
    budgets: HashMap<String, BudgetWindow>,
    /// Sweep when `len()` exceeds this.
    sweep_above: usize,
    /// When the last sweep ran.
    swept_at: UnixMillis,
}

/// Kept apart (as the Redis hash is) so that giving back a reservation can never eat into
/// settled spend.
#[derive(Debug, Clone, Copy, Default)]
struct BudgetWindow {
    /// Settled spend, micro-USD.
    spent: u64,
    /// Open reservations, micro-USD.
    reserved: u64,
    /// From then on the entry counts as absent.
    window_end: UnixMillis,
}

impl BudgetWindow {
    /// This window's entry, or an empty one if it has none or it has ended.
    fn current(entry: Option<&Self>, window_end: UnixMillis, now: UnixMillis) -> Self {
        entry.filter(|b| b.window_end > now).copied().unwrap_or(Self { window_end, ..Self::default() })
    }

    fn used(&self) -> u64 {
        self.spent.saturating_add(self.reserved)
    }
}

/// What a tentative change replaced, to put back when another limit of the same call refuses.
/// `pos` is the shard's place among the call's locked shards.
enum Undo {
    Rate { pos: usize, key: String, old: Option<u64> },
    Budget { pos: usize, key: String, old: Option<BudgetWindow> },
}

impl Default for LocalCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalCounters {
    /// Counters on the system clock ([`UnixMillis::now`]).
    pub fn new() -> Self {
        Self::with_clock(UnixMillis::now)
    }

    /// Counters on the given clock.
    pub fn with_clock(clock: impl Fn() -> UnixMillis + Send + Sync + 'static) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            hasher: RandomState::new(),
            clock: Arc::new(clock),
        }
    }

    /// [`Counters::acquire`], without the `async`: nothing here waits.
    pub fn acquire_now(&self, limits: &[Limit]) -> Acquired {
        let now = (self.clock)();
        let shard_of: Vec<usize> = limits.iter().map(|l| self.shard_index(l.key())).collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        // Ascending shard order: every caller takes locks in the same order, so none deadlocks.
        let mut guards: Vec<MutexGuard<'_, Shard>> = order.iter().map(|&i| lock(&self.shards[i])).collect();

        // Each limit is applied tentatively, in order, so a later limit on the same key sees the
        // earlier one's take; if any refuses, everything is put back before the locks are released.
        let mut states = Vec::with_capacity(limits.len());
        let mut undo = Vec::with_capacity(limits.len());
        let mut allowed = true;
        for (limit, shard) in limits.iter().zip(&shard_of) {
            // Where this shard's guard is in `guards` (`order` holds every shard of `shard_of`).
            let pos = order.partition_point(|s| s < shard);
            let guard = &mut guards[pos];
            let state = match limit {
                Limit::Rate { key, limit, period, cost } => {
                    let old = guard.rates.get(key.as_str()).copied();
                    let (state, new_tat) = gcra(old, micros_at(now), *limit, micros(*period), *cost);
                    if let Some(tat) = new_tat {
                        guard.rates.insert(key.clone(), tat);
                        undo.push(Undo::Rate { pos, key: key.clone(), old });
                    }
                    state
                }
                Limit::Budget { key, limit, window_end, reserve } => {
                    let old = guard.budgets.get(key.as_str()).copied();
                    let mut entry = BudgetWindow::current(old.as_ref(), *window_end, now);
                    let state = budget(entry.used(), *limit, *window_end, *reserve, now);
                    if state.allowed {
                        entry.reserved = entry.reserved.saturating_add(*reserve);
                        guard.budgets.insert(key.clone(), entry);
                        undo.push(Undo::Budget { pos, key: key.clone(), old });
                    }
                    state
                }
            };
            allowed &= state.allowed;
            states.push(state);
        }

        if !allowed {
            for u in undo.into_iter().rev() {
                match u {
                    Undo::Rate { pos, key, old: Some(tat) } => _ = guards[pos].rates.insert(key, tat),
                    Undo::Rate { pos, key, old: None } => _ = guards[pos].rates.remove(&key),
                    Undo::Budget { pos, key, old: Some(b) } => _ = guards[pos].budgets.insert(key, b),
                    Undo::Budget { pos, key, old: None } => _ = guards[pos].budgets.remove(&key),
                }
            }
        } else {
            for guard in &mut guards {
                guard.maybe_sweep(now);
            }
        }
        Acquired { allowed, states, local_fallback: false }
    }

    /// [`Counters::settle`], without the `async`. Each settle stands alone, so one shard is
    /// locked at a time.
    pub fn settle_now(&self, settles: &[Settle]) {
        let now = (self.clock)();
        let now_us = micros_at(now);
        for settle in settles {
            match settle {
                Settle::Rate { key, limit, period, delta } => {
                    if *limit == 0 || *delta == 0 {
                        continue;
                    }
                    let share = share_us(delta.unsigned_abs(), micros(*period), *limit);
                    let mut shard = self.lock_key(key);
                    let tat = shard.rates.get(key.as_str()).copied().unwrap_or(now_us).max(now_us);
                    if *delta > 0 {
                        shard.rates.insert(key.clone(), tat.saturating_add(share));
                        shard.maybe_sweep(now);
                    } else {
                        // Given back, but never below now: an idle bucket cannot bank more than full.
                        let tat = tat.saturating_sub(share);
                        if tat > now_us {
                            shard.rates.insert(key.clone(), tat);
                        } else {
                            shard.rates.remove(key.as_str());
                        }
                    }
                }
                Settle::Budget { key, window_end, reserved, spent } => {
                    // A window that has ended is gone: its spend is history (the request log keeps
                    // it), not part of the current window's budget.
                    if *window_end <= now {
                        continue;
                    }
                    let mut shard = self.lock_key(key);
                    let mut entry = BudgetWindow::current(shard.budgets.get(key.as_str()), *window_end, now);
                    entry.reserved = entry.reserved.saturating_sub(*reserved);
                    entry.spent = entry.spent.saturating_add(*spent);
                    shard.budgets.insert(key.clone(), entry);
                    shard.maybe_sweep(now);
                }
            }
        }
    }

    /// [`Counters::budget_spent`], without the `async`.
    pub fn spent(&self, key: &str) -> u64 {
        let now = (self.clock)();
        self.lock_key(key).budgets.get(key).filter(|b| b.window_end > now).map_or(0, BudgetWindow::used)
    }

    /// Drops every counter that has run out (full buckets, ended windows). Inserts already do this
    /// shard by shard as shards grow; call it to shrink at once (e.g. from a periodic task).
    pub fn sweep(&self) {
        let now = (self.clock)();
        for shard in self.shards.iter() {
            lock(shard).sweep(now);
        }
    }

    /// Counters held, including ones that have run out but are not yet swept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_index(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    fn lock_key(&self, key: &str) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.shard_index(key)])
    }
}

#[async_trait]
impl Counters for LocalCounters {
    async fn acquire(&self, limits: &[Limit]) -> Acquired {
        self.acquire_now(limits)
    }

    async fn settle(&self, settles: &[Settle]) {
        self.settle_now(settles);
    }

    async fn budget_spent(&self, key: &str) -> u64 {
        self.spent(key)
    }
}

impl Shard {
    fn new() -> Self {
        Self { sweep_above: MIN_SWEEP_LEN, ..Self::default() }
    }

    fn len(&self) -> usize {
        self.rates.len() + self.budgets.len()
    }

    fn maybe_sweep(&mut self, now: UnixMillis) {
        if self.len() > self.sweep_above || now.saturating_sub(self.swept_at) >= SWEEP_EVERY {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: UnixMillis) {
        let now_us = micros_at(now);
        self.rates.retain(|_, tat| *tat > now_us);
        self.budgets.retain(|_, b| b.window_end > now);
        self.sweep_above = (self.len() * 2).max(MIN_SWEEP_LEN);
        self.swept_at = now;
    }
}

/// No code panics while holding a shard lock (all arithmetic saturates), so a poisoned lock still
/// guards consistent data.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `now` in Unix µs: the grain of GCRA's arrival times, whose per-unit shares are often below a
/// millisecond (so they stay bare integers inside this module).
fn micros_at(now: UnixMillis) -> u64 {
    now.as_millis().saturating_mul(1000)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `units × period / limit` in whole µs, rounded down (`limit` > 0).
fn share_us(units: u64, period_us: u64, limit: u64) -> u64 {
    u64::try_from(u128::from(units) * u128::from(period_us) / u128::from(limit)).unwrap_or(u64::MAX)
}

/// One GCRA check: the limit's state and, when allowed, the new TAT to store.
fn gcra(stored_tat: Option<u64>, now_us: u64, limit: u64, period_us: u64, cost: u64) -> (LimitState, Option<u64>) {
    if limit == 0 {
        let state = LimitState {
            allowed: false,
            remaining: 0,
            reset: Duration::ZERO,
            retry_after: Duration::from_micros(period_us),
        };
        return (state, None);
    }
    let tat = stored_tat.unwrap_or(now_us).max(now_us);
    let new_tat = tat.saturating_add(share_us(cost, period_us, limit));
    let ahead = new_tat - now_us;
    if ahead <= period_us {
        let remaining = u64::try_from(u128::from(period_us - ahead) * u128::from(limit) / u128::from(period_us))
            .unwrap_or(u64::MAX);
        let state =
            LimitState { allowed: true, remaining, reset: Duration::from_micros(ahead), retry_after: Duration::ZERO };
        (state, Some(new_tat))
    } else {
        let state = LimitState {
            allowed: false,
            remaining: 0,
            reset: Duration::from_micros(tat - now_us),
            retry_after: Duration::from_micros(ahead - period_us),
        };
        (state, None)
    }
}

fn budget(used: u64, limit: u64, window_end: UnixMillis, reserve: u64, now: UnixMillis) -> LimitState {
    let reset = window_end.saturating_sub(now);
    let after = used.saturating_add(reserve);
    if used < limit && after <= limit {
        LimitState { allowed: true, remaining: limit - after, reset, retry_after: Duration::ZERO }
    } else {
        LimitState { allowed: false, remaining: 0, reset, retry_after: reset }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    /// 2026-11-22T13:45:30Z
    const T0: UnixMillis = UnixMillis::from_millis(1_795_355_130_000);

    fn clocked() -> (LocalCounters, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(T0.as_millis()));
        let clock = Arc::clone(&now);
        (LocalCounters::with_clock(move || UnixMillis::from_millis(clock.load(Ordering::SeqCst))), now)
    }

    fn advance(now: &AtomicU64, ms: u64) {
        now.fetch_add(ms, Ordering::SeqCst);
    }

    fn rpm(key: &str, limit: u64) -> Limit {
        Limit::Rate { key: key.into(), limit, period: MINUTE, cost: 1 }
    }

    fn tpm(key: &str, limit: u64, cost: u64) -> Limit {
        Limit::Rate { key: key.into(), limit, period: MINUTE, cost }
    }

    fn budget_limit(key: &str, limit: u64, window_end: UnixMillis, reserve: u64) -> Limit {
        Limit::Budget { key: key.into(), limit, window_end, reserve }
    }

    #[test]
    fn gcra_lets_the_limit_through_then_one_more_per_interval() {
        let (c, now) = clocked();
        let l = [rpm("rl:req:key:k", 5)];
        for expected_remaining in [4, 3, 2, 1, 0] {
            let a = c.acquire_now(&l);
            assert!(a.allowed);
            assert_eq!(a.states[0].remaining, expected_remaining);
        }
        let refused = c.acquire_now(&l);
        assert!(!refused.allowed);
        assert_eq!(
            refused.states[0],
            LimitState { allowed: false, remaining: 0, reset: MINUTE, retry_after: Duration::from_secs(12) }
        );

        advance(&now, 11_999);
        assert!(!c.acquire_now(&l).allowed);
        advance(&now, 1);
        let again = c.acquire_now(&l);
        assert!(again.allowed);
        assert_eq!(again.states[0].remaining, 0);
        assert_eq!(again.states[0].reset, MINUTE);
        assert!(!c.acquire_now(&l).allowed);

        // Idle for a whole period: the full burst is back, no more.
        advance(&now, 60_000);
        let full = c.acquire_now(&l);
        assert_eq!((full.allowed, full.states[0].remaining, full.states[0].reset), (true, 4, Duration::from_secs(12)));
    }

    #[test]
    fn a_limit_that_does_not_divide_its_period_still_admits_exactly_the_limit() {
        let (c, _) = clocked();
        let l = [rpm("k", 7)];
        for _ in 0..7 {
            assert!(c.acquire_now(&l).allowed);
        }
        assert!(!c.acquire_now(&l).allowed);
    }

    #[test]
    fn token_limits_take_the_cost_and_settle_gives_back_or_takes_more() {
        let (c, _) = clocked();
        let key = "rl:tok:key:k";
        let first = c.acquire_now(&[tpm(key, 1000, 400)]);
        assert_eq!((first.allowed, first.states[0].remaining), (true, 600));
        assert_eq!(first.states[0].reset, Duration::from_secs(24));
        assert_eq!(c.acquire_now(&[tpm(key, 1000, 400)]).states[0].remaining, 200);
        let refused = c.acquire_now(&[tpm(key, 1000, 400)]);
        assert!(!refused.allowed);
        // 200 more units must drain: 200 × 60 ms.
        assert_eq!(refused.states[0].retry_after, Duration::from_secs(12));

        // The second request used 100 tokens, not 400: 300 come back.
        c.settle_now(&[Settle::Rate { key: key.into(), limit: 1000, period: MINUTE, delta: -300 }]);
        let after_refund = c.acquire_now(&[tpm(key, 1000, 400)]);
        assert_eq!((after_refund.allowed, after_refund.states[0].remaining), (true, 100));

        // A request that used 600 more than estimated overdraws the bucket; later ones wait.
        c.settle_now(&[Settle::Rate { key: key.into(), limit: 1000, period: MINUTE, delta: 600 }]);
        let refused = c.acquire_now(&[tpm(key, 1000, 1)]);
        assert!(!refused.allowed);
        assert_eq!(refused.states[0].reset, Duration::from_secs(90));
        assert_eq!(refused.states[0].retry_after, Duration::from_millis(30_060));
    }

    #[test]
    fn giving_back_never_banks_more_than_a_full_bucket() {
        let (c, _) = clocked();
        c.acquire_now(&[tpm("k", 100, 10)]);
        c.settle_now(&[Settle::Rate { key: "k".into(), limit: 100, period: MINUTE, delta: -1000 }]);
        assert!(c.is_empty());
        let a = c.acquire_now(&[tpm("k", 100, 100)]);
        assert!(a.allowed);
        assert!(!c.acquire_now(&[tpm("k", 100, 1)]).allowed);
    }

    #[test]
    fn all_or_nothing_a_refused_limit_leaves_the_others_untaken() {
        let (c, _) = clocked();
        let end = T0 + Duration::from_millis(3_600_000);
        assert!(c.acquire_now(&[budget_limit("b", 100, end, 100)]).allowed);
        let tok = tpm("t", 1000, 500);
        let refused = c.acquire_now(&[rpm("r", 1), tok.clone(), budget_limit("b", 100, end, 1)]);
        assert!(!refused.allowed);
        assert!(refused.states[0].allowed && refused.states[1].allowed && !refused.states[2].allowed);
        // Nothing of the passing limits was taken.
        let a = c.acquire_now(&[rpm("r", 1), tok]);
        assert!(a.allowed);
        assert_eq!(a.states[0].remaining, 0);
        assert_eq!(a.states[1].remaining, 500);
        assert_eq!(c.spent("b"), 100);
    }

    #[test]
    fn the_same_key_twice_in_one_call_counts_twice() {
        let (c, _) = clocked();
        let refused = c.acquire_now(&[rpm("r", 1), rpm("r", 1)]);
        assert!(!refused.allowed);
        assert!(refused.states[0].allowed && !refused.states[1].allowed);
        assert!(c.acquire_now(&[rpm("r", 1)]).allowed);
    }

    #[test]
    fn budgets_reserve_settle_refuse_and_expire_with_their_window() {
        let (c, now) = clocked();
        let end = T0 + Duration::from_millis(60_000);
        let key = "budget:key:k:hour:2026-11-22T13";
        for remaining in [700, 400, 100] {
            let a = c.acquire_now(&[budget_limit(key, 1000, end, 300)]);
            assert_eq!((a.allowed, a.states[0].remaining), (true, remaining));
            assert_eq!(a.states[0].reset, MINUTE);
        }
        let refused = c.acquire_now(&[budget_limit(key, 1000, end, 300)]);
        assert_eq!(refused.states[0], LimitState { allowed: false, remaining: 0, reset: MINUTE, retry_after: MINUTE });
        assert_eq!(c.spent(key), 900);

        // One request cost 100 of its 300, another 450.
        c.settle_now(&[Settle::Budget { key: key.into(), window_end: end, reserved: 300, spent: 100 }]);
        assert_eq!(c.spent(key), 700);
        c.settle_now(&[Settle::Budget { key: key.into(), window_end: end, reserved: 300, spent: 450 }]);
        assert_eq!(c.spent(key), 850);
        assert!(c.acquire_now(&[budget_limit(key, 1000, end, 150)]).allowed);
        // Used up exactly: even a request estimated at nothing is refused.
        assert!(!c.acquire_now(&[budget_limit(key, 1000, end, 0)]).allowed);

        advance(&now, 60_000);
        assert_eq!(c.spent(key), 0);
        // A settle that arrives after its window ended changes nothing.
        c.settle_now(&[Settle::Budget { key: key.into(), window_end: end, reserved: 300, spent: 900 }]);
        assert_eq!(c.spent(key), 0);
        let next_end = end + Duration::from_secs(3600);
        let a = c.acquire_now(&[budget_limit(key, 1000, next_end, 300)]);
        assert_eq!((a.allowed, a.states[0].remaining), (true, 700));
    }

    #[test]
    fn giving_back_a_reservation_never_eats_settled_spend() {
        let (c, _) = clocked();
        let end = T0 + Duration::from_millis(60_000);
        assert!(c.acquire_now(&[budget_limit("b", 1000, end, 300)]).allowed);
        c.settle_now(&[Settle::Budget { key: "b".into(), window_end: end, reserved: 300, spent: 250 }]);
        // The same settle again (a retried settle, or a reservation that is no longer there).
        c.settle_now(&[Settle::Budget { key: "b".into(), window_end: end, reserved: 300, spent: 0 }]);
        assert_eq!(c.spent("b"), 250);
    }

    #[test]
    fn zero_limits_refuse_everything() {
        let (c, _) = clocked();
        assert!(!c.acquire_now(&[rpm("r", 0)]).allowed);
        assert!(!c.acquire_now(&[budget_limit("b", 0, T0 + Duration::from_millis(1000), 0)]).allowed);
        assert!(c.acquire_now(&[]).allowed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_never_overspend() {
        let c = Arc::new(LocalCounters::new());
        let end = UnixMillis::now() + Duration::from_secs(3600);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let c = Arc::clone(&c);
            tasks.spawn(async move {
                // Other keys in the same call spread the locks over several shards.
                let limits = [rpm(&format!("r{i}"), 10), budget_limit("b", 500, end, 100)];
                c.acquire(&limits).await.allowed
            });
        }
        let allowed = tasks.join_all().await.into_iter().filter(|a| *a).count();
        assert_eq!(allowed, 5);
        assert_eq!(c.budget_spent("b").await, 500);

        // Reserve, then settle at exactly the reservation: still at most 5 in the window.
        let c = Arc::new(LocalCounters::new());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let c = Arc::clone(&c);
            tasks.spawn(async move {
                let ok = c.acquire(&[budget_limit("b", 500, end, 100)]).await.allowed;
                if ok {
                    tokio::task::yield_now().await;
                    c.settle(&[Settle::Budget { key: "b".into(), window_end: end, reserved: 100, spent: 100 }]).await;
                }
                ok
            });
        }
        let allowed = tasks.join_all().await.into_iter().filter(|a| *a).count();
        assert_eq!(allowed, 5);
        assert_eq!(c.budget_spent("b").await, 500);
    }

    #[test]
    fn concurrent_threads_with_overlapping_keys_neither_deadlock_nor_overshoot() {
        // A stopped clock: no refill however slowly a loaded machine runs the threads.
        let c = LocalCounters::with_clock(|| T0);
        let passed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (c, passed) = (&c, &passed);
                s.spawn(move || {
                    for i in 0..200 {
                        // Keys in opposite orders on alternate threads.
                        let mut l = vec![rpm("shared", 100), rpm(&format!("t{t}-{i}"), 1), rpm("other", 1_000_000)];
                        if t % 2 == 1 {
                            l.reverse();
                        }
                        if c.acquire_now(&l).allowed {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(passed.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn ended_counters_are_evicted_as_shards_grow_and_on_sweep() {
        let (c, now) = clocked();
        for i in 0..10_000 {
            c.acquire_now(&[
                rpm(&format!("ip:{i}"), 60),
                budget_limit(&format!("b:{i}"), 10, T0 + Duration::from_millis(30_000), 1),
            ]);
        }
        assert_eq!(c.len(), 20_000);

        // A minute later every one of them has run out, and the next insert into each shard
        // sweeps it: only the new traffic's counters are left.
        advance(&now, 60_000);
        for i in 0..10_000 {
            c.acquire_now(&[rpm(&format!("new:{i}"), 60)]);
        }
        assert_eq!(c.len(), 10_000);
        // And an explicit sweep clears whatever has run out.
        advance(&now, 60_000);
        c.sweep();
        assert!(c.is_empty());
    }
}
