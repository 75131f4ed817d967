//! Rollups: the unfiltered summaries (dashboard tiles, breakdowns) pre-aggregated per project and
//! closed UTC 5-minute slot / hour / day, materialised on read and kept exact. The ingest writer
//! only bumps a version per touched (project, hour) and per touched (project, 5-minute slot), once
//! per batch ([`bump_versions`]); a rollup row records the version(s) it was built from and is
//! fresh iff they are still current (a day: the sum of its 24 hour versions, which only grow; an
//! hour and its slots are versioned independently, each bumped by every batch touching it). A
//! range reads full days from day rollups, the remaining full closed hours from hour rollups, the
//! remaining full closed 5-minute slots from slot rollups, and only the sub-5-minute edges (and
//! the open slot) raw. Must not hold the write lock while scanning: builds read in a snapshot and
//! write only the result.

use super::{SqliteStore, map_err};
use crate::domain::{
    analytics::{Dimension, METRICS, TimeRange},
    model::{Docs, WriteBatch},
    plausible::vital_is_plausible,
    timestamp::now_ms,
};
use crate::store::{StoreError, StoreResult};
use futures::{StreamExt, TryStreamExt, stream};
use roaring::RoaringBitmap;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

pub(super) const HOUR: i64 = 3_600_000;
pub(super) const DAY: i64 = 24 * HOUR;
/// The finest grain: five minutes.
pub(super) const SLOT: i64 = 5 * 60_000;
/// Encoding of `rollups.data`; rows of another format are rebuilt. 2: web-vital days count implausible values
/// (`domain::plausible`) and leave them out of sums and histograms; rows of an older format are
/// rebuilt on read.
const FMT: i64 = 2;
const HOUR_GRAIN: i64 = 0;
const DAY_GRAIN: i64 = 1;
const SLOT_GRAIN: i64 = 2;
/// Buckets built at once by one read (the machine has few cores; SQLite has one writer).
const PARALLEL_BUILDS: usize = 2;

/// What a rollup row holds; one row per part so each summary decodes only what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Part {
    Pageviews,
    Events,
    Errors,
    Performance,
    Breakdowns,
}

impl Part {
    const ALL: [Part; 5] = [
        Part::Pageviews,
        Part::Events,
        Part::Errors,
        Part::Performance,
        Part::Breakdowns,
    ];

    fn code(self) -> i64 {
        self as i64
    }
}

// ---------------------------------------------------------------------------------------------
// Version bumps (ingest writer, purge, clear)
// ---------------------------------------------------------------------------------------------

/// Bumps the version of every (project, hour) and every (project, 5-minute slot) the batches
/// touch, once per batch call. Runs inside the writer's transaction: one statement for the
/// (usually one or two) distinct hours, one for the (usually a few) distinct slots.
pub(super) async fn bump_versions(
    conn: &mut SqliteConnection,
    batches: &[(i64, &WriteBatch)],
) -> StoreResult<()> {
    let mut touched = BTreeSet::new();
    let mut slots = BTreeSet::new();
    for (pk, batch) in batches {
        let mut add = |ts: i64| {
            touched.insert((*pk, ts.div_euclid(HOUR)));
            slots.insert((*pk, ts.div_euclid(SLOT)));
        };
        match &batch.docs {
            Docs::Pageviews(d) => d.iter().for_each(|x| add(x.timestamp)),
            Docs::Events(d) => d.iter().for_each(|x| add(x.timestamp)),
            Docs::Errors(d) => d.iter().for_each(|x| add(x.timestamp)),
            Docs::Performance(d) => d.iter().for_each(|x| add(x.timestamp)),
        }
    }
    let touched: Vec<_> = touched.into_iter().collect();
    for chunk in touched.chunks(200) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO rollup_versions (project, hour, ver) ");
        q.push_values(chunk, |mut b, (pk, hour)| {
            b.push_bind(*pk).push_bind(*hour).push_bind(1i64);
        });
        q.push(" ON CONFLICT (project, hour) DO UPDATE SET ver = ver + 1");
        q.build().execute(&mut *conn).await.map_err(map_err)?;
    }
    let slots: Vec<_> = slots.into_iter().collect();
    for chunk in slots.chunks(200) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO rollup_slot_versions (project, slot, ver) ");
        q.push_values(chunk, |mut b, (pk, slot)| {
            b.push_bind(*pk).push_bind(*slot).push_bind(1i64);
        });
        q.push(" ON CONFLICT (project, slot) DO UPDATE SET ver = ver + 1");
        q.build().execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

/// The project's rollup epoch (0 before the first purge or clear).
async fn epoch(conn: &mut SqliteConnection, pk: i64) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT COALESCE((SELECT epoch FROM rollup_epochs WHERE project = ?), 0)")
        .bind(pk)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)
}

/// Raises the project's rollup epoch: builds that started before can no longer store.
async fn bump_epoch(conn: &mut SqliteConnection, pk: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO rollup_epochs (project, epoch) VALUES (?, 1) \
         ON CONFLICT (project) DO UPDATE SET epoch = epoch + 1",
    )
    .bind(pk)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Forgets every rollup, version and client id of a project (its data was cleared), and raises
/// its epoch so that no build in flight stores figures of the cleared data.
pub(super) async fn forget_project(conn: &mut SqliteConnection, pk: i64) -> StoreResult<()> {
    bump_epoch(conn, pk).await?;
    for sql in [
        "DELETE FROM rollups WHERE project = ?",
        "DELETE FROM rollup_versions WHERE project = ?",
        "DELETE FROM rollup_slot_versions WHERE project = ?",
        "DELETE FROM rollup_clients WHERE project = ?",
    ] {
        sqlx::query(sql)
            .bind(pk)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// Documents before `cutoff_ms` are being deleted (call it in the same transaction as the
/// deletes): the project's epoch is raised (builds in flight will not store), hours and 5-minute
/// slots entirely before it lose their versions and rollups (they are empty now), the hour and the
/// slot holding the cutoff get a new version, and every day rollup that overlaps a purged hour is
/// dropped (its version sum would no longer grow).
pub(super) async fn purged_before(
    conn: &mut SqliteConnection,
    pk: i64,
    cutoff_ms: i64,
) -> StoreResult<()> {
    bump_epoch(conn, pk).await?;
    let first_kept_hour = cutoff_ms.div_euclid(HOUR);
    let last_touched_day = (cutoff_ms - 1).div_euclid(DAY);
    sqlx::query("DELETE FROM rollup_versions WHERE project = ? AND hour < ?")
        .bind(pk)
        .bind(first_kept_hour)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query("UPDATE rollup_versions SET ver = ver + 1 WHERE project = ? AND hour = ?")
        .bind(pk)
        .bind(first_kept_hour)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let first_kept_slot = cutoff_ms.div_euclid(SLOT);
    sqlx::query("DELETE FROM rollup_slot_versions WHERE project = ? AND slot < ?")
        .bind(pk)
        .bind(first_kept_slot)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query("UPDATE rollup_slot_versions SET ver = ver + 1 WHERE project = ? AND slot = ?")
        .bind(pk)
        .bind(first_kept_slot)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "DELETE FROM rollups WHERE project = ? AND ((grain = 0 AND bucket < ?) OR (grain = 1 AND bucket <= ?) \
         OR (grain = 2 AND bucket < ?))",
    )
    .bind(pk)
    .bind(first_kept_hour)
    .bind(last_touched_day)
    .bind(first_kept_slot)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Aggregates
// ---------------------------------------------------------------------------------------------

/// A float sum with Neumaier compensation (as SQLite's own `SUM`/`AVG`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Sum {
    s: f64,
    c: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }

    fn merge(&mut self, o: Sum) {
        self.add(o.s);
        self.add(o.c);
    }

    pub(super) fn value(self) -> f64 {
        self.s + self.c
    }
}

