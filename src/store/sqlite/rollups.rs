//! Rollups: the unfiltered summaries (dashboard tiles, breakdowns) pre-aggregated per project and
//! closed UTC 5-minute slot / hour / day, materialised on read and kept exact. The ingest writer
//! only bumps a version per touched (project, hour) and per touched (project, 5-minute slot), once
//! per batch ([`bump_versions`]); a rollup row records the version(s) it was built from and is
//! fresh iff they are still current (a day: the sum of its 24 hour versions, which only grow; an
//! hour and its slots are versioned independently, each bumped by every batch touching it). A
//! range reads full days from day rollups, the remaining full closed hours from hour rollups, the
//! remaining full closed 5-minute slots from slot rollups, and only the sub-5-minute edges (and
//! the open slot) raw. This file is SQLite's side of `analytics::engine::RollupPort` (versions,
//! blobs, the raw scan, the client dictionary) plus the maintenance that purges and clears need;
//! what is fresh, what is built and how figures combine is the engine's.

use super::{
    SqliteStore,
    diagnostics::{errors_where, performance_where},
    filters::{SqliteQuery, Where},
    map_err,
    reports::events_where,
};
pub(super) use crate::analytics::{
    engine::{self, BuildLocks, DAY_GRAIN, NewRollup, RollupPort, SLOT_GRAIN, Sink, StoredRollup},
    plan::{DAY, HOUR, SLOT},
    rollup::{Aggs, ErrorRow, FMT, Folder, Part, Visitor, corrupt},
};
use crate::domain::{
    analytics::{ErrorFilters, PerformanceFilters, TimeRange},
    model::{Docs, WriteBatch},
    segment::SegmentFilters,
};
use crate::store::StoreResult;
use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::{BTreeSet, HashMap};

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
// The rollup port
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl RollupPort for SqliteStore {
    type Key = i64;
    /// Every write goes through `EventWriter`, which bumps versions in its transaction.
    const UNVERSIONED_IS_EMPTY: bool = true;

    fn build_locks(&self) -> &BuildLocks<i64> {
        &self.rollup_builds
    }

    async fn versions(
        &self,
        pk: i64,
        grain: i64,
        first: i64,
        last: i64,
    ) -> StoreResult<HashMap<i64, i64>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        versions_of(&mut conn, pk, grain, first, last).await
    }

    async fn epoch(&self, pk: i64) -> StoreResult<i64> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        epoch(&mut conn, pk).await
    }

    /// One index range per span (an `OR` of ranges would let SQLite walk every row of the
    /// project), in one read transaction.
    async fn stored(
        &self,
        pk: i64,
        parts: &[Part],
        spans: &[(i64, i64, i64)],
    ) -> StoreResult<Vec<StoredRollup>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut out = Vec::new();
        for &part in parts {
            for (grain, a, b) in spans {
                let rows = sqlx::query(
                    "SELECT grain, bucket, ver, fmt, data FROM rollups \
                     WHERE project = ? AND part = ? AND grain = ? AND bucket BETWEEN ? AND ?",
                )
                .bind(pk)
                .bind(part.code())
                .bind(*grain)
                .bind(*a)
                .bind(*b)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                for r in &rows {
                    out.push(StoredRollup {
                        part,
                        grain: r.try_get(0).map_err(map_err)?,
                        bucket: r.try_get(1).map_err(map_err)?,
                        ver: r.try_get(2).map_err(map_err)?,
                        fmt: r.try_get(3).map_err(map_err)?,
                        data: r.try_get(4).map_err(map_err)?,
                    });
                }
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    /// One read transaction, so every range sees the same snapshot (and client dictionary).
    async fn scan(
        &self,
        pk: i64,
        ranges: &[(i64, i64)],
        sink: &mut (dyn Sink + Send),
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for &(from, to) in ranges {
            scan(&mut tx, pk, from, to, sink).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn scan_pageviews(
        &self,
        pk: i64,
        range: TimeRange,
        client: Option<&str>,
        f: &mut (dyn Sink + Send),
    ) -> StoreResult<()> {
        let mut w = Where::scope(pk, range);
        w.eq("client_id", client);
        let select = "SELECT ts, url, client_id, session_id, referrer, utm_source, utm_medium, \
                      utm_campaign, country, browser, os, device_type FROM pageviews";
        self.each_row(select, &w, |r| {
            let text = |i: usize| r.try_get::<Option<&str>, _>(i).map_err(map_err);
            let visitor = match text(2)? {
                Some(c) => Visitor::Unnamed(c),
                None => Visitor::Anonymous,
            };
            let mut dims = [None; 8];
            for (i, d) in dims.iter_mut().enumerate() {
                *d = text(4 + i)?;
            }
            f.pageview(
                r.try_get(0).map_err(map_err)?,
                r.try_get::<&str, _>(1).map_err(map_err)?,
                visitor,
                text(3)?,
                dims,
            );
            Ok(())
        })
        .await
    }

    async fn scan_performance(
        &self,
        pk: i64,
        range: TimeRange,
        filters: &PerformanceFilters,
        f: &mut Folder,
    ) -> StoreResult<()> {
        let w = performance_where(Where::scope(pk, range), filters);
        let select = format!("SELECT {VITAL_COLUMNS} FROM performance_metrics");
        self.each_row(&select, &w, |r| {
            let (ts, values) = vitals_of(r)?;
            f.vitals(ts, values);
            Ok(())
        })
        .await
    }

    async fn scan_events(
        &self,
        pk: i64,
        range: TimeRange,
        name: Option<&str>,
        segment: &SegmentFilters,
        f: &mut Folder,
    ) -> StoreResult<()> {
        let w = events_where(&Where::scope(pk, range), name, segment);
        let select = format!("SELECT {} FROM events", event_columns(f));
        self.each_row(&select, &w, |r| fold_event(r, f)).await
    }

    async fn scan_errors(
        &self,
        pk: i64,
        range: TimeRange,
        filters: &ErrorFilters,
        f: &mut Folder,
    ) -> StoreResult<()> {
        let w = errors_where(Where::scope(pk, range), filters);
        let select = format!("SELECT {ERROR_COLUMNS} FROM errors");
        self.each_row(&select, &w, |r| {
            let (ts, e) = error_of(r)?;
            f.error(ts, &e);
            Ok(())
        })
        .await
    }

    /// Dictionary rows are append-only, so a lookup never misses a name a stored rollup used.
    async fn client_ids(
        &self,
        pk: i64,
        names: &[String],
        create: bool,
    ) -> StoreResult<HashMap<String, u32>> {
        if create {
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
        }
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let mut out = HashMap::with_capacity(names.len());
        for chunk in names.chunks(400) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT client, id FROM rollup_clients WHERE project = ");
            q.push_bind(pk).push(" AND client IN (");
            let mut list = q.separated(", ");
            for c in chunk {
                list.push_bind(c.as_str());
            }
            q.push(")");
            for r in q.build().fetch_all(&mut *conn).await.map_err(map_err)? {
                let id: i64 = r.try_get(1).map_err(map_err)?;
                out.insert(
                    r.try_get(0).map_err(map_err)?,
                    u32::try_from(id).map_err(corrupt)?,
                );
            }
        }
        Ok(out)
    }

    /// Checks the epoch and each row's version and writes in one `IMMEDIATE` transaction; a
    /// row whose version moved is left out (it would be stale).
    async fn store(
        &self,
        pk: i64,
        built_in_epoch: i64,
        rows: Vec<NewRollup>,
    ) -> StoreResult<usize> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        if epoch(&mut tx, pk).await? != built_in_epoch {
            return Ok(0); // rolled back on drop
        }
        let mut stored = 0;
        for row in rows {
            let (first, last) = if row.grain == DAY_GRAIN {
                (row.bucket * 24, row.bucket * 24 + 23)
            } else {
                (row.bucket, row.bucket)
            };
            let sql = if row.grain == SLOT_GRAIN {
                "SELECT COALESCE(SUM(ver), 0) FROM rollup_slot_versions WHERE project = ? AND slot BETWEEN ? AND ?"
            } else {
                "SELECT COALESCE(SUM(ver), 0) FROM rollup_versions WHERE project = ? AND hour BETWEEN ? AND ?"
            };
            let current: i64 = sqlx::query_scalar(sql)
                .bind(pk)
                .bind(first)
                .bind(last)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            if current != row.ver {
                continue;
            }
            for (part, data) in row.blobs {
                sqlx::query(
                    "INSERT INTO rollups (project, grain, bucket, part, ver, fmt, data) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (project, part, grain, bucket) DO UPDATE SET ver = excluded.ver, fmt = excluded.fmt, data = excluded.data",
                )
                .bind(pk)
                .bind(row.grain)
                .bind(row.bucket)
                .bind(part.code())
                .bind(row.ver)
                .bind(FMT)
                .bind(data)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            stored += 1;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }
}

/// Feeds the raw rows of `[from, to]` (inclusive ms) of the channels `f` wants; client ids
/// already in the dictionary come with their dense id.
async fn scan(
    conn: &mut SqliteConnection,
    pk: i64,
    from: i64,
    to: i64,
    f: &mut (dyn Sink + Send),
) -> StoreResult<()> {
    if f.wants(Part::Pageviews) {
        let sql = format!(
            "SELECT p.ts, p.url, p.client_id, {}, p.session_id, p.referrer, p.utm_source, \
             p.utm_medium, p.utm_campaign, p.country, p.browser, p.os, p.device_type \
             FROM pageviews p {} \
             WHERE p.project = ? AND p.ts BETWEEN ? AND ?",
            if f.wants_visitors() { "d.id" } else { "NULL" },
            if f.wants_visitors() {
                "LEFT JOIN rollup_clients d ON d.project = p.project AND d.client = p.client_id"
            } else {
                ""
            }
        );
        let mut rows = in_range(&sql, pk, from, to).fetch(&mut *conn);
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
                *d = text(5 + i)?;
            }
            f.pageview(
                r.try_get(0).map_err(map_err)?,
                r.try_get::<&str, _>(1).map_err(map_err)?,
                visitor,
                text(4)?,
                dims,
            );
        }
    }
    if f.wants(Part::Events) {
        let sql = format!(
            "SELECT {} FROM events WHERE project = ? AND ts BETWEEN ? AND ?",
            event_columns(f)
        );
        let mut rows = in_range(&sql, pk, from, to).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            fold_event(&r, f)?;
        }
    }
    if f.wants(Part::Errors) {
        let sql =
            format!("SELECT {ERROR_COLUMNS} FROM errors WHERE project = ? AND ts BETWEEN ? AND ?");
        let mut rows = in_range(&sql, pk, from, to).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let (ts, e) = error_of(&r)?;
            f.error(ts, &e);
        }
    }
    if f.wants(Part::Performance) {
        let sql = format!(
            "SELECT {VITAL_COLUMNS} FROM performance_metrics WHERE project = ? AND ts BETWEEN ? AND ?"
        );
        let mut rows = in_range(&sql, pk, from, to).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let (ts, values) = vitals_of(&r)?;
            f.vitals(ts, values);
        }
    }
    Ok(())
}

