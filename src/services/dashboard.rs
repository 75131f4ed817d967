//! The project dashboard (SuperInsights 1.x `/dashboard/data`): the four blocks for a timeframe,
//! with the same JSON shape — `{timeframe, pageViews, events, errors, performance}` where
//! performance carries `percentiles` (`lcp_p50` …), `metricsByDay`, `totalMeasurements` and
//! `performanceScore` — plus `breakdowns` (page views by referrer host, UTM, country, browser, OS,
//! device type and page, events by name, visits by entry and exit page, each up to
//! [`BREAKDOWN_LIST`] rows), `visits` (from the SDK's `sessionId`) and the `filters` it was
//! restricted to, which 1.x never had; its clients ignore the extra fields.
//!
//! The errors block keeps 1.x's fields (`uniqueFingerprints` counts 1.x fingerprints) and adds
//! the error groups by signature beside them (`uniqueSignatures`, `topGroups`,
//! [`ErrorFigures`]), read from the `ErrorSignatures` rollup part as the errors page does.
//!
//! Filters ([`DashboardFilters`]): the page-view fields restrict the page-view blocks (totals,
//! chart, pages, breakdowns); the event name restricts the events block; an error group
//! (`signature`) restricts the errors block (KPI, chart, groups table). Web vitals are never
//! filtered, and no filter crosses blocks (the page says so).

use crate::{
    analytics::series::{SeriesSource, TimeSeries, aligned_previous},
    domain::{
        analytics::{
            Breakdowns, DayRange, ErrorsSummary, EventsSummary, METRICS, MetricsDay,
            PageViewFilters, PageViewsSummary, PerformanceScore, TimeRange, Timeframe,
            VisitsSummary,
        },
        error_groups::ErrorFigures,
        ids::DocId,
        segment::SegmentFilters,
        timestamp::now_ms,
    },
    runtime::cache::DashboardCache,
    services::charts::{count_series, vitals_series},
    store::{StoreResult, Stores},
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Top pages and top events on the dashboard (SuperInsights 1.x: 5).
pub const DASHBOARD_TOP: usize = 5;

/// The most rows a dashboard table holds when expanded (and downloads as CSV).
pub const BREAKDOWN_LIST: usize = 200;

/// What a dashboard is restricted to: page views by [`PageViewFilters::matches`] (URL prefix or
/// path, referrer host, UTM fields, country, browser, OS, device; case-insensitive), events by
/// exact name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardFilters {
    #[serde(default)]
    pub pageviews: PageViewFilters,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// One error group's signature key (checked by `domain::params` before parsing): restricts
    /// the errors block only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// A custom range of days instead of the timeframe (`from`, `to`); not a filter of the
    /// figures, so [`DashboardFilters::is_empty`] ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<DayRange>,
    /// Draw the previous period over the page-view chart (`compare=1`); not a filter either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compare: bool,
}

/// The dashboard's filter parameters, in the order chips show them: (query name, label).
pub const FILTER_PARAMS: [(&str, &str); 13] = [
    ("urlPrefix", "Page"),
    ("entryPage", "Entry page"),
    ("exitPage", "Exit page"),
    ("referrer", "Referrer"),
    ("utmSource", "UTM source"),
    ("utmMedium", "UTM medium"),
    ("utmCampaign", "UTM campaign"),
    ("country", "Country"),
    ("browser", "Browser"),
    ("os", "OS"),
    ("deviceType", "Device"),
    ("eventName", "Event"),
    ("signature", "Error group"),
];

impl DashboardFilters {
    /// Reads the filters from checked query pairs (`domain::params::View::Dashboard`): values
    /// trimmed, empty ones unset; both spellings of the UTM fields.
    pub fn parse(pairs: &[(String, String)]) -> Self {
        let get = |names: &[&str]| {
            pairs
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .map(|(_, v)| v.trim())
                .find(|v| !v.is_empty())
                .map(str::to_string)
        };
        Self {
            pageviews: PageViewFilters {
                url_prefix: get(&["urlPrefix"]),
                country: get(&["country"]),
                referrer: get(&["referrer"]),
                entry_page: get(&["entryPage"]),
                exit_page: get(&["exitPage"]),
                device_type: None,
                segment: SegmentFilters {
                    browser: get(&["browser"]),
                    os: get(&["os"]),
                    device_type: get(&["deviceType"]),
                    utm_source: get(&["utmSource", "utm_source"]),
                    utm_medium: get(&["utmMedium", "utm_medium"]),
                    utm_campaign: get(&["utmCampaign", "utm_campaign"]),
                    ..Default::default()
                },
            },
            event_name: get(&["eventName"]),
            signature: get(&["signature"]),
            range: None,
            compare: get(&["compare"]).as_deref() == Some("1"),
        }
    }

