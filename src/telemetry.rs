//! Prometheus metrics: one process-wide recorder (the `metrics` facade with its Prometheus
//! exporter, rendered by `GET /metrics`) and one function per series, so every name, unit and
//! label set is written here once. Label values are always from a fixed set (route templates,
//! piece names, outcome words), never raw request input, so no client can grow the series.
//!
//! Must not do IO or know any backend: callers say what happened, this module counts it.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{
    collections::VecDeque,
    sync::{Mutex, OnceLock},
    time::Duration,
};

/// Latency buckets (seconds) for every `_seconds` histogram: 0.5 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Items per ingest commit.
const ITEMS_BUCKETS: &[f64] = &[1.0, 5.0, 20.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0];

/// The recorder, installed on first use. In a process that already has another global
/// recorder (a test harness embedding several apps has only ours), series still render from
/// this handle's own registry.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("si_ingest_commit_items".into()),
                    ITEMS_BUCKETS,
                )
            })
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("metrics: another recorder is installed; /metrics shows only its own");
        }
        handle
    })
}

/// The text exposition of every series.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

/// A piece that can fall back when Redis (or the store) cannot serve it.
#[derive(Clone, Copy, Debug)]
pub enum Piece {
    Sessions,
    Cache,
    RateLimits,
    JobQueue,
    Ingest,
    Realtime,
    IngestBuffer,
}

impl Piece {
    /// The piece's label value.
    pub fn label(self) -> &'static str {
        match self {
            Piece::Sessions => "sessions",
            Piece::Cache => "cache",
            Piece::RateLimits => "rate_limits",
            Piece::JobQueue => "job_queue",
            Piece::Ingest => "ingest",
            Piece::Realtime => "realtime",
            Piece::IngestBuffer => "ingest_buffer",
        }
    }
}

/// One request answered: `route` is the matched template (`/projects/{id}/events`), or
/// `unmatched`. The label writes parameters as `:id` and `*path` (`/projects/:id/events`), the
/// form SuperInsights 1.x's routes had, since some scrapers mis-read braces in label values.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let route: String = route.replace("{*", "*").replace('{', ":").replace('}', "");
    // Methods are a fixed set too: anything else a client invents is `OTHER`.
    let method = match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "OTHER",
    };
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    counter!("si_http_requests_total", &labels).increment(1);
    histogram!("si_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// A piece served a call from its fallback; `reason` is a fixed word (`disconnected`,
/// `breaker_open`, `timed_out`, `error`, `unavailable`, `store_unavailable`).
pub fn fallback(piece: Piece, reason: &'static str) {
    counter!("si_fallbacks_total", "piece" => piece.label(), "reason" => reason).increment(1);
    note_recent(piece.label(), reason);
}

/// A background task (`crate::tasks`) panicked or returned an error; `task` is its fixed name.
pub fn task_failure(task: &'static str) {
    counter!("si_task_failures_total", "task" => task).increment(1);
}

/// One run of fallbacks of a piece for a reason: when it began and ended, and how many calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FallbackRun {
    pub piece: &'static str,
    pub reason: &'static str,
    pub first_ms: i64,
    pub last_ms: i64,
    pub calls: u64,
}

/// Runs kept for the system page.
const RECENT_RUNS: usize = 20;
/// A fallback this long after the last one of its piece and reason starts a new run.
const RUN_GAP_MS: i64 = 60_000;

fn recent() -> &'static Mutex<VecDeque<FallbackRun>> {
    static RECENT: OnceLock<Mutex<VecDeque<FallbackRun>>> = OnceLock::new();
    RECENT.get_or_init(Mutex::default)
}

fn note_recent(piece: &'static str, reason: &'static str) {
    let now = crate::domain::timestamp::now_ms();
    let mut runs = recent().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(run) = runs
        .iter_mut()
        .find(|r| r.piece == piece && r.reason == reason && now - r.last_ms < RUN_GAP_MS)
    {
        run.last_ms = now;
        run.calls += 1;
        return;
    }
    if runs.len() == RECENT_RUNS {
        runs.pop_front();
    }
    runs.push_back(FallbackRun {
        piece,
        reason,
        first_ms: now,
        last_ms: now,
        calls: 1,
    });
}

/// The most recent fallback runs of this process, newest first.
pub fn recent_fallbacks() -> Vec<FallbackRun> {
    let runs = recent().lock().unwrap_or_else(|p| p.into_inner());
    let mut out: Vec<_> = runs.iter().cloned().collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.last_ms));
    out
}

/// Redis as seen at scrape time.
pub fn redis_state(connected: bool, breaker_open: bool, trips: u64, timeouts: u64) {
    gauge!("si_redis_connected").set(if connected { 1.0 } else { 0.0 });
    gauge!("si_redis_breaker_open").set(if breaker_open { 1.0 } else { 0.0 });
    counter!("si_redis_breaker_trips_total").absolute(trips);
    counter!("si_redis_call_timeouts_total").absolute(timeouts);
}

