//! The rollup engine: reads the figures of a time range from stored rollups where they are
//! fresh, builds (and stores) the stale buckets, and scans only the raw edges — the same code
//! for every backend. A backend implements the narrow [`RollupPort`]: bucket versions bumped by
//! its ingest writer, rollup blobs with the versions they were built from, a raw scan of time
//! ranges into a [`Sink`], and a dictionary of dense client ids.
//!
//! Freshness: the writer bumps the version of every (project, hour) and (project, 5-minute
//! slot) a write touches, after (or atomically with) storing the documents. A bucket's rollup
//! is fresh iff the version it was built from is still current (a day: the sum of its 24 hour
//! versions, which only grow). A read takes the versions first, then scans; if a write lands in
//! between, the scan sees more than the versions say, the versions have moved on, and the
//! stored rows are stale at once (never wrong). A project's epoch, raised by purges and clears,
//! keeps a build that overlapped them from storing figures of deleted data.
//!
//! Builds are batched: every stale hour, 5-minute slot and day of a read, and its raw edges,
//! come from one scan of their time ranges (one query per channel on MongoDB, where a query
//! costs more than the rows it returns), split by timestamp into one fold per bucket, and are
//! stored together (a large build, the first read of a big database, scans and stores a few days
//! at a time to bound its memory). One build per project at a time in a process; others wait
//! and reuse it.

use super::{
    plan::{DAY, HOUR, SLOT, day_version, plan, spans_of},
    rollup::{
        Aggs, ErrorRow, FMT, Folder, Part, SEGMENT_DIMS, Visitor, corrupt, decode_into,
        decode_properties_of, decode_segment, encode,
    },
    series::{SeriesSource, UnitCounts, VitalsUnit},
};
use crate::domain::{
    analytics::{
        BreakdownRow, Dimension, ErrorDetail, ErrorFilters, ErrorsReport, EventDetail,
        EventFilters, EventsReport, EventsSummary, PageViewFigures, PageViewFilters,
        PageViewsReport, PerformanceFilters, PerformanceReport, REPORT_TOP, RecentPaging,
        TimeRange, same_page,
    },
    error_groups::ErrorFigures,
    segment::SegmentFilters,
    timestamp::now_ms,
};
use crate::store::StoreResult;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Stored code of the hour grain.
pub(crate) const HOUR_GRAIN: i64 = 0;
/// Stored code of the day grain (merged from its 24 hours).
pub(crate) const DAY_GRAIN: i64 = 1;
/// Stored code of the 5-minute grain.
pub(crate) const SLOT_GRAIN: i64 = 2;

/// One stored rollup blob.
#[derive(Debug, Clone)]
pub(crate) struct StoredRollup {
    pub part: Part,
    pub grain: i64,
    pub bucket: i64,
    pub ver: i64,
    pub fmt: i64,
    pub data: Vec<u8>,
}

/// A rollup to store: every part of one bucket, built from version `ver`.
#[derive(Debug)]
pub(crate) struct NewRollup {
    pub grain: i64,
    pub bucket: i64,
    pub ver: i64,
    pub blobs: Vec<(Part, Vec<u8>)>,
}

/// What a raw scan feeds: documents one by one, of the channels the sink wants.
pub(crate) trait Sink: Send {
    /// True when the documents of `part`'s channel are wanted.
    fn wants(&self, part: Part) -> bool;
    /// True when page views should come with dense client ids where the store has them.
    fn wants_visitors(&self) -> bool;
    /// One page view with its `sessionId` when it has one; `dims` are the raw stored values of
    /// `Dimension::ALL`, in that order.
    fn pageview(
        &mut self,
        ts: i64,
        url: &str,
        visitor: Visitor<'_>,
        session: Option<&str>,
        dims: [Option<&str>; 8],
    );
    /// One event with its `durationMs` when it carries a number.
    fn event(&mut self, ts: i64, name: &str, duration: Option<f64>);
    /// True when events should also come with their top-level properties ([`Sink::properties`]).
    fn wants_properties(&self) -> bool;
    /// The top-level properties of an event named `name` (objects only).
    fn properties(&mut self, ts: i64, name: &str, properties: &serde_json::Map<String, Value>);
    fn error(&mut self, ts: i64, e: &ErrorRow<'_>);
    fn vitals(&mut self, ts: i64, values: [Option<f64>; 5]);
}

impl Sink for Folder {
    fn wants(&self, part: Part) -> bool {
        Folder::wants(self, part)
    }
    fn wants_visitors(&self) -> bool {
        Folder::wants_visitors(self)
    }
    fn pageview(
        &mut self,
        ts: i64,
        url: &str,
        visitor: Visitor<'_>,
        session: Option<&str>,
        dims: [Option<&str>; 8],
    ) {
        Folder::pageview(self, ts, url, visitor, session, dims)
    }
    fn event(&mut self, ts: i64, name: &str, duration: Option<f64>) {
        Folder::event(self, ts, name, duration)
    }
    fn wants_properties(&self) -> bool {
        Folder::wants_properties(self)
    }
    fn properties(&mut self, ts: i64, name: &str, properties: &serde_json::Map<String, Value>) {
        Folder::properties(self, ts, name, properties)
    }
    fn error(&mut self, ts: i64, e: &ErrorRow<'_>) {
        Folder::error(self, ts, e)
    }
    fn vitals(&mut self, ts: i64, values: [Option<f64>; 5]) {
        Folder::vitals(self, ts, values)
    }
}

/// What a backend provides for rollups. Every method is a plain read or write; the engine
/// decides what is fresh, what to build and how the figures combine. A port is a cheap handle
/// (clones share one store), so what a read built is stored by a task of its own.
#[async_trait]
pub(crate) trait RollupPort: Clone + Send + Sync + 'static {
    /// The backend's key for a project.
    type Key: Copy + Eq + Hash + Send + Sync + std::fmt::Debug + 'static;

    /// True when every write of analytics documents bumps versions, so a bucket without a
    /// version holds nothing (SQLite). False where documents may predate the versions (a
    /// SuperInsights 1.x MongoDB database): such buckets are built once and stored at version 0.
    const UNVERSIONED_IS_EMPTY: bool;

    /// The single-flight gates of this store's builds.
    fn build_locks(&self) -> &BuildLocks<Self::Key>;

    /// Current versions of the buckets `[first, last]` of a versioned grain (hours or slots);
    /// buckets without a version are absent.
    async fn versions(
        &self,
        key: Self::Key,
        grain: i64,
        first: i64,
        last: i64,
    ) -> StoreResult<HashMap<i64, i64>>;

    /// The project's rollup epoch (0 before the first purge or clear).
    async fn epoch(&self, key: Self::Key) -> StoreResult<i64>;

    /// Stored rollups of `parts` in the spans `(grain, first, last)`.
    async fn stored(
        &self,
        key: Self::Key,
        parts: &[Part],
        spans: &[(i64, i64, i64)],
    ) -> StoreResult<Vec<StoredRollup>>;

    /// Feeds the raw documents in `ranges` (inclusive ms, sorted, disjoint) of the channels the
    /// sink wants, in any order.
    async fn scan(
        &self,
        key: Self::Key,
        ranges: &[(i64, i64)],
        sink: &mut (dyn Sink + Send),
    ) -> StoreResult<()>;

    /// Feeds the page views of `range` whose client id is `client` (all when `None`; bound,
    /// never spliced), with their URL, client id by name ([`Visitor::Unnamed`]), session id and
    /// stored breakdown fields; the engine matches every other filter itself.
    async fn scan_pageviews(
        &self,
        key: Self::Key,
        range: TimeRange,
        client: Option<&str>,
        sink: &mut (dyn Sink + Send),
    ) -> StoreResult<()>;