    /// The set filters as (query name, value) pairs, in [`FILTER_PARAMS`] order.
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let p = &self.pageviews;
        let s = &p.segment;
        let values = [
            &p.url_prefix,
            &p.entry_page,
            &p.exit_page,
            &p.referrer,
            &s.utm_source,
            &s.utm_medium,
            &s.utm_campaign,
            &p.country,
            &s.browser,
            &s.os,
            &s.device_type,
            &self.event_name,
            &self.signature,
        ];
        (FILTER_PARAMS.iter().zip(values))
            .filter_map(|((name, _), v)| v.clone().map(|v| (*name, v)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.pageviews.is_empty() && self.event_name.is_none() && self.signature.is_none()
    }
}

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
    /// Visits by `sessionId` (not in 1.x).
    #[serde(default)]
    pub visits: VisitsSummary,
    pub events: EventsSummary,
    /// 1.x's `totalErrors`, `uniqueFingerprints`, `errorsByDay`, and the error groups.
    pub errors: ErrorFigures,
    pub performance: PerformanceBlock,
    /// Up to [`BREAKDOWN_LIST`] values per dimension, pages and event names included.
    #[serde(default)]
    pub breakdowns: Breakdowns,
    /// What the figures are restricted to.
    #[serde(default)]
    pub filters: DashboardFilters,
    /// The same key figures over the previous period of equal length, under the same filters.
    #[serde(default)]
    pub previous: Kpis,
    /// The charts' series, bucketed by the length of the range (minutes to months), the
    /// partial buckets marked; `viewsByDay` and the other day lists stay as in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charts: Option<DashboardCharts>,
}

/// The dashboard's four charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DashboardCharts {
    pub views: TimeSeries,
    pub events: TimeSeries,
    pub errors: TimeSeries,
    /// LCP and TTFB averages.
    pub vitals: TimeSeries,
    /// With `compare=1`: the page views of the previous period of equal length, bucket `i`
    /// beside bucket `i` of `views` (same bucket size; at most as many points).
    #[serde(
        default,
        rename = "viewsPrevious",
        skip_serializing_if = "Option::is_none"
    )]
    pub views_previous: Option<TimeSeries>,
}

/// The key figures a dashboard compares with the previous period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kpis {
    pub total_views: u64,
    pub unique_visitors: u64,
    #[serde(default)]
    pub visits: u64,
    /// Percent of visits with one page view (`None` without visits).
    #[serde(default)]
    pub bounce_rate: Option<f64>,
    /// Mean visit duration in milliseconds (`None` without visits).
    #[serde(default)]
    pub avg_visit_duration_ms: Option<f64>,
    #[serde(default)]
    pub views_per_visit: Option<f64>,
    pub total_events: u64,
    pub total_errors: u64,
    pub unique_fingerprints: u64,
    pub total_measurements: u64,
    /// `None` without measurements (there is no score to compare).
    pub performance_score: Option<u32>,
}

impl Dashboard {
    /// This period's key figures, to set beside [`Dashboard::previous`].
    pub fn kpis(&self) -> Kpis {
        let score = &self.performance.performance_score;
        Kpis {
            total_views: self.page_views.total_views,
            unique_visitors: self.page_views.unique_visitors,
            visits: self.visits.visits,
            bounce_rate: self.visits.bounce_rate,
            avg_visit_duration_ms: self.visits.avg_duration_ms,
            views_per_visit: self.visits.views_per_visit,
            total_events: self.events.total_events,
            total_errors: self.errors.summary.total_errors,
            unique_fingerprints: self.errors.summary.unique_fingerprints,
            total_measurements: self.performance.total_measurements,
            performance_score: score.measured.then_some(score.score),
        }
    }
}

/// Computes the dashboard of a project for a timeframe ending now on the system clock (the
/// demo's warm-up and the load tool; the views go through [`cached`], on the server's clock).
pub async fn dashboard(
    stores: &Stores,
    project: DocId,
    timeframe: Timeframe,
) -> StoreResult<Dashboard> {
    dashboard_filtered(
        stores,
        project,
        timeframe,
        &DashboardFilters::default(),
        now_ms(),
    )
    .await
}

