//! The Redis [`RateLimiter`], shared by every instance on one Redis: one sorted set per key
//! (`si:rl:{namespace}:{key}`), checked and recorded by one atomic Lua script in one round trip
//! (`EVALSHA`, `EVAL` after a `NOSCRIPT`). [`FallbackLimiter`] answers from memory for any request
//! Redis cannot answer, so a Redis outage never fails or blocks a request.

use super::{Decision, MemoryRateLimiter, RateLimiter};
use crate::runtime::redis::{CallError, FallbackState, RedisHandle};
use fred::prelude::*;
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
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
    /// the Redis command timeout (`REDIS_COMMAND_TIMEOUT_MS`). Errors when Redis is
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

/// Redis first; for each request Redis cannot answer, the in-process limiter. The switch to
/// memory and back is logged once each ([`FallbackState`]).
pub struct FallbackLimiter {
    redis: RedisRateLimiter,
    memory: Arc<MemoryRateLimiter>,
    state: FallbackState,
}

impl FallbackLimiter {
    pub fn new(redis: RedisRateLimiter, memory: Arc<MemoryRateLimiter>) -> Self {
        Self {
            redis,
            memory,
            state: FallbackState::new(
                crate::telemetry::Piece::RateLimits,
                "limiting in memory on this instance",
            ),
        }
    }

    /// Checks answered from memory because Redis could not answer, since startup.
    pub fn fallbacks(&self) -> u64 {
        self.state.fallbacks()
    }
}

#[async_trait::async_trait]
impl RateLimiter for FallbackLimiter {
    async fn check(&self, namespace: &str, key: &str, limit: u32, window: Duration) -> Decision {
        match self.redis.try_check(namespace, key, limit, window).await {
            Ok(decision) => {
                self.state.answered();
                decision
            }
            Err(error) => {
                self.state.fell_back(error.reason(), &error);
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
    use std::time::Instant;

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
