//! The job queue against a private `redis-server`: the queue contract on Redis Streams, a worker
//! killed mid-job (re-delivered through XAUTOCLAIM, completed once), a poison job (dead-lettered
//! after its attempts, failed with its error in the store), Redis down at enqueue (the durable
//! path runs it, nothing lost), two instances sharing one Redis and one SQLite file (each job
//! completed once), and the wired application (workers, `/readyz`, release on shutdown).

use crate::support::{RedisServer, eventually};
use fred::prelude::*;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};
use superinsights::{
    config::{Config, Env},
    domain::{clock::SystemClock, ids::DocId},
    runtime::{
        jobs::{
            JobError, JobHandler, JobHandlers, JobQueue, NewJob, Outcome, Progress, QueueOptions,
            RedisJobQueue, Worker, WorkerPool, contract,
            redis::{DEAD_LETTER_STREAM, DELAYED_SET, stream_key},
        },
        redis::RedisHandle,
    },
    startup,
    store::{Job, JobDispatch, JobState, JobStore},
};

/// The job store of `dir` on this run's backend (its SQLite file or MongoDB database); each
/// call opens it afresh, as a separate process does.
async fn job_store(dir: &tempfile::TempDir) -> Arc<dyn JobStore> {
    crate::backend::stores_at(dir.path()).await.jobs
}

/// A Redis queue over `dir`'s SQLite file with [`redis_only`] options (one per "process").
async fn redis_queue(dir: &tempfile::TempDir, handle: RedisHandle) -> Arc<dyn JobQueue> {
    Arc::new(RedisJobQueue::new(
        job_store(dir).await,
        handle,
        redis_only(),
        SystemClock::shared(),
    ))
}

/// Fast timings, and store sweeps that never take a Redis job while Redis answers: whatever
/// runs, Redis delivered it.
fn redis_only() -> QueueOptions {
    QueueOptions {
        redis_grace: Duration::from_secs(3600),
        ..contract::fast_options()
    }
}

/// Counts runs per job and answers with the run number.
#[derive(Default)]
struct Counting {
    runs: Mutex<HashMap<DocId, u32>>,
}

#[async_trait::async_trait]
impl JobHandler for Counting {
    async fn run(&self, job: &Job, progress: &Progress<'_>) -> Result<Value, JobError> {
        let n = {
            let mut runs = self.runs.lock().unwrap();
            let n = runs.entry(job.id).or_default();
            *n += 1;
            *n
        };
        progress.report(50, Some("working")).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(json!({"run": n}))
    }
}

/// Starts, reports progress, and never finishes (until its worker is killed).
#[derive(Default)]
struct Hangs {
    started: AtomicU32,
}

#[async_trait::async_trait]
impl JobHandler for Hangs {
    async fn run(&self, _job: &Job, progress: &Progress<'_>) -> Result<Value, JobError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        progress.report(25, Some("started")).await?;
        std::future::pending().await
    }
}

/// Always fails, retryably.
struct Poison;

#[async_trait::async_trait]
impl JobHandler for Poison {
    async fn run(&self, _job: &Job, _progress: &Progress<'_>) -> Result<Value, JobError> {
        Err(JobError::Retry("poison: cannot parse payload".into()))
    }
}