    /// Feeds the web-vitals documents of `range` that match `filters` (compiled by the backend
    /// into its query, every value bound).
    async fn scan_performance(
        &self,
        key: Self::Key,
        range: TimeRange,
        filters: &PerformanceFilters,
        f: &mut Folder,
    ) -> StoreResult<()>;

    /// Feeds the events of `range` named `name` (every name when `None`) that match `segment`
    /// (compiled by the backend into its query, every value bound), with their properties when
    /// the folder wants them.
    async fn scan_events(
        &self,
        key: Self::Key,
        range: TimeRange,
        name: Option<&str>,
        segment: &SegmentFilters,
        f: &mut Folder,
    ) -> StoreResult<()>;

    /// Feeds the errors of `range` that match `filters` (compiled by the backend into its
    /// query, every value bound).
    async fn scan_errors(
        &self,
        key: Self::Key,
        range: TimeRange,
        filters: &ErrorFilters,
        f: &mut Folder,
    ) -> StoreResult<()>;

    /// Dense ids of client ids; with `create`, ids are given to those that have none (every
    /// name then has one), otherwise unknown names are left out.
    async fn client_ids(
        &self,
        key: Self::Key,
        names: &[String],
        create: bool,
    ) -> StoreResult<HashMap<String, u32>>;

    /// Stores rollups built in epoch `epoch`, unless the project's epoch moved meanwhile (then
    /// none). A backend may skip a row whose version is no longer current (it would be stale).
    /// Returns how many rows it stored.
    async fn store(&self, key: Self::Key, epoch: i64, rows: Vec<NewRollup>) -> StoreResult<usize>;
}

/// One build per project at a time in this process; others wait, then read what it built.
/// An entry is removed when its last holder leaves, also when a request is dropped mid-build.
/// Also counts the stores of built rollups still running in the background.
pub(crate) struct BuildLocks<K> {
    gates: Arc<Gates<K>>,
    storing: Arc<Storing>,
}

type Gates<K> = Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>;

/// Background stores in flight, and a wake-up for [`BuildLocks::settled`].
#[derive(Default)]
struct Storing {
    running: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

impl<K> Default for BuildLocks<K> {
    fn default() -> Self {
        Self {
            gates: Arc::new(Mutex::new(HashMap::new())),
            storing: Arc::default(),
        }
    }
}

impl<K> BuildLocks<K> {
    /// Runs `store` in a task of its own, counted until it ends (also when it panics or the
    /// runtime drops it).
    fn spawn_store(
        &self,
        store: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        /// Uncounts its store when dropped, however the task ends.
        struct Running(Arc<Storing>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0
                    .running
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                self.0.done.notify_waiters();
            }
        }
        self.storing
            .running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let running = Running(self.storing.clone());
        crate::tasks::spawn_handle("rollup_store", async move {
            let _running = running;
            store.await;
        })
    }

