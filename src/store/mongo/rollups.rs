//! MongoDB's side of the rollup engine (`analytics::engine::RollupPort`), with portable commands
//! only (`find` with projections, `update_one` upserts with `$inc`/`$set`/`$setOnInsert`,
//! `find_one_and_update`, `insert_many`, `delete_many`):
//! - `rollupdays`: one document per touched (project, UTC day), `{project, day, h: {<hour>:
//!   ver}, s: {<5-minute slot>: ver}}`, whose touched hours and slots the ingest writer
//!   `$inc`rements after it stored the documents (so a build that scans them sees a version that
//!   is already moving): one upsert per day a write touches (a document per bucket cost a
//!   FerretDB transaction per bucket: 7 ms each, 3.3 s per 500 of a 30-day seed);
//! - `rollups`: one document per built bucket, `{project, grain, bucket, ver, fmt, p0…p8}`, one
//!   binary field per part (a read projects only the part it needs);
//! - `rollupclients`: the dense id of each client id, `_id` = `"<project>:<client id>"` so a
//!   client id gets one id however many builds race; ids are handed out in blocks from
//!   `rollupstate.clients`;
//! - `rollupstate`: per project, the epoch purges and clears raise and the client-id counter.
//!
//! Documents written by SuperInsights 1.x never bumped a version, so a bucket without one is
//! built once and stored at version 0 (`UNVERSIONED_IS_EMPTY = false`). Without transactions
//! the compare-and-set of [`RollupPort::store`] checks the version and epoch, writes, then
//! checks the epoch again and removes its own write if a purge or clear ran meanwhile (they
//! delete the documents, raise the epoch, then delete the rollups: a build that read the old
//! epoch cannot keep a row, one that read the new epoch scanned after the delete).

