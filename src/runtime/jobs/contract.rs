//! The contract every [`JobQueue`] must meet, as one async suite run against each backend (the
//! durable queue on SQLite and MongoDB in its unit tests; the Redis queue against a private
//! `redis-server` in `tests/e2e/jobs.rs`). Time passes through [`Time`]: the durable queue reads a
//! [`ManualClock`] the suite advances, so leases, backoffs and redelivery are checked exactly and
//! without sleeping; the Redis queue keeps idle times in Redis itself, so for it real time passes
//! (short timeouts, [`fast_options`]). Each check uses job kinds of its own, so checks never see
//! each other's jobs.

use super::{Delivery, FailOutcome, JobError, JobQueue, NewJob, QueueOptions};
use crate::store::{JobState, StoreError};
use serde_json::json;
use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

/// Short timings so the suite runs in seconds: 400 ms leases, 3 attempts, backoff from 100 ms.
pub fn fast_options() -> QueueOptions {
    QueueOptions {
        visibility_timeout: Duration::from_millis(400),
        max_attempts: 3,
        retry_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        poll_interval: Duration::from_millis(20),
        redis_grace: Duration::from_millis(800),
    }
}

pub use crate::runtime::time::Time;

/// Runs every contract check. Wants a multi-threaded runtime and a queue built with
/// [`fast_options`] (and, for [`Time::Manual`], with that clock).
pub async fn run_all(queue: Arc<dyn JobQueue>, time: Time) {
    let run = crate::domain::ids::random_hex(3);
    let t = &time;
    lifecycle(&*queue, &run, t).await;
    failures_retry_with_backoff_then_fail(&*queue, &run, t).await;
    permanent_errors_fail_at_once(&*queue, &run, t).await;
    a_dead_worker_is_redelivered_and_only_the_new_attempt_completes(&*queue, &run, t).await;
    heartbeats_keep_the_lease(&*queue, &run, t).await;
    release_gives_the_job_back_without_counting_the_attempt(&*queue, &run, t).await;
    concurrent_consumers_get_each_job_once(&queue, &run).await;
    dying_on_the_last_attempt_fails_the_job(&*queue, &run, t).await;
}

/// Polls `next`, letting 10 ms pass between tries, until it delivers or `deadline` has passed
/// (on the queue's time).
pub async fn next_within(
    queue: &dyn JobQueue,
    kinds: &[String],
    deadline: Duration,
    time: &Time,
) -> Option<Delivery> {
    let start = time.now();
    loop {
        if let Some(d) = queue.next(kinds).await.expect("next") {
            return Some(d);
        }
        if time.now() - start > deadline {
            return None;
        }
        time.pass(Duration::from_millis(10)).await;
    }
}

fn kinds_for(run: &str, name: &str) -> Vec<String> {
    vec![format!("c{run}_{name}")]
}

async fn state_of(queue: &dyn JobQueue, id: crate::domain::ids::DocId) -> crate::store::Job {
    queue.job(id).await.expect("job").expect("job exists")
}

/// Enqueue → queued; delivered once, leased; progress visible; completed once with its result.
pub async fn lifecycle(queue: &dyn JobQueue, run: &str, time: &Time) {
    let kinds = kinds_for(run, "life");
    let job = NewJob::new(&kinds[0], json!({"projectId": "p1", "days": 7}));
    let id = queue.enqueue(job.clone()).await.expect("enqueue");
    assert_eq!(id, job.id);
    assert!(matches!(
        queue.enqueue(job.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        queue.enqueue(NewJob::new("Bad Kind", json!({}))).await,
        Err(StoreError::Other { .. })
    ));
    let queued = state_of(queue, id).await;
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!((queued.attempts, queued.progress), (0, 0));
    assert_eq!(queued.payload, json!({"projectId": "p1", "days": 7}));
    assert!(queued.queued_at > 0 && queued.started_at.is_none());

    assert!(
        queue
            .next(&kinds_for(run, "other"))
            .await
            .unwrap()
            .is_none(),
        "only the asked kinds are delivered"
    );
    let d = next_within(queue, &kinds, Duration::from_secs(5), time)
        .await
        .expect("delivered");
    assert_eq!(
        (d.job.id, d.job.state, d.job.attempts),
        (id, JobState::Running, 1)
    );
    assert_eq!(d.job.payload, queued.payload);
    assert!(
        queue.next(&kinds).await.unwrap().is_none(),
        "leased, not delivered twice"
    );

    assert!(
        queue
            .heartbeat(&d, Some((40, Some("half way"))))
            .await
            .unwrap()
    );
    let running = state_of(queue, id).await;
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.progress, 40);
    assert_eq!(running.progress_message.as_deref(), Some("half way"));
    assert!(running.started_at.is_some_and(|s| s >= queued.queued_at));
    assert!(running.lease_until.is_some());

    assert!(
        queue
            .complete(&d, json!({"markdown": "# Done"}))
            .await
            .unwrap()
    );
    assert!(
        !queue.complete(&d, json!("again")).await.unwrap(),
        "completion happens once"
    );
    let done = state_of(queue, id).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.progress, 100);
    assert_eq!(done.result, Some(json!({"markdown": "# Done"})));
    assert!(done.finished_at >= done.started_at);
    assert!(done.lease_token.is_none());
    assert!(queue.next(&kinds).await.unwrap().is_none());
    assert!(queue.counts().await.unwrap().completed >= 1);
}