    /// Waits until every rollup built so far is stored (or failed to be): for commands that
    /// exit after building (`seed-demo`) and for tests that look at stored rows.
    pub(crate) async fn settled(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let done = self.storing.done.notified();
            if self.storing.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

impl<K: Copy + Eq + Hash> BuildLocks<K> {
    /// Waits for the project's gate and holds it: until the build is done, and when it built
    /// something, until that is stored.
    async fn hold(&self, key: K) -> Held<K> {
        let gate = self
            .gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let turn = BuildTurn {
            gates: self.gates.clone(),
            key,
            gate,
        };
        Held {
            _guard: turn.gate.clone().lock_owned().await,
            _turn: turn,
        }
    }

    /// Builds in flight or waiting (for tests: no entry outlives its build).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.gates.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A caller's place at one build gate; leaving (or being dropped) forgets the gate once nobody
/// else holds it.
struct BuildTurn<K: Copy + Eq + Hash> {
    gates: Arc<Gates<K>>,
    key: K,
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// A held build gate (the guard is released before the turn is left: fields drop in order).
struct Held<K: Copy + Eq + Hash> {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    _turn: BuildTurn<K>,
}

impl<K: Copy + Eq + Hash> Drop for BuildTurn<K> {
    fn drop(&mut self) {
        let mut map = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours. Others waiting hold more.
        if Arc::strong_count(&self.gate) <= 2 {
            map.remove(&self.key);
        }
    }
}

/// One time span a scan folds: a bucket to build (`bucket` = its grain and number) or a raw
/// edge (`None`).
struct Target {
    from: i64,
    to: i64,
    fold: Folder,
    bucket: Option<(i64, i64)>,
}

/// Routes scanned documents by timestamp to the fold of the bucket or edge holding them.
struct Splitter {
    /// Sorted by `from`, disjoint.
    targets: Vec<Target>,
}

impl Splitter {
    fn new(mut targets: Vec<Target>) -> Self {
        targets.sort_by_key(|t| t.from);
        Self { targets }
    }

    fn target(&mut self, ts: i64, part: Part) -> Option<&mut Folder> {
        let i = self.targets.partition_point(|t| t.from <= ts);
        let t = self.targets.get_mut(i.checked_sub(1)?)?;
        (ts <= t.to && t.fold.wants(part)).then_some(&mut t.fold)
    }

    /// The time ranges to scan: the targets, adjacent ones joined.
    fn ranges(&self) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for t in &self.targets {
            match out.last_mut() {
                Some(last) if last.1 + 1 == t.from => last.1 = t.to,
                _ => out.push((t.from, t.to)),
            }
        }
        out
    }
}

impl Sink for Splitter {
    fn wants(&self, part: Part) -> bool {
        self.targets.iter().any(|t| t.fold.wants(part))
    }
    fn wants_visitors(&self) -> bool {
        self.targets.iter().any(|t| t.fold.wants_visitors())
    }
    fn pageview(
        &mut self,
        ts: i64,
        url: &str,
        visitor: Visitor<'_>,
        session: Option<&str>,
        dims: [Option<&str>; 8],
    ) {
        if let Some(f) = self.target(ts, Part::Pageviews) {
            f.pageview(ts, url, visitor, session, dims);
        }
    }
    fn event(&mut self, ts: i64, name: &str, duration: Option<f64>) {
        if let Some(f) = self.target(ts, Part::Events) {
            f.event(ts, name, duration);
        }
    }
    fn wants_properties(&self) -> bool {
        self.targets.iter().any(|t| t.fold.wants_properties())
    }
    fn properties(&mut self, ts: i64, name: &str, properties: &serde_json::Map<String, Value>) {
        if let Some(f) = self.target(ts, Part::Events) {
            f.properties(ts, name, properties);
        }
    }
    fn error(&mut self, ts: i64, e: &ErrorRow<'_>) {
        if let Some(f) = self.target(ts, Part::Errors) {
            f.error(ts, e);
        }
    }
    fn vitals(&mut self, ts: i64, values: [Option<f64>; 5]) {
        if let Some(f) = self.target(ts, Part::Performance) {
            f.vitals(ts, values);
        }
    }
}

/// Gives page views whose client id had no dense id at scan time the ids they have now
/// (`create`: new ids for all). Names still without one stay counted by name.
async fn resolve_clients<P: RollupPort>(
    port: &P,
    key: P::Key,
    aggs: &mut [&mut Aggs],
    create: bool,
) -> StoreResult<()> {
    let mut names: Vec<String> = aggs.iter().flat_map(|a| a.unnamed_clients()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    let ids = port.client_ids(key, &names, create).await?;
    if create && ids.len() != names.len() {
        return Err(corrupt("client dictionary lost an entry"));
    }
    for a in aggs.iter_mut() {
        a.resolve(&ids);
    }
    Ok(())
}

/// What one read of the stored rollups found for a range's plan.
struct Reading {
    epoch: i64,
    /// Figures of the fresh buckets.
    out: Aggs,
    /// Hour versions over the plan's days and hours; slot versions over its slots.
    hour_vers: HashMap<i64, i64>,
    slot_vers: HashMap<i64, i64>,
    stale: Vec<(i64, i64)>,
    /// With [`aggregate_each`]: every fresh bucket's figures on their own, by the time span
    /// (inclusive ms) they cover, instead of merged into `out`.
    spans: Option<Vec<Span>>,
}

/// A bucket's or raw edge's figures with the time span (inclusive ms) they cover.
type Span = ((i64, i64), Aggs);

/// The time span (inclusive ms) of a bucket.
fn span_of(grain: i64, bucket: i64) -> (i64, i64) {
    let len = match grain {
        DAY_GRAIN => DAY,
        SLOT_GRAIN => SLOT,
        _ => HOUR,
    };
    (bucket * len, bucket * len + len - 1)
}

fn version_of(r: &Reading, grain: i64, bucket: i64) -> i64 {
    match grain {
        DAY_GRAIN => day_version(&r.hour_vers, bucket),
        SLOT_GRAIN => r.slot_vers.get(&bucket).copied().unwrap_or(0),
        _ => r.hour_vers.get(&bucket).copied().unwrap_or(0),
    }
}

/// What a read decodes of a stored part whose figures are keyed: everything, or only one key's.
#[derive(Clone, Copy, Debug)]
enum Pick<'a> {
    All,
    /// Of `Segments`, one dimension (an index into `Dimension::ALL`, one of `SEGMENT_DIMS`)
    /// and raw stored value.
    Segment(usize, &'a str),
    /// Of `EventProperties`, one event name.
    EventName(&'a str),
    /// Of `Pageviews` and `Pages`, the page views of the URLs starting with this prefix: each
    /// bucket (or raw edge, all within one UTC day) restricted before it is merged.
    UrlPrefix(&'a str),
}

impl Pick<'_> {
    /// Restricts one bucket's (or edge's) figures, all of UTC day `day`, to what is picked.
    fn restrict(self, a: &mut Aggs, day: i64) {
        if let Pick::UrlPrefix(prefix) = self {
            a.keep_urls(prefix, day);
        }
    }

    /// Decodes one fresh bucket's rows (of UTC day `day`) into `out`, what is picked of them.
    fn decode_bucket(self, out: &mut Aggs, rows: &[StoredRollup], day: i64) -> StoreResult<()> {
        if let Pick::UrlPrefix(prefix) = self {
            // Restricted on its own before merging: the prefix's views keep their day.
            let mut one = Aggs::default();
            for row in rows {
                decode_into(&mut one, row.part, &row.data)?;
            }
            one.keep_urls(prefix, day);
            out.merge(one);
            return Ok(());
        }
        for row in rows {
            self.decode(out, row.part, &row.data)?;
        }
        Ok(())
    }

    fn decode(self, a: &mut Aggs, part: Part, data: &[u8]) -> StoreResult<()> {
        match (self, part) {
            (Pick::Segment(dim, value), Part::Segments) => decode_segment(a, data, dim, value),
            (Pick::EventName(name), Part::EventProperties) => decode_properties_of(a, data, name),
            _ => decode_into(a, part, data),
        }
    }
}

/// One segment of the `Segments` part: a dimension (an index into `Dimension::ALL`, one of
/// `SEGMENT_DIMS`) and a raw stored value.
type Segment<'a> = Option<(usize, &'a str)>;

/// Reads the epoch, then the versions, then the stored rows of `parts` (in that order: a row
/// stored meanwhile is newer than the version read, looks stale and is rebuilt; never the
/// other way round), and decodes the fresh ones (of keyed parts, what `pick` asks). A bucket is
/// fresh when every asked part's row is.
async fn read<P: RollupPort>(
    port: &P,
    key: P::Key,
    plan: &super::plan::Plan,
    parts: &[Part],
    pick: Pick<'_>,
    by_span: bool,
) -> StoreResult<Reading> {
    let epoch = port.epoch(key).await?;
    let mut r = Reading {
        epoch,
        out: Aggs::default(),
        hour_vers: HashMap::new(),
        slot_vers: HashMap::new(),
        stale: Vec::new(),
        spans: by_span.then(Vec::new),
    };
    let first = (plan.hours.first().copied())
        .into_iter()
        .chain(plan.days.first().map(|d| d * 24))
        .min();
    let last = (plan.hours.last().copied())
        .into_iter()
        .chain(plan.days.last().map(|d| d * 24 + 23))
        .max();
    if let (Some(a), Some(b)) = (first, last) {
        r.hour_vers = port.versions(key, HOUR_GRAIN, a, b).await?;
    }
    let slot_spans = spans_of(SLOT_GRAIN, &plan.slots);
    for &(_, a, b) in &slot_spans {
        r.slot_vers
            .extend(port.versions(key, SLOT_GRAIN, a, b).await?);
    }
    let mut spans = spans_of(HOUR_GRAIN, &plan.hours);
    if let (Some(a), Some(b)) = (plan.days.first(), plan.days.last()) {
        spans.push((DAY_GRAIN, *a, *b));
    }
    spans.extend(&slot_spans);
    if spans.is_empty() {
        return Ok(r);
    }
    let mut rows: HashMap<(i64, i64), Vec<StoredRollup>> = HashMap::new();
    for row in port.stored(key, parts, &spans).await? {
        rows.entry((row.grain, row.bucket)).or_default().push(row);
    }
    let buckets = (plan.days.iter().map(|d| (DAY_GRAIN, *d)))
        .chain(plan.hours.iter().map(|h| (HOUR_GRAIN, *h)))
        .chain(plan.slots.iter().map(|s| (SLOT_GRAIN, *s)));
    for (grain, bucket) in buckets {
        let want = version_of(&r, grain, bucket);
        if want == 0 && P::UNVERSIONED_IS_EMPTY {
            continue; // never written: empty
        }
        match rows.get(&(grain, bucket)) {
            Some(found) if all_fresh(found, parts.len(), want) => {
                let day = day_of(grain, bucket);
                match r.spans.as_mut() {
                    Some(spans) => {
                        let mut one = Aggs::default();
                        pick.decode_bucket(&mut one, found, day)?;
                        spans.push((span_of(grain, bucket), one));
                    }
                    None => pick.decode_bucket(&mut r.out, found, day)?,
                }
            }
            _ => r.stale.push((grain, bucket)),
        }
    }
    Ok(r)
}

/// True when a bucket's stored rows are one per asked part (`parts` of them), all built from
/// version `want` in this format.
fn all_fresh(rows: &[StoredRollup], parts: usize, want: i64) -> bool {
    rows.len() == parts && rows.iter().all(|row| row.ver == want && row.fmt == FMT)
}

/// The figures of `parts` over `range`: rollups where fresh, built where stale, raw edges.
pub(crate) async fn aggregate<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    parts: &[Part],
) -> StoreResult<Aggs> {
    aggregate_of(port, key, range, parts, Pick::All).await
}

/// The figures of the page views whose dimension `dim` (one of `SEGMENT_DIMS`) shows `value`
/// (case aside) over `range`, from the `Segments` part: their `Pageviews`, `Pages`,
/// `Breakdowns` and `Visits` figures, and how many distinct stored values showed `value`.
/// With more than one ("Firefox" and "firefox"), the visits are not exact (a session's page
/// views under both would be joined by a scan, but are two visits here); everything else is.
async fn aggregate_segment<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    dim: usize,
    value: &str,
) -> StoreResult<(Aggs, usize)> {
    let mut a = aggregate_of(
        port,
        key,
        range,
        &[Part::Segments],
        Pick::Segment(dim, value),
    )
    .await?;
    // Built buckets and raw edges come with every segment; keep the values asked for.
    let values = std::mem::take(&mut a.segments[dim]);
    a.segments = Default::default();
    let mut matched = 0;
    for (stored, sub) in values {
        if Dimension::ALL[dim].matches(Some(&stored), value) {
            matched += 1;
            a.merge(sub);
        }
    }
    Ok((a, matched))
}

async fn aggregate_of<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    parts: &[Part],
    pick: Pick<'_>,
) -> StoreResult<Aggs> {
    let plan = plan(range, now_ms());
    Ok(gather(port, key, &plan, parts, pick, false).await?.0)
}

/// Reads `plan`'s fresh buckets, builds the stale ones (waiting for the project's build gate
/// first, then reading again: another request may have built them meanwhile) and folds the raw
/// edges: the figures merged, or with `by_span` each bucket's and edge's on its own.
async fn gather<P: RollupPort>(
    port: &P,
    key: P::Key,
    plan: &super::plan::Plan,
    parts: &[Part],
    pick: Pick<'_>,
    by_span: bool,
) -> StoreResult<(Aggs, Vec<Span>)> {
    let mut r = read(port, key, plan, parts, pick, by_span).await?;
    let mut held = None;
    if !r.stale.is_empty() {
        held = Some(port.build_locks().hold(key).await);
        r = read(port, key, plan, parts, pick, by_span).await?;
    }
    build(port, key, plan, r, parts, pick, held).await
}

/// The figures of `parts` over each of `ranges` (adjacent hours, say, and a day made of some of
/// them), from one read of the stored rollups of their union, at most one build of its stale
/// buckets and one scan of its raw edges, where one [`aggregate`] per range would read (and on
/// a cold start build) once each. The union is read in hours and 5-minute slots (never whole
/// days, which a range may cut), so it is meant for a day or two. Each range must begin at a
/// whole hour or at the union's start, and end just before a whole hour or at the union's end;
/// otherwise the answer is an error, never a range's figures with a part of a bucket missing.
pub(crate) async fn aggregate_each<P: RollupPort>(
    port: &P,
    key: P::Key,
    ranges: &[TimeRange],
    parts: &[Part],
) -> StoreResult<Vec<Aggs>> {
    let (Some(start), Some(end)) = (
        ranges.iter().map(|r| r.start_ms).min(),
        ranges.iter().map(|r| r.end_ms).max(),
    ) else {
        return Ok(Vec::new());
    };
    let mut plan = plan(
        TimeRange {
            start_ms: start,
            end_ms: end,
        },
        now_ms(),
    );
    for day in std::mem::take(&mut plan.days) {
        plan.hours.extend(day * 24..day * 24 + 24);
    }
    plan.hours.sort_unstable();
    // Raw edges may be cut anywhere (still one scan): cut them at every range's ends, so an
    // edge is never shared by two ranges, whatever clock the caller's ranges were made on.
    let cuts: Vec<i64> = (ranges.iter())
        .flat_map(|r| [r.start_ms, r.end_ms + 1])
        .collect();
    plan.edges = cut_at(&plan.edges, &cuts);
    let (_, spans) = gather(port, key, &plan, parts, Pick::All, true).await?;
    let mut out = vec![Aggs::default(); ranges.len()];
    for ((from, to), figures) in spans {
        for (range, into) in ranges.iter().zip(out.iter_mut()) {
            let inside = range.start_ms <= from && to <= range.end_ms;
            if inside {
                into.merge(figures.clone());
            } else if from <= range.end_ms && range.start_ms <= to {
                return Err(corrupt("a range of aggregate_each cuts a bucket"));
            }
        }
    }
    Ok(out)
}

/// What one scan of a build covers: stale buckets (grain, number) and raw edges (ms ranges).
#[derive(Default)]
struct Group {
    stale: Vec<(i64, i64)>,
    edges: Vec<(i64, i64)>,
}

/// A built bucket to store, built from version `ver`; `counts` when its figures belong in the
/// read's answer (an hour inside a day being built is answered through its day).
struct Built {
    grain: i64,
    bucket: i64,
    ver: i64,
    aggs: Aggs,
    counts: bool,
}

/// Builds larger than this many hours' worth of buckets (a day counts 24) are split by UTC day
/// and scanned a few days at a time, each scan's buckets stored while the next is scanned, so
/// memory stays bounded whatever the range (the first read of a large imported database);
/// smaller ones, the usual few stale slots and hours, in one scan.
pub(crate) const CHUNKED_BUILD_HOURS: usize = 48;

/// Documents one scan of a large build aims at, and whose built buckets may wait to be stored
/// while it scans on; beyond that the read waits for the oldest of its stores. This bounds the
/// memory of a large build (one scan is about a day of a 10-million-document month). Smaller
/// builds never wait.
const STORE_BACKLOG_DOCUMENTS: u64 = 250_000;

/// Builds the stale buckets of a reading and folds the plan's raw edges; stores what was built
/// in the background; returns the reading's figures with the built buckets' and the edges'
/// added (merged, or by span when the reading keeps spans).
async fn build<P: RollupPort>(
    port: &P,
    key: P::Key,
    plan: &super::plan::Plan,
    mut r: Reading,
    parts: &[Part],
    pick: Pick<'_>,
    held: Option<Held<P::Key>>,
) -> StoreResult<(Aggs, Vec<Span>)> {
    let mut out = std::mem::take(&mut r.out);
    let mut spans = r.spans.take();
    let mut pending = scan_groups(&r.stale, &split_at_midnight(&plan.edges));
    // Every store holds the project's build gate until it ends, so a read that finds these
    // buckets stale meanwhile waits for them instead of building them again (one build per
    // project at a time; its scans' stores may overlap).
    let held = held.map(Arc::new);
    let mut storing = std::collections::VecDeque::new();
    let mut edges = Aggs::default();
    // The most documents one UTC day held so far: how many days the next scan can take.
    let (mut scans, mut densest_day) = (0u32, 0u64);
    while !pending.is_empty() {
        // The first day alone; then as many days as fit in `STORE_BACKLOG_DOCUMENTS` at the
        // densest day's pace, or while nothing was found, 2, 4, then 8 days per scan, a known
        // written day (a version) only ever first. Empty or sparse ranges take few queries (on
        // some servers each costs more than its rows), dense data a day at a time.
        let days = match STORE_BACKLOG_DOCUMENTS.checked_div(densest_day) {
            None => 1usize << scans.min(3),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).max(1),
        };
        let g = next_scan(&mut pending, days, densest_day == 0, |g| {
            g.stale
                .iter()
                .any(|&(grain, b)| version_of(&r, grain, b) > 0)
        });
        scans += 1;
        let (built, e) = fold_buckets(port, key, &r, &g.stale, &g.edges, parts, pick).await?;
        let mut per_day: HashMap<i64, u64> = HashMap::new();
        for b in built.iter().filter(|b| b.counts) {
            let day = day_of(b.grain, b.bucket);
            *per_day.entry(day).or_default() += b.aggs.documents();
            let mut figures = b.aggs.clone_parts(parts);
            pick.restrict(&mut figures, day);
            match spans.as_mut() {
                Some(spans) => spans.push((span_of(b.grain, b.bucket), figures)),
                None => out.merge(figures),
            }
        }
        let documents: u64 = per_day.values().sum();
        densest_day = densest_day.max(per_day.into_values().max().unwrap_or(0));
        for (span, figures) in e {
            match spans.as_mut() {
                Some(spans) => spans.push((span, figures)),
                None => edges.merge(figures),
            }
        }
        if built.is_empty() {
            continue;
        }
        while storing.iter().map(|s: &(_, u64)| s.1).sum::<u64>() > STORE_BACKLOG_DOCUMENTS
            && let Some((oldest, _)) = storing.pop_front()
        {
            let _ = oldest.await;
        }
        // Stored by a task of its own: the request answers without waiting for a write lock
        // (the client dictionary's or the rollups').
        let (storer, epoch, held) = (port.clone(), r.epoch, held.clone());
        let store = port.build_locks().spawn_store(async move {
            let _held = held;
            if let Err(e) = store_built(&storer, key, epoch, built).await {
                tracing::warn!(error = %e, project = ?key, "storing built rollups failed; they are built again on the next read");
            }
        });
        storing.push_back((store, documents));
    }
    out.merge(edges);
    let mut spans = spans.unwrap_or_default();
    // After every scan: a client named by a build meanwhile is found here, so it is not
    // counted twice (once by name, once by id).
    let mut all: Vec<&mut Aggs> = std::iter::once(&mut out)
        .chain(spans.iter_mut().map(|(_, a)| a))
        .collect();
    resolve_clients(port, key, &mut all, false).await?;
    Ok((out, spans))
}

