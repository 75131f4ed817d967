//! Rate limiting: the [`RateLimiter`] port (an exact sliding-window log: at most `limit` accepted
//! requests in *any* rolling window), its in-process ([`memory`]) and Redis ([`redis`])
//! implementations, and [`FallbackLimiter`], which answers from Redis and from memory for each
//! request Redis cannot answer. Knows nothing of HTTP: the tower layer is `crate::http::rate_limit`.

pub mod contract;
pub mod memory;
pub mod redis;

pub use memory::{MemoryOptions, MemoryRateLimiter};
pub use redis::{FallbackLimiter, RedisRateLimiter};

use crate::config::Limit;
use std::time::Duration;

/// The namespace of every limiter, so no two limiters share a budget (SuperInsights 1.x shared
/// one map between login, invites and public links). Keys in Redis are `si:rl:{namespace}:{key}`.
pub mod namespaces {
    /// `/v1` HTTP ingestion, per client IP.
    pub const INGEST_IP: &str = "ingest-ip";
    /// `/v1` HTTP ingestion, per project.
    pub const INGEST_PROJECT: &str = "ingest-project";
    /// WebSocket ingestion messages, per project.
    pub const WS_PROJECT: &str = "ws";
    /// WebSocket upgrade attempts, per client IP.
    pub const WS_UPGRADE_IP: &str = "ws-upgrade-ip";
    /// Login and registration, per client IP.
    pub const AUTH_IP: &str = "auth-ip";
    /// Organization invites, per client IP.
    pub const ORG_INVITES_IP: &str = "invites-org";
    /// Platform (admin) invites, per client IP.
    pub const PLATFORM_INVITES_IP: &str = "invites-platform";
    /// Public (shareable) links, per client IP.
    pub const PUBLIC_LINKS_IP: &str = "public-links-ip";
    /// Report generation, per user and project.
    pub const REPORT_GENERATION: &str = "report-generation";
    /// Report downloads, per user and project.
    pub const REPORT_DOWNLOADS: &str = "report-downloads";
    /// Requests that may call the AI provider, per client IP.
    pub const AI: &str = "ai";
    /// Password-reset requests per client IP (`POST /auth/forgot`).
    pub const PASSWORD_RESET_IP: &str = "password-reset-ip";
    /// Password-reset emails per address (the answer does not change; the email is not sent).
    pub const PASSWORD_RESET_EMAIL: &str = "password-reset-email";
}

/// The answer to one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// True when the request was accepted (and recorded).
    pub allowed: bool,
    /// The limit checked against.
    pub limit: u32,
    /// Requests still accepted right now in this window (after this one, when it was accepted).
    pub remaining: u32,
    /// Time until the oldest recorded request in the window ages out, i.e. until one more request
    /// will be accepted when `remaining` is 0. For a rejected request this is its retry-after.
    pub reset_after: Duration,
}

impl Decision {
    /// An accepted request that nothing limits (a limiter turned off).
    pub fn unlimited() -> Self {
        Self {
            allowed: true,
            limit: u32::MAX,
            remaining: u32::MAX,
            reset_after: Duration::ZERO,
        }
    }

    /// How long a rejected client should wait, `None` when the request was accepted.
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.allowed).then_some(self.reset_after)
    }

    /// `reset_after` in whole seconds, rounded up, at least 1 (for `Retry-After` and `retryAfter`).
    pub fn reset_after_secs(&self) -> u64 {
        self.reset_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// Checks and records requests against a limit per rolling window. Every implementation has the
/// same semantics (pinned by [`contract`]); all instances sharing one Redis share the budgets.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Checks one request for `key` in `namespace` against at most `limit` accepted requests in any
    /// rolling `window`, and records it only when accepted (a rejected request costs nothing, so a
    /// client that keeps retrying is let in as soon as the oldest request ages out).
    /// `limit == 0` rejects everything. Never fails: a backend that cannot answer is the
    /// implementation's problem (see [`FallbackLimiter`]), never the request's.
    async fn check(&self, namespace: &str, key: &str, limit: u32, window: Duration) -> Decision;

    /// Like [`check`](Self::check) with a configured [`Limit`]; a limit that is turned off accepts
    /// everything without recording (for callers outside the HTTP layer, e.g. WebSocket messages).
    async fn check_limit(&self, namespace: &str, key: &str, limit: Limit) -> Decision {
        if limit.is_off() {
            Decision::unlimited()
        } else {
            self.check(namespace, key, limit.max, limit.window).await
        }
    }

    /// Which backend answers, for the startup log.
    fn backend(&self) -> &'static str;
}
