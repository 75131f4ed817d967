//! In-process job workers: [`Worker::run_once`] takes one due job, runs its handler with a
//! heartbeat that keeps the lease, and records the outcome; [`WorkerPool`] runs `JOB_WORKERS`
//! of them until shutdown, when each finishes its current job within a grace period or releases
//! it (due at once) for another worker or instance to pick up.

use super::{Delivery, FailOutcome, JobError, JobHandlers, JobQueue, Progress};
use crate::domain::ids::DocId;
use crate::store::StoreResult;
use futures::FutureExt;
use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};
use tokio::{sync::watch, task::JoinHandle};

/// What one `run_once` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    Completed(DocId),
    /// The attempt failed; the job is queued again after its backoff.
    Retrying(DocId),
    /// The attempt failed and the job failed for good.
    Failed(DocId),
    /// Shutdown came first: the job was given back unfinished.
    Released(DocId),
    /// Another attempt took the job over (this one ran past its lease); nothing was recorded.
    LeaseLost(DocId),
}

/// Runs jobs of the kinds its handlers know.
#[derive(Clone)]
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    handlers: JobHandlers,
    kinds: Vec<String>,
}

impl Worker {
    pub fn new(queue: Arc<dyn JobQueue>, handlers: JobHandlers) -> Self {
        let kinds = handlers.kinds();
        Self {
            queue,
            handlers,
            kinds,
        }
    }

    /// Takes one due job and runs it to its end (completed, retrying or failed); `Idle` when
    /// nothing is due. Errors only when the store cannot be reached.
    pub async fn run_once(&self) -> StoreResult<Outcome> {
        let (_never, mut stop) = watch::channel(false);
        self.run_once_or_stop(&mut stop, Duration::ZERO).await
    }

    /// Like [`run_once`](Self::run_once), but once `stop` turns true the job gets `grace` to
    /// finish, after which it is released.
    pub async fn run_once_or_stop(
        &self,
        stop: &mut watch::Receiver<bool>,
        grace: Duration,
    ) -> StoreResult<Outcome> {
        let Some(delivery) = self.queue.next(&self.kinds).await? else {
            return Ok(Outcome::Idle);
        };
        let id = delivery.job.id;
        let stopped_and_grace_over = async {
            if stop.wait_for(|s| *s).await.is_err() {
                // The pool is gone without a stop signal: nobody will ever ask to stop.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            result = self.execute(&delivery) => Some(result),
            () = stopped_and_grace_over => None,
        };
        let outcome = match result {
            None => {
                let released = self.queue.release(&delivery).await?;
                tracing::info!(job = %id, released, "job released at shutdown (another worker will run it)");
                if released {
                    Outcome::Released(id)
                } else {
                    Outcome::LeaseLost(id)
                }
            }
            Some(Ok(value)) => {
                if self.queue.complete(&delivery, value).await? {
                    tracing::info!(job = %id, kind = %delivery.job.kind, attempt = delivery.job.attempts, "job completed");
                    Outcome::Completed(id)
                } else {
                    tracing::warn!(job = %id, "job finished after its lease was taken over; result discarded");
                    Outcome::LeaseLost(id)
                }
            }
            Some(Err(JobError::LeaseLost)) => {
                tracing::warn!(job = %id, "job lease lost mid-run; stopped");
                Outcome::LeaseLost(id)
            }
            Some(Err(error)) => match self.queue.fail(&delivery, &error).await? {
                FailOutcome::Retrying { .. } => Outcome::Retrying(id),
                FailOutcome::Failed => Outcome::Failed(id),
                FailOutcome::LeaseLost => Outcome::LeaseLost(id),
            },
        };
        let counted = match outcome {
            Outcome::Completed(_) => Some("completed"),
            Outcome::Retrying(_) => Some("retried"),
            Outcome::Failed(_) => Some("dead"),
            Outcome::Released(_) => Some("released"),
            Outcome::LeaseLost(_) => Some("lease_lost"),
            Outcome::Idle => None,
        };
        if let Some(word) = counted {
            crate::telemetry::job_attempt(&delivery.job.kind, word);
        }
        Ok(outcome)
    }

    /// Runs the handler while a heartbeat renews the lease every third of it. A panic counts
    /// as a retryable failure; a lost lease stops the handler.
    async fn execute(&self, delivery: &Delivery) -> Result<serde_json::Value, JobError> {
        let Some(handler) = self.handlers.get(&delivery.job.kind) else {
            return Err(JobError::Permanent(format!(
                "no handler for job kind {:?}",
                delivery.job.kind
            )));
        };
        let progress = Progress::new(&*self.queue, delivery);
        let work = AssertUnwindSafe(handler.run(&delivery.job, &progress)).catch_unwind();
        let every = (self.queue.options().visibility_timeout / 3).max(Duration::from_millis(10));
        let heartbeat = async {
            loop {
                tokio::time::sleep(every).await;
                match self.queue.heartbeat(delivery, None).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // The store is briefly unreachable: keep working, try again next beat (if
                    // the lease runs out meanwhile, completion will be refused and the other
                    // attempt's result kept).
                    Err(e) => {
                        tracing::warn!(job = %delivery.job.id, error = %e, "job heartbeat failed")
                    }
                }
            }
        };
        tokio::select! {
            result = work => result.unwrap_or_else(|_| Err(JobError::Retry("the job handler panicked".into()))),
            () = heartbeat => Err(JobError::LeaseLost),
        }
    }

