//! The rollup engine: reads the figures of a time range from stored rollups where they are
//! fresh, builds (and stores) the stale buckets, and scans only the raw edges — the same code
//! for every backend. A backend implements the narrow [`RollupPort`]: bucket versions bumped by
//! its ingest writer, rollup blobs with the versions they were built from, a raw scan into a
//! [`Folder`], and a dictionary of dense client ids.
//!
//! Freshness: the writer bumps the version of every (project, hour) and (project, 5-minute
//! slot) a write touches, after (or atomically with) storing the documents. A bucket's rollup
//! is fresh iff the version it was built from is still current (a day: the sum of its 24 hour
//! versions, which only grow). A build reads the version, then scans; if a write lands in
//! between, the scan sees more than the version says, and the version has moved on, so the
//! stored row is stale at once (never wrong). A project's epoch, raised by purges and clears,
//! keeps a build that overlapped them from storing figures of deleted data.

use super::{
    plan::{HOUR, SLOT, day_version, plan, spans_of},
    rollup::{Aggs, FMT, Folder, Part, corrupt, decode_into, encode},
};
use crate::domain::{
    analytics::{PageViewFilters, PageViewsReport, REPORT_TOP, TimeRange},
    timestamp::now_ms,
};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Stored code of the hour grain.
pub(crate) const HOUR_GRAIN: i64 = 0;
/// Stored code of the day grain (merged from its 24 hours).
pub(crate) const DAY_GRAIN: i64 = 1;
/// Stored code of the 5-minute grain.
pub(crate) const SLOT_GRAIN: i64 = 2;
/// Buckets built at once by one read (the machines have few cores; SQLite has one writer).
const PARALLEL_BUILDS: usize = 2;

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

/// What a backend provides for rollups. Every method is a plain read or write; the engine
/// decides what is fresh, what to build and how the figures combine.
#[async_trait]
pub(crate) trait RollupPort: Send + Sync {
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

    /// Stored rollups of one part (or all) in the spans `(grain, first, last)`.
    async fn stored(
        &self,
        key: Self::Key,
        part: Option<Part>,
        spans: &[(i64, i64, i64)],
    ) -> StoreResult<Vec<StoredRollup>>;

    /// Feeds the raw documents of `[from, to]` (inclusive ms) of the channels the folder wants.
    async fn scan(&self, key: Self::Key, from: i64, to: i64, f: &mut Folder) -> StoreResult<()>;

    /// Feeds the page views of `range` that match `filters` (compiled by the backend into its
    /// query, every value bound), with their URL and visitor only.
    async fn scan_pageviews(
        &self,
        key: Self::Key,
        range: TimeRange,
        filters: &PageViewFilters,
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

    /// Stores every part of one bucket, built from version `ver` in epoch `epoch`, unless the
    /// bucket's version or the project's epoch moved meanwhile. Returns whether it stored.
    async fn store(
        &self,
        key: Self::Key,
        grain: i64,
        bucket: i64,
        built: (i64, i64),
        blobs: Vec<(Part, Vec<u8>)>,
    ) -> StoreResult<bool>;
}

type BuildKey<K> = (K, i64, i64);

/// One build per (project, grain, bucket) at a time in this process; others wait, then reuse it.
/// An entry is removed when its build ends, also when the request that started it is dropped.
pub(crate) struct BuildLocks<K>(Mutex<HashMap<BuildKey<K>, Arc<tokio::sync::Mutex<()>>>>);

impl<K> Default for BuildLocks<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Copy + Eq + Hash> BuildLocks<K> {
    fn enter(&self, key: BuildKey<K>) -> BuildTurn<'_, K> {
        let gate = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        BuildTurn {
            locks: self,
            key,
            gate,
        }
    }

    /// Builds in flight or waiting (for tests: no entry outlives its build).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A caller's place at one build gate; leaving (or being dropped) forgets the gate once nobody
/// else holds it.
struct BuildTurn<'a, K: Copy + Eq + Hash> {
    locks: &'a BuildLocks<K>,
    key: BuildKey<K>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<K: Copy + Eq + Hash> Drop for BuildTurn<'_, K> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours. Others waiting hold more.
        if Arc::strong_count(&self.gate) <= 2 {
            map.remove(&self.key);
        }
    }
}

/// Gives page views whose client id had no dense id at scan time the ids they have now
/// (`create`: new ids for all). Names still without one stay counted by name.
pub(crate) async fn resolve_clients<P: RollupPort + ?Sized>(
    port: &P,
    key: P::Key,
    a: &mut Aggs,
    create: bool,
) -> StoreResult<()> {
    let names = a.unnamed_clients();
    if names.is_empty() {
        return Ok(());
    }
    let ids = port.client_ids(key, &names, create).await?;
    if create && ids.len() != names.len() {
        return Err(corrupt("client dictionary lost an entry"));
    }
    a.resolve(&ids);
    Ok(())
}

