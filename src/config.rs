//! Typed configuration read once from the environment (and `.env` via dotenvy).
//! Owns parsing and validation of every variable; nothing else in the crate reads `std::env`.
//! Secrets are wrapped in [`Secret`] so `Debug` output never shows them.

use std::{collections::BTreeMap, fmt, net::IpAddr, path::PathBuf};

pub mod country_db;
mod redis_url;
pub mod s3;
pub mod smtp;
pub use redis_url::{RedisTarget, RedisTopology};

/// Exit code used for any configuration error (BSD `EX_CONFIG`, as SuperInsights 1.x uses for weak secrets).
pub const EXIT_CONFIG: i32 = 78;

/// Secret values that SuperInsights 1.x refuses in production (compared case-insensitively).
const WEAK_SECRETS: &[&str] = &[
    "change-me-in-production",
    "replace-me",
    "changeme",
    "change-me",
    "secret",
    "password",
];

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

/// A string whose value must never be logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(unset)")
        } else {
            f.write_str("(redacted)")
        }
    }
}

/// Where the primary data lives.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// Embedded SQLite file (the default).
    Sqlite {
        path: PathBuf,
        /// How long a writer waits for another process's lock before the store counts as unavailable.
        busy_timeout_ms: u64,
        /// `NORMAL` (the default; WAL: a commit survives a process crash, the last ones may not
        /// survive a power cut) or `FULL` (fsync on every commit).
        synchronous: String,
    },
    /// MongoDB at this URI (credentials inside are redacted in Debug).
    Mongo {
        uri: Secret,
        database: Option<String>,
    },
}

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
}

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
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
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

/// The AI-analysis provider: any OpenAI-compatible chat-completions endpoint. With no key the
/// feature still works and writes a statistical digest instead (see `docs/features/ai-analysis.md`).
#[derive(Clone, Debug)]
pub struct AiConfig {
    /// `OPENROUTER_BASE_URL`, else `OPENAI_BASE_URL`, else `https://openrouter.ai/api/v1`; no
    /// trailing slash.
    pub base_url: String,
    /// `OPENROUTER_API_KEY`, else `OPENAI_API_KEY`; empty means "no model: write the digest".
    pub api_key: Secret,
    /// `AI_ANALYSIS_MODEL` (default `google/gemini-2.5-flash-lite`).
    pub model: String,
    /// `AI_ANALYSIS_TEMPERATURE` (0.2; 0–2).
    pub temperature: f64,
    /// `AI_ANALYSIS_MAX_TOKENS` (900; 1–32000).
    pub max_tokens: u32,
    /// `AI_ANALYSIS_TIMEOUT_MS` (25000; 1–600000): the whole provider call is abandoned after it.
    pub timeout_ms: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://openrouter.ai/api/v1".into(),
            api_key: Secret::default(),
            model: "google/gemini-2.5-flash-lite".into(),
            temperature: 0.2,
            max_tokens: 900,
            timeout_ms: 25_000,
        }
    }
}

impl AiConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let (url_var, base_url) = match (
            env.string("OPENROUTER_BASE_URL"),
            env.string("OPENAI_BASE_URL"),
        ) {
            (Some(u), _) => ("OPENROUTER_BASE_URL", u),
            (None, Some(u)) => ("OPENAI_BASE_URL", u),
            (None, None) => ("OPENROUTER_BASE_URL", d.base_url.clone()),
        };
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::new(
                url_var,
                "must start with https:// or http://",
            ));
        }
        let temperature: f64 = env.number("AI_ANALYSIS_TEMPERATURE", d.temperature)?;
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ConfigError::new(
                "AI_ANALYSIS_TEMPERATURE",
                "must be between 0 and 2",
            ));
        }
        let max_tokens: u32 = env.number("AI_ANALYSIS_MAX_TOKENS", d.max_tokens)?;
        if !(1..=32_000).contains(&max_tokens) {
            return Err(ConfigError::new(
                "AI_ANALYSIS_MAX_TOKENS",
                "must be between 1 and 32000",
            ));
        }
        let timeout_ms: u64 = env.number("AI_ANALYSIS_TIMEOUT_MS", d.timeout_ms)?;
        if !(1..=600_000).contains(&timeout_ms) {
            return Err(ConfigError::new(
                "AI_ANALYSIS_TIMEOUT_MS",
                "must be between 1 and 600000",
            ));
        }
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: Secret::new(
                env.string("OPENROUTER_API_KEY")
                    .or_else(|| env.string("OPENAI_API_KEY"))
                    .unwrap_or_default(),
            ),
            model: env.string("AI_ANALYSIS_MODEL").unwrap_or(d.model),
            temperature,
            max_tokens,
            timeout_ms,
        })
    }
}

