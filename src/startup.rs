//! Startup: picks one backend per piece from the configuration, builds the state and router, and
//! serves with a graceful drain (stop accepting, finish requests, flush the ingest queue, exit).
//! Nothing below this module knows which backend is live.

use crate::domain::clock::{SharedClock, SystemClock};
use crate::runtime::sessions::{AppSessionStore, DurableSessionStore, RedisFrontedStore};
use crate::tasks::TaskSet;
use crate::{
    config::{Config, ConfigError},
    http,
    ingest::{
        Ingestor,
        enrich::Enricher,
        keys::KeyCache,
        pipeline::{Pipeline, PipelineOptions, PipelineTasks},
        spool::Spool,
    },
    runtime::{
        rate_limit::{FallbackLimiter, MemoryRateLimiter, RateLimiter, RedisRateLimiter},
        redis::RedisHandle,
    },
    state::{AppState, BackendPlan},
    store::{StoreError, Stores},
};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// A built application, ready to serve.
pub struct App {
    pub state: AppState,
    tasks: PipelineTasks,
    /// `JOB_WORKERS` job workers, stopped (finish or release) on shutdown.
    workers: crate::runtime::jobs::WorkerPool,
    /// This instance's writer of the Redis ingest buffer, stopped after its current round.
    buffer_consumer: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::watch::Sender<bool>,
    )>,
    /// Every other background task (`crate::tasks`), drained last on shutdown.
    owned: TaskSet,
}

/// Builds every piece the configuration asks for. Fails only for a bad configuration or a store
/// that cannot be opened; a down Redis is never fatal.
pub async fn build(config: Config) -> Result<App, StartupError> {
    build_with(config, crate::runtime::jobs::JobHandlers::new()).await
}

/// Like [`build`], with extra job handlers for the workers (tests register their own kinds).
pub async fn build_with(
    config: Config,
    extra_handlers: crate::runtime::jobs::JobHandlers,
) -> Result<App, StartupError> {
    build_with_clock(config, extra_handlers, SystemClock::shared()).await
}

/// Like [`build_with`], reading time from `clock` wherever time decides behaviour (a test's
/// [`crate::domain::clock::ManualClock`]).
pub async fn build_with_clock(
    config: Config,
    extra_handlers: crate::runtime::jobs::JobHandlers,
    clock: SharedClock,
) -> Result<App, StartupError> {
    // Every background task started while building (and later from requests and from those
    // tasks) belongs to this set, which `serve` drains on shutdown.
    let owned = TaskSet::new();
    let built = owned
        .scope(build_owned(config, extra_handlers, clock))
        .await;
    if built.is_err() {
        owned.shutdown(Duration::from_secs(5)).await;
    }
    let mut app = built?;
    app.owned = owned;
    Ok(app)
}