async fn run_until_not_idle(worker: &Worker) -> Outcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let outcome = worker.run_once().await.unwrap();
        if outcome != Outcome::Idle {
            return outcome;
        }
        assert!(std::time::Instant::now() < deadline, "no job was delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`run_until_not_idle`], letting 10 ms pass on `time` (a manual clock the queue reads)
/// between idle tries.
async fn run_until_not_idle_on(worker: &Worker, time: &contract::Time) -> Outcome {
    let deadline = time.now() + Duration::from_secs(15);
    loop {
        let outcome = worker.run_once().await.unwrap();
        if outcome != Outcome::Idle {
            return outcome;
        }
        assert!(time.now() < deadline, "no job was delivered");
        time.pass(Duration::from_millis(10)).await;
    }
}

async fn xlen(handle: &RedisHandle, key: &str) -> i64 {
    handle.client().xlen(key).await.unwrap()
}

/// The group's pending-entries count on `stream` (from XINFO GROUPS).
async fn pending(handle: &RedisHandle, stream: &str) -> i64 {
    let raw: fred::types::Value = handle.client().xinfo_groups(stream).await.unwrap();
    for group in raw.into_array() {
        let fields = group.into_array();
        for pair in fields.chunks(2) {
            if pair[0].as_str().as_deref() == Some("pending") {
                return pair[1].as_i64().unwrap();
            }
        }
    }
    panic!("no group on {stream}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_job_queue_passes_the_contract() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Redis keeps the entries' idle times itself, so real time passes for this queue.
    let queue = RedisJobQueue::new(
        job_store(&dir).await,
        redis.connected_handle().await,
        redis_only(),
        SystemClock::shared(),
    );
    contract::run_all(Arc::new(queue), contract::Time::real()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_job_is_redelivered_and_completed_once() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first: Arc<dyn JobQueue> = redis_queue(&dir, redis.connected_handle().await).await;
    let handle = redis.connected_handle().await;
    let second: Arc<dyn JobQueue> = redis_queue(&dir, handle.clone()).await;
    let id = first
        .enqueue(NewJob::new("analysis", json!({"project": "p"})))
        .await
        .unwrap();
    assert_eq!(xlen(&handle, &stream_key("analysis")).await, 1);
    let job = first.job(id).await.unwrap().unwrap();
    assert_eq!(job.dispatch, JobDispatch::Redis);

    let hangs = Arc::new(Hangs::default());
    let doomed = Worker::new(
        first.clone(),
        JobHandlers::new().register("analysis", hangs.clone()),
    );
    let crashed = tokio::spawn(async move { doomed.run_once().await });
    eventually(
        Duration::from_secs(10),
        "the first worker runs the job",
        async || first.job(id).await.unwrap().unwrap().progress == 25,
    )
    .await;
    // The worker dies: no release, no acknowledgement, no more heartbeats.
    crashed.abort();
    let _ = crashed.await;
    assert_eq!(pending(&handle, &stream_key("analysis")).await, 1);

    let counting = Arc::new(Counting::default());
    let rescuer = Worker::new(
        second.clone(),
        JobHandlers::new().register("analysis", counting.clone()),
    );
    let started = std::time::Instant::now();
    assert_eq!(run_until_not_idle(&rescuer).await, Outcome::Completed(id));
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "not before the lease expired"
    );
    let job = second.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.result, Some(json!({"run": 1})));
    assert_eq!(hangs.started.load(Ordering::SeqCst), 1);
    assert_eq!(counting.runs.lock().unwrap().get(&id), Some(&1));
    assert_eq!(
        pending(&handle, &stream_key("analysis")).await,
        0,
        "acknowledged"
    );
    assert_eq!(xlen(&handle, &stream_key("analysis")).await, 0, "deleted");
    assert_eq!(rescuer.run_once().await.unwrap(), Outcome::Idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_is_dead_lettered_after_its_attempts_and_failed_with_its_error() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = redis.connected_handle().await;
    // Retries wait in the delayed set scored by the queue's clock: a manual one, advanced here.
    let (clock, time) = contract::Time::manual();
    let queue: Arc<dyn JobQueue> = Arc::new(RedisJobQueue::new(
        job_store(&dir).await,
        handle.clone(),
        redis_only(),
        clock.clone(),
    ));
    let id = queue
        .enqueue(NewJob::new("report", json!({"broken": true})))
        .await
        .unwrap();
    let worker = Worker::new(
        queue.clone(),
        JobHandlers::new().register("report", Arc::new(Poison)),
    );
    let started = time.now();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(run_until_not_idle_on(&worker, &time).await);
    }
    assert_eq!(
        outcomes,
        vec![
            Outcome::Retrying(id),
            Outcome::Retrying(id),
            Outcome::Failed(id)
        ]
    );
    // Backoff 100 ms, then 200 ms (polled in 10 ms steps).
    let waited = time.now() - started;
    assert!(
        waited >= Duration::from_millis(300) && waited <= Duration::from_millis(320),
        "{waited:?}"
    );
    let job = queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 3);
    assert_eq!(
        job.last_error.as_deref(),
        Some("poison: cannot parse payload")
    );
    let dead: Vec<(String, HashMap<String, String>)> = handle
        .client()
        .xrange(DEAD_LETTER_STREAM, "-", "+", None)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let fields = &dead[0].1;
    assert_eq!(fields["id"], id.to_hex());
    assert_eq!(fields["kind"], "report");
    assert_eq!(fields["attempts"], "3");
    assert_eq!(fields["error"], "poison: cannot parse payload");
    let delayed: i64 = handle.client().zcard(DELAYED_SET).await.unwrap();
    assert_eq!(delayed, 0);
    assert_eq!(pending(&handle, &stream_key("report")).await, 0);
    // Past every backoff and past the grace after which the store sweep takes Redis jobs too:
    // a job still claimable anywhere would be delivered now.
    clock.advance(redis_only().redis_grace + redis_only().max_backoff);
    assert_eq!(
        worker.run_once().await.unwrap(),
        Outcome::Idle,
        "failed is final"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_enqueue_falls_back_to_the_durable_queue_and_loses_nothing() {
    let mut redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = redis.connected_handle().await;
    let queue: Arc<dyn JobQueue> = redis_queue(&dir, handle.clone()).await;
    redis.kill();
    let counting = Arc::new(Counting::default());
    let worker = Worker::new(
        queue.clone(),
        JobHandlers::new().register("analysis", counting.clone()),
    );

    // Right after the kill (the XADD fails) and once the client knows it is down.
    let racing = queue
        .enqueue(NewJob::new("analysis", json!({"n": 1})))
        .await
        .expect("enqueue never fails because of redis");
    eventually(Duration::from_secs(10), "the client notices", async || {
        !handle.is_connected()
    })
    .await;
    let started = std::time::Instant::now();
    let known_down = queue
        .enqueue(NewJob::new("analysis", json!({"n": 2})))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "no waiting on redis"
    );
    for id in [racing, known_down] {
        let job = queue.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.dispatch),
            (JobState::Queued, JobDispatch::Store)
        );
    }
    let mut done = vec![
        run_until_not_idle(&worker).await,
        run_until_not_idle(&worker).await,
    ];
    done.sort_by_key(|o| format!("{o:?}"));
    let mut expected = vec![Outcome::Completed(racing), Outcome::Completed(known_down)];
    expected.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(done, expected, "both ran while redis was down");

    // Redis comes back (empty): nothing runs twice, and new jobs go through it again.
    redis.restart().await;
    eventually(Duration::from_secs(15), "reconnects", async || {
        handle.ping().await.is_ok()
    })
    .await;
    assert_eq!(worker.run_once().await.unwrap(), Outcome::Idle);
    let after = queue
        .enqueue(NewJob::new("analysis", json!({"n": 3})))
        .await
        .unwrap();
    assert_eq!(
        queue.job(after).await.unwrap().unwrap().dispatch,
        JobDispatch::Redis
    );
    assert_eq!(run_until_not_idle(&worker).await, Outcome::Completed(after));
    let runs = counting.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 3);
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis_complete_each_job_once() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let counting = Arc::new(Counting::default());
    let mut queues: Vec<Arc<dyn JobQueue>> = Vec::new();
    let mut pools = Vec::new();
    for _ in 0..2 {
        let queue: Arc<dyn JobQueue> = redis_queue(&dir, redis.connected_handle().await).await;
        pools.push(WorkerPool::start(
            queue.clone(),
            JobHandlers::new().register("analysis", counting.clone()),
            2,
            Duration::from_secs(1),
        ));
        queues.push(queue);
    }
    let mut ids = Vec::new();
    for n in 0..30 {
        let queue = &queues[n % 2];
        ids.push(
            queue
                .enqueue(NewJob::new("analysis", json!({"n": n})))
                .await
                .unwrap(),
        );
    }
    eventually(Duration::from_secs(20), "every job completes", async || {
        queues[0].counts().await.unwrap().completed == 30
    })
    .await;
    for pool in pools {
        pool.shutdown().await;
    }
    let runs = counting.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 30);
    assert!(runs.values().all(|n| *n == 1), "a job ran twice: {runs:?}");
    let mut workers = std::collections::HashSet::new();
    for id in ids {
        let job = queues[1].job(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Completed, 1));
        assert_eq!(job.result, Some(json!({"run": 1})));
        workers.insert(job.worker.unwrap());
    }
    assert_eq!(workers.len(), 2, "both instances took jobs");
}

