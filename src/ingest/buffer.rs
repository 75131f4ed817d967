//! The Redis Streams ingest buffer (`INGEST_BUFFER_REDIS=true`): a request is acknowledged once
//! its batch is in a Redis stream, and a consumer group of writers — one consumer per instance,
//! any instance — commits the batches to the store.
//!
//! * **Add.** One Lua script checks the bounds and `XADD`s the batch (its `batch_id` is assigned
//!   before, in [`super::Ingestor::ingest`]) to [`STREAM`], adding its size to [`BYTES`]. When
//!   the stream holds `INGEST_BUFFER_MAX_BATCHES` batches or `INGEST_BUFFER_MAX_BYTES` bytes the
//!   script adds nothing and the batch takes the local path (group commit, disk spool): nothing
//!   is ever trimmed from the stream. Redis down or its breaker open: the local path too.
//!   An `XADD` whose answer never came (a timeout, a dropped connection) may or may not have
//!   added the entry: that batch goes to the disk spool, whose replay uses `write_once`, so it
//!   is stored once whichever copy lands first.
//! * **Commit.** Each instance's consumer reads with `XREADGROUP` (group [`GROUP`]), takes over
//!   entries idle longer than `INGEST_BUFFER_CLAIM_IDLE_MS` with `XAUTOCLAIM` (their writer
//!   died), and commits the batches of each read (up to [`READ_COUNT`]) together with
//!   [`EventWriter::write_once_many`]: one store transaction (SQLite) or a few round trips
//!   (MongoDB) for the group, each batch still recorded once in the per-batch ledger, so a
//!   batch committed by a writer that died before its `XACK` is found in the ledger and only
//!   acknowledged. After the commit one script `XACK`s, `XDEL`s and subtracts the sizes.
//! * **Store outage.** A commit refused as "unavailable" leaves the entry pending; the consumer
//!   backs off and retries its own pending entries first. Acknowledging goes on meanwhile: the
//!   outage costs lag, which the metrics show ([`BufferStats`]).
//! * A batch the store refuses for any other reason (poison) goes to the disk spool, whose
//!   replay retries it and moves it to the dead-letter file after `spool::MAX_ATTEMPTS`.
//! * **Dead writers' names.** Every process joins [`GROUP`] under a fresh consumer name; every
//!   `INGEST_BUFFER_CLAIM_IDLE_MS` each writer removes the names idle for twice that long that
//!   hold no pending entry ([`crate::runtime::stream_group`]), so restarts do not pile names up
//!   (a dead writer's pending entries are first taken over, then its name goes).
//! * **Keys.** [`STREAM`] and [`BYTES`] carry the hash tag `{ingest}`: on a Redis Cluster both
//!   live in one slot, so each script touches one slot.
//!
//! What an acknowledgement is worth is Redis's persistence: with `appendonly yes` and the
//! default `appendfsync everysec`, a Redis process crash loses nothing, a host crash up to a
//! second of acknowledged batches; `appendfsync always` makes it as durable as the spool's
//! fsync. A Sentinel or Cluster failover can lose what the replica had not yet received.

use super::{pipeline::Outcome, spool::Spool};
use crate::config::IngestBufferConfig;
use crate::domain::model::WriteBatch;
use crate::runtime::redis::{CallError, FallbackState, RedisHandle};
use crate::store::EventWriter;
use fred::prelude::*;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::{Notify, watch};

/// The stream of buffered batches (one field `b`: the batch as JSON).
pub const STREAM: &str = "si:{ingest}:batches";
/// Serialized bytes of the batches in [`STREAM`] (kept by the scripts).
pub const BYTES: &str = "si:{ingest}:bytes";
/// The consumer group every instance's writer reads with.
pub const GROUP: &str = "si-ingest-writers";

/// Bounds check and add, atomically. KEYS: stream, byte counter. ARGV: max batches, max bytes,
/// the batch. Returns the entry id, or false (nil) when full.
const ADD_SCRIPT: &str = r#"
local len = redis.call('XLEN', KEYS[1])
local size = string.len(ARGV[3])
local bytes = 0
if len == 0 then redis.call('SET', KEYS[2], 0) else bytes = tonumber(redis.call('GET', KEYS[2]) or '0') end
if len >= tonumber(ARGV[1]) or bytes + size > tonumber(ARGV[2]) then return false end
local id = redis.call('XADD', KEYS[1], '*', 'b', ARGV[3])
redis.call('INCRBY', KEYS[2], size)
return id
"#;