/// A retryable failure comes back after 100 ms, then 200 ms; the third fails for good.
pub async fn failures_retry_with_backoff_then_fail(queue: &dyn JobQueue, run: &str, time: &Time) {
    let kinds = kinds_for(run, "retry");
    let id = queue
        .enqueue(NewJob::new(&kinds[0], json!({})))
        .await
        .unwrap();
    let mut last_failed_at = time.now();
    for attempt in 1..=3u32 {
        let d = next_within(queue, &kinds, Duration::from_secs(5), time)
            .await
            .expect("delivered again");
        assert_eq!(d.job.attempts, attempt);
        if attempt > 1 {
            let waited = time.now() - last_failed_at;
            let backoff = fast_options().backoff(attempt - 1);
            assert!(
                waited >= backoff - time.slack(),
                "attempt {attempt} came after {waited:?}, backoff is {backoff:?}"
            );
            assert_eq!(
                d.job.last_error.as_deref(),
                Some(format!("boom {}", attempt - 1).as_str()),
                "the last error is kept while retrying"
            );
        }
        // Before the call: the store's "now" that the backoff counts from is later than this,
        // however long the call takes (a slow server made the old order flaky).
        last_failed_at = time.now();
        let outcome = queue
            .fail(&d, &JobError::Retry(format!("boom {attempt}")))
            .await
            .unwrap();
        if attempt < 3 {
            let FailOutcome::Retrying { at } = outcome else {
                panic!("attempt {attempt}: {outcome:?}");
            };
            let job = state_of(queue, id).await;
            assert_eq!((job.state, job.run_after), (JobState::Queued, at));
            assert!(
                queue.next(&kinds).await.unwrap().is_none(),
                "not due before its backoff"
            );
        } else {
            assert_eq!(outcome, FailOutcome::Failed);
        }
    }
    let failed = state_of(queue, id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.last_error.as_deref(), Some("boom 3"));
    assert!(failed.finished_at.is_some());
    time.pass(fast_options().max_backoff).await;
    assert!(
        queue.next(&kinds).await.unwrap().is_none(),
        "failed is final"
    );
}

/// A permanent error fails the job on its first attempt.
pub async fn permanent_errors_fail_at_once(queue: &dyn JobQueue, run: &str, time: &Time) {
    let kinds = kinds_for(run, "perm");
    let id = queue
        .enqueue(NewJob::new(&kinds[0], json!({})))
        .await
        .unwrap();
    let d = next_within(queue, &kinds, Duration::from_secs(5), time)
        .await
        .unwrap();
    let outcome = queue
        .fail(&d, &JobError::Permanent("unknown project".into()))
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::Failed);
    let job = state_of(queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert_eq!(job.last_error.as_deref(), Some("unknown project"));
}

/// A delivery whose worker stops (no heartbeat) is delivered again after the visibility
/// timeout; the dead attempt's late writes are refused.
pub async fn a_dead_worker_is_redelivered_and_only_the_new_attempt_completes(
    queue: &dyn JobQueue,
    run: &str,
    time: &Time,
) {
    let kinds = kinds_for(run, "dead");
    let id = queue
        .enqueue(NewJob::new(&kinds[0], json!({})))
        .await
        .unwrap();
    let first = next_within(queue, &kinds, Duration::from_secs(5), time)
        .await
        .unwrap();
    let delivered_at = time.now();
    assert!(queue.next(&kinds).await.unwrap().is_none());
    let second = next_within(queue, &kinds, Duration::from_secs(10), time)
        .await
        .expect("re-delivered");
    assert!(
        time.now() - delivered_at >= fast_options().visibility_timeout - time.slack(),
        "not before the lease expired"
    );
    assert_eq!((second.job.id, second.job.attempts), (id, 2));
    assert_ne!(first.token, second.token);
    assert!(!queue.complete(&first, json!("late")).await.unwrap());
    assert!(!queue.heartbeat(&first, Some((90, None))).await.unwrap());
    assert_eq!(
        queue
            .fail(&first, &JobError::Retry("late".into()))
            .await
            .unwrap(),
        FailOutcome::LeaseLost
    );
    assert!(!queue.release(&first).await.unwrap());
    assert!(queue.complete(&second, json!("second")).await.unwrap());
    let job = state_of(queue, id).await;
    assert_eq!(
        (job.state, job.attempts, job.result),
        (JobState::Completed, 2, Some(json!("second")))
    );
}

