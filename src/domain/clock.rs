//! The clock port: where "now" comes from for every decision made from time (session expiry,
//! rate-limit windows, job leases and retries, retention and link expiry, the realtime window,
//! email report periods) and for the periodic maintenance tasks' waits ([`Clock::sleep`]).
//! Production uses [`SystemClock`]; tests use [`ManualClock`] and advance it instead of sleeping.
//! Calls that only stamp a record (`createdAt`, `updatedAt`) may still read
//! [`crate::domain::timestamp::now_ms`] directly.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

/// What [`Clock::sleep`] returns.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of time. Two readings: the wall clock (epoch milliseconds, what records store) and
/// a monotonic reading (time since an arbitrary fixed origin, never going backwards) for windows
/// measured in-process.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Current time as UTC epoch milliseconds.
    fn now_ms(&self) -> i64;
    /// Time elapsed since this clock's origin; never decreases.
    fn monotonic(&self) -> Duration;
    /// Resolves once `d` has passed on this clock's monotonic reading: a timer on the real
    /// clock; on a [`ManualClock`], when an [`ManualClock::advance`] reaches it.
    fn sleep(&self, d: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The clock the services share (cheap to clone).
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: the system's wall clock and `Instant`.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// A [`SystemClock`] as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::domain::timestamp::now_ms()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told: [`ManualClock::advance`] moves both readings together.
/// Starts at the real current time, so records it stamps sit among real ones.
#[derive(Debug)]
pub struct ManualClock {
    start_ms: i64,
    /// Microseconds advanced since the start.
    elapsed_us: AtomicI64,
    /// Wakes the [`Clock::sleep`]s waiting on this clock at each advance.
    advanced: tokio::sync::Notify,
}

impl ManualClock {
    /// A clock standing at the real current time.
    pub fn new() -> Self {
        Self::at(crate::domain::timestamp::now_ms())
    }

    /// A clock standing at `ms` (epoch milliseconds).
    pub fn at(ms: i64) -> Self {
        Self {
            start_ms: ms,
            elapsed_us: AtomicI64::new(0),
            advanced: tokio::sync::Notify::new(),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.elapsed_us.fetch_add(us, Ordering::SeqCst);
        self.advanced.notify_waiters();
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.advance(Duration::from_millis(ms));
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.elapsed_us.load(Ordering::SeqCst) / 1000
    }

    fn monotonic(&self) -> Duration {
        Duration::from_micros(self.elapsed_us.load(Ordering::SeqCst).max(0) as u64)
    }

    fn sleep(&self, d: Duration) -> Sleep<'_> {
        let until = self.monotonic().saturating_add(d);
        Box::pin(async move {
            loop {
                // Registered before the reading, so an advance in between is not missed.
                let advanced = self.advanced.notified();
                tokio::pin!(advanced);
                advanced.as_mut().enable();
                if self.monotonic() >= until {
                    return;
                }
                advanced.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::at(1_000);
        assert_eq!((clock.now_ms(), clock.monotonic()), (1_000, Duration::ZERO));
        assert_eq!(clock.now_ms(), 1_000, "reading it does not move it");
        clock.advance(Duration::from_micros(1_500));
        assert_eq!(clock.now_ms(), 1_001);
        assert_eq!(clock.monotonic(), Duration::from_micros(1_500));
        clock.advance_ms(999);
        assert_eq!(
            clock.now_ms(),
            2_000,
            "1,000.5 ms later, in whole milliseconds"
        );
    }

    /// A sleep on a manual clock ends at the advance that reaches its deadline, not before
    /// (the checks wait on the sleeping task itself, never on real time).
    #[tokio::test]
    async fn a_sleep_on_a_manual_clock_ends_when_an_advance_reaches_it() {
        let clock = Arc::new(ManualClock::at(0));
        let sleeper = clock.clone();
        let mut slept = tokio::spawn(async move {
            sleeper.sleep(Duration::from_secs(3600)).await;
            sleeper.monotonic()
        });
        // The sleeper runs (and registers) before each check: a current-thread runtime runs
        // it at the first yield.
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(3599));
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(&mut slept).is_pending(),
            "a second short of the hour"
        );
        clock.advance(Duration::from_secs(2));
        assert_eq!(slept.await.unwrap(), Duration::from_secs(3601));
        assert!(
            futures::poll!(clock.sleep(Duration::ZERO)).is_ready(),
            "nothing to wait for"
        );
    }

    #[test]
    fn the_system_clock_follows_real_time() {
        let clock = SystemClock::new();
        let before = crate::domain::timestamp::now_ms();
        let now = clock.now_ms();
        assert!(now >= before && now - before < 5_000);
        let a = clock.monotonic();
        assert!(clock.monotonic() >= a);
    }
}
