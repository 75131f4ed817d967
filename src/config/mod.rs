//! Typed configuration read once from the environment (and `.env` via dotenvy).
//! Owns parsing and validation of every variable; nothing else in the crate reads `std::env`.
//! Secrets are wrapped in [`Secret`] so `Debug` output never shows them.
//!
//! This module holds [`Config`] and the order variables are read in; each concern has its own
//! submodule (server, store, Redis, ingest, rate limits, AI, jobs, reports, secrets, and the
//! `Env` parsers they share).

use std::{net::IpAddr, path::PathBuf};

mod ai;
pub mod country_db;
mod env;
mod ingest;
mod jobs;
mod rate_limits;
mod redis;
mod redis_url;
mod reports;
pub mod s3;
mod secrets;
mod server;
pub mod smtp;
mod store;
#[cfg(test)]
mod tests;

pub use ai::AiConfig;
pub use env::{Env, parse_flag};
pub use ingest::{IngestBufferConfig, IngestConfig};
pub use jobs::JobsConfig;
pub use rate_limits::{Limit, RateLimitsConfig};
pub use redis::{DEFAULT_REDIS_COMMAND_TIMEOUT_MS, RedisConfig};
pub use redis_url::{RedisTarget, RedisTopology};
pub use reports::{DEFAULT_PDF_FONT, ReportsConfig};
pub use secrets::Secret;
pub use server::{DEFAULT_VIEW_WAIT, ServerConfig};
pub use store::StoreConfig;

/// Exit code used for any configuration error (BSD `EX_CONFIG`, as SuperInsights 1.x uses for weak secrets).
pub const EXIT_CONFIG: i32 = 78;

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// The whole effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub production: bool,
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub redis: RedisConfig,
    pub ingest: IngestConfig,
    pub rate_limits: RateLimitsConfig,
    /// The AI-analysis provider (OpenAI-compatible) and its limits.
    pub ai: AiConfig,
    /// Generated reports: where their files go, the PDF font, the generation timeout.
    pub reports: ReportsConfig,
    /// How many reverse proxies in front of the server append to `X-Forwarded-For` (0: trust none).
    /// `TRUST_PROXY=true` means one; a number means that many.
    pub trust_proxy: usize,
    pub public_url: Option<String>,
    /// Hosts (`host` or `host:port`, lower case) whose `Host` header may be used for absolute
    /// links when `PUBLIC_URL` is unset (`ALLOWED_HOSTS`); see `http::links`.
    pub allowed_hosts: Vec<String>,
    pub cors_allowed_origins: Vec<String>,
    pub registration_enabled: bool,
    pub session_secret: Secret,
    pub jwt_access_secret: Secret,
    pub jwt_refresh_secret: Secret,
    pub session_samesite: String,
    pub session_domain: Option<String>,
    pub public_link_pepper: Secret,
    /// Seconds SIGTERM waits for in-flight requests and the ingest drain.
    pub shutdown_timeout_secs: u64,
    /// Job workers and queue timing (`JOB_*`).
    pub jobs: JobsConfig,
    /// Connection timeouts and caps (`HTTP_*`, `WS_MAX_CONNECTIONS_PER_IP`).
    pub server: ServerConfig,
    /// Bearer token that opens `GET /metrics` to non-loopback clients (`METRICS_TOKEN`; unset:
    /// loopback only).
    pub metrics_token: Secret,
    /// `text` (default) or `json` log lines (`LOG_FORMAT`).
    pub log_json: bool,
    /// Outgoing email (`SMTP_*`); `None`: password resets by email and email reports are off.
    pub smtp: Option<smtp::SmtpConfig>,
    /// How often each instance looks for email reports to send (`EMAIL_REPORTS_CHECK_MS`).
    pub email_reports_check_ms: u64,
    /// The largest PDF attached to an email report (`EMAIL_REPORT_ATTACHMENT_MAX_BYTES`); a
    /// larger one is linked instead.
    pub email_report_attachment_max_bytes: u64,
}