/// Takes the next scan off `pending`: up to `days` groups, and while `blind` (nothing found yet)
/// never a `written` group but as the first.
fn next_scan(
    pending: &mut std::collections::VecDeque<Group>,
    days: usize,
    blind: bool,
    written: impl Fn(&Group) -> bool,
) -> Group {
    let mut g = Group::default();
    let mut taken = 0;
    while let Some(next) = pending.front() {
        if taken > 0 && (taken >= days || (blind && written(next))) {
            break;
        }
        if let Some(next) = pending.pop_front() {
            g.stale.extend(next.stale);
            g.edges.extend(next.edges);
            taken += 1;
        }
    }
    g
}

/// `edges` (inclusive ms) cut just before each of `cuts` that falls inside one.
fn cut_at(edges: &[(i64, i64)], cuts: &[i64]) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(edges.len());
    for &(from, to) in edges {
        let mut inside: Vec<i64> = (cuts.iter().copied())
            .filter(|&c| from < c && c <= to)
            .collect();
        inside.sort_unstable();
        inside.dedup();
        let mut start = from;
        for c in inside {
            out.push((start, c - 1));
            start = c;
        }
        out.push((start, to));
    }
    out
}

/// Raw edges cut at UTC midnight, so each lies within one day (a restricting [`Pick`] dates
/// an edge's figures by its day).
fn split_at_midnight(edges: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(edges.len());
    for &(mut from, to) in edges {
        while from.div_euclid(DAY) < to.div_euclid(DAY) {
            let midnight = (from.div_euclid(DAY) + 1) * DAY;
            out.push((from, midnight - 1));
            from = midnight;
        }
        out.push((from, to));
    }
    out
}