/// Acknowledge and delete committed entries. KEYS: stream, byte counter. ARGV: group, then
/// (entry id, size) pairs. Only entries this call deletes are subtracted. Returns how many.
const ACK_SCRIPT: &str = r#"
local done = 0
for i = 2, #ARGV, 2 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('DECRBY', KEYS[2], ARGV[i + 1])
    done = done + 1
  end
end
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0) end
return done
"#;

/// Batches read per round.
const READ_COUNT: u64 = 64;
/// Wait between polls when the stream is empty (a local add wakes the consumer at once).
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Wait before retrying after the store (or Redis) refused.
const BACKOFF: Duration = Duration::from_secs(1);
/// How often the consumer refreshes [`BufferStats`].
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How long one commit may take before the store counts as unavailable.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a group commit did not go through.
enum GroupFailure {
    /// The store is away (or did not answer in time): the group stays pending.
    Unavailable(String),
    /// The store refused the group: one of its batches may be at fault.
    Refused(String),
}

/// What happened to a batch offered to the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// In the stream: acknowledge.
    Buffered,
    /// Not added (Redis away, breaker open, stream full): take the local path.
    NotAdded(&'static str),
    /// Maybe added (no answer): the batch went to the disk spool (`Spooled`), or nowhere
    /// (`Failed`: do not acknowledge).
    Uncertain(Outcome),
}

/// The buffer as the consumer last saw it, plus this instance's counters. Cheap to read.
#[derive(Debug, Default)]
pub struct BufferStats {
    /// Entries in the stream (waiting to be read, or read and not yet committed).
    pub length: AtomicU64,
    /// Entries read by some writer and not yet acknowledged.
    pub pending: AtomicU64,
    /// Age of the oldest pending entry (ms since it was added), 0 when none.
    pub oldest_pending_ms: AtomicU64,
    /// Bytes waiting (the byte counter).
    pub bytes: AtomicU64,
    /// Whether the last refresh reached Redis.
    pub fresh: AtomicBool,
    pub consumer_alive: AtomicBool,
    pub buffered: AtomicU64,
    pub fell_back: AtomicU64,
    pub committed: AtomicU64,
    pub duplicates: AtomicU64,
    pub reclaimed: AtomicU64,
}

/// A snapshot of [`BufferStats`] for `/readyz` and `/metrics`.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BufferState {
    pub redis: bool,
    pub consumer_alive: bool,
    pub length: u64,
    pub pending: u64,
    pub oldest_pending_seconds: f64,
    pub bytes: u64,
    pub buffered_batches: u64,
    pub fallback_batches: u64,
    pub committed_batches: u64,
    pub duplicate_batches: u64,
    pub reclaimed_batches: u64,
}

impl BufferStats {
    pub fn state(&self) -> BufferState {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BufferState {
            redis: self.fresh.load(Ordering::Relaxed),
            consumer_alive: self.consumer_alive.load(Ordering::Relaxed),
            length: l(&self.length),
            pending: l(&self.pending),
            oldest_pending_seconds: l(&self.oldest_pending_ms) as f64 / 1000.0,
            bytes: l(&self.bytes),
            buffered_batches: l(&self.buffered),
            fallback_batches: l(&self.fell_back),
            committed_batches: l(&self.committed),
            duplicate_batches: l(&self.duplicates),
            reclaimed_batches: l(&self.reclaimed),
        }
    }
}

/// The handlers' side (adds) and the consumer's shared state. Cheap to share in an `Arc`.
pub struct RedisBuffer {
    redis: RedisHandle,
    spool: Spool,
    config: IngestBufferConfig,
    add_sha: String,
    ack_sha: String,
    consumer: String,
    stats: Arc<BufferStats>,
    fallback: FallbackState,
    /// Wakes the local consumer after an add.
    wake: Notify,
    group_ready: AtomicBool,
}

