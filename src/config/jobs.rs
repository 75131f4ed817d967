//! The job queue's workers and timing (`JOB_*`).

use super::{ConfigError, Env};

/// Background job workers and the queue's timing (`docs/features/job-queue.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobsConfig {
    /// Workers in this instance (`JOB_WORKERS`, 1; 0–64). 0: this instance only enqueues.
    pub workers: usize,
    /// Attempts before a job fails for good (`JOB_MAX_ATTEMPTS`, 3; 1–100).
    pub max_attempts: u32,
    /// Lease of a delivered job without a heartbeat; after it the job is delivered again
    /// (`JOB_VISIBILITY_TIMEOUT_MS`, 30000; 100–3600000).
    pub visibility_timeout_ms: u64,
    /// First retry delay, doubled per attempt up to 10 minutes (`JOB_RETRY_BACKOFF_MS`, 2000;
    /// 0–3600000).
    pub retry_backoff_ms: u64,
    /// How often idle workers look for jobs enqueued elsewhere (`JOB_POLL_INTERVAL_MS`, 1000;
    /// 10–60000).
    pub poll_interval_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            max_attempts: 3,
            visibility_timeout_ms: 30_000,
            retry_backoff_ms: 2_000,
            poll_interval_ms: 1_000,
        }
    }
}

impl JobsConfig {
    pub(super) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            workers: env.number_in("JOB_WORKERS", 1, 0, 64)? as usize,
            max_attempts: env.number_in("JOB_MAX_ATTEMPTS", u64::from(d.max_attempts), 1, 100)?
                as u32,
            visibility_timeout_ms: env.number_in(
                "JOB_VISIBILITY_TIMEOUT_MS",
                d.visibility_timeout_ms,
                100,
                3_600_000,
            )?,
            retry_backoff_ms: env.number_in(
                "JOB_RETRY_BACKOFF_MS",
                d.retry_backoff_ms,
                0,
                3_600_000,
            )?,
            poll_interval_ms: env.number_in(
                "JOB_POLL_INTERVAL_MS",
                d.poll_interval_ms,
                10,
                60_000,
            )?,
        })
    }
}
