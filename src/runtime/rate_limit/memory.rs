//! The in-process [`RateLimiter`]: one log of accepted timestamps per key (a deque of at most
//! `limit` entries) behind a sharded `std::sync::Mutex` that is never held across an `.await`.
//! Memory is bounded: idle keys are swept opportunistically and by a background sweeper, and a
//! full shard evicts its least recently used key. Limits are per process (no sharing).

use super::{Decision, RateLimiter};
use crate::domain::clock::{SharedClock, SystemClock};
use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

/// Bounds of the in-process limiter.
#[derive(Clone, Copy, Debug)]
pub struct MemoryOptions {
    /// Keys (namespace + key) kept at most, across all shards. Beyond that the least recently used
    /// key of the shard is forgotten (that client starts with a fresh budget).
    pub max_keys: usize,
    /// Independent locks; a power of two.
    pub shards: usize,
    /// A shard sweeps its idle keys every this many checks.
    pub sweep_every: u32,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            max_keys: 100_000,
            shards: 32,
            sweep_every: 4096,
        }
    }
}

/// Accepted timestamps of one key, oldest first, in microseconds since the limiter's start.
struct Log {
    window_us: u64,
    stamps: VecDeque<u64>,
}

impl Log {
    /// True when nothing in the log is inside its window any more.
    fn is_idle(&self, now: u64) -> bool {
        self.stamps
            .back()
            .is_none_or(|&t| t.saturating_add(self.window_us) <= now)
    }
}

#[derive(Default)]
struct Shard {
    logs: HashMap<String, Log>,
    checks: u32,
}

impl Shard {
    fn sweep(&mut self, now: u64) {
        self.logs.retain(|_, log| !log.is_idle(now));
    }

    /// Makes room for one more key: sweep, then forget the least recently used key.
    fn make_room(&mut self, now: u64, capacity: usize) {
        if self.logs.len() < capacity {
            return;
        }
        self.sweep(now);
        while self.logs.len() >= capacity {
            let lru = self
                .logs
                .iter()
                .min_by_key(|(_, log)| log.stamps.back().copied().unwrap_or(0))
                .map(|(k, _)| k.clone());
            match lru {
                Some(key) => self.logs.remove(&key),
                None => break,
            };
        }
    }
}

pub struct MemoryRateLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Windows are measured on this clock's monotonic reading.
    clock: SharedClock,
    options: MemoryOptions,
    per_shard: usize,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(MemoryOptions::default())
    }
}

