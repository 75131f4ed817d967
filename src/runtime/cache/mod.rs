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
    domain::{analytics::Timeframe, ids::DocId, timestamp::now_ms},
    store::StoreResult,
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

/// Dashboards behind the cache.
pub struct DashboardCache {
    cache: Arc<dyn Cache>,
    default_ttl: Duration,
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub counters: CacheCounters,
}

impl DashboardCache {
    pub fn new(cache: Arc<dyn Cache>, default_ttl: Duration) -> Self {
        Self {
            cache,
            default_ttl,
            inflight: Mutex::default(),
            counters: CacheCounters::default(),
        }
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
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        self.get_or_compute_kept(kind, project, timeframe, variant, |_| true, compute)
            .await
    }

    /// [`DashboardCache::get_or_compute`], storing a computed value only when `keep` says so
    /// (an answer that must not stay stale, such as the first data of an empty project).
    pub async fn get_or_compute_kept<T, F, Fut>(
        &self,
        kind: &str,
        project: DocId,
        timeframe: Timeframe,
        variant: &str,
        keep: impl FnOnce(&T) -> bool,
        compute: F,
    ) -> StoreResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let Some(generation) = self.cache.generation(project).await else {
            return self.timed(kind, project, timeframe, compute()).await;
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
        // Single-flight: one computation per key; the others wait and then read the cache.
        let gate = self
            .inflight
            .lock()
            .expect("inflight")
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        if let Some(hit) = self.cached(kind, &key).await {
            return Ok(hit);
        }
        let fresh = self.timed(kind, project, timeframe, compute()).await;
        if let Ok(value) = &fresh
            && keep(value)
            && let Ok(bytes) = serde_json::to_vec(value)
        {
            self.cache.set(&key, &bytes, bucket).await;
        }
        self.inflight.lock().expect("inflight").remove(&key);
        fresh
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

    async fn timed<T>(
        &self,
        kind: &str,
        project: DocId,
        timeframe: Timeframe,
        work: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = work.await;
        let took = started.elapsed();
        crate::telemetry::cache_lookup(kind, false, Some(took));
        let micros = took.as_micros() as u64;
        self.counters
            .compute_micros
            .fetch_add(micros, Ordering::Relaxed);
        tracing::debug!(%project, kind, timeframe = timeframe.as_str(), micros, "view computed");
        result
    }

    /// Makes every cached dashboard of the project unreachable (after clear, delete, drop rules).
    pub async fn invalidate(&self, project: DocId) {
        self.cache.bump_generation(project).await;
    }
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
}
