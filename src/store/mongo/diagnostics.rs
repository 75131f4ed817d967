//! The errors and performance drill-downs (reference §4.5, §4.6) over SuperInsights 1.x's
//! `errors` and `performancemetrics` collections: the figures come from the analytics engine
//! (as on SQLite); this file compiles their filters and reads an error's newest occurrences (a
//! `find` with sort and limit).

use super::{
    MongoStore,
    docs::{ERRORS, bson_to_json},
    errors::CollectAll,
    filters::Match,
    scan,
};
use crate::analytics::engine;
use crate::domain::{
    analytics::{
        ErrorDetail, ErrorFilters, ErrorOccurrence, ErrorsReport, PerformanceFilters,
        PerformanceReport, TimeRange,
    },
    ids::DocId,
    model::Channel,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use mongodb::bson::{Bson, Document, doc};

pub(super) fn errors_filter(project: DocId, range: TimeRange, f: &ErrorFilters) -> Document {
    Match::scope(project, range)
        .eq("browser", f.browser.as_deref())
        .eq("errorType", f.error_type.as_deref())
        .segment(Channel::Errors, &f.segment)
        .build()
}

pub(super) fn performance_filter(
    project: DocId,
    range: TimeRange,
    f: &PerformanceFilters,
) -> Document {
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
        line_number: scan::number(d, "lineNumber"),
        column_number: scan::number(d, "columnNumber"),
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
    pub(super) async fn report_errors(
        &self,
        project: DocId,
        range: TimeRange,
        filters: &ErrorFilters,
        top: usize,
    ) -> StoreResult<ErrorsReport> {
        engine::errors_report(self, project, range, filters, top).await
    }

    pub(super) async fn report_error_detail(
        &self,
        project: DocId,
        fingerprint: &str,
        range: TimeRange,
        limit: usize,
    ) -> StoreResult<ErrorDetail> {
        let mut detail = engine::error_detail(self, project, range, fingerprint).await?;
        // MongoDB reads `limit(0)` as "no limit".
        if detail.total_occurrences == 0 || limit == 0 {
            return Ok(detail);
        }
        let filter = Match::scope(project, range)
            .eq("fingerprint", Some(fingerprint))
            .build();
        detail.occurrences = self
            .coll(ERRORS)
            .find(filter)
            .sort(doc! {"timestamp": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .collect_all()
            .await?
            .iter()
            .map(occurrence_from_doc)
            .collect();
        Ok(detail)
    }

    pub(super) async fn report_performance(
        &self,
        project: DocId,
        range: TimeRange,
        filters: &PerformanceFilters,
    ) -> StoreResult<PerformanceReport> {
        engine::performance_report(self, project, range, filters).await
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
                signature: None,
            },
        );
        assert_eq!(e.get_str("browser").unwrap(), "Safari");
        assert_eq!(e.get_str("errorType").unwrap(), "window_error");
        // An error's ids match its own fields or the same keys in `context`.
        assert_eq!(
            e.get_array("$and").unwrap(),
            &vec![
                Bson::Document(doc! {"$or": [{"clientId": "c1"}, {"context.clientId": "c1"}]}),
                Bson::Document(doc! {"$or": [{"userId": "u1"}, {"context.userId": "u1"}]}),
            ]
        );
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