/// Background job workers and the queue's timing (`docs/features/job-queue.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobsConfig {
    /// Workers in this instance (`JOB_WORKERS`, 1; 0–64). 0: this instance only enqueues.
    pub workers: usize,
    /// Attempts before a job fails for good (`JOB_MAX_ATTEMPTS`, 3; 1–100).
    pub max_attempts: u32,
    /// Lease of a delivered job without a heartbeat; after it the job is delivered again
    /// (`JOB_VISIBILITY_TIMEOUT_MS`, 30000; 100–3600000).
    pub visibility_timeout_ms: u64,
    /// First retry delay, doubled per attempt up to 10 minutes (`JOB_RETRY_BACKOFF_MS`, 2000;
    /// 0–3600000).
    pub retry_backoff_ms: u64,
    /// How often idle workers look for jobs enqueued elsewhere (`JOB_POLL_INTERVAL_MS`, 1000;
    /// 10–60000).
    pub poll_interval_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            max_attempts: 3,
            visibility_timeout_ms: 30_000,
            retry_backoff_ms: 2_000,
            poll_interval_ms: 1_000,
        }
    }
}

impl JobsConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            workers: env.number_in("JOB_WORKERS", 1, 0, 64)? as usize,
            max_attempts: env.number_in("JOB_MAX_ATTEMPTS", u64::from(d.max_attempts), 1, 100)?
                as u32,
            visibility_timeout_ms: env.number_in(
                "JOB_VISIBILITY_TIMEOUT_MS",
                d.visibility_timeout_ms,
                100,
                3_600_000,
            )?,
            retry_backoff_ms: env.number_in(
                "JOB_RETRY_BACKOFF_MS",
                d.retry_backoff_ms,
                0,
                3_600_000,
            )?,
            poll_interval_ms: env.number_in(
                "JOB_POLL_INTERVAL_MS",
                d.poll_interval_ms,
                10,
                60_000,
            )?,
        })
    }
}

/// Connection timeouts and caps of the HTTP server (`crate::server`; docs/configuration.md,
/// "Connections"). Every duration is parsed from milliseconds and range-checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Time to receive a request's headers, from the connection's accept or a keep-alive
    /// connection's first byte (`HTTP_HEADER_TIMEOUT_MS`, 10000; 100–300000).
    pub header_timeout: std::time::Duration,
    /// Time to receive a whole request body, from its headers (`HTTP_BODY_TIMEOUT_MS`, 30000;
    /// 100–3600000); a stalled body gets a 408 and the connection is closed.
    pub body_timeout: std::time::Duration,
    /// How long a keep-alive connection may wait for its next request (`HTTP_IDLE_TIMEOUT_MS`,
    /// 75000; 100–3600000).
    pub idle_timeout: std::time::Duration,
    /// Open connections (WebSockets included) at most (`HTTP_MAX_CONNECTIONS`, 1–1000000).
    /// Unset: 10000, lowered to fit the open-file limit.
    pub max_connections: Option<usize>,
    /// Connections beyond `max_connections` that may still ask `/healthz` or `/readyz`; every other
    /// request on them gets a 503 (`HTTP_RESERVED_CONNECTIONS`, 32; 0–1024).
    pub reserved_connections: usize,
    /// Open WebSocket connections per client IP, per instance (`WS_MAX_CONNECTIONS_PER_IP`, 100;
    /// 0 turns the cap off; at most 1000000). IPv6 clients count per /64.
    pub ws_max_per_ip: usize,
    /// Realtime streams (`…/realtime/stream`) one client may hold open at once, per instance:
    /// a signed-in session, or an IP for public links (`REALTIME_STREAMS_PER_CLIENT`, 8; 1–1000).
    pub realtime_streams_per_client: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(75),
            max_connections: None,
            reserved_connections: 32,
            ws_max_per_ip: 100,
            realtime_streams_per_client: 8,
        }
    }
}