/// The Redis client reconnected.
pub fn redis_reconnected() {
    counter!("si_redis_reconnects_total").increment(1);
}

/// A cached view was served (`hit`) or computed (`miss`, with the compute time).
/// `view` is a view kind named in code (`dashboard`, `events`, …), never request input.
pub fn cache_lookup(view: &str, hit: bool, compute: Option<Duration>) {
    let result = if hit { "hit" } else { "miss" };
    counter!("si_cache_requests_total", "view" => view.to_string(), "result" => result)
        .increment(1);
    if let Some(took) = compute {
        histogram!("si_cache_compute_seconds", "view" => view.to_string())
            .record(took.as_secs_f64());
    }
}

/// One rate-limit decision of a limiter (its namespace, e.g. `ingest_ip`).
pub fn rate_limit_decision(limiter: &str, allowed: bool) {
    let decision = if allowed { "allowed" } else { "limited" };
    counter!("si_rate_limit_decisions_total", "limiter" => limiter.to_string(), "decision" => decision)
        .increment(1);
}

/// The job queue at scrape time.
pub fn job_queue_state(queued: u64, running: u64, failed: u64, oldest_queued: Option<Duration>) {
    gauge!("si_job_queue_jobs", "state" => "queued").set(queued as f64);
    gauge!("si_job_queue_jobs", "state" => "running").set(running as f64);
    gauge!("si_job_queue_jobs", "state" => "failed").set(failed as f64);
    gauge!("si_job_queue_oldest_queued_age_seconds")
        .set(oldest_queued.map_or(0.0, |d| d.as_secs_f64()));
}

/// A job attempt of `kind` ended: `completed`, `retried` or `dead` (failed for good).
pub fn job_attempt(kind: &str, outcome: &'static str) {
    counter!("si_job_attempts_total", "kind" => kind.to_string(), "outcome" => outcome)
        .increment(1);
}

/// Items of accepted ingestion requests by where they went: `stored`, `spooled`, `refused`
/// (neither took them; the client was told 503), `dropped` (by the project's drop rules).
pub fn ingest_items(outcome: &'static str, items: usize) {
    counter!("si_ingest_items_total", "outcome" => outcome).increment(items as u64);
}

/// One group commit of the ingest writer.
pub fn ingest_commit(elapsed: Duration, items: usize, stored: bool) {
    let result = if stored { "stored" } else { "failed" };
    histogram!("si_ingest_commit_duration_seconds", "result" => result)
        .record(elapsed.as_secs_f64());
    histogram!("si_ingest_commit_items").record(items as f64);
}

/// Batches through the Redis ingest buffer by what happened: `buffered` (in the stream,
/// acknowledged), `full`, `unavailable`, `error` (not added: the local path took them),
/// `uncertain` (no answer to the add: spooled), and on the writer's side `committed`,
/// `duplicate` (already in the store: only acknowledged), `reclaimed` (taken over from a dead
/// writer), `spooled` (refused by the store: to the disk spool), `unreadable`.
pub fn ingest_buffer_batches(outcome: &'static str, batches: u64) {
    counter!("si_ingest_buffer_batches_total", "outcome" => outcome).increment(batches);
}

/// The Redis ingest buffer at scrape time (as this instance's writer last saw it).
pub fn ingest_buffer_state(length: u64, pending: u64, oldest_pending_seconds: f64, bytes: u64) {
    gauge!("si_ingest_buffer_length").set(length as f64);
    gauge!("si_ingest_buffer_pending").set(pending as f64);
    gauge!("si_ingest_buffer_oldest_pending_age_seconds").set(oldest_pending_seconds);
    gauge!("si_ingest_buffer_bytes").set(bytes as f64);
}

/// The spool at scrape time.
pub fn spool_state(bytes: u64, store_refusing: bool) {
    gauge!("si_ingest_spool_bytes").set(bytes as f64);
    gauge!("si_ingest_store_refusing").set(if store_refusing { 1.0 } else { 0.0 });
}

/// A session was looked up: `store` is where it was found (`redis`, `durable`) or `none`.
pub fn session_lookup(store: &'static str) {
    counter!("si_session_lookups_total", "store" => store).increment(1);
}

/// An audit-log write: `written`, or `failed` (the user's action went on; the entry is lost).
pub fn audit_log_write(outcome: &'static str) {
    counter!("si_audit_log_writes_total", "outcome" => outcome).increment(1);
}

/// An email handed to the SMTP server (`sent`) or refused by it or unreachable (`failed`), by
/// what it was (`password_reset`, `report`).
pub fn email_sent(kind: &'static str, outcome: &'static str) {
    counter!("si_emails_total", "kind" => kind, "outcome" => outcome).increment(1);
}

/// Seconds since the process started, at scrape time.
pub fn uptime(seconds: f64) {
    gauge!("si_uptime_seconds").set(seconds);
}
