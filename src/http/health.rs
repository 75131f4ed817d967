//! Liveness and readiness. `/healthz` answers without touching anything (503 only when the
//! ingest writer is gone, which no request can bring back); `/readyz` pings the store and is 503
//! when it does not answer or refuses ingest commits (everything is going to the spool), and
//! reports Redis, the spool and the job queue's depth, which never make the server unready:
//! without them it degrades, it does not stop.

use crate::state::AppState;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ingestor.health().writer_alive() {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "ingest writer stopped"})),
        )
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.stores.admin.ping()).await;
    let store_error = match store {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("ping timed out".to_string()),
    };
    let redis = match &state.redis {
        None => json!({"configured": false}),
        Some(r) => {
            let breaker = json!({
                "open": r.breaker().is_open(),
                "trips": r.breaker().trips(),
                "shortCircuits": r.breaker().short_circuits(),
                "timeouts": r.breaker().timeouts(),
            });
            match r.ping().await {
                Ok(()) => json!({"configured": true, "connected": true, "breaker": breaker}),
                Err(e) => {
                    json!({"configured": true, "connected": false, "error": e, "breaker": breaker})
                }
            }
        }
    };
    // Queue depth is informative: a store that cannot count is already reported above.
    let job_counts =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.jobs.counts()).await;
    let job_queue = match job_counts {
        Ok(Ok(c)) => json!({
            "backend": state.jobs.backend(),
            "queued": c.queued,
            "running": c.running,
            "failed": c.failed,
        }),
        _ => json!({"backend": state.jobs.backend(), "error": "counts unavailable"}),
    };
    let ingest = state.ingestor.health();
    let ingest_ok = ingest.writer_alive() && !ingest.store_refusing();
    let ready = store_error.is_none() && ingest_ok;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "db": if store_error.is_none() { "connected" } else { "disconnected" },
        "store": {"backend": state.stores.name, "ok": store_error.is_none(), "error": store_error},
        "redis": redis,
        "ingestSpool": {"pending": state.spool.has_pending()},
        "ingest": {
            "ok": ingest_ok,
            "writerAlive": ingest.writer_alive(),
            "storeTakingWrites": !ingest.store_refusing(),
            "spooledBatches": ingest.spooled_batches(),
            "refusedBatches": ingest.refused_batches(),
        },
        "jobQueue": job_queue,
        "dashboardCache": {
            "backend": state.dashboards.backend(),
            "hits": state.dashboards.counters.hits.load(std::sync::atomic::Ordering::Relaxed),
            "misses": state.dashboards.counters.misses.load(std::sync::atomic::Ordering::Relaxed),
            "computeMicros": state.dashboards.counters.compute_micros.load(std::sync::atomic::Ordering::Relaxed),
        },
    });
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}
