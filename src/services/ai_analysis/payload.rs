//! The payload sent to the model (reference §6.2): aggregates from the report ports and
//! sample documents passed through per-collection allowlists, so IP addresses and countries are
//! never sent to a provider.

use crate::ai::prompt::{self, Payload, TopEvent, TopFingerprint, TopPage, WorstRecords};
use crate::domain::{
    analytics::{
        ErrorFilters, EventFilters, METRICS, PageViewFilters, PerformanceFilters, RecentPaging,
        TimeRange,
    },
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::{Project, SampleQuery, StoreError, Stores};
use serde_json::Value;

fn pick(doc: &Value, fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for f in fields {
        if let Some(v) = doc.get(*f).filter(|v| !v.is_null()) {
            out.insert((*f).to_string(), v.clone());
        }
    }
    let mut v = Value::Object(out);
    prompt::truncate_strings(&mut v);
    v
}

/// Fields of each collection a sample may carry. IP, country and bot flags are not among them.
const ERROR_FIELDS: &[&str] = &[
    "timestamp",
    "message",
    "errorType",
    "stackTrace",
    "sourceFile",
    "lineNumber",
    "columnNumber",
    "browser",
    "browserVersion",
    "os",
    "osVersion",
    "deviceType",
    "context",
];
const EVENT_FIELDS: &[&str] = &[
    "timestamp",
    "eventName",
    "durationMs",
    "properties",
    "sessionId",
    "clientId",
];
const PAGEVIEW_FIELDS: &[&str] = &[
    "timestamp",
    "url",
    "title",
    "referrer",
    "utmSource",
    "utmMedium",
    "utmCampaign",
    "utmTerm",
    "utmContent",
    "deviceType",
    "browser",
    "os",
    "sessionId",
    "clientId",
];
const METRIC_FIELDS: &[&str] = &[
    "timestamp",
    "url",
    "lcp",
    "cls",
    "fid",
    "ttfb",
    "inp",
    "deviceType",
    "browser",
    "connectionType",
    "clientId",
];

/// Builds the payload of reference §6.2 for `project` over `range` within `segment`, from the
/// report ports and the sample port.
pub async fn build_payload(
    stores: &Stores,
    project: &Project,
    range: TimeRange,
    segment: &SegmentFilters,
) -> Result<Payload, StoreError> {
    let stats = &stores.stats;
    let doc_segment = segment.documents_only();
    let pageviews = stats
        .pageviews_report(
            project.id,
            range,
            &PageViewFilters {
                segment: segment.clone(),
                ..Default::default()
            },
        )
        .await?;
    let events = stats
        .events_report(
            project.id,
            range,
            &EventFilters {
                event_name: None,
                segment: doc_segment.clone(),
            },
            RecentPaging { page: 1, limit: 1 },
        )
        .await?;
    let errors = stats
        .errors_report(
            project.id,
            range,
            &ErrorFilters {
                segment: doc_segment.clone(),
                ..Default::default()
            },
            prompt::MAX_TOP,
        )
        .await?;
    let performance = stats
        .performance_report(
            project.id,
            range,
            &PerformanceFilters {
                segment: doc_segment.clone(),
                ..Default::default()
            },
        )
        .await?
        .figures;

    let mut p = Payload {
        meta: prompt::Meta {
            project_id: project.id.to_hex(),
            project_name: prompt::truncate(&project.name, prompt::MAX_PROJECT_NAME),
            environment: project.environment.clone(),
            start: to_iso(range.start_ms),
            end: to_iso(range.end_ms),
            segment: segment
                .to_params()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        },
        ..Default::default()
    };
    let last_days = |mut days: Vec<crate::domain::analytics::DayCount>| {
        let cut = days.len().saturating_sub(prompt::MAX_DAYS);
        days.drain(..cut);
        days
    };
    p.pageviews = prompt::PageviewsBlock {
        total_views: pageviews.total_views,
        unique_visitors: pageviews.unique_visitors,
        views_by_day: last_days(pageviews.views_by_day),
        top_pages: pageviews
            .top_pages
            .iter()
            .take(prompt::MAX_TOP)
            .map(|t| TopPage {
                url: prompt::truncate(&t.url, prompt::MAX_URL),
                views: t.views,
                unique_visitors: Some(t.unique_visitors),
            })
            .collect(),
    };
    p.events = prompt::EventsBlock {
        total_events: events.total_events,
        events_by_day: last_days(events.events_by_day),
        top_events: events
            .top_events
            .iter()
            .take(prompt::MAX_TOP)
            .map(|e| TopEvent {
                event_name: prompt::truncate(&e.event_name, prompt::MAX_EVENT_NAME),
                count: e.count,
            })
            .collect(),
    };
    p.timed_events = events
        .timed_events
        .iter()
        .take(prompt::MAX_TOP)
        .map(|t| prompt::TimedEvent {
            event_name: prompt::truncate(&t.event_name, prompt::MAX_EVENT_NAME),
            count: t.count,
            avg_ms: Some(t.avg_ms.round()),
            p50_ms: t.p50_ms.map(f64::round),
            p95_ms: t.p95_ms.map(f64::round),
            max_ms: Some(t.max_ms.round()),
        })
        .collect();
    p.performance = prompt::PerformanceBlock {
        total_measurements: performance.total_measurements,
        percentiles: METRICS
            .iter()
            .flat_map(|m| {
                let pc = performance.of(m);
                [("p50", pc.p50), ("p75", pc.p75), ("p95", pc.p95)]
                    .into_iter()
                    .filter_map(move |(name, v)| {
                        v.map(|v| (format!("{m}_{name}"), prompt::round(v)))
                    })
            })
            .collect(),
        metrics_by_day: {
            let mut days = performance.metrics_by_day.clone();
            let cut = days.len().saturating_sub(prompt::MAX_DAYS);
            days.drain(..cut);
            days
        },
    };

    // Samples, each document through its collection's allowlist.
    let limit = prompt::MAX_SAMPLES as u32;
    let sample = |query: SampleQuery, seg: &SegmentFilters| {
        let seg = seg.clone();
        async move {
            stores
                .ai
                .sample_documents(project.id, range, &seg, &query, limit)
                .await
        }
    };
    let mut top_fingerprints = Vec::new();
    for g in errors.grouped_errors.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(
            SampleQuery::ErrorsWithFingerprint(g.fingerprint.clone()),
            &doc_segment,
        )
        .await?;
        let newest = docs.first();
        top_fingerprints.push(TopFingerprint {
            fingerprint: g.fingerprint.clone(),
            count: g.count,
            message: prompt::truncate(&g.message, prompt::MAX_ERROR_MESSAGE),
            error_type: newest
                .and_then(|d| d.get("errorType"))
                .and_then(Value::as_str)
                .map(str::to_string),
            first_seen: Some(g.first_seen.clone()),
            last_seen: newest
                .and_then(|d| d.get("timestamp"))
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        p.samples.errors.insert(
            g.fingerprint.clone(),
            docs.iter().map(|d| pick(d, ERROR_FIELDS)).collect(),
        );
    }
    p.errors = prompt::ErrorsBlock {
        total_errors: errors.total_errors,
        unique_fingerprints: errors.unique_fingerprints,
        errors_by_day: last_days(errors.errors_by_day),
        top_fingerprints,
    };
    for t in events.timed_events.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(
            SampleQuery::SlowestEvents(t.event_name.clone()),
            &doc_segment,
        )
        .await?;
        p.samples.timed_events.insert(
            t.event_name.clone(),
            docs.iter().map(|d| pick(d, EVENT_FIELDS)).collect(),
        );
    }
    for e in events.top_events.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(
            SampleQuery::NewestEvents(e.event_name.clone()),
            &doc_segment,
        )
        .await?;
        p.samples.events.insert(
            e.event_name.clone(),
            docs.iter().map(|d| pick(d, EVENT_FIELDS)).collect(),
        );
    }
    for page in pageviews.top_pages.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(SampleQuery::NewestPageviews(page.url.clone()), segment).await?;
        p.samples.pageviews.insert(
            prompt::truncate(&page.url, prompt::MAX_URL),
            docs.iter().map(|d| pick(d, PAGEVIEW_FIELDS)).collect(),
        );
    }
    for metric in METRICS {
        let Some(threshold) = performance.of(metric).p95 else {
            continue;
        };
        let docs = sample(
            SampleQuery::WorstMetric {
                metric: metric.into(),
                threshold,
            },
            &doc_segment,
        )
        .await?;
        p.samples.web_vitals.insert(
            format!("{metric}_gte_p95"),
            WorstRecords {
                threshold: prompt::round(threshold),
                records: docs.iter().map(|d| pick(d, METRIC_FIELDS)).collect(),
            },
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn samples_keep_only_allowlisted_fields_and_truncate_long_strings() {
        let doc = json!({"url": "/a", "ip": "203.0.113.9", "country": "FR", "isBot": false, "title": "x".repeat(3000), "projectId": "p"});
        let picked = pick(&doc, PAGEVIEW_FIELDS);
        assert_eq!(picked.as_object().unwrap().len(), 2);
        assert_eq!(picked["url"], "/a");
        assert_eq!(
            picked["title"].as_str().unwrap().chars().count(),
            prompt::MAX_SAMPLE_STRING
        );
        for fields in [ERROR_FIELDS, EVENT_FIELDS, PAGEVIEW_FIELDS, METRIC_FIELDS] {
            assert!(!fields.iter().any(|f| matches!(*f, "ip" | "country")));
        }
    }
}
