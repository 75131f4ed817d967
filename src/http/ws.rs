//! `/v1/ws?apiKey=…`: WebSocket ingestion with SuperInsights 1.x's protocol (reference §2.5):
//! `{"type":"ready"}` on open, `{"channel","items"}` messages, `ack`/`error` replies
//! (`validation_failed` for the batch size, `ingestion_failed` for an unknown channel or a bad
//! item), and the client's close frame answered with the same code. Unlike 1.x,
//! items get the upgrade request's IP and country, messages are limited to 64 KiB (1009 beyond,
//! 1007 for invalid UTF-8), upgrades are limited per client IP in rate and in open connections,
//! each connection's buffers are bounded, dead peers are found by ping/pong, clients are closed
//! with 1001 on shutdown, and items take the same durable path as HTTP ([`Ingestor::ingest`]:
//! stored, or spooled while the store is down).
//! The protocol lives here; validation, enrichment and writing stay in [`crate::ingest`].

use crate::{
    domain::model::Channel,
    error::{AppError, MAX_INGEST_BYTES},
    http::rate_limit::{self, Style},
    ingest::{IngestError, Ingestor, keys::ProjectAuth, parse::RequestFacts},
    runtime::{
        connections::{IpSlot, WsHub},
        rate_limit::{RateLimiter, namespaces},
    },
    state::AppState,
};
use axum::{
    Router,
    extract::{
        ConnectInfo, FromRef, State,
        ws::{
            CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
        },
    },
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
    routing::any,
};
use futures::SinkExt;
use serde_json::{Value, json};
use std::{net::SocketAddr, sync::Arc, time::Duration};

/// Largest message accepted, in bytes (the HTTP body limit); larger ones close the socket with
/// 1009 as soon as their header says so, before they are buffered.
pub const MAX_MESSAGE_BYTES: usize = MAX_INGEST_BYTES;

/// The socket read buffer each connection keeps (the library's default is 128 KiB, allocated and
/// zero-filled per connection: most of an idle connection's memory). A message larger than this
/// grows it for that message only, up to [`MAX_MESSAGE_BYTES`].
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Replies queued unsent at most; our replies are small and each send waits for the socket.
const MAX_WRITE_BUFFER_BYTES: usize = MAX_MESSAGE_BYTES;

/// A client that does not take a reply within this is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client refused for its number of open connections is told to wait, in seconds.
const CONNECTIONS_RETRY_AFTER_SECS: u64 = 5;

/// Close code for "going away" (server shutdown).
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for "protocol error" (a malformed frame).
const CLOSE_PROTOCOL: u16 = 1002;
/// Close code for "invalid frame payload data" (a text message that is not UTF-8).
const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code for "policy violation" (the key stopped being valid).
const CLOSE_POLICY: u16 = 1008;
/// Close code for "message too big".
const CLOSE_TOO_BIG: u16 = 1009;

pub fn router() -> Router<AppState> {
    // A static route: axum prefers it over the `/v1/{*path}` catch-all of `ingest`.
    Router::new().route("/v1/ws", any(upgrade))
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

/// What the upgrade reads: the configured limits, the ingestor (client IP, key check, the
/// connection's writes), the shared rate limiter and the registry of open connections.
#[derive(Clone)]
pub struct UpgradeState {
    config: Arc<crate::config::Config>,
    ingestor: Arc<Ingestor>,
    rate_limiter: Arc<dyn RateLimiter>,
    ws: Arc<WsHub>,
}

impl FromRef<AppState> for UpgradeState {
    fn from_ref(s: &AppState) -> Self {
        Self {
            config: s.config.clone(),
            ingestor: s.ingestor.clone(),
            rate_limiter: s.rate_limiter.clone(),
            ws: s.ws.clone(),
        }
    }
}

/// Counts the attempt against the client IP's upgrade rate (429), authenticates (401 with the
/// ingestion body), takes a place under the IP's connection cap (429), then hands the socket to a
/// [`Connection`] with bounded buffers.
async fn upgrade(
    State(state): State<UpgradeState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let ip_key = rate_limit::ip_key(state.ingestor.enricher.client_ip(peer.ip(), &headers));
    if let Err(limited) = rate_limit::check(
        state.rate_limiter.as_ref(),
        namespaces::WS_UPGRADE_IP,
        &ip_key,
        state.config.rate_limits.ws_upgrade_ip,
        Style::Json,
    )
    .await
    {
        return Ok(limited);
    }
    let key = query_key(&uri);
    let auth = state.ingestor.authenticate(key.as_deref()).await?;
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let max = state.config.server.ws_max_per_ip;
    let ip_slot = state
        .ws
        .admit(ip_key, max)
        .ok_or(AppError::TooManyConnections {
            limit: max,
            retry_after: CONNECTIONS_RETRY_AFTER_SECS,
        })?;
    let connection = Connection {
        _ip_slot: ip_slot,
        key: key.unwrap_or_default(),
        auth,
        facts: state.ingestor.enricher.facts(peer.ip(), &headers),
        ingestor: state.ingestor.clone(),
        rate_limiter: state.rate_limiter.clone(),
        ws_limit: state.config.rate_limits.ws_project,
        hub: state.ws.clone(),
    };
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| connection.run(socket)))
}