/// Web vitals of one UTC day: rows, and per metric the count and sum of plausible values, and
/// the values left out as implausible.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PerfDay {
    pub rows: u64,
    pub n: [u64; 5],
    pub sum: [Sum; 5],
    pub implausible: u64,
}

/// Sorted (ordered key of the value, count) pairs: an exact histogram.
pub(super) type Hist = Vec<(u64, u64)>;

/// A key whose unsigned order is the numeric order of the value (−0 counts as 0).
fn ord_key(v: f64) -> u64 {
    let v = if v == 0.0 { 0.0 } else { v };
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

fn from_ord_key(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

/// Figures of some span for the parts that were asked for; merging spans is exact.
#[derive(Debug, Default)]
pub(super) struct Aggs {
    // Page views: per day, without clientId, per URL, client ids (dense) and client ids not in
    // the dictionary yet (raw edges only).
    pub pv_days: BTreeMap<i64, u64>,
    pub pv_anon: u64,
    pub urls: HashMap<String, u64>,
    pub clients: RoaringBitmap,
    pub unnamed: HashSet<String>,
    pub ev_days: BTreeMap<i64, u64>,
    pub names: HashMap<String, u64>,
    pub er_days: BTreeMap<i64, u64>,
    pub fingerprints: HashMap<String, u64>,
    pub perf_days: BTreeMap<i64, PerfDay>,
    /// Per metric of `METRICS`: one histogram per merged span.
    pub hists: [Vec<Hist>; 5],
    /// Per `Dimension::ALL`: value → page views.
    pub dims: [HashMap<String, u64>; 8],
}

fn add_counts<K: Eq + std::hash::Hash>(into: &mut HashMap<K, u64>, from: HashMap<K, u64>) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (k, n) in from {
        *into.entry(k).or_default() += n;
    }
}

fn add_days(into: &mut BTreeMap<i64, u64>, from: BTreeMap<i64, u64>) {
    for (k, n) in from {
        *into.entry(k).or_default() += n;
    }
}

fn bump(map: &mut HashMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else {
        map.insert(key.to_string(), 1);
    }
}

impl Aggs {
    fn merge(&mut self, o: Aggs) {
        add_days(&mut self.pv_days, o.pv_days);
        self.pv_anon += o.pv_anon;
        add_counts(&mut self.urls, o.urls);
        self.clients |= o.clients;
        self.unnamed.extend(o.unnamed);
        add_days(&mut self.ev_days, o.ev_days);
        add_counts(&mut self.names, o.names);
        add_days(&mut self.er_days, o.er_days);
        add_counts(&mut self.fingerprints, o.fingerprints);
        for (day, p) in o.perf_days {
            let into = self.perf_days.entry(day).or_default();
            into.rows += p.rows;
            into.implausible += p.implausible;
            for i in 0..5 {
                into.n[i] += p.n[i];
                into.sum[i].merge(p.sum[i]);
            }
        }
        for (into, from) in self.hists.iter_mut().zip(o.hists) {
            into.extend(from.into_iter().filter(|h| !h.is_empty()));
        }
        for (into, from) in self.dims.iter_mut().zip(o.dims) {
            add_counts(into, from);
        }
    }

    /// Moves one part out (the rest stays behind).
    fn take(&mut self, part: Part) -> Aggs {
        let mut out = Aggs::default();
        match part {
            Part::Pageviews => {
                out.pv_days = std::mem::take(&mut self.pv_days);
                out.pv_anon = self.pv_anon;
                out.urls = std::mem::take(&mut self.urls);
                out.clients = std::mem::take(&mut self.clients);
                out.unnamed = std::mem::take(&mut self.unnamed);
            }
            Part::Events => {
                out.ev_days = std::mem::take(&mut self.ev_days);
                out.names = std::mem::take(&mut self.names);
            }
            Part::Errors => {
                out.er_days = std::mem::take(&mut self.er_days);
                out.fingerprints = std::mem::take(&mut self.fingerprints);
            }
            Part::Performance => {
                out.perf_days = std::mem::take(&mut self.perf_days);
                out.hists = std::mem::take(&mut self.hists);
            }
            Part::Breakdowns => out.dims = std::mem::take(&mut self.dims),
        }
        out
    }

    /// Folds the histograms of each metric into one (before storing a merged bucket).
    fn fold_hists(&mut self) {
        for hists in &mut self.hists {
            if hists.len() <= 1 {
                continue;
            }
            let mut all: Hist = hists.drain(..).flatten().collect();
            all.sort_unstable_by_key(|e| e.0);
            let mut folded: Hist = Vec::with_capacity(all.len());
            for (k, n) in all {
                match folded.last_mut() {
                    Some(last) if last.0 == k => last.1 += n,
                    _ => folded.push((k, n)),
                }
            }
            hists.push(folded);
        }
    }

    /// The value at 0-based `rank` of metric `m` over every histogram, `None` when `rank` is out
    /// of range. Binary search over the ordered key space: ~64 probes of a binary search per
    /// histogram, whatever the number of values.
    pub(super) fn value_at_rank(&self, m: usize, rank: u64) -> Option<f64> {
        let hists: Vec<(&Hist, Vec<u64>)> = self.hists[m]
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| {
                let mut acc = 0;
                let cum = h
                    .iter()
                    .map(|e| {
                        acc += e.1;
                        acc
                    })
                    .collect();
                (h, cum)
            })
            .collect();
        let total: u64 = hists.iter().map(|(_, c)| *c.last().unwrap_or(&0)).sum();
        if rank >= total {
            return None;
        }
        let count_le = |key: u64| -> u64 {
            hists
                .iter()
                .map(|(h, cum)| match h.partition_point(|e| e.0 <= key) {
                    0 => 0,
                    i => cum[i - 1],
                })
                .sum()
        };
        let mut lo = hists.iter().map(|(h, _)| h[0].0).min()?;
        let mut hi = hists.iter().map(|(h, _)| h[h.len() - 1].0).max()?;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if count_le(mid) > rank {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(from_ord_key(lo))
    }

    /// Number of non-null values of metric `m`.
    pub(super) fn metric_count(&self, m: usize) -> u64 {
        self.hists[m].iter().flatten().map(|e| e.1).sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Raw scans
// ---------------------------------------------------------------------------------------------

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("rollup: {e}"))
}

/// Aggregates the raw rows of `[from, to]` (inclusive ms) for `parts`.
async fn scan(
    conn: &mut SqliteConnection,
    pk: i64,
    from: i64,
    to: i64,
    parts: &[Part],
) -> StoreResult<Aggs> {
    let mut a = Aggs::default();
    let want_pv = parts.contains(&Part::Pageviews);
    let want_bd = parts.contains(&Part::Breakdowns);
    if want_pv || want_bd {
        let sql = format!(
            "SELECT p.ts, p.url, p.client_id, {}, p.referrer, p.utm_source, p.utm_medium, \
             p.utm_campaign, p.country, p.browser, p.os, p.device_type FROM pageviews p {} \
             WHERE p.project = ? AND p.ts BETWEEN ? AND ?",
            if want_pv { "d.id" } else { "NULL" },
            if want_pv {
                "LEFT JOIN rollup_clients d ON d.project = p.project AND d.client = p.client_id"
            } else {
                ""
            }
        );
        let mut raw_dims: [HashMap<Option<String>, u64>; 8] = Default::default();
        let mut rows = sqlx::query(&sql)
            .bind(pk)
            .bind(from)
            .bind(to)
            .fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let ts: i64 = r.try_get(0).map_err(map_err)?;
            if want_pv {
                *a.pv_days.entry(ts.div_euclid(DAY)).or_default() += 1;
                bump(&mut a.urls, r.try_get::<&str, _>(1).map_err(map_err)?);
                let client: Option<&str> = r.try_get(2).map_err(map_err)?;
                let id: Option<i64> = r.try_get(3).map_err(map_err)?;
                match (client, id) {
                    (None, _) => a.pv_anon += 1,
                    (Some(_), Some(id)) => {
                        a.clients.insert(u32::try_from(id).map_err(corrupt)?);
                    }
                    (Some(c), None) => {
                        if !a.unnamed.contains(c) {
                            a.unnamed.insert(c.to_string());
                        }
                    }
                }
            }
            if want_bd {
                for (i, counts) in raw_dims.iter_mut().enumerate() {
                    let v: Option<&str> = r.try_get(4 + i).map_err(map_err)?;
                    if let Some(n) = counts.get_mut(&v.map(str::to_string)) {
                        *n += 1;
                    } else {
                        counts.insert(v.map(str::to_string), 1);
                    }
                }
            }
        }
        drop(rows);
        for ((dim, raw), into) in Dimension::ALL.iter().zip(raw_dims).zip(a.dims.iter_mut()) {
            for (v, n) in raw {
                *into.entry(dim.value_of(v.as_deref())).or_default() += n;
            }
        }
    }
    for (part, sql) in [
        (
            Part::Events,
            "SELECT ts, event_name FROM events WHERE project = ? AND ts BETWEEN ? AND ?",
        ),
        (
            Part::Errors,
            "SELECT ts, fingerprint FROM errors WHERE project = ? AND ts BETWEEN ? AND ?",
        ),
    ] {
        if !parts.contains(&part) {
            continue;
        }
        let (days, keys) = if part == Part::Events {
            (&mut a.ev_days, &mut a.names)
        } else {
            (&mut a.er_days, &mut a.fingerprints)
        };
        let mut rows = sqlx::query(sql)
            .bind(pk)
            .bind(from)
            .bind(to)
            .fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let ts: i64 = r.try_get(0).map_err(map_err)?;
            *days.entry(ts.div_euclid(DAY)).or_default() += 1;
            bump(keys, r.try_get::<&str, _>(1).map_err(map_err)?);
        }
    }
    if parts.contains(&Part::Performance) {
        let mut hists: [BTreeMap<u64, u64>; 5] = Default::default();
        let mut rows = sqlx::query(
            "SELECT ts, lcp, cls, fid, ttfb, inp FROM performance_metrics \
             WHERE project = ? AND ts BETWEEN ? AND ?",
        )
        .bind(pk)
        .bind(from)
        .bind(to)
        .fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let ts: i64 = r.try_get(0).map_err(map_err)?;
            let day = a.perf_days.entry(ts.div_euclid(DAY)).or_default();
            day.rows += 1;
            for (m, hist) in hists.iter_mut().enumerate() {
                if let Some(v) = r.try_get::<Option<f64>, _>(1 + m).map_err(map_err)? {
                    if !vital_is_plausible(METRICS[m], v) {
                        day.implausible += 1;
                        continue;
                    }
                    day.n[m] += 1;
                    day.sum[m].add(v);
                    *hist.entry(ord_key(v)).or_default() += 1;
                }
            }
        }
        for (into, hist) in a.hists.iter_mut().zip(hists) {
            if !hist.is_empty() {
                into.push(hist.into_iter().collect());
            }
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Encoding of `rollups.data`
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }
    fn f(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn days(&mut self, d: &BTreeMap<i64, u64>) {
        self.u(d.len() as u64);
        for (k, n) in d {
            self.i(*k);
            self.u(*n);
        }
    }
    fn counts(&mut self, m: &HashMap<String, u64>) {
        self.u(m.len() as u64);
        for (k, n) in m {
            self.bytes(k.as_bytes());
            self.u(*n);
        }
    }
}

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    fn u(&mut self) -> StoreResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.b.get(self.at).ok_or_else(|| corrupt("truncated"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint"))
    }
    fn i(&mut self) -> StoreResult<i64> {
        let u = self.u()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    fn f(&mut self) -> StoreResult<f64> {
        let s = self
            .b
            .get(self.at..self.at + 8)
            .ok_or_else(|| corrupt("truncated"))?;
        self.at += 8;
        Ok(f64::from_le_bytes(s.try_into().map_err(corrupt)?))
    }
    fn bytes(&mut self) -> StoreResult<&'a [u8]> {
        let n = self.u()? as usize;
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or_else(|| corrupt("truncated"))?;
        self.at += n;
        Ok(s)
    }
    fn days(&mut self) -> StoreResult<BTreeMap<i64, u64>> {
        let n = self.u()?;
        (0..n).map(|_| Ok((self.i()?, self.u()?))).collect()
    }
    fn counts(&mut self) -> StoreResult<HashMap<String, u64>> {
        let n = self.u()? as usize;
        let mut m = HashMap::with_capacity(n);
        for _ in 0..n {
            let k = String::from_utf8(self.bytes()?.to_vec()).map_err(corrupt)?;
            m.insert(k, self.u()?);
        }
        Ok(m)
    }
}

