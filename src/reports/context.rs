//! The report context (1.x `reportGenerator.js`): per data type the totals, the days (at most
//! [`MAX_DAYS`] rows), the top lists, percentiles, and optionally the AI insights; plus `meta`
//! and `summary`. Figures come from the analytics engine's drill-down reads (the same numbers the
//! pages show); this module only shapes them. The context is JSON: it is the JSON format, the
//! interactive view's snapshot, and what the other renderers read.

use super::model::DataType;
use crate::domain::{
    analytics::{
        ErrorFilters, EventFilters, METRICS, PageViewFilters, PerformanceFilters, RecentPaging,
        TimeRange,
    },
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::{Project, StoreResult, Stores};
use serde_json::{Value, json};

/// Day rows kept per data type (the newest).
pub const MAX_DAYS: usize = 90;
/// Rows of each top list.
pub const TOP: usize = 10;
/// What the AI section says when no analysis covers the period.
pub const NO_AI: &str = "No analysis available for this period.";

fn days(rows: Vec<crate::domain::analytics::DayCount>) -> Value {
    let skip = rows.len().saturating_sub(MAX_DAYS);
    Value::Array(
        rows.into_iter()
            .skip(skip)
            .map(|d| json!({"date": d.date, "count": d.count}))
            .collect(),
    )
}

/// What a context is about.
pub struct Scope<'a> {
    pub project: &'a Project,
    pub data_type: DataType,
    pub timeframe: &'a str,
    pub range: TimeRange,
    pub filters: &'a SegmentFilters,
    pub include_ai_insights: bool,
    pub now: i64,
}

/// Computes the context of `scope`.
pub async fn build(stores: &Stores, scope: &Scope<'_>) -> StoreResult<Value> {
    let project = scope.project;
    let range = scope.range;
    let mut ctx = serde_json::Map::new();
    let mut total: u64 = 0;
    for part in scope.data_type.parts() {
        let section = match part {
            DataType::Pageviews => {
                let filters = PageViewFilters {
                    segment: scope.filters.clone(),
                    ..PageViewFilters::default()
                };
                let r = stores
                    .stats
                    .pageviews_report(project.id, range, &filters)
                    .await?;
                total += r.total_views;
                json!({
                    "total": r.total_views,
                    "uniqueVisitors": r.unique_visitors,
                    "byDay": days(r.views_by_day),
                    "topPages": r.top_pages.iter().take(TOP).map(|p| json!({
                        "url": p.url, "views": p.views, "uniqueVisitors": p.unique_visitors,
                    })).collect::<Vec<_>>(),
                })
            }
            DataType::Events => {
                let filters = EventFilters {
                    event_name: None,
                    segment: scope.filters.documents_only(),
                };
                let r = stores
                    .stats
                    .events_report(project.id, range, &filters, RecentPaging::default())
                    .await?;
                total += r.total_events;
                json!({
                    "total": r.total_events,
                    "uniqueNames": r.unique_event_names.len(),
                    "byDay": days(r.events_by_day),
                    "topEvents": r.top_events.iter().take(TOP).map(|e| json!({
                        "eventName": e.event_name, "count": e.count,
                        "lastSeen": e.most_recent_timestamp,
                    })).collect::<Vec<_>>(),
                })
            }
            DataType::Errors => {
                let filters = ErrorFilters {
                    segment: scope.filters.documents_only(),
                    ..ErrorFilters::default()
                };
                let r = stores
                    .stats
                    .errors_report(project.id, range, &filters, TOP)
                    .await?;
                total += r.total_errors;
                json!({
                    "total": r.total_errors,
                    "uniqueFingerprints": r.unique_fingerprints,
                    "byDay": days(r.errors_by_day),
                    "topErrors": r.grouped_errors.iter().take(TOP).map(|g| json!({
                        "fingerprint": g.fingerprint, "message": g.message, "count": g.count,
                        "browser": g.browser, "firstSeen": g.first_seen,
                    })).collect::<Vec<_>>(),
                })
            }
            DataType::Performance | DataType::All => {
                let segment = scope.filters.documents_only();
                let filters = PerformanceFilters {
                    device_type: scope.filters.device_type.clone(),
                    browser: scope.filters.browser.clone(),
                    segment,
                };
                let r = stores
                    .stats
                    .performance_report(project.id, range, &filters)
                    .await?;
                total += r.figures.total_measurements;
                let mut percentiles = serde_json::Map::new();
                for m in METRICS {
                    let p = r.figures.of(m);
                    percentiles.insert(
                        m.to_string(),
                        json!({"p50": p.p50, "p75": p.p75, "p95": p.p95}),
                    );
                }
                json!({
                    "total": r.figures.total_measurements,
                    "percentiles": percentiles,
                })
            }
        };
        ctx.insert(part.as_str().to_string(), section);
    }
    if scope.include_ai_insights {
        ctx.insert(
            "aiInsights".into(),
            Value::String(ai_insights(stores, project, range).await?),
        );
    }
    ctx.insert(
        "summary".into(),
        json!({"totalCount": total, "empty": total == 0}),
    );
    ctx.insert(
        "meta".into(),
        json!({
            "projectId": project.id.to_hex(),
            "projectName": project.name,
            "projectIcon": project.icon,
            "environment": project.environment,
            "dataType": scope.data_type.as_str(),
            "timeframe": scope.timeframe,
            "start": to_iso(range.start_ms),
            "end": to_iso(range.end_ms),
            "filters": scope.filters,
            "generatedAt": to_iso(scope.now),
        }),
    );
    Ok(Value::Object(ctx))
}

