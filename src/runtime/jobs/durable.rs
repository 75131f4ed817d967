//! The durable job queue: jobs live in the primary store (SQLite or MongoDB) and workers claim
//! them there with a lease. Nothing is in memory that a crash could lose: a job whose worker
//! died is claimable again once its lease (one visibility timeout) expires, in this process
//! after a restart or in any other process sharing the store. The Redis backend builds on this.

use super::{
    Delivery, FailOutcome, JobError, JobQueue, NewJob, QueueOptions, new_token, valid_kind,
};
use crate::domain::{clock::SharedClock, ids::DocId};
use crate::store::{
    Job, JobClaim, JobCounts, JobDispatch, JobStore, NewJobRecord, StoreError, StoreResult,
};
use async_trait::async_trait;
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;

/// The error recorded on a job whose worker stopped (crash, kill) during its last attempt.
pub const ABANDONED: &str = "abandoned: the worker stopped during the last attempt (lease expired)";

pub struct DurableJobQueue {
    store: Arc<dyn JobStore>,
    options: QueueOptions,
    /// Recorded on claimed jobs: which process ran them.
    worker: String,
    wake: Notify,
    /// "Now" for leases, backoffs and due times.
    clock: SharedClock,
}

impl DurableJobQueue {
    pub fn new(store: Arc<dyn JobStore>, options: QueueOptions, clock: SharedClock) -> Self {
        Self {
            store,
            options,
            clock,
            worker: format!(
                "pid{}-{}",
                std::process::id(),
                crate::domain::ids::random_hex(3)
            ),
            wake: Notify::new(),
        }
    }

    /// The clock leases and due times are read from.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// This queue's name, as recorded in `Job::worker` (unique per queue instance).
    pub fn worker_name(&self) -> &str {
        &self.worker
    }

    /// Wakes one local worker waiting in `wait_for_work`.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Writes a new queued job with this dispatch. Errors as [`JobQueue::enqueue`].
    pub(crate) async fn insert(&self, job: &NewJob, dispatch: JobDispatch) -> StoreResult<()> {
        if !valid_kind(&job.kind) {
            return Err(StoreError::other(format!(
                "invalid job kind {:?}",
                job.kind
            )));
        }
        let now = self.now_ms();
        self.store
            .insert_job(&NewJobRecord {
                id: job.id,
                kind: job.kind.clone(),
                payload: job.payload.clone(),
                max_attempts: self.options.max_attempts.max(1),
                queued_at: now,
                run_after: now,
                dispatch,
            })
            .await
    }

    fn claim<'a>(&'a self, token: &'a str, now: i64) -> JobClaim<'a> {
        JobClaim {
            token,
            worker: &self.worker,
            now,
            lease_until: now + self.options.lease_ms(),
        }
    }

    /// Claims this job if it is claimable now (a Redis delivery).
    pub(crate) async fn claim_by_id(&self, id: DocId) -> StoreResult<Option<Delivery>> {
        let token = new_token();
        let job = self
            .store
            .claim_job(id, &self.claim(&token, self.now_ms()))
            .await?;
        Ok(job.map(|job| Delivery {
            job,
            token,
            entry: None,
        }))
    }

    /// Claims the oldest claimable job of `kinds`, leaving Redis-dispatched jobs to Redis for
    /// `redis_grace`.
    pub(crate) async fn sweep(
        &self,
        kinds: &[String],
        redis_grace: Duration,
    ) -> StoreResult<Option<Delivery>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let token = new_token();
        let now = self.now_ms();
        let cutoff = now - redis_grace.as_millis() as i64;
        let job = self
            .store
            .claim_next_job(kinds, &self.claim(&token, now), cutoff)
            .await?;
        Ok(job.map(|job| Delivery {
            job,
            token,
            entry: None,
        }))
    }

    /// Fails jobs whose worker died on their last attempt; returns their ids.
    pub(crate) async fn fail_abandoned(&self) -> StoreResult<Vec<DocId>> {
        let failed = self
            .store
            .fail_abandoned_jobs(self.now_ms(), ABANDONED)
            .await?;
        for id in &failed {
            tracing::warn!(job = %id, "job failed: its worker stopped during the last attempt");
        }
        Ok(failed)
    }

    /// Ends an attempt with `error`; a retry is recorded with `retry_dispatch`.
    pub(crate) async fn fail_with(
        &self,
        delivery: &Delivery,
        error: &JobError,
        retry_dispatch: JobDispatch,
    ) -> StoreResult<FailOutcome> {
        let job = &delivery.job;
        if *error == JobError::LeaseLost {
            return Ok(FailOutcome::LeaseLost);
        }
        let now = self.now_ms();
        let retry_at = match error {
            JobError::Retry(_) if job.attempts < job.max_attempts => {
                Some(now + self.options.backoff(job.attempts).as_millis() as i64)
            }
            _ => None,
        };
        let message = error.to_string();
        let written = self
            .store
            .fail_job(
                job.id,
                &delivery.token,
                &message,
                retry_at,
                retry_dispatch,
                now,
            )
            .await?;
        Ok(match (written, retry_at) {
            (false, _) => FailOutcome::LeaseLost,
            (true, Some(at)) => {
                tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %message, "job attempt failed; will retry");
                FailOutcome::Retrying { at }
            }
            (true, None) => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %message, "job failed");
                FailOutcome::Failed
            }
        })
    }

    /// Gives the job back (due now) with this dispatch.
    pub(crate) async fn release_with(
        &self,
        delivery: &Delivery,
        dispatch: JobDispatch,
    ) -> StoreResult<bool> {
        let released = self
            .store
            .release_job(delivery.job.id, &delivery.token, dispatch, self.now_ms())
            .await?;
        if released {
            self.wake();
        }
        Ok(released)
    }

    pub(crate) async fn renew(
        &self,
        delivery: &Delivery,
        progress: Option<(u8, Option<&str>)>,
    ) -> StoreResult<bool> {
        self.store
            .renew_job_lease(
                delivery.job.id,
                &delivery.token,
                self.now_ms() + self.options.lease_ms(),
                progress,
            )
            .await
    }
}