/// The UTC day (days since the epoch) a bucket lies in.
fn day_of(grain: i64, bucket: i64) -> i64 {
    match grain {
        DAY_GRAIN => bucket,
        SLOT_GRAIN => (bucket * SLOT).div_euclid(DAY),
        _ => bucket.div_euclid(24),
    }
}

/// The scans of a build in time order: one for a build of up to [`CHUNKED_BUILD_HOURS`], else
/// one per UTC day (which [`build`] joins as the data's density allows).
fn scan_groups(stale: &[(i64, i64)], edges: &[(i64, i64)]) -> std::collections::VecDeque<Group> {
    let hours: usize = (stale.iter())
        .map(|&(grain, _)| if grain == DAY_GRAIN { 24 } else { 1 })
        .sum();
    if hours <= CHUNKED_BUILD_HOURS {
        let everything = Group {
            stale: stale.to_vec(),
            edges: edges.to_vec(),
        };
        return [everything].into();
    }
    let mut by_day: BTreeMap<i64, Group> = BTreeMap::new();
    for &(grain, bucket) in stale {
        let day = day_of(grain, bucket);
        by_day.entry(day).or_default().stale.push((grain, bucket));
    }
    for &(from, to) in edges {
        let day = from.div_euclid(DAY);
        by_day.entry(day).or_default().edges.push((from, to));
    }
    by_day.into_values().collect()
}

/// Builds the buckets `stale` of a reading (a stale day from its fresh stored hours and its
/// stale hours built) and folds the raw `edges`, from one scan of their time ranges. Returns
/// the buckets to store and each edge's figures.
async fn fold_buckets<P: RollupPort>(
    port: &P,
    key: P::Key,
    r: &Reading,
    stale: &[(i64, i64)],
    edges: &[(i64, i64)],
    parts: &[Part],
    pick: Pick<'_>,
) -> StoreResult<(Vec<Built>, Vec<Span>)> {
    // Stale days: their fresh hours are decoded into the day, the others built.
    let mut days: BTreeMap<i64, Aggs> = BTreeMap::new();
    let mut fine: Vec<(i64, i64)> = Vec::new();
    let mut day_hours = HashSet::new();
    for &(grain, bucket) in stale {
        if grain == DAY_GRAIN {
            days.insert(bucket, Aggs::default());
        } else {
            fine.push((grain, bucket));
        }
    }
    if !days.is_empty() {
        let stale_days: Vec<i64> = days.keys().copied().collect();
        let spans: Vec<_> = spans_of(DAY_GRAIN, &stale_days)
            .into_iter()
            .map(|(_, a, b)| (HOUR_GRAIN, a * 24, b * 24 + 23))
            .collect();
        let mut by_hour: HashMap<i64, Vec<StoredRollup>> = HashMap::new();
        for row in port.stored(key, &Part::ALL, &spans).await? {
            by_hour.entry(row.bucket).or_default().push(row);
        }
        for (day, merged) in days.iter_mut() {
            for hour in day * 24..day * 24 + 24 {
                let want = version_of(r, HOUR_GRAIN, hour);
                if want == 0 && P::UNVERSIONED_IS_EMPTY {
                    continue;
                }
                let rows = by_hour.remove(&hour).unwrap_or_default();
                if all_fresh(&rows, Part::ALL.len(), want) {
                    for row in &rows {
                        decode_into(merged, row.part, &row.data)?;
                    }
                } else {
                    fine.push((HOUR_GRAIN, hour));
                    day_hours.insert(hour);
                }
            }
        }
    }

    // One scan for every bucket to build and every edge, split by timestamp.
    let buckets = fine.iter().map(|&(grain, bucket)| {
        let len = if grain == SLOT_GRAIN { SLOT } else { HOUR };
        Target {
            from: bucket * len,
            to: bucket * len + len - 1,
            fold: Folder::new(&Part::ALL),
            bucket: Some((grain, bucket)),
        }
    });
    let edge_targets = edges.iter().map(|&(from, to)| Target {
        from,
        to,
        fold: Folder::new(parts),
        bucket: None,
    });
    let mut splitter = Splitter::new(buckets.chain(edge_targets).collect());
    if !splitter.targets.is_empty() {
        port.scan(key, &splitter.ranges(), &mut splitter).await?;
    }
    let mut built: Vec<Built> = Vec::with_capacity(fine.len() + days.len());
    let mut edge_figures = Vec::with_capacity(edges.len());
    for t in splitter.targets {
        let Some((grain, bucket)) = t.bucket else {
            let mut figures = t.fold.finish();
            pick.restrict(&mut figures, t.from.div_euclid(DAY));
            edge_figures.push(((t.from, t.to), figures));
            continue;
        };
        let (ver, mut aggs) = (version_of(r, grain, bucket), t.fold.finish());
        aggs.close_visits(t.from, t.to);
        let in_day = grain == HOUR_GRAIN && day_hours.contains(&bucket);
        if in_day {
            let day = days
                .get_mut(&bucket.div_euclid(24))
                .ok_or_else(|| corrupt("hour of an unplanned day"))?;
            // An empty hour of a day being stored needs no row of its own: the day's row
            // covers it, and a write into it gives it a version, so the day is rebuilt with it.
            if ver == 0 && aggs.is_empty() {
                continue;
            }
            day.merge(aggs.clone());
        }
        built.push(Built {
            grain,
            bucket,
            ver,
            aggs,
            counts: !in_day,
        });
    }
    for (day, mut merged) in days {
        merged.fold_hists();
        merged.close_visits(day * DAY, day * DAY + DAY - 1);
        built.push(Built {
            grain: DAY_GRAIN,
            bucket: day,
            ver: day_version(&r.hour_vers, day),
            aggs: merged,
            counts: true,
        });
    }
    Ok((built, edge_figures))
}