async fn build_owned(
    config: Config,
    extra_handlers: crate::runtime::jobs::JobHandlers,
    clock: SharedClock,
) -> Result<App, StartupError> {
    crate::http::health::started_at();
    crate::telemetry::handle();
    let plan = BackendPlan::from_config(&config);
    plan.log();
    secure_data_dir(&config);
    let stores = Stores::open(&config).await?;
    let redis = RedisHandle::start(&config.redis)?;
    if let Some(redis) = &redis {
        redis
            .wait_connected(Duration::from_millis(config.redis.startup_wait_ms))
            .await;
    }
    let spool = Spool::new(config.ingest.spool_path.clone());
    let enricher = Enricher::new(
        config.trust_proxy,
        config.ingest.country_lookup,
        config.ingest.geoip_db_path.as_deref(),
    )
    .map_err(StartupError::Other)?;
    let options = PipelineOptions {
        queue_capacity: config.ingest.queue_capacity,
        max_commit_items: config.ingest.max_commit_items,
        ..PipelineOptions::default()
    };
    let (pipeline, tasks) = Pipeline::start(
        stores.events.clone(),
        stores.admin.clone(),
        spool.clone(),
        options,
    );
    let realtime = crate::runtime::realtime::RealtimeHub::start(
        redis.clone(),
        config.server.realtime_streams_per_client,
    );
    let mut ingestor = Ingestor::new(KeyCache::new(stores.projects.clone()), enricher, pipeline)
        .with_live(realtime.clone());
    let mut buffer_consumer = None;
    if let Some(handle) = redis.as_ref().filter(|_| config.redis.ingest_buffer) {
        let buffer = Arc::new(crate::ingest::buffer::RedisBuffer::new(
            handle.clone(),
            spool.clone(),
            config.ingest.buffer.clone(),
        ));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let consumer = buffer.start_consumer(stores.events.clone(), stop_rx);
        tracing::info!(
            consumer = buffer.consumer(),
            "ingest buffer: redis stream {} (group {})",
            crate::ingest::buffer::STREAM,
            crate::ingest::buffer::GROUP
        );
        buffer_consumer = Some((consumer, stop));
        ingestor = ingestor.with_buffer(buffer);
    }
    let memory_limiter = Arc::new(MemoryRateLimiter::default().with_clock(clock.clone()));
    memory_limiter.spawn_sweeper(Duration::from_secs(60));
    let rate_limiter: Arc<dyn RateLimiter> = match &redis {
        Some(redis) if config.redis.rate_limits => Arc::new(FallbackLimiter::new(
            RedisRateLimiter::new(redis.clone()),
            memory_limiter,
        )),
        _ => memory_limiter,
    };
    let durable_sessions = DurableSessionStore::new(stores.sessions.clone(), clock.clone());
    let sessions = match &redis {
        Some(handle) if config.redis.sessions => AppSessionStore::RedisFronted(
            RedisFrontedStore::new(durable_sessions.clone(), handle.clone()),
        ),
        _ => AppSessionStore::Durable(durable_sessions.clone()),
    };
    tracing::info!("sessions: {}", sessions.describe());
    let cache: Arc<dyn crate::runtime::cache::Cache> = match &redis {
        Some(handle) if config.redis.cache => Arc::new(
            crate::runtime::cache::redis::RedisCache::new(handle.clone()),
        ),
        _ => Arc::new(crate::runtime::cache::memory::MemoryCache::default()),
    };
    tracing::info!("dashboard cache: {}", cache.name());
    let dashboards = Arc::new(
        crate::runtime::cache::DashboardCache::new(
            cache,
            Duration::from_secs(config.redis.ttl_secs),
        )
        .with_wait(config.server.view_wait),
    );
    let job_options = crate::runtime::jobs::QueueOptions::from_config(&config.jobs);
    let jobs: Arc<dyn crate::runtime::jobs::JobQueue> = match &redis {
        Some(handle) if config.redis.job_queue => {
            Arc::new(crate::runtime::jobs::RedisJobQueue::new(
                stores.jobs.clone(),
                handle.clone(),
                job_options,
                clock.clone(),
            ))
        }
        _ => Arc::new(crate::runtime::jobs::DurableJobQueue::new(
            stores.jobs.clone(),
            job_options,
            clock.clone(),
        )),
    };
    tracing::info!("job queue: {}", jobs.backend());
    // Built-in job handlers register here (e.g. `kinds::AI_ANALYSIS`), then the caller's.
    let ai = Arc::new(crate::services::ai_analysis::AiAnalysis::new(
        stores.clone(),
        &config.ai,
        Some(jobs.clone()),
    ));
    let reports = Arc::new(crate::services::report_jobs::ReportJobs::new(
        stores.clone(),
        report_files(&config.reports)?,
        jobs.clone(),
        &config.reports,
    ));
    spawn_maintenance(
        durable_sessions,
        stores.clone(),
        reports.clone(),
        clock.clone(),
    );
    let ai_kind = crate::runtime::jobs::kinds::AI_ANALYSIS;
    let mut handlers = extra_handlers;
    if handlers.get(ai_kind).is_none() {
        handlers = handlers.register(
            ai_kind,
            Arc::new(crate::services::ai_analysis::AiAnalysisHandler(ai.clone())),
        );
    }
    let report_kind = crate::runtime::jobs::kinds::REPORT;
    if handlers.get(report_kind).is_none() {
        handlers = handlers.register(
            report_kind,
            Arc::new(crate::services::report_jobs::ReportJobHandler(
                reports.clone(),
            )),
        );
    }
    // Email reports: a handler and a scheduler when email is configured and links can be made.
    let mailer = Arc::new(crate::services::mail::Mailer::new(config.smtp.as_ref()));
    if let (Some(public_url), true) = (&config.public_url, mailer.is_configured())
        && handlers.get(crate::services::email_reports::KIND).is_none()
    {
        crate::services::email_reports::spawn_scheduler(
            stores.clone(),
            jobs.clone(),
            Duration::from_millis(config.email_reports_check_ms),
            clock.clone(),
        );
        handlers = handlers.register(
            crate::services::email_reports::KIND,
            Arc::new(crate::services::email_reports::EmailReportHandler {
                stores: stores.clone(),
                mailer: mailer.clone(),
                public_url: public_url.clone(),
                reports: reports.clone(),
                attachment_max_bytes: config.email_report_attachment_max_bytes,
            }),
        );
    }
    let workers = crate::runtime::jobs::WorkerPool::start(
        jobs.clone(),
        handlers,
        config.jobs.workers,
        Duration::from_secs(config.shutdown_timeout_secs),
    );
    let state = AppState {
        clock,
        mailer,
        jobs,
        ai,
        reports,
        dashboards,
        sessions,
        config: Arc::new(config),
        stores,
        ingestor: Arc::new(ingestor),
        redis,
        spool,
        plan: Arc::new(plan),
        rate_limiter,
        ws: Arc::default(),
        realtime,
    };
    Ok(App {
        state,
        tasks,
        workers,
        buffer_consumer,
        owned: TaskSet::new(),
    })
}