#[async_trait]
impl JobQueue for DurableJobQueue {
    async fn enqueue(&self, job: NewJob) -> StoreResult<DocId> {
        self.insert(&job, JobDispatch::Store).await?;
        self.wake();
        Ok(job.id)
    }

    async fn next(&self, kinds: &[String]) -> StoreResult<Option<Delivery>> {
        self.fail_abandoned().await?;
        self.sweep(kinds, self.options.redis_grace).await
    }

    async fn heartbeat(
        &self,
        delivery: &Delivery,
        progress: Option<(u8, Option<&str>)>,
    ) -> StoreResult<bool> {
        self.renew(delivery, progress).await
    }

    async fn complete(&self, delivery: &Delivery, result: serde_json::Value) -> StoreResult<bool> {
        self.store
            .complete_job(delivery.job.id, &delivery.token, &result, self.now_ms())
            .await
    }

    async fn fail(&self, delivery: &Delivery, error: &JobError) -> StoreResult<FailOutcome> {
        self.fail_with(delivery, error, JobDispatch::Store).await
    }

    async fn release(&self, delivery: &Delivery) -> StoreResult<bool> {
        self.release_with(delivery, JobDispatch::Store).await
    }

    async fn job(&self, id: DocId) -> StoreResult<Option<Job>> {
        self.store.job(id).await
    }

    async fn counts(&self) -> StoreResult<JobCounts> {
        self.store.job_counts().await
    }

    async fn wait_for_work(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.wake.notified()).await;
    }

    fn options(&self) -> &QueueOptions {
        &self.options
    }

    fn backend(&self) -> &'static str {
        "durable (store + in-process workers)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::jobs::contract;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};

    async fn sqlite(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        let store = SqliteStore::open(&dir.path().join("jobs.db"), SqliteOptions::default())
            .await
            .unwrap();
        crate::store::StoreAdmin::migrate(&store).await.unwrap();
        Arc::new(store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn durable_queue_on_sqlite_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let (clock, time) = contract::Time::manual();
        contract::run_all(
            Arc::new(DurableJobQueue::new(store, contract::fast_options(), clock)),
            time,
        )
        .await;
    }

    /// A process that dies mid-job: the job is still in the file, and a new process (new pool,
    /// new queue) runs it once the lease expires.
    #[tokio::test]
    async fn a_restart_resumes_jobs_of_a_dead_process() {
        let dir = tempfile::tempdir().unwrap();
        let kinds = vec!["k".to_string()];
        // Both "processes" read one clock, which the test advances.
        let (clock, time) = contract::Time::manual();
        let id = {
            let first =
                DurableJobQueue::new(sqlite(&dir).await, contract::fast_options(), clock.clone());
            let id = first
                .enqueue(NewJob::new("k", serde_json::json!({"n": 1})))
                .await
                .unwrap();
            let delivery = first.next(&kinds).await.unwrap().expect("delivered");
            assert_eq!(delivery.job.attempts, 1);
            id
            // Dropped without completing: the process "died".
        };
        let second =
            DurableJobQueue::new(sqlite(&dir).await, contract::fast_options(), clock.clone());
        assert!(second.next(&kinds).await.unwrap().is_none(), "still leased");
        clock.advance(contract::fast_options().visibility_timeout - Duration::from_millis(1));
        assert!(
            second.next(&kinds).await.unwrap().is_none(),
            "still leased a millisecond before the lease ends"
        );
        clock.advance(Duration::from_millis(1));
        let again = contract::next_within(&second, &kinds, Duration::ZERO, &time)
            .await
            .expect("re-delivered once the lease ended");
        assert_eq!((again.job.id, again.job.attempts), (id, 2));
        assert!(
            second
                .complete(&again, serde_json::json!("ok"))
                .await
                .unwrap()
        );
        assert_eq!(
            second.job(id).await.unwrap().unwrap().state,
            crate::store::JobState::Completed
        );
    }

    /// On MongoDB (FerretDB in `scripts/test`), in the MongoDB leg with the store contract.
    mod mongodb_contract {
        /// The durable job queue's contract over MongoDB: several workers never run one job
        /// twice (claims arbitrated by a unique insert, then `find_one_and_update`), on a manual
        /// clock the suite advances.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn durable_job_queue() {
            crate::store::mongo::tests::contract::alone_on_fresh_database(
                "durable_job_queue",
                |stores| {
                    Box::pin(async move {
                        use crate::runtime::jobs::{contract, durable::DurableJobQueue};
                        let (clock, time) = contract::Time::manual();
                        let queue = DurableJobQueue::new(
                            stores.jobs.clone(),
                            contract::fast_options(),
                            clock,
                        );
                        contract::run_all(std::sync::Arc::new(queue), time).await;
                    })
                },
            )
            .await;
        }
    }
}