/// One entry read from the stream.
struct Entry {
    id: String,
    /// The raw field value (its length is what the byte counter holds).
    raw: Option<String>,
}

impl RedisBuffer {
    pub fn new(redis: RedisHandle, spool: Spool, config: IngestBufferConfig) -> Self {
        Self {
            redis,
            spool,
            config,
            add_sha: fred::util::sha1_hash(ADD_SCRIPT),
            ack_sha: fred::util::sha1_hash(ACK_SCRIPT),
            consumer: format!(
                "pid{}-{}",
                std::process::id(),
                crate::domain::ids::random_hex(4)
            ),
            stats: Arc::default(),
            fallback: FallbackState::new(
                crate::telemetry::Piece::IngestBuffer,
                "batches take the local write path (group commit, disk spool)",
            ),
            wake: Notify::new(),
            group_ready: AtomicBool::new(false),
        }
    }

    /// This instance's consumer name in [`GROUP`].
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub fn stats(&self) -> &Arc<BufferStats> {
        &self.stats
    }

    /// Runs a script by its hash, loading it on `NOSCRIPT`, through the breaker.
    async fn script<R: FromValue>(
        &self,
        sha: &str,
        script: &'static str,
        args: Vec<Value>,
    ) -> Result<R, CallError<fred::error::Error>> {
        let client = self.redis.client();
        let keys = vec![STREAM.to_string(), BYTES.to_string()];
        let run = async {
            match client
                .evalsha::<R, _, _, _>(sha, keys.clone(), args.clone())
                .await
            {
                Err(e) if e.details().contains("NOSCRIPT") => {
                    client.eval::<R, _, _, _>(script, keys, args).await
                }
                other => other,
            }
        };
        self.redis.command(run).await
    }

    /// Offers one batch to the stream (see the module docs for each answer).
    pub async fn offer(&self, batch: &WriteBatch) -> Offer {
        if !self.redis.is_connected() {
            return self.not_added("unavailable", &"redis disconnected or breaker open");
        }
        let json = match serde_json::to_string(batch) {
            Ok(j) => j,
            Err(e) => return self.not_added("error", &e),
        };
        let args: Vec<Value> = vec![
            (self.config.max_batches as i64).into(),
            (self.config.max_bytes as i64).into(),
            json.into(),
        ];
        match self
            .script::<Option<String>>(&self.add_sha, ADD_SCRIPT, args)
            .await
        {
            Ok(Some(_)) => {
                self.fallback.answered();
                self.stats.buffered.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::ingest_buffer_batches("buffered", 1);
                self.wake.notify_one();
                Offer::Buffered
            }
            Ok(None) => self.not_added("full", &"the stream is at its bound"),
            Err(e @ (CallError::Disconnected | CallError::BreakerOpen)) => {
                self.not_added("unavailable", &e)
            }
            Err(CallError::Failed(e))
                if !matches!(
                    e.kind(),
                    fred::error::ErrorKind::IO
                        | fred::error::ErrorKind::Timeout
                        | fred::error::ErrorKind::Canceled
                ) =>
            {
                // Redis answered with an error (OOM, a read-only replica): nothing was added.
                self.not_added("error", &e)
            }
            Err(e) => {
                // Sent, never answered: the entry may exist. The spool's `write_once` replay and
                // the consumer's `write_once` store it once whichever runs first.
                self.stats.fell_back.fetch_add(1, Ordering::Relaxed);
                self.fallback.fell_back("uncertain", &e);
                crate::telemetry::ingest_buffer_batches("uncertain", 1);
                match self.spool.append(vec![batch.clone()]).await {
                    Ok(()) => Offer::Uncertain(Outcome::Spooled),
                    Err(e) => {
                        tracing::error!(error = %e, "ingest buffer: XADD unanswered and spool failed; request refused");
                        Offer::Uncertain(Outcome::Failed)
                    }
                }
            }
        }
    }

    fn not_added(&self, reason: &'static str, detail: &dyn std::fmt::Display) -> Offer {
        self.stats.fell_back.fetch_add(1, Ordering::Relaxed);
        if reason == "full" {
            // Redis answers; the bound is a policy, logged once per switch like an outage.
            tracing::debug!("ingest buffer full; batch takes the local path");
        }
        self.fallback.fell_back(reason, detail);
        crate::telemetry::ingest_buffer_batches(reason, 1);
        Offer::NotAdded(reason)
    }

