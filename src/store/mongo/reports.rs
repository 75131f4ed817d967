//! The page-views and events drill-down reports (reference §4.3, §4.4): the figures come from
//! the analytics engine (`analytics::engine`, as on SQLite); this file compiles their filters
//! and reads the occurrences they list (`find`s with sort, skip and limit). The URL prefix
//! becomes an anchored regex with every metacharacter escaped.

use super::{
    MongoStore,
    docs::{self, collection_of},
    errors::CollectAll,
    filters::Match,
    scan,
};
use crate::analytics::engine;
use crate::domain::{
    analytics::{
        DETAIL_OCCURRENCES, EventDetail, EventFilters, EventsReport, Occurrence, PageViewFilters,
        PageViewsReport, RecentPaging, TimeRange,
    },
    ids::DocId,
    model::Channel,
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use mongodb::bson::{Document, doc};
use serde_json::Value;

pub(super) fn events_match(
    scope: &Match,
    name: Option<&str>,
    segment: &SegmentFilters,
) -> Document {
    let mut m = scope.clone();
    m.eq("eventName", name).segment(Channel::Events, segment);
    m.build()
}

impl MongoStore {
    pub(super) async fn report_pageviews(
        &self,
        project: DocId,
        range: TimeRange,
        f: &PageViewFilters,
    ) -> StoreResult<PageViewsReport> {
        engine::pageviews_report(self, project, range, f).await
    }

    pub(super) async fn report_events(
        &self,
        project: DocId,
        range: TimeRange,
        f: &EventFilters,
        paging: RecentPaging,
    ) -> StoreResult<EventsReport> {
        let mut report = engine::events_report(self, project, range, f, paging).await?;
        let m = events_match(
            &Match::scope(project, range),
            f.event_name.as_deref(),
            &f.segment,
        );
        report.recent_occurrences = self.recent_occurrences(m, paging).await?;
        Ok(report)
    }

    /// One page of the matching events, newest first (the first stored first on equal times).
    async fn recent_occurrences(
        &self,
        filter: Document,
        paging: RecentPaging,
    ) -> StoreResult<Vec<Occurrence>> {
        // MongoDB reads `limit(0)` as "no limit".
        if paging.limit == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .coll(collection_of(Channel::Events))
            .find(filter)
            .sort(doc! {"timestamp": -1, "_id": -1})
            .skip(paging.offset())
            .limit(i64::from(paging.limit))
            .projection(doc! {"eventName": 1, "timestamp": 1, "sessionId": 1, "durationMs": 1, "properties": 1})
            .collect_all()
            .await?;
        Ok(found
            .iter()
            .map(|d| Occurrence {
                id: d
                    .get_object_id("_id")
                    .map(|o| o.to_hex())
                    .unwrap_or_default(),
                event_name: scan::text(d, "eventName").unwrap_or_default().to_string(),
                timestamp: to_iso(scan::millis(d, "timestamp").unwrap_or(0)),
                session_id: scan::text(d, "sessionId").map(str::to_string),
                duration_ms: scan::number(d, "durationMs"),
                properties: d
                    .get("properties")
                    .map(docs::bson_to_json)
                    .unwrap_or(Value::Object(Default::default())),
            })
            .collect())
    }

    pub(super) async fn report_event_detail(
        &self,
        project: DocId,
        range: TimeRange,
        event_name: &str,
        segment: &SegmentFilters,
    ) -> StoreResult<EventDetail> {
        let mut detail = engine::event_detail(self, project, range, event_name, segment).await?;
        let m = events_match(&Match::scope(project, range), Some(event_name), segment);
        detail.occurrences = self
            .coll(collection_of(Channel::Events))
            .find(m)
            // Event detail is readable through public links: never hand out IPs.
            .projection(doc! {"ip": 0})
            .sort(doc! {"timestamp": -1, "_id": -1})
            .limit(i64::from(DETAIL_OCCURRENCES))
            .collect_all()
            .await?
            .iter()
            .map(|d| {
                let mut json = docs::to_json(d);
                if let (Value::Object(map), Ok(id)) = (&mut json, d.get_object_id("_id")) {
                    map.insert("_id".into(), Value::String(id.to_hex()));
                }
                json
            })
            .collect();
        Ok(detail)
    }
}