    /// Runs jobs until `stop` turns true (finishing or releasing the current one, see
    /// [`run_once_or_stop`](Self::run_once_or_stop)). Idle, it waits for a local enqueue or
    /// the poll interval.
    pub async fn run(self, mut stop: watch::Receiver<bool>, grace: Duration) {
        let poll = self.queue.options().poll_interval;
        let mut failing = false;
        while !*stop.borrow() {
            match self.run_once_or_stop(&mut stop, grace).await {
                Ok(Outcome::Idle) => {
                    failing = false;
                    tokio::select! {
                        () = self.queue.wait_for_work(poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(_) => failing = false,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "job worker: the store cannot be reached; retrying");
                        failing = true;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(poll.max(Duration::from_millis(500))) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }
}

/// `JOB_WORKERS` workers running until [`shutdown`](Self::shutdown).
pub struct WorkerPool {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl WorkerPool {
    /// Starts `count` workers (none when `count` is 0 or no handler is registered: this
    /// instance then only enqueues). `grace` is how long a running job may take to finish once
    /// shutdown starts.
    pub fn start(
        queue: Arc<dyn JobQueue>,
        handlers: JobHandlers,
        count: usize,
        grace: Duration,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let count = if handlers.is_empty() { 0 } else { count };
        if count > 0 {
            tracing::info!(workers = count, kinds = ?handlers.kinds(), "job workers started");
        }
        let worker = Worker::new(queue, handlers);
        let tasks = (0..count)
            .map(|_| {
                crate::tasks::spawn_handle("job_worker", worker.clone().run(stopped.clone(), grace))
            })
            .collect();
        Self { stop, tasks, grace }
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Stops taking jobs; running jobs get the grace period to finish, then are released.
    /// Returns once every worker has stopped.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Grace, plus time for the release itself (bounded by the store's own timeouts).
        let deadline = self.grace + Duration::from_secs(10);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(deadline, task).await.is_err() {
                tracing::warn!(
                    "job worker did not stop in time; aborted (its job is re-run after its lease)"
                );
                abort.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::jobs::{DurableJobQueue, JobHandler, NewJob, contract};
    use crate::store::{
        Job, JobState,
        sqlite::{SqliteOptions, SqliteStore},
    };
    use serde_json::{Value, json};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A durable queue reading `clock` (real time where the worker's own timers must act).
    async fn queue_with(
        dir: &tempfile::TempDir,
        clock: crate::domain::clock::SharedClock,
    ) -> Arc<dyn JobQueue> {
        let store = SqliteStore::open(&dir.path().join("w.db"), SqliteOptions::default())
            .await
            .unwrap();
        crate::store::StoreAdmin::migrate(&store).await.unwrap();
        Arc::new(DurableJobQueue::new(
            Arc::new(store),
            contract::fast_options(),
            clock,
        ))
    }

    async fn queue(dir: &tempfile::TempDir) -> Arc<dyn JobQueue> {
        queue_with(dir, crate::domain::clock::SystemClock::shared()).await
    }

    /// Reports progress twice, then answers with its payload doubled.
    struct Doubler;

    #[async_trait::async_trait]
    impl JobHandler for Doubler {
        async fn run(&self, job: &Job, progress: &Progress<'_>) -> Result<Value, JobError> {
            progress.report(30, Some("reading")).await?;
            progress.report(80, Some("writing")).await?;
            let n = job.payload["n"]
                .as_i64()
                .ok_or_else(|| JobError::Permanent("payload needs n".into()))?;
            Ok(json!({"double": n * 2}))
        }
    }

    /// Fails twice, then succeeds; panics on the first call when told to.
    struct Flaky {
        calls: AtomicU32,
        panic_first: bool,
    }

    #[async_trait::async_trait]
    impl JobHandler for Flaky {
        async fn run(&self, _job: &Job, _progress: &Progress<'_>) -> Result<Value, JobError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if call == 1 && self.panic_first {
                panic!("handler bug");
            }
            if call < 3 {
                return Err(JobError::Retry(format!("flake {call}")));
            }
            Ok(json!(call))
        }
    }

    /// Never finishes.
    struct Stuck;

    #[async_trait::async_trait]
    impl JobHandler for Stuck {
        async fn run(&self, _job: &Job, progress: &Progress<'_>) -> Result<Value, JobError> {
            progress.report(10, Some("stuck")).await?;
            std::future::pending().await
        }
    }

    /// Runs the worker once, advancing the queue's clock 10 ms between idle tries.
    async fn run_until_not_idle(worker: &Worker, time: &contract::Time) -> Outcome {
        let deadline = time.now() + Duration::from_secs(10);
        loop {
            let outcome = worker.run_once().await.unwrap();
            if outcome != Outcome::Idle {
                return outcome;
            }
            assert!(time.now() < deadline, "no job became due");
            time.pass(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn run_once_runs_the_handler_and_stores_progress_and_result() {
        let dir = tempfile::tempdir().unwrap();
        let queue = queue(&dir).await;
        let worker = Worker::new(
            queue.clone(),
            JobHandlers::new().register("double", Arc::new(Doubler)),
        );
        assert_eq!(worker.run_once().await.unwrap(), Outcome::Idle);
        let id = queue
            .enqueue(NewJob::new("double", json!({"n": 21})))
            .await
            .unwrap();
        let other = queue
            .enqueue(NewJob::new("not_mine", json!({})))
            .await
            .unwrap();
        assert_eq!(worker.run_once().await.unwrap(), Outcome::Completed(id));
        let job = queue.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(job.result, Some(json!({"double": 42})));
        assert_eq!(job.progress_message.as_deref(), Some("writing"));
        assert_eq!(
            worker.run_once().await.unwrap(),
            Outcome::Idle,
            "kinds without a handler are left alone"
        );
        assert_eq!(
            queue.job(other).await.unwrap().unwrap().state,
            JobState::Queued
        );
        let bad = queue
            .enqueue(NewJob::new("double", json!({})))
            .await
            .unwrap();
        assert_eq!(worker.run_once().await.unwrap(), Outcome::Failed(bad));
        assert_eq!(
            queue.job(bad).await.unwrap().unwrap().last_error.as_deref(),
            Some("payload needs n")
        );
    }

    #[tokio::test]
    async fn failures_and_panics_are_retried_until_the_handler_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (clock, time) = contract::Time::manual();
        let queue = queue_with(&dir, clock).await;
        let flaky = Arc::new(Flaky {
            calls: AtomicU32::new(0),
            panic_first: true,
        });
        let worker = Worker::new(
            queue.clone(),
            JobHandlers::new().register("flaky", flaky.clone()),
        );
        let id = queue
            .enqueue(NewJob::new("flaky", json!({})))
            .await
            .unwrap();
        assert_eq!(
            run_until_not_idle(&worker, &time).await,
            Outcome::Retrying(id)
        );
        assert_eq!(
            queue.job(id).await.unwrap().unwrap().last_error.as_deref(),
            Some("the job handler panicked")
        );
        assert_eq!(
            run_until_not_idle(&worker, &time).await,
            Outcome::Retrying(id)
        );
        assert_eq!(
            run_until_not_idle(&worker, &time).await,
            Outcome::Completed(id)
        );
        let job = queue.job(id).await.unwrap().unwrap();
        assert_eq!((job.attempts, job.result), (3, Some(json!(3))));
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    }

    /// A job running longer than its lease keeps it through heartbeats (no second delivery).
    #[tokio::test]
    async fn the_heartbeat_keeps_a_long_job_leased() {
        struct Slow;
        #[async_trait::async_trait]
        impl JobHandler for Slow {
            async fn run(&self, _job: &Job, _p: &Progress<'_>) -> Result<Value, JobError> {
                tokio::time::sleep(contract::fast_options().visibility_timeout * 3).await;
                Ok(json!("slow"))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let queue = queue(&dir).await;
        let handlers = JobHandlers::new().register("slow", Arc::new(Slow));
        let worker = Worker::new(queue.clone(), handlers.clone());
        let id = queue.enqueue(NewJob::new("slow", json!({}))).await.unwrap();
        let running = tokio::spawn(async move { worker.run_once().await.unwrap() });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while queue.job(id).await.unwrap().unwrap().state != JobState::Running {
            assert!(std::time::Instant::now() < deadline, "never claimed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let other = Worker::new(queue.clone(), handlers);
        while !running.is_finished() {
            assert_eq!(
                other.run_once().await.unwrap(),
                Outcome::Idle,
                "never stolen"
            );
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(running.await.unwrap(), Outcome::Completed(id));
        assert_eq!(queue.job(id).await.unwrap().unwrap().attempts, 1);
    }

    /// Shutdown: a stuck job is released after the grace period and finished by a new pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_releases_a_stuck_job_for_the_next_worker() {
        let dir = tempfile::tempdir().unwrap();
        let queue = queue(&dir).await;
        let id = queue
            .enqueue(NewJob::new("work", json!({"n": 4})))
            .await
            .unwrap();
        let pool = WorkerPool::start(
            queue.clone(),
            JobHandlers::new().register("work", Arc::new(Stuck)),
            2,
            Duration::from_millis(100),
        );
        assert_eq!(pool.len(), 2);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while queue.job(id).await.unwrap().unwrap().progress != 10 {
            assert!(std::time::Instant::now() < deadline, "never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stopping = std::time::Instant::now();
        pool.shutdown().await;
        assert!(
            stopping.elapsed() >= Duration::from_millis(100),
            "grace given"
        );
        assert!(stopping.elapsed() < Duration::from_secs(5));
        let job = queue.job(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Queued, 0));

        let next = WorkerPool::start(
            queue.clone(),
            JobHandlers::new().register("work", Arc::new(Doubler)),
            1,
            Duration::from_millis(100),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while queue.job(id).await.unwrap().unwrap().state != JobState::Completed {
            assert!(
                std::time::Instant::now() < deadline,
                "released job never ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        next.shutdown().await;
        let job = queue.job(id).await.unwrap().unwrap();
        assert_eq!((job.attempts, job.result), (1, Some(json!({"double": 8}))));
    }
}