/// The figures of `part` over `range`: rollups where fresh, built where stale, raw edges.
pub(crate) async fn aggregate<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    part: Part,
) -> StoreResult<Aggs> {
    let plan = plan(range, now_ms());
    let mut out = Aggs::default();
    let mut stale = Vec::new();
    if !plan.hours.is_empty() || !plan.days.is_empty() || !plan.slots.is_empty() {
        let first = plan
            .hours
            .first()
            .copied()
            .into_iter()
            .chain(plan.days.first().map(|d| d * 24))
            .min();
        let last = plan
            .hours
            .last()
            .copied()
            .into_iter()
            .chain(plan.days.last().map(|d| d * 24 + 23))
            .max();
        let mut spans = spans_of(HOUR_GRAIN, &plan.hours);
        if let (Some(a), Some(b)) = (plan.days.first(), plan.days.last()) {
            spans.push((DAY_GRAIN, *a, *b));
        }
        let slot_spans = spans_of(SLOT_GRAIN, &plan.slots);
        spans.extend(&slot_spans);
        let vers = match (first, last) {
            (Some(a), Some(b)) => port.versions(key, HOUR_GRAIN, a, b).await?,
            _ => HashMap::new(),
        };
        let mut slot_vers = HashMap::new();
        for &(_, a, b) in &slot_spans {
            slot_vers.extend(port.versions(key, SLOT_GRAIN, a, b).await?);
        }
        // Read after the versions: a row stored meanwhile is newer than the version read,
        // looks stale and is rebuilt; never the other way round.
        let rows: HashMap<(i64, i64), StoredRollup> = port
            .stored(key, Some(part), &spans)
            .await?
            .into_iter()
            .map(|r| ((r.grain, r.bucket), r))
            .collect();
        let mut fresh = |grain: i64, bucket: i64, want: i64| -> StoreResult<bool> {
            if want == 0 && P::UNVERSIONED_IS_EMPTY {
                return Ok(true); // never written: empty
            }
            match rows.get(&(grain, bucket)) {
                Some(r) if r.ver == want && r.fmt == FMT => {
                    decode_into(&mut out, part, &r.data)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        for &d in &plan.days {
            if !fresh(DAY_GRAIN, d, day_version(&vers, d))? {
                stale.push((DAY_GRAIN, d));
            }
        }
        for &h in &plan.hours {
            if !fresh(HOUR_GRAIN, h, vers.get(&h).copied().unwrap_or(0))? {
                stale.push((HOUR_GRAIN, h));
            }
        }
        for &s in &plan.slots {
            if !fresh(SLOT_GRAIN, s, slot_vers.get(&s).copied().unwrap_or(0))? {
                stale.push((SLOT_GRAIN, s));
            }
        }
    }
    let built: Vec<Aggs> = stream::iter(stale)
        .map(|(grain, bucket)| async move {
            let mut a = if grain == DAY_GRAIN {
                build_day(port, key, bucket).await?
            } else {
                build_fine(port, key, grain, bucket).await?.1
            };
            Ok::<_, StoreError>(a.take(part))
        })
        .buffer_unordered(PARALLEL_BUILDS)
        .try_collect()
        .await?;
    for a in built {
        out.merge(a);
    }
    if !plan.edges.is_empty() {
        let mut edges = Folder::new(&[part]);
        for &(a, b) in &plan.edges {
            port.scan(key, a, b, &mut edges).await?;
        }
        out.merge(edges.finish());
    }
    // After every scan: a client named by a build meanwhile is found here, so it is not
    // counted twice (once by name, once by id).
    resolve_clients(port, key, &mut out, false).await?;
    Ok(out)
}

/// The page-views report: unfiltered from rollups (views, visitors, days, visitors per page);
/// filtered by one scan of the matching page views.
pub(crate) async fn pageviews_report<P: RollupPort>(
    port: &P,
    key: P::Key,
    range: TimeRange,
    filters: &PageViewFilters,
) -> StoreResult<PageViewsReport> {
    let a = if filters.device_type.is_none()
        && filters.url_prefix.is_none()
        && filters.segment.is_empty()
    {
        let mut a = aggregate(port, key, range, Part::Pageviews).await?;
        a.merge(aggregate(port, key, range, Part::Pages).await?);
        a
    } else {
        let mut f = Folder::new(&[Part::Pageviews, Part::Pages]);
        port.scan_pageviews(key, range, filters, &mut f).await?;
        f.finish()
    };
    Ok(a.pageviews_report(REPORT_TOP))
}

/// Every part of a stored bucket, if all are fresh for `ver`.
async fn reuse<P: RollupPort>(
    port: &P,
    key: P::Key,
    grain: i64,
    bucket: i64,
    ver: i64,
) -> StoreResult<Option<Aggs>> {
    if ver == 0 && P::UNVERSIONED_IS_EMPTY {
        return Ok(Some(Aggs::default()));
    }
    let rows = port.stored(key, None, &[(grain, bucket, bucket)]).await?;
    if rows.len() != Part::ALL.len() || rows.iter().any(|r| r.ver != ver || r.fmt != FMT) {
        return Ok(None);
    }
    let mut a = Aggs::default();
    for r in &rows {
        decode_into(&mut a, r.part, &r.data)?;
    }
    Ok(Some(a))
}

/// Encodes and stores every part of a bucket (see [`RollupPort::store`]).
async fn store<P: RollupPort>(
    port: &P,
    key: P::Key,
    grain: i64,
    bucket: i64,
    built: (i64, i64),
    a: &Aggs,
) -> StoreResult<bool> {
    let blobs = Part::ALL
        .iter()
        .map(|p| Ok((*p, encode(a, *p)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    port.store(key, grain, bucket, built, blobs).await
}

/// Builds (or reuses, when another task just built it) the rollup of one closed hour or
/// 5-minute slot, every part. Returns the version the figures stand for (−1 when they were not
/// stored because a write, purge or clear landed meanwhile: a day merged from them stays stale).
async fn build_fine<P: RollupPort>(
    port: &P,
    key: P::Key,
    grain: i64,
    bucket: i64,
) -> StoreResult<(i64, Aggs)> {
    let turn = port.build_locks().enter((key, grain, bucket));
    let _held = turn.gate.lock().await;
    let len = if grain == SLOT_GRAIN { SLOT } else { HOUR };
    let epoch = port.epoch(key).await?;
    let ver = port
        .versions(key, grain, bucket, bucket)
        .await?
        .get(&bucket)
        .copied()
        .unwrap_or(0);
    if let Some(a) = reuse(port, key, grain, bucket, ver).await? {
        return Ok((ver, a));
    }
    let mut f = Folder::new(&Part::ALL);
    port.scan(key, bucket * len, bucket * len + len - 1, &mut f)
        .await?;
    let mut a = f.finish();
    resolve_clients(port, key, &mut a, true).await?;
    let stored = store(port, key, grain, bucket, (ver, epoch), &a).await?;
    Ok((if stored { ver } else { -1 }, a))
}

/// Builds the rollup of one UTC day by merging its 24 hour rollups (building stale ones).
async fn build_day<P: RollupPort>(port: &P, key: P::Key, day: i64) -> StoreResult<Aggs> {
    let turn = port.build_locks().enter((key, DAY_GRAIN, day));
    let _held = turn.gate.lock().await;
    let (first, last) = (day * 24, day * 24 + 23);
    let epoch = port.epoch(key).await?;
    let vers = port.versions(key, HOUR_GRAIN, first, last).await?;
    let total = day_version(&vers, day);
    if let Some(a) = reuse(port, key, DAY_GRAIN, day, total).await? {
        return Ok(a);
    }
    let mut by_hour: HashMap<i64, Vec<StoredRollup>> = HashMap::new();
    for r in port.stored(key, None, &[(HOUR_GRAIN, first, last)]).await? {
        by_hour.entry(r.bucket).or_default().push(r);
    }
    let mut merged = Aggs::default();
    let mut used = 0;
    for hour in first..=last {
        let want = vers.get(&hour).copied().unwrap_or(0);
        if want == 0 && P::UNVERSIONED_IS_EMPTY {
            continue;
        }
        let rows = by_hour.remove(&hour).unwrap_or_default();
        let fresh =
            rows.len() == Part::ALL.len() && rows.iter().all(|r| r.ver == want && r.fmt == FMT);
        if fresh {
            for r in &rows {
                decode_into(&mut merged, r.part, &r.data)?;
            }
            used += want;
        } else {
            // Built from whatever version is current now; the day is stored with the versions
            // actually used, so a write in between leaves it stale, not wrong.
            let (ver, a) = build_fine(port, key, HOUR_GRAIN, hour).await?;
            merged.merge(a);
            used = if ver < 0 || used < 0 { -1 } else { used + ver };
        }
    }
    merged.fold_hists();
    if used >= 0 {
        store(port, key, DAY_GRAIN, day, (used, epoch), &merged).await?;
    }
    Ok(merged)
}

/// A bucket's part code back to its [`Part`].
pub(crate) fn part_of(code: i64) -> StoreResult<Part> {
    Part::ALL
        .get(usize::try_from(code).map_err(corrupt)?)
        .copied()
        .ok_or_else(|| corrupt("part"))
}
