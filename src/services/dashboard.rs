//! The project dashboard (SuperInsights 1.x `/dashboard/data`): the four blocks for a timeframe,
//! with the same JSON shape — `{timeframe, pageViews, events, errors, performance}` where
//! performance carries `percentiles` (`lcp_p50` …), `metricsByDay`, `totalMeasurements` and
//! `performanceScore` — plus `breakdowns` (page views by referrer host, UTM, country, browser, OS,
//! device type), which 1.x never showed; its clients ignore the extra field.

use crate::{
    domain::{
        analytics::{
            BREAKDOWN_TOP, Breakdowns, ErrorsSummary, EventsSummary, METRICS, MetricsDay,
            PageViewsSummary, PerformanceScore, Timeframe,
        },
        ids::DocId,
        timestamp::now_ms,
    },
    store::{StoreResult, Stores},
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Top pages and top events on the dashboard (SuperInsights 1.x: 5).
pub const DASHBOARD_TOP: usize = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceBlock {
    /// `lcp_p50`, `lcp_p75`, `lcp_p95`, … for every metric; `null` without data.
    pub percentiles: BTreeMap<String, Option<f64>>,
    pub metrics_by_day: Vec<MetricsDay>,
    pub total_measurements: u64,
    pub performance_score: PerformanceScore,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub timeframe: Timeframe,
    pub page_views: PageViewsSummary,
    pub events: EventsSummary,
    pub errors: ErrorsSummary,
    pub performance: PerformanceBlock,
    /// Top [`BREAKDOWN_TOP`] values per dimension.
    #[serde(default)]
    pub breakdowns: Breakdowns,
}

/// Computes the dashboard of a project for a timeframe ending now.
pub async fn dashboard(
    stores: &Stores,
    project: DocId,
    timeframe: Timeframe,
) -> StoreResult<Dashboard> {
    let range = timeframe.range(now_ms());
    let stats = &stores.stats;
    let (page_views, events, errors, figures, breakdowns) = tokio::try_join!(
        stats.pageviews_summary(project, range, DASHBOARD_TOP),
        stats.events_summary(project, range, DASHBOARD_TOP),
        stats.errors_summary(project, range),
        stats.performance_summary(project, range),
        stats.breakdowns(project, range, BREAKDOWN_TOP),
    )?;
    let mut percentiles = BTreeMap::new();
    for metric in METRICS {
        let p = figures.of(metric);
        for (suffix, value) in [("p50", p.p50), ("p75", p.p75), ("p95", p.p95)] {
            percentiles.insert(format!("{metric}_{suffix}"), value);
        }
    }
    Ok(Dashboard {
        timeframe,
        page_views,
        events,
        errors,
        performance: PerformanceBlock {
            percentiles,
            performance_score: figures.score(),
            metrics_by_day: figures.metrics_by_day,
            total_measurements: figures.total_measurements,
        },
        breakdowns,
    })
}