impl ServerConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let millis = |var: &'static str, default: std::time::Duration, max: u64| {
            env.number_in(var, default.as_millis() as u64, 100, max)
                .map(std::time::Duration::from_millis)
        };
        Ok(Self {
            header_timeout: millis("HTTP_HEADER_TIMEOUT_MS", d.header_timeout, 300_000)?,
            body_timeout: millis("HTTP_BODY_TIMEOUT_MS", d.body_timeout, 3_600_000)?,
            idle_timeout: millis("HTTP_IDLE_TIMEOUT_MS", d.idle_timeout, 3_600_000)?,
            max_connections: match env.get("HTTP_MAX_CONNECTIONS") {
                None => None,
                Some(_) => Some(env.number_in("HTTP_MAX_CONNECTIONS", 0, 1, 1_000_000)? as usize),
            },
            reserved_connections: env.number_in(
                "HTTP_RESERVED_CONNECTIONS",
                d.reserved_connections as u64,
                0,
                1024,
            )? as usize,
            ws_max_per_ip: env.number_in(
                "WS_MAX_CONNECTIONS_PER_IP",
                d.ws_max_per_ip as u64,
                0,
                1_000_000,
            )? as usize,
            realtime_streams_per_client: env.number_in(
                "REALTIME_STREAMS_PER_CLIENT",
                d.realtime_streams_per_client as u64,
                1,
                1000,
            )? as usize,
        })
    }
}

/// Generated reports (`docs/features/reports.md`).
#[derive(Clone, Debug)]
pub struct ReportsConfig {
    /// `REPORTS_DIR` (default `DATA_DIR/reports`): the local file store of report files.
    pub dir: PathBuf,
    /// `REPORT_PDF_FONT`: a TrueType font embedded in PDFs (default DejaVu Sans where installed,
    /// `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`). Without one, PDFs use the built-in
    /// Helvetica, which shows only Latin-1 text (other characters become `?`).
    pub pdf_font: Option<PathBuf>,
    /// `REPORT_TIMEOUT_MS` (300000; 1000–3600000): a generation not finished this long after it
    /// was asked for is failed, naming the stage it was in.
    pub timeout_ms: u64,
    /// `REPORTS_S3_*`: the S3-compatible bucket report files go to instead of `dir` (which then
    /// only holds files being written); `None`: the local directory.
    pub s3: Option<s3::S3Config>,
}

/// Where Debian's `fonts-dejavu-core` puts DejaVu Sans.
pub const DEFAULT_PDF_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

impl ReportsConfig {
    fn from_env(env: &Env, data_dir: &std::path::Path) -> Result<Self, ConfigError> {
        let pdf_font = match env.string("REPORT_PDF_FONT") {
            Some(p) if p == "builtin" => None,
            Some(p) => Some(PathBuf::from(p)),
            None => Some(PathBuf::from(DEFAULT_PDF_FONT)).filter(|p| p.exists()),
        };
        Ok(Self {
            dir: env
                .string("REPORTS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("reports")),
            pdf_font,
            timeout_ms: env.number_in("REPORT_TIMEOUT_MS", 300_000, 1_000, 3_600_000)?,
            s3: s3::from_env(env)?,
        })
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

/// Reads variables from a map, so tests never touch the process environment.
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The process environment, after loading `ENV_FILE` (default `.env`) when present.
    pub fn from_process() -> Self {
        let file = std::env::var("ENV_FILE").unwrap_or_else(|_| ".env".into());
        let _ = dotenvy::from_filename(&file);
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The trimmed value, `None` when unset or empty.
    fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn string(&self, var: &str) -> Option<String> {
        self.get(var).map(str::to_string)
    }

    /// Strict boolean: `true/false/1/0/yes/no/on/off` (any case); anything else is an error.
    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => parse_flag(v).ok_or_else(|| {
                ConfigError::new(
                    var,
                    format!("expected true/false/1/0/yes/no/on/off, got {v:?}"),
                )
            }),
        }
    }

    /// A whole number within `min..=max`; out of range is an error naming the variable.
    fn number_in(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let value = self.number(var, default)?;
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                var,
                format!("must be between {min} and {max}"),
            ))
        }
    }

    fn number<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::new(var, format!("not a valid number: {v:?}"))),
        }
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

