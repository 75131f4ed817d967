//! The realtime hub: what was just ingested, fanned out to the live streams of the dashboards
//! (`http::analytics::realtime`). In-process by default (a bounded broadcast channel); with
//! Redis, every instance also publishes on one pub/sub channel ([`CHANNEL`]) and relays what the
//! others publish, so a stream held on any instance sees every instance's events. While Redis
//! cannot answer, each instance keeps serving its own events (the fallback), and the streams'
//! periodic checks still end what logout or a revoked link ended elsewhere.
//!
//! Bounded everywhere: the ingest path only `try_send`s a few hits per batch to a coalescer
//! (dropped, never waited for, when it is full), which flushes each project's hits at most every
//! [`FLUSH_EVERY`]; a slow stream lags on the broadcast ring instead of growing memory; open
//! streams are capped per client ([`RealtimeHub::open_stream`]). It must not read the store:
//! counting visitors is `services::realtime`'s.

use crate::{
    domain::{
        ids::DocId,
        model::{Channel, Docs},
    },
    runtime::redis::{FallbackState, RedisHandle},
};
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{broadcast, mpsc, watch};

/// The Redis pub/sub channel every instance publishes on and listens to.
pub const CHANNEL: &str = "superinsights:realtime";
/// How often the coalescer hands each project's recent hits to the streams.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Hits kept per project and flush (a feed shows the newest; the count keeps the rest).
pub const HITS_PER_FLUSH: usize = 20;
/// Hits taken from one ingested batch.
const HITS_PER_BATCH: usize = 5;
/// Signals a stream may fall behind by before it skips ahead (lags).
const BROADCAST_CAPACITY: usize = 256;
/// Batches waiting for the coalescer, and signals waiting for Redis.
const QUEUE_CAPACITY: usize = 4096;
/// Longest label (URL, event name, error message) sent to a stream, in characters.
const MAX_LABEL: usize = 200;

/// One ingested document as a live feed shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveHit {
    /// `pageviews`, `events`, `errors` or `performance`.
    pub kind: Channel,
    /// The page URL, the event name, the error message or the metric's URL.
    pub label: String,
    /// Epoch milliseconds (the document's timestamp).
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// What the hub carries to the streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Signal {
    /// Documents of `project` were acknowledged: up to [`HITS_PER_FLUSH`] of them, and how many
    /// in all.
    Hits {
        project: String,
        hits: Vec<LiveHit>,
        count: u64,
    },
    /// A session signed out: streams opened under it end (`session` is [`session_key`]'s).
    SessionEnded { session: String },
    /// A project's public link was revoked or replaced: its public streams check their token.
    LinkChanged { project: String },
}

/// A signal on the wire between instances, with the instance that sent it (an instance ignores
/// its own: it delivered them locally already).
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    signal: Signal,
}

/// The hub, one per process, shared by the ingest path, the streams and the handlers that end
/// streams (logout, public links).
pub struct RealtimeHub {
    local: broadcast::Sender<Arc<Signal>>,
    pending: mpsc::Sender<Offer>,
    relay: Option<Relay>,
    closing: watch::Sender<bool>,
    open: Mutex<HashMap<String, usize>>,
    per_client: usize,
}

struct Relay {
    origin: String,
    outbox: mpsc::Sender<String>,
    fallback: Arc<FallbackState>,
}

impl RealtimeHub {
    /// Starts the hub's tasks (the coalescer; with `redis`, the publisher and the subscriber).
    /// `per_client` caps the streams one client (session or IP) may hold open.
    pub fn start(redis: Option<RedisHandle>, per_client: usize) -> Arc<Self> {
        let (local, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (pending, pending_rx) = mpsc::channel(QUEUE_CAPACITY);
        let origin = crate::domain::ids::random_hex(8);
        let relay = redis.map(|handle| {
            let (outbox, outbox_rx) = mpsc::channel(QUEUE_CAPACITY);
            let fallback = Arc::new(FallbackState::new(
                crate::telemetry::Piece::Realtime,
                "realtime streams show this instance's events only",
            ));
            crate::tasks::spawn_loop(
                "realtime_publisher",
                publish_loop(handle.clone(), outbox_rx, fallback.clone()),
            );
            subscribe(&handle, origin.clone(), local.clone());
            Relay {
                origin,
                outbox,
                fallback,
            }
        });
        let (closing, _) = watch::channel(false);
        let hub = Arc::new(Self {
            local,
            pending,
            relay,
            closing,
            open: Mutex::default(),
            per_client: per_client.max(1),
        });
        crate::tasks::spawn_loop(
            "realtime_coalescer",
            coalesce(Arc::downgrade(&hub), pending_rx),
        );
        hub
    }

    /// `in-process` or `redis pub/sub …`, for the startup log.
    pub fn describe(&self) -> &'static str {
        if self.relay.is_some() {
            "redis pub/sub across instances (in-process while redis is down)"
        } else {
            "in-process"
        }
    }