use super::{
    MongoStore,
    docs::{date, oid},
    errors::{CollectAll, DUPLICATE_KEY, map_err, only_id_duplicates},
    filters::Match,
    scan,
};
use crate::analytics::{
    engine::{
        BuildLocks, DAY_GRAIN, HOUR_GRAIN, NewRollup, RollupPort, SLOT_GRAIN, Sink, StoredRollup,
        part_of,
    },
    plan::{DAY, HOUR, SLOT},
    rollup::{ErrorRow, FMT, Folder, Part, Visitor, corrupt},
};
use crate::domain::{
    analytics::{ErrorFilters, METRICS, PerformanceFilters, TimeRange},
    ids::DocId,
    model::{Channel, Docs, WriteBatch},
    segment::SegmentFilters,
};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use mongodb::{
    bson::{Binary, Bson, Document, doc, spec::BinarySubtype},
    options::ReturnDocument,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(super) const ROLLUPS: &str = "rollups";
pub(super) const ROLLUP_DAYS: &str = "rollupdays";
/// One version document per bucket, before `rollupdays`: `migrate` drops it (with the rollups
/// built from it).
pub(super) const OLD_ROLLUP_VERSIONS: &str = "rollupversions";

/// 5-minute slots per UTC day.
const SLOTS_PER_DAY: i64 = DAY / SLOT;

fn day_id(project: DocId, day: i64) -> String {
    format!("{project}:{day}")
}

/// The field of `rollupdays` holding the versions of `grain` (hours or slots), and how many
/// buckets of it a day has.
fn versions_field(grain: i64) -> (&'static str, i64) {
    if grain == SLOT_GRAIN {
        ("s", SLOTS_PER_DAY)
    } else {
        ("h", 24)
    }
}
pub(super) const ROLLUP_CLIENTS: &str = "rollupclients";
pub(super) const ROLLUP_STATE: &str = "rollupstate";

/// A rollup document larger than this is not stored (the figures are still returned; the
/// bucket is rebuilt on the next read). MongoDB's document limit is 16 MiB.
const MAX_ROLLUP_BYTES: usize = 15 * 1024 * 1024;

fn field(part: Part) -> String {
    format!("p{}", part.code())
}

fn bucket_id(project: DocId, grain: i64, bucket: i64) -> String {
    format!("{project}:{grain}:{bucket}")
}

fn int(d: &Document, key: &str) -> i64 {
    d.get(key).map_or(0, integer)
}

/// A counter whatever its BSON number type (0 for anything else).
fn integer(b: &Bson) -> i64 {
    match b {
        Bson::Int64(v) => *v,
        Bson::Int32(v) => i64::from(*v),
        Bson::Double(v) => *v as i64,
        _ => 0,
    }
}

impl MongoStore {
    /// Bumps the version of every (project, hour) and (project, 5-minute slot) the batches
    /// touch, once per call. Runs after the documents are stored.
    pub(super) async fn bump_versions(&self, batches: &[WriteBatch]) -> StoreResult<()> {
        // (project, day) → the day's touched hours and slots.
        let mut touched: BTreeMap<(DocId, i64), BTreeSet<String>> = BTreeMap::new();
        for batch in batches {
            let mut add = |ts: i64| {
                let fields = touched
                    .entry((batch.project_id, ts.div_euclid(DAY)))
                    .or_default();
                for (grain, len) in [(HOUR_GRAIN, HOUR), (SLOT_GRAIN, SLOT)] {
                    fields.insert(format!(
                        "{}.{}",
                        versions_field(grain).0,
                        ts.div_euclid(len)
                    ));
                }
            };
            match &batch.docs {
                Docs::Pageviews(d) => d.iter().for_each(|x| add(x.timestamp)),
                Docs::Events(d) => d.iter().for_each(|x| add(x.timestamp)),
                Docs::Errors(d) => d.iter().for_each(|x| add(x.timestamp)),
                Docs::Performance(d) => d.iter().for_each(|x| add(x.timestamp)),
            }
        }
        let statements: Vec<Document> = touched
            .into_iter()
            .map(|((project, day), fields)| {
                let inc: Document = fields.into_iter().map(|f| (f, Bson::Int64(1))).collect();
                doc! {
                    "q": {"_id": day_id(project, day)},
                    "u": {
                        "$inc": inc,
                        "$setOnInsert": {"project": oid(project), "day": day},
                    },
                    "upsert": true,
                }
            })
            .collect();
        match self.updates(ROLLUP_DAYS, statements).await?.first() {
            None => Ok(()),
            Some((_, code, message)) => Err(StoreError::other(format!(
                "rollupdays: write error {code}: {message}"
            ))),
        }
    }

    /// Drops the per-bucket versions of before `rollupdays` and every rollup built from them
    /// (their versions would be compared with the new counters).
    pub(super) async fn drop_old_rollup_versions(&self) -> StoreResult<()> {
        let names = self.db.list_collection_names().await.map_err(map_err)?;
        if names.iter().any(|n| n == OLD_ROLLUP_VERSIONS) {
            self.coll(ROLLUPS)
                .delete_many(doc! {})
                .await
                .map_err(map_err)?;
            self.coll(OLD_ROLLUP_VERSIONS)
                .drop()
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Runs update statements (`{q, u, upsert}`) as one unordered `update` command, in chunks:
    /// the command `update_one` sends, with several statements, so a batch touching many
    /// buckets costs one round trip. Statements that lost an upsert race are repeated. Returns
    /// the statements' remaining write errors (index, code, message); a failed command is an
    /// error.
    async fn updates(
        &self,
        collection: &str,
        statements: Vec<Document>,
    ) -> StoreResult<Vec<(usize, i32, String)>> {
        let mut failed = Vec::new();
        for (n, chunk) in statements.chunks(500).enumerate() {
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 0..3 {
                let reply = self
                    .db
                    .run_command(doc! {
                        "update": collection,
                        "updates": pending.iter().map(|i| chunk[*i].clone()).collect::<Vec<_>>(),
                        "ordered": false,
                    })
                    .await
                    .map_err(map_err)?;
                let mut again = Vec::new();
                if let Ok(errors) = reply.get_array("writeErrors") {
                    for e in errors.iter().filter_map(Bson::as_document) {
                        let at = pending[usize::try_from(int(e, "index")).unwrap_or(0)];
                        let code = i32::try_from(int(e, "code")).unwrap_or(0);
                        // Two upserts racing to insert one `_id`: the loser did nothing and is
                        // repeated, now as an update (MongoDB retries these itself).
                        if code == DUPLICATE_KEY && attempt < 2 {
                            again.push(at);
                        } else {
                            let message = e.get_str("errmsg").unwrap_or_default().to_string();
                            failed.push((n * 500 + at, code, message));
                        }
                    }
                }
                if again.is_empty() {
                    break;
                }
                pending = again;
            }
        }
        Ok(failed)
    }

    /// Raises the project's rollup epoch: builds that started before can no longer store.
    async fn bump_epoch(&self, project: DocId) -> StoreResult<()> {
        self.state_inc(project, "epoch", 1).await.map(|_| ())
    }

    /// `$inc`s a counter of the project's `rollupstate` (created on first use) and returns the
    /// document after. Two first uses racing may both try to insert it: the loser's upsert fails
    /// with a duplicate `_id` (MongoDB retries that itself, FerretDB does not), and is repeated,
    /// now as an update.
    pub(super) async fn state_inc(
        &self,
        project: DocId,
        counter: &str,
        n: i64,
    ) -> StoreResult<Document> {
        let mut attempts = 0;
        loop {
            let result = self
                .coll(ROLLUP_STATE)
                .find_one_and_update(doc! {"_id": oid(project)}, doc! {"$inc": {counter: n}})
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_err);
            match result {
                Ok(Some(d)) => return Ok(d),
                Ok(None) => {
                    return Err(StoreError::other(
                        "rollupstate: no document after upsert".into(),
                    ));
                }
                Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The project's documents were just cleared: the epoch rises (a build that read the
    /// old one cannot store), then every rollup and version goes (the client dictionary stays;
    /// its ids are only names).
    pub(super) async fn forget_rollups(&self, project: DocId) -> StoreResult<()> {
        self.bump_epoch(project).await?;
        for name in [ROLLUPS, ROLLUP_DAYS] {
            self.coll(name)
                .delete_many(doc! {"project": oid(project)})
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Documents before `cutoff_ms` were just deleted: the epoch rises, buckets before the
    /// cutoff lose their versions, and every rollup that may hold a deleted document goes (the
    /// hour, slot and day holding the cutoff too: a bucket without a version is rebuilt here).
    pub(super) async fn purged_rollups(&self, project: DocId, cutoff_ms: i64) -> StoreResult<()> {
        self.bump_epoch(project).await?;
        let p = oid(project);
        let (hour, slot) = (cutoff_ms.div_euclid(HOUR), cutoff_ms.div_euclid(SLOT));
        let last_touched_day = (cutoff_ms - 1).div_euclid(DAY);
        let cutoff_day = cutoff_ms.div_euclid(DAY);
        self.coll(ROLLUP_DAYS)
            .delete_many(doc! {"project": p, "day": {"$lt": cutoff_day}})
            .await
            .map_err(map_err)?;
        // The cutoff's own day keeps the versions of its hours and slots from the cutoff on.
        let mut unset = Document::new();
        for (grain, first) in [(HOUR_GRAIN, hour), (SLOT_GRAIN, slot)] {
            let (field, per_day) = versions_field(grain);
            for bucket in cutoff_day * per_day..first {
                unset.insert(format!("{field}.{bucket}"), "");
            }
        }
        if !unset.is_empty() {
            self.coll(ROLLUP_DAYS)
                .update_one(
                    doc! {"_id": day_id(project, cutoff_day)},
                    doc! {"$unset": unset},
                )
                .await
                .map_err(map_err)?;
        }
        for (grain, last) in [
            (HOUR_GRAIN, hour),
            (SLOT_GRAIN, slot),
            (DAY_GRAIN, last_touched_day),
        ] {
            self.coll(ROLLUPS)
                .delete_many(doc! {"project": p, "grain": grain, "bucket": {"$lte": last}})
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn current_epoch(&self, project: DocId) -> StoreResult<i64> {
        Ok(self
            .coll(ROLLUP_STATE)
            .find_one(doc! {"_id": oid(project)})
            .projection(doc! {"epoch": 1})
            .await
            .map_err(map_err)?
            .map_or(0, |d| int(&d, "epoch")))
    }

    /// Dense ids of those `names` that have one.
    async fn known_clients(
        &self,
        project: DocId,
        names: &[String],
    ) -> StoreResult<HashMap<String, u32>> {
        let mut out = HashMap::with_capacity(names.len());
        for chunk in names.chunks(500) {
            let ids: Vec<String> = chunk.iter().map(|c| format!("{project}:{c}")).collect();
            let found = self
                .coll(ROLLUP_CLIENTS)
                .find(doc! {"_id": {"$in": ids}})
                .projection(doc! {"client": 1, "id": 1})
                .collect_all()
                .await?;
            for d in found {
                let (Ok(client), Ok(id)) = (d.get_str("client"), u32::try_from(int(&d, "id")))
                else {
                    return Err(StoreError::other("rollupclients: malformed entry".into()));
                };
                out.insert(client.to_string(), id);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl RollupPort for MongoStore {
    type Key = DocId;
    const UNVERSIONED_IS_EMPTY: bool = false;

    fn build_locks(&self) -> &BuildLocks<DocId> {
        &self.rollup_builds
    }

    async fn versions(
        &self,
        project: DocId,
        grain: i64,
        first: i64,
        last: i64,
    ) -> StoreResult<HashMap<i64, i64>> {
        let (field, per_day) = versions_field(grain);
        let found = self
            .coll(ROLLUP_DAYS)
            .find(doc! {
                "project": oid(project),
                "day": {"$gte": first.div_euclid(per_day), "$lte": last.div_euclid(per_day)},
            })
            .projection(doc! {field: 1})
            .collect_all()
            .await?;
        let mut out = HashMap::new();
        for d in &found {
            let Ok(versions) = d.get_document(field) else {
                continue;
            };
            for (bucket, ver) in versions {
                let Ok(bucket) = bucket.parse::<i64>() else {
                    continue;
                };
                if (first..=last).contains(&bucket) {
                    out.insert(bucket, integer(ver));
                }
            }
        }
        Ok(out)
    }

    async fn epoch(&self, project: DocId) -> StoreResult<i64> {
        self.current_epoch(project).await
    }

    async fn stored(
        &self,
        project: DocId,
        parts: &[Part],
        spans: &[(i64, i64, i64)],
    ) -> StoreResult<Vec<StoredRollup>> {
        let mut projection = doc! {"grain": 1, "bucket": 1, "ver": 1, "fmt": 1};
        for p in parts {
            projection.insert(field(*p), 1);
        }
        let mut out = Vec::new();
        for (grain, a, b) in spans {
            let found = self
                .coll(ROLLUPS)
                .find(doc! {
                    "project": oid(project),
                    "grain": grain,
                    "bucket": {"$gte": a, "$lte": b},
                })
                .projection(projection.clone())
                .collect_all()
                .await?;
            for d in &found {
                for p in parts {
                    if let Ok(bin) = d.get_binary_generic(field(*p)) {
                        out.push(StoredRollup {
                            part: part_of(p.code())?,
                            grain: int(d, "grain"),
                            bucket: int(d, "bucket"),
                            ver: int(d, "ver"),
                            fmt: int(d, "fmt"),
                            data: bin.clone(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// One `find` per channel for all the ranges (an `$or` of time ranges when several).
    async fn scan(
        &self,
        project: DocId,
        ranges: &[(i64, i64)],
        f: &mut (dyn Sink + Send),
    ) -> StoreResult<()> {
        let within: Vec<Document> = ranges
            .iter()
            .map(|&(a, b)| doc! {"timestamp": {"$gte": date(a), "$lte": date(b)}})
            .collect();
        let scope = match within.as_slice() {
            [] => return Ok(()),
            [one] => {
                let mut d = doc! {"projectId": oid(project)};
                d.extend(one.clone());
                d
            }
            _ => doc! {"projectId": oid(project), "$or": within},
        };
        if f.wants(Part::Pageviews) {
            let mut fields = vec!["url", "clientId", "sessionId", "timestamp"];
            fields.extend(scan::BREAKDOWN_FIELDS.map(|(_, field)| field));
            self.each(Channel::Pageviews, scope.clone(), &fields, |d| {
                fold_pageview(d, true, f)
            })
            .await?;
        }
        if f.wants(Part::Events) {
            self.each(Channel::Events, scope.clone(), event_fields(f), |d| {
                fold_event(d, f)
            })
            .await?;
        }
        if f.wants(Part::Errors) {
            self.each(Channel::Errors, scope.clone(), &ERROR_FIELDS, |d| {
                fold_error(d, f)
            })
            .await?;
        }
        if f.wants(Part::Performance) {
            let mut fields = METRICS.to_vec();
            fields.push("timestamp");
            self.each(Channel::Performance, scope.clone(), &fields, |d| {
                fold_vitals(d, f)
            })
            .await?;
        }
        Ok(())
    }

    async fn scan_pageviews(
        &self,
        project: DocId,
        range: TimeRange,
        client: Option<&str>,
        f: &mut (dyn Sink + Send),
    ) -> StoreResult<()> {
        let mut m = Match::scope(project, range);
        m.eq("clientId", client);
        let mut fields = vec!["url", "clientId", "sessionId", "timestamp"];
        fields.extend(scan::BREAKDOWN_FIELDS.map(|(_, field)| field));
        self.each(Channel::Pageviews, m.build(), &fields, |d| {
            fold_pageview(d, true, f)
        })
        .await
    }

    async fn scan_performance(
        &self,
        project: DocId,
        range: TimeRange,
        filters: &PerformanceFilters,
        f: &mut Folder,
    ) -> StoreResult<()> {
        let mut fields = METRICS.to_vec();
        fields.push("timestamp");
        let filter = super::diagnostics::performance_filter(project, range, filters);
        self.each(Channel::Performance, filter, &fields, |d| fold_vitals(d, f))
            .await
    }

    async fn scan_events(
        &self,
        project: DocId,
        range: TimeRange,
        name: Option<&str>,
        segment: &SegmentFilters,
        f: &mut Folder,
    ) -> StoreResult<()> {
        let filter = super::reports::events_match(&Match::scope(project, range), name, segment);
        self.each(Channel::Events, filter, event_fields(f), |d| {
            fold_event(d, f)
        })
        .await
    }

    async fn scan_errors(
        &self,
        project: DocId,
        range: TimeRange,
        filters: &ErrorFilters,
        f: &mut Folder,
    ) -> StoreResult<()> {
        let filter = super::diagnostics::errors_filter(project, range, filters);
        self.each(Channel::Errors, filter, &ERROR_FIELDS, |d| {
            fold_error(d, f);
        })
        .await
    }

    async fn client_ids(
        &self,
        project: DocId,
        names: &[String],
        create: bool,
    ) -> StoreResult<HashMap<String, u32>> {
        let mut found = self.known_clients(project, names).await?;
        let missing: Vec<&String> = names.iter().filter(|c| !found.contains_key(*c)).collect();
        if !create || missing.is_empty() {
            return Ok(found);
        }
        let n = i64::try_from(missing.len()).unwrap_or(i64::MAX);
        let state = self.state_inc(project, "clients", n).await?;
        let first = int(&state, "clients") - n;
        let entries: Vec<Document> = missing
            .iter()
            .enumerate()
            .map(|(i, c)| {
                doc! {
                    "_id": format!("{project}:{c}"),
                    "project": oid(project),
                    "client": c.as_str(),
                    "id": first + i as i64,
                    "createdAt": date(crate::domain::timestamp::now_ms()),
                }
            })
            .collect();
        if u32::try_from(first + n).is_err() {
            return Err(StoreError::other(
                "rollupclients: dense ids exhausted".into(),
            ));
        }
        match self
            .coll(ROLLUP_CLIENTS)
            .insert_many(entries)
            .ordered(false)
            .await
        {
            Ok(_) => {
                for (i, c) in missing.into_iter().enumerate() {
                    found.insert(c.clone(), u32::try_from(first + i as i64).map_err(corrupt)?);
                }
            }
            // Another build named some of them first: theirs stand.
            Err(e) if only_id_duplicates(&e) => {
                let missing: Vec<String> = missing.into_iter().cloned().collect();
                found.extend(self.known_clients(project, &missing).await?);
            }
            Err(e) => return Err(map_err(e)),
        }
        Ok(found)
    }

    /// No transactions: each row is written (unless a newer one is there), then the epoch is
    /// checked; rows built before a purge or clear are removed again. A row whose version moved
    /// meanwhile is stored: it is stale at once and rebuilt by the next read.
    async fn store(
        &self,
        project: DocId,
        built_in_epoch: i64,
        rows: Vec<NewRollup>,
    ) -> StoreResult<usize> {
        if self.current_epoch(project).await? != built_in_epoch {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut statements = Vec::with_capacity(rows.len());
        for row in rows {
            if row.blobs.iter().map(|(_, b)| b.len()).sum::<usize>() > MAX_ROLLUP_BYTES {
                tracing::warn!(%project, row.grain, row.bucket, "rollup too large to store; rebuilt on read");
                continue;
            }
            let id = bucket_id(project, row.grain, row.bucket);
            let mut set = doc! {
                "project": oid(project),
                "grain": row.grain,
                "bucket": row.bucket,
                "ver": row.ver,
                "fmt": FMT,
            };
            for (part, data) in row.blobs {
                set.insert(
                    field(part),
                    Binary {
                        subtype: BinarySubtype::Generic,
                        bytes: data,
                    },
                );
            }
            // By `_id` alone (FerretDB pushes only that down to its storage): a row racing
            // another instance's newer one may replace it; it is stale then and rebuilt.
            statements.push(doc! {
                "q": {"_id": &id},
                "u": {"$set": set},
                "upsert": true,
            });
            ids.push(id);
        }
        if let Some((_, code, message)) = self.updates(ROLLUPS, statements).await?.first() {
            return Err(StoreError::other(format!(
                "rollups: write error {code}: {message}"
            )));
        }
        let written = ids;
        if self.current_epoch(project).await? != built_in_epoch {
            // A purge or clear ran meanwhile; it may have deleted before these writes.
            self.coll(ROLLUPS)
                .delete_many(doc! {"_id": {"$in": written}})
                .await
                .map_err(map_err)?;
            return Ok(0);
        }
        Ok(written.len())
    }
}

/// Feeds one page-view document (with its breakdown values when `dims`); client ids go by name,
/// the engine gives them their dense ids.
fn fold_pageview(d: &Document, dims: bool, f: &mut (impl Sink + ?Sized)) {
    let Some(ts) = scan::millis(d, "timestamp") else {
        return;
    };
    let visitor = match scan::text(d, "clientId") {
        Some(client) => Visitor::Unnamed(client),
        None => Visitor::Anonymous,
    };
    let values = if dims {
        scan::BREAKDOWN_FIELDS.map(|(_, field)| scan::text(d, field))
    } else {
        [None; 8]
    };
    let (url, session) = (
        scan::text(d, "url").unwrap_or(""),
        scan::text(d, "sessionId"),
    );
    f.pageview(ts, url, visitor, session, values);
}

/// What [`fold_event`] reads.
/// What [`fold_event`] reads for `f`: the properties only when wanted.
fn event_fields(f: &(impl Sink + ?Sized)) -> &'static [&'static str] {
    if f.wants_properties() {
        &["eventName", "timestamp", "durationMs", "properties"]
    } else {
        &["eventName", "timestamp", "durationMs"]
    }
}

/// Feeds one event document (one without a time is skipped).
fn fold_event(d: &Document, f: &mut (impl Sink + ?Sized)) {
    let Some(ts) = scan::millis(d, "timestamp") else {
        return;
    };
    let name = scan::text(d, "eventName").unwrap_or("");
    f.event(ts, name, scan::number(d, "durationMs"));
    if f.wants_properties()
        && let Some(serde_json::Value::Object(map)) =
            d.get("properties").map(super::docs::bson_to_json)
    {
        f.properties(ts, name, &map);
    }
}

/// What [`fold_error`] reads (and `_id`, the storage order).
const ERROR_FIELDS: [&str; 12] = [
    "fingerprint",
    "errorType",
    "stackTrace",
    "context",
    "userId",
    "clientId",
    "timestamp",
    "message",
    "browser",
    "os",
    "osVersion",
    "deviceType",
];

/// Feeds one error document.
fn fold_error(d: &Document, f: &mut (impl Sink + ?Sized)) {
    let Some(ts) = scan::millis(d, "timestamp") else {
        return;
    };
    let text = |field| scan::text(d, field);
    f.error(
        ts,
        &ErrorRow {
            fingerprint: text("fingerprint"),
            order: d.get_object_id("_id").map_or([0xff; 12], |o| o.bytes()),
            message: text("message"),
            browser: text("browser"),
            os: text("os"),
            os_version: text("osVersion"),
            device_type: text("deviceType"),
            error_type: text("errorType"),
            stack: text("stackTrace"),
            page: d
                .get_document("context")
                .ok()
                .and_then(|c| c.get_str("url").ok()),
            visitor: text("userId").or_else(|| text("clientId")),
        },
    );
}

/// Feeds one web-vitals document.
fn fold_vitals(d: &Document, f: &mut (impl Sink + ?Sized)) {
    if let Some(ts) = scan::millis(d, "timestamp") {
        f.vitals(ts, METRICS.map(|m| scan::number(d, m)));
    }
}