/// Heartbeats every half lease keep a job from being delivered again.
pub async fn heartbeats_keep_the_lease(queue: &dyn JobQueue, run: &str, time: &Time) {
    let kinds = kinds_for(run, "beat");
    let id = queue
        .enqueue(NewJob::new(&kinds[0], json!({})))
        .await
        .unwrap();
    let d = next_within(queue, &kinds, Duration::from_secs(5), time)
        .await
        .unwrap();
    let half = fast_options().visibility_timeout / 2;
    for _ in 0..4 {
        time.pass(half).await;
        assert!(queue.heartbeat(&d, None).await.unwrap());
        assert!(
            queue.next(&kinds).await.unwrap().is_none(),
            "a live job is not delivered again"
        );
    }
    assert!(queue.complete(&d, json!(1)).await.unwrap());
    assert_eq!(state_of(queue, id).await.attempts, 1);
}

/// A released job is due again at once, and the released attempt does not count.
pub async fn release_gives_the_job_back_without_counting_the_attempt(
    queue: &dyn JobQueue,
    run: &str,
    time: &Time,
) {
    let kinds = kinds_for(run, "release");
    let id = queue
        .enqueue(NewJob::new(&kinds[0], json!({})))
        .await
        .unwrap();
    let d = next_within(queue, &kinds, Duration::from_secs(5), time)
        .await
        .unwrap();
    assert!(queue.release(&d).await.unwrap());
    let job = state_of(queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
    let again = next_within(queue, &kinds, Duration::from_secs(5), time)
        .await
        .expect("released jobs are due at once");
    assert!(
        again.job.attempts == 1,
        "the released attempt is not counted"
    );
    assert!(!queue.complete(&d, json!("old")).await.unwrap());
    assert!(queue.complete(&again, json!("new")).await.unwrap());
}

/// Six consumers racing over twelve jobs: each job is completed exactly once. A delivery whose
/// `complete` answers `false` lost its lease (its 400 ms ran out on a stalled machine and another
/// consumer took the job over): that is a legitimate redelivery, not a double one, so only
/// completions count.
pub async fn concurrent_consumers_get_each_job_once(queue: &Arc<dyn JobQueue>, run: &str) {
    let kinds = kinds_for(run, "race");
    let mut ids = HashSet::new();
    for n in 0..12 {
        ids.insert(
            queue
                .enqueue(NewJob::new(&kinds[0], json!({"n": n})))
                .await
                .unwrap(),
        );
    }
    let consumers: Vec<_> = (0..6)
        .map(|_| {
            let (queue, kinds) = (queue.clone(), kinds.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(3) {
                    match queue.next(&kinds).await.unwrap() {
                        Some(d) => {
                            if queue.complete(&d, json!("ok")).await.unwrap() {
                                mine.push(d.job.id);
                            }
                        }
                        None => {
                            let counts = queue.counts().await.unwrap();
                            if counts.queued == 0 && counts.running == 0 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                mine
            })
        })
        .collect();
    let mut completed = Vec::new();
    for c in consumers {
        completed.extend(c.await.unwrap());
    }
    assert_eq!(completed.len(), 12, "no job completed twice: {completed:?}");
    assert_eq!(completed.into_iter().collect::<HashSet<_>>(), ids);
}

/// A job whose worker dies on every attempt is failed after the last one, not retried forever.
pub async fn dying_on_the_last_attempt_fails_the_job(queue: &dyn JobQueue, run: &str, time: &Time) {
    let kinds = kinds_for(run, "abandon");
    let id = queue
        .enqueue(NewJob::new(&kinds[0], json!({})))
        .await
        .unwrap();
    for attempt in 1..=3 {
        let d = next_within(queue, &kinds, Duration::from_secs(10), time)
            .await
            .expect("delivered");
        assert_eq!(d.job.attempts, attempt);
        // The worker dies: no heartbeat, no completion.
    }
    let deadline = time.now() + Duration::from_secs(10);
    loop {
        assert!(
            queue.next(&kinds).await.unwrap().is_none(),
            "no fourth attempt"
        );
        let job = state_of(queue, id).await;
        if job.state == JobState::Failed {
            assert_eq!(job.attempts, 3);
            assert_eq!(job.last_error.as_deref(), Some(super::durable::ABANDONED));
            return;
        }
        assert!(time.now() < deadline, "abandoned job never failed");
        time.pass(Duration::from_millis(20)).await;
    }
}