impl Config {
    /// Builds and validates the configuration. In production, weak secrets are an error.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let production = [env.get("NODE_ENV"), env.get("APP_ENV")]
            .into_iter()
            .flatten()
            .any(|v| v.eq_ignore_ascii_case("production"));
        let data_dir = PathBuf::from(env.get("DATA_DIR").unwrap_or("./data"));
        let host = env
            .get("HOST")
            .unwrap_or("0.0.0.0")
            .parse()
            .map_err(|_| ConfigError::new("HOST", "not an IP address"))?;
        let port = env.number("PORT", 3000u16)?;

        let store = StoreConfig::from_env(env, &data_dir)?;
        let redis = RedisConfig::from_env(env)?;
        let ingest = IngestConfig::from_env(env, &data_dir)?;

        let public_url = env
            .string("PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_string());
        let allowed_hosts = server::allowed_hosts(env.get("ALLOWED_HOSTS").unwrap_or(""))?;
        let cors_allowed_origins = match env.get("CORS_ALLOWED_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => public_url.iter().cloned().collect(),
        };
        let session_samesite = env
            .get("SESSION_SAMESITE")
            .unwrap_or("lax")
            .to_ascii_lowercase();
        if !matches!(session_samesite.as_str(), "lax" | "strict" | "none") {
            return Err(ConfigError::new(
                "SESSION_SAMESITE",
                "must be lax, strict or none",
            ));
        }

        let reports = ReportsConfig::from_env(env, &data_dir)?;
        let config = Config {
            production,
            host,
            port,
            data_dir,
            store,
            redis,
            ingest,
            rate_limits: RateLimitsConfig::from_env(env)?,
            ai: AiConfig::from_env(env)?,
            reports,
            trust_proxy: match env.get("TRUST_PROXY") {
                None => usize::from(production),
                Some(v) => match (parse_flag(v), v.parse::<usize>()) {
                    (Some(on), _) => usize::from(on),
                    (None, Ok(hops)) if hops <= 10 => hops,
                    _ => {
                        return Err(ConfigError::new(
                            "TRUST_PROXY",
                            "expected true/false or a number of proxy hops (0-10)",
                        ));
                    }
                },
            },
            public_url,
            allowed_hosts,
            cors_allowed_origins,
            registration_enabled: env.flag("REGISTRATION_ENABLED", true)?,
            session_secret: Secret::new(
                env.string("SESSION_SECRET")
                    .unwrap_or_else(|| "change-me-in-production".into()),
            ),
            jwt_access_secret: Secret::new(env.string("JWT_ACCESS_SECRET").unwrap_or_default()),
            jwt_refresh_secret: Secret::new(env.string("JWT_REFRESH_SECRET").unwrap_or_default()),
            session_samesite,
            session_domain: env.string("SESSION_DOMAIN"),
            public_link_pepper: Secret::new(env.string("PUBLIC_LINK_PEPPER").unwrap_or_default()),
            shutdown_timeout_secs: env.number("SHUTDOWN_TIMEOUT_SECS", 10u64)?,
            metrics_token: Secret::new(env.string("METRICS_TOKEN").unwrap_or_default()),
            log_json: match env
                .get("LOG_FORMAT")
                .unwrap_or("text")
                .to_ascii_lowercase()
                .as_str()
            {
                "text" => false,
                "json" => true,
                _ => return Err(ConfigError::new("LOG_FORMAT", "must be text or json")),
            },
            jobs: JobsConfig::from_env(env)?,
            server: ServerConfig::from_env(env)?,
            smtp: smtp::from_env(env)?,
            email_reports_check_ms: env.number_in(
                "EMAIL_REPORTS_CHECK_MS",
                15 * 60 * 1000,
                100,
                24 * 3600 * 1000,
            )?,
            email_report_attachment_max_bytes: env.number_in(
                "EMAIL_REPORT_ATTACHMENT_MAX_BYTES",
                10 * 1024 * 1024,
                1024,
                100 * 1024 * 1024,
            )?,
        };
        if production {
            config.check_production_secrets()?;
        }
        Ok(config)
    }

    pub fn listen_addr(&self) -> std::net::SocketAddr {
        (self.host, self.port).into()
    }
}
