//! Application state shared by every handler, and the sub-states handlers extract through
//! `FromRef` so each handler sees only what it uses.

use crate::{
    config::Config,
    domain::clock::SharedClock,
    ingest::{Ingestor, spool::Spool},
    runtime::{rate_limit::RateLimiter, redis::RedisHandle},
    store::Stores,
};
use axum::extract::FromRef;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    /// Where "now" comes from for every decision made from time (the system clock, or a test's
    /// manual clock through `startup::build_with_clock`).
    pub clock: SharedClock,
    pub config: Arc<Config>,
    pub stores: Stores,
    pub ingestor: Arc<Ingestor>,
    pub redis: Option<RedisHandle>,
    pub spool: Spool,
    pub plan: Arc<BackendPlan>,
    /// Shared by every rate-limit layer and by the WebSocket per-message check.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Dashboards behind the cache (in-process, or Redis with `CACHE_REDIS`).
    pub dashboards: Arc<crate::runtime::cache::DashboardCache>,
    /// Server-side session store (durable, optionally with Redis in front).
    pub sessions: crate::runtime::sessions::AppSessionStore,
    /// AI analysis: runs (through the job queue), the provider, presets.
    pub ai: Arc<crate::services::ai_analysis::AiAnalysis>,
    /// Generated reports and filter templates (generation runs on the job queue).
    pub reports: Arc<crate::services::report_jobs::ReportJobs>,
    /// Open WebSocket ingestion connections (closed with 1001 on shutdown).
    pub ws: Arc<crate::runtime::connections::WsHub>,
    /// The job queue (durable store, or Redis Streams with `JOB_QUEUE_REDIS`): enqueue jobs and
    /// read their state here.
    pub jobs: Arc<dyn crate::runtime::jobs::JobQueue>,
    /// The realtime hub: acknowledged batches to the live streams (across instances with Redis).
    pub realtime: Arc<crate::runtime::realtime::RealtimeHub>,
    /// Outgoing email (`SMTP_*`; says so when not configured).
    pub mailer: Arc<crate::services::mail::Mailer>,
}

impl FromRef<AppState> for Arc<Ingestor> {
    fn from_ref(s: &AppState) -> Self {
        s.ingestor.clone()
    }
}

impl FromRef<AppState> for Arc<dyn RateLimiter> {
    fn from_ref(s: &AppState) -> Self {
        s.rate_limiter.clone()
    }
}

impl FromRef<AppState> for Arc<dyn crate::runtime::jobs::JobQueue> {
    fn from_ref(s: &AppState) -> Self {
        s.jobs.clone()
    }
}

impl FromRef<AppState> for SharedClock {
    fn from_ref(s: &AppState) -> Self {
        s.clock.clone()
    }
}

impl FromRef<AppState> for Stores {
    fn from_ref(s: &AppState) -> Self {
        s.stores.clone()
    }
}

impl FromRef<AppState> for Arc<crate::runtime::realtime::RealtimeHub> {
    fn from_ref(s: &AppState) -> Self {
        s.realtime.clone()
    }
}

impl FromRef<AppState> for Arc<crate::services::mail::Mailer> {
    fn from_ref(s: &AppState) -> Self {
        s.mailer.clone()
    }
}

impl FromRef<AppState> for Arc<crate::services::ai_analysis::AiAnalysis> {
    fn from_ref(s: &AppState) -> Self {
        s.ai.clone()
    }
}

impl FromRef<AppState> for Arc<crate::services::report_jobs::ReportJobs> {
    fn from_ref(s: &AppState) -> Self {
        s.reports.clone()
    }
}

impl FromRef<AppState> for Arc<crate::runtime::connections::WsHub> {
    fn from_ref(s: &AppState) -> Self {
        s.ws.clone()
    }
}

/// The rate limiter every limit shares, with the configured limits (`RATE_LIMIT_*`), for
/// handlers that count a request against a limit themselves.
#[derive(Clone)]
pub struct Limiting {
    pub limiter: Arc<dyn RateLimiter>,
    pub limits: crate::config::RateLimitsConfig,
}