/// One client's connection: its project, the facts of its upgrade request, and what it needs to
/// ingest.
struct Connection {
    /// Held for the connection's life: its place in the per-IP count.
    _ip_slot: IpSlot,
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
        let mut shutdown = self.hub.subscribe_shutdown();
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
                        Some(Ok(Message::Close(_))) => {
                            // The library has queued the echo of the client's close frame (same
                            // code and reason); flush it so the client sees a clean close, not
                            // 1006.
                            let _ = tokio::time::timeout(SEND_TIMEOUT, SinkExt::close(&mut socket)).await;
                            break;
                        }
                        None => break,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "websocket read failed");
                            if let Some((code, reason)) = close_for_read_error(&e) {
                                close(&mut socket, code, reason).await;
                            }
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
            Err(IngestError::InvalidApiKey | IngestError::ApiKeyRequired) => {
                return Next::Close(error_reply("unauthorized"), CLOSE_POLICY, "invalid API key");
            }
            Err(_) => {}
        }
        if let Err(retry_after) = self.ws_rate_limit().await {
            return Next::Reply(
                json!({"type": "error", "error": "rate_limited", "retryAfter": retry_after}),
            );
        }
        let Ok(mut envelope) = serde_json::from_slice::<Value>(data) else {
            return Next::Reply(error_reply("invalid_json"));
        };
        // In 1.x's order: the batch size first (`validation_failed`), then the channel, then
        // the items (`ingestion_failed`, with the same details as the HTTP 400). Anything but
        // an array counts as no items; a truthy channel is compared as JavaScript text.
        let items = match envelope.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let items = match crate::ingest::parse::items_from_value(Value::Array(items)) {
            Ok(items) => items,
            Err(invalid) => {
                return Next::Reply(json!({
                    "type": "error",
                    "error": "validation_failed",
                    "details": invalid.0,
                }));
            }
        };
        let channel_name = envelope
            .get("channel")
            .filter(|c| crate::ingest::coerce::truthy(c))
            .map(crate::ingest::coerce::to_js_string)
            .unwrap_or_default();
        let Some(channel) = Channel::parse(&channel_name) else {
            return Next::Reply(
                json!({"type": "error", "error": "ingestion_failed", "details": "unknown_channel"}),
            );
        };
        let facts = RequestFacts {
            now_ms: self.ingestor.enricher.now_ms(),
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
                // 1.x's shape: an item it refused is an `ingestion_failed` with its message.
                Err(IngestError::Validation(details)) => json!({
                    "type": "error",
                    "error": "ingestion_failed",
                    "details": details,
                }),
                // Nothing was stored or spooled: the client should send the message again.
                Err(IngestError::Unavailable { retry_after, cause }) => {
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

/// Sends one reply; a client that does not take it within [`SEND_TIMEOUT`] counts as gone.
async fn send_json(socket: &mut WebSocket, value: &Value) -> Result<(), axum::Error> {
    let message = Message::Text(value.to_string().into());
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(sent) => sent,
        Err(_) => Err(axum::Error::new("websocket send timed out")),
    }
}

/// The close code a failed read deserves: 1009 for a message over [`MAX_MESSAGE_BYTES`], 1007
/// for a text message that is not UTF-8, 1002 for a malformed frame; `None` when the connection
/// itself is gone.
fn close_for_read_error(error: &axum::Error) -> Option<(u16, &'static str)> {
    use std::error::Error as _;
    use tungstenite::Error as WsError;
    match error.source()?.downcast_ref::<WsError>()? {
        WsError::Capacity(_) => Some((CLOSE_TOO_BIG, "message larger than 65536 bytes")),
        WsError::Utf8(_) => Some((CLOSE_INVALID_DATA, "text message is not valid UTF-8")),
        WsError::Protocol(_) => Some((CLOSE_PROTOCOL, "protocol error")),
        _ => None,
    }
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
