//! Ingestion: authenticate the key, parse and validate the body, apply drop rules, enrich, and
//! hand the batch to the write pipeline. HTTP and WebSocket handlers both call [`Ingestor`];
//! neither touches the store directly.

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
use crate::error::AppError;
use keys::{KeyCache, ProjectAuth};
use parse::{Item, RequestFacts};
use pipeline::{Outcome, Pipeline};

/// What happened to an accepted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Items stored (or spooled).
    pub count: usize,
    /// Events removed by the project's drop rules.
    pub dropped: usize,
    /// True when the items went to the disk spool because the store was unavailable.
    pub spooled: bool,
}

pub struct Ingestor {
    keys: KeyCache,
    pub enricher: enrich::Enricher,
    pipeline: Pipeline,
    /// Where acknowledged batches are announced to the realtime streams.
    live: Option<std::sync::Arc<crate::runtime::realtime::RealtimeHub>>,
}

impl Ingestor {
    pub fn new(keys: KeyCache, enricher: enrich::Enricher, pipeline: Pipeline) -> Self {
        Self {
            keys,
            enricher,
            pipeline,
            live: None,
        }
    }

    /// Announces every acknowledged batch to `hub`'s realtime streams.
    pub fn with_live(mut self, hub: std::sync::Arc<crate::runtime::realtime::RealtimeHub>) -> Self {
        self.live = Some(hub);
        self
    }

    /// Resolves an API key (public or secret) to its project.
    pub async fn authenticate(&self, key: Option<&str>) -> Result<ProjectAuth, AppError> {
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(AppError::ApiKeyRequired)?;
        self.keys
            .authenticate(key)
            .await?
            .ok_or(AppError::InvalidApiKey)
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
    ) -> Result<Accepted, AppError> {
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
            parse::documents(channel, &kept, facts).map_err(|e| AppError::Validation(e.0))?;
        let count = docs.len();
        let live =
            (self.live.as_ref()).and_then(|hub| Some((hub, hub.gather(auth.project_id, &docs)?)));
        let batch = WriteBatch {
            batch_id: DocId::new(),
            project_id: auth.project_id,
            docs,
            dropped: dropped as u32,
        };
        let outcome = self.pipeline.submit(batch).await;
        if let Some((hub, offer)) = live
            && matches!(outcome, Outcome::Stored | Outcome::Spooled)
            && count > 0
        {
            hub.offer(offer);
        }
        crate::telemetry::ingest_items("dropped", dropped);
        match outcome {
            Outcome::Stored => crate::telemetry::ingest_items("stored", count),
            Outcome::Spooled => {
                crate::telemetry::ingest_items("spooled", count);
                crate::telemetry::fallback(crate::telemetry::Piece::Ingest, "store_unavailable");
            }
            Outcome::Failed => crate::telemetry::ingest_items("refused", count),
        }
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
            Outcome::Failed => Err(AppError::Unavailable {
                cause: "store and ingest spool both unavailable".into(),
                retry_after: 5,
            }),
        }
    }
}