/// The columns [`fold_event`] reads for `f`, in its order: the properties only when wanted.
fn event_columns(f: &(impl Sink + ?Sized)) -> &'static str {
    if f.wants_properties() {
        "ts, event_name, duration_ms, properties"
    } else {
        "ts, event_name, duration_ms"
    }
}

/// Feeds one event row selected as [`event_columns`] of `f`.
fn fold_event(r: &sqlx::sqlite::SqliteRow, f: &mut (impl Sink + ?Sized)) -> StoreResult<()> {
    let ts: i64 = r.try_get(0).map_err(map_err)?;
    let name: &str = r.try_get(1).map_err(map_err)?;
    f.event(ts, name, r.try_get(2).map_err(map_err)?);
    if f.wants_properties() {
        let text: &str = r.try_get(3).map_err(map_err)?;
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) {
            f.properties(ts, name, &map);
        }
    }
    Ok(())
}

/// The columns [`error_of`] reads, in its order.
const ERROR_COLUMNS: &str = "ts, fingerprint, rowid, message, browser, os, os_version, device_type, \
     error_type, stack_trace, CASE WHEN json_valid(context) THEN CASE WHEN \
     json_type(context, '$.url') = 'text' THEN json_extract(context, '$.url') END END, \
     COALESCE(user_id, client_id)";