/// Gives every client id of the built buckets a dense id, encodes them and stores them (unless
/// a purge or clear moved the epoch meanwhile).
async fn store_built<P: RollupPort>(
    port: &P,
    key: P::Key,
    epoch: i64,
    mut built: Vec<Built>,
) -> StoreResult<()> {
    {
        let mut all: Vec<&mut Aggs> = built.iter_mut().map(|b| &mut b.aggs).collect();
        resolve_clients(port, key, &mut all, true).await?;
    }
    let rows = built
        .iter()
        .map(|b| new_rollup(&b.aggs, b.grain, b.bucket, b.ver))
        .collect::<StoreResult<Vec<_>>>()?;
    port.store(key, epoch, rows).await?;
    Ok(())
}

fn new_rollup(a: &Aggs, grain: i64, bucket: i64, ver: i64) -> StoreResult<NewRollup> {
    Ok(NewRollup {
        grain,
        bucket,
        ver,
        blobs: Part::ALL
            .iter()
            .map(|p| Ok((*p, encode(a, *p)?)))
            .collect::<StoreResult<_>>()?,
    })
}

/// The one segment dimension (index into `Dimension::ALL`) and value `filters` restrict page
/// views to, when that is all they do and the `Segments` part can answer it (not a placeholder
/// such as `(unknown)`: missing fields have no segment).
fn one_segment(filters: &PageViewFilters) -> Segment<'_> {
    let s = &filters.segment;
    let set: Vec<(usize, &str)> = (filters.by_dimension().iter().enumerate())
        .filter_map(|(d, v)| v.map(|v| (d, v)))
        .collect();
    let others = filters.url_prefix.is_some()
        || (filters.device_type.is_some() && s.device_type.is_some())
        || s.client_id.is_some()
        || s.user_id.is_some()
        || !s.meta.is_empty();
    match set.as_slice() {
        [(d, v)]
            if !others && SEGMENT_DIMS.contains(d) && !Dimension::ALL[*d].is_placeholder(v) =>
        {
            Some((*d, v))
        }
        _ => None,
    }
}

/// True when the dashboard's page-view figures under `filters` come from the `Segments` part
/// (one segment filter alone), unless two stored values show its value.
#[cfg(test)]
pub(crate) fn answers_from_segments(filters: &PageViewFilters) -> bool {
    one_segment(filters).is_some() && !filters.by_visit()
}

/// One time range of a filtered scan: its fold and, under an entry or exit page filter, the
/// visits whose page views it keeps (per session id, their first and last page view times).
struct MatchTarget {
    range: TimeRange,
    fold: Folder,
    visits: Option<HashMap<String, Vec<(i64, i64)>>>,
}

/// Passes on to the fold of its range only the page views `filters` match
/// ([`PageViewFilters::matches`], the one definition) and, under an entry or exit page filter,
/// only those of the kept visits: what a store scanned with only the client id pushed down.
struct Matching<'a> {
    filters: &'a PageViewFilters,
    /// Disjoint ranges.
    targets: Vec<MatchTarget>,
}

impl Sink for Matching<'_> {
    fn wants(&self, part: Part) -> bool {
        part.channel() == crate::domain::model::Channel::Pageviews
            && self.targets.iter().any(|t| t.fold.wants(part))
    }
    fn wants_visitors(&self) -> bool {
        false // the client id is matched by name
    }
    fn pageview(
        &mut self,
        ts: i64,
        url: &str,
        visitor: Visitor<'_>,
        session: Option<&str>,
        dims: [Option<&str>; 8],
    ) {
        let Some(t) =
            (self.targets.iter_mut()).find(|t| (t.range.start_ms..=t.range.end_ms).contains(&ts))
        else {
            return;
        };
        if let Some(kept) = &t.visits
            && !session
                .and_then(|s| kept.get(s))
                .is_some_and(|spans| spans.iter().any(|(a, b)| (*a..=*b).contains(&ts)))
        {
            return;
        }
        let client = match visitor {
            Visitor::Unnamed(name) => Some(name),
            Visitor::Anonymous | Visitor::Dense(_) => None,
        };
        if self.filters.matches(url, client, dims) {
            t.fold.pageview(ts, url, visitor, session, dims);
        }
    }
    fn event(&mut self, _: i64, _: &str, _: Option<f64>) {}
    fn wants_properties(&self) -> bool {
        false
    }
    fn properties(&mut self, _: i64, _: &str, _: &serde_json::Map<String, Value>) {}
    fn error(&mut self, _: i64, _: &ErrorRow<'_>) {}
    fn vitals(&mut self, _: i64, _: [Option<f64>; 5]) {}
}

/// Under an entry or exit page filter, the visits of `range` (all their page views in `range`,
/// whatever the other filters) that enter or leave by that page, per session id their first
/// and last page view times, from a scan of the range's page views (the rollups keep most
/// visits as totals only); `None` without such a filter.
async fn kept_visits<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    filters: &PageViewFilters,
) -> StoreResult<Option<HashMap<String, Vec<(i64, i64)>>>> {
    if !filters.by_visit() {
        return Ok(None);
    }
    let (entry, exit) = (filters.entry_page.as_deref(), filters.exit_page.as_deref());
    let mut fold = Folder::new(&[Part::Visits]);
    port.scan_pageviews(key, range, None, &mut fold).await?;
    let mut kept: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for (session, v) in fold.finish().visits.open_visits() {
        if entry.is_none_or(|e| same_page(&v.first.1, e))
            && exit.is_none_or(|e| same_page(&v.last.1, e))
        {
            kept.entry(session.clone())
                .or_default()
                .push((v.first.0, v.last.0));
        }
    }
    Ok(Some(kept))
}

