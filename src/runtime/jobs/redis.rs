//! The Redis job queue (`JOB_QUEUE_REDIS`): delivery through Redis Streams with one consumer
//! group, over the durable queue, which still holds every job's state and decides who runs it.
//!
//! * Enqueue writes the job to the store first (`dispatch = redis`), then `XADD`s its id to
//!   `si:{jobs}:stream:{kind}`. If Redis cannot take it, the job is switched to
//!   `dispatch = store` and the store sweep runs it: nothing is lost, and it is logged.
//! * Workers read with `XREADGROUP` (group `si-workers`, one consumer per queue instance), and
//!   first take over entries idle longer than the visibility timeout with `XAUTOCLAIM` (their
//!   consumer died). Every entry is then claimed *in the store*; an entry whose job another
//!   attempt holds stays pending, one whose job is finished is acknowledged.
//! * Heartbeats renew the store lease and reset the entry's idle time (`XCLAIM … JUSTID`).
//! * Completion and failure are written to the store first, then the entry is `XACK`ed and
//!   `XDEL`eted. Retries wait in the sorted set `si:{jobs}:delayed` (score = due time) and are
//!   moved back to their stream when due (`ZREM` decides which instance moves one). A job that
//!   fails for good is also appended to `si:{jobs}:dead` (the dead-letter stream).
//! * Every visibility timeout one worker pass removes the consumer names idle for twice that long
//!   with nothing pending ([`crate::runtime::stream_group`]): each process start joins under a
//!   fresh name, and restarts would otherwise pile the names up in the group.
//! * Every key carries the hash tag `{jobs}`, so on a Redis Cluster they all live in one slot
//!   and `XREADGROUP` over several streams is one command on one node.
//! * Store sweeps still run, leaving Redis-dispatched jobs to Redis for a grace period: they
//!   catch entries lost with a Redis restart or a crash between the two writes. With Redis down,
//!   everything runs through the store at once.

use super::{
    Delivery, DurableJobQueue, FailOutcome, JobError, JobQueue, NewJob, QueueOptions, StreamEntry,
};
use crate::domain::{clock::SharedClock, ids::DocId};
use crate::runtime::redis::{CallError, FallbackState, RedisHandle};
use crate::store::{Job, JobCounts, JobDispatch, JobState, JobStore, StoreResult};
use async_trait::async_trait;
use fred::prelude::*;
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

/// The consumer group every instance reads with.
pub const GROUP: &str = "si-workers";
/// Jobs that failed for good: one entry per job (`id`, `kind`, `attempts`, `error`).
pub const DEAD_LETTER_STREAM: &str = "si:{jobs}:dead";
/// Retries waiting for their backoff: member `{kind}:{id}`, score = due time (epoch ms).
pub const DELAYED_SET: &str = "si:{jobs}:delayed";

/// The stream carrying jobs of `kind` (hash tag `{jobs}`: one Cluster slot for the queue).
pub fn stream_key(kind: &str) -> String {
    format!("si:{{jobs}}:stream:{kind}")
}

pub struct RedisJobQueue {
    durable: DurableJobQueue,
    redis: RedisHandle,
    /// Streams whose group this instance has created (or found), cleared on `NOGROUP`.
    groups: Mutex<HashSet<String>>,
    /// Whether Redis serves the queue (the change is logged once each way).
    fallback: FallbackState,
    /// When this instance last pruned the groups' dead consumer names.
    last_prune: Mutex<Option<std::time::Instant>>,
}

impl RedisJobQueue {
    pub fn new(
        store: Arc<dyn JobStore>,
        redis: RedisHandle,
        options: QueueOptions,
        clock: SharedClock,
    ) -> Self {
        Self {
            durable: DurableJobQueue::new(store, options, clock),
            redis,
            groups: Mutex::new(HashSet::new()),
            fallback: FallbackState::new(
                crate::telemetry::Piece::JobQueue,
                "jobs run from the store until it can",
            ),
            last_prune: Mutex::new(None),
        }
    }

    /// This instance's consumer name in the group (also recorded as the job's worker).
    pub fn consumer(&self) -> &str {
        self.durable.worker_name()
    }

    fn client(&self) -> &Client {
        self.redis.client()
    }

