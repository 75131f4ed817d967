//! The write path behind every ingestion request: a bounded channel into one writer task that
//! commits many requests' batches in one transaction (group commit) and answers each request
//! once its items are durable — in the store (`Stored`) or, when the store is unavailable, in the
//! fsynced disk spool (`Spooled`). A drainer task replays the spool when the store is back.
//!
//! Shutdown: when every sender is dropped the writer finishes what is queued, then stops; the
//! drainer makes one last attempt and stops.

use super::spool::Spool;
use crate::domain::model::WriteBatch;
use crate::store::{EventWriter, StoreAdmin};
use std::{sync::Arc, time::Duration};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Where an accepted batch ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed to the store.
    Stored,
    /// Written to the disk spool; it will reach the store on recovery.
    Spooled,
    /// Neither the store nor the spool took it: the request must not be acknowledged.
    Failed,
}

struct WriteRequest {
    batch: WriteBatch,
    done: oneshot::Sender<Outcome>,
}

/// Tuning for the writer.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub queue_capacity: usize,
    pub max_commit_items: usize,
    /// A commit slower than this counts as the store being unavailable.
    pub write_timeout: Duration,
    pub drain_interval: Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_commit_items: 10_000,
            write_timeout: Duration::from_secs(10),
            drain_interval: Duration::from_secs(5),
        }
    }
}

/// The handlers' side: cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<WriteRequest>,
}

/// The tasks' side, kept by startup to wait for the drain on shutdown.
pub struct PipelineTasks {
    writer: tokio::task::JoinHandle<()>,
    drainer: tokio::task::JoinHandle<()>,
    stop_drainer: watch::Sender<bool>,
}

impl Pipeline {
    /// Starts the writer and the spool drainer.
    pub fn start(
        events: Arc<dyn EventWriter>,
        admin: Arc<dyn StoreAdmin>,
        spool: Spool,
        options: PipelineOptions,
    ) -> (Pipeline, PipelineTasks) {
        let (tx, rx) = mpsc::channel(options.queue_capacity);
        let wake_drainer = Arc::new(Notify::new());
        let (stop_drainer, stop_rx) = watch::channel(false);
        let writer = tokio::spawn(run_writer(
            rx,
            events.clone(),
            spool.clone(),
            options.clone(),
            wake_drainer.clone(),
        ));
        let drainer = tokio::spawn(run_drainer(
            events,
            admin,
            spool,
            options.drain_interval,
            wake_drainer,
            stop_rx,
        ));
        (
            Pipeline { tx },
            PipelineTasks {
                writer,
                drainer,
                stop_drainer,
            },
        )
    }

    /// Hands a batch to the writer and waits until it is durable somewhere.
    pub async fn submit(&self, batch: WriteBatch) -> Outcome {
        let (done, wait) = oneshot::channel();
        if self.tx.send(WriteRequest { batch, done }).await.is_err() {
            return Outcome::Failed;
        }
        wait.await.unwrap_or(Outcome::Failed)
    }
}

impl PipelineTasks {
    /// Waits (up to `timeout`) for the writer to finish everything queued; call after every
    /// [`Pipeline`] clone is dropped. Then stops the drainer after one last attempt.
    pub async fn shutdown(self, timeout: Duration) {
        if tokio::time::timeout(timeout, self.writer).await.is_err() {
            tracing::error!("ingest writer did not finish within {timeout:?}");
        }
        let _ = self.stop_drainer.send(true);
        let _ = tokio::time::timeout(timeout, self.drainer).await;
    }
}

async fn run_writer(
    mut rx: mpsc::Receiver<WriteRequest>,
    events: Arc<dyn EventWriter>,
    spool: Spool,
    options: PipelineOptions,
    wake_drainer: Arc<Notify>,
) {
    let mut batches = Vec::new();
    let mut replies = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut items = first.batch.docs.len();
        batches.push(first.batch);
        replies.push(first.done);
        while items < options.max_commit_items {
            let Ok(next) = rx.try_recv() else { break };
            items += next.batch.docs.len();
            batches.push(next.batch);
            replies.push(next.done);
        }
        let outcome = commit_group(&*events, &spool, &options, &mut batches, &mut replies).await;
        // The store just took a commit: a good moment to replay anything spooled earlier.
        if outcome == Outcome::Stored && spool.has_pending() {
            wake_drainer.notify_one();
        }
    }
    tracing::info!("ingest writer stopped: queue drained");
}

/// Commits one group; on failure isolates the culprit, and spools what the store would not take.
/// Returns what happened to the last part of the group (the spooled part, if any).
async fn commit_group(
    events: &dyn EventWriter,
    spool: &Spool,
    options: &PipelineOptions,
    batches: &mut Vec<WriteBatch>,
    replies: &mut Vec<oneshot::Sender<Outcome>>,
) -> Outcome {
    let first_try = write_with_timeout(events, batches, options.write_timeout).await;
    let outcome_all = match first_try {
        Ok(()) => Some(Outcome::Stored),
        Err(unavailable) if unavailable || batches.len() == 1 => None,
        Err(_) => {
            // One bad batch must not sink its neighbours: retry each alone.
            let mut failed = Vec::new();
            for (batch, done) in batches.drain(..).zip(replies.drain(..)) {
                match write_with_timeout(
                    events,
                    std::slice::from_ref(&batch),
                    options.write_timeout,
                )
                .await
                {
                    Ok(()) => {
                        let _ = done.send(Outcome::Stored);
                    }
                    Err(_) => failed.push((batch, done)),
                }
            }
            let (b, r): (Vec<_>, Vec<_>) = failed.into_iter().unzip();
            *batches = b;
            *replies = r;
            None
        }
    };
    let outcome = match outcome_all {
        Some(stored) => stored,
        None if batches.is_empty() => Outcome::Stored,
        None => match spool.append(batches.clone()).await {
            Ok(()) => {
                tracing::warn!(batches = batches.len(), path = %spool.path().display(), "store unavailable; batches spooled to disk");
                Outcome::Spooled
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), "store and spool both failed; requests refused");
                Outcome::Failed
            }
        },
    };
    batches.clear();
    for done in replies.drain(..) {
        let _ = done.send(outcome);
    }
    outcome
}

/// `Err(true)` when the store is unavailable (or too slow), `Err(false)` for any other failure.
async fn write_with_timeout(
    events: &dyn EventWriter,
    batches: &[WriteBatch],
    timeout: Duration,
) -> Result<(), bool> {
    match tokio::time::timeout(timeout, events.write(batches)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, batches = batches.len(), "ingest commit failed");
            Err(e.is_unavailable())
        }
        Err(_) => {
            tracing::warn!(?timeout, "ingest commit timed out");
            Err(true)
        }
    }
}

async fn run_drainer(
    events: Arc<dyn EventWriter>,
    admin: Arc<dyn StoreAdmin>,
    spool: Spool,
    interval: Duration,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if spool.has_pending() && admin.ping().await.is_ok() {
            match spool.drain(&*events).await {
                Ok(r) if r.drained + r.dead > 0 || r.requeued > 0 => tracing::info!(
                    drained = r.drained,
                    docs = r.drained_docs,
                    requeued = r.requeued,
                    dead = r.dead,
                    "ingest spool drained"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "ingest spool drain failed"),
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wake.notified() => {
                // Give the store a moment to settle before replaying behind fresh writes.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = stop.changed() => {}
        }
    }
}
