//! `/v1/ws?apiKey=…`: WebSocket ingestion with SuperInsights 1.x's protocol (reference §2.5):
//! `{"type":"ready"}` on open, `{"channel","items"}` messages, `ack`/`error` replies. Unlike 1.x,
//! items get the upgrade request's IP and country, messages are limited to 64 KiB, dead peers are
//! found by ping/pong, clients are closed with 1001 on shutdown, and items take the same durable
//! path as HTTP ([`Ingestor::ingest`]: stored, or spooled while the store is down).
//! The protocol lives here; validation, enrichment and writing stay in [`crate::ingest`].

use crate::{
    domain::{model::Channel, timestamp::now_ms},
    error::{AppError, MAX_INGEST_BYTES},
    ingest::{Ingestor, keys::ProjectAuth, parse::RequestFacts},
    runtime::rate_limit::{RateLimiter, namespaces},
    state::AppState,
};
use axum::{
    Router,
    extract::{
        ConnectInfo, State,
        ws::{
            CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
        },
    },
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::{Value, json};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;

/// Largest message accepted, in bytes (the HTTP body limit); larger ones close the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = MAX_INGEST_BYTES;

/// What the WebSocket library itself buffers at most: above [`MAX_MESSAGE_BYTES`], so oversize
/// messages up to this get a clean 1009 close from us; beyond it the library drops the connection.
const HARD_MESSAGE_BYTES: usize = 4 * MAX_INGEST_BYTES;

/// Close code for "going away" (server shutdown).
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for "policy violation" (the key stopped being valid).
const CLOSE_POLICY: u16 = 1008;
/// Close code for "message too big".
const CLOSE_TOO_BIG: u16 = 1009;

pub fn router() -> Router<AppState> {
    // A static route: axum prefers it over the `/v1/{*path}` catch-all of `ingest`.
    Router::new().route("/v1/ws", any(upgrade))
}

/// Live WebSocket connections: tells them to close on shutdown and waits until they have, and
/// holds the keepalive interval.
pub struct WsHub {
    shutdown: watch::Sender<bool>,
    ping_interval_ms: AtomicU64,
}

impl Default for WsHub {
    fn default() -> Self {
        Self {
            shutdown: watch::channel(false).0,
            ping_interval_ms: AtomicU64::new(30_000),
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

    fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.load(Ordering::Relaxed))
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.shutdown.receiver_count()
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

/// The key from the query string only (`apiKey`, then `api_key`), as SuperInsights 1.x: browsers
/// cannot set headers on a WebSocket.
fn query_key(uri: &Uri) -> Option<String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(uri.query()?.as_bytes())
        .into_owned()
        .collect();
    ["apiKey", "api_key"].iter().find_map(|name| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    })
}

/// Authenticates before upgrading (401 with the ingestion body otherwise), then hands the socket
/// to a [`Connection`].
async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let key = query_key(&uri);
    let auth = state.ingestor.authenticate(key.as_deref()).await?;
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let connection = Connection {
        key: key.unwrap_or_default(),
        auth,
        facts: state.ingestor.enricher.facts(peer.ip(), &headers),
        ingestor: state.ingestor.clone(),
        rate_limiter: state.rate_limiter.clone(),
        ws_limit: state.config.rate_limits.ws_project,
        hub: state.ws.clone(),
    };
    Ok(upgrade
        .max_message_size(HARD_MESSAGE_BYTES)
        .max_frame_size(HARD_MESSAGE_BYTES)
        .on_upgrade(move |socket| connection.run(socket)))
}

/// One client's connection: its project, the facts of its upgrade request, and what it needs to
/// ingest.
struct Connection {
    key: String,
    auth: ProjectAuth,
    facts: RequestFacts,
    ingestor: Arc<Ingestor>,
    rate_limiter: Arc<dyn RateLimiter>,
    ws_limit: crate::config::Limit,
    hub: Arc<WsHub>,
}