impl FromRef<AppState> for Limiting {
    fn from_ref(s: &AppState) -> Self {
        Self {
            limiter: s.rate_limiter.clone(),
            limits: s.config.rate_limits.clone(),
        }
    }
}

/// What a change to a project must invalidate besides the store: this instance's cache of API
/// keys (held by the ingestor) and the dashboard cache.
#[derive(Clone)]
pub struct ProjectCaches {
    pub ingestor: Arc<Ingestor>,
    pub dashboards: Arc<crate::runtime::cache::DashboardCache>,
}

impl FromRef<AppState> for ProjectCaches {
    fn from_ref(s: &AppState) -> Self {
        Self {
            ingestor: s.ingestor.clone(),
            dashboards: s.dashboards.clone(),
        }
    }
}

/// What the analytics views read: the stores and the dashboard cache in front of them.
#[derive(Clone)]
pub struct ViewState {
    pub stores: Stores,
    pub dashboards: Arc<crate::runtime::cache::DashboardCache>,
}

impl FromRef<AppState> for ViewState {
    fn from_ref(s: &AppState) -> Self {
        Self {
            stores: s.stores.clone(),
            dashboards: s.dashboards.clone(),
        }
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(s: &AppState) -> Self {
        s.config.clone()
    }
}

/// Which backend serves each piece, decided once from the configuration; printed by
/// `check-config` and logged at startup, one line per piece.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackendPlan {
    pub pieces: Vec<(&'static str, String)>,
}

impl BackendPlan {
    pub fn from_config(config: &Config) -> Self {
        let store = match &config.store {
            crate::config::StoreConfig::Sqlite { path, .. } => {
                format!("sqlite ({})", path.display())
            }
            crate::config::StoreConfig::Mongo { .. } => "mongodb".to_string(),
        };
        let store_name = match &config.store {
            crate::config::StoreConfig::Sqlite { .. } => "sqlite",
            crate::config::StoreConfig::Mongo { .. } => "mongodb",
        };
        let redis = config.redis.enabled();
        let on_redis = |flag: bool, redis_text: &str, fallback: String| {
            if redis && flag {
                format!("{redis_text} (falls back to {fallback} while redis is down)")
            } else {
                fallback
            }
        };
        let pieces = vec![
            ("store", store),
            (
                "sessions",
                on_redis(
                    config.redis.sessions,
                    "redis in front of the store",
                    store_name.to_string(),
                ),
            ),
            (
                "cache",
                if redis && config.redis.cache {
                    "redis (dashboards are computed uncached while redis is down)".into()
                } else {
                    "in-process".into()
                },
            ),
            (
                "rate limits",
                on_redis(config.redis.rate_limits, "redis", "in-process".into()),
            ),
            (
                "job queue",
                on_redis(
                    config.redis.job_queue,
                    "redis streams",
                    format!("{store_name} + in-process worker"),
                ),
            ),
            (
                "ingest buffer",
                on_redis(
                    config.redis.ingest_buffer,
                    "redis stream si:{ingest}:batches, committed by a consumer group of writers",
                    format!(
                        "bounded channel + group commit; disk spool at {}",
                        config.ingest.spool_path.display()
                    ),
                ),
            ),
            (
                "realtime",
                if redis {
                    "redis pub/sub across instances (this instance's events only while redis is down)".into()
                } else {
                    "in-process".into()
                },
            ),
            (
                "email",
                match &config.smtp {
                    Some(smtp) => format!("smtp {}", smtp.server),
                    None => "off (no SMTP_URL or SMTP_HOST)".into(),
                },
            ),
            (
                "redis",
                match &config.redis.url {
                    Some(_) => format!(
                        "{} (db {})",
                        config.redis.target,
                        config.redis.db.or(config.redis.target.db).unwrap_or(0)
                    ),
                    None => "not configured".into(),
                },
            ),
        ];
        Self { pieces }
    }

    pub fn log(&self) {
        for (piece, backend) in &self.pieces {
            tracing::info!("{piece}: {backend}");
        }
    }
}