    async fn ensure_group(&self) -> Result<(), String> {
        if self.group_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        // From id 0 with MKSTREAM: entries added before the group existed are delivered too.
        let created = self
            .redis
            .command(
                self.redis
                    .client()
                    .xgroup_create::<Value, _, _, _>(STREAM, GROUP, "0", true),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(CallError::Failed(e)) if e.details().contains("BUSYGROUP") => {}
            Err(e) => return Err(format!("XGROUP CREATE: {e}")),
        }
        self.group_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// A Redis call for the consumer; `NOGROUP` (Redis lost its data) re-creates the group.
    async fn call<T>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, String> {
        match self.redis.command(command).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if let CallError::Failed(f) = &e
                    && f.details().contains("NOGROUP")
                {
                    self.group_ready.store(false, Ordering::Relaxed);
                }
                Err(format!("{what}: {e}"))
            }
        }
    }

    /// This consumer's own pending entries (`from` = "0"), or new ones (`>`).
    async fn read(&self, from: &str) -> Result<Vec<Entry>, String> {
        let reply: Value = self
            .call(
                "XREADGROUP",
                self.redis.client().xreadgroup::<Value, _, _, _, _>(
                    GROUP,
                    self.consumer.as_str(),
                    Some(READ_COUNT),
                    None,
                    false,
                    STREAM,
                    from,
                ),
            )
            .await?;
        Ok(read_entries(reply))
    }

    /// Entries idle longer than the claim time: their writer died (or is stuck).
    async fn reclaim(&self) -> Result<Vec<Entry>, String> {
        let reply: Value = self
            .call(
                "XAUTOCLAIM",
                self.redis.client().xautoclaim::<Value, _, _, _, _>(
                    STREAM,
                    GROUP,
                    self.consumer.as_str(),
                    self.config.claim_idle_ms,
                    "0-0",
                    Some(READ_COUNT),
                    false,
                ),
            )
            .await?;
        Ok(autoclaimed_entries(reply))
    }

    async fn ack(&self, done: &[(String, usize)]) -> Result<(), String> {
        if done.is_empty() {
            return Ok(());
        }
        let mut args: Vec<Value> = vec![GROUP.into()];
        for (id, size) in done {
            args.push(id.as_str().into());
            args.push((*size as i64).into());
        }
        self.script::<i64>(&self.ack_sha, ACK_SCRIPT, args)
            .await
            .map(|_| ())
            .map_err(|e| format!("XACK: {e}"))
    }

    /// Refreshes the stream's length, pending count and oldest pending age.
    async fn refresh_stats(&self) {
        let client = self.redis.client();
        let length = self.call("XLEN", client.xlen::<u64, _>(STREAM)).await;
        let bytes = self.call("GET", client.get::<Option<u64>, _>(BYTES)).await;
        let pending = self
            .call(
                "XPENDING",
                client.xpending::<Value, _, _, _>(STREAM, GROUP, ()),
            )
            .await;
        let s = &self.stats;
        match (length, bytes, pending) {
            (Ok(length), Ok(bytes), Ok(pending)) => {
                let (count, oldest) = pending_summary(pending);
                let age = oldest
                    .map(|ms| (crate::domain::timestamp::now_ms() - ms).max(0) as u64)
                    .unwrap_or(0);
                s.length.store(length, Ordering::Relaxed);
                s.bytes.store(bytes.unwrap_or(0), Ordering::Relaxed);
                s.pending.store(count, Ordering::Relaxed);
                s.oldest_pending_ms.store(age, Ordering::Relaxed);
                s.fresh.store(true, Ordering::Relaxed);
            }
            _ => s.fresh.store(false, Ordering::Relaxed),
        }
    }

    /// Commits `entries`; acknowledges what is stored. The batches of one read are committed
    /// together ([`EventWriter::write_once_many`]: one store transaction, each batch still
    /// recorded once in the ledger); when the store refuses that group for a reason other than
    /// being unavailable, they are committed one by one so that only the batch at fault goes to
    /// the disk spool. Err when the store (or Redis) refused, leaving the rest pending.
    async fn commit(
        &self,
        events: &dyn EventWriter,
        entries: Vec<Entry>,
        reclaimed: bool,
    ) -> Result<(), String> {
        let mut done = Vec::with_capacity(entries.len());
        let mut group: Vec<(String, usize)> = Vec::with_capacity(entries.len());
        let mut batches: Vec<WriteBatch> = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(raw) = entry.raw else {
                // Deleted after it was read (another writer finished it): just acknowledge.
                done.push((entry.id, 0));
                continue;
            };
            let size = raw.len();
            match serde_json::from_str::<WriteBatch>(&raw) {
                Ok(batch) => {
                    group.push((entry.id, size));
                    batches.push(batch);
                }
                Err(e) => {
                    tracing::error!(entry = %entry.id, error = %e, "ingest buffer: unreadable entry dropped from the stream");
                    crate::telemetry::ingest_buffer_batches("unreadable", 1);
                    done.push((entry.id, size));
                }
            }
        }
        if reclaimed && !batches.is_empty() {
            self.stats
                .reclaimed
                .fetch_add(batches.len() as u64, Ordering::Relaxed);
            crate::telemetry::ingest_buffer_batches("reclaimed", batches.len() as u64);
        }
        let failure = match self.commit_group(events, &batches).await {
            Ok(fresh) => {
                for new in fresh {
                    self.count_stored(new, 1);
                }
                done.extend(group);
                None
            }
            Err(GroupFailure::Unavailable(f)) => Some(f),
            Err(GroupFailure::Refused(e)) => {
                tracing::debug!(error = %e, batches = batches.len(), "ingest buffer: the store refused a group; committing its batches one by one");
                self.commit_each(events, group, batches, &mut done).await
            }
        };
        let acked = self.ack(&done).await;
        match (failure, acked) {
            (None, Ok(())) => Ok(()),
            (Some(f), _) => Err(f),
            (None, Err(e)) => Err(e),
        }
    }

    /// One `write_once_many` for the group, timed like any commit.
    async fn commit_group(
        &self,
        events: &dyn EventWriter,
        batches: &[WriteBatch],
    ) -> Result<Vec<bool>, GroupFailure> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let written = tokio::time::timeout(COMMIT_TIMEOUT, events.write_once_many(batches)).await;
        let docs = batches.iter().map(|b| b.docs.len()).sum();
        crate::telemetry::ingest_commit(started.elapsed(), docs, matches!(written, Ok(Ok(_))));
        match written {
            Ok(Ok(fresh)) => Ok(fresh),
            Ok(Err(e)) if !e.is_unavailable() => Err(GroupFailure::Refused(e.to_string())),
            Ok(Err(e)) => Err(GroupFailure::Unavailable(format!("store: {e}"))),
            Err(_) => Err(GroupFailure::Unavailable(format!(
                "store: no answer within {COMMIT_TIMEOUT:?}"
            ))),
        }
    }

    /// Counts one batch stored now (`fresh`) or found in the ledger.
    fn count_stored(&self, fresh: bool, n: u64) {
        let (counter, word) = if fresh {
            (&self.stats.committed, "committed")
        } else {
            (&self.stats.duplicates, "duplicate")
        };
        counter.fetch_add(n, Ordering::Relaxed);
        crate::telemetry::ingest_buffer_batches(word, n);
    }

    /// The batches of a refused group one at a time: a batch the store refuses goes to the disk
    /// spool (which retries it and dead-letters it). Returns the failure that stopped it, if any.
    async fn commit_each(
        &self,
        events: &dyn EventWriter,
        group: Vec<(String, usize)>,
        batches: Vec<WriteBatch>,
        done: &mut Vec<(String, usize)>,
    ) -> Option<String> {
        for ((id, size), batch) in group.into_iter().zip(batches) {
            let started = Instant::now();
            let written = tokio::time::timeout(COMMIT_TIMEOUT, events.write_once(&batch)).await;
            crate::telemetry::ingest_commit(
                started.elapsed(),
                batch.docs.len(),
                matches!(written, Ok(Ok(_))),
            );
            match written {
                Ok(Ok(fresh)) => {
                    self.count_stored(fresh, 1);
                    done.push((id, size));
                }
                Ok(Err(e)) if !e.is_unavailable() => {
                    // This batch, not the store: the spool retries it and dead-letters it.
                    tracing::warn!(batch = %batch.batch_id, error = %e, "ingest buffer: the store refused a batch; moved to the disk spool");
                    match self.spool.append(vec![batch]).await {
                        Ok(()) => {
                            crate::telemetry::ingest_buffer_batches("spooled", 1);
                            done.push((id, size));
                        }
                        Err(e) => return Some(format!("spool: {e}")),
                    }
                }
                Ok(Err(e)) => return Some(format!("store: {e}")),
                Err(_) => return Some(format!("store: no answer within {COMMIT_TIMEOUT:?}")),
            }
        }
        None
    }

    /// One round: reclaim, own pending (after a failure), new entries. Returns how many
    /// entries it handled; Err when it should back off.
    async fn round(
        &self,
        events: &dyn EventWriter,
        own_pending: &mut bool,
    ) -> Result<usize, String> {
        self.ensure_group().await?;
        let claimed = self.reclaim().await?;
        if !claimed.is_empty() {
            let n = claimed.len();
            tracing::info!(
                entries = n,
                "ingest buffer: took over batches whose writer stopped"
            );
            *own_pending = true;
            self.commit(events, claimed, true).await?;
            return Ok(n);
        }
        if *own_pending {
            let mine = self.read("0").await?;
            if mine.is_empty() {
                *own_pending = false;
            } else {
                let n = mine.len();
                self.commit(events, mine, false).await?;
                return Ok(n);
            }
        }
        let fresh = self.read(">").await?;
        let n = fresh.len();
        if n > 0 {
            *own_pending = true;
            self.commit(events, fresh, false).await?;
        }
        Ok(n)
    }

    /// Removes the names of writers gone for good (idle for twice the claim time, nothing
    /// pending); logged when there were any.
    async fn prune_consumers(&self) {
        let idle = Duration::from_millis(self.config.claim_idle_ms.saturating_mul(2));
        match crate::runtime::stream_group::prune_idle_consumers(
            &self.redis,
            STREAM,
            GROUP,
            &self.consumer,
            idle,
        )
        .await
        {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(consumers = ?removed, "ingest buffer: removed the names of writers that stopped");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "ingest buffer: consumer names not pruned this time")
            }
        }
    }

    /// Starts this instance's writer; it stops when `stop` turns true (after its current round).
    pub fn start_consumer(
        self: &Arc<Self>,
        events: Arc<dyn EventWriter>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let buffer = self.clone();
        crate::tasks::spawn_handle("ingest_buffer_consumer", async move {
            buffer.stats.consumer_alive.store(true, Ordering::Relaxed);
            let _alive = ConsumerAlive(buffer.stats.clone());
            let mut own_pending = true;
            let mut last_stats: Option<Instant> = None;
            let prune_every = Duration::from_millis(buffer.config.claim_idle_ms.max(1_000));
            let mut last_prune = Instant::now();
            loop {
                if *stop.borrow() {
                    return;
                }
                if last_stats.is_none_or(|t| t.elapsed() >= STATS_EVERY) {
                    if buffer.redis.is_connected() {
                        buffer.refresh_stats().await;
                    } else {
                        buffer.stats.fresh.store(false, Ordering::Relaxed);
                    }
                    last_stats = Some(Instant::now());
                }
                if last_prune.elapsed() >= prune_every && buffer.redis.is_connected() {
                    buffer.prune_consumers().await;
                    last_prune = Instant::now();
                }
                let wait = if !buffer.redis.is_connected() {
                    IDLE_POLL
                } else {
                    match buffer.round(&*events, &mut own_pending).await {
                        Ok(0) => IDLE_POLL,
                        Ok(_) => Duration::ZERO,
                        Err(e) => {
                            tracing::warn!(error = %e, "ingest buffer: batches wait in the stream; retrying");
                            own_pending = true;
                            BACKOFF
                        }
                    }
                };
                if wait.is_zero() {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = buffer.wake.notified(), if wait == IDLE_POLL => {}
                    _ = stop.changed() => {}
                }
            }
        })
    }
}

