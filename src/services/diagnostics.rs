//! The errors and performance drill-downs (reference §4.5, §4.6): reads the store's reports
//! through the dashboard cache and assembles what the pages and their JSON forms show (average
//! errors per day, per-metric status, data quality, the score). Holds no HTTP types.

use crate::{
    analytics::series::SeriesSource,
    domain::{
        analytics::SignatureGroup,
        analytics::{
            CLS, DayCount, ERROR_DETAIL_OCCURRENCES, ErrorDetail, ErrorFilters, ErrorGroup, FID,
            GROUPED_ERRORS_TOP, INP, LCP, METRICS, MetricsDay, PerformanceFilters,
            PerformanceScore, Span, TTFB, Thresholds, Timeframe,
        },
        error_groups::{ErrorGroupState, GroupState, ShownState, StateFilter, shown_state},
        ids::DocId,
        timestamp::now_ms,
    },
    runtime::cache::DashboardCache,
    services::drill::Drill,
    store::{Project, StoreResult, Stores},
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One error group on the errors page: its figures and the state shown for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorGroupView {
    #[serde(flatten)]
    pub group: SignatureGroup,
    /// `open`, `regressed`, `resolved` or `ignored`.
    pub state: ShownState,
    /// When a member last set the state (ISO), `null` for a group never touched.
    pub state_changed_at: Option<String>,
}

/// How many of the range's groups each state filter lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateCounts {
    /// Open and regressed.
    pub open: u64,
    pub regressed: u64,
    pub resolved: u64,
    pub ignored: u64,
}

/// The errors page: SuperInsights 1.x's JSON fields plus what the HTML adds.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorsView {
    pub timeframe: Timeframe,
    pub total_errors: u64,
    pub grouped_errors: Vec<ErrorGroup>,
    pub unique_fingerprints: u64,
    pub errors_by_day: Vec<DayCount>,
    /// The error groups by signature (`domain::error_signature`) of the listed state, the
    /// [`GROUPED_ERRORS_TOP`] most frequent.
    pub error_groups: Vec<ErrorGroupView>,
    /// Distinct signatures in the range (any state).
    pub unique_signatures: u64,
    /// Which states are listed (`state` parameter).
    pub state_filter: StateFilter,
    pub state_counts: StateCounts,
    /// Total ÷ the timeframe's nominal days (HTML only, as in 1.x).
    #[serde(skip)]
    pub avg_per_day: f64,
    #[serde(skip)]
    pub filters: ErrorFilters,
    /// The chart's series, bucketed by the length of the range (minutes to months), the
    /// partial buckets marked; the day list stays as in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::analytics::series::TimeSeries>,
}

/// Errors of a project over `span` (a timeframe ending now, or a custom range of days), the
/// groups of `state_filter` listed.
pub async fn errors(
    cache: &DashboardCache,
    stores: &Stores,
    project: DocId,
    span: Span,
    filters: ErrorFilters,
    state_filter: StateFilter,
) -> StoreResult<ErrorsView> {
    let timeframe = span.timeframe;
    let drill = Drill::new(stores, cache, project, span);
    let report = drill
        .cached("errors", &filters.cache_token(), |stats, range| {
            let filters = filters.clone();
            async move {
                stats
                    .errors_report(project, range, &filters, GROUPED_ERRORS_TOP)
                    .await
            }
        })
        .await?;
    let source = SeriesSource::Errors(&filters);
    let series = drill
        .count_series("errors", source, &report.errors_by_day)
        .await?;
    // States change without new data, so they are read apart from the cached report.
    let states: HashMap<String, ErrorGroupState> = (stores.error_states)
        .error_group_states(project)
        .await?
        .into_iter()
        .map(|s| (s.signature.clone(), s))
        .collect();
    let (error_groups, state_counts) = with_states(report.signature_groups, &states, state_filter);
    Ok(ErrorsView {
        error_groups,
        state_counts,
        state_filter,
        unique_signatures: report.unique_signatures,
        series: Some(series),
        timeframe,
        avg_per_day: report.total_errors as f64 / span.nominal_days(drill.now()),
        total_errors: report.total_errors,
        grouped_errors: report.grouped_errors,
        unique_fingerprints: report.unique_fingerprints,
        errors_by_day: report.errors_by_day,
        filters,
    })
}