/// The report file store the configuration picks: the S3-compatible bucket when
/// `REPORTS_S3_BUCKET` is set (files being written still go to `REPORTS_DIR/.tmp`), else the
/// local `REPORTS_DIR`.
fn report_files(
    config: &crate::config::ReportsConfig,
) -> Result<Arc<dyn crate::reports::files::FileStore>, StartupError> {
    Ok(match &config.s3 {
        Some(s3) => Arc::new(
            crate::reports::s3_files::S3FileStore::new(s3, config.dir.join(".tmp"))
                .map_err(|e| StartupError::Other(format!("report file store: {e}")))?,
        ),
        None => Arc::new(crate::reports::files::LocalFileStore::new(
            config.dir.clone(),
        )),
    })
}

/// `DATA_DIR` private (`0700`) and data files left by older builds tightened to `0600`
/// (`crate::fsutil`). Not fatal: with MongoDB the directory only ever holds the spool, whose
/// own writes report their errors.
fn secure_data_dir(config: &Config) {
    let sqlite = match &config.store {
        crate::config::StoreConfig::Sqlite { path, .. } => Some(path.as_path()),
        _ => None,
    };
    match crate::fsutil::secure_data_dir(&config.data_dir, sqlite, &config.ingest.spool_path) {
        Ok(done) => {
            if let Some(was) = done.dir_was {
                tracing::info!(dir = %config.data_dir.display(), "data directory was {was:o}, now 700");
            }
            for file in done.files {
                tracing::info!(file = %file.display(), "data file restricted to 600");
            }
        }
        Err(e) => {
            tracing::warn!(dir = %config.data_dir.display(), error = %e, "cannot make the data directory private");
        }
    }
}

/// Hourly: delete expired sessions and the files of expired or deleted reports. Daily (first
/// run a minute after start): the retention purge.
fn spawn_maintenance(
    sessions: DurableSessionStore,
    stores: Stores,
    reports: Arc<crate::services::report_jobs::ReportJobs>,
    clock: SharedClock,
) {
    let clock2 = clock.clone();
    crate::tasks::spawn_loop::<()>("maintenance_hourly", async move {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        loop {
            hourly.tick().await;
            let removed = sessions.sweep().await;
            if removed > 0 {
                tracing::info!(removed, "expired sessions deleted");
            }
            crate::services::retention::purge_report_files(&reports, clock.now_ms()).await;
        }
    });
    crate::tasks::spawn_loop::<()>("retention_purge", async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut daily = tokio::time::interval(Duration::from_secs(24 * 3600));
        loop {
            daily.tick().await;
            crate::services::retention::purge_all(&stores, clock2.now_ms()).await;
        }
    });
}

impl App {
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves (connections, their timeouts and caps: [`crate::server`]),
    /// then drains: in-flight requests finish, the ingest queue is committed (or spooled), Redis
    /// is closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App {
            state,
            tasks,
            workers,
            buffer_consumer,
            owned,
        } = self;
        let timeout = Duration::from_secs(state.config.shutdown_timeout_secs);
        let redis = state.redis.clone();
        let ws = state.ws.clone();
        let realtime = state.realtime.clone();
        let limits = crate::server::Limits::from_config(&state.config.server);
        let router = http::router(state);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = crate::server::serve(listener, router, limits, async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        // The accept loop runs in the task set's scope, so what requests spawn is owned; its
        // own result is this function's.
        let scope = owned.clone();
        let server = tokio::spawn(async move { scope.scope(server).await });
        let _ = stopping_rx.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        // Realtime streams never finish by themselves: end them, so the drain does not wait.
        realtime.close_all();
        // Upgraded WebSocket connections are not requests the server waits for: close them
        // (1001) alongside, before the ingest queue is drained below.
        // Job workers stop alongside: each finishes its current job within the timeout or
        // releases it for another instance.
        let (served, (), ()) = tokio::join!(
            tokio::time::timeout(timeout, server),
            ws.close_all(timeout),
            workers.shutdown()
        );
        match served {
            Ok(joined) => joined.map_err(std::io::Error::other)??,
            Err(_) => tracing::warn!(?timeout, "in-flight requests did not finish in time"),
        }
        tasks.shutdown(timeout).await;
        // What this writer read and has not committed stays pending in the stream; another
        // instance's writer takes it over after `INGEST_BUFFER_CLAIM_IDLE_MS`.
        if let Some((consumer, stop)) = buffer_consumer {
            let _ = stop.send(true);
            if tokio::time::timeout(timeout, consumer).await.is_err() {
                tracing::warn!(?timeout, "ingest buffer writer did not stop in time");
            }
        }
        // Sweepers, schedulers and relays stop; one-off tasks (a mail, an audit prune, a rollup
        // store) get what is left of the deadline.
        owned.shutdown(timeout).await;
        if let Some(redis) = redis {
            redis.quit().await;
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