/// Computes the dashboard of a project for a timeframe ending at `now` (epoch ms, the caller's
/// clock), restricted by `filters`.
pub async fn dashboard_filtered(
    stores: &Stores,
    project: DocId,
    timeframe: Timeframe,
    filters: &DashboardFilters,
    now: i64,
) -> StoreResult<Dashboard> {
    let range = match filters.range {
        Some(days) => days.range(now),
        None => timeframe.range(now),
    };
    let stats = &stores.stats;
    let event_name = filters.event_name.as_deref();
    let before = range.previous();
    // The page views of both periods come together: under a filter, one scan reads both.
    let (views, (events, names), errors, figures, mut previous) = tokio::try_join!(
        stats.pageview_figures(
            project,
            range,
            Some(before),
            &filters.pageviews,
            DASHBOARD_TOP,
            BREAKDOWN_LIST
        ),
        stats.event_figures(project, range, event_name, DASHBOARD_TOP, BREAKDOWN_LIST),
        stats.error_figures(project, range, filters.signature.as_deref(), BREAKDOWN_LIST),
        stats.performance_summary(project, range),
        previous_kpis(stores, project, before, filters),
    )?;
    let (page_views, visits, mut breakdowns) = (views.summary, views.visits, views.breakdowns);
    let (views_before, visits_before) = views.previous.unwrap_or_default();
    previous.total_views = views_before.total_views;
    previous.unique_visitors = views_before.unique_visitors;
    previous.visits = visits_before.visits;
    previous.bounce_rate = visits_before.bounce_rate;
    previous.avg_visit_duration_ms = visits_before.avg_duration_ms;
    previous.views_per_visit = visits_before.views_per_visit;
    breakdowns.event = names;
    let mut charts = dashboard_charts(
        stores,
        project,
        range,
        filters,
        (&page_views, &events, &errors.summary),
        &figures.metrics_by_day,
    )
    .await?;
    if filters.compare {
        let earlier = count_series(
            &*stores.stats,
            project,
            before,
            "views",
            SeriesSource::Pageviews(&filters.pageviews),
            &views_before.views_by_day,
        )
        .await?;
        charts.views_previous = Some(aligned_previous(&charts.views, earlier));
    }
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
        visits,
        events,
        errors,
        performance: PerformanceBlock {
            percentiles,
            performance_score: figures.score(),
            metrics_by_day: figures.metrics_by_day,
            total_measurements: figures.total_measurements,
        },
        breakdowns,
        filters: filters.clone(),
        previous,
        charts: Some(charts),
    })
}

/// The four charts of a dashboard over `range`, from its own day lists (or, in minute and hour
/// buckets, from raw scans under the same filters).
async fn dashboard_charts(
    stores: &Stores,
    project: DocId,
    range: TimeRange,
    filters: &DashboardFilters,
    (views, events, errors): (&PageViewsSummary, &EventsSummary, &ErrorsSummary),
    vitals: &[MetricsDay],
) -> StoreResult<DashboardCharts> {
    let stats = &*stores.stats;
    let segment = SegmentFilters::default();
    let error_filters = crate::domain::analytics::ErrorFilters {
        signature: filters.signature.clone(),
        ..Default::default()
    };
    let perf_filters = crate::domain::analytics::PerformanceFilters::default();
    let (views, events, errors, vitals) = tokio::try_join!(
        count_series(
            stats,
            project,
            range,
            "views",
            SeriesSource::Pageviews(&filters.pageviews),
            &views.views_by_day
        ),
        count_series(
            stats,
            project,
            range,
            "events",
            SeriesSource::Events {
                name: filters.event_name.as_deref(),
                segment: &segment
            },
            &events.events_by_day
        ),
        count_series(
            stats,
            project,
            range,
            "errors",
            SeriesSource::Errors(&error_filters),
            &errors.errors_by_day
        ),
        vitals_series(
            stats,
            project,
            range,
            SeriesSource::Performance(&perf_filters),
            vitals,
            &[("lcp", 0), ("ttfb", 3)]
        ),
    )?;
    Ok(DashboardCharts {
        views,
        events,
        errors,
        vitals,
        views_previous: None,
    })
}

