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
pub(super) use crate::analytics::{
    plan::{DAY, HOUR, SLOT, day_version, plan, spans_of},
    rollup::{Aggs, FMT, Folder, Part, Visitor, corrupt, decode_into, encode},
};
use crate::domain::{
    analytics::TimeRange,
    model::{Docs, WriteBatch},
    timestamp::now_ms,
};
use crate::store::{StoreError, StoreResult};
use futures::{StreamExt, TryStreamExt, stream};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

const HOUR_GRAIN: i64 = 0;
const DAY_GRAIN: i64 = 1;
const SLOT_GRAIN: i64 = 2;
/// Buckets built at once by one read (the machine has few cores; SQLite has one writer).
const PARALLEL_BUILDS: usize = 2;

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
// Raw scans
// ---------------------------------------------------------------------------------------------

/// Aggregates the raw rows of `[from, to]` (inclusive ms) for `parts`.
async fn scan(
    conn: &mut SqliteConnection,
    pk: i64,
    from: i64,
    to: i64,
    parts: &[Part],
) -> StoreResult<Aggs> {
    let mut f = Folder::new(parts);
    if f.wants_pageviews() {
        let sql = format!(
            "SELECT p.ts, p.url, p.client_id, {}, p.referrer, p.utm_source, p.utm_medium, \
             p.utm_campaign, p.country, p.browser, p.os, p.device_type FROM pageviews p {} \
             WHERE p.project = ? AND p.ts BETWEEN ? AND ?",
            if f.wants_visitors() { "d.id" } else { "NULL" },
            if f.wants_visitors() {
                "LEFT JOIN rollup_clients d ON d.project = p.project AND d.client = p.client_id"
            } else {
                ""
            }
        );
        let mut rows = sqlx::query(&sql)
            .bind(pk)
            .bind(from)
            .bind(to)
            .fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let text = |i: usize| r.try_get::<Option<&str>, _>(i).map_err(map_err);
            let client = text(2)?;
            let dense: Option<i64> = r.try_get(3).map_err(map_err)?;
            let visitor = match (client, dense) {
                (None, _) => Visitor::Anonymous,
                (Some(_), Some(id)) => Visitor::Dense(u32::try_from(id).map_err(corrupt)?),
                (Some(c), None) => Visitor::Unnamed(c),
            };
            let mut dims = [None; 8];
            for (i, d) in dims.iter_mut().enumerate() {
                *d = text(4 + i)?;
            }
            f.pageview(
                r.try_get(0).map_err(map_err)?,
                r.try_get::<&str, _>(1).map_err(map_err)?,
                visitor,
                dims,
            );
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
        let mut rows = sqlx::query(sql)
            .bind(pk)
            .bind(from)
            .bind(to)
            .fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let ts: i64 = r.try_get(0).map_err(map_err)?;
            let key: &str = r.try_get(1).map_err(map_err)?;
            if part == Part::Events {
                f.event(ts, key);
            } else {
                f.error(ts, key);
            }
        }
    }
    if parts.contains(&Part::Performance) {
        let mut rows = sqlx::query(
            "SELECT ts, lcp, cls, fid, ttfb, inp FROM performance_metrics \
             WHERE project = ? AND ts BETWEEN ? AND ?",
        )
        .bind(pk)
        .bind(from)
        .bind(to)
        .fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let mut values = [None; 5];
            for (m, v) in values.iter_mut().enumerate() {
                *v = r.try_get::<Option<f64>, _>(1 + m).map_err(map_err)?;
            }
            f.vitals(r.try_get(0).map_err(map_err)?, values);
        }
    }
    Ok(f.finish())
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
}