/// Each fold of `targets` run over the page views `filters` match in its range (disjoint
/// ranges), from one scan of the span they cover (the client id pushed down, everything else
/// matched here). Callers choose the fold: the parts of a report, or per-unit counts of a chart.
async fn scan_matching<P: RollupPort>(
    port: &P,
    key: P::Key,
    targets: Vec<(TimeRange, Folder)>,
    filters: &PageViewFilters,
) -> StoreResult<Vec<Aggs>> {
    let (Some(start_ms), Some(end_ms)) = (
        targets.iter().map(|t| t.0.start_ms).min(),
        targets.iter().map(|t| t.0.end_ms).max(),
    ) else {
        return Ok(Vec::new());
    };
    let mut matched = Vec::with_capacity(targets.len());
    for (range, fold) in targets {
        matched.push(MatchTarget {
            range,
            fold,
            visits: kept_visits(port, key, range, filters).await?,
        });
    }
    let mut sink = Matching {
        filters,
        targets: matched,
    };
    let span = TimeRange { start_ms, end_ms };
    port.scan_pageviews(key, span, filters.segment.client_id.as_deref(), &mut sink)
        .await?;
    Ok(sink.targets.into_iter().map(|t| t.fold.finish()).collect())
}

/// The figures of `parts` (page-view parts only) of the page views `filters` match: from
/// rollups when unfiltered, under one segment from the `Segments` part (`Pageviews` and
/// `Pages` only), under a URL prefix alone by restricting each bucket, otherwise by one scan
/// of the range ([`scan_matching`]).
async fn pageview_aggs<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    filters: &PageViewFilters,
    parts: &[Part],
) -> StoreResult<Aggs> {
    let views_only = parts
        .iter()
        .all(|p| matches!(p, Part::Pageviews | Part::Pages))
        && !filters.by_visit();
    if filters.is_empty() {
        return aggregate(port, key, range, parts).await;
    }
    if views_only && let Some((dim, value)) = one_segment(filters) {
        let (mut a, _) = aggregate_segment(port, key, range, dim, value).await?;
        (a.dims, a.visits) = Default::default();
        return Ok(a);
    }
    if views_only
        && let (Some(prefix), None, true, None, None) = (
            filters.url_prefix.as_deref(),
            filters.device_type,
            filters.segment.is_empty(),
            &filters.country,
            &filters.referrer,
        )
    {
        return aggregate_of(port, key, range, parts, Pick::UrlPrefix(prefix)).await;
    }
    let mut out = scan_matching(port, key, vec![(range, Folder::new(parts))], filters).await?;
    Ok(out.pop().unwrap_or_default())
}

/// Unique visitors of each of `ranges`, read together ([`aggregate_each`]).
pub(crate) async fn unique_visitors_each<P: RollupPort>(
    port: &P,
    key: P::Key,
    ranges: &[TimeRange],
) -> StoreResult<Vec<u64>> {
    let each = aggregate_each(port, key, ranges, &[Part::Pageviews]).await?;
    Ok(each.iter().map(Aggs::unique_visitors).collect())
}

/// The page-views report: see [`pageview_aggs`] for how each filter is answered.
pub(crate) async fn pageviews_report<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    filters: &PageViewFilters,
) -> StoreResult<PageViewsReport> {
    let a = pageview_aggs(port, key, range, filters, &[Part::Pageviews, Part::Pages]).await?;
    Ok(a.pageviews_report(REPORT_TOP))
}

/// The dashboard's page-view figures under `filters`: the summary with its `top` pages, the
/// visits, and the breakdowns with up to `list` rows per dimension, pages (`page`) and entry
/// and exit pages included; with `previous`, that period's summary and visits too. Unfiltered
/// from rollups; under one segment filter from the `Segments` part ([`segment_figures`]);
/// otherwise by one scan of both periods together (the previous one folds no breakdowns).
pub(crate) async fn pageview_figures<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    previous: Option<TimeRange>,
    filters: &PageViewFilters,
    top: usize,
    list: usize,
) -> StoreResult<PageViewFigures> {
    const NOW: [Part; 3] = [Part::Pageviews, Part::Breakdowns, Part::Visits];
    const BEFORE: [Part; 2] = [Part::Pageviews, Part::Visits];
    let (now, before) = if filters.is_empty() {
        let before = async {
            match previous {
                Some(p) => aggregate(port, key, p, &BEFORE).await.map(Some),
                None => Ok(None),
            }
        };
        tokio::try_join!(aggregate(port, key, range, &NOW), before)?
    } else if let Some(both) = segment_figures(port, key, range, previous, filters).await? {
        both
    } else {
        let mut targets = vec![(range, Folder::new(&NOW))];
        targets.extend(previous.map(|p| (p, Folder::new(&BEFORE))));
        let mut all = scan_matching(port, key, targets, filters)
            .await?
            .into_iter();
        (all.next().unwrap_or_default(), all.next())
    };
    let (summary, visits, breakdowns) = now.pageview_figures(top, list);
    Ok(PageViewFigures {
        summary,
        visits,
        breakdowns,
        previous: before.map(|a| {
            let (summary, visits, _) = a.pageview_figures(0, 0);
            (summary, visits)
        }),
    })
}

/// The figures of `range` (and `previous`) for the dashboard when `filters` is one segment
/// filter alone ([`one_segment`]), from the `Segments` part: `None` when it is not, or when
/// more than one stored value shows the filter's (then only a scan gets the visits exact).
async fn segment_figures<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    previous: Option<TimeRange>,
    filters: &PageViewFilters,
) -> StoreResult<Option<(Aggs, Option<Aggs>)>> {
    let Some((dim, value)) = one_segment(filters) else {
        return Ok(None);
    };
    if filters.by_visit() {
        return Ok(None);
    }
    let before = async {
        match previous {
            Some(p) => aggregate_segment(port, key, p, dim, value).await.map(Some),
            None => Ok(None),
        }
    };
    let (now, before) = tokio::try_join!(aggregate_segment(port, key, range, dim, value), before)?;
    if now.1 > 1 || before.as_ref().is_some_and(|b| b.1 > 1) {
        return Ok(None);
    }
    // The previous period's figures fold no breakdowns (as the scan's).
    let before = before.map(|(mut a, _)| {
        a.dims = Default::default();
        a
    });
    Ok(Some((now.0, before)))
}

/// The dashboard's event figures, of every event or of one name (exact): the summary with its
/// `top` names, and up to `list` names by count.
pub(crate) async fn event_figures<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    name: Option<&str>,
    top: usize,
    list: usize,
) -> StoreResult<(EventsSummary, Vec<BreakdownRow>)> {
    let a = match name {
        None => aggregate(port, key, range, &[Part::Events]).await?,
        Some(_) => aggregate(port, key, range, &[Part::EventNames]).await?,
    };
    Ok(a.event_figures(name, top, list))
}

/// The performance report: unfiltered from rollups, filtered by one scan of the matching
/// web-vitals documents; the same figures either way.
pub(crate) async fn performance_report<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    filters: &PerformanceFilters,
) -> StoreResult<PerformanceReport> {
    let a = if filters.is_empty() {
        aggregate(port, key, range, &[Part::Performance]).await?
    } else {
        let mut f = Folder::new(&[Part::Performance]);
        port.scan_performance(key, range, filters, &mut f).await?;
        f.finish()
    };
    Ok(a.performance_report())
}