impl MemoryRateLimiter {
    pub fn new(options: MemoryOptions) -> Self {
        let shards = options.shards.max(1).next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            clock: SystemClock::shared(),
            per_shard: options.max_keys.div_ceil(shards).max(1),
            options,
        }
    }

    /// The same limiter measuring its windows on `clock` (the application's, or a test's
    /// [`crate::domain::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Starts a task that sweeps idle keys every `every`; it ends when the limiter is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        crate::tasks::spawn_loop("rate_limit_sweeper", async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(limiter) => limiter.sweep(),
                    None => return,
                }
            }
        });
    }

    /// Forgets every key whose requests have all aged out of their window.
    pub fn sweep(&self) {
        let now = self.now_us();
        for shard in self.shards.iter() {
            lock(shard).sweep(now);
        }
    }

    /// Keys currently remembered (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).logs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_us(&self) -> u64 {
        self.clock.monotonic().as_micros() as u64
    }

    fn shard(&self, id: &str) -> &Mutex<Shard> {
        let i = self.hasher.hash_one(id) as usize & (self.shards.len() - 1);
        &self.shards[i]
    }

    /// The check with the clock passed in: `now` in microseconds since the limiter started, or
    /// `None` to read the clock under the shard lock (so timestamps in a log never go backwards).
    fn check_at(
        &self,
        namespace: &str,
        key: &str,
        limit: u32,
        window: Duration,
        now: Option<u64>,
    ) -> Decision {
        let window_us = (window.as_micros() as u64).max(1);
        let id = format!("{namespace}\u{1f}{key}");
        let mut shard = lock(self.shard(&id));
        let now = now.unwrap_or_else(|| self.now_us());
        shard.checks = shard.checks.wrapping_add(1);
        if shard.checks.is_multiple_of(self.options.sweep_every.max(1)) {
            shard.sweep(now);
        }
        if !shard.logs.contains_key(&id) {
            if limit == 0 {
                return rejected(limit, window);
            }
            shard.make_room(now, self.per_shard);
            shard.logs.insert(
                id.clone(),
                Log {
                    window_us,
                    stamps: VecDeque::new(),
                },
            );
        }
        let log = shard.logs.get_mut(&id).expect("inserted above");
        log.window_us = window_us;
        // Keep the log sorted even if a caller-supplied clock went backwards.
        let now = log.stamps.back().map_or(now, |&last| now.max(last));
        while log
            .stamps
            .front()
            .is_some_and(|&t| t.saturating_add(window_us) <= now)
        {
            log.stamps.pop_front();
        }
        let count = log.stamps.len() as u64;
        if count < u64::from(limit) {
            log.stamps.push_back(now);
            let oldest = *log.stamps.front().expect("just pushed");
            Decision {
                allowed: true,
                limit,
                remaining: (u64::from(limit) - count - 1) as u32,
                reset_after: Duration::from_micros(oldest + window_us - now),
            }
        } else {
            match log.stamps.front() {
                Some(&oldest) => Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_after: Duration::from_micros(oldest + window_us - now),
                },
                None => rejected(limit, window),
            }
        }
    }
}

fn rejected(limit: u32, window: Duration) -> Decision {
    Decision {
        allowed: false,
        limit,
        remaining: 0,
        reset_after: window,
    }
}