/// `(ts, error)` of a row selected as [`ERROR_COLUMNS`]; the rowid is the storage order.
fn error_of(r: &sqlx::sqlite::SqliteRow) -> StoreResult<(i64, ErrorRow<'_>)> {
    let text = |i: usize| r.try_get::<Option<&str>, _>(i).map_err(map_err);
    let mut order = [0u8; 12];
    order[4..].copy_from_slice(&r.try_get::<i64, _>(2).map_err(map_err)?.to_be_bytes());
    Ok((
        r.try_get(0).map_err(map_err)?,
        ErrorRow {
            fingerprint: text(1)?,
            order,
            message: text(3)?,
            browser: text(4)?,
            os: text(5)?,
            os_version: text(6)?,
            device_type: text(7)?,
            error_type: text(8)?,
            stack: text(9)?,
            page: text(10)?,
            visitor: text(11)?,
        },
    ))
}

/// `sql` (ending in `WHERE project = ? AND ts BETWEEN ? AND ?`) bound to one project and range.
fn in_range(sql: &str, pk: i64, from: i64, to: i64) -> SqliteQuery<'_> {
    sqlx::query(sql).bind(pk).bind(from).bind(to)
}

/// The columns [`vitals_of`] reads, in its order.
const VITAL_COLUMNS: &str = "ts, lcp, cls, fid, ttfb, inp";