fn encode(a: &Aggs, part: Part) -> StoreResult<Vec<u8>> {
    let mut e = Enc::default();
    match part {
        Part::Pageviews => {
            if !a.unnamed.is_empty() {
                return Err(corrupt("client ids without a dense id"));
            }
            e.days(&a.pv_days);
            e.u(a.pv_anon);
            e.counts(&a.urls);
            let mut bits = Vec::with_capacity(a.clients.serialized_size());
            a.clients.serialize_into(&mut bits).map_err(corrupt)?;
            e.bytes(&bits);
        }
        Part::Events => {
            e.days(&a.ev_days);
            e.counts(&a.names);
        }
        Part::Errors => {
            e.days(&a.er_days);
            e.counts(&a.fingerprints);
        }
        Part::Performance => {
            e.u(a.perf_days.len() as u64);
            for (day, p) in &a.perf_days {
                e.i(*day);
                e.u(p.rows);
                e.u(p.implausible);
                for m in 0..5 {
                    e.u(p.n[m]);
                    e.f(p.sum[m].s);
                    e.f(p.sum[m].c);
                }
            }
            for hists in &a.hists {
                let empty = Hist::new();
                let h = match hists.len() {
                    0 => &empty,
                    1 => &hists[0],
                    _ => return Err(corrupt("unfolded histogram")),
                };
                e.u(h.len() as u64);
                let mut prev = 0u64;
                for (k, n) in h {
                    e.u(k - prev);
                    e.u(*n);
                    prev = *k;
                }
            }
        }
        Part::Breakdowns => {
            for d in &a.dims {
                e.counts(d);
            }
        }
    }
    Ok(e.0)
}

