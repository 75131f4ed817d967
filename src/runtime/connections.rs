//! Open WebSocket connections, apart from their protocol (`http::ws`): the count per client IP
//! under `WS_MAX_CONNECTIONS_PER_IP`, the keepalive interval, and closing them all on shutdown.
//! Knows nothing of HTTP: a refused place is `None`, which the handler answers.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;

/// Live WebSocket connections: tells them to close on shutdown and waits until they have,
/// counts them per client IP, and holds the keepalive interval.
pub struct WsHub {
    shutdown: watch::Sender<bool>,
    ping_interval_ms: AtomicU64,
    /// Open connections per client IP key; an entry goes when its count reaches 0, so the map
    /// never holds more entries than there are connections.
    per_ip: Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for WsHub {
    fn default() -> Self {
        Self {
            shutdown: watch::channel(false).0,
            ping_interval_ms: AtomicU64::new(30_000),
            per_ip: Arc::default(),
        }
    }
}

/// One open connection's place in its IP's count, given back when dropped.
pub struct IpSlot {
    per_ip: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = per_ip.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                per_ip.remove(&self.key);
            }
        }
    }
}

impl WsHub {
    /// How often the server pings each client; a client that has sent nothing (not even a pong)
    /// since the previous ping is dropped. Default 30 s; tests shorten it.
    pub fn set_ping_interval(&self, every: Duration) {
        self.ping_interval_ms
            .store(every.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.load(Ordering::Relaxed))
    }

    /// Tells the holder when the server shuts down (`true`); held for the connection's life, so
    /// [`WsHub::close_all`] can wait for every holder to drop it.
    pub fn subscribe_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.shutdown.receiver_count()
    }

    /// Takes a place for one more connection from `ip_key`, unless it already has `max` open
    /// (`max == 0`: no cap); `None` when it has.
    pub fn admit(&self, ip_key: String, max: usize) -> Option<IpSlot> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_ip.entry(ip_key.clone()).or_insert(0);
        if max > 0 && *open >= max {
            return None;
        }
        *open += 1;
        Some(IpSlot {
            per_ip: self.per_ip.clone(),
            key: ip_key,
        })
    }

    /// Closes every connection with 1001 (each finishes the message it is ingesting first) and
    /// waits up to `timeout` for all of them to end. Connections opened afterwards close at once.
    pub async fn close_all(&self, timeout: Duration) {
        self.shutdown.send_replace(true);
        if tokio::time::timeout(timeout, self.shutdown.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.connections(),
                "websocket clients did not close in time"
            );
        }
    }
}