/// The key figures of `range` under `filters` (the previous period's) but those of page views
/// and visits, which come with the current period's ([`dashboard_filtered`]).
async fn previous_kpis(
    stores: &Stores,
    project: DocId,
    range: TimeRange,
    filters: &DashboardFilters,
) -> StoreResult<Kpis> {
    let stats = &stores.stats;
    let name = filters.event_name.as_deref();
    // Without a group, the `Errors` part alone (the previous period shows no groups).
    let errors = async {
        match filters.signature.as_deref() {
            None => stats.errors_summary(project, range).await,
            Some(key) => Ok(stats
                .error_figures(project, range, Some(key), 0)
                .await?
                .summary),
        }
    };
    let ((events, _), errors, figures) = tokio::try_join!(
        stats.event_figures(project, range, name, 0, 0),
        errors,
        stats.performance_summary(project, range),
    )?;
    let score = figures.score();
    Ok(Kpis {
        total_events: events.total_events,
        total_errors: errors.total_errors,
        unique_fingerprints: errors.unique_fingerprints,
        total_measurements: figures.total_measurements,
        performance_score: score.measured.then_some(score.score),
        ..Default::default()
    })
}

/// The dashboard restricted by `filters`, from the dashboard cache when a fresh entry exists
/// (cached per filter set; computed once per key however many callers miss together).
pub async fn cached(
    cache: &DashboardCache,
    stores: &Stores,
    project: DocId,
    timeframe: Timeframe,
    filters: &DashboardFilters,
) -> StoreResult<Dashboard> {
    let variant = if filters.is_empty() && filters.range.is_none() && !filters.compare {
        "-".to_string()
    } else {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(filters).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    };
    let now = cache.now_ms();
    cache
        .get_or_compute("dashboard", project, timeframe, &variant, || {
            let (stores, filters) = (stores.clone(), filters.clone());
            async move { dashboard_filtered(&stores, project, timeframe, &filters, now).await }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{model::Docs, timestamp::now_ms};
    use crate::store::contract;
    use std::{
        sync::{Arc, atomic::Ordering},
        time::Duration,
    };

    async fn fixture() -> (tempfile::TempDir, Stores, DocId) {
        let dir = tempfile::tempdir().unwrap();
        let (stores, project) =
            crate::services::fixtures::sqlite_with_project(&dir, "c@example.com").await;
        (dir, stores, project.id)
    }

    async fn add_view(stores: &Stores, project: DocId) {
        let docs = Docs::Pageviews(vec![contract::pageview("/x", now_ms())]);
        stores
            .events
            .write(&[contract::batch(project, docs)])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn repeated_views_hit_and_invalidation_misses() {
        let (_dir, stores, project) = fixture().await;
        let cache = DashboardCache::new(
            Arc::new(crate::runtime::cache::memory::MemoryCache::default()),
            Duration::from_secs(300),
        );
        let no_filters = DashboardFilters::default();
        add_view(&stores, project).await;
        let first = cached(&cache, &stores, project, Timeframe::D7, &no_filters)
            .await
            .unwrap();
        add_view(&stores, project).await;
        let second = cached(&cache, &stores, project, Timeframe::D7, &no_filters)
            .await
            .unwrap();
        assert_eq!(first, second, "served from the cache within the bucket");
        assert_eq!(
            (
                cache.counters.hits.load(Ordering::Relaxed),
                cache.counters.misses.load(Ordering::Relaxed)
            ),
            (1, 1)
        );
        cache.invalidate(project).await;
        let third = cached(&cache, &stores, project, Timeframe::D7, &no_filters)
            .await
            .unwrap();
        assert_eq!(
            third.page_views.total_views, 2,
            "a new generation is computed afresh"
        );
        let other = cached(&cache, &stores, project, Timeframe::H24, &no_filters)
            .await
            .unwrap();
        assert_eq!(
            other.timeframe,
            Timeframe::H24,
            "timeframes have their own keys"
        );
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let (_dir, stores, project) = fixture().await;
        let cache = Arc::new(DashboardCache::new(
            Arc::new(crate::runtime::cache::memory::MemoryCache::default()),
            Duration::from_secs(300),
        ));
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (cache, stores) = (cache.clone(), stores.clone());
                tokio::spawn(async move {
                    cached(
                        &cache,
                        &stores,
                        project,
                        Timeframe::D30,
                        &Default::default(),
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        for c in calls {
            c.await.unwrap();
        }
        assert_eq!(
            cache.counters.misses.load(Ordering::Relaxed),
            1,
            "single-flight"
        );
        assert_eq!(cache.counters.hits.load(Ordering::Relaxed), 15);
    }
}