fn decode_into(a: &mut Aggs, part: Part, data: &[u8]) -> StoreResult<()> {
    let mut d = Dec { b: data, at: 0 };
    let mut o = Aggs::default();
    match part {
        Part::Pageviews => {
            o.pv_days = d.days()?;
            o.pv_anon = d.u()?;
            o.urls = d.counts()?;
            o.clients = RoaringBitmap::deserialize_from(d.bytes()?).map_err(corrupt)?;
        }
        Part::Events => {
            o.ev_days = d.days()?;
            o.names = d.counts()?;
        }
        Part::Errors => {
            o.er_days = d.days()?;
            o.fingerprints = d.counts()?;
        }
        Part::Performance => {
            for _ in 0..d.u()? {
                let day = d.i()?;
                let mut p = PerfDay {
                    rows: d.u()?,
                    implausible: d.u()?,
                    ..Default::default()
                };
                for m in 0..5 {
                    p.n[m] = d.u()?;
                    p.sum[m] = Sum {
                        s: d.f()?,
                        c: d.f()?,
                    };
                }
                o.perf_days.insert(day, p);
            }
            for m in 0..5 {
                let n = d.u()? as usize;
                let mut h = Hist::with_capacity(n);
                let mut prev = 0u64;
                for _ in 0..n {
                    prev += d.u()?;
                    h.push((prev, d.u()?));
                }
                if !h.is_empty() {
                    o.hists[m].push(h);
                }
            }
        }
        Part::Breakdowns => {
            for dim in &mut o.dims {
                *dim = d.counts()?;
            }
        }
    }
    a.merge(o);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Planning a range
// ---------------------------------------------------------------------------------------------

/// How a range is read: raw edges, 5-minute slot rollups, hour rollups, day rollups.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    pub edges: Vec<(i64, i64)>,
    pub slots: Vec<i64>,
    pub hours: Vec<i64>,
    pub days: Vec<i64>,
}

/// Splits `[a, b]` (inside one edge of the hour split) into full closed 5-minute slots (those
/// ending before the slot of `now`) and the raw rest (under five minutes at each end).
fn split_edge(p: &mut Plan, a: i64, b: i64, now: i64) {
    let first = a.div_euclid(SLOT) + i64::from(a.rem_euclid(SLOT) != 0);
    let last = ((b + 1).div_euclid(SLOT) - 1).min(now.div_euclid(SLOT) - 1);
    if first > last {
        p.edges.push((a, b));
        return;
    }
    if a < first * SLOT {
        p.edges.push((a, first * SLOT - 1));
    }
    p.slots.extend(first..=last);
    if (last + 1) * SLOT <= b {
        p.edges.push(((last + 1) * SLOT, b));
    }
}