    /// Called by the ingest path before it submits a batch: a few of its documents as feed
    /// lines, or `None` (nothing done) when no stream could see them.
    pub fn gather(&self, project: DocId, docs: &Docs) -> Option<Offer> {
        if self.relay.is_none() && self.local.receiver_count() == 0 {
            return None;
        }
        Some(Offer {
            project,
            hits: hits_of(docs),
            count: docs.len() as u64,
        })
    }

    /// Called by the ingest path once the batch is acknowledged (stored or spooled). Never
    /// waits: a full queue drops the hits (the visitor count, read from the store, stays right).
    pub fn offer(&self, offer: Offer) {
        let _ = self.pending.try_send(offer);
    }

    /// Ends the streams of a session (logout), on every instance.
    pub fn session_ended(&self, session: &str) {
        self.signal(Signal::SessionEnded {
            session: session.to_string(),
        });
    }

    /// Makes the public streams of `project` check their link again (revoked or replaced), on
    /// every instance.
    pub fn link_changed(&self, project: DocId) {
        self.signal(Signal::LinkChanged {
            project: project.to_hex(),
        });
    }

    fn signal(&self, signal: Signal) {
        let _ = self.local.send(Arc::new(signal.clone()));
        self.relay(signal);
    }

    fn relay(&self, signal: Signal) {
        if let Some(relay) = &self.relay {
            let envelope = Envelope {
                origin: relay.origin.clone(),
                signal,
            };
            if let Ok(text) = serde_json::to_string(&envelope)
                && relay.outbox.try_send(text).is_err()
            {
                relay
                    .fallback
                    .fell_back("queue_full", &"the redis outbox is full");
            }
        }
    }

    /// A receiver of every signal from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Signal>> {
        self.local.subscribe()
    }

    /// Resolves when the server shuts down (streams end then).
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Ends every stream (on shutdown): they send their last event and close.
    pub fn close_all(&self) {
        let _ = self.closing.send(true);
    }

    /// A slot for one more stream of `client` (a session or an IP key), or `None` when it
    /// already holds `per_client` of them. The slot is freed when the permit drops.
    pub fn open_stream(self: &Arc<Self>, client: &str) -> Option<StreamPermit> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client.to_string()).or_insert(0);
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        Some(StreamPermit {
            hub: self.clone(),
            client: client.to_string(),
        })
    }

    /// The most streams one client may hold open.
    pub fn per_client(&self) -> usize {
        self.per_client
    }

    /// Streams open now, all clients together.
    pub fn open_streams(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.values().sum()
    }

    fn flush(&self, project: DocId, hits: Vec<LiveHit>, count: u64) {
        let signal = Signal::Hits {
            project: project.to_hex(),
            hits,
            count,
        };
        if self.local.receiver_count() > 0 {
            let _ = self.local.send(Arc::new(signal.clone()));
        }
        self.relay(signal);
    }
}

/// An acknowledged batch's feed lines, on their way to the streams.
pub struct Offer {
    project: DocId,
    hits: Vec<LiveHit>,
    count: u64,
}

/// One open stream's slot in the per-client cap.
pub struct StreamPermit {
    hub: Arc<RealtimeHub>,
    client: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// The key a session's streams are known by: a digest of its id, so the id itself never leaves
/// the process (it travels over Redis pub/sub).
pub fn session_key(session_id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("realtime:{session_id}").as_bytes())[..12])
}

/// The newest few documents of a batch as feed lines (labels cut to [`MAX_LABEL`] characters).
fn hits_of(docs: &Docs) -> Vec<LiveHit> {
    fn hit(kind: Channel, label: &str, at: i64, country: &Option<String>) -> LiveHit {
        LiveHit {
            kind,
            label: label.chars().take(MAX_LABEL).collect(),
            at,
            country: country.clone(),
        }
    }
    let kind = docs.channel();
    match docs {
        Docs::Pageviews(d) => d
            .iter()
            .rev()
            .take(HITS_PER_BATCH)
            .map(|p| hit(kind, &p.url, p.timestamp, &p.enrichment.country))
            .collect(),
        Docs::Events(d) => d
            .iter()
            .rev()
            .take(HITS_PER_BATCH)
            .map(|e| hit(kind, &e.event_name, e.timestamp, &e.enrichment.country))
            .collect(),
        Docs::Errors(d) => d
            .iter()
            .rev()
            .take(HITS_PER_BATCH)
            .map(|e| hit(kind, &e.message, e.timestamp, &e.enrichment.country))
            .collect(),
        Docs::Performance(d) => d
            .iter()
            .rev()
            .take(HITS_PER_BATCH)
            .map(|m| {
                let label = m.url.as_deref().unwrap_or(&m.metric_type);
                hit(kind, label, m.timestamp, &m.enrichment.country)
            })
            .collect(),
    }
}