/// `(ts, [lcp, cls, fid, ttfb, inp])` of a row selected as [`VITAL_COLUMNS`].
fn vitals_of(r: &sqlx::sqlite::SqliteRow) -> StoreResult<(i64, [Option<f64>; 5])> {
    let mut values = [None; 5];
    for (m, v) in values.iter_mut().enumerate() {
        *v = r.try_get::<Option<f64>, _>(1 + m).map_err(map_err)?;
    }
    Ok((r.try_get(0).map_err(map_err)?, values))
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
    /// Streams the rows of `select` (`SELECT … FROM table`) restricted by `w` to `visit`, as
    /// they come: the filtered scans of the reports.
    async fn each_row(
        &self,
        select: &str,
        w: &Where,
        mut visit: impl FnMut(&sqlx::sqlite::SqliteRow) -> StoreResult<()> + Send,
    ) -> StoreResult<()> {
        let mut q = QueryBuilder::new(select);
        w.push_to(&mut q);
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let mut rows = q.build().fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            visit(&r)?;
        }
        Ok(())
    }

    /// The figures of `part` over `range` (see `analytics::engine`).
    pub(super) async fn rolled_up(
        &self,
        pk: i64,
        range: TimeRange,
        part: Part,
    ) -> StoreResult<Aggs> {
        engine::aggregate(self, pk, range, &[part]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::{engine::HOUR_GRAIN, rollup::encode};
    use crate::domain::timestamp::now_ms;
    use crate::domain::{ids::DocId, model::PageView};
    use crate::store::{NewProject, PlatformRole, Stores, sqlite::SqliteOptions};
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
            .create_user(
                &format!("{}@r.test", DocId::new()),
                "h",
                None,
                PlatformRole::User,
            )
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

    /// Stores `a` as the rollup of one bucket through the port; whether it stored.
    async fn store_rollup(
        s: &SqliteStore,
        pk: i64,
        grain: i64,
        bucket: i64,
        (ver, epoch): (i64, i64),
        a: &Aggs,
    ) -> StoreResult<bool> {
        let blobs = Part::ALL
            .iter()
            .map(|p| (*p, encode(a, *p).unwrap()))
            .collect();
        let row = NewRollup {
            grain,
            bucket,
            ver,
            blobs,
        };
        Ok(RollupPort::store(s, pk, epoch, vec![row]).await? == 1)
    }

    /// Demo data (`domain::demo`) over the last 3 days, written as `si demo` writes it.
    async fn seed_demo(stores: &Stores, p: DocId, total: u64) {
        let data = crate::domain::demo::DemoData::new(p, total, 3, 5, now_ms());
        for batches in data {
            stores.events.write(&batches).await.unwrap();
        }
    }

    /// Issue 12, item 6: a request dropped while it waits for or runs a build leaves no gate
    /// behind (the single-flight map cannot grow without bound).
    #[tokio::test]
    async fn cancelled_reads_leave_no_build_gate_behind() {
        let (_dir, stores, direct) = open_twice().await;
        let p = project(&stores).await;
        seed_demo(&stores, p, 6_000).await;
        let mut conn = direct.pool.acquire().await.unwrap();
        let pk = direct.project_key(&mut conn, p).await.unwrap();
        drop(conn);
        let now = now_ms();
        let range = TimeRange {
            start_ms: now - 3 * DAY,
            end_ms: now,
        };
        for (i, delay) in [0u64, 1, 3, 10, 30].into_iter().enumerate() {
            // A late write makes an old hour stale, so the next reads build.
            let mut v = crate::store::contract::pageview("/late", now - 2 * DAY);
            v.client_id = Some(format!("late-{i}"));
            stores
                .events
                .write(&[crate::store::contract::batch(p, Docs::Pageviews(vec![v]))])
                .await
                .unwrap();
            let cancelled = tokio::time::timeout(
                std::time::Duration::from_millis(delay),
                engine::aggregate(&direct, pk, range, &[Part::Pageviews]),
            );
            let (_, finished) = tokio::join!(
                cancelled,
                engine::aggregate(&direct, pk, range, &[Part::Breakdowns])
            );
            finished.unwrap();
            // What was built is stored in the background, holding the gate until then.
            direct.build_locks().settled().await;
            assert_eq!(
                direct.build_locks().len(),
                0,
                "after a cancel at {delay} ms"
            );
        }
    }

    /// Issue 12, item 6: a read that builds rollups answers while another writer holds the
    /// database's write lock for longer than the busy timeout would let it wait (it writes
    /// nothing itself; what it built is stored in the background), and what it built is stored
    /// once the lock is free.
    #[tokio::test]
    async fn a_building_read_does_not_wait_for_the_write_lock() {
        let (_dir, stores, direct) = open_twice().await;
        let p = project(&stores).await;
        seed_demo(&stores, p, 3_000).await;
        let now = now_ms();
        let range = TimeRange {
            start_ms: now - 3 * DAY,
            end_ms: now,
        };
        let rows = async || -> i64 {
            sqlx::query_scalar("SELECT COUNT(*) FROM rollups")
                .fetch_one(&direct.pool)
                .await
                .unwrap()
        };
        assert_eq!(rows().await, 0, "seeding does not build");
        let lock = direct.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let started = std::time::Instant::now();
        let figures = stores.stats.pageviews_summary(p, range, 5).await.unwrap();
        let took = started.elapsed();
        assert!(
            took < SqliteOptions::default().busy_timeout / 2,
            "the read waited {took:?} for the write lock"
        );
        assert_eq!(
            figures,
            direct.raw_pageviews(p, range, 5).await.unwrap(),
            "exact figures"
        );
        assert_eq!(rows().await, 0, "nothing stored while the lock is held");
        lock.rollback().await.unwrap();
        stores.stats.rollups_settled().await;
        assert!(rows().await > 0, "stored once the lock was free");
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
        seed_demo(&stores, p, 6_000).await;
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
            !store_rollup(
                &direct,
                pk,
                HOUR_GRAIN,
                hour,
                (read_ver, read_epoch),
                &stale
            )
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
            !store_rollup(
                &direct,
                pk,
                HOUR_GRAIN,
                hour,
                (read_ver, read_epoch),
                &stale
            )
            .await
            .unwrap()
        );
        // A build that saw the current epoch and version stores, and reads stay exact.
        let mut conn = direct.pool.acquire().await.unwrap();
        let now_epoch = epoch(&mut conn, pk).await.unwrap();
        drop(conn);
        assert!(
            store_rollup(&direct, pk, HOUR_GRAIN, hour, (read_ver, now_epoch), &stale)
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