/// The groups `filter` lists, with their shown states, at most [`GROUPED_ERRORS_TOP`], and the
/// count of every state.
fn with_states(
    groups: Vec<SignatureGroup>,
    states: &HashMap<String, ErrorGroupState>,
    filter: StateFilter,
) -> (Vec<ErrorGroupView>, StateCounts) {
    let mut counts = StateCounts::default();
    let mut out = Vec::new();
    for group in groups {
        let stored = states.get(&group.signature);
        let last_seen = crate::domain::timestamp::parse_iso(&group.last_seen).unwrap_or(0);
        let state = shown_state(stored, last_seen);
        match state {
            ShownState::Open => counts.open += 1,
            ShownState::Regressed => {
                counts.open += 1;
                counts.regressed += 1
            }
            ShownState::Resolved => counts.resolved += 1,
            ShownState::Ignored => counts.ignored += 1,
        }
        if filter.admits(state) && out.len() < GROUPED_ERRORS_TOP {
            out.push(ErrorGroupView {
                state_changed_at: stored.map(|s| crate::domain::timestamp::to_iso(s.updated_at)),
                group,
                state,
            });
        }
    }
    (out, counts)
}

/// Sets the state of the project's group `signature` (a member with write rights; the handler
/// checks). A resolved group seen again afterwards shows as regressed.
pub async fn set_group_state(
    stores: &Stores,
    project: &Project,
    signature: &str,
    state: GroupState,
    by: DocId,
) -> StoreResult<ErrorGroupState> {
    let record = ErrorGroupState {
        project_id: project.id,
        signature: signature.to_string(),
        state,
        updated_at: now_ms(),
        updated_by: Some(by),
    };
    stores.error_states.set_error_group_state(&record).await?;
    super::audit::action(crate::domain::audit::codes::ERROR_GROUP_SET_STATE)
        .project(project.id)
        .org(project.org_id)
        .note(format!("{signature} {}", state.as_str()))
        .record(stores)
        .await;
    Ok(record)
}

/// One fingerprint's page; its JSON form is the detail plus the timeframe and the newest
/// occurrence's details.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetailView {
    pub timeframe: Timeframe,
    #[serde(flatten)]
    pub detail: ErrorDetail,
    /// The newest occurrence (message, type, stack, location, context), `null` without any.
    pub details: Option<crate::domain::analytics::ErrorOccurrence>,
    /// The chart's series, bucketed by the length of the range (minutes to months), the
    /// partial buckets marked; the day list stays as in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::analytics::series::TimeSeries>,
}

/// One error fingerprint over `span`, with its true occurrence count.
pub async fn error_detail(
    cache: &DashboardCache,
    stores: &Stores,
    project: DocId,
    span: Span,
    fingerprint: &str,
) -> StoreResult<ErrorDetailView> {
    // Any text can arrive in the URL: the key holds a digest of it.
    use sha2::{Digest, Sha256};
    let timeframe = span.timeframe;
    let variant = hex::encode(&Sha256::digest(fingerprint.as_bytes())[..8]);
    let drill = Drill::new(stores, cache, project, span);
    let detail = drill
        .cached("error", &variant, |stats, range| {
            let fingerprint = fingerprint.to_string();
            let most = ERROR_DETAIL_OCCURRENCES;
            async move { stats.error_detail(project, &fingerprint, range, most).await }
        })
        .await?;
    let source = SeriesSource::ErrorGroup(fingerprint);
    let series = drill
        .count_series("errors", source, &detail.errors_by_day)
        .await?;
    Ok(ErrorDetailView {
        series: Some(series),
        timeframe,
        details: detail.latest().cloned(),
        detail,
    })
}

/// One web vital on the performance page.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricView {
    /// `lcp`, `cls`, `fid`, `ttfb`, `inp`.
    pub metric: &'static str,
    pub label: &'static str,
    /// `ms`, or empty for CLS.
    pub unit: &'static str,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p95: Option<f64>,
    /// `good`, `needs-improvement` or `poor` from the p75; `None` without data.
    pub status: Option<&'static str>,
    pub good: f64,
    pub poor: f64,
    /// Whether the metric counts in the score (FID does not: INP replaced it).
    pub scored: bool,
}

impl MetricView {
    /// A value for display: milliseconds rounded, CLS with three decimals, `—` when missing.
    pub fn show(&self, value: &Option<f64>) -> String {
        match value {
            None => "—".into(),
            Some(v) if self.unit.is_empty() => format!("{v:.3}"),
            Some(v) => format!("{v:.0} {}", self.unit),
        }
    }

    pub fn status_label(&self) -> &'static str {
        match self.status {
            Some("good") => "Good",
            Some("needs-improvement") => "Needs improvement",
            Some("poor") => "Poor",
            _ => "No data",
        }
    }
}