/// A poisoned shard only means another thread panicked mid-check; its data is still a valid log.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, namespace: &str, key: &str, limit: u32, window: Duration) -> Decision {
        self.check_at(namespace, key, limit, window, None)
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MS: u64 = 1000;

    fn at(l: &MemoryRateLimiter, key: &str, limit: u32, window_ms: u64, now_ms: u64) -> Decision {
        l.check_at(
            "ns",
            key,
            limit,
            Duration::from_millis(window_ms),
            Some(now_ms * MS),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_limiter_passes_the_contract() {
        let (clock, time) = super::super::contract::Time::manual();
        let limiter = MemoryRateLimiter::default().with_clock(clock);
        super::super::contract::run_all(Arc::new(limiter), time).await;
    }

    #[test]
    fn any_rolling_window_holds_at_most_max() {
        // A fixed window would let 3 through at 900 ms and 3 more at 1000 ms; a sliding one must not.
        let l = MemoryRateLimiter::default();
        for t in [0, 900, 900] {
            assert!(at(&l, "k", 3, 1000, t).allowed, "t={t}");
        }
        assert!(!at(&l, "k", 3, 1000, 950).allowed);
        assert!(!at(&l, "k", 3, 1000, 999).allowed);
        // At 1000 ms the request from 0 ms has aged out: exactly one slot frees.
        let d = at(&l, "k", 3, 1000, 1000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!at(&l, "k", 3, 1000, 1001).allowed);
        // The two from 900 ms age out at 1900 ms.
        let d = at(&l, "k", 3, 1000, 1899);
        assert!(!d.allowed);
        assert_eq!(d.reset_after, Duration::from_millis(1));
        assert!(at(&l, "k", 3, 1000, 1900).allowed);
        assert!(at(&l, "k", 3, 1000, 1900).allowed);
        assert!(!at(&l, "k", 3, 1000, 1900).allowed);
    }

    #[test]
    fn remaining_and_reset_count_down() {
        let l = MemoryRateLimiter::default();
        let d = at(&l, "k", 2, 60_000, 0);
        assert_eq!((d.allowed, d.remaining), (true, 1));
        assert_eq!(d.reset_after, Duration::from_secs(60));
        let d = at(&l, "k", 2, 60_000, 10_000);
        assert_eq!((d.allowed, d.remaining), (true, 0));
        assert_eq!(d.reset_after, Duration::from_secs(50));
        let d = at(&l, "k", 2, 60_000, 30_000);
        assert_eq!((d.allowed, d.remaining, d.limit), (false, 0, 2));
        assert_eq!(d.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(d.reset_after_secs(), 30);
    }

    #[test]
    fn retrying_while_rejected_does_not_extend_the_wait() {
        let l = MemoryRateLimiter::default();
        assert!(at(&l, "k", 1, 100, 0).allowed);
        for t in 1..100 {
            assert!(!at(&l, "k", 1, 100, t).allowed);
        }
        assert!(at(&l, "k", 1, 100, 100).allowed);
    }

    #[test]
    fn zero_limit_rejects_and_records_nothing() {
        let l = MemoryRateLimiter::default();
        assert!(!at(&l, "k", 0, 100, 0).allowed);
        assert!(l.is_empty());
    }

    #[test]
    fn idle_keys_are_swept_and_memory_stays_bounded() {
        let l = MemoryRateLimiter::new(MemoryOptions {
            max_keys: 64,
            shards: 4,
            sweep_every: 1_000_000,
        });
        for i in 0..1000 {
            assert!(at(&l, &format!("ip-{i}"), 5, 1000, i).allowed);
        }
        assert!(l.len() <= 64, "bounded: {}", l.len());
        // The most recent keys survive eviction and keep their budget.
        assert!(!at(&l, "ip-999", 1, 1000, 1000).allowed);
        // Once everything has aged out, a sweep forgets it all.
        l.check_at("ns", "late", 1, Duration::from_millis(1), Some(10_000 * MS));
        for shard in l.shards.iter() {
            lock(shard).sweep(20_000 * MS);
        }
        assert!(l.is_empty());
    }

    #[test]
    fn the_log_never_exceeds_the_limit() {
        let l = MemoryRateLimiter::default();
        for t in 0..10_000 {
            at(&l, "k", 7, 1_000_000, t);
        }
        let shard = lock(l.shard("ns\u{1f}k"));
        assert_eq!(shard.logs["ns\u{1f}k"].stamps.len(), 7);
    }

    /// Through the public `check`: the window is measured on the injected clock, so a test
    /// advances it instead of sleeping, and `sweep` forgets keys once it has moved past them.
    #[tokio::test]
    async fn the_window_follows_the_injected_clock() {
        let clock = Arc::new(crate::domain::clock::ManualClock::new());
        let l = MemoryRateLimiter::default().with_clock(clock.clone());
        let w = Duration::from_secs(60);
        assert!(l.check("ns", "k", 2, w).await.allowed);
        clock.advance(Duration::from_secs(20));
        assert!(l.check("ns", "k", 2, w).await.allowed);
        let d = l.check("ns", "k", 2, w).await;
        assert!(!d.allowed);
        assert_eq!(
            d.reset_after,
            Duration::from_secs(40),
            "the oldest ages out first"
        );
        clock.advance(Duration::from_secs(40) - Duration::from_micros(1));
        assert!(
            !l.check("ns", "k", 2, w).await.allowed,
            "not a microsecond early"
        );
        clock.advance(Duration::from_micros(1));
        assert!(
            l.check("ns", "k", 2, w).await.allowed,
            "exactly one slot freed"
        );
        assert!(!l.check("ns", "k", 2, w).await.allowed);
        l.sweep();
        assert_eq!(l.len(), 1, "still inside its window");
        clock.advance(w);
        l.sweep();
        assert!(l.is_empty(), "swept once the clock passed the window");
    }
}
