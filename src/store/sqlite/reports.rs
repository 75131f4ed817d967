//! The page-views and events drill-down reports (reference §4.3, §4.4) in SQL. Every filter value
//! is bound, never interpolated: the URL prefix is compared with `substr` (so `%` and `_` match
//! themselves) and property paths for `json_extract` are bound too. Percentiles are exact lower
//! nearest rank, picked with window functions.

use super::{SqliteStore, map_err, rows};
use crate::domain::{
    analytics::{
        DETAIL_OCCURRENCES, DayCount, DurationSummary, EventDetail, EventFilters, EventsReport,
        Occurrence, PageStats, PageViewFilters, PageViewsReport, Pagination, PropertyKey,
        REPORT_TOP, RecentPaging, SCHEMA_SAMPLES, TimeRange, TimedEvent, TopEvent,
    },
    ids::DocId,
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

/// The UTC day (`YYYY-MM-DD`) of `ts` (epoch ms) in SQL.
const DAY: &str = "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')";

/// A property's value as JSON text, so that distinct values stay distinct by type
/// (`"3"` vs `3`, `true` vs `1`).
const JSON_VALUE: &str = "CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
    WHEN 'null' THEN 'null' WHEN 'object' THEN j.value WHEN 'array' THEN j.value \
    ELSE json_quote(j.value) END";

/// The `json_extract` path of a segment property key: dots nest, as in MongoDB's
/// `properties.a.b`; each label is quoted (keys are `[A-Za-z0-9_.-]`, never a quote).
fn property_path(key: &str) -> String {
    let mut path = String::from("$");
    for label in key.split('.') {
        path.push_str(".\"");
        path.push_str(label);
        path.push('"');
    }
    path
}

/// Appends ` WHERE project = ? AND ts BETWEEN ? AND ?`.
fn push_scope(q: &mut QueryBuilder<'_, Sqlite>, pk: i64, range: TimeRange) {
    q.push(" WHERE project = ")
        .push_bind(pk)
        .push(" AND ts BETWEEN ")
        .push_bind(range.start_ms)
        .push(" AND ")
        .push_bind(range.end_ms);
}

/// Appends ` AND column = ?` for a present value.
fn push_equal(q: &mut QueryBuilder<'_, Sqlite>, column: &str, value: Option<&str>) {
    if let Some(v) = value {
        q.push(format_args!(" AND {column} = "))
            .push_bind(v.to_string());
    }
}

/// The events `WHERE`: scope, optional exact name, and the events' segment fields.
fn push_events_where(
    q: &mut QueryBuilder<'_, Sqlite>,
    pk: i64,
    range: TimeRange,
    name: Option<&str>,
    segment: &SegmentFilters,
) {
    push_scope(q, pk, range);
    push_equal(q, "event_name", name);
    push_equal(q, "client_id", segment.client_id.as_deref());
    if let Some(user) = &segment.user_id {
        q.push(" AND json_extract(properties, '$.userId') = ")
            .push_bind(user.clone());
    }
    for (key, value) in &segment.meta {
        q.push(" AND json_extract(properties, ")
            .push_bind(property_path(key))
            .push(") = ")
            .push_bind(value.clone());
    }
}

/// The page views `WHERE`: scope, device, literal URL prefix, and the page-view segment fields.
fn push_pageviews_where(
    q: &mut QueryBuilder<'_, Sqlite>,
    pk: i64,
    range: TimeRange,
    f: &PageViewFilters,
) {
    push_scope(q, pk, range);
    push_equal(q, "device_type", f.device_type.map(|d| d.as_str()));
    if let Some(prefix) = f.url_prefix.as_deref().filter(|p| !p.is_empty()) {
        // substr counts characters, like chars() here.
        q.push(" AND substr(url, 1, ")
            .push_bind(prefix.chars().count() as i64)
            .push(") = ")
            .push_bind(prefix.to_string());
    }
    let s = &f.segment;
    for (column, value) in [
        ("client_id", &s.client_id),
        ("device_type", &s.device_type),
        ("browser", &s.browser),
        ("os", &s.os),
        ("utm_source", &s.utm_source),
        ("utm_medium", &s.utm_medium),
        ("utm_campaign", &s.utm_campaign),
    ] {
        push_equal(q, column, value.as_deref());
    }
}

fn count(row: &sqlx::sqlite::SqliteRow, column: &str) -> StoreResult<u64> {
    Ok(row
        .try_get::<Option<i64>, _>(column)
        .map_err(map_err)?
        .unwrap_or(0) as u64)
}

fn days(rows: &[sqlx::sqlite::SqliteRow]) -> StoreResult<Vec<DayCount>> {
    rows.iter()
        .map(|r| {
            Ok(DayCount {
                date: r.try_get("day").map_err(map_err)?,
                count: count(r, "n")?,
            })
        })
        .collect()
}

/// `SELECT`s the lower-nearest-rank p50 and p95 of `d` over rows numbered `i` (0-based, by `d`)
/// among `n`.
const RANKED_PERCENTILES: &str = "MAX(CASE WHEN i = CAST((n - 1) * 0.5 AS INTEGER) THEN d END) AS p50, \
     MAX(CASE WHEN i = CAST((n - 1) * 0.95 AS INTEGER) THEN d END) AS p95";

impl SqliteStore {
    /// The project's integer key, `None` for an unknown project.
    async fn report_key(&self, conn: &mut SqliteConnection, id: DocId) -> StoreResult<Option<i64>> {
        match self.project_key(conn, id).await {
            Ok(pk) => Ok(Some(pk)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn report_pageviews(
        &self,
        id: DocId,
        range: TimeRange,
        f: &PageViewFilters,
    ) -> StoreResult<PageViewsReport> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.report_key(&mut conn, id).await? else {
            return Ok(PageViewsReport::default());
        };
        let mut q = QueryBuilder::new(
            "SELECT COUNT(*) AS total, COUNT(DISTINCT client_id) + COALESCE(MAX(client_id IS NULL), 0) AS uniques FROM pageviews",
        );
        push_pageviews_where(&mut q, pk, range, f);
        let totals = q.build().fetch_one(&mut *conn).await.map_err(map_err)?;

        let mut q = QueryBuilder::new(format!("SELECT {DAY} AS day, COUNT(*) AS n FROM pageviews"));
        push_pageviews_where(&mut q, pk, range, f);
        q.push(" GROUP BY day ORDER BY day");
        let by_day = q.build().fetch_all(&mut *conn).await.map_err(map_err)?;

        let mut q = QueryBuilder::new(
            "SELECT url, COUNT(*) AS n, COUNT(DISTINCT client_id) + MAX(client_id IS NULL) AS u FROM pageviews",
        );
        push_pageviews_where(&mut q, pk, range, f);
        q.push(" GROUP BY url ORDER BY n DESC, url LIMIT ")
            .push_bind(REPORT_TOP as i64);
        let top_pages = q
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(PageStats {
                    url: r.try_get("url").map_err(map_err)?,
                    views: count(r, "n")?,
                    unique_visitors: count(r, "u")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(PageViewsReport {
            total_views: count(&totals, "total")?,
            unique_visitors: count(&totals, "uniques")?,
            views_by_day: days(&by_day)?,
            top_pages,
        })
    }

    pub(super) async fn report_events(
        &self,
        id: DocId,
        range: TimeRange,
        f: &EventFilters,
        paging: RecentPaging,
    ) -> StoreResult<EventsReport> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.report_key(&mut conn, id).await? else {
            return Ok(EventsReport {
                recent_pagination: Pagination::of(paging, 0),
                ..Default::default()
            });
        };
        let name = f.event_name.as_deref();
        let segment = &f.segment;

        let mut q = QueryBuilder::new(format!("SELECT {DAY} AS day, COUNT(*) AS n FROM events"));
        push_events_where(&mut q, pk, range, name, segment);
        q.push(" GROUP BY day ORDER BY day");
        let events_by_day = days(&q.build().fetch_all(&mut *conn).await.map_err(map_err)?)?;
        let total_events = events_by_day.iter().map(|d| d.count).sum();

        let mut q = QueryBuilder::new("SELECT DISTINCT event_name FROM events");
        push_events_where(&mut q, pk, range, None, segment);
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
        push_events_where(&mut q, pk, range, name, segment);
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
        push_events_where(&mut q, pk, range, name, segment);
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
        push_events_where(&mut q, pk, range, name, segment);
        q.push(format_args!(
            " AND duration_ms IS NOT NULL) SELECT event_name, COUNT(*) AS n, AVG(d) AS avg_ms, \
             MAX(d) AS max_ms, {RANKED_PERCENTILES} FROM r GROUP BY event_name \
             ORDER BY p95 DESC, avg_ms DESC, max_ms DESC, event_name LIMIT "
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

        Ok(EventsReport {
            total_events,
            events_by_day,
            unique_event_names,
            top_events,
            recent_occurrences,
            recent_pagination: Pagination::of(paging, total_events),
            timed_events,
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
        let Some(pk) = self.report_key(&mut conn, id).await? else {
            return Ok(EventDetail::default());
        };
        let name = Some(event_name);

        let mut q = QueryBuilder::new("SELECT rowid AS row_key, * FROM events");
        push_events_where(&mut q, pk, range, name, segment);
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
                }
                doc
            })
            .collect();

        let mut q = QueryBuilder::new(format!(
            "WITH kv AS (SELECT j.key AS k, {JSON_VALUE} AS v, MAX(ts) AS last \
             FROM events, json_each(events.properties) AS j"
        ));
        push_events_where(&mut q, pk, range, name, segment);
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

        let mut q = QueryBuilder::new(format!("SELECT {DAY} AS day, COUNT(*) AS n FROM events"));
        push_events_where(&mut q, pk, range, name, segment);
        q.push(" GROUP BY day ORDER BY day");
        let events_by_day = days(&q.build().fetch_all(&mut *conn).await.map_err(map_err)?)?;

        let mut q = QueryBuilder::new(
            "WITH r AS (SELECT duration_ms AS d, ROW_NUMBER() OVER (ORDER BY duration_ms) - 1 AS i, \
             COUNT(*) OVER () AS n FROM events",
        );
        push_events_where(&mut q, pk, range, name, segment);
        q.push(format_args!(
            " AND duration_ms IS NOT NULL) SELECT COUNT(*) AS n, AVG(d) AS avg_ms, MAX(d) AS max_ms, \
             {RANKED_PERCENTILES} FROM r"
        ));
        let r = q.build().fetch_one(&mut *conn).await.map_err(map_err)?;
        let duration_summary = DurationSummary {
            count: count(&r, "n")?,
            avg_ms: r.try_get("avg_ms").map_err(map_err)?,
            p50_ms: r.try_get("p50").map_err(map_err)?,
            p95_ms: r.try_get("p95").map_err(map_err)?,
            max_ms: r.try_get("max_ms").map_err(map_err)?,
        };
        Ok(EventDetail {
            occurrences,
            property_schema,
            events_by_day,
            duration_summary,
        })
    }
}

/// An ObjectId-shaped `_id` for a SQLite row (its rowid in 24 hex digits); SQLite rows keep no
/// document id of their own.
fn row_id(rowid: i64) -> String {
    format!("{rowid:024x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_paths_nest_on_dots_and_quote_labels() {
        assert_eq!(property_path("plan"), "$.\"plan\"");
        assert_eq!(property_path("a.b-c"), "$.\"a\".\"b-c\"");
    }
}
