//! Ingestion: authenticate the key, parse and validate the body, apply drop rules, enrich, and
//! hand the batch to the write pipeline. HTTP and WebSocket handlers both call [`Ingestor`];
//! neither touches the store directly.

pub mod buffer;
pub mod coerce;
pub mod enrich;
pub mod keys;
pub mod parse;
pub mod pipeline;
pub mod spool;

use crate::domain::{
    ids::DocId,
    model::{Channel, WriteBatch},
};
use keys::{KeyCache, ProjectAuth};
use parse::{Item, RequestFacts};
use pipeline::{Outcome, Pipeline};
use std::sync::Arc;

/// Why the ingest path refused a request. It speaks no HTTP: `crate::error` turns it into 1.x's
/// answers (`AppError`), the WebSocket protocol into its replies.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("API key required")]
    ApiKeyRequired,
    #[error("invalid API key")]
    InvalidApiKey,
    /// An item failed validation; the text is 1.x's `details`.
    #[error("validation failed: {0}")]
    Validation(String),
    /// Neither stored nor spooled: the client should send it again after `retry_after` seconds.
    #[error("{cause}")]
    Unavailable { cause: String, retry_after: u32 },
    /// The key lookup failed (and no stale answer was kept).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What happened to an accepted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Items stored (or spooled, or in the Redis buffer).
    pub count: usize,
    /// Events removed by the project's drop rules.
    pub dropped: usize,
    /// True when the items went to the disk spool because the store was unavailable.
    pub spooled: bool,
}

impl Accepted {
    fn of(outcome: Outcome, count: usize, dropped: usize) -> Result<Self, IngestError> {
        match outcome {
            Outcome::Stored => Ok(Accepted {
                count,
                dropped,
                spooled: false,
            }),
            Outcome::Spooled => Ok(Accepted {
                count,
                dropped,
                spooled: true,
            }),
            Outcome::Failed => Err(IngestError::Unavailable {
                cause: "store and ingest spool both unavailable".into(),
                retry_after: 5,
            }),
        }
    }
}

pub struct Ingestor {
    keys: KeyCache,
    pub enricher: enrich::Enricher,
    pipeline: Pipeline,
    /// Where acknowledged batches are announced to the realtime streams.
    live: Option<Arc<crate::runtime::realtime::RealtimeHub>>,
    /// The Redis Streams buffer in front of the pipeline (`INGEST_BUFFER_REDIS`).
    buffer: Option<Arc<buffer::RedisBuffer>>,
}

impl Ingestor {
    pub fn new(keys: KeyCache, enricher: enrich::Enricher, pipeline: Pipeline) -> Self {
        Self {
            keys,
            enricher,
            pipeline,
            live: None,
            buffer: None,
        }
    }

    /// Announces every acknowledged batch to `hub`'s realtime streams.
    pub fn with_live(mut self, hub: Arc<crate::runtime::realtime::RealtimeHub>) -> Self {
        self.live = Some(hub);
        self
    }

    /// Puts the Redis buffer in front of the local pipeline.
    pub fn with_buffer(mut self, buffer: Arc<buffer::RedisBuffer>) -> Self {
        self.buffer = Some(buffer);
        self
    }

    /// The Redis buffer, when `INGEST_BUFFER_REDIS` is on.
    pub fn buffer(&self) -> Option<&Arc<buffer::RedisBuffer>> {
        self.buffer.as_ref()
    }

    /// Resolves an API key (public or secret) to its project.
    pub async fn authenticate(&self, key: Option<&str>) -> Result<ProjectAuth, IngestError> {
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(IngestError::ApiKeyRequired)?;
        self.keys
            .authenticate(key)
            .await?
            .ok_or(IngestError::InvalidApiKey)
    }

    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// The write path's state (writer alive, store taking commits, spool counters).
    pub fn health(&self) -> &pipeline::IngestHealth {
        self.pipeline.health()
    }

    /// Validates `items` for `channel`, drops what the project's rules drop, and waits until the
    /// rest is durable. Nothing is written unless every kept item is valid.
    pub async fn ingest(
        &self,
        auth: &ProjectAuth,
        channel: Channel,
        items: Vec<Item>,
        facts: &RequestFacts,
    ) -> Result<Accepted, IngestError> {
        let total = items.len();
        let kept: Vec<Item> = if channel == Channel::Events {
            items
                .into_iter()
                .filter(|item| !auth.drop_rules.drops(parse::fields(item)))
                .collect()
        } else {
            items
        };
        let dropped = total - kept.len();
        let docs =
            parse::documents(channel, &kept, facts).map_err(|e| IngestError::Validation(e.0))?;
        let count = docs.len();
        let live =
            (self.live.as_ref()).and_then(|hub| Some((hub, hub.gather(auth.project_id, &docs)?)));
        let batch = WriteBatch {
            batch_id: DocId::new(),
            project_id: auth.project_id,
            docs,
            dropped: dropped as u32,
        };
        crate::telemetry::ingest_items("dropped", dropped);
        let outcome = self.write(batch, count).await;
        if let Some((hub, offer)) = live
            && matches!(outcome, Outcome::Stored | Outcome::Spooled)
            && count > 0
        {
            hub.offer(offer);
        }
        Accepted::of(outcome, count, dropped)
    }

    /// Makes `batch` durable: in the Redis buffer when it is on and takes it, else through the
    /// local pipeline (store, or disk spool while the store is down). Counts what happened.
    async fn write(&self, batch: WriteBatch, count: usize) -> Outcome {
        if let Some(buffer) = &self.buffer {
            match buffer.offer(&batch).await {
                buffer::Offer::Buffered => {
                    crate::telemetry::ingest_items("buffered", count);
                    return Outcome::Stored;
                }
                buffer::Offer::Uncertain(outcome) => {
                    let word = if outcome == Outcome::Spooled {
                        "spooled"
                    } else {
                        "refused"
                    };
                    crate::telemetry::ingest_items(word, count);
                    return outcome;
                }
                // Redis away or the stream full: the local path below.
                buffer::Offer::NotAdded(_) => {}
            }
        }
        let outcome = self.pipeline.submit(batch).await;
        match outcome {
            Outcome::Stored => crate::telemetry::ingest_items("stored", count),
            Outcome::Spooled => {
                crate::telemetry::ingest_items("spooled", count);
                crate::telemetry::fallback(crate::telemetry::Piece::Ingest, "store_unavailable");
            }
            Outcome::Failed => crate::telemetry::ingest_items("refused", count),
        }
        outcome
    }
}