/// What to do after a message.
enum Next {
    Reply(Value),
    Close(Value, u16, &'static str),
}

fn error_reply(error: &str) -> Value {
    json!({"type": "error", "error": error})
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket) {
        let mut shutdown = self.hub.shutdown.subscribe();
        if *shutdown.borrow_and_update() {
            close(&mut socket, CLOSE_GOING_AWAY, "server shutting down").await;
            return;
        }
        if send_json(&mut socket, &json!({"type": "ready"}))
            .await
            .is_err()
        {
            return;
        }
        let every = self.hub.ping_interval();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard_since_ping = true;
        loop {
            tokio::select! {
                received = socket.recv() => {
                    let data = match received {
                        Some(Ok(Message::Text(text))) => bytes::Bytes::from(text),
                        Some(Ok(Message::Binary(data))) => data,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                            heard_since_ping = true;
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "websocket read failed");
                            break;
                        }
                    };
                    heard_since_ping = true;
                    if data.len() > MAX_MESSAGE_BYTES {
                        close(&mut socket, CLOSE_TOO_BIG, "message larger than 65536 bytes").await;
                        break;
                    }
                    match self.handle(&data).await {
                        Next::Reply(reply) => {
                            if send_json(&mut socket, &reply).await.is_err() {
                                break;
                            }
                        }
                        Next::Close(reply, code, reason) => {
                            let _ = send_json(&mut socket, &reply).await;
                            close(&mut socket, code, reason).await;
                            break;
                        }
                    }
                }
                _ = ping.tick() => {
                    if !heard_since_ping {
                        tracing::debug!("websocket peer did not answer a ping: dropped");
                        break;
                    }
                    heard_since_ping = false;
                    if socket.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                        break;
                    }
                }
                _ = shutdown.changed() => {
                    close(&mut socket, CLOSE_GOING_AWAY, "server shutting down").await;
                    break;
                }
            }
        }
    }

    /// One client message → its reply. Every message counts against the project's rate limit.
    async fn handle(&mut self, data: &[u8]) -> Next {
        // Re-resolve the key through the key cache (5 s): a deleted project stops ingesting, and
        // drop-rule changes apply to open connections. A store outage keeps the last answer.
        match self.ingestor.authenticate(Some(&self.key)).await {
            Ok(auth) => self.auth = auth,
            Err(AppError::InvalidApiKey | AppError::ApiKeyRequired) => {
                return Next::Close(error_reply("unauthorized"), CLOSE_POLICY, "invalid API key");
            }
            Err(_) => {}
        }
        if let Err(retry_after) = self.ws_rate_limit().await {
            return Next::Reply(
                json!({"type": "error", "error": "rate_limited", "retryAfter": retry_after}),
            );
        }
        let Ok(envelope) = serde_json::from_slice::<Value>(data) else {
            return Next::Reply(error_reply("invalid_json"));
        };
        let Some(channel) = envelope
            .get("channel")
            .and_then(Value::as_str)
            .and_then(Channel::parse)
        else {
            return Next::Reply(
                json!({"type": "error", "error": "ingestion_failed", "details": "unknown_channel"}),
            );
        };
        // As in 1.x, anything but an array counts as no items (a validation error).
        let items = match envelope.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let items = match crate::ingest::parse::items_from_value(Value::Array(items)) {
            Ok(items) => items,
            Err(invalid) => return Next::Reply(validation_failed(channel, &invalid.0)),
        };
        let facts = RequestFacts {
            now_ms: now_ms(),
            ..self.facts.clone()
        };
        Next::Reply(
            match self
                .ingestor
                .ingest(&self.auth, channel, items, &facts)
                .await
            {
                Ok(accepted) => {
                    let mut ack = json!({"type": "ack", "channel": channel.as_str(), "count": accepted.count});
                    if accepted.spooled {
                        ack["spooled"] = Value::Bool(true);
                    }
                    if accepted.dropped > 0 {
                        ack["dropped"] = accepted.dropped.into();
                    }
                    ack
                }
                Err(AppError::Validation(details)) => validation_failed(channel, &details),
                // Nothing was stored or spooled: the client should send the message again.
                Err(AppError::Unavailable { retry_after, cause }) => {
                    tracing::warn!(%cause, "websocket message refused");
                    json!({
                        "type": "error",
                        "error": "ingestion_failed",
                        "channel": channel.as_str(),
                        "details": "Service temporarily unavailable",
                        "retryAfter": retry_after,
                    })
                }
                Err(other) => {
                    tracing::error!(error = %other, "websocket ingestion failed");
                    json!({
                        "type": "error",
                        "error": "ingestion_failed",
                        "channel": channel.as_str(),
                        "details": "Internal server error",
                    })
                }
            },
        )
    }

    /// The per-project message limit (`RATE_LIMIT_WS_PROJECT`, 1000 messages per minute), on the
    /// shared [`RateLimiter`] in its own `ws` namespace. `Err` carries `retryAfter` in seconds.
    async fn ws_rate_limit(&self) -> Result<(), u64> {
        let decision = self
            .rate_limiter
            .check_limit(
                namespaces::WS_PROJECT,
                &self.auth.project_id.to_hex(),
                self.ws_limit,
            )
            .await;
        if decision.allowed {
            Ok(())
        } else {
            Err(decision.reset_after_secs())
        }
    }
}

fn validation_failed(channel: Channel, details: &str) -> Value {
    json!({
        "type": "error",
        "error": "validation_failed",
        "channel": channel.as_str(),
        "details": details,
    })
}

async fn send_json(socket: &mut WebSocket, value: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(value.to_string().into())).await
}

/// Sends a close frame and waits briefly for the client's, so both sides see a clean close.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_from_the_query_only() {
        let key = |uri: &str| query_key(&uri.parse().unwrap());
        assert_eq!(
            key("/v1/ws?apiKey=pk_a&api_key=pk_b").as_deref(),
            Some("pk_a")
        );
        assert_eq!(key("/v1/ws?api_key=pk_b").as_deref(), Some("pk_b"));
        assert_eq!(key("/v1/ws?apiKey=&api_key=pk_b").as_deref(), Some("pk_b"));
        assert_eq!(key("/v1/ws"), None);
    }
}