    /// Runs one Redis call through the breaker, bounded by
    /// the Redis command timeout (`REDIS_COMMAND_TIMEOUT_MS`); errors without waiting when
    /// disconnected.
    async fn call<T>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, String> {
        match self.redis.command(command).await {
            Ok(v) => Ok(v),
            Err(CallError::Failed(e)) => {
                if e.details().contains("NOGROUP") {
                    self.groups
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                }
                Err(format!("{what}: {e}"))
            }
            Err(e) => Err(format!("{what}: {e}")),
        }
    }

    fn note_redis(&self, result: Result<(), &str>) {
        match result {
            Ok(()) => self.fallback.answered(),
            Err(error) => self.fallback.fell_back("unavailable", &error),
        }
    }

    async fn ensure_group(&self, stream: &str) -> Result<(), String> {
        if self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(stream)
        {
            return Ok(());
        }
        // From id 0: entries added before the group existed are delivered too.
        let created = self
            .call(
                "XGROUP CREATE",
                self.client()
                    .xgroup_create::<Value, _, _, _>(stream, GROUP, "0", true),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.contains("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream.to_string());
        Ok(())
    }

    /// Appends the job's id to its kind's stream.
    async fn push(&self, kind: &str, id: DocId) -> Result<(), String> {
        let stream = stream_key(kind);
        self.ensure_group(&stream).await?;
        self.call(
            "XADD",
            self.client().xadd::<String, _, _, _, _>(
                &stream,
                false,
                None,
                "*",
                vec![("id", id.to_hex())],
            ),
        )
        .await
        .map(|_| ())
    }

    /// Hands the job (already queued in the store with `dispatch = redis`) to Redis: its stream
    /// when due now, the delayed set otherwise. When Redis cannot take it, switches it to the
    /// store sweep (logged) so it is not left waiting for the grace period.
    async fn dispatch(&self, kind: &str, id: DocId, due_at: i64) {
        let sent = if due_at <= self.durable.clock().now_ms() {
            self.push(kind, id).await
        } else {
            self.call(
                "ZADD",
                self.client().zadd::<i64, _, _>(
                    DELAYED_SET,
                    None,
                    None,
                    false,
                    false,
                    (due_at as f64, format!("{kind}:{id}")),
                ),
            )
            .await
            .map(|_| ())
        };
        if let Err(error) = sent {
            self.note_redis(Err(&error));
            tracing::warn!(job = %id, kind, %error, "job queue: redis cannot take the job; it runs from the store instead");
            if let Err(e) = self
                .durable
                .store()
                .set_job_dispatch(id, JobDispatch::Store)
                .await
            {
                // The store sweep still takes it after the grace period.
                tracing::warn!(job = %id, error = %e, "job queue: could not switch the job to the store sweep");
            }
            self.durable.wake();
        }
    }

    /// Moves retries whose backoff is over from the delayed set to their streams.
    async fn promote_due(&self) -> Result<(), String> {
        let due: Vec<String> = self
            .call(
                "ZRANGEBYSCORE",
                self.client().zrangebyscore(
                    DELAYED_SET,
                    "-inf",
                    self.durable.clock().now_ms(),
                    false,
                    Some((0, 50)),
                ),
            )
            .await?;
        for member in due {
            // Only the instance whose ZREM removed the member moves it.
            let removed: i64 = self
                .call("ZREM", self.client().zrem(DELAYED_SET, member.as_str()))
                .await?;
            let parsed = member
                .split_once(':')
                .and_then(|(kind, id)| Some((kind.to_string(), DocId::parse(id)?)));
            if let (1, Some((kind, id))) = (removed, parsed) {
                self.dispatch(&kind, id, 0).await;
            }
        }
        Ok(())
    }

    /// Turns a stream entry into a delivery by claiming its job in the store. `None` when the
    /// job is not claimable: finished or unknown (the entry is acknowledged), waiting for a
    /// retry (acknowledged: the retry has its own entry), or held by another live attempt (left
    /// pending, so it is looked at again if that attempt dies).
    async fn deliver(
        &self,
        entry: StreamEntry,
        id: Option<DocId>,
    ) -> StoreResult<Option<Delivery>> {
        let Some(id) = id else {
            self.ack(&entry).await;
            return Ok(None);
        };
        if let Some(mut delivery) = self.durable.claim_by_id(id).await? {
            delivery.entry = Some(entry);
            return Ok(Some(delivery));
        }
        match self.durable.store().job(id).await? {
            Some(job) if job.state == JobState::Running => {}
            _ => self.ack(&entry).await,
        }
        Ok(None)
    }

    /// Acknowledges and deletes an entry (errors only logged: an entry left behind is
    /// acknowledged when it is next delivered, since its job is then finished).
    async fn ack(&self, entry: &StreamEntry) {
        let acked = self
            .call(
                "XACK",
                self.client()
                    .xack::<i64, _, _, _>(&entry.stream, GROUP, entry.id.as_str()),
            )
            .await;
        let deleted = self
            .call(
                "XDEL",
                self.client()
                    .xdel::<i64, _, _>(&entry.stream, entry.id.as_str()),
            )
            .await;
        if let Err(e) = acked.and(deleted) {
            tracing::debug!(error = %e, "job queue: entry not acknowledged yet");
        }
    }

    /// Appends a job that failed for good to the dead-letter stream.
    async fn dead_letter(&self, job: &Job) {
        let fields = vec![
            ("id", job.id.to_hex()),
            ("kind", job.kind.clone()),
            ("attempts", job.attempts.to_string()),
            ("error", job.last_error.clone().unwrap_or_default()),
        ];
        let added = self
            .call(
                "XADD dead-letter",
                self.client().xadd::<String, _, _, _, _>(
                    DEAD_LETTER_STREAM,
                    false,
                    // Keep the dead-letter stream bounded (approximately).
                    ("MAXLEN", "~", 10_000),
                    "*",
                    fields,
                ),
            )
            .await;
        if let Err(error) = added {
            tracing::warn!(job = %job.id, %error, "job queue: failed job not added to the dead-letter stream (it is failed in the store)");
        }
    }

    /// At most once per visibility timeout: removes the names of consumers idle for twice that
    /// long with nothing pending (processes gone for good).
    async fn prune_consumers(&self, streams: &[String]) {
        let every = self.durable.options().visibility_timeout;
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < every) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        for stream in streams {
            match crate::runtime::stream_group::prune_idle_consumers(
                &self.redis,
                stream,
                GROUP,
                self.consumer(),
                every * 2,
            )
            .await
            {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(%stream, consumers = ?removed, "job queue: removed the names of workers that stopped");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%stream, error = %e, "job queue: consumer names not pruned this time")
                }
            }
        }
    }

    /// Entries idle longer than the visibility timeout (their consumer died), then new entries.
    async fn next_from_redis(&self, kinds: &[String]) -> Result<Option<Delivery>, NextError> {
        self.promote_due().await?;
        let streams: Vec<String> = kinds.iter().map(|k| stream_key(k)).collect();
        for stream in &streams {
            self.ensure_group(stream).await?;
        }
        let idle_ms = self.durable.options().visibility_timeout.as_millis() as u64;
        self.prune_consumers(&streams).await;
        for stream in &streams {
            // One at a time: claimed entries are ours until handled, so take only what we run.
            for _ in 0..5 {
                let reply: Value = self
                    .call(
                        "XAUTOCLAIM",
                        self.client().xautoclaim::<Value, _, _, _, _>(
                            stream.as_str(),
                            GROUP,
                            self.consumer(),
                            idle_ms,
                            "0-0",
                            Some(1),
                            false,
                        ),
                    )
                    .await?;
                let entries = autoclaimed_entries(reply);
                if entries.is_empty() {
                    break;
                }
                for (id, job) in entries {
                    let entry = StreamEntry {
                        stream: stream.clone(),
                        id,
                    };
                    tracing::info!(stream = %entry.stream, entry = %entry.id, "job queue: took over an entry whose consumer stopped");
                    if let Some(d) = self.deliver(entry, job).await? {
                        return Ok(Some(d));
                    }
                }
            }
        }
        for _ in 0..10 {
            let ids = vec![">"; streams.len()];
            let reply: Value = self
                .call(
                    "XREADGROUP",
                    self.client().xreadgroup::<Value, _, _, _, _>(
                        GROUP,
                        self.consumer(),
                        Some(1),
                        None,
                        false,
                        streams.clone(),
                        ids,
                    ),
                )
                .await?;
            let entries = read_entries(reply);
            if entries.is_empty() {
                return Ok(None);
            }
            for (stream, id, job) in entries {
                if let Some(d) = self.deliver(StreamEntry { stream, id }, job).await? {
                    return Ok(Some(d));
                }
            }
        }
        Ok(None)
    }
}