/// The events report without its page of recent occurrences (the store reads it): unfiltered
/// or filtered by name only, from rollups; with a segment, by one scan of the segment's events.
pub(crate) async fn events_report<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    filters: &EventFilters,
    paging: RecentPaging,
) -> StoreResult<EventsReport> {
    let a = if filters.segment.is_empty() {
        aggregate(port, key, range, &[Part::EventNames]).await?
    } else {
        let mut f = Folder::new(&[Part::EventNames]);
        port.scan_events(key, range, None, &filters.segment, &mut f)
            .await?;
        f.finish()
    };
    Ok(a.events_report(filters.event_name.as_deref(), paging))
}

/// One event name's detail without its occurrences (the store reads them): unfiltered from
/// rollups (its figures and its properties' samples), with a segment by one scan of its events.
pub(crate) async fn event_detail<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    name: &str,
    segment: &SegmentFilters,
) -> StoreResult<EventDetail> {
    let parts = [Part::EventNames, Part::EventProperties];
    let a = if segment.is_empty() {
        aggregate_of(port, key, range, &parts, Pick::EventName(name)).await?
    } else {
        let mut f = Folder::new(&parts);
        port.scan_events(key, range, Some(name), segment, &mut f)
            .await?;
        f.finish()
    };
    Ok(a.event_detail(name))
}

/// The errors report: unfiltered from rollups, filtered by one scan of the matching errors.
pub(crate) async fn errors_report<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    filters: &ErrorFilters,
    top: usize,
) -> StoreResult<ErrorsReport> {
    const PARTS: [Part; 3] = [Part::Errors, Part::ErrorGroups, Part::ErrorSignatures];
    let a = if filters.is_empty() {
        aggregate(port, key, range, &PARTS).await?
    } else {
        let mut f = Folder::new(&PARTS).only_signature(filters.signature.as_deref());
        port.scan_errors(key, range, filters, &mut f).await?;
        f.finish()
    };
    Ok(a.errors_report(top))
}

/// The dashboard's errors block: unfiltered from the `Errors` and `ErrorSignatures` rollups;
/// restricted to one group (`signature`), by one scan of the range's errors, folded through the
/// same signature function (stores never see the key). `list` groups at most.
pub(crate) async fn error_figures<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    signature: Option<&str>,
    list: usize,
) -> StoreResult<ErrorFigures> {
    const PARTS: [Part; 2] = [Part::Errors, Part::ErrorSignatures];
    let a = match signature {
        None => aggregate(port, key, range, &PARTS).await?,
        Some(only) => {
            let mut f = Folder::new(&PARTS).only_signature(Some(only));
            port.scan_errors(key, range, &ErrorFilters::default(), &mut f)
                .await?;
            f.finish()
        }
    };
    Ok(a.error_figures(list))
}

/// One fingerprint's figures over `range` without its occurrences (the store reads them), from
/// rollups.
pub(crate) async fn error_detail<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    fingerprint: &str,
) -> StoreResult<ErrorDetail> {
    Ok(aggregate(port, key, range, &[Part::ErrorGroups])
        .await?
        .error_detail(fingerprint))
}

/// Per-minute or per-hour figures (`unit` ms) of `range` for a fine time series
/// (`analytics::series`): one raw scan of the documents `source` names, under the same filters
/// as its report. Only for short ranges (the chart's minute and hour buckets, at most 48 hours):
/// rollups hold whole hours and days, and a chart of minutes needs the raw timestamps.
pub(crate) async fn fine_counts<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    unit: i64,
    source: SeriesSource<'_>,
) -> StoreResult<UnitCounts> {
    let mut out = UnitCounts {
        unit,
        ..Default::default()
    };
    match source {
        SeriesSource::Pageviews(filters) => {
            let fold = Folder::with_unit(&[Part::Pageviews], unit);
            let mut all = scan_matching(port, key, vec![(range, fold)], filters).await?;
            out.counts = all.pop().map(|a| a.pv_days).unwrap_or_default();
        }
        SeriesSource::Events { name, segment } => {
            let mut fold = Folder::with_unit(&[Part::Events], unit);
            port.scan_events(key, range, name, segment, &mut fold)
                .await?;
            out.counts = fold.finish().ev_days;
        }
        SeriesSource::Errors(filters) => {
            let mut fold = Folder::with_unit(&[Part::Errors], unit)
                .only_signature(filters.signature.as_deref());
            port.scan_errors(key, range, filters, &mut fold).await?;
            out.counts = fold.finish().er_days;
        }
        SeriesSource::ErrorGroup(fingerprint) => {
            let mut fold = Folder::with_unit(&[Part::ErrorGroups], unit);
            port.scan_errors(key, range, &ErrorFilters::default(), &mut fold)
                .await?;
            if let Some(g) = fold.finish().error_groups.remove(fingerprint) {
                out.counts = g.days;
            }
        }
        SeriesSource::Performance(filters) => {
            let mut fold = Folder::with_unit(&[Part::Performance], unit);
            port.scan_performance(key, range, filters, &mut fold)
                .await?;
            out.vitals = (fold.finish().perf_days.into_iter())
                .map(|(u, d)| {
                    let sum = std::array::from_fn(|m| d.sum[m].value());
                    (u, VitalsUnit { n: d.n, sum })
                })
                .collect();
        }
    }
    Ok(out)
}

/// A bucket's part code back to its [`Part`].
pub(crate) fn part_of(code: i64) -> StoreResult<Part> {
    Part::ALL
        .get(usize::try_from(code).map_err(corrupt)?)
        .copied()
        .ok_or_else(|| corrupt("part"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_edges_are_cut_at_the_asked_points_inside_them() {
        assert_eq!(
            cut_at(&[(0, 99), (200, 209)], &[50, 0, 100, 205, 50, 210]),
            [(0, 49), (50, 99), (200, 204), (205, 209)]
        );
    }

    #[test]
    fn raw_edges_are_cut_at_utc_midnight() {
        let day = super::DAY;
        assert_eq!(
            split_at_midnight(&[(5, 10), (day - 3, 2 * day + 4)]),
            [
                (5, 10),
                (day - 3, day - 1),
                (day, 2 * day - 1),
                (2 * day, 2 * day + 4)
            ]
        );
    }

    #[test]
    fn a_large_build_scans_empty_days_in_growing_steps_and_dense_days_at_their_pace() {
        // 60 days never written (a MongoDB database may hold older documents there), then 30
        // written days.
        let day = |d: i64| Group {
            stale: vec![(DAY_GRAIN, d)],
            edges: Vec::new(),
        };
        let mut pending: std::collections::VecDeque<Group> = (0..90).map(day).collect();
        let written = |g: &Group| g.stale[0].1 >= 60;
        let mut sizes = Vec::new();
        for scans in 0..7u32 {
            let days = 1usize << scans.min(3);
            sizes.push(next_scan(&mut pending, days, true, written).stale.len());
        }
        // Blind: 1, 2, 4, then 8 days a scan.
        assert_eq!(sizes, [1, 2, 4, 8, 8, 8, 8]);
        assert_eq!(pending.front().unwrap().stale[0].1, 39);
        // A blind scan stops short of the first written day, which starts the next scan alone.
        while pending.front().is_some_and(|g| !written(g)) {
            next_scan(&mut pending, 8, true, written);
        }
        assert_eq!(
            next_scan(&mut pending, 8, true, written).stale,
            [(DAY_GRAIN, 60)]
        );
        // Once days with data were seen, the pace is theirs: here 3 days a scan.
        assert_eq!(next_scan(&mut pending, 3, false, written).stale.len(), 3);
    }
}