/// Splits `[start, end]` into full UTC days, the other full closed hours (those ending before
/// the hour of `now`), the full closed 5-minute slots of the rest, and the raw rest.
pub(super) fn plan(range: TimeRange, now: i64) -> Plan {
    let (start, end) = (range.start_ms, range.end_ms);
    let mut p = Plan::default();
    if start > end {
        return p;
    }
    let first = start.div_euclid(HOUR) + i64::from(start.rem_euclid(HOUR) != 0);
    let last = ((end + 1).div_euclid(HOUR) - 1).min(now.div_euclid(HOUR) - 1);
    if first > last {
        split_edge(&mut p, start, end, now);
        return p;
    }
    if start < first * HOUR {
        split_edge(&mut p, start, first * HOUR - 1, now);
    }
    if (last + 1) * HOUR <= end {
        split_edge(&mut p, (last + 1) * HOUR, end, now);
    }
    let mut h = first;
    while h <= last {
        if h.rem_euclid(24) == 0 && h + 23 <= last {
            p.days.push(h.div_euclid(24));
            h += 24;
        } else {
            p.hours.push(h);
            h += 1;
        }
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Materialising and reading
// ---------------------------------------------------------------------------------------------

type BuildKey = (i64, i64, i64);
/// A stored rollup row: (part, grain, bucket, ver, fmt, data).
type StoredRow = (i64, i64, i64, i64, i64, Vec<u8>);
/// One part of an hour rollup: (part, ver, fmt, data).
type HourPart = (i64, i64, i64, Vec<u8>);

/// One build per (project, grain, bucket) at a time in this process; others wait, then reuse it.
#[derive(Default)]
pub(crate) struct BuildLocks(Mutex<HashMap<BuildKey, Arc<tokio::sync::Mutex<()>>>>);

impl BuildLocks {
    fn gate(&self, key: BuildKey) -> Arc<tokio::sync::Mutex<()>> {
        self.0
            .lock()
            .expect("build locks")
            .entry(key)
            .or_default()
            .clone()
    }

    fn done(&self, key: BuildKey) {
        self.0.lock().expect("build locks").remove(&key);
    }
}

/// The stored rows of buckets: (part, grain, bucket, ver, fmt, data) for one part or all, one
/// index range per span (an `OR` of ranges would let SQLite walk every row of the project).
async fn stored(
    conn: &mut SqliteConnection,
    pk: i64,
    part: Option<Part>,
    spans: &[(i64, i64, i64)],
) -> StoreResult<Vec<StoredRow>> {
    let parts: Vec<i64> = match part {
        Some(p) => vec![p.code()],
        None => Part::ALL.iter().map(|p| p.code()).collect(),
    };
    let mut out = Vec::new();
    for part in parts {
        for (grain, a, b) in spans {
            let rows = sqlx::query(
                "SELECT part, grain, bucket, ver, fmt, data FROM rollups \
                 WHERE project = ? AND part = ? AND grain = ? AND bucket BETWEEN ? AND ?",
            )
            .bind(pk)
            .bind(part)
            .bind(*grain)
            .bind(*a)
            .bind(*b)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            for r in &rows {
                out.push((
                    r.try_get(0).map_err(map_err)?,
                    r.try_get(1).map_err(map_err)?,
                    r.try_get(2).map_err(map_err)?,
                    r.try_get(3).map_err(map_err)?,
                    r.try_get(4).map_err(map_err)?,
                    r.try_get(5).map_err(map_err)?,
                ));
            }
        }
    }
    Ok(out)
}

/// Current versions of the hours `[first, last]`.
async fn versions(
    conn: &mut SqliteConnection,
    pk: i64,
    first: i64,
    last: i64,
) -> StoreResult<HashMap<i64, i64>> {
    versions_of(conn, pk, HOUR_GRAIN, first, last).await
}

/// Current versions of the buckets `[first, last]` of a versioned grain (hours or slots).
async fn versions_of(
    conn: &mut SqliteConnection,
    pk: i64,
    grain: i64,
    first: i64,
    last: i64,
) -> StoreResult<HashMap<i64, i64>> {
    let sql = if grain == SLOT_GRAIN {
        "SELECT slot, ver FROM rollup_slot_versions WHERE project = ? AND slot BETWEEN ? AND ?"
    } else {
        "SELECT hour, ver FROM rollup_versions WHERE project = ? AND hour BETWEEN ? AND ?"
    };
    sqlx::query(sql)
        .bind(pk)
        .bind(first)
        .bind(last)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(map_err)?,
                r.try_get(1).map_err(map_err)?,
            ))
        })
        .collect()
}

fn day_version(vers: &HashMap<i64, i64>, day: i64) -> i64 {
    (day * 24..day * 24 + 24)
        .map(|h| vers.get(&h).copied().unwrap_or(0))
        .sum()
}

/// Rows of consecutive buckets of one grain as (grain, first, last) spans.
fn spans_of(grain: i64, buckets: &[i64]) -> Vec<(i64, i64, i64)> {
    let mut spans: Vec<(i64, i64, i64)> = Vec::new();
    for &h in buckets {
        match spans.last_mut() {
            Some(s) if s.2 + 1 == h => s.2 = h,
            _ => spans.push((grain, h, h)),
        }
    }
    spans
}

