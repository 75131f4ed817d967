//! Redis: the connection (`REDIS_URL`, parsed by `redis_url`), and which pieces run on it
//! (`SESSION_STORE_REDIS`, `CACHE_REDIS`, `RATE_LIMIT_REDIS`, `JOB_QUEUE_REDIS`,
//! `INGEST_BUFFER_REDIS`) with its timeouts.

use super::{ConfigError, Env, RedisTarget, RedisTopology, Secret, redis_url};

/// Redis connection settings and the per-piece flags.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `None` when `REDIS_URL` is unset or `REDIS_ENABLED=false`.
    pub url: Option<Secret>,
    /// What `REDIS_URL` names: one server, Sentinel or Cluster, TLS or not (validated).
    pub target: RedisTarget,
    pub password: Secret,
    /// `REDIS_DB` when set, else the database in `REDIS_URL` (default 0).
    pub db: Option<u8>,
    /// Default TTL for cached entries, in seconds (`REDIS_TTL`, default 300).
    pub ttl_secs: u64,
    pub sessions: bool,
    pub cache: bool,
    pub rate_limits: bool,
    pub job_queue: bool,
    /// `INGEST_BUFFER_REDIS`: ingest batches are acknowledged once in a Redis stream and
    /// committed by a consumer group of writers (`crate::ingest::buffer`). Needs `REDIS_URL`.
    pub ingest_buffer: bool,
    /// How long startup waits for the first Redis connection before serving on the fallbacks
    /// (`REDIS_STARTUP_WAIT_MS`, default 5000; 0 does not wait).
    pub startup_wait_ms: u64,
    /// How long one Redis command may take before its caller falls back and the breaker opens
    /// (`REDIS_COMMAND_TIMEOUT_MS`, default 500).
    pub command_timeout_ms: u64,
}

/// `REDIS_COMMAND_TIMEOUT_MS` when unset.
pub const DEFAULT_REDIS_COMMAND_TIMEOUT_MS: u64 = 500;

/// Redis off, every piece off, the default timeouts.
impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            target: RedisTarget::default(),
            password: Secret::default(),
            db: None,
            ttl_secs: 0,
            sessions: false,
            cache: false,
            rate_limits: false,
            job_queue: false,
            ingest_buffer: false,
            startup_wait_ms: 0,
            command_timeout_ms: DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
        }
    }
}

impl RedisConfig {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Reads the `REDIS_*` variables and the per-piece flags; the ingest buffer needs a URL.
    pub(super) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let redis_enabled = env.flag("REDIS_ENABLED", true)?;
        let redis_url = env.string("REDIS_URL").filter(|_| redis_enabled);
        let redis_target = match &redis_url {
            Some(url) => redis_url::parse(url).map_err(|e| ConfigError::new("REDIS_URL", e))?,
            None => RedisTarget::default(),
        };
        let redis_db: Option<u8> = env
            .get("REDIS_DB")
            .map(|_| env.number("REDIS_DB", 0u8))
            .transpose()?;
        if redis_db.is_some_and(|db| db > 15) {
            return Err(ConfigError::new("REDIS_DB", "must be between 0 and 15"));
        }
        if matches!(redis_target.topology, RedisTopology::Cluster { .. })
            && redis_db.is_some_and(|db| db != 0)
        {
            return Err(ConfigError::new(
                "REDIS_DB",
                "Redis Cluster has only database 0 (REDIS_URL is redis-cluster://)",
            ));
        }
        let redis = RedisConfig {
            url: redis_url.map(Secret::new),
            target: redis_target,
            password: Secret::new(env.string("REDIS_PASSWORD").unwrap_or_default()),
            db: redis_db,
            ttl_secs: env.number("REDIS_TTL", 300u64)?,
            sessions: env.flag("SESSION_STORE_REDIS", false)?,
            cache: env.flag("CACHE_REDIS", false)?,
            rate_limits: env.flag("RATE_LIMIT_REDIS", false)?,
            job_queue: env.flag("JOB_QUEUE_REDIS", false)?,
            ingest_buffer: env.flag("INGEST_BUFFER_REDIS", false)?,
            startup_wait_ms: env.number_in("REDIS_STARTUP_WAIT_MS", 5000, 0, 120_000)?,
            command_timeout_ms: env.number_in(
                "REDIS_COMMAND_TIMEOUT_MS",
                DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
                50,
                60_000,
            )?,
        };

        if redis.ingest_buffer && redis.url.is_none() {
            return Err(ConfigError::new(
                "INGEST_BUFFER_REDIS",
                if redis_enabled {
                    "is true but REDIS_URL is not set: the buffer needs Redis"
                } else {
                    "is true but REDIS_ENABLED=false turns Redis (REDIS_URL) off: the buffer needs Redis"
                },
            ));
        }
        Ok(redis)
    }
}