/// Marks the consumer stopped when its task ends, however it ends.
struct ConsumerAlive(Arc<BufferStats>);

impl Drop for ConsumerAlive {
    fn drop(&mut self) {
        self.0.consumer_alive.store(false, Ordering::Relaxed);
    }
}

/// The `b` field of an entry's field list (`[f1, v1, …]` or a map).
fn entry_batch(fields: Value) -> Option<String> {
    match fields {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .find(|(k, _)| k.as_str() == Some("b"))
            .and_then(|(_, v)| v.as_string()),
        Value::Array(values) => values
            .chunks(2)
            .find(|c| c.first().and_then(|k| k.as_string()).as_deref() == Some("b"))
            .and_then(|c| c.get(1)?.as_string()),
        _ => None,
    }
}

/// One entry `[id, fields]` (fields nil for an entry deleted since).
fn entry(value: Value) -> Option<Entry> {
    let mut parts = match value {
        Value::Array(parts) => parts.into_iter(),
        _ => return None,
    };
    let id = parts.next()?.as_string()?;
    let raw = parts.next().and_then(entry_batch);
    Some(Entry { id, raw })
}

/// `XREADGROUP`'s reply for one stream (`[[stream, [entries…]]]`, a map in RESP3, nil when
/// empty).
fn read_entries(reply: Value) -> Vec<Entry> {
    let per_stream: Vec<Value> = match reply {
        Value::Map(map) => map.inner().into_values().collect(),
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| s.into_array().into_iter().nth(1))
            .collect(),
        _ => Vec::new(),
    };
    per_stream
        .into_iter()
        .flat_map(|entries| entries.into_array().into_iter().filter_map(entry))
        .collect()
}

