//! The shared Redis connection (fred). It connects in the background, reconnects on its own with
//! exponential backoff, and never blocks or fails startup: when Redis is down the pieces that
//! would use it run on their in-process or durable fallbacks. Commands fail fast (a short
//! timeout, `REDIS_COMMAND_TIMEOUT_MS`, default 500 ms) instead of queueing while disconnected.
//!
//! A circuit breaker sits in front of every call ([`RedisHandle::call`]): the first call that
//! times out (a paused or overloaded Redis keeps its socket open, so "connected" says nothing)
//! opens it, and from then on calls fail at once, so each piece takes its fallback without
//! paying the timeout again. A background probe pings Redis at a growing interval
//! ([`BREAKER_FIRST_PROBE`] doubling up to [`BREAKER_MAX_PROBE`], or at once when the client
//! reconnects) and closes the breaker on the first answer.
//!
//! The topology is whatever `REDIS_URL` names (one server, Sentinel, Cluster; `config::redis_url`
//! has validated it): fred finds the primary or the slots' owners and follows a failover on
//! reconnection; nothing here or above depends on which it is.

use crate::config::{ConfigError, RedisConfig, RedisTopology};
use fred::prelude::*;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// The first wait before the probe checks a tripped Redis again.
pub const BREAKER_FIRST_PROBE: Duration = Duration::from_millis(250);
/// The longest wait between two reconnection attempts, in milliseconds.
pub const RECONNECT_MAX_DELAY_MS: u32 = 500;
/// The longest wait between two probes.
pub const BREAKER_MAX_PROBE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct RedisHandle {
    client: Client,
    breaker: Arc<Breaker>,
}

/// Why a guarded call did not return Redis's answer.
#[derive(Debug)]
pub enum CallError<E> {
    /// Not attempted: the connection is down.
    Disconnected,
    /// Not attempted: the breaker is open.
    BreakerOpen,
    /// No answer within the command timeout (the breaker is now open).
    TimedOut,
    /// Redis (or the client) answered with an error.
    Failed(E),
}

impl<E> CallError<E> {
    /// The reason as one fixed word, for metrics (`telemetry::fallback`).
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Disconnected => "disconnected",
            CallError::BreakerOpen => "breaker_open",
            CallError::TimedOut => "timed_out",
            CallError::Failed(_) => "error",
        }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Disconnected => f.write_str("redis disconnected"),
            CallError::BreakerOpen => f.write_str("redis breaker open"),
            CallError::TimedOut => f.write_str("redis timed out"),
            CallError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// The breaker's state and counters (all since start).
#[derive(Debug, Default)]
pub struct Breaker {
    /// How long one call may wait for an answer (`REDIS_COMMAND_TIMEOUT_MS`).
    timeout: Duration,
    open: AtomicBool,
    probing: AtomicBool,
    /// Wakes the probe early: the client has just (re)connected, to the same server or, after
    /// a failover, to the promoted one. A wake-up with no probe waiting is kept for the next
    /// probe, which then tries at once (one early ping, harmless).
    reconnected: tokio::sync::Notify,
    trips: AtomicU64,
    short_circuits: AtomicU64,
    timeouts: AtomicU64,
}

