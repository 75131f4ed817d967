//! The page-views and events drill-down reports (reference §4.3, §4.4): the figures come from
//! the analytics engine (`analytics::engine`); this file reads the pages of occurrences they
//! list, and compiles the reports' filters into a `WHERE` with every value bound, never
//! interpolated (`filters::Where`): the URL prefix is compared with `substr` (so `%` and `_`
//! match themselves) and property paths for `json_extract` are bound too.

use super::{SqliteStore, filters::Where, map_err, rows};
use crate::analytics::engine;
use crate::domain::{
    analytics::{
        DETAIL_OCCURRENCES, EventDetail, EventFilters, EventsReport, Occurrence, PageViewFilters,
        PageViewsReport, Pagination, RecentPaging, TimeRange,
    },
    ids::DocId,
    model::Channel,
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use serde_json::Value;
use sqlx::{QueryBuilder, Row};

/// The events `WHERE`: scope, optional exact name, and the events' segment fields.
pub(super) fn events_where(scope: &Where, name: Option<&str>, segment: &SegmentFilters) -> Where {
    let mut w = scope.clone();
    w.eq("event_name", name).segment(Channel::Events, segment);
    w
}

impl SqliteStore {
    pub(super) async fn report_pageviews(
        &self,
        id: DocId,
        range: TimeRange,
        f: &PageViewFilters,
    ) -> StoreResult<PageViewsReport> {
        match self.pk_for_stats(id).await? {
            Some(pk) => engine::pageviews_report(self, pk, range, f).await,
            None => Ok(PageViewsReport::default()),
        }
    }

    pub(super) async fn report_events(
        &self,
        id: DocId,
        range: TimeRange,
        f: &EventFilters,
        paging: RecentPaging,
    ) -> StoreResult<EventsReport> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(EventsReport {
                recent_pagination: Pagination::of(paging, 0),
                ..Default::default()
            });
        };
        let mut report = engine::events_report(self, pk, range, f, paging).await?;
        let w = events_where(
            &Where::scope(pk, range),
            f.event_name.as_deref(),
            &f.segment,
        );
        let mut q = QueryBuilder::new(
            "SELECT rowid AS rid, event_name, ts, session_id, duration_ms, properties FROM events",
        );
        w.push_to(&mut q);
        q.push(" ORDER BY ts DESC, rowid DESC LIMIT ")
            .push_bind(i64::from(paging.limit))
            .push(" OFFSET ")
            .push_bind(i64::try_from(paging.offset()).unwrap_or(i64::MAX));
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        report.recent_occurrences = q
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
        Ok(report)
    }

    pub(super) async fn report_event_detail(
        &self,
        id: DocId,
        range: TimeRange,
        event_name: &str,
        segment: &SegmentFilters,
    ) -> StoreResult<EventDetail> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(EventDetail::default());
        };
        let mut detail = engine::event_detail(self, pk, range, event_name, segment).await?;
        let w = events_where(&Where::scope(pk, range), Some(event_name), segment);
        let mut q = QueryBuilder::new("SELECT rowid AS row_key, * FROM events");
        w.push_to(&mut q);
        q.push(" ORDER BY ts DESC, rowid DESC LIMIT ")
            .push_bind(i64::from(DETAIL_OCCURRENCES));
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        detail.occurrences = q
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
        Ok(detail)
    }
}

/// An ObjectId-shaped `_id` for a SQLite row (its rowid in 24 hex digits); SQLite rows keep no
/// document id of their own.
fn row_id(rowid: i64) -> String {
    format!("{rowid:024x}")
}
