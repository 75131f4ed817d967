//! The page-views and events drill-down reports (reference §4.3, §4.4) as MongoDB aggregation
//! pipelines: the same figures as `sqlite/reports.rs`, pinned by the shared contract suite.
//! The URL prefix becomes an anchored regex with every metacharacter escaped; percentiles are
//! exact lower nearest rank (sorted durations, element ⌊p·(n−1)⌋).

use super::{
    MongoStore,
    docs::{self, collection_of},
    errors::{CollectAll, map_err},
    filters::{Match, count_of, float_of},
};
use crate::domain::{
    analytics::{
        DETAIL_OCCURRENCES, DurationSummary, EventDetail, EventFilters, EventsReport, Occurrence,
        PageStats, PageViewFilters, PageViewsReport, Pagination, PropertyKey, REPORT_TOP,
        RecentPaging, SCHEMA_SAMPLES, TimeRange, TimedEvent, TopEvent,
    },
    ids::DocId,
    model::Channel,
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;

const TOP: i64 = REPORT_TOP as i64;

fn events_match(scope: &Match, name: Option<&str>, segment: &SegmentFilters) -> Document {
    let mut m = scope.clone();
    m.eq("eventName", name).segment(Channel::Events, segment);
    m.build()
}

fn pageviews_match(project: DocId, range: TimeRange, f: &PageViewFilters) -> Document {
    let mut m = Match::scope(project, range);
    m.eq("deviceType", f.device_type.map(|d| d.as_str()))
        .prefix("url", f.url_prefix.as_deref())
        .segment(Channel::Pageviews, &f.segment);
    m.build()
}

fn millis_of(d: &Document, field: &str) -> i64 {
    match d.get(field) {
        Some(Bson::DateTime(t)) => t.timestamp_millis(),
        _ => 0,
    }
}

/// The lower-nearest-rank element `p` of the sorted array field `values`.
fn ranked(values: &str, p: f64) -> Document {
    doc! {"$arrayElemAt": [
        format!("${values}"),
        {"$toInt": {"$floor": {"$multiply": [p, {"$subtract": [{"$size": format!("${values}")}, 1]}]}}},
    ]}
}

/// `$group` and `$project` stages of a duration summary over `durationMs` (sorted ascending
/// before them), grouped by `key`.
fn duration_stages(key: Bson) -> [Document; 2] {
    [
        doc! {"$group": {
            "_id": key, "count": {"$sum": 1}, "avgMs": {"$avg": "$durationMs"},
            "maxMs": {"$max": "$durationMs"}, "durations": {"$push": "$durationMs"},
        }},
        doc! {"$project": {
            "count": 1, "avgMs": 1, "maxMs": 1,
            "p50Ms": ranked("durations", 0.5), "p95Ms": ranked("durations", 0.95),
        }},
    ]
}

/// `m` narrowed to events with a plausible `durationMs` (`domain::plausible`).
fn timed(mut m: Document) -> Document {
    m.insert(
        "durationMs",
        doc! {"$type": "number", "$lte": crate::domain::plausible::MAX_EVENT_DURATION_MS},
    );
    m
}

/// `m` narrowed to events whose `durationMs` lies beyond the plausible bound.
fn implausibly_timed(mut m: Document) -> Document {
    m.insert(
        "durationMs",
        doc! {"$gt": crate::domain::plausible::MAX_EVENT_DURATION_MS},
    );
    m
}

impl MongoStore {
    async fn run(&self, channel: Channel, pipeline: Vec<Document>) -> StoreResult<Vec<Document>> {
        // Sorting all timed durations of a wide range can pass the 100 MB in-memory limit.
        self.coll(collection_of(channel))
            .aggregate(pipeline)
            .allow_disk_use(true)
            .collect_all()
            .await
    }

    pub(super) async fn report_pageviews(
        &self,
        project: DocId,
        range: TimeRange,
        f: &PageViewFilters,
    ) -> StoreResult<PageViewsReport> {
        let m = pageviews_match(project, range, f);
        let visitors = self
            .run(
                Channel::Pageviews,
                vec![
                    doc! {"$match": m.clone()},
                    // Missing and null clientIds group together: one more "visitor", as in 1.x.
                    doc! {"$group": {"_id": "$clientId"}},
                    doc! {"$count": "visitors"},
                ],
            )
            .await?;
        let top_pages = self
            .run(
                Channel::Pageviews,
                vec![
                    doc! {"$match": m.clone()},
                    doc! {"$group": {
                        "_id": {"url": "$url", "client": {"$ifNull": ["$clientId", Bson::Null]}},
                        "views": {"$sum": 1},
                    }},
                    doc! {"$group": {"_id": "$_id.url", "views": {"$sum": "$views"}, "uniqueVisitors": {"$sum": 1}}},
                    doc! {"$sort": {"views": -1, "_id": 1}},
                    doc! {"$limit": TOP},
                ],
            )
            .await?
            .iter()
            .map(|r| PageStats {
                url: r.get_str("_id").unwrap_or_default().to_string(),
                views: count_of(r, "views"),
                unique_visitors: count_of(r, "uniqueVisitors"),
            })
            .collect();
        let views_by_day = self.days_matching(Channel::Pageviews, m).await?;
        Ok(PageViewsReport {
            total_views: views_by_day.iter().map(|d| d.count).sum(),
            unique_visitors: visitors
                .first()
                .map(|d| count_of(d, "visitors"))
                .unwrap_or(0),
            views_by_day,
            top_pages,
        })
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
        let events_by_day = self.days_matching(Channel::Events, m.clone()).await?;
        let total_events = events_by_day.iter().map(|d| d.count).sum();
        let unique_event_names = self
            .run(
                Channel::Events,
                vec![
                    doc! {"$match": events_match(&scope, None, &f.segment)},
                    doc! {"$group": {"_id": "$eventName"}},
                    doc! {"$sort": {"_id": 1}},
                ],
            )
            .await?
            .iter()
            .filter_map(|r| r.get_str("_id").ok().map(str::to_string))
            .collect();
        let top_events = self
            .run(
                Channel::Events,
                vec![
                    doc! {"$match": m.clone()},
                    doc! {"$group": {"_id": "$eventName", "count": {"$sum": 1}, "last": {"$max": "$timestamp"}}},
                    doc! {"$sort": {"count": -1, "last": -1, "_id": 1}},
                    doc! {"$limit": TOP},
                ],
            )
            .await?
            .iter()
            .map(|r| TopEvent {
                event_name: r.get_str("_id").unwrap_or_default().to_string(),
                count: count_of(r, "count"),
                most_recent_timestamp: to_iso(millis_of(r, "last")),
            })
            .collect();
        // Sorted on `timestamp` alone so the compound indexes serve it.
        let recent_occurrences = self
            .coll(collection_of(Channel::Events))
            .find(m.clone())
            .sort(doc! {"timestamp": -1})
            .skip(paging.offset())
            .limit(i64::from(paging.limit.max(1)))
            .projection(doc! {"eventName": 1, "timestamp": 1, "sessionId": 1, "durationMs": 1, "properties": 1})
            .collect_all()
            .await?
            .iter()
            .map(|d| Occurrence {
                id: d
                    .get_object_id("_id")
                    .map(|o| o.to_hex())
                    .unwrap_or_default(),
                event_name: d.get_str("eventName").unwrap_or_default().to_string(),
                timestamp: to_iso(millis_of(d, "timestamp")),
                session_id: d.get_str("sessionId").ok().map(str::to_string),
                duration_ms: float_of(d, "durationMs"),
                properties: d
                    .get("properties")
                    .map(docs::bson_to_json)
                    .unwrap_or(Value::Object(Default::default())),
            })
            .collect();
        let implausible_durations = self
            .coll(collection_of(Channel::Events))
            .count_documents(implausibly_timed(m.clone()))
            .await
            .map_err(map_err)?;
        let mut pipeline = vec![doc! {"$match": timed(m)}, doc! {"$sort": {"durationMs": 1}}];
        pipeline.extend(duration_stages(Bson::String("$eventName".into())));
        pipeline.push(doc! {"$sort": {"p95Ms": -1, "avgMs": -1, "maxMs": -1, "_id": 1}});
        pipeline.push(doc! {"$limit": TOP});
        let timed_events = self
            .run(Channel::Events, pipeline)
            .await?
            .iter()
            .map(|r| TimedEvent {
                event_name: r.get_str("_id").unwrap_or_default().to_string(),
                count: count_of(r, "count"),
                avg_ms: float_of(r, "avgMs").unwrap_or(0.0),
                max_ms: float_of(r, "maxMs").unwrap_or(0.0),
                p50_ms: float_of(r, "p50Ms"),
                p95_ms: float_of(r, "p95Ms"),
            })
            .collect();
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
            .sort(doc! {"timestamp": -1})
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
        let property_schema = self
            .run(
                Channel::Events,
                vec![
                    doc! {"$match": m.clone()},
                    doc! {"$project": {
                        "timestamp": 1,
                        "kv": {"$objectToArray": {"$cond": [
                            {"$eq": [{"$type": "$properties"}, "object"]}, "$properties", {},
                        ]}},
                    }},
                    doc! {"$unwind": "$kv"},
                    doc! {"$group": {"_id": {"k": "$kv.k", "v": "$kv.v"}, "last": {"$max": "$timestamp"}}},
                    doc! {"$sort": {"_id.k": 1, "last": -1}},
                    doc! {"$group": {"_id": "$_id.k", "samples": {"$push": "$_id.v"}}},
                    doc! {"$project": {"samples": {"$slice": ["$samples", SCHEMA_SAMPLES as i64]}}},
                    doc! {"$sort": {"_id": 1}},
                ],
            )
            .await?
            .iter()
            .map(|r| PropertyKey {
                key: r.get_str("_id").unwrap_or_default().to_string(),
                sample_values: r
                    .get_array("samples")
                    .map(|a| a.iter().map(docs::bson_to_json).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let events_by_day = self.days_matching(Channel::Events, m.clone()).await?;
        let implausible = self
            .coll(collection_of(Channel::Events))
            .count_documents(implausibly_timed(m.clone()))
            .await
            .map_err(map_err)?;
        let mut pipeline = vec![doc! {"$match": timed(m)}, doc! {"$sort": {"durationMs": 1}}];
        pipeline.extend(duration_stages(Bson::Null));
        let duration_summary = self
            .run(Channel::Events, pipeline)
            .await?
            .first()
            .map(|r| DurationSummary {
                count: count_of(r, "count"),
                avg_ms: float_of(r, "avgMs"),
                p50_ms: float_of(r, "p50Ms"),
                p95_ms: float_of(r, "p95Ms"),
                max_ms: float_of(r, "maxMs"),
                implausible,
            })
            .unwrap_or(DurationSummary {
                implausible,
                ..Default::default()
            });
        Ok(EventDetail {
            occurrences,
            property_schema,
            events_by_day,
            duration_summary,
        })
    }
}
