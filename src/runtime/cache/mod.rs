//! The dashboard cache: a `Cache` port (in-process, or Redis with `CACHE_REDIS=true`) and
//! [`DashboardCache`], which puts dashboards (and any other analytics view) behind it with keys
//! that actually hit: `si:v1:{kind}:{project}:{generation}:{timeframe}:{bucket}:{variant}`, where the bucket is the current
//! time rounded to the timeframe's bucket length (SuperInsights' plan embedded "now" in
//! milliseconds, so nothing ever hit). Concurrent misses of one key compute once (single-flight);
//! clearing data, deleting a project or changing drop rules bumps the project's generation, so its
//! old entries are never read again. Cache errors are misses, never failures.

pub mod memory;
pub mod redis;

use crate::{
    domain::{
        analytics::{StillComputing, Timeframe},
        ids::DocId,
        timestamp::now_ms,
    },
    store::{StoreError, StoreResult},
};
use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// A byte cache with TTLs and per-project generations.
#[async_trait]
pub trait Cache: Send + Sync {
    /// The cached value, `None` on a miss or any error.
    async fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores a value for `ttl`; errors are ignored (logged by the implementation).
    async fn set(&self, key: &str, value: &[u8], ttl: Duration);
    /// The project's current generation, `None` when it cannot be read (then bypass the cache).
    async fn generation(&self, project: DocId) -> Option<u64>;
    /// Starts a new generation: every entry of the project becomes unreachable.
    async fn bump_generation(&self, project: DocId);
    /// `memory` or `redis`.
    fn name(&self) -> &'static str;
}

/// How long a dashboard may be reused: short timeframes refresh sooner.
pub fn bucket_len(timeframe: Timeframe, default_ttl: Duration) -> Duration {
    match timeframe {
        Timeframe::M5 => Duration::from_secs(15),
        Timeframe::M30 => Duration::from_secs(30),
        Timeframe::H1 | Timeframe::H6 | Timeframe::H12 => Duration::from_secs(60),
        _ => default_ttl.max(Duration::from_secs(1)),
    }
}

/// Hits, misses and compute time, for `/readyz` and the logs.
#[derive(Default, Debug)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub compute_micros: AtomicU64,
}

/// How long a request waits for a view being computed before it is answered 503 with
/// `Retry-After` (the computation goes on and fills the cache for the retry), unless
/// `VIEW_WAIT_MS` says otherwise. Below the 30 s that clients and proxies commonly give a request.
pub const VIEW_WAIT: Duration = crate::config::DEFAULT_VIEW_WAIT;

/// What a computation left for the callers waiting on it: the view serialized, or its error
/// (whether the store was unavailable, and the message).
type Landed = Result<Arc<Vec<u8>>, (bool, String)>;

/// The computations in flight, by cache key: each caller of a key watches the one computation.
type Flights = Mutex<HashMap<String, tokio::sync::watch::Receiver<Option<Landed>>>>;

/// Dashboards behind the cache.
pub struct DashboardCache {
    cache: Arc<dyn Cache>,
    default_ttl: Duration,
    wait: Duration,
    inflight: Arc<Flights>,
    pub counters: Arc<CacheCounters>,
}

impl DashboardCache {
    pub fn new(cache: Arc<dyn Cache>, default_ttl: Duration) -> Self {
        Self {
            cache,
            default_ttl,
            wait: VIEW_WAIT,
            inflight: Arc::default(),
            counters: Arc::default(),
        }
    }