/// The latest completed AI analysis whose range overlaps `range`, else [`NO_AI`].
async fn ai_insights(stores: &Stores, project: &Project, range: TimeRange) -> StoreResult<String> {
    let runs = stores.ai.runs_of_project(project.id, 50).await?;
    Ok(runs
        .into_iter()
        .filter(|r| r.status == crate::ai::model::RunStatus::Completed)
        .filter(|r| r.start <= range.end_ms && r.end >= range.start_ms)
        .find_map(|r| r.result_markdown)
        .unwrap_or_else(|| NO_AI.to_string()))
}

/// The data types present in a context, in 1.x's order.
pub fn sections(ctx: &Value) -> Vec<DataType> {
    DataType::VALUES[..4]
        .iter()
        .copied()
        .filter(|d| ctx.get(d.as_str()).is_some())
        .collect()
}

/// A human title for a data type.
pub fn title(d: DataType) -> &'static str {
    match d {
        DataType::Pageviews => "Page views",
        DataType::Events => "Events",
        DataType::Errors => "Errors",
        DataType::Performance => "Performance",
        DataType::All => "All data",
    }
}

/// An ISO time as `YYYY-MM-DD HH:MM UTC` (tables and headers); other text unchanged.
pub fn short_time(iso: &str) -> String {
    if iso.len() >= 16 && iso.as_bytes().get(10) == Some(&b'T') {
        format!("{} {} UTC", &iso[..10], &iso[11..16])
    } else {
        iso.to_string()
    }
}

/// A number from a context field (0 when absent).
pub fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A string from a context field ("" when absent).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The `(date, count)` rows of a section's `byDay`.
pub fn by_day(section: &Value) -> Vec<(String, u64)> {
    section
        .get("byDay")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| (s(r, "date").to_string(), num(r, "count")))
                .collect()
        })
        .unwrap_or_default()
}

/// The KPI lines of a section: (label, value) pairs shown in the summary.
pub fn kpis(d: DataType, section: &Value) -> Vec<(String, String)> {
    let n = |k: &str| num(section, k).to_string();
    match d {
        DataType::Pageviews => vec![
            ("Page views".into(), n("total")),
            ("Unique visitors".into(), n("uniqueVisitors")),
        ],
        DataType::Events => vec![
            ("Events".into(), n("total")),
            ("Distinct event names".into(), n("uniqueNames")),
        ],
        DataType::Errors => vec![
            ("Errors".into(), n("total")),
            ("Distinct errors".into(), n("uniqueFingerprints")),
        ],
        DataType::Performance | DataType::All => {
            let lcp = section
                .pointer("/percentiles/lcp/p75")
                .and_then(Value::as_f64)
                .map_or("–".to_string(), |v| format!("{v:.0} ms"));
            vec![("Measurements".into(), n("total")), ("LCP p75".into(), lcp)]
        }
    }
}

/// A section's table: (column headers, rows of cells).
pub fn table(d: DataType, section: &Value) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let rows = |key: &str| {
        section
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match d {
        DataType::Pageviews => (
            vec!["Page", "Views", "Unique visitors"],
            rows("topPages")
                .iter()
                .map(|r| {
                    vec![
                        s(r, "url").to_string(),
                        num(r, "views").to_string(),
                        num(r, "uniqueVisitors").to_string(),
                    ]
                })
                .collect(),
        ),
        DataType::Events => (
            vec!["Event", "Count", "Last seen"],
            rows("topEvents")
                .iter()
                .map(|r| {
                    vec![
                        s(r, "eventName").to_string(),
                        num(r, "count").to_string(),
                        short_time(s(r, "lastSeen")),
                    ]
                })
                .collect(),
        ),
        DataType::Errors => (
            vec!["Error", "Count", "First seen"],
            rows("topErrors")
                .iter()
                .map(|r| {
                    vec![
                        s(r, "message").to_string(),
                        num(r, "count").to_string(),
                        short_time(s(r, "firstSeen")),
                    ]
                })
                .collect(),
        ),
        DataType::Performance | DataType::All => (
            vec!["Metric", "p50", "p75", "p95"],
            METRICS
                .iter()
                .map(|m| {
                    let p = |q: &str| {
                        section
                            .pointer(&format!("/percentiles/{m}/{q}"))
                            .and_then(Value::as_f64)
                            .map_or("–".to_string(), |v| {
                                if *m == "cls" {
                                    format!("{v:.3}")
                                } else {
                                    format!("{v:.0}")
                                }
                            })
                    };
                    vec![m.to_uppercase(), p("p50"), p("p75"), p("p95")]
                })
                .collect(),
        ),
    }
}

/// A chart's bars for a section: (label, value) — days for counts, p75 per metric for
/// performance (the metrics in ms; CLS left out, it has no ms scale).
pub fn chart_series(d: DataType, section: &Value) -> Vec<(String, f64)> {
    match d {
        DataType::Performance | DataType::All => ["lcp", "fid", "ttfb", "inp"]
            .iter()
            .filter_map(|m| {
                section
                    .pointer(&format!("/percentiles/{m}/p75"))
                    .and_then(Value::as_f64)
                    .map(|v| (m.to_uppercase(), v))
            })
            .collect(),
        _ => by_day(section)
            .into_iter()
            .map(|(d, c)| (d, c as f64))
            .collect(),
    }
}
