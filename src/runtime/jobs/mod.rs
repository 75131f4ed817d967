//! The job queue: the [`JobQueue`] port (enqueue, deliver with a lease, report progress,
//! complete/fail/release), its two backends — [`durable`] (the primary store, polled) and
//! [`redis`] (Redis Streams with a consumer group, the store still holding every job's state) —
//! and the in-process [`worker`]s that run jobs through a [`JobHandlers`] registry.
//!
//! The store is the one arbiter of who runs a job: every delivery, whichever path it came by,
//! must claim the job in the store (a fresh lease token), and every later write is conditional on
//! that token. So a job never runs twice at once, and only one attempt's completion counts.
//! Job *content* (payload, result) lives in the store only; Redis carries job ids.
//! This module knows nothing of AI analysis or reports: their handlers register by kind.

pub mod contract;
pub mod durable;
pub mod redis;
pub mod worker;

pub use durable::DurableJobQueue;
pub use redis::RedisJobQueue;
pub use worker::{Outcome, Worker, WorkerPool};

use crate::domain::ids::DocId;
use crate::domain::records::{Job, JobCounts};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

/// Job kinds known today (a kind is any `[a-z0-9_]{1,40}` string; handlers register by kind).
pub mod kinds {
    /// An AI analysis run (the job id is the run id).
    pub const AI_ANALYSIS: &str = "ai_analysis";
    /// A report generation (the job id is the report id; `services::report_jobs`).
    pub const REPORT: &str = "report";
}

/// Timing and retry policy shared by both backends (from `JOB_*` configuration).
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// How long a delivered job stays leased to its worker without a heartbeat; after that it
    /// is delivered again (the worker is presumed dead). Workers renew it every third of it.
    pub visibility_timeout: Duration,
    /// Attempts before a job is failed for good (and dead-lettered on Redis).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further attempt, up to `max_backoff`.
    pub retry_backoff: Duration,
    pub max_backoff: Duration,
    /// How often an idle worker looks for work (local enqueues wake it at once).
    pub poll_interval: Duration,
    /// With Redis: how long store sweeps leave a Redis-dispatched job to Redis before taking it
    /// themselves (a stream entry lost with a Redis restart, a crash between the store write and
    /// the stream write).
    pub redis_grace: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            redis_grace: Duration::from_secs(60),
        }
    }
}

impl QueueOptions {
    /// From the configuration (`JOB_VISIBILITY_TIMEOUT_MS`, `JOB_MAX_ATTEMPTS`,
    /// `JOB_RETRY_BACKOFF_MS`, `JOB_POLL_INTERVAL_MS`); the Redis grace is two visibility timeouts.
    pub fn from_config(config: &crate::config::JobsConfig) -> Self {
        let visibility_timeout = Duration::from_millis(config.visibility_timeout_ms);
        Self {
            visibility_timeout,
            max_attempts: config.max_attempts,
            retry_backoff: Duration::from_millis(config.retry_backoff_ms),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            redis_grace: visibility_timeout * 2,
            ..Self::default()
        }
    }

    /// The delay before retrying after failed attempt number `attempt` (1-based):
    /// `retry_backoff × 2^(attempt−1)`, at most `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    fn lease_ms(&self) -> i64 {
        self.visibility_timeout.as_millis() as i64
    }
}

/// A job to enqueue. The id is the caller's (an AI run's id), so enqueueing twice is a
/// `Conflict`, never a second job.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: DocId,
    pub kind: String,
    pub payload: serde_json::Value,
}

impl NewJob {
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        Self {
            id: DocId::new(),
            kind: kind.to_string(),
            payload,
        }
    }
}

/// True for a valid job kind: 1–40 of `[a-z0-9_]` (it names a Redis stream).
pub fn valid_kind(kind: &str) -> bool {
    (1..=40).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The Redis stream entry a delivery came from (Redis backend only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub stream: String,
    pub id: String,
}

/// One attempt at a job, leased to the worker that received it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The job as claimed: `running`, `attempts` counting this attempt.
    pub job: Job,
    /// This attempt's lease token.
    pub token: String,
    pub entry: Option<StreamEntry>,
}

/// Why a job attempt did not produce a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth retrying (a timeout, an unavailable provider): retried with backoff until
    /// `max_attempts`.
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help (bad payload, unknown project): failed at once.
    #[error("{0}")]
    Permanent(String),
    /// The attempt's lease was taken over (it ran too long without a heartbeat): stop, the
    /// other attempt owns the job now.
    #[error("lease lost")]
    LeaseLost,
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => JobError::Permanent("not found".into()),
            other => JobError::Retry(other.to_string()),
        }
    }
}

/// What ending an attempt with an error led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again, not before this time (epoch ms).
    Retrying { at: i64 },
    /// Failed for good (dead-lettered on Redis).
    Failed,
    /// The attempt no longer held the job; nothing was written.
    LeaseLost,
}

