//! Rate limits (`RATE_LIMIT_*`): one [`Limit`] per limiter, and how a limit is written.

use super::{ConfigError, Env};

/// One limiter's setting: at most `max` requests in any rolling `window`. `max == 0` turns the
/// limiter off. Written in the environment as `<max>/<window>` (`1200/60s`, `1/10s`, `50/500ms`,
/// `10/1m`), a bare `<max>` (per 60 s), or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: std::time::Duration,
}

impl Limit {
    pub const fn per_minute(max: u32) -> Self {
        Self {
            max,
            window: std::time::Duration::from_secs(60),
        }
    }

    pub const fn per_seconds(max: u32, seconds: u64) -> Self {
        Self {
            max,
            window: std::time::Duration::from_secs(seconds),
        }
    }

    /// True when the limiter is turned off (`max == 0`).
    pub fn is_off(&self) -> bool {
        self.max == 0
    }

    /// Parses `<max>/<window>`, `<max>` (per 60 s) or `off`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("off") {
            return Ok(Self::per_minute(0));
        }
        let (max, window) = match value.split_once('/') {
            Some((max, window)) => (max.trim(), Some(window.trim())),
            None => (value, None),
        };
        let max: u32 = max
            .parse()
            .map_err(|_| format!("expected <max>/<window> such as 1200/60s, got {value:?}"))?;
        if max > 1_000_000_000 {
            return Err("max must be at most 1000000000".into());
        }
        let window = match window {
            None => std::time::Duration::from_secs(60),
            Some(w) => {
                let split = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
                let (n, unit) = w.split_at(split);
                let n: u64 = n
                    .parse()
                    .map_err(|_| format!("window {w:?}: expected e.g. 60s, 500ms or 1m"))?;
                let ms = match unit.trim() {
                    "ms" => n,
                    "s" | "" => n.saturating_mul(1000),
                    "m" | "min" => n.saturating_mul(60_000),
                    "h" => n.saturating_mul(3_600_000),
                    other => return Err(format!("window {w:?}: unknown unit {other:?}")),
                };
                if ms == 0 || ms > 86_400_000 {
                    return Err(format!("window {w:?}: must be between 1ms and 24h"));
                }
                std::time::Duration::from_millis(ms)
            }
        };
        Ok(Self { max, window })
    }
}

/// Every rate limiter's setting (SuperInsights 1.x section 7). Each limiter has its own namespace,
/// so one limiter's traffic never uses up another's budget.
#[derive(Clone, Debug)]
pub struct RateLimitsConfig {
    /// `/v1` HTTP ingestion per client IP (`RATE_LIMIT_INGEST_IP`, 1200/60s).
    pub ingest_ip: Limit,
    /// `/v1` HTTP ingestion per project, after authentication (`RATE_LIMIT_INGEST_PROJECT`, 1000/60s).
    pub ingest_project: Limit,
    /// WebSocket ingestion messages per project (`RATE_LIMIT_WS_PROJECT`, 1000/60s).
    pub ws_project: Limit,
    /// WebSocket upgrade attempts per client IP (`RATE_LIMIT_WS_UPGRADE_IP`, 300/60s), counted
    /// before the key is checked.
    pub ws_upgrade_ip: Limit,
    /// Login and registration per client IP (`RATE_LIMIT_AUTH_IP`, 20/60s).
    pub auth_ip: Limit,
    /// Organization and platform invites per client IP (`RATE_LIMIT_INVITES_IP`, 10/60s).
    pub invites_ip: Limit,
    /// Public (shareable) links per client IP (`RATE_LIMIT_PUBLIC_LINKS_IP`, 60/60s).
    pub public_links_ip: Limit,
    /// Report generation per user and project (`RATE_LIMIT_REPORT_GENERATION`, 1/10s).
    pub report_generation: Limit,
    /// Report downloads per user and project (`RATE_LIMIT_REPORT_DOWNLOADS`, 10/60s).
    pub report_downloads: Limit,
    /// Requests that may call the AI provider (analysis runs, preset generate and refine) per
    /// client IP (`RATE_LIMIT_AI`, 20/60s): a cost control SuperInsights 1.x did not have.
    pub ai: Limit,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            ingest_ip: Limit::per_minute(1200),
            ingest_project: Limit::per_minute(1000),
            ws_project: Limit::per_minute(1000),
            ws_upgrade_ip: Limit::per_minute(300),
            auth_ip: Limit::per_minute(20),
            invites_ip: Limit::per_minute(10),
            public_links_ip: Limit::per_minute(60),
            report_generation: Limit::per_seconds(1, 10),
            report_downloads: Limit::per_minute(10),
            ai: Limit::per_minute(20),
        }
    }
}

impl RateLimitsConfig {
    pub(super) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            ingest_ip: env.limit("RATE_LIMIT_INGEST_IP", d.ingest_ip)?,
            ingest_project: env.limit("RATE_LIMIT_INGEST_PROJECT", d.ingest_project)?,
            ws_project: env.limit("RATE_LIMIT_WS_PROJECT", d.ws_project)?,
            ws_upgrade_ip: env.limit("RATE_LIMIT_WS_UPGRADE_IP", d.ws_upgrade_ip)?,
            auth_ip: env.limit("RATE_LIMIT_AUTH_IP", d.auth_ip)?,
            invites_ip: env.limit("RATE_LIMIT_INVITES_IP", d.invites_ip)?,
            public_links_ip: env.limit("RATE_LIMIT_PUBLIC_LINKS_IP", d.public_links_ip)?,
            report_generation: env.limit("RATE_LIMIT_REPORT_GENERATION", d.report_generation)?,
            report_downloads: env.limit("RATE_LIMIT_REPORT_DOWNLOADS", d.report_downloads)?,
            ai: env.limit("RATE_LIMIT_AI", d.ai)?,
        })
    }
}

impl Env {
    /// A [`Limit`] (`<max>/<window>`, `<max>` or `off`); anything else is an error naming `var`.
    fn limit(&self, var: &'static str, default: Limit) -> Result<Limit, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => Limit::parse(v).map_err(|m| ConfigError::new(var, m)),
        }
    }
}
