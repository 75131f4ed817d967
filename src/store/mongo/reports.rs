//! The page-views and events drill-down reports (reference §4.3, §4.4): the same figures as
//! `sqlite/reports.rs`, pinned by the shared contract suite. Each report reads the matching
//! documents with `find` (projected to the fields it needs) and folds them in Rust (`scan`);
//! the recent-occurrence page and the event detail's occurrences are `find`s with sort, skip and
//! limit. The URL prefix becomes an anchored regex with every metacharacter escaped;
//! percentiles are exact lower nearest rank over the plausible durations.

use super::{
    MongoStore,
    docs::{self, collection_of},
    errors::CollectAll,
    filters::Match,
    scan,
};
use crate::domain::{
    analytics::{
        DETAIL_OCCURRENCES, DurationSummary, EventDetail, EventFilters, EventsReport, Occurrence,
        PageViewFilters, PageViewsReport, Pagination, REPORT_TOP, RecentPaging, TimeRange,
    },
    ids::DocId,
    model::Channel,
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use mongodb::bson::{Document, doc};
use serde_json::Value;

fn events_match(scope: &Match, name: Option<&str>, segment: &SegmentFilters) -> Document {
    let mut m = scope.clone();
    m.eq("eventName", name).segment(Channel::Events, segment);
    m.build()
}

pub(super) fn pageviews_match(project: DocId, range: TimeRange, f: &PageViewFilters) -> Document {
    let mut m = Match::scope(project, range);
    m.eq("deviceType", f.device_type.map(|d| d.as_str()))
        .prefix("url", f.url_prefix.as_deref())
        .segment(Channel::Pageviews, &f.segment);
    m.build()
}

impl MongoStore {
    pub(super) async fn report_pageviews(
        &self,
        project: DocId,
        range: TimeRange,
        f: &PageViewFilters,
    ) -> StoreResult<PageViewsReport> {
        crate::analytics::engine::pageviews_report(self, project, range, f).await
    }

    pub(super) async fn report_events(
        &self,
        project: DocId,
        range: TimeRange,
        f: &EventFilters,
        paging: RecentPaging,
    ) -> StoreResult<EventsReport> {
        let scope = Match::scope(project, range);
        let m = events_match(&scope, f.event_name.as_deref(), &f.segment);
        let docs = self
            .rows(
                Channel::Events,
                m.clone(),
                &["eventName", "timestamp", "durationMs"],
            )
            .await?;
        let total_events = docs.len() as u64;
        // The name list ignores the name filter (it is what the filter is picked from).
        let unique_event_names = if f.event_name.is_some() {
            let all = self
                .rows(
                    Channel::Events,
                    events_match(&scope, None, &f.segment),
                    &["eventName"],
                )
                .await?;
            scan::event_names(&all)
        } else {
            scan::event_names(&docs)
        };
        let (timed_events, implausible_durations) = scan::timed_events(&docs, REPORT_TOP);
        Ok(EventsReport {
            total_events,
            events_by_day: scan::days(&docs),
            unique_event_names,
            top_events: scan::top_events(&docs, REPORT_TOP),
            recent_occurrences: self.recent_occurrences(m, paging).await?,
            recent_pagination: Pagination::of(paging, total_events),
            timed_events,
            implausible_durations,
        })
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
        let m = events_match(&Match::scope(project, range), Some(event_name), segment);
        let occurrences = self
            .coll(collection_of(Channel::Events))
            .find(m.clone())
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
        let docs = self
            .rows(
                Channel::Events,
                m,
                &["timestamp", "durationMs", "properties"],
            )
            .await?;
        let durations = scan::durations(&docs);
        Ok(EventDetail {
            occurrences,
            property_schema: scan::property_schema(&docs),
            events_by_day: scan::days(&docs),
            duration_summary: DurationSummary {
                count: durations.count(),
                avg_ms: durations.avg(),
                p50_ms: durations.at(0.5),
                p95_ms: durations.at(0.95),
                max_ms: durations.max(),
                implausible: durations.implausible,
            },
        })
    }
}