/// The application as `serve` runs it, with test handlers, on a real port.
struct RunningApp {
    addr: std::net::SocketAddr,
    jobs: Arc<dyn JobQueue>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_app(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    handlers: JobHandlers,
) -> RunningApp {
    let data = dir.to_str().unwrap().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![("DATA_DIR", &data)];
    pairs.extend_from_slice(env);
    let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
    let app = startup::build_with(config, handlers).await.unwrap();
    let jobs = app.state.jobs.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.serve(listener, async move {
        let _ = stopped.await;
    }));
    RunningApp {
        addr,
        jobs,
        stop,
        served,
    }
}

/// Enqueues a `kind` job with an empty payload, waits until it reaches `state`; its id.
async fn enqueue_until(jobs: &Arc<dyn JobQueue>, kind: &str, state: JobState, what: &str) -> DocId {
    let id = jobs.enqueue(NewJob::new(kind, json!({}))).await.unwrap();
    eventually(Duration::from_secs(10), what, async || {
        jobs.job(id).await.unwrap().unwrap().state == state
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_on_redis_wakes_an_idle_worker_at_once() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    // Idle workers poll only once a minute: a job must start because enqueue wakes them.
    let env = [
        ("REDIS_URL", url.as_str()),
        ("JOB_QUEUE_REDIS", "true"),
        ("JOB_WORKERS", "1"),
        ("JOB_POLL_INTERVAL_MS", "60000"),
    ];
    let counting = Arc::new(Counting::default());
    let app = start_app(
        dir.path(),
        &env,
        JobHandlers::new().register("echo", counting.clone()),
    )
    .await;
    for n in 1..=3 {
        // Each job is enqueued while the worker waits out its poll after the previous one.
        enqueue_until(
            &app.jobs,
            "echo",
            JobState::Completed,
            &format!("job {n} runs"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_runs_jobs_through_redis_reports_depth_and_releases_on_shutdown() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("JOB_QUEUE_REDIS", "true"),
        ("JOB_WORKERS", "2"),
        ("JOB_POLL_INTERVAL_MS", "20"),
        ("JOB_VISIBILITY_TIMEOUT_MS", "600"),
        ("SHUTDOWN_TIMEOUT_SECS", "1"),
    ];
    let counting = Arc::new(Counting::default());
    let hangs = Arc::new(Hangs::default());
    let app = start_app(
        dir.path(),
        &env,
        JobHandlers::new()
            .register("echo", counting.clone())
            .register("hang", hangs.clone()),
    )
    .await;
    assert!(app.jobs.backend().starts_with("redis"));
    enqueue_until(
        &app.jobs,
        "echo",
        JobState::Completed,
        "the app's workers run it",
    )
    .await;
    let stuck = enqueue_until(&app.jobs, "hang", JobState::Running, "the stuck job starts").await;
    let ready: Value = reqwest::get(format!("http://{}/readyz", app.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ready["jobQueue"]["backend"]
            .as_str()
            .unwrap()
            .starts_with("redis")
    );
    assert_eq!(ready["jobQueue"]["running"], 1);
    assert_eq!(ready["jobQueue"]["queued"], 0);

    let stopping = std::time::Instant::now();
    let _ = app.stop.send(());
    app.served.await.unwrap().unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(8));
    let job = app.jobs.job(stuck).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Queued, 0),
        "released for another instance, not counted as an attempt"
    );
    assert_eq!(hangs.started.load(Ordering::SeqCst), 1);

    // The next instance (here: the same data, restarted) finishes it.
    let counting_again = Arc::new(Counting::default());
    let next = start_app(
        dir.path(),
        &env,
        JobHandlers::new().register("hang", counting_again.clone()),
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the released job runs again",
        async || next.jobs.job(stuck).await.unwrap().unwrap().state == JobState::Completed,
    )
    .await;
    assert_eq!(counting_again.runs.lock().unwrap().get(&stuck), Some(&1));
    let _ = next.stop.send(());
    next.served.await.unwrap().unwrap();
}

/// Each app start joins the group under a new consumer name; stopped apps' names (idle for two
/// visibility timeouts, nothing pending) are removed by the live one, so restarts do not pile
/// names up in `XINFO CONSUMERS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_workers_leave_no_consumer_names_behind() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("JOB_QUEUE_REDIS", "true"),
        ("JOB_WORKERS", "1"),
        ("JOB_POLL_INTERVAL_MS", "50"),
        ("JOB_VISIBILITY_TIMEOUT_MS", "500"),
        ("SHUTDOWN_TIMEOUT_SECS", "1"),
    ];
    let stream = stream_key("echo");
    let group = superinsights::runtime::jobs::redis::GROUP;
    let mut seen = std::collections::HashSet::new();
    for n in 0..3 {
        let counting = Arc::new(Counting::default());
        let app = start_app(
            dir.path(),
            &env,
            JobHandlers::new().register("echo", counting.clone()),
        )
        .await;
        enqueue_until(
            &app.jobs,
            "echo",
            JobState::Completed,
            &format!("job {n} runs"),
        )
        .await;
        seen.extend(redis.consumer_names(&stream, group).await);
        let _ = app.stop.send(());
        app.served.await.unwrap().unwrap();
    }
    assert!(seen.len() >= 3, "one name per app: {seen:?}");
    let counting = Arc::new(Counting::default());
    let app = start_app(
        dir.path(),
        &env,
        JobHandlers::new().register("echo", counting.clone()),
    )
    .await;
    enqueue_until(
        &app.jobs,
        "echo",
        JobState::Completed,
        "the last app's job runs",
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "only the live worker's name is left",
        async || {
            let names = redis.consumer_names(&stream, group).await;
            names.len() == 1 && !seen.contains(&names[0])
        },
    )
    .await;
    let _ = app.stop.send(());
    app.served.await.unwrap().unwrap();
}
