//! The contract every [`RateLimiter`] must meet, as one async suite run against each
//! implementation (memory always; Redis against a private `redis-server` in `tests/e2e`).
//! Time passes through [`Time`]: the in-process limiter reads a manual clock the suite advances
//! (exact, no sleeping); the Redis limiter's script reads Redis's own `TIME`, so for it real time
//! passes, with short windows and polls with deadlines. Each run uses fresh namespaces.

use super::RateLimiter;
pub use crate::runtime::time::Time;
use std::{sync::Arc, time::Duration};

/// Runs every contract check. Wants a multi-threaded runtime (the concurrency check spawns) and,
/// for [`Time::Manual`], a limiter reading that clock.
pub async fn run_all(limiter: Arc<dyn RateLimiter>, time: Time) {
    let run = crate::domain::ids::random_hex(4);
    exactly_max_of_concurrent_checks_pass(&limiter, &run).await;
    keys_and_namespaces_are_independent(&*limiter, &run).await;
    remaining_and_reset_are_reported(&*limiter, &run).await;
    the_window_slides(&*limiter, &run, &time).await;
    rejected_requests_are_not_recorded(&*limiter, &run, &time).await;
}

/// `max + k` checks at once: exactly `max` pass, each with a distinct `remaining`.
pub async fn exactly_max_of_concurrent_checks_pass(limiter: &Arc<dyn RateLimiter>, run: &str) {
    let (max, extra) = (50u32, 30u32);
    let ns = format!("contract-{run}-concurrent");
    let tasks: Vec<_> = (0..max + extra)
        .map(|_| {
            let limiter = limiter.clone();
            let ns = ns.clone();
            tokio::spawn(async move { limiter.check(&ns, "k", max, Duration::from_secs(60)).await })
        })
        .collect();
    let mut remaining = Vec::new();
    let mut rejected = 0;
    for task in tasks {
        let d = task.await.expect("check task");
        assert_eq!(d.limit, max);
        if d.allowed {
            remaining.push(d.remaining);
        } else {
            assert_eq!(d.remaining, 0);
            assert!(d.reset_after > Duration::ZERO && d.reset_after <= Duration::from_secs(60));
            rejected += 1;
        }
    }
    assert_eq!(remaining.len() as u32, max, "exactly max accepted");
    assert_eq!(rejected, extra);
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..max).collect::<Vec<_>>(),
        "every accepted check saw its own count"
    );
}

/// Exhausting one key leaves other keys, and the same key in other namespaces, untouched.
pub async fn keys_and_namespaces_are_independent(limiter: &dyn RateLimiter, run: &str) {
    let (a, b) = (format!("contract-{run}-a"), format!("contract-{run}-b"));
    let w = Duration::from_secs(60);
    assert!(limiter.check(&a, "k1", 1, w).await.allowed);
    assert!(!limiter.check(&a, "k1", 1, w).await.allowed);
    assert!(limiter.check(&a, "k2", 1, w).await.allowed);
    assert!(limiter.check(&b, "k1", 1, w).await.allowed);
    assert!(!limiter.check(&b, "k1", 1, w).await.allowed);
    assert!(!limiter.check(&a, "k2", 1, w).await.allowed);
}

/// `remaining` counts down to 0; `reset_after` says when the oldest request ages out.
pub async fn remaining_and_reset_are_reported(limiter: &dyn RateLimiter, run: &str) {
    let ns = format!("contract-{run}-reporting");
    let w = Duration::from_secs(30);
    for expected in [2, 1, 0] {
        let d = limiter.check(&ns, "k", 3, w).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, expected);
        assert!(d.reset_after <= w && d.reset_after > w - Duration::from_secs(5));
    }
    let d = limiter.check(&ns, "k", 3, w).await;
    assert!(!d.allowed);
    assert_eq!((d.limit, d.remaining), (3, 0));
    assert!(d.retry_after().is_some_and(|r| r <= w));
    assert!((1..=30).contains(&d.reset_after_secs()));
    assert!(!limiter.check(&ns, "zero", 0, w).await.allowed);
}

/// A slot frees when the *oldest* request ages out, not when a fixed window restarts.
pub async fn the_window_slides(limiter: &dyn RateLimiter, run: &str, time: &Time) {
    let ns = format!("contract-{run}-slides");
    let w = Duration::from_millis(600);
    let first_sent = time.now();
    assert!(limiter.check(&ns, "k", 2, w).await.allowed);
    // Let time pass (this is the behaviour under test, not a wait for readiness).
    time.pass(Duration::from_millis(300)).await;
    let second_sent = time.now();
    assert!(limiter.check(&ns, "k", 2, w).await.allowed);
    let d = limiter.check(&ns, "k", 2, w).await;
    assert!(!d.allowed);
    assert!(
        d.reset_after <= w - Duration::from_millis(250),
        "the wait is for the oldest request, not a whole window: {:?}",
        d.reset_after
    );
    let freed = poll_until_allowed(limiter, &ns, 2, w, Duration::from_secs(5), time).await;
    assert!(
        freed - first_sent >= w,
        "no slot frees before the oldest request is a window old"
    );
    // The second request is still inside its window: only one slot freed.
    let probe_sent = time.now();
    let d = limiter.check(&ns, "k", 2, w).await;
    if probe_sent - second_sent < w - Duration::from_millis(50) {
        assert!(!d.allowed, "only the aged-out request's slot is free");
    }
}

/// Checks that keep arriving while rejected do not push the wait out.
pub async fn rejected_requests_are_not_recorded(limiter: &dyn RateLimiter, run: &str, time: &Time) {
    let ns = format!("contract-{run}-rejected");
    let w = Duration::from_millis(400);
    let started = time.now();
    assert!(limiter.check(&ns, "k", 2, w).await.allowed);
    assert!(limiter.check(&ns, "k", 2, w).await.allowed);
    // Retry every few milliseconds; if rejections were recorded this would never succeed.
    let freed = poll_until_allowed(limiter, &ns, 2, w, Duration::from_secs(5), time).await;
    assert!(freed - started >= w);
    // Once the second early request ages out too, exactly one more fits beside the one just
    // accepted (the budget is back to `limit`, not more).
    poll_until_allowed(limiter, &ns, 2, w, Duration::from_secs(5), time).await;
    assert!(!limiter.check(&ns, "k", 2, w).await.allowed);
}

/// Checks, letting 5 ms pass between tries, until one is accepted; returns when (on `time`), or
/// panics after `deadline`.
async fn poll_until_allowed(
    limiter: &dyn RateLimiter,
    ns: &str,
    limit: u32,
    window: Duration,
    deadline: Duration,
    time: &Time,
) -> Duration {
    let start = time.now();
    loop {
        if limiter.check(ns, "k", limit, window).await.allowed {
            return time.now();
        }
        assert!(
            time.now() - start < deadline,
            "a slot never freed within {deadline:?}"
        );
        time.pass(Duration::from_millis(5)).await;
    }
}
