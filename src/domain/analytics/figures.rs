//! The dashboard's figures as the store answers them: counts per day, page-view, visit,
//! event and error summaries, and the per-day metric percentiles.

use super::*;

/// A count per UTC day (`YYYY-MM-DD`), only days with data, ascending.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayCount {
    pub date: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageCount {
    pub url: String,
    pub views: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCount {
    pub event_name: String,
    pub count: u64,
}

/// The dashboard's page-view block (SuperInsights 1.x `pageViews`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageViewsSummary {
    pub total_views: u64,
    /// Distinct `clientId`s; documents without one count as one more visitor (as in 1.x).
    pub unique_visitors: u64,
    pub views_by_day: Vec<DayCount>,
    pub top_pages: Vec<PageCount>,
}

/// The dashboard's visits block (not in 1.x). A visit is the page views in range sharing one
/// `sessionId` (the SDK's, renewed after 30 minutes without activity); page views without one
/// belong to no visit and are counted apart. Definitions: docs/features/dashboard.md "Visits".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitsSummary {
    /// Distinct session ids among the page views.
    pub visits: u64,
    /// Visits of exactly one page view.
    pub bounces: u64,
    /// `bounces / visits` in percent; `None` without visits.
    pub bounce_rate: Option<f64>,
    /// Mean over visits of (last page view − first page view), in milliseconds (a one-page
    /// visit lasts 0); `None` without visits.
    pub avg_duration_ms: Option<f64>,
    /// Page views in visits divided by visits; `None` without visits.
    pub views_per_visit: Option<f64>,
    /// Page views without a session id (in no visit).
    pub views_without_session: u64,
}

/// The dashboard's page-view figures under its filters (`StatsReader::pageview_figures`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageViewFigures {
    pub summary: PageViewsSummary,
    pub visits: VisitsSummary,
    /// Breakdowns, pages, entry and exit pages.
    pub breakdowns: Breakdowns,
    /// The previous period's summary and visits, when asked for.
    pub previous: Option<(PageViewsSummary, VisitsSummary)>,
}

/// The dashboard's events block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsSummary {
    pub total_events: u64,
    pub top_events: Vec<EventCount>,
    pub events_by_day: Vec<DayCount>,
}

/// The dashboard's errors block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorsSummary {
    pub total_errors: u64,
    pub unique_fingerprints: u64,
    pub errors_by_day: Vec<DayCount>,
}

/// Daily averages of the web vitals (nulls excluded per metric).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsDay {
    pub date: String,
    pub lcp: Option<f64>,
    pub cls: Option<f64>,
    pub fid: Option<f64>,
    pub ttfb: Option<f64>,
    pub inp: Option<f64>,
    /// Per metric of [`METRICS`], how many values the average is of (what charts weigh a
    /// day by when they sum days into weeks or months); not part of 1.x's JSON.
    #[serde(skip)]
    pub n: [u64; 5],
}

/// p50/p75/p95 of one metric (lower nearest rank), `None` without data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p95: Option<f64>,
}

/// The web-vital metrics a performance document can carry.
pub const METRICS: [&str; 5] = ["lcp", "cls", "fid", "ttfb", "inp"];