/// Why reading from Redis stopped: Redis itself (fall back to the store sweep) or the store
/// (report it).
enum NextError {
    Redis(String),
    Store(crate::store::StoreError),
}

impl From<String> for NextError {
    fn from(e: String) -> Self {
        NextError::Redis(e)
    }
}

impl From<crate::store::StoreError> for NextError {
    fn from(e: crate::store::StoreError) -> Self {
        NextError::Store(e)
    }
}

/// The job id field of an entry's field list (`[f1, v1, f2, v2, …]` or a map).
fn entry_job_id(fields: Value) -> Option<DocId> {
    let pairs: Vec<(String, String)> = match fields {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_string()?)))
            .collect(),
        Value::Array(values) => values
            .chunks(2)
            .filter_map(|c| Some((c.first()?.as_string()?, c.get(1)?.as_string()?)))
            .collect(),
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| DocId::parse(&v))
}

/// One entry `[id, fields]`; `None` for a deleted entry (nil).
fn entry(value: Value) -> Option<(String, Option<DocId>)> {
    let mut parts = match value {
        Value::Array(parts) => parts.into_iter(),
        _ => return None,
    };
    let id = parts.next()?.as_string()?;
    let job = parts.next().and_then(entry_job_id);
    Some((id, job))
}

/// `XAUTOCLAIM`'s reply `[next, [entries…], [deleted…]]` as (entry id, job id) pairs.
fn autoclaimed_entries(reply: Value) -> Vec<(String, Option<DocId>)> {
    match reply {
        Value::Array(parts) => parts
            .into_iter()
            .nth(1)
            .map(|entries| entries.into_array().into_iter().filter_map(entry).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// `XREADGROUP`'s reply (`[[stream, [entries…]], …]`, or a map in RESP3; nil when empty) as
/// (stream, entry id, job id).
fn read_entries(reply: Value) -> Vec<(String, String, Option<DocId>)> {
    let per_stream: Vec<(String, Value)> = match reply {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v)))
            .collect(),
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| {
                let mut parts = s.into_array().into_iter();
                Some((parts.next()?.as_string()?, parts.next()?))
            })
            .collect(),
        _ => Vec::new(),
    };
    per_stream
        .into_iter()
        .flat_map(|(stream, entries)| {
            entries
                .into_array()
                .into_iter()
                .filter_map(entry)
                .map(move |(id, job)| (stream.clone(), id, job))
        })
        .collect()
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    async fn enqueue(&self, job: NewJob) -> StoreResult<DocId> {
        if !self.redis.is_connected() {
            self.durable.insert(&job, JobDispatch::Store).await?;
            self.note_redis(Err("redis disconnected"));
            tracing::warn!(job = %job.id, kind = %job.kind, "job queue: redis is down; job queued in the store");
            self.durable.wake();
            return Ok(job.id);
        }
        // The store first: if this process dies before the XADD, the sweep still finds the job.
        self.durable.insert(&job, JobDispatch::Redis).await?;
        self.dispatch(&job.kind, job.id, 0).await;
        // A local idle worker reads the stream now instead of at its next poll (other
        // instances pick it up at theirs).
        self.durable.wake();
        Ok(job.id)
    }

    async fn next(&self, kinds: &[String]) -> StoreResult<Option<Delivery>> {
        for id in self.durable.fail_abandoned().await? {
            if let Some(job) = self.durable.store().job(id).await? {
                self.dead_letter(&job).await;
            }
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        let mut redis_answers = false;
        if self.redis.is_connected() {
            match self.next_from_redis(kinds).await {
                Ok(Some(delivery)) => {
                    self.note_redis(Ok(()));
                    return Ok(Some(delivery));
                }
                Ok(None) => {
                    self.note_redis(Ok(()));
                    redis_answers = true;
                }
                Err(NextError::Store(e)) => return Err(e),
                Err(NextError::Redis(error)) => self.note_redis(Err(&error)),
            }
        } else {
            self.note_redis(Err("redis disconnected"));
        }
        // While Redis answers, its jobs are left to it for the grace period; while it does
        // not, nothing else can deliver them, so the store takes them at once.
        let grace = if redis_answers {
            self.durable.options().redis_grace
        } else {
            Duration::ZERO
        };
        self.durable.sweep(kinds, grace).await
    }

    async fn heartbeat(
        &self,
        delivery: &Delivery,
        progress: Option<(u8, Option<&str>)>,
    ) -> StoreResult<bool> {
        let held = self.durable.renew(delivery, progress).await?;
        if held && let Some(entry) = &delivery.entry {
            // Resets the entry's idle time so XAUTOCLAIM leaves it to us.
            let _ = self
                .call(
                    "XCLAIM",
                    self.client().xclaim::<Value, _, _, _, _>(
                        entry.stream.as_str(),
                        GROUP,
                        self.consumer(),
                        0,
                        entry.id.as_str(),
                        None,
                        None,
                        None,
                        false,
                        true,
                    ),
                )
                .await;
        }
        Ok(held)
    }

    async fn complete(&self, delivery: &Delivery, result: serde_json::Value) -> StoreResult<bool> {
        let done = self.durable.complete(delivery, result).await?;
        if done && let Some(entry) = &delivery.entry {
            self.ack(entry).await;
        }
        Ok(done)
    }

    async fn fail(&self, delivery: &Delivery, error: &JobError) -> StoreResult<FailOutcome> {
        let outcome = self
            .durable
            .fail_with(delivery, error, JobDispatch::Redis)
            .await?;
        match outcome {
            FailOutcome::Retrying { at } => {
                self.dispatch(&delivery.job.kind, delivery.job.id, at).await;
            }
            FailOutcome::Failed => {
                if let Some(job) = self.durable.store().job(delivery.job.id).await? {
                    self.dead_letter(&job).await;
                }
            }
            FailOutcome::LeaseLost => return Ok(outcome),
        }
        if let Some(entry) = &delivery.entry {
            self.ack(entry).await;
        }
        Ok(outcome)
    }

    async fn release(&self, delivery: &Delivery) -> StoreResult<bool> {
        let released = self
            .durable
            .release_with(delivery, JobDispatch::Redis)
            .await?;
        if released {
            self.dispatch(&delivery.job.kind, delivery.job.id, 0).await;
            if let Some(entry) = &delivery.entry {
                self.ack(entry).await;
            }
        }
        Ok(released)
    }

    async fn job(&self, id: DocId) -> StoreResult<Option<Job>> {
        self.durable.job(id).await
    }

    async fn counts(&self) -> StoreResult<JobCounts> {
        self.durable.counts().await
    }

    async fn wait_for_work(&self, max: Duration) {
        self.durable.wait_for_work(max).await
    }

    fn options(&self) -> &QueueOptions {
        self.durable.options()
    }

    fn backend(&self) -> &'static str {
        "redis streams (store sweep while redis is down)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn every_queue_key_lives_in_one_cluster_slot() {
        let slot = fred::util::redis_keyslot(DELAYED_SET.as_bytes());
        for key in [
            DEAD_LETTER_STREAM.to_string(),
            stream_key("ai-analysis"),
            stream_key("report"),
        ] {
            assert_eq!(fred::util::redis_keyslot(key.as_bytes()), slot, "{key}");
        }
    }

    #[test]
    fn stream_replies_are_parsed_in_both_shapes() {
        let id = DocId::new();
        let entry = Value::Array(vec![s("1-0"), Value::Array(vec![s("id"), s(&id.to_hex())])]);
        let read = Value::Array(vec![Value::Array(vec![
            s("si:jobs:k"),
            Value::Array(vec![entry.clone()]),
        ])]);
        assert_eq!(
            read_entries(read),
            vec![("si:jobs:k".to_string(), "1-0".to_string(), Some(id))]
        );
        assert!(read_entries(Value::Null).is_empty());
        let claimed = Value::Array(vec![
            s("0-0"),
            Value::Array(vec![entry, Value::Null]),
            Value::Array(vec![s("2-0")]),
        ]);
        assert_eq!(
            autoclaimed_entries(claimed),
            vec![("1-0".to_string(), Some(id))]
        );
        let garbage = Value::Array(vec![s("3-0"), Value::Array(vec![s("id"), s("zz")])]);
        assert_eq!(entry_job_id(Value::Array(vec![s("id"), s("zz")])), None);
        assert_eq!(super::entry(garbage), Some(("3-0".to_string(), None)));
    }
}