impl SqliteStore {
    /// The figures of `part` over `range`: rollups where fresh, built where stale, raw edges.
    pub(super) async fn rolled_up(
        &self,
        pk: i64,
        range: TimeRange,
        part: Part,
    ) -> StoreResult<Aggs> {
        let plan = plan(range, now_ms());
        let mut out = Aggs::default();
        let mut stale_hours = Vec::new();
        let mut stale_days = Vec::new();
        let mut stale_slots = Vec::new();
        if !plan.hours.is_empty() || !plan.days.is_empty() || !plan.slots.is_empty() {
            let first = plan
                .hours
                .first()
                .copied()
                .into_iter()
                .chain(plan.days.first().map(|d| d * 24))
                .min()
                .unwrap_or_default();
            let last = plan
                .hours
                .last()
                .copied()
                .into_iter()
                .chain(plan.days.last().map(|d| d * 24 + 23))
                .max()
                .unwrap_or_default();
            let mut spans = spans_of(HOUR_GRAIN, &plan.hours);
            if let (Some(a), Some(b)) = (plan.days.first(), plan.days.last()) {
                spans.push((DAY_GRAIN, *a, *b));
            }
            let slot_spans = spans_of(SLOT_GRAIN, &plan.slots);
            spans.extend(&slot_spans);
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let vers = if plan.hours.is_empty() && plan.days.is_empty() {
                HashMap::new()
            } else {
                versions(&mut tx, pk, first, last).await?
            };
            let mut slot_vers = HashMap::new();
            for &(_, a, b) in &slot_spans {
                slot_vers.extend(versions_of(&mut tx, pk, SLOT_GRAIN, a, b).await?);
            }
            let rows = stored(&mut tx, pk, Some(part), &spans).await?;
            tx.commit().await.map_err(map_err)?;
            let rows: HashMap<(i64, i64), (i64, i64, Vec<u8>)> = rows
                .into_iter()
                .map(|(_, g, b, v, f, d)| ((g, b), (v, f, d)))
                .collect();
            let mut fresh = |grain: i64, bucket: i64, want: i64| -> StoreResult<bool> {
                if want == 0 {
                    return Ok(true); // never written: empty
                }
                match rows.get(&(grain, bucket)) {
                    Some((ver, fmt, data)) if *ver == want && *fmt == FMT => {
                        decode_into(&mut out, part, data)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            };
            for &d in &plan.days {
                if !fresh(DAY_GRAIN, d, day_version(&vers, d))? {
                    stale_days.push(d);
                }
            }
            for &h in &plan.hours {
                if !fresh(HOUR_GRAIN, h, vers.get(&h).copied().unwrap_or(0))? {
                    stale_hours.push(h);
                }
            }
            for &s in &plan.slots {
                if !fresh(SLOT_GRAIN, s, slot_vers.get(&s).copied().unwrap_or(0))? {
                    stale_slots.push(s);
                }
            }
        }
        let built: Vec<Aggs> = stream::iter(
            stale_hours
                .into_iter()
                .map(|h| (HOUR_GRAIN, h))
                .chain(stale_slots.into_iter().map(|s| (SLOT_GRAIN, s)))
                .chain(stale_days.into_iter().map(|d| (DAY_GRAIN, d))),
        )
        .map(|(grain, bucket)| async move {
            let mut a = if grain == DAY_GRAIN {
                self.build_day(pk, bucket).await?
            } else {
                self.build_fine(pk, grain, bucket).await?.1
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
            // One snapshot for both edges, so the client dictionary is seen the same by both.
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            for &(a, b) in &plan.edges {
                out.merge(scan(&mut tx, pk, a, b, &[part]).await?);
            }
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    /// Builds (or reuses, when another task just built it) the rollup of one closed hour
    /// (`HOUR_GRAIN`) or 5-minute slot (`SLOT_GRAIN`), every part. Scans in a read snapshot
    /// together with the bucket's version; stores only if that version is still current. Returns
    /// the version the figures stand for (−1 when they were not stored because a write landed
    /// meanwhile: a day merged from them stays stale).
    async fn build_fine(&self, pk: i64, grain: i64, bucket: i64) -> StoreResult<(i64, Aggs)> {
        let key = (pk, grain, bucket);
        let gate = self.rollup_builds.gate(key);
        let _turn = gate.lock().await;
        let result = async {
            let len = if grain == SLOT_GRAIN { SLOT } else { HOUR };
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let epoch = epoch(&mut tx, pk).await?;
            let ver = versions_of(&mut tx, pk, grain, bucket, bucket)
                .await?
                .get(&bucket)
                .copied()
                .unwrap_or(0);
            if let Some(a) = reuse(&mut tx, pk, grain, bucket, ver).await? {
                return Ok((ver, a));
            }
            let mut a = scan(
                &mut tx,
                pk,
                bucket * len,
                bucket * len + len - 1,
                &Part::ALL,
            )
            .await?;
            tx.commit().await.map_err(map_err)?;
            self.name_clients(pk, &mut a).await?;
            let stored = self
                .store_rollup(pk, grain, bucket, (ver, epoch), &a)
                .await?;
            Ok((if stored { ver } else { -1 }, a))
        }
        .await;
        self.rollup_builds.done(key);
        result
    }

    /// Builds the rollup of one UTC day by merging its 24 hour rollups (building stale ones).
    async fn build_day(&self, pk: i64, day: i64) -> StoreResult<Aggs> {
        let key = (pk, DAY_GRAIN, day);
        let gate = self.rollup_builds.gate(key);
        let _turn = gate.lock().await;
        let result = async {
            let (first, last) = (day * 24, day * 24 + 23);
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let epoch = epoch(&mut tx, pk).await?;
            let vers = versions(&mut tx, pk, first, last).await?;
            let total = day_version(&vers, day);
            if let Some(a) = reuse(&mut tx, pk, DAY_GRAIN, day, total).await? {
                return Ok(a);
            }
            let rows = stored(&mut tx, pk, None, &[(HOUR_GRAIN, first, last)]).await?;
            tx.commit().await.map_err(map_err)?;
            let mut by_hour: HashMap<i64, Vec<HourPart>> = HashMap::new();
            for (part, _, bucket, ver, fmt, data) in rows {
                by_hour
                    .entry(bucket)
                    .or_default()
                    .push((part, ver, fmt, data));
            }
            let mut merged = Aggs::default();
            let mut used = 0;
            for hour in first..=last {
                let want = vers.get(&hour).copied().unwrap_or(0);
                if want == 0 {
                    continue;
                }
                let rows = by_hour.remove(&hour).unwrap_or_default();
                let fresh = rows.len() == Part::ALL.len()
                    && rows.iter().all(|(_, v, f, _)| *v == want && *f == FMT);
                if fresh {
                    for (part, _, _, data) in &rows {
                        let part = Part::ALL
                            .get(*part as usize)
                            .copied()
                            .ok_or_else(|| corrupt("part"))?;
                        decode_into(&mut merged, part, data)?;
                    }
                    used += want;
                } else {
                    // Built from whatever version is current now; the day is stored with the
                    // versions actually used, so a write in between leaves it stale, not wrong.
                    let (ver, a) = self.build_fine(pk, HOUR_GRAIN, hour).await?;
                    merged.merge(a);
                    used += ver;
                }
            }
            merged.fold_hists();
            self.store_rollup(pk, DAY_GRAIN, day, (used, epoch), &merged)
                .await?;
            Ok(merged)
        }
        .await;
        self.rollup_builds.done(key);
        result
    }

    /// Gives every client id of a build a dense id (dictionary rows are append-only, so they
    /// need not be in the build's snapshot).
    async fn name_clients(&self, pk: i64, a: &mut Aggs) -> StoreResult<()> {
        if a.unnamed.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = a.unnamed.drain().collect();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        for chunk in names.chunks(400) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR IGNORE INTO rollup_clients (project, client) ");
            q.push_values(chunk, |mut b, c| {
                b.push_bind(pk).push_bind(c.as_str());
            });
            q.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        for chunk in names.chunks(400) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT id FROM rollup_clients WHERE project = ");
            q.push_bind(pk).push(" AND client IN (");
            let mut list = q.separated(", ");
            for c in chunk {
                list.push_bind(c.as_str());
            }
            q.push(")");
            let ids: Vec<i64> = q
                .build_query_scalar()
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?;
            if ids.len() != chunk.len() {
                return Err(corrupt("client dictionary lost an entry"));
            }
            for id in ids {
                a.clients.insert(u32::try_from(id).map_err(corrupt)?);
            }
        }
        Ok(())
    }

    /// Stores every part of a bucket with the version it was built from, unless that version is
    /// no longer current or the project's epoch moved since the build's snapshot (a purge or a
    /// clear happened meanwhile); then the next read rebuilds it. Returns whether it stored.
    async fn store_rollup(
        &self,
        pk: i64,
        grain: i64,
        bucket: i64,
        (ver, built_in_epoch): (i64, i64),
        a: &Aggs,
    ) -> StoreResult<bool> {
        let data = Part::ALL
            .iter()
            .map(|p| encode(a, *p))
            .collect::<StoreResult<Vec<_>>>()?;
        let (first, last) = if grain == DAY_GRAIN {
            (bucket * 24, bucket * 24 + 23)
        } else {
            (bucket, bucket)
        };
        let sql = if grain == SLOT_GRAIN {
            "SELECT COALESCE(SUM(ver), 0) FROM rollup_slot_versions WHERE project = ? AND slot BETWEEN ? AND ?"
        } else {
            "SELECT COALESCE(SUM(ver), 0) FROM rollup_versions WHERE project = ? AND hour BETWEEN ? AND ?"
        };
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let current: i64 = sqlx::query_scalar(sql)
            .bind(pk)
            .bind(first)
            .bind(last)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        if current != ver || epoch(&mut tx, pk).await? != built_in_epoch {
            return Ok(false); // rolled back on drop
        }
        for (part, data) in Part::ALL.iter().zip(data) {
            sqlx::query(
                "INSERT INTO rollups (project, grain, bucket, part, ver, fmt, data) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (project, part, grain, bucket) DO UPDATE SET ver = excluded.ver, fmt = excluded.fmt, data = excluded.data",
            )
            .bind(pk)
            .bind(grain)
            .bind(bucket)
            .bind(part.code())
            .bind(ver)
            .bind(FMT)
            .bind(data)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }
}

/// Every part of a stored bucket, if all are fresh for `ver` (or `ver` is 0: nothing written).
async fn reuse(
    conn: &mut SqliteConnection,
    pk: i64,
    grain: i64,
    bucket: i64,
    ver: i64,
) -> StoreResult<Option<Aggs>> {
    if ver == 0 {
        return Ok(Some(Aggs::default()));
    }
    let rows = stored(conn, pk, None, &[(grain, bucket, bucket)]).await?;
    if rows.len() != Part::ALL.len() || rows.iter().any(|r| r.3 != ver || r.4 != FMT) {
        return Ok(None);
    }
    let mut a = Aggs::default();
    for (part, _, _, _, _, data) in &rows {
        let part = Part::ALL
            .get(*part as usize)
            .copied()
            .ok_or_else(|| corrupt("part"))?;
        decode_into(&mut a, part, data)?;
    }
    Ok(Some(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ids::DocId, model::PageView};
    use crate::store::{NewProject, Stores, sqlite::SqliteOptions};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    async fn open_twice() -> (tempfile::TempDir, Stores, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let stores = Stores::new(
            "sqlite",
            SqliteStore::open(&path, SqliteOptions::default())
                .await
                .unwrap(),
        );
        stores.admin.migrate().await.unwrap();
        let direct = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap();
        (dir, stores, direct)
    }

    async fn project(stores: &Stores) -> DocId {
        let owner = stores
            .accounts
            .create_user(&format!("{}@r.test", DocId::new()), "h", None, "user")
            .await
            .unwrap();
        let org = stores.accounts.create_org("R", owner.id).await.unwrap();
        stores
            .projects
            .create_project(NewProject::named("R", org.id))
            .await
            .unwrap()
            .id
    }

    /// Every summary from rollups equals the raw scans' (daily averages to 1e-9 relative: the
    /// sums are added in another order).
    async fn assert_matches_raw(s: &SqliteStore, p: DocId, range: TimeRange) {
        let ctx = format!("{range:?}");
        assert_eq!(
            s.stats_pageviews(p, range, 5).await.unwrap(),
            s.raw_pageviews(p, range, 5).await.unwrap(),
            "{ctx}"
        );
        assert_eq!(
            s.stats_events(p, range, 5).await.unwrap(),
            s.raw_events(p, range, 5).await.unwrap(),
            "{ctx}"
        );
        assert_eq!(
            s.stats_errors(p, range).await.unwrap(),
            s.raw_errors(p, range).await.unwrap(),
            "{ctx}"
        );
        let (got, want) = (
            s.stats_performance(p, range).await.unwrap(),
            s.raw_performance(p, range).await.unwrap(),
        );
        assert_eq!(got.percentiles, want.percentiles, "{ctx}");
        assert_eq!(got.total_measurements, want.total_measurements, "{ctx}");
        assert_eq!(got.metrics_by_day.len(), want.metrics_by_day.len(), "{ctx}");
        for (g, w) in got.metrics_by_day.iter().zip(&want.metrics_by_day) {
            assert_eq!(g.date, w.date, "{ctx}");
            for (a, b) in [
                (g.lcp, w.lcp),
                (g.cls, w.cls),
                (g.fid, w.fid),
                (g.ttfb, w.ttfb),
                (g.inp, w.inp),
            ] {
                match (a, b) {
                    (Some(a), Some(b)) => assert!(
                        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        "{ctx}: {a} vs {b}"
                    ),
                    _ => assert_eq!(a, b, "{ctx}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn rollups_pass_the_rollup_contract() {
        let (_dir, stores, _) = open_twice().await;
        crate::store::contract::summaries_over_days_hours_and_edges(&stores).await;
    }

    #[tokio::test]
    async fn rollups_match_raw_scans_on_demo_data_including_late_and_concurrent_writes() {
        let (_dir, stores, direct) = open_twice().await;
        let p = project(&stores).await;
        crate::services::demo::seed(&stores, p, 6_000, 3, 5)
            .await
            .unwrap();
        let now = now_ms();
        let mut rng = StdRng::seed_from_u64(9);
        let mut ranges = vec![
            TimeRange {
                start_ms: now - 3 * DAY,
                end_ms: now,
            },
            TimeRange {
                start_ms: now - 26 * HOUR,
                end_ms: now - HOUR,
            },
            TimeRange {
                start_ms: now - 50 * HOUR + 17 * 60_000,
                end_ms: now - 2 * HOUR - 5 * 60_000,
            },
            TimeRange {
                start_ms: now - 30 * 60_000,
                end_ms: now,
            },
        ];
        for _ in 0..6 {
            let a = now - rng.random_range(0..4 * DAY);
            let b = now - rng.random_range(0..4 * DAY);
            ranges.push(TimeRange {
                start_ms: a.min(b),
                end_ms: a.max(b),
            });
        }
        for r in &ranges {
            assert_matches_raw(&direct, p, *r).await; // builds
            assert_matches_raw(&direct, p, *r).await; // reuses
        }
        // Late writes into materialised hours, while another reader keeps reading.
        let writer = {
            let stores = stores.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(3);
                for i in 0..30 {
                    let ts = now - rng.random_range(HOUR..3 * DAY);
                    let mut v: PageView =
                        crate::store::contract::pageview(&format!("/late/{}", i % 4), ts);
                    v.client_id = Some(format!("late-{i}"));
                    stores
                        .events
                        .write(&[crate::store::contract::batch(p, Docs::Pageviews(vec![v]))])
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        while !writer.is_finished() {
            direct.stats_pageviews(p, ranges[0], 5).await.unwrap();
        }
        writer.await.unwrap();
        for r in &ranges {
            assert_matches_raw(&direct, p, *r).await;
        }
    }

    /// Finding from review: a build whose snapshot predates a clear (or purge) must not store,
    /// even when later writes bring the bucket's version back to the value the build read.
    #[tokio::test]
    async fn a_build_that_overlaps_a_clear_or_purge_does_not_store() {
        use crate::store::contract::{batch, pageview};
        let (_dir, stores, direct) = open_twice().await;
        let p = project(&stores).await;
        let hour = (now_ms() - 3 * HOUR).div_euclid(HOUR);
        let write_one = async || {
            stores
                .events
                .write(&[batch(
                    p,
                    Docs::Pageviews(vec![pageview("/x", hour * HOUR + 60_000)]),
                )])
                .await
                .unwrap()
        };
        write_one().await;
        let mut conn = direct.pool.acquire().await.unwrap();
        let pk = direct.project_key(&mut conn, p).await.unwrap();
        // What a build would read in its snapshot.
        let read_epoch = epoch(&mut conn, pk).await.unwrap();
        let read_ver = versions_of(&mut conn, pk, HOUR_GRAIN, hour, hour)
            .await
            .unwrap()[&hour];
        drop(conn);
        // Meanwhile: the data is cleared and one new write lands in the same hour, so the
        // hour's version is back to what the build read.
        stores.projects.clear_project_data(p).await.unwrap();
        write_one().await;
        let mut conn = direct.pool.acquire().await.unwrap();
        assert_eq!(
            versions_of(&mut conn, pk, HOUR_GRAIN, hour, hour)
                .await
                .unwrap()[&hour],
            read_ver,
            "the version alone cannot tell"
        );
        drop(conn);
        let stale = Aggs::default();
        assert!(
            !direct
                .store_rollup(pk, HOUR_GRAIN, hour, (read_ver, read_epoch), &stale)
                .await
                .unwrap(),
            "a build from before the clear must not store"
        );
        // Same with a purge in between.
        let mut conn = direct.pool.acquire().await.unwrap();
        let read_epoch = epoch(&mut conn, pk).await.unwrap();
        drop(conn);
        stores
            .projects
            .purge_before(p, hour * HOUR - DAY)
            .await
            .unwrap();
        assert!(
            !direct
                .store_rollup(pk, HOUR_GRAIN, hour, (read_ver, read_epoch), &stale)
                .await
                .unwrap()
        );
        // A build that saw the current epoch and version stores, and reads stay exact.
        let mut conn = direct.pool.acquire().await.unwrap();
        let now_epoch = epoch(&mut conn, pk).await.unwrap();
        drop(conn);
        assert!(
            direct
                .store_rollup(pk, HOUR_GRAIN, hour, (read_ver, now_epoch), &stale)
                .await
                .unwrap(),
            "the check refuses only stale builds"
        );
        // That (empty) rollup is now stored as current; a late write makes it stale again, and
        // reads rebuild it: figures equal the raw scans'.
        let range = TimeRange {
            start_ms: hour * HOUR - DAY,
            end_ms: now_ms(),
        };
        write_one().await;
        assert_matches_raw(&direct, p, range).await;
        assert_eq!(
            direct
                .stats_pageviews(p, range, 5)
                .await
                .unwrap()
                .total_views,
            2
        );
    }

    #[test]
    fn ranges_split_into_days_hours_slots_and_raw_edges() {
        let t = |d: i64, h: i64, ms: i64| d * DAY + h * HOUR + ms;
        let min = 60_000;
        let slot = |d: i64, h: i64, m: i64| t(d, h, m * min) / SLOT;
        let now = t(10, 12, 32 * min); // day 10, 12:32 (slot 12:30 is open)
        let p = plan(
            TimeRange {
                start_ms: t(7, 22, 5),
                end_ms: now,
            },
            now,
        );
        assert_eq!(
            p.edges,
            vec![
                (t(7, 22, 5), t(7, 22, 5 * min) - 1),
                (t(10, 12, 30 * min), now)
            ]
        );
        let mut slots: Vec<i64> = (slot(7, 22, 5)..=slot(7, 22, 55)).collect();
        slots.extend(slot(10, 12, 0)..=slot(10, 12, 25));
        assert_eq!((slots.len(), &p.slots), (11 + 6, &slots));
        assert_eq!(p.days, vec![8, 9]);
        let mut hours = vec![7 * 24 + 23];
        hours.extend((0..12).map(|h| 10 * 24 + h));
        assert_eq!(p.hours, hours);
        // Inside the open hour: closed slots, then the open slot raw.
        let q = plan(
            TimeRange {
                start_ms: t(10, 12, 7 * min),
                end_ms: now,
            },
            now,
        );
        assert_eq!(
            q,
            Plan {
                edges: vec![
                    (t(10, 12, 7 * min), t(10, 12, 10 * min) - 1),
                    (t(10, 12, 30 * min), now)
                ],
                slots: (slot(10, 12, 10)..=slot(10, 12, 25)).collect(),
                hours: vec![],
                days: vec![]
            }
        );
        // Inside one slot: all raw.
        let q = plan(
            TimeRange {
                start_ms: t(9, 3, 11 * min),
                end_ms: t(9, 3, 14 * min),
            },
            now,
        );
        assert_eq!((q.edges.len(), q.slots.len()), (1, 0));
        // An edge ending mid-slot in a closed hour: the closed slots, then under 5 minutes raw.
        let q = plan(
            TimeRange {
                start_ms: t(9, 0, 0),
                end_ms: t(9, 1, 12 * min),
            },
            now,
        );
        assert_eq!(q.hours, vec![9 * 24]);
        assert_eq!(q.slots, vec![slot(9, 1, 0), slot(9, 1, 5)]);
        assert_eq!(q.edges, vec![(t(9, 1, 10 * min), t(9, 1, 12 * min))]);
        // Exactly aligned: no edges.
        let r = plan(
            TimeRange {
                start_ms: t(3, 0, 0),
                end_ms: t(5, 0, 0) - 1,
            },
            now,
        );
        assert_eq!(
            r,
            Plan {
                edges: vec![],
                slots: vec![],
                hours: vec![],
                days: vec![3, 4]
            }
        );
    }

    #[test]
    fn ordered_keys_round_trip_and_sort_numerically() {
        let vals = [-5.5, -0.0, 0.0, 1e-9, 0.1, 2500.0, f64::MAX];
        let keys: Vec<u64> = vals.iter().map(|v| ord_key(*v)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        for v in vals {
            assert_eq!(from_ord_key(ord_key(v)), if v == 0.0 { 0.0 } else { v });
        }
    }

    #[test]
    fn ranks_over_several_histograms_are_lower_nearest_rank() {
        let h = |vals: &[f64]| {
            let mut m = BTreeMap::new();
            for v in vals {
                *m.entry(ord_key(*v)).or_insert(0u64) += 1;
            }
            m.into_iter().collect::<Hist>()
        };
        let mut a = Aggs::default();
        a.hists[0] = vec![h(&[1.0, 4.0, 4.0]), h(&[2.0, 3.0]), h(&[10.0])];
        // Sorted: 1 2 3 4 4 10 → n = 6.
        let at = |p: f64| a.value_at_rank(0, (p * 5.0_f64).floor() as u64);
        assert_eq!(
            (at(0.5), at(0.75), at(0.95)),
            (Some(3.0), Some(4.0), Some(4.0))
        );
        assert_eq!(a.value_at_rank(0, 5), Some(10.0));
        assert_eq!(a.value_at_rank(0, 6), None);
        assert_eq!(a.metric_count(0), 6);
        let mut folded = Aggs {
            hists: a.hists.clone(),
            ..Default::default()
        };
        folded.fold_hists();
        assert_eq!(folded.hists[0].len(), 1);
        let bytes = encode(&folded, Part::Performance).unwrap();
        let mut back = Aggs::default();
        decode_into(&mut back, Part::Performance, &bytes).unwrap();
        assert_eq!(back.hists[0], folded.hists[0]);
    }
}