impl Breaker {
    /// True while calls fail fast.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }
    /// Times the breaker opened.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
    /// Calls refused at once because the breaker was open.
    pub fn short_circuits(&self) -> u64 {
        self.short_circuits.load(Ordering::Relaxed)
    }
    /// Calls that waited the whole command timeout.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
    /// How long one call may wait for an answer before it falls back and opens the breaker.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl RedisHandle {
    /// Builds the client for the topology `REDIS_URL` names (one server, Sentinel or Cluster)
    /// and starts connecting in the background. Errors only for a malformed URL (which
    /// `Config::from_env` has already refused).
    pub fn start(config: &RedisConfig) -> Result<Option<Self>, ConfigError> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let invalid = |e: fred::error::Error| ConfigError {
            var: "REDIS_URL",
            message: e.details().to_string(),
        };
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let mut fred_config = Config::from_url(url.expose()).map_err(invalid)?;
        if !config.password.is_empty() {
            fred_config.password = Some(config.password.expose().to_string());
        }
        // A cluster has only database 0 and refuses SELECT.
        if config.db.is_some() && !matches!(config.target.topology, RedisTopology::Cluster { .. }) {
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
                p.default_command_timeout = timeout;
            })
            // Retries at most 500 ms apart: after a failover the promoted replica is used
            // within half a second of the sentinels (or the cluster) announcing it; an attempt
            // is one connection (and, with Sentinel, one question to a sentinel).
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                50,
                RECONNECT_MAX_DELAY_MS,
                2,
            ))
            .build()
            .map_err(invalid)?;
        own_connection("redis_connection", client.connect());
        let breaker = Arc::new(Breaker {
            timeout,
            ..Breaker::default()
        });
        // Transitions are logged once each; a reconnect is counted for the metrics and lets an
        // open breaker's probe try at once instead of at its next interval.
        let woken = breaker.clone();
        let _reconnects = client.on_reconnect(move |server| {
            let woken = woken.clone();
            async move {
                crate::telemetry::redis_reconnected();
                tracing::info!(%server, "redis: (re)connected");
                woken.reconnected.notify_one();
                Ok(())
            }
        });
        let handle = Self { client, breaker };
        Ok(Some(handle))
    }

    /// Waits up to `bound` for the first connection, so shared limits, sessions and the cache
    /// are shared from the first request. False (and one warning) when Redis is still away:
    /// the server then starts on its fallbacks.
    pub async fn wait_connected(&self, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        while !self.client.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    ?bound,
                    "redis: not connected at startup; starting degraded on the fallbacks"
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// True while calls may be tried: the connection is up and the breaker closed (no round
    /// trip, no counter: only calls refused by [`call`](Self::call) count as short circuits).
    pub fn is_connected(&self) -> bool {
        self.client.is_connected() && !self.breaker.is_open()
    }

    /// The circuit breaker's state and counters.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs one Redis call through the breaker: refused at once when Redis is disconnected or
    /// the breaker is open, bounded by the command timeout, and a timeout opens the breaker.
    /// Errors Redis answers with (a wrong type, a missing script) leave it closed.
    pub async fn call<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        if !self.client.is_connected() {
            return Err(CallError::Disconnected);
        }
        if self.breaker.is_open() {
            self.breaker.short_circuits.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::BreakerOpen);
        }
        match tokio::time::timeout(self.breaker.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CallError::Failed(e)),
            Err(_) => {
                self.breaker.timeouts.fetch_add(1, Ordering::Relaxed);
                self.trip();
                Err(CallError::TimedOut)
            }
        }
    }

    /// Like [`call`](Self::call) for fred's own commands: a connection-level error (I/O, the
    /// client's timeout, a cancelled command) opens the breaker too.
    pub async fn command<T>(
        &self,
        call: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, CallError<fred::error::Error>> {
        let result = self.call(call).await;
        if let Err(CallError::Failed(e)) = &result
            && matches!(
                e.kind(),
                fred::error::ErrorKind::IO
                    | fred::error::ErrorKind::Timeout
                    | fred::error::ErrorKind::Canceled
            )
        {
            self.trip();
        }
        result
    }

    /// Opens the breaker and starts the probe that closes it again (one probe at a time).
    fn trip(&self) {
        if !self.breaker.open.swap(true, Ordering::Relaxed) {
            self.breaker.trips.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                timeout = ?self.breaker.timeout, "redis: no answer in time; calls fail fast to their fallbacks until a probe answers"
            );
        }
        if self.breaker.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        let (client, breaker) = (self.client.clone(), self.breaker.clone());
        crate::tasks::spawn_loop("redis_breaker_probe", async move {
            let mut wait = BREAKER_FIRST_PROBE;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = breaker.reconnected.notified() => {}
                }
                let answered = client.is_connected()
                    && matches!(
                        tokio::time::timeout(breaker.timeout, client.ping::<String>(None)).await,
                        Ok(Ok(_))
                    );
                if answered {
                    // `probing` first: a trip that lands in between then starts a new probe
                    // instead of leaving the breaker open with none running.
                    breaker.probing.store(false, Ordering::Relaxed);
                    breaker.open.store(false, Ordering::Relaxed);
                    tracing::info!("redis: answers again; breaker closed");
                    return;
                }
                wait = (wait * 2).min(BREAKER_MAX_PROBE);
            }
        });
    }

    /// A PING round trip through the breaker, bounded by the command timeout.
    pub async fn ping(&self) -> Result<(), String> {
        if !self.client.is_connected() {
            return Err("disconnected".into());
        }
        if self.breaker.is_open() {
            return Err("breaker open (redis did not answer in time)".into());
        }
        self.command(self.client.ping::<String>(None))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Closes the connection (on shutdown).
    pub async fn quit(&self) {
        let _ = tokio::time::timeout(self.breaker.timeout, self.client.quit()).await;
    }
}

/// Whether one piece (sessions, cache, rate limits, job queue) is on its fallback. Every
/// fallback is counted (`si_fallbacks_total`); the log gets one line when the piece switches to
/// its fallback and one when Redis serves it again, never one per call.
#[derive(Debug)]
pub struct FallbackState {
    piece: crate::telemetry::Piece,
    /// What the piece does meanwhile, for the log line ("using the durable store").
    meanwhile: &'static str,
    degraded: AtomicBool,
    fallbacks: AtomicU64,
}

impl FallbackState {
    pub fn new(piece: crate::telemetry::Piece, meanwhile: &'static str) -> Self {
        Self {
            piece,
            meanwhile,
            degraded: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Redis served a call.
    pub fn answered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!(
                piece = self.piece.label(),
                "redis answers again; back on redis"
            );
        }
    }

    /// A call fell back, for `reason` (a fixed word) with `detail` for the log.
    pub fn fell_back(&self, reason: &'static str, detail: &dyn std::fmt::Display) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::fallback(self.piece, reason);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                piece = self.piece.label(),
                reason,
                error = %detail,
                "redis cannot answer; {}",
                self.meanwhile
            );
        }
    }

    /// Calls served by the fallback since start.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
}

/// Owns a client's connection task (fred's `connect()`, which runs until the client quits) for
/// the server's life, so a connection task that fails or panics is logged and counted.
pub(crate) fn own_connection<E1, E2>(
    name: &'static str,
    connection: impl std::future::Future<Output = Result<Result<(), E2>, E1>> + Send + 'static,
) where
    E1: std::fmt::Display + Send + 'static,
    E2: std::fmt::Display + Send + 'static,
{
    crate::tasks::spawn_loop(name, async move {
        connection
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    });
}
