//! Liveness, readiness and metrics, from one [`Snapshot`] of every piece.
//!
//! `/healthz` answers without touching anything (503 only when the ingest writer is gone, which
//! no request can bring back). `/readyz` pings the store and is 503 when it does not answer or
//! refuses ingest commits (everything is going to the spool); it reports Redis, the spool and the
//! job queue too, which never make the server unready: without them it degrades, it does not
//! stop. It gives states, never backend error text (anonymous clients read it; the cause is
//! logged). `/metrics` is the Prometheus text format, for loopback clients or a Bearer
//! `METRICS_TOKEN`.

use crate::{domain::records::JobCounts, state::AppState};
use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use serde_json::json;
use std::{net::SocketAddr, sync::OnceLock, time::Duration, time::Instant};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz(
    State(ingestor): State<std::sync::Arc<crate::ingest::Ingestor>>,
) -> impl IntoResponse {
    if ingestor.health().writer_alive() {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "ingest writer stopped"})),
        )
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let s = Snapshot::take(&state).await;
    let ready = s.ready();
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "db": if s.store_ok { "connected" } else { "disconnected" },
        "store": {"backend": s.store_backend, "ok": s.store_ok},
        "redis": s.redis,
        "ingestSpool": {"pending": s.ingest.spool_bytes > 0},
        "ingest": s.ingest,
        "ingestBuffer": s.ingest_buffer,
        "jobQueue": match s.jobs {
            Some(c) => json!({
                "backend": s.job_backend,
                "queued": c.queued,
                "running": c.running,
                "failed": c.failed,
            }),
            None => json!({"backend": s.job_backend, "error": "counts unavailable"}),
        },
        "dashboardCache": s.cache,
        "uptimeSeconds": s.uptime.as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics`: loopback clients that came straight to us (no forwarding headers, so a
/// local reverse proxy does not open it to the world), or a matching `METRICS_TOKEN`.
async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !metrics_allowed(&state, peer, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "Metrics require a loopback client or METRICS_TOKEN"})),
        )
            .into_response();
    }
    let s = Snapshot::take(&state).await;
    s.record();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
        .into_response()
}

fn metrics_allowed(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    let token = state.config.metrics_token.expose();
    if !token.is_empty() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        use subtle::ConstantTimeEq;
        if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return true;
        }
    }
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    peer.ip().is_loopback() && !forwarded
}

/// When this process started (first use: at startup, from `build`).
pub fn started_at() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Every piece's live state, read once per `/readyz`, `/metrics` or system page.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub store_backend: &'static str,
    pub store_ok: bool,
    pub redis: RedisState,
    pub ingest: IngestState,
    /// The Redis ingest buffer, when `INGEST_BUFFER_REDIS` is on.
    pub ingest_buffer: Option<crate::ingest::buffer::BufferState>,
    pub job_backend: &'static str,
    pub jobs: Option<JobCounts>,
    pub cache: CacheState,
    pub sessions: &'static str,
    pub rate_limits: &'static str,
    #[serde(skip)]
    pub uptime: Duration,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisState {
    pub configured: bool,
    pub connected: bool,
    pub breaker: Option<BreakerState>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerState {
    pub open: bool,
    pub trips: u64,
    pub short_circuits: u64,
    pub timeouts: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestState {
    pub ok: bool,
    pub writer_alive: bool,
    pub store_taking_writes: bool,
    pub spooled_batches: u64,
    pub refused_batches: u64,
    pub spool_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheState {
    pub backend: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub compute_micros: u64,
}

impl CacheState {
    /// Hits over lookups, `None` before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

impl Snapshot {
    pub async fn take(state: &AppState) -> Self {
        let bound = Duration::from_secs(2);
        let store_ok = match tokio::time::timeout(bound, state.stores.admin.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: store ping failed");
                false
            }
            Err(_) => {
                tracing::warn!("readiness: store ping timed out");
                false
            }
        };
        let redis = match &state.redis {
            None => RedisState {
                configured: false,
                connected: false,
                breaker: None,
            },
            Some(r) => {
                let b = r.breaker();
                RedisState {
                    configured: true,
                    connected: r.ping().await.is_ok(),
                    breaker: Some(BreakerState {
                        open: b.is_open(),
                        trips: b.trips(),
                        short_circuits: b.short_circuits(),
                        timeouts: b.timeouts(),
                    }),
                }
            }
        };
        let health = state.ingestor.health();
        let ingest = IngestState {
            ok: health.writer_alive() && !health.store_refusing(),
            writer_alive: health.writer_alive(),
            store_taking_writes: !health.store_refusing(),
            spooled_batches: health.spooled_batches(),
            refused_batches: health.refused_batches(),
            spool_bytes: state.spool.pending_bytes(),
        };
        // As this instance's writer last saw it (refreshed every second): no Redis call here.
        let ingest_buffer = state.ingestor.buffer().map(|b| b.stats().state());
        let jobs = match tokio::time::timeout(bound, state.jobs.counts()).await {
            Ok(Ok(c)) => Some(c),
            _ => None,
        };
        let counters = &state.dashboards.counters;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Snapshot {
            store_backend: state.stores.name,
            store_ok,
            redis,
            ingest,
            ingest_buffer,
            job_backend: state.jobs.backend(),
            jobs,
            cache: CacheState {
                backend: state.dashboards.backend(),
                hits: load(&counters.hits),
                misses: load(&counters.misses),
                compute_micros: load(&counters.compute_micros),
            },
            sessions: state.sessions.describe(),
            rate_limits: state.rate_limiter.backend(),
            uptime: started_at().elapsed(),
        }
    }

    /// Ready: the store answers and takes ingest commits, and the writer runs.
    pub fn ready(&self) -> bool {
        self.store_ok && self.ingest.ok
    }

    /// Sets the scrape-time gauges.
    fn record(&self) {
        use crate::telemetry as t;
        if let Some(b) = &self.redis.breaker {
            t::redis_state(self.redis.connected, b.open, b.trips, b.timeouts);
        }
        t::spool_state(self.ingest.spool_bytes, !self.ingest.store_taking_writes);
        if let Some(b) = &self.ingest_buffer {
            t::ingest_buffer_state(b.length, b.pending, b.oldest_pending_seconds, b.bytes);
        }
        if let Some(c) = self.jobs {
            let oldest = c.oldest_queued_ms.map(|ms| {
                let age = crate::domain::timestamp::now_ms().saturating_sub(ms);
                Duration::from_millis(age.max(0) as u64)
            });
            t::job_queue_state(c.queued, c.running, c.failed, oldest);
        }
        t::uptime(self.uptime.as_secs_f64());
    }
}
