//! The errors and performance drill-downs (reference §4.5, §4.6) as MongoDB queries and
//! aggregation pipelines, over SuperInsights 1.x's `errors` and `performancemetrics`
//! collections. The same figures as `sqlite/diagnostics.rs`, pinned by the contract suite.

use super::{
    MongoStore,
    docs::{ERRORS, PERFORMANCE, bson_to_json},
    errors::{CollectAll, map_err},
    filters::{Match, count_of, day_of_timestamp, float_of},
};
use crate::domain::{
    analytics::{
        ErrorDetail, ErrorFilters, ErrorGroup, ErrorOccurrence, ErrorsReport, METRICS, MetricsDay,
        Percentiles, PerformanceFigures, PerformanceFilters, PerformanceReport, TimeRange,
        rank_index,
    },
    ids::DocId,
    model::Channel,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use mongodb::bson::{Bson, Document, doc};

fn errors_filter(project: DocId, range: TimeRange, f: &ErrorFilters) -> Document {
    Match::scope(project, range)
        .eq("browser", f.browser.as_deref())
        .eq("errorType", f.error_type.as_deref())
        .segment(Channel::Errors, &f.segment)
        .build()
}

fn performance_filter(project: DocId, range: TimeRange, f: &PerformanceFilters) -> Document {
    Match::scope(project, range)
        .eq("deviceType", f.device_type.as_deref())
        .eq("browser", f.browser.as_deref())
        .segment(Channel::Performance, &f.segment)
        .build()
}

fn text_of(d: &Document, field: &str) -> Option<String> {
    d.get_str(field).ok().map(str::to_string)
}

fn millis_of(d: &Document, field: &str) -> Option<i64> {
    d.get_datetime(field).ok().map(|t| t.timestamp_millis())
}

fn occurrence_from_doc(d: &Document) -> ErrorOccurrence {
    ErrorOccurrence {
        timestamp: millis_of(d, "timestamp").map(to_iso).unwrap_or_default(),
        message: text_of(d, "message").unwrap_or_default(),
        error_type: text_of(d, "errorType"),
        stack_trace: text_of(d, "stackTrace"),
        source_file: text_of(d, "sourceFile"),
        line_number: float_of(d, "lineNumber"),
        column_number: float_of(d, "columnNumber"),
        browser: text_of(d, "browser"),
        browser_version: text_of(d, "browserVersion"),
        os: text_of(d, "os"),
        os_version: text_of(d, "osVersion"),
        device_type: text_of(d, "deviceType"),
        country: text_of(d, "country"),
        context: d
            .get("context")
            .filter(|c| !matches!(c, Bson::Null))
            .map(bson_to_json),
    }
}

impl MongoStore {
    async fn aggregate_in(
        &self,
        collection: &str,
        pipeline: Vec<Document>,
    ) -> StoreResult<Vec<Document>> {
        self.coll(collection)
            .aggregate(pipeline)
            .collect_all()
            .await
    }

    pub(super) async fn report_errors(
        &self,
        project: DocId,
        range: TimeRange,
        filters: &ErrorFilters,
        top: usize,
    ) -> StoreResult<ErrorsReport> {
        let filter = errors_filter(project, range, filters);
        let total = self
            .coll(ERRORS)
            .count_documents(filter.clone())
            .await
            .map_err(map_err)?;
        if total == 0 {
            return Ok(ErrorsReport::default());
        }
        let fingerprints = self
            .aggregate_in(
                ERRORS,
                vec![
                    doc! {"$match": filter.clone()},
                    doc! {"$group": {"_id": "$fingerprint"}},
                    doc! {"$count": "n"},
                ],
            )
            .await?;
        // Sorted by (fingerprint, time, _id) — the {projectId, fingerprint, timestamp} index
        // order — so `$first` is each group's earliest occurrence.
        let groups = self
            .aggregate_in(
                ERRORS,
                vec![
                    doc! {"$match": filter.clone()},
                    doc! {"$sort": {"fingerprint": 1, "timestamp": 1, "_id": 1}},
                    doc! {"$group": {
                        "_id": "$fingerprint",
                        "count": {"$sum": 1},
                        "firstSeen": {"$first": "$timestamp"},
                        "message": {"$first": "$message"},
                        "browser": {"$first": "$browser"},
                        "os": {"$first": "$os"},
                        "osVersion": {"$first": "$osVersion"},
                        "deviceType": {"$first": "$deviceType"},
                    }},
                    doc! {"$sort": {"count": -1, "_id": 1}},
                    doc! {"$limit": i64::try_from(top).unwrap_or(i64::MAX)},
                ],
            )
            .await?;
        let grouped_errors = groups
            .iter()
            .map(|g| ErrorGroup {
                fingerprint: text_of(g, "_id").unwrap_or_default(),
                message: text_of(g, "message").unwrap_or_default(),
                browser: text_of(g, "browser"),
                os: text_of(g, "os"),
                os_version: text_of(g, "osVersion"),
                device_type: text_of(g, "deviceType"),
                first_seen: millis_of(g, "firstSeen").map(to_iso).unwrap_or_default(),
                count: count_of(g, "count"),
            })
            .collect();
        Ok(ErrorsReport {
            total_errors: total,
            unique_fingerprints: fingerprints.first().map(|d| count_of(d, "n")).unwrap_or(0),
            errors_by_day: self.days_matching(Channel::Errors, filter).await?,
            grouped_errors,
        })
    }

    pub(super) async fn report_error_detail(
        &self,
        project: DocId,
        fingerprint: &str,
        range: TimeRange,
        limit: usize,
    ) -> StoreResult<ErrorDetail> {
        let filter = Match::scope(project, range)
            .eq("fingerprint", Some(fingerprint))
            .build();
        let totals = self
            .aggregate_in(
                ERRORS,
                vec![
                    doc! {"$match": filter.clone()},
                    doc! {"$group": {
                        "_id": Bson::Null,
                        "n": {"$sum": 1},
                        "first": {"$min": "$timestamp"},
                        "last": {"$max": "$timestamp"},
                    }},
                ],
            )
            .await?;
        let Some(totals) = totals.first().filter(|t| count_of(t, "n") > 0) else {
            return Ok(ErrorDetail {
                fingerprint: fingerprint.to_string(),
                ..Default::default()
            });
        };
        // MongoDB reads `limit(0)` as "no limit".
        let occurrences = if limit == 0 {
            Vec::new()
        } else {
            self.coll(ERRORS)
                .find(filter.clone())
                .sort(doc! {"timestamp": -1, "_id": -1})
                .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                .collect_all()
                .await?
                .iter()
                .map(occurrence_from_doc)
                .collect()
        };
        Ok(ErrorDetail {
            fingerprint: fingerprint.to_string(),
            total_occurrences: count_of(totals, "n"),
            first_seen: millis_of(totals, "first").map(to_iso),
            last_seen: millis_of(totals, "last").map(to_iso),
            errors_by_day: self.days_matching(Channel::Errors, filter).await?,
            occurrences,
        })
    }

    pub(super) async fn report_performance(
        &self,
        project: DocId,
        range: TimeRange,
        filters: &PerformanceFilters,
    ) -> StoreResult<PerformanceReport> {
        let coll = self.coll(PERFORMANCE);
        let filter = performance_filter(project, range, filters);
        let total = coll
            .count_documents(filter.clone())
            .await
            .map_err(map_err)?;
        let mut complete_filter = filter.clone();
        for metric in ["lcp", "cls", "fid", "ttfb"] {
            complete_filter.insert(metric, doc! {"$type": "number"});
        }
        let complete = if total == 0 {
            0
        } else {
            coll.count_documents(complete_filter)
                .await
                .map_err(map_err)?
        };
        let mut percentiles = Vec::new();
        for metric in METRICS {
            let mut at = Percentiles::default();
            if total > 0 {
                let mut with_metric = filter.clone();
                with_metric.insert(metric, doc! {"$type": "number"});
                let n = coll
                    .count_documents(with_metric.clone())
                    .await
                    .map_err(map_err)?;
                for (p, slot) in [(0.5, &mut at.p50), (0.75, &mut at.p75), (0.95, &mut at.p95)] {
                    if n == 0 {
                        continue;
                    }
                    let found = coll
                        .find_one(with_metric.clone())
                        .sort(doc! {metric: 1})
                        .skip(rank_index(n, p))
                        .projection(doc! {metric: 1})
                        .await
                        .map_err(map_err)?;
                    *slot = found.as_ref().and_then(|d| float_of(d, metric));
                }
            }
            percentiles.push((metric.to_string(), at));
        }
        let metrics_by_day = if total == 0 {
            Vec::new()
        } else {
            self.aggregate_in(
                PERFORMANCE,
                vec![
                    doc! {"$match": filter},
                    doc! {"$group": {
                        "_id": day_of_timestamp(),
                        "lcp": {"$avg": "$lcp"}, "cls": {"$avg": "$cls"}, "fid": {"$avg": "$fid"},
                        "ttfb": {"$avg": "$ttfb"}, "inp": {"$avg": "$inp"},
                    }},
                    doc! {"$sort": {"_id": 1}},
                ],
            )
            .await?
            .iter()
            .map(|r| MetricsDay {
                date: r.get_str("_id").unwrap_or_default().to_string(),
                lcp: float_of(r, "lcp"),
                cls: float_of(r, "cls"),
                fid: float_of(r, "fid"),
                ttfb: float_of(r, "ttfb"),
                inp: float_of(r, "inp"),
            })
            .collect()
        };
        Ok(PerformanceReport {
            figures: PerformanceFigures {
                percentiles,
                metrics_by_day,
                total_measurements: total,
                implausible_values: 0,
            },
            complete_measurements: complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::segment::SegmentFilters;

    #[test]
    fn filters_map_onto_superinsights_fields() {
        let project = DocId::new();
        let range = TimeRange {
            start_ms: 0,
            end_ms: 1,
        };
        let segment = SegmentFilters {
            client_id: Some("c1".into()),
            user_id: Some("u1".into()),
            meta: [("plan".to_string(), "pro".to_string())].into(),
            ..Default::default()
        };
        let e = errors_filter(
            project,
            range,
            &ErrorFilters {
                browser: Some("Safari".into()),
                error_type: Some("window_error".into()),
                segment: segment.clone(),
            },
        );
        assert_eq!(e.get_str("browser").unwrap(), "Safari");
        assert_eq!(e.get_str("errorType").unwrap(), "window_error");
        assert_eq!(e.get_str("context.clientId").unwrap(), "c1");
        assert_eq!(e.get_str("context.userId").unwrap(), "u1");
        assert_eq!(e.get_str("context.plan").unwrap(), "pro");
        let p = performance_filter(
            project,
            range,
            &PerformanceFilters {
                device_type: Some("mobile".into()),
                browser: None,
                segment,
            },
        );
        assert_eq!(p.get_str("deviceType").unwrap(), "mobile");
        assert_eq!(p.get_str("clientId").unwrap(), "c1");
        assert_eq!(p.get_str("properties.userId").unwrap(), "u1");
        assert_eq!(p.get_str("properties.plan").unwrap(), "pro");
        assert!(p.get("browser").is_none());
    }
}