/// Gathers offered hits per project and flushes them every [`FLUSH_EVERY`] (ends with the hub).
async fn coalesce(hub: std::sync::Weak<RealtimeHub>, mut rx: mpsc::Receiver<Offer>) {
    let mut waiting: HashMap<DocId, (Vec<LiveHit>, u64)> = HashMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(offer) = got else { return };
                let entry = waiting.entry(offer.project).or_default();
                entry.1 += offer.count;
                entry.0.extend(offer.hits);
                let extra = entry.0.len().saturating_sub(HITS_PER_FLUSH);
                entry.0.drain(..extra);
            }
            _ = tick.tick() => {
                if waiting.is_empty() {
                    continue;
                }
                let Some(hub) = hub.upgrade() else { return };
                for (project, (hits, count)) in waiting.drain() {
                    hub.flush(project, hits, count);
                }
            }
        }
    }
}

/// Publishes the outbox on [`CHANNEL`] through the breaker; a signal Redis cannot take is
/// dropped (this instance delivered it locally already) and counted as a fallback.
async fn publish_loop(
    redis: RedisHandle,
    mut outbox: mpsc::Receiver<String>,
    fallback: Arc<FallbackState>,
) {
    use fred::prelude::*;
    while let Some(text) = outbox.recv().await {
        let sent = redis
            .command(redis.client().publish::<i64, _, _>(CHANNEL, text))
            .await;
        match sent {
            Ok(_) => fallback.answered(),
            Err(e) => fallback.fell_back(e.reason(), &e),
        }
    }
}

/// A connection of its own subscribed to [`CHANNEL`] (again after every reconnection, to the
/// same server or a promoted one), relaying other instances' signals to the local streams.
fn subscribe(redis: &RedisHandle, origin: String, local: broadcast::Sender<Arc<Signal>>) {
    use fred::prelude::*;
    let subscriber = redis.client().clone_new();
    let on_connect = subscriber.clone();
    let _resubscribe = subscriber.on_reconnect(move |_| {
        let client = on_connect.clone();
        async move {
            // The notice comes as the connection is being set up: a few tries, not one.
            for attempt in 1..=5 {
                match client.subscribe(CHANNEL).await {
                    Ok(()) => break,
                    Err(e) if attempt == 5 => {
                        tracing::warn!(error = %e, "realtime: cannot subscribe to redis");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            Ok(())
        }
    });
    let mut messages = subscriber.message_rx();
    crate::runtime::redis::own_connection("realtime_subscriber", subscriber.connect());
    crate::tasks::spawn_loop("realtime_relay", async move {
        loop {
            let message = match messages.recv().await {
                Ok(m) => m,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "realtime: redis messages skipped (slow relay)");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(text) = message.value.as_str() else {
                continue;
            };
            let Ok(envelope) = serde_json::from_str::<Envelope>(&text) else {
                continue;
            };
            if envelope.origin != origin {
                let _ = local.send(Arc::new(envelope.signal));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Enrichment, Event};

    fn event(name: &str, at: i64) -> Event {
        Event {
            id: DocId::new(),
            event_name: name.into(),
            properties: serde_json::json!({}),
            duration_ms: None,
            session_id: None,
            client_id: None,
            enrichment: Enrichment::default(),
            timestamp: at,
        }
    }

    #[tokio::test]
    async fn offered_hits_reach_a_subscriber_coalesced_per_project() {
        let hub = RealtimeHub::start(None, 2);
        let mut rx = hub.subscribe();
        let project = DocId::new();
        let docs = Docs::Events((0..8).map(|i| event(&format!("e{i}"), i)).collect());
        for _ in 0..2 {
            hub.offer(hub.gather(project, &docs).expect("a stream is listening"));
        }
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("a flush within 2 s")
            .expect("a signal");
        match &*got {
            Signal::Hits {
                project: p,
                hits,
                count,
            } => {
                assert_eq!(p, &project.to_hex());
                assert_eq!(*count, 16, "every document counted");
                assert_eq!(hits.len(), 2 * HITS_PER_BATCH, "the newest of each batch");
                assert_eq!(hits[0].label, "e7");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn nothing_is_gathered_without_a_stream_or_redis() {
        let hub = RealtimeHub::start(None, 2);
        assert!(
            hub.gather(DocId::new(), &Docs::Events(vec![event("x", 1)]))
                .is_none()
        );
    }

    #[tokio::test]
    async fn streams_are_capped_per_client_and_freed_on_drop() {
        let hub = RealtimeHub::start(None, 2);
        let a = hub.open_stream("s1").expect("first");
        let _b = hub.open_stream("s1").expect("second");
        assert!(hub.open_stream("s1").is_none(), "a third is refused");
        assert!(hub.open_stream("s2").is_some(), "another client is not");
        drop(a);
        assert!(
            hub.open_stream("s1").is_some(),
            "a closed stream frees its slot"
        );
        assert_eq!(
            hub.open_streams(),
            1,
            "only the second stream is still open"
        );
    }

    #[test]
    fn labels_are_cut_and_session_keys_hide_the_id() {
        let long = "x".repeat(1000);
        let hits = hits_of(&Docs::Events(vec![event(&long, 1)]));
        assert_eq!(hits[0].label.chars().count(), MAX_LABEL);
        let key = session_key("abc");
        assert!(!key.contains("abc"));
        assert_eq!(key, session_key("abc"));
        assert_ne!(key, session_key("abd"));
    }
}
