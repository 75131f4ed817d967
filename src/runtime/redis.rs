//! The shared Redis connection (fred). It connects in the background, reconnects on its own with
//! exponential backoff, and never blocks or fails startup: when Redis is down the pieces that
//! would use it run on their in-process or durable fallbacks. Commands fail fast (short timeout)
//! instead of queueing while disconnected.

use crate::config::RedisConfig;
use fred::prelude::*;
use std::time::Duration;

/// How long any single Redis command may take before the caller falls back.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct RedisHandle {
    client: Client,
}

impl RedisHandle {
    /// Builds the client and starts connecting in the background. Errors only for a malformed URL.
    pub fn start(config: &RedisConfig) -> Result<Option<Self>, String> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let mut fred_config =
            Config::from_url(url.expose()).map_err(|e| format!("REDIS_URL: {e}"))?;
        if !config.password.is_empty() {
            fred_config.password = Some(config.password.expose().to_string());
        }
        if config.db.is_some() {
            fred_config.database = config.db;
        }
        // Keep retrying the first connection too, instead of failing startup.
        fred_config.fail_fast = false;
        let client = Builder::from_config(fred_config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build()
            .map_err(|e| format!("REDIS_URL: {e}"))?;
        client.connect();
        let handle = Self { client };
        handle.warn_if_not_connected_soon();
        Ok(Some(handle))
    }

    /// Logs one warning when the first connection has not come up within two seconds.
    fn warn_if_not_connected_soon(&self) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline {
                if client.is_connected() {
                    tracing::info!("redis: connected");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::warn!(
                "redis: not reachable yet; using fallbacks until it is (reconnecting in the background)"
            );
        });
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// True while the connection is up (no round trip).
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// A PING round trip, bounded by [`COMMAND_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), String> {
        if !self.client.is_connected() {
            return Err("disconnected".into());
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, self.client.ping::<String>(None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Closes the connection (on shutdown).
    pub async fn quit(&self) {
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, self.client.quit()).await;
    }
}
