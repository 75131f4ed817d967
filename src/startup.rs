//! Startup: picks one backend per piece from the configuration, builds the state and router, and
//! serves with a graceful drain (stop accepting, finish requests, flush the ingest queue, exit).
//! Nothing below this module knows which backend is live.

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
    runtime::redis::RedisHandle,
    state::{AppState, BackendPlan},
    store::{StoreError, Stores},
};
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
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
}

/// Builds every piece the configuration asks for. Fails only for a bad configuration or a store
/// that cannot be opened; a down Redis is never fatal.
pub async fn build(config: Config) -> Result<App, StartupError> {
    let plan = BackendPlan::from_config(&config);
    plan.log();
    let stores = Stores::open(&config).await?;
    let redis = RedisHandle::start(&config.redis).map_err(StartupError::Other)?;
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
    let ingestor = Ingestor::new(KeyCache::new(stores.projects.clone()), enricher, pipeline);
    let state = AppState {
        config: Arc::new(config),
        stores,
        ingestor: Arc::new(ingestor),
        redis,
        spool,
        plan: Arc::new(plan),
    };
    Ok(App { state, tasks })
}

impl App {
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then drains: in-flight requests finish, the ingest queue
    /// is committed (or spooled), Redis is closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App { state, tasks } = self;
        let timeout = Duration::from_secs(state.config.shutdown_timeout_secs);
        let redis = state.redis.clone();
        let router = http::router(state);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        let server = tokio::spawn(async move { server.await });
        let _ = stopping_rx.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        match tokio::time::timeout(timeout, server).await {
            Ok(joined) => joined.map_err(std::io::Error::other)??,
            Err(_) => tracing::warn!(?timeout, "in-flight requests did not finish in time"),
        }
        tasks.shutdown(timeout).await;
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
