//! The page-views and events drill-down reports (reference §4.3, §4.4) in SQL. Every filter value
//! is bound, never interpolated (`filters::Where`): the URL prefix is compared with `substr` (so
//! `%` and `_` match themselves) and property paths for `json_extract` are bound too. Percentiles are exact lower
//! nearest rank, picked with window functions.

use super::{
    SqliteStore,
    filters::{Where, count, days, duration_is_plausible},
    map_err, rows,
};
use crate::domain::{
    analytics::{
        DETAIL_OCCURRENCES, DurationSummary, EventDetail, EventFilters, EventsReport, Occurrence,
        PageViewFilters, PageViewsReport, Pagination, PropertyKey, REPORT_TOP, RecentPaging,
        SCHEMA_SAMPLES, TimeRange, TimedEvent, TopEvent,
    },
    ids::DocId,
    model::Channel,
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use serde_json::Value;
use sqlx::{QueryBuilder, Row, SqliteConnection};

/// A property's value as JSON text, so that distinct values stay distinct by type
/// (`"3"` vs `3`, `true` vs `1`).
const JSON_VALUE: &str = "CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
    WHEN 'null' THEN 'null' WHEN 'object' THEN j.value WHEN 'array' THEN j.value \
    ELSE json_quote(j.value) END";

/// The events `WHERE`: scope, optional exact name, and the events' segment fields.
fn events_where(scope: &Where, name: Option<&str>, segment: &SegmentFilters) -> Where {
    let mut w = scope.clone();
    w.eq("event_name", name).segment(Channel::Events, segment);
    w
}

/// The page views `WHERE`: scope, device, literal URL prefix, and the page-view segment fields.
pub(super) fn pageviews_where(scope: Where, f: &PageViewFilters) -> Where {
    let mut w = scope;
    w.eq("device_type", f.device_type.map(|d| d.as_str()))
        .prefix("url", f.url_prefix.as_deref())
        .segment(Channel::Pageviews, &f.segment);
    w
}

/// `SELECT`s the lower-nearest-rank p50 and p95 of `d` over rows numbered `i` (0-based, by `d`)
/// among `n`.
const RANKED_PERCENTILES: &str = "MAX(CASE WHEN i = CAST((n - 1) * 0.5 AS INTEGER) THEN d END) AS p50, \
     MAX(CASE WHEN i = CAST((n - 1) * 0.95 AS INTEGER) THEN d END) AS p95";

impl SqliteStore {
    pub(super) async fn report_pageviews(
        &self,
        id: DocId,
        range: TimeRange,
        f: &PageViewFilters,
    ) -> StoreResult<PageViewsReport> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.key_for_stats(&mut conn, id).await? else {
            return Ok(PageViewsReport::default());
        };
        drop(conn);
        crate::analytics::engine::pageviews_report(self, pk, range, f).await
    }

    pub(super) async fn report_events(
        &self,
        id: DocId,
        range: TimeRange,
        f: &EventFilters,
        paging: RecentPaging,
    ) -> StoreResult<EventsReport> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(scope) = self.report_scope(&mut conn, id, range).await? else {
            return Ok(EventsReport {
                recent_pagination: Pagination::of(paging, 0),
                ..Default::default()
            });
        };
        let w = events_where(&scope, f.event_name.as_deref(), &f.segment);
        let all_names = events_where(&scope, None, &f.segment);

        let events_by_day = days(&mut conn, "events", &w).await?;
        let total_events = events_by_day.iter().map(|d| d.count).sum();

        let mut q = QueryBuilder::new("SELECT DISTINCT event_name FROM events");
        all_names.push_to(&mut q);
        q.push(" ORDER BY event_name");
        let unique_event_names = q
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.try_get("event_name").map_err(map_err))
            .collect::<StoreResult<_>>()?;

        let mut q =
            QueryBuilder::new("SELECT event_name, COUNT(*) AS n, MAX(ts) AS last FROM events");
        w.push_to(&mut q);
        q.push(" GROUP BY event_name ORDER BY n DESC, last DESC, event_name LIMIT ")
            .push_bind(REPORT_TOP as i64);
        let top_events = q
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(TopEvent {
                    event_name: r.try_get("event_name").map_err(map_err)?,
                    count: count(r, "n")?,
                    most_recent_timestamp: to_iso(r.try_get("last").map_err(map_err)?),
                })
            })
            .collect::<StoreResult<_>>()?;

        let mut q = QueryBuilder::new(
            "SELECT rowid AS rid, event_name, ts, session_id, duration_ms, properties FROM events",
        );
        w.push_to(&mut q);
        q.push(" ORDER BY ts DESC, rowid DESC LIMIT ")
            .push_bind(i64::from(paging.limit))
            .push(" OFFSET ")
            .push_bind(i64::try_from(paging.offset()).unwrap_or(i64::MAX));
        let recent_occurrences = q
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                let properties: String = r.try_get("properties").map_err(map_err)?;
                Ok(Occurrence {
                    id: row_id(r.try_get("rid").map_err(map_err)?),
                    event_name: r.try_get("event_name").map_err(map_err)?,
                    timestamp: to_iso(r.try_get("ts").map_err(map_err)?),
                    session_id: r.try_get("session_id").map_err(map_err)?,
                    duration_ms: r.try_get("duration_ms").map_err(map_err)?,
                    properties: serde_json::from_str(&properties).unwrap_or(Value::Null),
                })
            })
            .collect::<StoreResult<_>>()?;

        let mut q = QueryBuilder::new(
            "WITH r AS (SELECT event_name, duration_ms AS d, \
             ROW_NUMBER() OVER (PARTITION BY event_name ORDER BY duration_ms) - 1 AS i, \
             COUNT(*) OVER (PARTITION BY event_name) AS n FROM events",
        );
        w.push_to(&mut q);
        q.push(format_args!(
            " AND {}) SELECT event_name, COUNT(*) AS n, AVG(d) AS avg_ms, \
             MAX(d) AS max_ms, {RANKED_PERCENTILES} FROM r GROUP BY event_name \
             ORDER BY p95 DESC, avg_ms DESC, max_ms DESC, event_name LIMIT ",
            duration_is_plausible()
        ))
        .push_bind(REPORT_TOP as i64);
        let timed_events = q
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(TimedEvent {
                    event_name: r.try_get("event_name").map_err(map_err)?,
                    count: count(r, "n")?,
                    avg_ms: r.try_get("avg_ms").map_err(map_err)?,
                    max_ms: r.try_get("max_ms").map_err(map_err)?,
                    p50_ms: r.try_get("p50").map_err(map_err)?,
                    p95_ms: r.try_get("p95").map_err(map_err)?,
                })
            })
            .collect::<StoreResult<_>>()?;
        let implausible_durations = implausible_durations(&mut conn, &w).await?;

        Ok(EventsReport {
            total_events,
            events_by_day,
            unique_event_names,
            top_events,
            recent_occurrences,
            recent_pagination: Pagination::of(paging, total_events),
            timed_events,
            implausible_durations,
        })
    }

    pub(super) async fn report_event_detail(
        &self,
        id: DocId,
        range: TimeRange,
        event_name: &str,
        segment: &SegmentFilters,
    ) -> StoreResult<EventDetail> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(scope) = self.report_scope(&mut conn, id, range).await? else {
            return Ok(EventDetail::default());
        };
        let w = events_where(&scope, Some(event_name), segment);

        let mut q = QueryBuilder::new("SELECT rowid AS row_key, * FROM events");
        w.push_to(&mut q);
        q.push(" ORDER BY ts DESC, rowid DESC LIMIT ")
            .push_bind(i64::from(DETAIL_OCCURRENCES));
        let occurrences = q
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                let mut doc = rows::to_json(r, id);
                if let Value::Object(map) = &mut doc {
                    let key = map.remove("rowKey").and_then(|v| v.as_i64()).unwrap_or(0);
                    map.insert("_id".into(), Value::String(row_id(key)));
                    // Event detail is readable through public links: never hand out IPs.
                    map.remove("ip");
                }
                doc
            })
            .collect();

        let mut q = QueryBuilder::new(format!(
            "WITH kv AS (SELECT j.key AS k, {JSON_VALUE} AS v, MAX(ts) AS last \
             FROM events, json_each(events.properties) AS j"
        ));
        w.push_to(&mut q);
        q.push(
            " AND json_type(events.properties) = 'object' GROUP BY k, v), \
             ranked AS (SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY last DESC, v) AS rn FROM kv) \
             SELECT k, v FROM ranked WHERE rn <= ",
        )
        .push_bind(SCHEMA_SAMPLES as i64)
        .push(" ORDER BY k, rn");
        let mut property_schema: Vec<PropertyKey> = Vec::new();
        for r in q.build().fetch_all(&mut *conn).await.map_err(map_err)? {
            let key: String = r.try_get("k").map_err(map_err)?;
            let text: String = r.try_get("v").map_err(map_err)?;
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            match property_schema.last_mut() {
                Some(last) if last.key == key => last.sample_values.push(value),
                _ => property_schema.push(PropertyKey {
                    key,
                    sample_values: vec![value],
                }),
            }
        }

        let events_by_day = days(&mut conn, "events", &w).await?;

        let mut q = QueryBuilder::new(
            "WITH r AS (SELECT duration_ms AS d, ROW_NUMBER() OVER (ORDER BY duration_ms) - 1 AS i, \
             COUNT(*) OVER () AS n FROM events",
        );
        w.push_to(&mut q);
        q.push(format_args!(
            " AND {}) SELECT COUNT(*) AS n, AVG(d) AS avg_ms, MAX(d) AS max_ms, \
             {RANKED_PERCENTILES} FROM r",
            duration_is_plausible()
        ));
        let r = q.build().fetch_one(&mut *conn).await.map_err(map_err)?;
        let duration_summary = DurationSummary {
            count: count(&r, "n")?,
            avg_ms: r.try_get("avg_ms").map_err(map_err)?,
            p50_ms: r.try_get("p50").map_err(map_err)?,
            p95_ms: r.try_get("p95").map_err(map_err)?,
            max_ms: r.try_get("max_ms").map_err(map_err)?,
            implausible: implausible_durations(&mut conn, &w).await?,
        };
        Ok(EventDetail {
            occurrences,
            property_schema,
            events_by_day,
            duration_summary,
        })
    }
}

/// Events matching `w` whose `durationMs` lies beyond the plausible bound (stored, but left out
/// of the duration figures).
async fn implausible_durations(conn: &mut SqliteConnection, w: &Where) -> StoreResult<u64> {
    let mut q = QueryBuilder::new("SELECT COUNT(*) AS n FROM events");
    w.push_to(&mut q);
    q.push(format_args!(
        " AND duration_ms NOT BETWEEN 0 AND {}",
        crate::domain::plausible::MAX_EVENT_DURATION_MS
    ));
    let r = q.build().fetch_one(&mut *conn).await.map_err(map_err)?;
    count(&r, "n")
}

/// An ObjectId-shaped `_id` for a SQLite row (its rowid in 24 hex digits); SQLite rows keep no
/// document id of their own.
fn row_id(rowid: i64) -> String {
    format!("{rowid:024x}")
}