    /// The same cache with another bound on the wait for a computation (`VIEW_WAIT_MS`).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    pub fn backend(&self) -> &'static str {
        self.cache.name()
    }

    /// Any analytics view behind the cache: the entry under
    /// `si:v1:{kind}:{project}:{generation}:{timeframe}:{bucket}:{variant}` when fresh, else
    /// `compute()` (once per key however many callers miss together). `variant` tells apart views
    /// of one kind and timeframe, e.g. a digest of the filters and paging (`-` for none). Errors
    /// are not cached.
    pub async fn get_or_compute<T, F, Fut>(
        &self,
        kind: &str,
        project: DocId,
        timeframe: Timeframe,
        variant: &str,
        compute: F,
    ) -> StoreResult<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        self.get_or_compute_kept(kind, project, timeframe, variant, |_| true, compute)
            .await
    }

    /// [`DashboardCache::get_or_compute`], storing a computed value only when `keep` says so
    /// (an answer that must not stay stale, such as the first data of an empty project).
    ///
    /// Single-flight: the first caller to miss a key starts the computation as a task of its
    /// own, and every caller that misses the key while it runs waits for that one task — its
    /// value, or its error, is everyone's (a failed computation is not repeated once per
    /// waiter). The task does not belong to any request: a caller that gives up (its client
    /// went away) does not stop it, and what it computes is cached for the next request. A
    /// caller waits at most [`VIEW_WAIT`] (or its `with_wait`), then gets `Unavailable` caused by
    /// [`StillComputing`] (503 with `Retry-After`, and a page that reloads itself).
    pub async fn get_or_compute_kept<T, F, Fut>(
        &self,
        kind: &str,
        project: DocId,
        timeframe: Timeframe,
        variant: &str,
        keep: impl FnOnce(&T) -> bool + Send + 'static,
        compute: F,
    ) -> StoreResult<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let Some(generation) = self.cache.generation(project).await else {
            return timed(&self.counters, kind, project, timeframe, compute()).await;
        };
        let bucket = bucket_len(timeframe, self.default_ttl);
        let slot = now_ms() / bucket.as_millis().max(1) as i64;
        let key = format!(
            "si:v1:{kind}:{project}:{generation}:{}:{slot}:{variant}",
            timeframe.as_str()
        );
        if let Some(hit) = self.cached(kind, &key).await {
            return Ok(hit);
        }
        let (mut flight, joined) = {
            let mut inflight = self.inflight.lock().expect("inflight");
            match inflight.get(&key) {
                Some(running) => (running.clone(), true),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    inflight.insert(key.clone(), rx.clone());
                    let work = compute();
                    let flight = Flight {
                        inflight: self.inflight.clone(),
                        key: key.clone(),
                    };
                    let (cache, counters, kind) =
                        (self.cache.clone(), self.counters.clone(), kind.to_string());
                    crate::tasks::spawn("view_compute", async move {
                        let fresh = timed(&counters, &kind, project, timeframe, work).await;
                        let landed = match fresh {
                            Ok(value) => match serde_json::to_vec(&value) {
                                Ok(bytes) => {
                                    if keep(&value) {
                                        cache.set(&flight.key, &bytes, bucket).await;
                                    }
                                    Ok(Arc::new(bytes))
                                }
                                Err(e) => Err((false, format!("view not serializable: {e}"))),
                            },
                            Err(e) => Err((e.is_unavailable(), e.to_string())),
                        };
                        // Off the list before the callers hear: a caller arriving now finds
                        // the cache (or, for a value not kept or an error, starts anew).
                        drop(flight);
                        let _ = tx.send(Some(landed));
                    });
                    (rx, false)
                }
            }
        };
        let landed = match tokio::time::timeout(self.wait, flight.wait_for(Option::is_some)).await {
            Ok(Ok(landed)) => landed.clone().expect("waited for Some"),
            Ok(Err(_)) => Err((false, format!("the {kind} view's computation stopped"))),
            Err(_) => {
                return Err(StoreError::unavailable_from(StillComputing {
                    kind: kind.to_string(),
                    waited: self.wait,
                }));
            }
        };
        match landed {
            Ok(bytes) => {
                if joined {
                    // Served without a computation of its own: a hit, as a cache read is.
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::cache_lookup(kind, true, None);
                }
                serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::other(format!("the {kind} view did not decode: {e}")))
            }
            Err((true, message)) => Err(StoreError::unavailable(message)),
            Err((false, message)) => Err(StoreError::other(message)),
        }
    }

    async fn cached<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let bytes = self.cache.get(key).await?;
        match serde_json::from_slice::<T>(&bytes) {
            Ok(value) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::cache_lookup(kind, true, None);
                Some(value)
            }
            Err(_) => None,
        }
    }

    /// Makes every cached dashboard of the project unreachable (after clear, delete, drop rules).
    pub async fn invalidate(&self, project: DocId) {
        self.cache.bump_generation(project).await;
    }
}

/// A computation's place in the in-flight list; leaves it when dropped (also when the
/// computation panics), so the key never stays taken.
struct Flight {
    inflight: Arc<Flights>,
    key: String,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.key);
    }
}

