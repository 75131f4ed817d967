//! How the contract suites (`jobs::contract`, `rate_limit::contract`) let time pass: by advancing
//! a [`ManualClock`] the implementation under test reads, or, where part of the timing lives in
//! Redis, by sleeping in real time.

use crate::domain::clock::{Clock, ManualClock};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// How a suite lets time pass for the implementation under test.
#[derive(Clone, Debug)]
pub enum Time {
    /// The implementation reads this clock: the suite advances it instead of sleeping.
    Manual(Arc<ManualClock>),
    /// Part of the timing lives outside it (in Redis): real time passes.
    Real(Instant),
}

impl Time {
    /// A fresh manual clock (standing at the real current time) and the `Time` advancing it.
    pub fn manual() -> (Arc<ManualClock>, Self) {
        let clock = Arc::new(ManualClock::new());
        (clock.clone(), Self::Manual(clock))
    }

    pub fn real() -> Self {
        Self::Real(Instant::now())
    }

    /// Time since an arbitrary origin, as the implementation sees it.
    pub fn now(&self) -> Duration {
        match self {
            Time::Manual(clock) => clock.monotonic(),
            Time::Real(origin) => origin.elapsed(),
        }
    }

    /// Lets `d` pass: advances the manual clock, or sleeps.
    pub async fn pass(&self, d: Duration) {
        match self {
            Time::Manual(clock) => {
                clock.advance(d);
                tokio::task::yield_now().await;
            }
            Time::Real(_) => tokio::time::sleep(d).await,
        }
    }

    /// How far off a measured wait may be: none on a manual clock; on real time, the
    /// implementation's "now" is read a little after the suite's.
    pub fn slack(&self) -> Duration {
        match self {
            Time::Manual(_) => Duration::ZERO,
            Time::Real(_) => Duration::from_millis(15),
        }
    }
}
