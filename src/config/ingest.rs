//! Ingestion pipeline tuning (`INGEST_*`, `COUNTRY_LOOKUP_ENABLED`, `GEOIP_DB_PATH`) and the
//! bounds of the Redis ingest buffer.

use super::{ConfigError, Env, country_db};
use std::path::{Path, PathBuf};

/// Ingestion pipeline tuning.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    pub spool_path: PathBuf,
    /// Requests that may wait in the channel before handlers wait for room.
    pub queue_capacity: usize,
    /// Upper bound of items committed in one transaction (group commit).
    pub max_commit_items: usize,
    /// How long one ingest commit may wait for the store (a lock held elsewhere, a slow disk)
    /// before its batches are spooled and the request answered 202 (`INGEST_COMMIT_WAIT_MS`).
    pub commit_wait_ms: u64,
    pub country_lookup: bool,
    pub geoip_db_path: Option<PathBuf>,
    /// The Redis ingest buffer's bounds and reclaim time (used with `INGEST_BUFFER_REDIS`).
    pub buffer: IngestBufferConfig,
}

/// Bounds of the Redis Streams ingest buffer. When either bound is reached, new batches take
/// the local path (group commit, disk spool); nothing in the stream is ever trimmed.
#[derive(Clone, Debug)]
pub struct IngestBufferConfig {
    /// `INGEST_BUFFER_MAX_BATCHES`: batches waiting in the stream (default 100000).
    pub max_batches: u64,
    /// `INGEST_BUFFER_MAX_BYTES`: serialized bytes waiting in the stream (default 256 MiB).
    pub max_bytes: u64,
    /// `INGEST_BUFFER_CLAIM_IDLE_MS`: a batch delivered to a writer that has not committed it
    /// for this long is taken over by another writer (default 30000).
    pub claim_idle_ms: u64,
}

impl Default for IngestBufferConfig {
    fn default() -> Self {
        Self {
            max_batches: 100_000,
            max_bytes: 256 * 1024 * 1024,
            claim_idle_ms: 30_000,
        }
    }
}

impl IngestConfig {
    pub(super) fn from_env(env: &Env, data_dir: &Path) -> Result<Self, ConfigError> {
        Ok(IngestConfig {
            spool_path: env
                .get("INGEST_SPOOL_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("ingest-spool.ndjson")),
            queue_capacity: env.number("INGEST_QUEUE_CAPACITY", 4096usize)?.max(1),
            max_commit_items: env.number("INGEST_MAX_COMMIT_ITEMS", 10_000usize)?.max(100),
            commit_wait_ms: env.number_in("INGEST_COMMIT_WAIT_MS", 1000, 50, 60_000)?,
            country_lookup: env.flag("COUNTRY_LOOKUP_ENABLED", true)?,
            // Unset: the bundled IP-to-country database, when it can be found.
            geoip_db_path: env
                .get("GEOIP_DB_PATH")
                .map(PathBuf::from)
                .or_else(|| country_db::bundled_country_db(data_dir)),
            buffer: IngestBufferConfig {
                max_batches: env.number_in("INGEST_BUFFER_MAX_BATCHES", 100_000, 1, 100_000_000)?,
                max_bytes: env.number_in(
                    "INGEST_BUFFER_MAX_BYTES",
                    256 * 1024 * 1024,
                    1024,
                    64 * 1024 * 1024 * 1024,
                )?,
                claim_idle_ms: env.number_in(
                    "INGEST_BUFFER_CLAIM_IDLE_MS",
                    30_000,
                    100,
                    3_600_000,
                )?,
            },
        })
    }
}