fn metric_meta(metric: &str) -> (&'static str, &'static str, Thresholds, bool) {
    match metric {
        "lcp" => ("LCP (Largest Contentful Paint)", "ms", LCP, true),
        "cls" => ("CLS (Cumulative Layout Shift)", "", CLS, true),
        "fid" => ("FID (First Input Delay)", "ms", FID, false),
        "ttfb" => ("TTFB (Time to First Byte)", "ms", TTFB, true),
        _ => ("INP (Interaction to Next Paint)", "ms", INP, true),
    }
}

/// The performance page and its JSON form.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceView {
    pub timeframe: Timeframe,
    pub filters: PerformanceFilters,
    /// `lcp_p50`, `lcp_p75`, … as on the dashboard; `null` without data.
    pub percentiles: BTreeMap<String, Option<f64>>,
    pub metrics: Vec<MetricView>,
    pub metrics_by_day: Vec<MetricsDay>,
    pub total_measurements: u64,
    pub complete_measurements: u64,
    /// Metric values beyond the plausible bounds, left out of every figure.
    pub implausible_values: u64,
    /// Percentage of measurements carrying all four scored metrics (one decimal), `null`
    /// without measurements.
    pub data_quality: Option<f64>,
    pub performance_score: PerformanceScore,
    /// The chart's series, bucketed by the length of the range (minutes to months), the
    /// partial buckets marked; the day list stays as in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::analytics::series::TimeSeries>,
}

impl PerformanceView {
    /// The score badge's class, as on the dashboard: > 75 good, ≥ 50 fair, else poor; none
    /// without measurements.
    pub fn score_class(&self) -> &'static str {
        self.performance_score.badge_class(self.total_measurements)
    }
}

/// Web vitals of a project over `span` (a timeframe ending now, or a custom range of days).
pub async fn performance(
    cache: &DashboardCache,
    stores: &Stores,
    project: DocId,
    span: Span,
    filters: PerformanceFilters,
) -> StoreResult<PerformanceView> {
    let timeframe = span.timeframe;
    let drill = Drill::new(stores, cache, project, span);
    let report = drill
        .cached("performance", &filters.cache_token(), |stats, range| {
            let filters = filters.clone();
            async move { stats.performance_report(project, range, &filters).await }
        })
        .await?;
    let series = drill
        .vitals_series(
            SeriesSource::Performance(&filters),
            &report.figures.metrics_by_day,
            &[("lcp", 0), ("cls", 1), ("fid", 2), ("ttfb", 3), ("inp", 4)],
        )
        .await?;
    let figures = &report.figures;
    let mut percentiles = BTreeMap::new();
    let mut metrics = Vec::new();
    for metric in METRICS {
        let p = figures.of(metric);
        for (suffix, value) in [("p50", p.p50), ("p75", p.p75), ("p95", p.p95)] {
            percentiles.insert(format!("{metric}_{suffix}"), value);
        }
        let (label, unit, thresholds, scored) = metric_meta(metric);
        metrics.push(MetricView {
            metric,
            label,
            unit,
            p50: p.p50,
            p75: p.p75,
            p95: p.p95,
            status: thresholds.status(p.p75),
            good: thresholds.good,
            poor: thresholds.poor,
            scored,
        });
    }
    let total = figures.total_measurements;
    Ok(PerformanceView {
        timeframe,
        filters,
        performance_score: figures.score(),
        percentiles,
        metrics,
        total_measurements: total,
        complete_measurements: report.complete_measurements,
        implausible_values: report.figures.implausible_values,
        data_quality: (total > 0)
            .then(|| (1000.0 * report.complete_measurements as f64 / total as f64).round() / 10.0),
        metrics_by_day: report.figures.metrics_by_day,
        series: Some(series),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_are_shown_with_their_units() {
        let (label, unit, t, scored) = metric_meta("cls");
        let m = MetricView {
            metric: "cls",
            label,
            unit,
            p50: None,
            p75: Some(0.12345),
            p95: None,
            status: t.status(Some(0.12345)),
            good: t.good,
            poor: t.poor,
            scored,
        };
        assert_eq!(m.show(&m.p75), "0.123");
        assert_eq!(m.show(&m.p50), "—");
        assert_eq!(m.status_label(), "Needs improvement");
        let lcp = MetricView {
            unit: "ms",
            status: None,
            ..m
        };
        assert_eq!(lcp.show(&Some(2500.4)), "2500 ms");
        assert_eq!(lcp.status_label(), "No data");
        assert!(metric_meta("inp").3, "INP counts in the score");
        assert!(!metric_meta("fid").3, "FID is shown but not scored");
    }
}
