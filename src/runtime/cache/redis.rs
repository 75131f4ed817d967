//! The Redis cache (`CACHE_REDIS=true`): entries with PX expiry, generations as `INCR` counters
//! shared by every instance. Any Redis error or timeout is a miss (or a bypass of the cache),
//! never a failed request.

use super::Cache;
use crate::{
    domain::ids::DocId,
    runtime::redis::{FallbackState, RedisHandle},
};
use async_trait::async_trait;
use fred::{
    interfaces::KeysInterface,
    types::{Expiration, Value},
};
use std::time::Duration;

pub struct RedisCache {
    redis: RedisHandle,
    fallback: FallbackState,
}

impl RedisCache {
    pub fn new(redis: RedisHandle) -> Self {
        Self {
            redis,
            fallback: FallbackState::new(
                crate::telemetry::Piece::Cache,
                "every view is computed (cache misses) until it answers",
            ),
        }
    }

    fn generation_key(project: DocId) -> String {
        format!("si:v1:gen:{project}")
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Option<T> {
        match self.redis.command(call).await {
            Ok(v) => {
                self.fallback.answered();
                Some(v)
            }
            Err(e) => {
                tracing::debug!(error = %e, what, "cache: redis cannot answer, treated as a miss");
                self.fallback.fell_back(e.reason(), &e);
                None
            }
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let value: Value = self.call("get", self.redis.client().get(key)).await?;
        value.as_bytes().map(<[u8]>::to_vec)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        let px = Expiration::PX(ttl.as_millis().max(1) as i64);
        let _: Option<()> = self
            .call(
                "set",
                self.redis.client().set(key, value, Some(px), None, false),
            )
            .await;
    }

    async fn generation(&self, project: DocId) -> Option<u64> {
        let value: Option<u64> = self
            .call(
                "generation",
                self.redis.client().get(Self::generation_key(project)),
            )
            .await?;
        Some(value.unwrap_or(0))
    }

    async fn bump_generation(&self, project: DocId) {
        let bumped: Option<u64> = self
            .call(
                "incr",
                self.redis.client().incr(Self::generation_key(project)),
            )
            .await;
        if bumped.is_none() {
            tracing::warn!(%project, "cache: could not invalidate in redis; entries expire with their TTL");
        }
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