/// Parses a strict boolean flag value.
pub fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `ALLOWED_HOSTS`: comma-separated `host` or `host:port`, no scheme or path, lower-cased.
fn allowed_hosts(list: &str) -> Result<Vec<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            let ok = h.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
            if ok {
                Ok(h.to_ascii_lowercase())
            } else {
                Err(ConfigError::new(
                    "ALLOWED_HOSTS",
                    "comma-separated host names (host or host:port), without scheme or path",
                ))
            }
        })
        .collect()
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

        let store = match env.string("MONGODB_URI") {
            Some(uri) => {
                if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
                    return Err(ConfigError::new(
                        "MONGODB_URI",
                        "must start with mongodb:// or mongodb+srv://",
                    ));
                }
                StoreConfig::Mongo {
                    uri: Secret::new(uri),
                    database: env.string("MONGODB_DB"),
                }
            }
            None => StoreConfig::Sqlite {
                path: env
                    .get("SQLITE_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("superinsights.db")),
                busy_timeout_ms: env.number("SQLITE_BUSY_TIMEOUT_MS", 5000u64)?,
                synchronous: match env
                    .get("SQLITE_SYNCHRONOUS")
                    .unwrap_or("normal")
                    .to_ascii_lowercase()
                    .as_str()
                {
                    s @ ("full" | "normal") => s.to_uppercase(),
                    _ => {
                        return Err(ConfigError::new(
                            "SQLITE_SYNCHRONOUS",
                            "must be full or normal",
                        ));
                    }
                },
            },
        };

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
        let ingest = IngestConfig {
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
                .or_else(|| country_db::bundled_country_db(&data_dir)),
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
        };

        let public_url = env
            .string("PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_string());
        let allowed_hosts = allowed_hosts(env.get("ALLOWED_HOSTS").unwrap_or(""))?;
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

    /// SuperInsights 1.x's boot check: in production every secret must be set and not a known default.
    fn check_production_secrets(&self) -> Result<(), ConfigError> {
        let secrets = [
            ("SESSION_SECRET", &self.session_secret),
            ("JWT_ACCESS_SECRET", &self.jwt_access_secret),
            ("JWT_REFRESH_SECRET", &self.jwt_refresh_secret),
        ];
        for (var, secret) in secrets {
            if secret.is_empty() {
                return Err(ConfigError::new(var, "must be set in production"));
            }
            if WEAK_SECRETS
                .iter()
                .any(|weak| secret.expose().eq_ignore_ascii_case(weak))
            {
                return Err(ConfigError::new(
                    var,
                    "is a known default; set a strong secret in production",
                ));
            }
        }
        // The pepper may stay unset (SuperInsights 1.x's default, so its links keep working;
        // tokens carry 256 random bits either way), but a placeholder value is a mistake.
        let pepper = self.public_link_pepper.expose();
        if WEAK_SECRETS
            .iter()
            .any(|weak| pepper.eq_ignore_ascii_case(weak))
        {
            return Err(ConfigError::new(
                "PUBLIC_LINK_PEPPER",
                "is a known default; set a strong value or leave it unset",
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> std::net::SocketAddr {
        (self.host, self.port).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_need_no_services() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert!(
            matches!(c.store, StoreConfig::Sqlite { ref path, .. } if path.ends_with("superinsights.db"))
        );
        assert!(!c.redis.enabled());
        assert!(!c.production);
        assert_eq!(c.trust_proxy, 0);
    }

    #[test]
    fn flags_are_strict_and_false_means_false() {
        let c = config(&[
            ("REDIS_URL", "redis://x"),
            ("CACHE_REDIS", "false"),
            ("RATE_LIMIT_REDIS", "YES"),
        ])
        .unwrap();
        assert!(!c.redis.cache);
        assert!(c.redis.rate_limits);
        let err = config(&[("CACHE_REDIS", "maybe")]).unwrap_err();
        assert_eq!(err.var, "CACHE_REDIS");
    }

    #[test]
    fn trust_proxy_is_a_flag_or_a_hop_count() {
        assert_eq!(config(&[("TRUST_PROXY", "true")]).unwrap().trust_proxy, 1);
        assert_eq!(config(&[("TRUST_PROXY", "2")]).unwrap().trust_proxy, 2);
        assert_eq!(config(&[("TRUST_PROXY", "off")]).unwrap().trust_proxy, 0);
        assert_eq!(
            config(&[("TRUST_PROXY", "lots")]).unwrap_err().var,
            "TRUST_PROXY"
        );
    }

    #[test]
    fn redis_url_names_the_topology_and_a_bad_one_names_redis_url() {
        let c = config(&[(
            "REDIS_URL",
            "redis-cluster://n1:7000?node=n2:7000&node=n3:7000",
        )])
        .unwrap();
        assert_eq!(c.redis.target.topology, RedisTopology::Cluster { seeds: 3 });
        let err =
            config(&[("REDIS_URL", "redis-cluster://n1:7000"), ("REDIS_DB", "2")]).unwrap_err();
        assert_eq!(err.var, "REDIS_DB");
        let err = config(&[("REDIS_URL", "redis-sentinel://s1:26379")]).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
        assert!(err.message.contains("sentinelServiceName"), "{err}");
        // Ignored entirely when Redis is switched off.
        assert!(config(&[("REDIS_URL", "http://x"), ("REDIS_ENABLED", "false")]).is_ok());
    }

    #[test]
    fn redis_enabled_false_turns_redis_off() {
        let c = config(&[("REDIS_URL", "redis://x"), ("REDIS_ENABLED", "0")]).unwrap();
        assert!(!c.redis.enabled());
    }

    #[test]
    fn production_rejects_weak_or_missing_secrets() {
        let strong = [
            ("NODE_ENV", "production"),
            ("SESSION_SECRET", "a-long-random-value-1"),
            ("JWT_ACCESS_SECRET", "a-long-random-value-2"),
            ("JWT_REFRESH_SECRET", "a-long-random-value-3"),
        ];
        assert!(config(&strong).unwrap().production);
        let mut weak = strong;
        weak[1] = ("SESSION_SECRET", "Change-Me");
        assert_eq!(config(&weak).unwrap_err().var, "SESSION_SECRET");
        assert_eq!(config(&strong[..3]).unwrap_err().var, "JWT_REFRESH_SECRET");
        let mut app_env = strong;
        app_env[0] = ("APP_ENV", "production");
        app_env[2] = ("JWT_ACCESS_SECRET", "secret");
        assert_eq!(config(&app_env).unwrap_err().var, "JWT_ACCESS_SECRET");
    }

    #[test]
    fn production_refuses_a_placeholder_public_link_pepper_but_allows_none() {
        let strong = [
            ("NODE_ENV", "production"),
            ("SESSION_SECRET", "a-long-random-value-1"),
            ("JWT_ACCESS_SECRET", "a-long-random-value-2"),
            ("JWT_REFRESH_SECRET", "a-long-random-value-3"),
        ];
        assert!(config(&strong).unwrap().public_link_pepper.is_empty());
        let mut with = strong.to_vec();
        with.push(("PUBLIC_LINK_PEPPER", "ChangeMe"));
        assert_eq!(config(&with).unwrap_err().var, "PUBLIC_LINK_PEPPER");
        with[4] = ("PUBLIC_LINK_PEPPER", "  ");
        assert!(
            config(&with).unwrap().public_link_pepper.is_empty(),
            "blank is unset"
        );
        with[4] = ("PUBLIC_LINK_PEPPER", "a-long-random-pepper");
        assert_eq!(
            config(&with).unwrap().public_link_pepper.expose(),
            "a-long-random-pepper"
        );
        // Outside production anything goes.
        assert!(config(&[("PUBLIC_LINK_PEPPER", "changeme")]).is_ok());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = config(&[
            ("MONGODB_URI", "mongodb://user:hunter2@db/x"),
            ("SESSION_SECRET", "hunter2"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn rate_limits_default_to_superinsights_and_parse_strictly() {
        let c = config(&[]).unwrap();
        assert_eq!(c.rate_limits.ingest_ip, Limit::per_minute(1200));
        assert_eq!(c.rate_limits.ingest_project, Limit::per_minute(1000));
        assert_eq!(c.rate_limits.report_generation, Limit::per_seconds(1, 10));
        let c = config(&[
            ("RATE_LIMIT_INGEST_PROJECT", "50/10s"),
            ("RATE_LIMIT_INGEST_IP", "2000"),
            ("RATE_LIMIT_AUTH_IP", "off"),
            ("RATE_LIMIT_WS_PROJECT", "5/500ms"),
            ("RATE_LIMIT_PUBLIC_LINKS_IP", "30/1m"),
        ])
        .unwrap();
        assert_eq!(c.rate_limits.ingest_project, Limit::per_seconds(50, 10));
        assert_eq!(c.rate_limits.ingest_ip, Limit::per_minute(2000));
        assert!(c.rate_limits.auth_ip.is_off());
        assert_eq!(
            c.rate_limits.ws_project.window,
            std::time::Duration::from_millis(500)
        );
        assert_eq!(c.rate_limits.public_links_ip, Limit::per_minute(30));
        for bad in ["lots", "10/0s", "10/5y", "-1/60s", "10/"] {
            let err = config(&[("RATE_LIMIT_INVITES_IP", bad)]).unwrap_err();
            assert_eq!(err.var, "RATE_LIMIT_INVITES_IP", "{bad}");
        }
    }

    #[test]
    fn ai_provider_settings_parse_strictly_with_openrouter_names_first() {
        let c = config(&[]).unwrap();
        assert_eq!(c.ai.base_url, "https://openrouter.ai/api/v1");
        assert!(c.ai.api_key.is_empty());
        assert_eq!(
            (
                c.ai.model.as_str(),
                c.ai.temperature,
                c.ai.max_tokens,
                c.ai.timeout_ms
            ),
            ("google/gemini-2.5-flash-lite", 0.2, 900, 25_000)
        );
        let c = config(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("OPENAI_API_KEY", "sk-openai"),
        ])
        .unwrap();
        assert_eq!(c.ai.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(c.ai.api_key.expose(), "sk-openai");
        let c = config(&[
            ("OPENROUTER_BASE_URL", "https://router.example/api"),
            ("OPENAI_BASE_URL", "http://ignored"),
            ("OPENROUTER_API_KEY", "sk-router"),
            ("OPENAI_API_KEY", "sk-openai"),
        ])
        .unwrap();
        assert_eq!(c.ai.base_url, "https://router.example/api");
        assert_eq!(c.ai.api_key.expose(), "sk-router");
        assert!(!format!("{c:?}").contains("sk-router"));
        for (var, bad) in [
            ("AI_ANALYSIS_TEMPERATURE", "hot"),
            ("AI_ANALYSIS_TEMPERATURE", "3"),
            ("AI_ANALYSIS_MAX_TOKENS", "0"),
            ("AI_ANALYSIS_TIMEOUT_MS", "-5"),
            ("OPENROUTER_BASE_URL", "ftp://x"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{bad}");
        }
    }

    #[test]
    fn ingest_buffer_needs_redis_and_parses_its_bounds() {
        let c = config(&[]).unwrap();
        assert!(!c.redis.ingest_buffer);
        assert_eq!(c.ingest.buffer.max_batches, 100_000);
        assert_eq!(c.ingest.buffer.claim_idle_ms, 30_000);
        let err = config(&[("INGEST_BUFFER_REDIS", "true")]).unwrap_err();
        assert_eq!(err.var, "INGEST_BUFFER_REDIS");
        assert!(err.message.contains("REDIS_URL"), "{}", err.message);
        let err = config(&[
            ("INGEST_BUFFER_REDIS", "true"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_ENABLED", "false"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "INGEST_BUFFER_REDIS");
        assert!(err.message.contains("REDIS_ENABLED"), "{}", err.message);
        let c = config(&[
            ("INGEST_BUFFER_REDIS", "on"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("INGEST_BUFFER_MAX_BATCHES", "50"),
            ("INGEST_BUFFER_MAX_BYTES", "4096"),
            ("INGEST_BUFFER_CLAIM_IDLE_MS", "500"),
        ])
        .unwrap();
        assert!(c.redis.ingest_buffer);
        assert_eq!(
            (
                c.ingest.buffer.max_batches,
                c.ingest.buffer.max_bytes,
                c.ingest.buffer.claim_idle_ms
            ),
            (50, 4096, 500)
        );
        for (var, bad) in [
            ("INGEST_BUFFER_MAX_BATCHES", "0"),
            ("INGEST_BUFFER_MAX_BYTES", "10"),
            ("INGEST_BUFFER_CLAIM_IDLE_MS", "soon"),
            ("INGEST_BUFFER_REDIS", "maybe"),
        ] {
            let err = config(&[(var, bad), ("REDIS_URL", "redis://127.0.0.1:6379")]).unwrap_err();
            assert_eq!(err.var, var, "{bad}");
        }
    }

    #[test]
    fn job_settings_default_and_parse_strictly() {
        let c = config(&[]).unwrap();
        assert_eq!(c.jobs, JobsConfig::default());
        assert_eq!(c.jobs.workers, 1);
        assert!(!c.redis.job_queue);
        let c = config(&[
            ("JOB_WORKERS", "0"),
            ("JOB_MAX_ATTEMPTS", "5"),
            ("JOB_VISIBILITY_TIMEOUT_MS", "500"),
            ("JOB_RETRY_BACKOFF_MS", "50"),
            ("JOB_POLL_INTERVAL_MS", "20"),
            ("JOB_QUEUE_REDIS", "yes"),
        ])
        .unwrap();
        assert_eq!(
            (
                c.jobs.workers,
                c.jobs.max_attempts,
                c.jobs.visibility_timeout_ms
            ),
            (0, 5, 500)
        );
        assert_eq!((c.jobs.retry_backoff_ms, c.jobs.poll_interval_ms), (50, 20));
        assert!(c.redis.job_queue);
        for (var, bad) in [
            ("JOB_WORKERS", "two"),
            ("JOB_WORKERS", "65"),
            ("JOB_WORKERS", "-1"),
            ("JOB_MAX_ATTEMPTS", "0"),
            ("JOB_VISIBILITY_TIMEOUT_MS", "50"),
            ("JOB_POLL_INTERVAL_MS", "1s"),
            ("JOB_QUEUE_REDIS", "maybe"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }

    #[test]
    fn cors_allowlist_falls_back_to_public_url() {
        let c = config(&[("PUBLIC_URL", "https://a.example/")]).unwrap();
        assert_eq!(
            c.cors_allowed_origins,
            vec!["https://a.example".to_string()]
        );
    }

    #[test]
    fn allowed_hosts_are_a_list_of_bare_hosts() {
        assert!(config(&[]).unwrap().allowed_hosts.is_empty());
        let c = config(&[("ALLOWED_HOSTS", " A.example , b.example:8080,,[::1]:3000")]).unwrap();
        assert_eq!(
            c.allowed_hosts,
            ["a.example", "b.example:8080", "[::1]:3000"]
        );
        for bad in ["https://a.example", "a.example/x", "a b"] {
            let e = config(&[("ALLOWED_HOSTS", bad)]).unwrap_err();
            assert!(e.to_string().contains("ALLOWED_HOSTS"), "{bad}: {e}");
        }
    }

    #[test]
    fn connection_limits_default_and_parse_strictly() {
        let c = config(&[]).unwrap();
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.rate_limits.ws_upgrade_ip, Limit::per_minute(300));
        let c = config(&[
            ("HTTP_HEADER_TIMEOUT_MS", "300"),
            ("HTTP_BODY_TIMEOUT_MS", "400"),
            ("HTTP_IDLE_TIMEOUT_MS", "500"),
            ("HTTP_MAX_CONNECTIONS", "20"),
            ("HTTP_RESERVED_CONNECTIONS", "0"),
            ("WS_MAX_CONNECTIONS_PER_IP", "2"),
            ("RATE_LIMIT_WS_UPGRADE_IP", "5/1s"),
        ])
        .unwrap();
        assert_eq!(c.server.header_timeout.as_millis(), 300);
        assert_eq!(c.server.body_timeout.as_millis(), 400);
        assert_eq!(c.server.idle_timeout.as_millis(), 500);
        assert_eq!(c.server.max_connections, Some(20));
        assert_eq!(c.server.reserved_connections, 0);
        assert_eq!(c.server.ws_max_per_ip, 2);
        assert_eq!(c.rate_limits.ws_upgrade_ip, Limit::per_seconds(5, 1));
        for (var, bad) in [
            ("HTTP_HEADER_TIMEOUT_MS", "10s"),
            ("HTTP_HEADER_TIMEOUT_MS", "99"),
            ("HTTP_BODY_TIMEOUT_MS", "3600001"),
            ("HTTP_IDLE_TIMEOUT_MS", "-1"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_MAX_CONNECTIONS", "many"),
            ("HTTP_RESERVED_CONNECTIONS", "1025"),
            ("WS_MAX_CONNECTIONS_PER_IP", "x"),
            ("RATE_LIMIT_WS_UPGRADE_IP", "5/forever"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }
}
