//! The HTTP server: connection timeouts and caps (`HTTP_*`, `WS_MAX_CONNECTIONS_PER_IP`,
//! `REALTIME_STREAMS_PER_CLIENT`), how long a request waits for a view being computed
//! (`VIEW_WAIT_MS`) and the `ALLOWED_HOSTS` list.

use super::{ConfigError, Env};

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
    /// How long a request waits for an analytics view being computed before it is answered 503
    /// with `Retry-After` while the computation goes on (`VIEW_WAIT_MS`, 20000; 0–300000; 0
    /// answers at once whenever the view is not cached yet).
    pub view_wait: std::time::Duration,
}

/// `VIEW_WAIT_MS` when unset: below the 30 s that clients and proxies commonly give a request.
pub const DEFAULT_VIEW_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

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
            view_wait: DEFAULT_VIEW_WAIT,
        }
    }
}

impl ServerConfig {
    pub(super) fn from_env(env: &Env) -> Result<Self, ConfigError> {
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
            view_wait: env
                .number_in("VIEW_WAIT_MS", d.view_wait.as_millis() as u64, 0, 300_000)
                .map(std::time::Duration::from_millis)?,
        })
    }
}

/// `ALLOWED_HOSTS`: comma-separated `host` or `host:port`, no scheme or path, lower-cased.
pub(super) fn allowed_hosts(list: &str) -> Result<Vec<String>, ConfigError> {
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
