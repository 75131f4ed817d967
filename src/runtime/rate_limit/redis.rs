//! The Redis [`RateLimiter`], shared by every instance on one Redis: one sorted set per key
//! (`si:rl:{namespace}:{key}`), checked and recorded by one atomic Lua script in one round trip
//! (`EVALSHA`, `EVAL` after a `NOSCRIPT`). [`FallbackLimiter`] answers from memory for any request
//! Redis cannot answer, so a Redis outage never fails or blocks a request.

use super::{Decision, MemoryRateLimiter, RateLimiter};
use crate::runtime::redis::{CallError, RedisHandle};
use fred::prelude::*;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Check-and-record, atomically. KEYS[1] = the sorted set; ARGV = window (µs), limit, a member
/// unique to this request. Time is Redis's own (`TIME`), so instances with skewed clocks agree.
/// It trims what aged out, counts *before* adding, and adds only when the count is below the
/// limit: exactly `limit` requests pass, and a rejected request is not recorded.
/// Returns `{allowed, remaining, µs until the oldest entry ages out}`.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
local remaining = limit - count
if remaining < 0 then remaining = 0 end
return {allowed, remaining, reset}
"#;

/// The Redis key of one limiter key.
pub fn redis_key(namespace: &str, key: &str) -> String {
    format!("si:rl:{namespace}:{key}")
}

pub struct RedisRateLimiter {
    redis: RedisHandle,
    sha: String,
    /// Random per process, so members from different instances never collide.
    member_prefix: String,
    seq: AtomicU64,
}

impl RedisRateLimiter {
    pub fn new(redis: RedisHandle) -> Self {
        Self {
            redis,
            sha: fred::util::sha1_hash(SCRIPT),
            member_prefix: crate::domain::ids::random_hex(8),
            seq: AtomicU64::new(0),
        }
    }

    /// One check in one round trip through the Redis breaker, bounded by
    /// [`crate::runtime::redis::COMMAND_TIMEOUT`]. Errors when Redis is
    /// disconnected or its breaker is open (without waiting), slow, or answers something
    /// unexpected.
    pub async fn try_check(
        &self,
        namespace: &str,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, CallError<String>> {
        let window_us = (window.as_micros() as i64).max(1);
        let member = format!(
            "{}-{:x}",
            self.member_prefix,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let keys = vec![redis_key(namespace, key)];
        let args: Vec<Value> = vec![window_us.into(), i64::from(limit).into(), member.into()];
        let client = self.redis.client();
        let run = async {
            match client
                .evalsha::<Vec<i64>, _, _, _>(self.sha.as_str(), keys.clone(), args.clone())
                .await
            {
                Err(e) if e.details().contains("NOSCRIPT") => {
                    // First use on this server (or it restarted): EVAL also caches the script.
                    client.eval::<Vec<i64>, _, _, _>(SCRIPT, keys, args).await
                }
                other => other,
            }
        };
        let reply = self.redis.command(run).await.map_err(|e| match e {
            CallError::Failed(e) => CallError::Failed(e.to_string()),
            CallError::Disconnected => CallError::Disconnected,
            CallError::BreakerOpen => CallError::BreakerOpen,
            CallError::TimedOut => CallError::TimedOut,
        })?;
        match reply[..] {
            [allowed, remaining, reset_us] => Ok(Decision {
                allowed: allowed == 1,
                limit,
                remaining: remaining.clamp(0, i64::from(limit)) as u32,
                reset_after: Duration::from_micros(reset_us.max(0) as u64),
            }),
            _ => Err(CallError::Failed(format!(
                "unexpected rate-limit script reply {reply:?}"
            ))),
        }
    }
}

/// How often the fallback is logged at most.
const FALLBACK_LOG_EVERY: Duration = Duration::from_secs(30);

/// Redis first; for each request Redis cannot answer, the in-process limiter. Logs the fallback
/// at most once per 30 s, and once when Redis answers again.
pub struct FallbackLimiter {
    redis: RedisRateLimiter,
    memory: Arc<MemoryRateLimiter>,
    start: Instant,
    /// Milliseconds since `start` of the last fallback warning; `u64::MAX` = never.
    last_warning_ms: AtomicU64,
    degraded: AtomicBool,
    fallbacks: AtomicU64,
}

impl FallbackLimiter {
    pub fn new(redis: RedisRateLimiter, memory: Arc<MemoryRateLimiter>) -> Self {
        Self {
            redis,
            memory,
            start: Instant::now(),
            last_warning_ms: AtomicU64::new(u64::MAX),
            degraded: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Checks answered from memory because Redis could not answer, since startup.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn warn_rate_limited(&self, error: &str) {
        let now = self.start.elapsed().as_millis() as u64;
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        let due =
            last == u64::MAX || now.saturating_sub(last) >= FALLBACK_LOG_EVERY.as_millis() as u64;
        if due
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error,
                fallbacks = self.fallbacks(),
                "rate limits: redis cannot answer; limiting in memory on this instance (logged at most every 30 s)"
            );
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for FallbackLimiter {
    async fn check(&self, namespace: &str, key: &str, limit: u32, window: Duration) -> Decision {
        match self.redis.try_check(namespace, key, limit, window).await {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits: redis answers again; limits are shared again");
                }
                decision
            }
            Err(error) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::fallback(crate::telemetry::Piece::RateLimits, error.reason());
                self.degraded.store(true, Ordering::Relaxed);
                self.warn_rate_limited(&error.to_string());
                self.memory.check(namespace, key, limit, window).await
            }
        }
    }

    fn backend(&self) -> &'static str {
        "redis (in-process while redis is down)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RedisConfig, Secret};

    /// A handle to a Redis that is not there: every check must fall back, quickly.
    #[tokio::test]
    async fn unreachable_redis_falls_back_to_memory_without_waiting() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = RedisConfig {
            url: Some(Secret::new(format!("redis://127.0.0.1:{port}"))),
            ..RedisConfig::default()
        };
        let handle = RedisHandle::start(&config).unwrap().unwrap();
        let limiter = FallbackLimiter::new(
            RedisRateLimiter::new(handle),
            Arc::new(MemoryRateLimiter::default()),
        );
        let started = Instant::now();
        let window = Duration::from_secs(60);
        assert!(limiter.check("t", "k", 2, window).await.allowed);
        assert!(limiter.check("t", "k", 2, window).await.allowed);
        assert!(!limiter.check("t", "k", 2, window).await.allowed);
        assert_eq!(limiter.fallbacks(), 3);
        assert!(started.elapsed() < Duration::from_millis(200));
    }
}