/// Runs a view's computation, counting it as a miss and timing it.
async fn timed<T>(
    counters: &CacheCounters,
    kind: &str,
    project: DocId,
    timeframe: Timeframe,
    work: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    counters.misses.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let result = work.await;
    let took = started.elapsed();
    crate::telemetry::cache_lookup(kind, false, Some(took));
    let micros = took.as_micros() as u64;
    counters.compute_micros.fetch_add(micros, Ordering::Relaxed);
    tracing::debug!(%project, kind, timeframe = timeframe.as_str(), micros, "view computed");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_timeframes_use_short_buckets() {
        let ttl = Duration::from_secs(300);
        assert_eq!(bucket_len(Timeframe::M5, ttl), Duration::from_secs(15));
        assert_eq!(bucket_len(Timeframe::M30, ttl), Duration::from_secs(30));
        assert_eq!(bucket_len(Timeframe::H6, ttl), Duration::from_secs(60));
        assert_eq!(bucket_len(Timeframe::D30, ttl), ttl);
    }

    /// A cache whose views count their computations and take `delay` each.
    fn counting(wait: Duration) -> (Arc<DashboardCache>, Arc<AtomicU64>) {
        let cache = DashboardCache::new(
            Arc::new(memory::MemoryCache::default()),
            Duration::from_secs(300),
        )
        .with_wait(wait);
        (Arc::new(cache), Arc::new(AtomicU64::new(0)))
    }

    async fn view(
        cache: &DashboardCache,
        project: DocId,
        runs: &Arc<AtomicU64>,
        delay: Duration,
        fail: bool,
    ) -> StoreResult<u64> {
        let runs = runs.clone();
        cache
            .get_or_compute("test", project, Timeframe::D7, "-", || async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                if fail {
                    Err(StoreError::unavailable("store away".into()))
                } else {
                    Ok(n * 100)
                }
            })
            .await
    }

    async fn sixteen_at_once(
        cache: &Arc<DashboardCache>,
        project: DocId,
        runs: &Arc<AtomicU64>,
        delay: Duration,
        fail: bool,
    ) -> Vec<StoreResult<u64>> {
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move { view(&cache, project, &runs, delay, fail).await })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_computation() {
        let (cache, runs) = counting(Duration::from_secs(10));
        let project = DocId::new();
        let answers =
            sixteen_at_once(&cache, project, &runs, Duration::from_millis(200), false).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one computation for 16 callers"
        );
        assert!(answers.iter().all(|a| matches!(a, Ok(100))), "{answers:?}");
        assert_eq!(cache.counters.misses.load(Ordering::Relaxed), 1);
        assert_eq!(cache.counters.hits.load(Ordering::Relaxed), 15);
    }

    #[tokio::test]
    async fn a_failed_computation_is_shared_not_repeated_per_waiter() {
        let (cache, runs) = counting(Duration::from_secs(10));
        let project = DocId::new();
        let started = Instant::now();
        let answers =
            sixteen_at_once(&cache, project, &runs, Duration::from_millis(200), true).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the waiters share the failure"
        );
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Err(e) if e.is_unavailable())),
            "{answers:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not one computation after another: {:?}",
            started.elapsed()
        );
        // Errors are not cached: the next caller computes again.
        assert_eq!(
            view(&cache, project, &runs, Duration::ZERO, false)
                .await
                .unwrap(),
            200
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_slow_computation_answers_unavailable_and_fills_the_cache_for_the_retry() {
        let (cache, runs) = counting(Duration::from_millis(100));
        let project = DocId::new();
        let started = Instant::now();
        let answers =
            sixteen_at_once(&cache, project, &runs, Duration::from_millis(600), false).await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "bounded wait: {:?}",
            started.elapsed()
        );
        // Unavailable because still being computed (the page that reloads itself), not an outage.
        let pending = |e: &StoreError| matches!(e, StoreError::Unavailable { source: Some(s), .. } if s.is::<StillComputing>());
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Err(e) if e.is_unavailable() && pending(e))),
            "{answers:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The callers gave up; the computation did not. Once it lands, the retry is a hit.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let hits = cache.counters.hits.load(Ordering::Relaxed);
        assert_eq!(
            view(&cache, project, &runs, Duration::ZERO, false)
                .await
                .unwrap(),
            100
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1, "no second computation");
        assert_eq!(cache.counters.hits.load(Ordering::Relaxed), hits + 1);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_stop_the_computation() {
        let (cache, runs) = counting(Duration::from_secs(10));
        let project = DocId::new();
        let gone = tokio::time::timeout(
            Duration::from_millis(50),
            view(&cache, project, &runs, Duration::from_millis(300), false),
        )
        .await;
        assert!(gone.is_err(), "the caller was dropped mid-wait");
        // A caller arriving meanwhile joins the same computation.
        assert_eq!(
            view(&cache, project, &runs, Duration::ZERO, false)
                .await
                .unwrap(),
            100
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