/// The queue port. Every method answers for one attempt identified by its [`Delivery`]; writes
/// of an attempt whose lease was taken over are refused (`false` / `LeaseLost`), so whatever a
/// delivery path does twice, a job's completion happens once.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Records the job in the store (`queued`, due now) and makes it deliverable. The store
    /// write comes first; when the delivery channel (Redis) cannot take it, the job is left to
    /// the store sweep, never dropped. Errors: `Conflict` for a known id, `Other` for a bad
    /// kind, `Unavailable` when the store cannot take it (then nothing was queued).
    async fn enqueue(&self, job: NewJob) -> StoreResult<DocId>;

    /// The next job of one of `kinds` ready to run, claimed for this caller with a lease of one
    /// visibility timeout; `None` when nothing is due. Also fails jobs whose worker died on
    /// their last attempt.
    async fn next(&self, kinds: &[String]) -> StoreResult<Option<Delivery>>;

    /// Renews the attempt's lease (a heartbeat) and, when given, sets its progress (0–100,
    /// optional message). `false` when the lease was lost: the worker must stop.
    async fn heartbeat(
        &self,
        delivery: &Delivery,
        progress: Option<(u8, Option<&str>)>,
    ) -> StoreResult<bool>;

    /// Completes the attempt with `result`. `false` (result discarded) when the lease was lost.
    async fn complete(&self, delivery: &Delivery, result: serde_json::Value) -> StoreResult<bool>;

    /// Ends the attempt with `error`: retried with exponential backoff while attempts are left
    /// and the error is not [`JobError::Permanent`], else failed for good.
    async fn fail(&self, delivery: &Delivery, error: &JobError) -> StoreResult<FailOutcome>;

    /// Gives the job back, due now, without counting the attempt (shutdown before it finished).
    /// `false` when the lease was already lost.
    async fn release(&self, delivery: &Delivery) -> StoreResult<bool>;

    /// The job's current state (what the UI shows).
    async fn job(&self, id: DocId) -> StoreResult<Option<Job>>;

    /// Jobs per state (for `/readyz`).
    async fn counts(&self) -> StoreResult<JobCounts>;

    /// Waits until a local enqueue or release signals work, or `max` passes.
    async fn wait_for_work(&self, max: Duration);

    /// The policy this queue runs with.
    fn options(&self) -> &QueueOptions;

    /// Which backend delivers, for the startup log.
    fn backend(&self) -> &'static str;
}

/// Reports an attempt's progress to the store (where the UI reads it) and renews its lease.
pub struct Progress<'a> {
    queue: &'a dyn JobQueue,
    delivery: &'a Delivery,
}

impl<'a> Progress<'a> {
    pub fn new(queue: &'a dyn JobQueue, delivery: &'a Delivery) -> Self {
        Self { queue, delivery }
    }

    /// Sets progress to `percent` (clamped to 100) with an optional message. Errors:
    /// [`JobError::LeaseLost`] when another attempt owns the job now (stop working);
    /// `Retry` when the store cannot be written.
    pub async fn report(&self, percent: u8, message: Option<&str>) -> Result<(), JobError> {
        match self
            .queue
            .heartbeat(self.delivery, Some((percent.min(100), message)))
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    /// The attempt's job.
    pub fn job(&self) -> &Job {
        &self.delivery.job
    }
}

/// Runs jobs of one kind. Must tolerate running again for a job whose earlier attempt died
/// mid-way (delivery is at-least-once; only completion is exactly-once).
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Does the work and returns the result stored with the job. Report progress through
    /// `progress`; return early with its error when it reports [`JobError::LeaseLost`].
    async fn run(&self, job: &Job, progress: &Progress<'_>) -> Result<serde_json::Value, JobError>;
}

/// Handlers by job kind. Workers only take jobs of the kinds registered here, so an instance
/// without a handler for a kind leaves those jobs to instances that have one.
#[derive(Clone, Default)]
pub struct JobHandlers {
    by_kind: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl JobHandlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `kind` (replacing any earlier one). Panics on an invalid kind
    /// (a programming error).
    pub fn register(mut self, kind: &str, handler: Arc<dyn JobHandler>) -> Self {
        assert!(valid_kind(kind), "invalid job kind {kind:?}");
        self.by_kind.insert(kind.to_string(), handler);
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.by_kind.get(kind)
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.by_kind.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }
}

/// A fresh lease token.
fn new_token() -> String {
    crate::domain::ids::random_hex(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = QueueOptions {
            retry_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..QueueOptions::default()
        };
        let waits: Vec<u128> = (1..=5).map(|a| o.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 500, 500]);
        assert_eq!(o.backoff(1000), Duration::from_millis(500));
    }

    #[test]
    fn kinds_are_short_lowercase_words() {
        assert!(valid_kind("ai_analysis"));
        assert!(valid_kind("report2"));
        for bad in ["", "AI", "a:b", "a b", &"x".repeat(41)] {
            assert!(!valid_kind(bad), "{bad:?}");
        }
    }
}
