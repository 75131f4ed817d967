//! The write path behind every ingestion request: a bounded channel into one writer task that
//! commits many requests' batches in one transaction (group commit) and answers each request
//! once its items are durable — in the store (`Stored`) or, when the store is unavailable, in the
//! fsynced disk spool (`Spooled`). A drainer task replays the spool when the store is back.
//!
//! Shutdown: when every sender is dropped the writer finishes what is queued, then stops; the
//! drainer makes one last attempt and stops.
//!
//! [`IngestHealth`] tells `/readyz` the truth while a fault lasts: whether the writer is alive
//! and whether the store is taking commits or everything goes to the spool. A panic inside one
//! commit fails that group's requests (never acknowledged) and the writer carries on.

use super::spool::Spool;
use crate::domain::model::WriteBatch;
use crate::store::{EventWriter, StoreAdmin};
use futures::FutureExt;
use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// What the write path is going through, for readiness and metrics. Cheap to read.
#[derive(Debug)]
pub struct IngestHealth {
    writer_alive: AtomicBool,
    /// Consecutive commit groups the store did not take (spooled or refused); 0 when the last
    /// one was stored.
    failing_groups: AtomicU64,
    spooled_batches: AtomicU64,
    refused_batches: AtomicU64,
}

impl Default for IngestHealth {
    fn default() -> Self {
        Self {
            writer_alive: AtomicBool::new(true),
            failing_groups: AtomicU64::new(0),
            spooled_batches: AtomicU64::new(0),
            refused_batches: AtomicU64::new(0),
        }
    }
}

impl IngestHealth {
    /// False once the writer task has stopped (shutdown, or a bug): nothing can be accepted.
    pub fn writer_alive(&self) -> bool {
        self.writer_alive.load(Ordering::Relaxed)
    }

    /// True while the store refuses commits, from the first failed group until one is stored.
    pub fn store_refusing(&self) -> bool {
        self.failing_groups.load(Ordering::Relaxed) > 0
    }

    /// Batches written to the spool since start.
    pub fn spooled_batches(&self) -> u64 {
        self.spooled_batches.load(Ordering::Relaxed)
    }

    /// Batches neither the store nor the spool took (answered 503) since start.
    pub fn refused_batches(&self) -> u64 {
        self.refused_batches.load(Ordering::Relaxed)
    }

    /// Counts what happened to `batches` (the part of a group that was spooled or refused);
    /// `store_refused` when the store itself was unavailable, not just one batch bad.
    fn record(&self, outcome: Outcome, batches: usize, store_refused: bool) {
        match outcome {
            Outcome::Stored => self.store_took_writes(),
            Outcome::Spooled => {
                self.spooled_batches
                    .fetch_add(batches as u64, Ordering::Relaxed);
            }
            Outcome::Failed => {
                self.refused_batches
                    .fetch_add(batches as u64, Ordering::Relaxed);
            }
        }
        if store_refused {
            self.failing_groups.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The store took a write (a commit of the writer, a replay of the drainer), or answers
    /// with nothing left to replay: it is not refusing.
    fn store_took_writes(&self) {
        self.failing_groups.store(0, Ordering::Relaxed);
    }
}

/// Marks the writer dead when its task ends, however it ends.
struct AliveGuard(Arc<IngestHealth>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.writer_alive.store(false, Ordering::Relaxed);
    }
}

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
    health: Arc<IngestHealth>,
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
        let health = Arc::new(IngestHealth::default());
        let writer = crate::tasks::spawn_handle(
            "ingest_writer",
            run_writer(
                rx,
                events.clone(),
                spool.clone(),
                options.clone(),
                wake_drainer.clone(),
                health.clone(),
            ),
        );
        let drainer = crate::tasks::spawn_handle(
            "ingest_spool_drainer",
            run_drainer(
                events,
                admin,
                spool,
                options.drain_interval,
                wake_drainer,
                stop_rx,
                health.clone(),
            ),
        );
        (
            Pipeline { tx, health },
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

    /// The write path's current state.
    pub fn health(&self) -> &Arc<IngestHealth> {
        &self.health
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
    health: Arc<IngestHealth>,
) {
    let _alive = AliveGuard(health.clone());
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
        let group = batches.len();
        let commit = commit_group(
            &*events,
            &spool,
            &options,
            &health,
            &mut batches,
            &mut replies,
        );
        let outcome = match AssertUnwindSafe(commit).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(_) => {
                // The group's replies were dropped with the panic: its requests hear `Failed`
                // (never acknowledged). The writer stays up for the next group.
                tracing::error!(
                    batches = group,
                    "ingest commit panicked; its requests were refused"
                );
                batches.clear();
                replies.clear();
                health.record(Outcome::Failed, group, false);
                Outcome::Failed
            }
        };
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
    health: &IngestHealth,
    batches: &mut Vec<WriteBatch>,
    replies: &mut Vec<oneshot::Sender<Outcome>>,
) -> Outcome {
    let first_try = write_with_timeout(events, batches, options.write_timeout).await;
    // Only an unavailable store (not one bad batch) makes the write path "refusing".
    let store_refused = first_try == Err(true);
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
    health.record(outcome, batches.len(), store_refused);
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
    let started = std::time::Instant::now();
    let written = tokio::time::timeout(timeout, events.write(batches)).await;
    let items = batches.iter().map(|b| b.docs.len()).sum();
    crate::telemetry::ingest_commit(started.elapsed(), items, matches!(written, Ok(Ok(()))));
    match written {
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
    health: Arc<IngestHealth>,
) {
    loop {
        let pending = spool.has_pending();
        let answers = admin.ping().await.is_ok();
        if answers && !pending {
            // Nothing waits and the store answers: after an outage with no traffic since, the
            // instance must not stay unready until the next request.
            health.store_took_writes();
        }
        if pending && answers {
            match spool.drain(&*events).await {
                Ok(r) if r.drained > 0 => {
                    health.store_took_writes();
                    tracing::info!(
                        drained = r.drained,
                        docs = r.drained_docs,
                        requeued = r.requeued,
                        dead = r.dead,
                        "ingest spool drained"
                    );
                }
                Ok(r) if r.dead > 0 || r.requeued > 0 => tracing::info!(
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