/// `XAUTOCLAIM`'s reply `[next, [entries…], [deleted…]]`.
fn autoclaimed_entries(reply: Value) -> Vec<Entry> {
    match reply {
        Value::Array(parts) => parts
            .into_iter()
            .nth(1)
            .map(|entries| entries.into_array().into_iter().filter_map(entry).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// `XPENDING key group`'s summary `[count, smallest id, greatest id, consumers]` as (count,
/// the smallest id's time in ms).
fn pending_summary(reply: Value) -> (u64, Option<i64>) {
    let mut parts = reply.into_array().into_iter();
    let count = parts.next().and_then(|v| v.as_u64()).unwrap_or(0);
    let oldest = parts
        .next()
        .and_then(|v| v.as_string())
        .and_then(|id| id.split('-').next()?.parse::<i64>().ok());
    (count, oldest.filter(|_| count > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn both_buffer_keys_live_in_one_cluster_slot() {
        assert_eq!(
            fred::util::redis_keyslot(STREAM.as_bytes()),
            fred::util::redis_keyslot(BYTES.as_bytes())
        );
    }

    #[test]
    fn stream_replies_are_parsed_in_both_shapes() {
        let e = Value::Array(vec![s("5-0"), Value::Array(vec![s("b"), s("{}")])]);
        let read = Value::Array(vec![Value::Array(vec![
            s(STREAM),
            Value::Array(vec![e.clone()]),
        ])]);
        let got = read_entries(read);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].id.as_str(), got[0].raw.as_deref()),
            ("5-0", Some("{}"))
        );
        assert!(read_entries(Value::Null).is_empty());
        let claimed = Value::Array(vec![
            s("0-0"),
            Value::Array(vec![e, Value::Array(vec![s("6-0"), Value::Null])]),
            Value::Array(vec![]),
        ]);
        let got = autoclaimed_entries(claimed);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].raw, None, "a deleted entry has no batch");
        let summary = Value::Array(vec![
            Value::Integer(3),
            s("1700000000000-0"),
            s("1700000000500-1"),
            Value::Array(vec![]),
        ]);
        assert_eq!(pending_summary(summary), (3, Some(1_700_000_000_000)));
        let none = Value::Array(vec![
            Value::Integer(0),
            Value::Null,
            Value::Null,
            Value::Null,
        ]);
        assert_eq!(pending_summary(none), (0, None));
    }
}
