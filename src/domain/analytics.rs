//! The analytics math of SuperInsights 1.x, as pure functions: timeframes, UTC day buckets,
//! lower-nearest-rank percentiles, the p75 performance score, and web-vital statuses.

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

/// A dashboard timeframe (`5m … 30d`, `3m` = 90 days, `1y` = year to date).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timeframe {
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "6h")]
    H6,
    #[serde(rename = "12h")]
    H12,
    #[serde(rename = "24h")]
    H24,
    #[serde(rename = "7d")]
    D7,
    #[serde(rename = "30d")]
    D30,
    #[serde(rename = "3m")]
    M3,
    #[serde(rename = "1y")]
    Y1,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

impl Timeframe {
    pub const ALL: [Timeframe; 10] = [
        Timeframe::M5,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H6,
        Timeframe::H12,
        Timeframe::H24,
        Timeframe::D7,
        Timeframe::D30,
        Timeframe::M3,
        Timeframe::Y1,
    ];

    /// Parses the query value; anything unknown or missing is `7d`, as in SuperInsights 1.x.
    pub fn parse(s: Option<&str>) -> Self {
        Self::ALL
            .into_iter()
            .find(|t| Some(t.as_str()) == s)
            .unwrap_or(Timeframe::D7)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::M5 => "5m",
            Timeframe::M30 => "30m",
            Timeframe::H1 => "1h",
            Timeframe::H6 => "6h",
            Timeframe::H12 => "12h",
            Timeframe::H24 => "24h",
            Timeframe::D7 => "7d",
            Timeframe::D30 => "30d",
            Timeframe::M3 => "3m",
            Timeframe::Y1 => "1y",
        }
    }

    /// The inclusive range `[start, end]` ending at `now_ms`. `1y` starts on January 1st (UTC).
    pub fn range(self, now_ms: i64) -> TimeRange {
        let back = match self {
            Timeframe::M5 => 5 * MINUTE,
            Timeframe::M30 => 30 * MINUTE,
            Timeframe::H1 => HOUR,
            Timeframe::H6 => 6 * HOUR,
            Timeframe::H12 => 12 * HOUR,
            Timeframe::H24 => DAY,
            Timeframe::D7 => 7 * DAY,
            Timeframe::D30 => 30 * DAY,
            Timeframe::M3 => 90 * DAY,
            Timeframe::Y1 => {
                let year = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
                    .map(|t| t.year())
                    .unwrap_or(1970);
                let jan1 = Date::from_calendar_date(year, Month::January, 1).expect("valid date");
                let start = jan1.midnight().assume_utc().unix_timestamp() * 1000;
                return TimeRange {
                    start_ms: start,
                    end_ms: now_ms,
                };
            }
        };
        TimeRange {
            start_ms: now_ms - back,
            end_ms: now_ms,
        }
    }

    /// Nominal length in days (for "average per day" figures).
    pub fn nominal_days(self, now_ms: i64) -> f64 {
        let r = self.range(now_ms);
        ((r.end_ms - r.start_ms) as f64 / DAY as f64).max(1.0 / 24.0 / 12.0)
    }
}

/// An inclusive range of epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl TimeRange {
    /// The period of equal length that ends just before this one (what KPIs compare with).
    pub fn previous(self) -> TimeRange {
        let len = self.end_ms - self.start_ms + 1;
        TimeRange {
            start_ms: self.start_ms - len,
            end_ms: self.start_ms - 1,
        }
    }
}

/// A custom range of whole UTC days picked on the dashboard (`from` and `to`, `YYYY-MM-DD`,
/// both included), as days since 1970-01-01. The range ends now when `to` is today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DayRange {
    pub from: i64,
    pub to: i64,
}

/// The longest custom range, in days (three years).
pub const MAX_RANGE_DAYS: i64 = 3 * 366;

/// Why a custom range cannot be used (a 400 with code `INVALID_DATE_RANGE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProblem {
    /// The parameter at fault: `from` or `to`.
    pub param: &'static str,
    pub message: String,
}

impl DayRange {
    /// Reads `from` and `to` (empty values are absent): `None` when neither is set; a problem
    /// when only one is, when one is not a date, when the range is reversed, starts in the
    /// future or before 2000, or is longer than [`MAX_RANGE_DAYS`].
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<DayRange>, RangeProblem> {
        fn clean(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let problem = |param, message: String| RangeProblem { param, message };
        let (from, to) = match (clean(from), clean(to)) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(problem("to", "a custom range needs an end date".into()));
            }
            (None, Some(_)) => {
                return Err(problem("from", "a custom range needs a start date".into()));
            }
            (Some(f), Some(t)) => (f, t),
        };
        let day = |param, v: &str| {
            parse_day(v).ok_or_else(|| {
                problem(
                    param,
                    format!(
                        "`{}` is not a date (YYYY-MM-DD)",
                        v.chars().take(32).collect::<String>()
                    ),
                )
            })
        };
        let (from, to) = (day("from", from)?, day("to", to)?);
        let today = now_ms.div_euclid(DAY);
        if from > to {
            return Err(problem(
                "from",
                "the start date is after the end date".into(),
            ));
        }
        if from > today {
            return Err(problem("from", "the range starts in the future".into()));
        }
        if from < 10_957 {
            return Err(problem("from", "the range starts before 2000".into()));
        }
        if to - from + 1 > MAX_RANGE_DAYS {
            return Err(problem(
                "to",
                format!("the range is longer than {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(Some(DayRange { from, to }))
    }

    /// The milliseconds covered, up to `now_ms` at most.
    pub fn range(self, now_ms: i64) -> TimeRange {
        TimeRange {
            start_ms: self.from * DAY,
            end_ms: ((self.to + 1) * DAY - 1).min(now_ms),
        }
    }

    /// `from` and `to` as `YYYY-MM-DD`.
    pub fn dates(self) -> (String, String) {
        (utc_day(self.from * DAY), utc_day(self.to * DAY))
    }
}

/// What an analytics view covers: its timeframe ending now, or a custom range of whole days
/// (`from`/`to`) that takes the timeframe's place. Every drill-down page reads its range from
/// here, so a custom range means the same thing on each of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub timeframe: Timeframe,
    pub days: Option<DayRange>,
}

impl From<Timeframe> for Span {
    fn from(timeframe: Timeframe) -> Self {
        Span {
            timeframe,
            days: None,
        }
    }
}

impl Span {
    /// The milliseconds covered at `now_ms`.
    pub fn range(self, now_ms: i64) -> TimeRange {
        match self.days {
            Some(days) => days.range(now_ms),
            None => self.timeframe.range(now_ms),
        }
    }

    /// Length in days (for "average per day" figures), as [`Timeframe::nominal_days`].
    pub fn nominal_days(self, now_ms: i64) -> f64 {
        let r = self.range(now_ms);
        ((r.end_ms - r.start_ms) as f64 / DAY as f64).max(1.0 / 24.0 / 12.0)
    }

    /// What tells a custom range apart in a cache key (empty for the timeframe alone).
    pub fn cache_token(self) -> String {
        self.days
            .map(|d| format!("~{}-{}", d.from, d.to))
            .unwrap_or_default()
    }

    /// The URL parameters that give this span back: `timeframe`, then `from` and `to` when set.
    pub fn to_params(self) -> Vec<(&'static str, String)> {
        let mut out = vec![("timeframe", self.timeframe.as_str().to_string())];
        if let Some((from, to)) = self.days.map(DayRange::dates) {
            out.push(("from", from));
            out.push(("to", to));
        }
        out
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn parse_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i32 = s[..4].parse().ok()?;
    let m: u8 = s[5..7].parse().ok()?;
    let d: u8 = s[8..].parse().ok()?;
    let date = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
    Some(i64::from(date.to_julian_day() - 2_440_588))
}

/// The UTC day (`YYYY-MM-DD`) of a timestamp.
pub fn utc_day(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// Lower-nearest-rank percentile of **sorted** values: the value at index ⌊p·(n−1)⌋.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = (p * (sorted.len() - 1) as f64).floor() as usize;
    sorted.get(index.min(sorted.len() - 1)).copied()
}

/// Good / poor thresholds of a web vital (ms, or unitless for CLS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    pub good: f64,
    pub poor: f64,
}

pub const LCP: Thresholds = Thresholds {
    good: 2500.0,
    poor: 4000.0,
};
pub const CLS: Thresholds = Thresholds {
    good: 0.1,
    poor: 0.25,
};
pub const FID: Thresholds = Thresholds {
    good: 100.0,
    poor: 300.0,
};
pub const TTFB: Thresholds = Thresholds {
    good: 800.0,
    poor: 1800.0,
};
pub const INP: Thresholds = Thresholds {
    good: 200.0,
    poor: 500.0,
};

impl Thresholds {
    /// 100 at or below good, 0 at or above poor, linear between; a missing value scores 0.
    pub fn score(self, value: Option<f64>) -> u32 {
        match value {
            None => 0,
            Some(v) if v <= self.good => 100,
            Some(v) if v >= self.poor => 0,
            Some(v) => (100.0 * (self.poor - v) / (self.poor - self.good)).round() as u32,
        }
    }

    /// `good`, `needs-improvement` or `poor`.
    pub fn status(self, value: Option<f64>) -> Option<&'static str> {
        value.map(|v| {
            if v <= self.good {
                "good"
            } else if v <= self.poor {
                "needs-improvement"
            } else {
                "poor"
            }
        })
    }
}

/// The performance score from p75 values: today's Core Web Vitals (LCP, CLS, INP) and TTFB,
/// each scored 0–100 between its thresholds, averaged over the metrics that were measured
/// (SuperInsights 1.x averaged LCP, CLS, FID and TTFB and scored a missing one 0; FID is retired,
/// and its score is still reported, for 1.x clients, but no longer counted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceScore {
    /// 0 when nothing was measured (see `measured`).
    pub score: u32,
    pub lcp_score: u32,
    pub cls_score: u32,
    pub fid_score: u32,
    pub ttfb_score: u32,
    #[serde(default)]
    pub inp_score: u32,
    /// Whether any of LCP, CLS, INP and TTFB was measured: without, there is no score to show.
    #[serde(default)]
    pub measured: bool,
    /// Always `p75`.
    pub basis: String,
}

impl PerformanceScore {
    /// The score badge's class (SuperInsights 1.x's colours): > 75 `good`, ≥ 50 `fair`, else
    /// `poor`; empty without any measurement (there is nothing to grade).
    pub fn badge_class(&self, measurements: u64) -> &'static str {
        if measurements == 0 || !self.measured {
            ""
        } else if self.score > 75 {
            "good"
        } else if self.score >= 50 {
            "fair"
        } else {
            "poor"
        }
    }

    /// The score as shown: the number, or `—` without measurements.
    pub fn shown(&self) -> String {
        if self.measured {
            self.score.to_string()
        } else {
            "—".into()
        }
    }
}

/// p75 values of the metrics the score reads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScoreInputs {
    pub lcp: Option<f64>,
    pub cls: Option<f64>,
    pub inp: Option<f64>,
    pub ttfb: Option<f64>,
    /// Reported only (retired from Core Web Vitals).
    pub fid: Option<f64>,
}

/// Rounded mean of the scores of the measured metrics among LCP, CLS, INP and TTFB.
pub fn performance_score(p75: ScoreInputs) -> PerformanceScore {
    let counted = [
        (LCP, p75.lcp),
        (CLS, p75.cls),
        (INP, p75.inp),
        (TTFB, p75.ttfb),
    ];
    let scores: Vec<u32> = counted
        .iter()
        .filter_map(|(t, v)| v.map(|v| t.score(Some(v))))
        .collect();
    let score = if scores.is_empty() {
        0
    } else {
        (scores.iter().sum::<u32>() as f64 / scores.len() as f64).round() as u32
    };
    PerformanceScore {
        score,
        lcp_score: LCP.score(p75.lcp),
        cls_score: CLS.score(p75.cls),
        fid_score: FID.score(p75.fid),
        ttfb_score: TTFB.score(p75.ttfb),
        inp_score: INP.score(p75.inp),
        measured: !scores.is_empty(),
        basis: "p75".into(),
    }
}

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

// ---------------------------------------------------------------------------------------------
// Breakdowns of page views (what SuperInsights 1.x stored but never showed).
// ---------------------------------------------------------------------------------------------

/// Rows per breakdown table on the dashboard.
pub const BREAKDOWN_TOP: usize = 5;
/// The breakdown value of a page view without a referrer (or an empty one).
pub const DIRECT: &str = "(direct)";
/// The breakdown value of a missing UTM field.
pub const NO_CAMPAIGN: &str = "(none)";
/// The breakdown value of a missing country, browser, OS or device type.
pub const UNKNOWN: &str = "(unknown)";

/// One row of a breakdown: a value and how many page views carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakdownRow {
    pub value: String,
    pub count: u64,
}

/// Page views in a range broken down by dimension; each list holds the top values by count
/// (ties by value, byte order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdowns {
    /// Referrer host ([`referrer_host`]), `(direct)` without a referrer.
    pub referrer: Vec<BreakdownRow>,
    pub utm_source: Vec<BreakdownRow>,
    pub utm_medium: Vec<BreakdownRow>,
    pub utm_campaign: Vec<BreakdownRow>,
    pub country: Vec<BreakdownRow>,
    pub browser: Vec<BreakdownRow>,
    pub os: Vec<BreakdownRow>,
    pub device_type: Vec<BreakdownRow>,
    /// Page views per URL (the dashboard's expandable pages table; empty elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub page: Vec<BreakdownRow>,
    /// Events per name (the dashboard's expandable events table; empty elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<BreakdownRow>,
    /// Visits per entry page (their first page view's URL; the dashboard only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_page: Vec<BreakdownRow>,
    /// Visits per exit page (their last page view's URL; the dashboard only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_page: Vec<BreakdownRow>,
}

/// The breakdown dimensions, in [`Breakdowns`] field order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    Country,
    Browser,
    Os,
    DeviceType,
}

impl Dimension {
    pub const ALL: [Dimension; 8] = [
        Dimension::Referrer,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::Country,
        Dimension::Browser,
        Dimension::Os,
        Dimension::DeviceType,
    ];

    /// The value a page view shows under this dimension, given the stored field (`None` or
    /// blank = missing).
    pub fn value_of(self, stored: Option<&str>) -> String {
        let stored = stored.map(str::trim).filter(|s| !s.is_empty());
        match (self, stored) {
            (Dimension::Referrer, Some(r)) => referrer_host(r),
            (Dimension::Referrer, None) => DIRECT.to_string(),
            (Dimension::UtmSource | Dimension::UtmMedium | Dimension::UtmCampaign, None) => {
                NO_CAMPAIGN.to_string()
            }
            (_, None) => UNKNOWN.to_string(),
            (_, Some(v)) => v.to_string(),
        }
    }
}

impl Breakdowns {
    /// The list of one dimension.
    pub fn of_mut(&mut self, dim: Dimension) -> &mut Vec<BreakdownRow> {
        match dim {
            Dimension::Referrer => &mut self.referrer,
            Dimension::UtmSource => &mut self.utm_source,
            Dimension::UtmMedium => &mut self.utm_medium,
            Dimension::UtmCampaign => &mut self.utm_campaign,
            Dimension::Country => &mut self.country,
            Dimension::Browser => &mut self.browser,
            Dimension::Os => &mut self.os,
            Dimension::DeviceType => &mut self.device_type,
        }
    }

    /// Builds one dimension's list from full counts: count descending, then value, `top` rows.
    pub fn rank(counts: impl IntoIterator<Item = (String, u64)>, top: usize) -> Vec<BreakdownRow> {
        let mut rows: Vec<BreakdownRow> = counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(value, count)| BreakdownRow { value, count })
            .collect();
        rows.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        rows.truncate(top);
        rows
    }
}

/// The host a referrer URL points at, lowercased, without `www.`, user info or port
/// (`https://www.Google.com/search?q=x` → `google.com`). A value without a scheme is read as
/// `host/path`; one without any host is `(unknown)`.
pub fn referrer_host(referrer: &str) -> String {
    let r = referrer.trim();
    let rest = r.split_once("://").map_or(r, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    if host.is_empty() {
        UNKNOWN.to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod breakdown_tests {
    use super::*;

    #[test]
    fn referrers_group_by_host() {
        assert_eq!(
            referrer_host("https://www.Google.com/search?q=x"),
            "google.com"
        );
        assert_eq!(
            referrer_host("http://user@news.ycombinator.com:8080/item"),
            "news.ycombinator.com"
        );
        assert_eq!(
            referrer_host("android-app://com.example.app/"),
            "com.example.app"
        );
        assert_eq!(referrer_host("t.co/abc"), "t.co");
        assert_eq!(referrer_host("http://[::1]:3000/x"), "::1");
        assert_eq!(referrer_host("https:///nohost"), UNKNOWN);
        assert_eq!(Dimension::Referrer.value_of(Some("  ")), DIRECT);
        assert_eq!(Dimension::Referrer.value_of(None), DIRECT);
        assert_eq!(Dimension::UtmSource.value_of(None), NO_CAMPAIGN);
        assert_eq!(Dimension::Country.value_of(Some("")), UNKNOWN);
        assert_eq!(Dimension::Browser.value_of(Some("Firefox")), "Firefox");
    }

    #[test]
    fn ranking_is_by_count_then_value() {
        let rows = Breakdowns::rank(
            [
                ("b".to_string(), 2),
                ("a".to_string(), 2),
                ("c".to_string(), 5),
                ("z".to_string(), 0),
            ],
            2,
        );
        let got: Vec<_> = rows.iter().map(|r| (r.value.as_str(), r.count)).collect();
        assert_eq!(got, vec![("c", 5), ("a", 2)]);
    }
}

/// What the store answers about web vitals in a range; the score is derived by the caller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceFigures {
    /// Per metric of [`METRICS`], in that order.
    pub percentiles: Vec<(String, Percentiles)>,
    pub metrics_by_day: Vec<MetricsDay>,
    pub total_measurements: u64,
    /// Metric values outside [`crate::domain::plausible`]'s bounds: stored, but left out of the
    /// percentiles and daily averages above.
    #[serde(default)]
    pub implausible_values: u64,
}

impl PerformanceFigures {
    /// The percentiles of one metric (`lcp`, `cls`, …).
    pub fn of(&self, metric: &str) -> Percentiles {
        self.percentiles
            .iter()
            .find(|(m, _)| m == metric)
            .map(|(_, p)| *p)
            .unwrap_or_default()
    }

    /// The performance score from the p75 values ([`performance_score`]).
    pub fn score(&self) -> PerformanceScore {
        performance_score(ScoreInputs {
            lcp: self.of("lcp").p75,
            cls: self.of("cls").p75,
            inp: self.of("inp").p75,
            ttfb: self.of("ttfb").p75,
            fid: self.of("fid").p75,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Drill-down reports: page views (reference §4.3) and events (§4.4). JSON field names are
// SuperInsights 1.x's.
// ---------------------------------------------------------------------------------------------

/// Top pages and top events on the drill-down pages (SuperInsights 1.x: 10).
pub const REPORT_TOP: usize = 10;
/// Occurrences on an event's detail page (SuperInsights 1.x: the latest 100).
pub const DETAIL_OCCURRENCES: u32 = 100;
/// Distinct sample values kept per property key.
pub const SCHEMA_SAMPLES: usize = 5;

/// What page views are restricted to (the page-views report, the dashboard). `url_prefix` is a
/// literal, anchored prefix (no pattern characters) of the URL or, when it starts with `/`, of
/// the URL's path ([`url_has_prefix`]); `segment` applies as reference §4.7 maps it onto page
/// views; `country` and `referrer` (a host, as the breakdown shows it) are page-view fields too.
/// Every field but the URL and the client id is matched case-insensitively against the value the
/// breakdowns show ([`Dimension::value_of`]), so a breakdown row's value always filters to that
/// row. [`PageViewFilters::matches`] is the one definition; stores push down the client id only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageViewFilters {
    pub device_type: Option<crate::domain::model::DeviceType>,
    pub url_prefix: Option<String>,
    pub segment: crate::domain::segment::SegmentFilters,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Only the page views of visits whose first page view is this page ([`same_page`]); the
    /// engine resolves it through the visits of the range, not per page view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_page: Option<String>,
    /// Only the page views of visits whose last page view is this page ([`same_page`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_page: Option<String>,
}

/// True when `url` is the page `wanted`: equal, or, for a `wanted` path (starting with `/`),
/// the path (with its query) of an absolute `url` is exactly `wanted`. What an entry or exit
/// page filter matches.
pub fn same_page(url: &str, wanted: &str) -> bool {
    if url == wanted {
        return true;
    }
    if !wanted.starts_with('/') || !url_has_prefix(url, wanted) {
        return false;
    }
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').is_some_and(|i| &rest[i..] == wanted),
        None => false,
    }
}

/// True when `url` starts with `prefix` literally, or, for a prefix that is a path (starts with
/// `/`), when the path of an absolute `url` (`scheme://host/path…`) does: `/blog/` finds
/// `https://shop.example/blog/a` as well as a stored `/blog/a`. Case matters (paths are
/// case-sensitive); an empty prefix matches everything.
pub fn url_has_prefix(url: &str, prefix: &str) -> bool {
    if url.starts_with(prefix) {
        return true;
    }
    if !prefix.starts_with('/') {
        return false;
    }
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    match rest.find(['/', '?', '#']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].starts_with(prefix),
        _ => false,
    }
}

/// True when `shown` equals `wanted` ignoring case (Unicode lowercase of both).
fn same_ignoring_case(shown: &str, wanted: &str) -> bool {
    shown
        .chars()
        .flat_map(char::to_lowercase)
        .eq(wanted.chars().flat_map(char::to_lowercase))
}

impl Dimension {
    /// True when a page view whose stored field is `stored` shows `wanted` under this dimension,
    /// ignoring case: what a click on a breakdown row filters to.
    pub fn matches(self, stored: Option<&str>, wanted: &str) -> bool {
        same_ignoring_case(&self.value_of(stored), wanted)
    }

    /// True when `value` is what this dimension shows for a missing field (`(direct)`,
    /// `(none)`, `(unknown)`), in any case.
    pub fn is_placeholder(self, value: &str) -> bool {
        self.matches(None, value)
    }
}

impl PageViewFilters {
    /// True when nothing restricts the page views.
    pub fn is_empty(&self) -> bool {
        *self == PageViewFilters::default()
    }

    /// The wanted value per dimension (in `Dimension::ALL` order); the device is the page's own
    /// `device_type` or the segment's.
    pub fn by_dimension(&self) -> [Option<&str>; 8] {
        let s = &self.segment;
        [
            self.referrer.as_deref(),
            s.utm_source.as_deref(),
            s.utm_medium.as_deref(),
            s.utm_campaign.as_deref(),
            self.country.as_deref(),
            s.browser.as_deref(),
            s.os.as_deref(),
            self.device_type
                .map(|d| d.as_str())
                .or(s.device_type.as_deref()),
        ]
    }

    /// True when the entry or exit page restricts the page views (to whole visits).
    pub fn by_visit(&self) -> bool {
        self.entry_page.is_some() || self.exit_page.is_some()
    }

    /// True when a page view passes every filter: its `url` by [`url_has_prefix`], its client
    /// id exactly, each stored breakdown field (`dims`, in `Dimension::ALL` order) by
    /// [`Dimension::matches`]. Filters page views do not carry (user, metadata) do not apply
    /// (reference §4.7); the entry and exit page are matched per visit by the engine.
    pub fn matches(&self, url: &str, client: Option<&str>, dims: [Option<&str>; 8]) -> bool {
        let s = &self.segment;
        if let Some(c) = &s.client_id
            && client != Some(c.as_str())
        {
            return false;
        }
        if let Some(p) = &self.url_prefix
            && !url_has_prefix(url, p)
        {
            return false;
        }
        if let (Some(own), Some(seg)) = (self.device_type, &s.device_type)
            && !same_ignoring_case(own.as_str(), seg)
        {
            return false;
        }
        (Dimension::ALL.iter().zip(self.by_dimension()).zip(dims))
            .all(|((dim, wanted), stored)| wanted.is_none_or(|w| dim.matches(stored, w)))
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn an_entry_page_is_one_url_or_one_path_with_its_query() {
        assert!(same_page("https://x.example/a", "https://x.example/a"));
        assert!(same_page("https://x.example/a?b=1", "/a?b=1"));
        assert!(same_page("/a", "/a"));
        assert!(!same_page("https://x.example/ab", "/a"));
        assert!(!same_page("https://x.example/a/", "/a"));
        assert!(!same_page("https://x.example/A", "/a"));
        assert!(!same_page("https://x.example/a", "x.example/a"));
    }

    #[test]
    fn a_path_prefix_finds_absolute_urls_and_stored_paths_but_keeps_case() {
        assert!(url_has_prefix("https://shop.example/blog/a?x=1", "/blog/"));
        assert!(url_has_prefix("/blog/a", "/blog/"));
        assert!(url_has_prefix(
            "https://shop.example/blog/a",
            "https://shop.example/blog"
        ));
        assert!(!url_has_prefix("https://shop.example/Blog/a", "/blog/"));
        assert!(!url_has_prefix("https://shop.example?/blog/", "/blog/"));
        assert!(!url_has_prefix("https://blog.example/x", "blog"));
        assert!(url_has_prefix("anything", ""));
    }

    #[test]
    fn breakdown_values_filter_case_insensitively_and_placeholders_find_missing_fields() {
        let f = PageViewFilters {
            country: Some("de".into()),
            referrer: Some("NEWS.example".into()),
            segment: crate::domain::segment::SegmentFilters {
                browser: Some("firefox".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut dims = [None; 8];
        dims[0] = Some("https://www.news.example/story");
        dims[4] = Some("DE");
        dims[5] = Some("Firefox");
        assert!(f.matches("/", None, dims));
        dims[5] = Some("Chrome");
        assert!(!f.matches("/", None, dims));
        let direct = PageViewFilters {
            referrer: Some("(Direct)".into()),
            ..Default::default()
        };
        assert!(direct.matches("/", None, [None; 8]));
        assert!(Dimension::Country.is_placeholder("(UNKNOWN)"));
        assert!(!Dimension::Country.is_placeholder("DE"));
        let client = PageViewFilters {
            segment: crate::domain::segment::SegmentFilters {
                client_id: Some("C1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(client.matches("/", Some("C1"), [None; 8]));
        assert!(!client.matches("/", Some("c1"), [None; 8]), "ids are exact");
    }
}

/// One row of the page-views report's top pages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageStats {
    pub url: String,
    pub views: u64,
    /// Distinct `clientId`s on that URL; views without one count as one more.
    pub unique_visitors: u64,
}

/// The page-views report (without the timeframe, which the caller adds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageViewsReport {
    pub total_views: u64,
    pub unique_visitors: u64,
    pub views_by_day: Vec<DayCount>,
    /// The [`REPORT_TOP`] most viewed URLs, ties by URL.
    pub top_pages: Vec<PageStats>,
}

/// What the events reports are restricted to: an exact event name (lists only) and the segment,
/// which for events means `clientId`, `properties.userId` and `properties.<meta key>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFilters {
    pub event_name: Option<String>,
    pub segment: crate::domain::segment::SegmentFilters,
}

/// Which page of recent occurrences to show: `page` ≥ 1, `limit` in 1..=50.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecentPaging {
    pub page: u32,
    pub limit: u32,
}

impl Default for RecentPaging {
    fn default() -> Self {
        Self { page: 1, limit: 10 }
    }
}

impl RecentPaging {
    pub const MAX_LIMIT: u32 = 50;

    /// From the `recentPage` and `recentLimit` query values: unparsable values take the defaults
    /// (page 1, limit 10); out-of-range ones are clamped.
    pub fn parse(page: Option<&str>, limit: Option<&str>) -> Self {
        let number = |s: Option<&str>| s.and_then(|s| s.trim().parse::<i64>().ok());
        Self {
            page: number(page).map_or(1, |p| p.clamp(1, i64::from(u32::MAX)) as u32),
            limit: number(limit).map_or(10, |l| l.clamp(1, i64::from(Self::MAX_LIMIT)) as u32),
        }
    }

    /// Rows to skip before this page.
    pub fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.limit)
    }
}

/// `recentPagination` of the events report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: u32,
    pub limit: u32,
    /// Occurrences matching the filters.
    pub total: u64,
    /// ⌈total ÷ limit⌉, at least 1.
    pub total_pages: u64,
}

impl Pagination {
    pub fn of(paging: RecentPaging, total: u64) -> Self {
        let limit = u64::from(paging.limit.max(1));
        Self {
            page: paging.page,
            limit: paging.limit,
            total,
            total_pages: total.div_ceil(limit).max(1),
        }
    }
}

/// One event name with its count and latest occurrence (ISO time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopEvent {
    pub event_name: String,
    pub count: u64,
    pub most_recent_timestamp: String,
}

/// A recent occurrence, with the fields SuperInsights 1.x lists (absent fields are omitted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Occurrence {
    #[serde(rename = "_id")]
    pub id: String,
    pub event_name: String,
    /// ISO time.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    pub properties: serde_json::Value,
}

/// Durations of one timed event name (events carrying `durationMs`), in milliseconds.
/// Percentiles are exact (lower nearest rank).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimedEvent {
    pub event_name: String,
    pub count: u64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// The events report (without the timeframe and event name, which the caller adds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsReport {
    pub total_events: u64,
    pub events_by_day: Vec<DayCount>,
    /// Every event name in the range and segment, sorted; ignores the event-name filter.
    pub unique_event_names: Vec<String>,
    /// [`REPORT_TOP`] names by count, then most recent first, then name.
    pub top_events: Vec<TopEvent>,
    /// The requested page, newest first.
    pub recent_occurrences: Vec<Occurrence>,
    pub recent_pagination: Pagination,
    /// [`REPORT_TOP`] timed names by p95, then average, then maximum (descending), then name.
    pub timed_events: Vec<TimedEvent>,
    /// Events in range whose `durationMs` lies beyond [`crate::domain::plausible`]'s bound: left
    /// out of `timed_events`.
    #[serde(default)]
    pub implausible_durations: u64,
}

/// A top-level property key of an event with up to [`SCHEMA_SAMPLES`] distinct values, the
/// most recently seen first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyKey {
    pub key: String,
    pub sample_values: Vec<serde_json::Value>,
}

/// Durations of one event name; everything `None` (and `count` 0) without timed occurrences.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationSummary {
    pub count: u64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Occurrences whose duration lies beyond [`crate::domain::plausible`]'s bound: left out of
    /// the figures above.
    #[serde(default)]
    pub implausible: u64,
}

/// One event name in detail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    /// The latest [`DETAIL_OCCURRENCES`] documents, newest first, with every stored field but
    /// the visitor's IP (`_id`, `timestamp` as ISO).
    pub occurrences: Vec<serde_json::Value>,
    /// Keys sorted.
    pub property_schema: Vec<PropertyKey>,
    pub events_by_day: Vec<DayCount>,
    pub duration_summary: DurationSummary,
}

/// The JSON type name of a property's samples, for the detail page: `string`, `number`,
/// `boolean`, `object`, `array`, `null`, or `mixed` when the samples disagree (nulls aside).
pub fn inferred_type(samples: &[serde_json::Value]) -> &'static str {
    use serde_json::Value;
    let name = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut found: Option<&'static str> = None;
    for v in samples.iter().filter(|v| !v.is_null()) {
        match found {
            None => found = Some(name(v)),
            Some(t) if t != name(v) => return "mixed",
            Some(_) => {}
        }
    }
    found.unwrap_or("null")
}

// ---------------------------------------------------------------------------------------------
// Drill-down reports: errors (reference §4.5) and performance (§4.6). JSON field names are
// SuperInsights 1.x's.
// ---------------------------------------------------------------------------------------------

/// Error groups on the errors page (SuperInsights 1.x: the top 50 fingerprints).
pub const GROUPED_ERRORS_TOP: usize = 50;
/// Occurrences listed on an error's detail page (SuperInsights 1.x: the latest 100).
pub const ERROR_DETAIL_OCCURRENCES: usize = 100;
/// The browsers the errors and performance pages filter on; any other value means "all".
pub const FILTER_BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];
/// The device types the performance page filters on; any other value means "all".
pub const FILTER_DEVICE_TYPES: [&str; 3] = ["desktop", "mobile", "tablet"];

/// The index of the lower-nearest-rank `p` percentile among `n` sorted values (⌊p·(n−1)⌋),
/// the same rank [`percentile`] reads; for stores that fetch one value by offset.
pub fn rank_index(n: u64, p: f64) -> u64 {
    (p * n.saturating_sub(1) as f64).floor() as u64
}

/// Keeps only the segment fields that apply to errors and performance (reference §4.7:
/// `clientId`, `userId`, metadata). Metadata keys with an empty path segment (`a..b`, `.a`)
/// cannot name a field in either backend and are dropped, like other unusable values.
fn document_segment(
    segment: &crate::domain::segment::SegmentFilters,
) -> crate::domain::segment::SegmentFilters {
    crate::domain::segment::SegmentFilters {
        client_id: segment.client_id.clone(),
        user_id: segment.user_id.clone(),
        meta: segment
            .meta
            .iter()
            .filter(|(k, _)| k.split('.').all(|part| !part.is_empty()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..crate::domain::segment::SegmentFilters::default()
    }
}

/// A short stable digest of filters for cache keys (`-` when nothing filters).
fn filters_token(value: &impl Serialize, empty: bool) -> String {
    if empty {
        return "-".into();
    }
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// What the errors page is restricted to. Stores map `segment` onto `context.clientId`,
/// `context.userId` and `context.<key>` (reference §4.7), exact string matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFilters {
    /// One of [`FILTER_BROWSERS`], or `None` for all.
    pub browser: Option<String>,
    /// An exact `errorType`, or `None` for all.
    pub error_type: Option<String>,
    /// Only `client_id`, `user_id` and `meta` are ever set.
    pub segment: crate::domain::segment::SegmentFilters,
    /// One error group's signature key (`domain::error_signature`), matched by the analytics
    /// engine (stores do not see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl ErrorFilters {
    /// From query parameters: `browser` (only the four known values), `errorType` (non-empty,
    /// not `all`) and the segment parameters (§4.7). Unusable values are ignored.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let mut f = ErrorFilters {
            segment: document_segment(&crate::domain::segment::SegmentFilters::from_params(
                params.clone(),
            )),
            ..Default::default()
        };
        for (name, value) in params {
            let value = value.trim();
            match name {
                "browser" if FILTER_BROWSERS.contains(&value) => f.browser = Some(value.into()),
                "errorType" if !value.is_empty() && value != "all" && !value.contains('\0') => {
                    f.error_type = Some(value.into())
                }
                "signature" if crate::domain::error_signature::is_signature_key(value) => {
                    f.signature = Some(value.into())
                }
                _ => {}
            }
        }
        f
    }

    pub fn is_empty(&self) -> bool {
        *self == ErrorFilters::default()
    }

    /// A short stable digest for cache keys (`-` when nothing filters).
    pub fn cache_token(&self) -> String {
        filters_token(self, self.is_empty())
    }
}

/// What the performance page is restricted to. Stores map `segment` onto `clientId`,
/// `properties.userId` and `properties.<key>` (reference §4.7), exact string matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceFilters {
    /// One of [`FILTER_DEVICE_TYPES`], or `None` for all.
    pub device_type: Option<String>,
    /// One of [`FILTER_BROWSERS`], or `None` for all.
    pub browser: Option<String>,
    /// Only `client_id`, `user_id` and `meta` are ever set.
    pub segment: crate::domain::segment::SegmentFilters,
}

impl PerformanceFilters {
    /// From query parameters: `deviceType` (`desktop|mobile|tablet`), `browser` (the four known
    /// values) and the segment parameters (§4.7). Unusable values are ignored.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let segment = crate::domain::segment::SegmentFilters::from_params(params);
        PerformanceFilters {
            device_type: segment
                .device_type
                .clone()
                .filter(|d| FILTER_DEVICE_TYPES.contains(&d.as_str())),
            browser: segment
                .browser
                .clone()
                .filter(|b| FILTER_BROWSERS.contains(&b.as_str())),
            segment: document_segment(&segment),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == PerformanceFilters::default()
    }

    /// A short stable digest for cache keys (`-` when nothing filters).
    pub fn cache_token(&self) -> String {
        filters_token(self, self.is_empty())
    }
}

/// One fingerprint on the errors page; the descriptive fields come from its **earliest**
/// occurrence in the range (as in SuperInsights 1.x).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorGroup {
    pub fingerprint: String,
    pub message: String,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub device_type: Option<String>,
    /// ISO time of the earliest occurrence in the range.
    pub first_seen: String,
    pub count: u64,
}

/// The errors report (without the timeframe, which the caller adds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorsReport {
    pub total_errors: u64,
    pub errors_by_day: Vec<DayCount>,
    /// The top fingerprints by count, ties by fingerprint.
    pub grouped_errors: Vec<ErrorGroup>,
    /// Distinct fingerprints matching the same filters as `total_errors` (SuperInsights 1.x
    /// ignored the browser filter here; we do not).
    pub unique_fingerprints: u64,
    /// Every error signature (`domain::error_signature`) by count, ties by key, at most
    /// [`SIGNATURE_GROUPS_MAX`]; the caller applies the groups' states.
    #[serde(default)]
    pub signature_groups: Vec<SignatureGroup>,
    /// Distinct signatures under the same filters.
    #[serde(default)]
    pub unique_signatures: u64,
}

/// Error signatures a report carries at most (the errors page shows the top ones of a state).
pub const SIGNATURE_GROUPS_MAX: usize = 1000;
/// Pages and browsers shown per error group.
pub const SIGNATURE_GROUP_TOP: usize = 3;

/// A name with its number of occurrences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

/// One error group as developers read it: every occurrence with the same signature (type,
/// normalised message, top frame). Descriptive fields come from its earliest occurrence in the
/// range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureGroup {
    /// The signature key (16 hex digits).
    pub signature: String,
    /// The earliest occurrence's message.
    pub message: String,
    /// The normalised message the group is keyed by.
    pub pattern: String,
    pub error_type: Option<String>,
    /// The top stack frame without line and column.
    pub frame: Option<String>,
    /// The earliest occurrence's 1.x fingerprint (its detail page).
    pub fingerprint: String,
    pub count: u64,
    /// Distinct `userId`s (else `clientId`s) seen, at least this many when `visitors_more`.
    pub visitors: u64,
    pub visitors_more: bool,
    pub first_seen: String,
    pub last_seen: String,
    /// The most frequent pages (paths) and browsers, with counts.
    pub pages: Vec<KeyCount>,
    pub browsers: Vec<KeyCount>,
}

/// One stored occurrence of an error (absent fields are omitted from JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOccurrence {
    /// ISO time.
    pub timestamp: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_number: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_number: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Free JSON (the SDK sends `{url, userAgent}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
}

impl ErrorOccurrence {
    /// `context.url` when the context carries one.
    pub fn page_url(&self) -> Option<&str> {
        self.context.as_ref()?.get("url")?.as_str()
    }

    /// `file:line:column` when known.
    pub fn location(&self) -> Option<String> {
        let file = self.source_file.as_deref()?;
        let mut out = file.to_string();
        for n in [self.line_number, self.column_number].into_iter().flatten() {
            out.push_str(&format!(":{n}"));
        }
        Some(out)
    }
}

/// One fingerprint over a range: the **true** number of occurrences (SuperInsights 1.x showed
/// at most 100), first and last seen over all of them, per-day counts, and the newest ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub fingerprint: String,
    pub total_occurrences: u64,
    /// ISO time of the earliest occurrence in the range.
    pub first_seen: Option<String>,
    /// ISO time of the newest occurrence in the range.
    pub last_seen: Option<String>,
    pub errors_by_day: Vec<DayCount>,
    /// The newest occurrences (at most the requested limit), newest first.
    pub occurrences: Vec<ErrorOccurrence>,
}

impl ErrorDetail {
    /// The newest occurrence, whose message, type, stack, location and context the page shows.
    pub fn latest(&self) -> Option<&ErrorOccurrence> {
        self.occurrences.first()
    }
}

/// The performance report: the figures of the dashboard under filters, plus how many
/// measurements carry all four SuperInsights 1.x metrics (lcp, cls, fid, ttfb).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceReport {
    pub figures: PerformanceFigures,
    pub complete_measurements: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_31_2024_NOON: i64 = 1_706_702_400_000;

    #[test]
    fn timeframes_parse_with_a_7d_default() {
        assert_eq!(Timeframe::parse(Some("24h")), Timeframe::H24);
        assert_eq!(Timeframe::parse(Some("3m")), Timeframe::M3);
        assert_eq!(Timeframe::parse(Some("2w")), Timeframe::D7);
        assert_eq!(Timeframe::parse(None), Timeframe::D7);
    }

    #[test]
    fn ranges_end_now_and_1y_is_year_to_date() {
        let r = Timeframe::H1.range(JAN_31_2024_NOON);
        assert_eq!(
            (r.start_ms, r.end_ms),
            (JAN_31_2024_NOON - HOUR, JAN_31_2024_NOON)
        );
        assert_eq!(
            Timeframe::M3.range(JAN_31_2024_NOON).start_ms,
            JAN_31_2024_NOON - 90 * DAY
        );
        assert_eq!(
            Timeframe::Y1.range(JAN_31_2024_NOON).start_ms,
            1_704_067_200_000,
            "2024-01-01T00:00Z"
        );
    }

    #[test]
    fn custom_ranges_are_whole_days_and_refuse_what_makes_no_sense() {
        let now = 1_796_601_600_000 + 10 * HOUR; // 2026-12-07 10:00 UTC
        let r = DayRange::parse(Some("2026-11-01"), Some("2026-11-30"), now)
            .unwrap()
            .unwrap();
        assert_eq!(r.dates(), ("2026-11-01".into(), "2026-11-30".into()));
        assert_eq!(r.range(now).end_ms - r.range(now).start_ms + 1, 30 * DAY);
        let today = DayRange::parse(Some("2026-12-07"), Some("2026-12-07"), now)
            .unwrap()
            .unwrap();
        assert_eq!(today.range(now).end_ms, now, "today ends now");
        assert_eq!(DayRange::parse(None, Some(" "), now), Ok(None));
        let bad = |f, t| DayRange::parse(Some(f), Some(t), now).unwrap_err().message;
        assert!(bad("2026-11-30", "2026-11-01").contains("after the end"));
        assert!(bad("2026-02-30", "2026-03-01").contains("not a date"));
        assert!(bad("2027-01-01", "2027-01-02").contains("future"));
        assert!(bad("1970-01-01", "1970-01-02").contains("before 2000"));
        assert!(bad("2020-01-01", "2026-01-01").contains("longer than"));
        assert_eq!(
            DayRange::parse(Some("2026-11-01"), None, now)
                .unwrap_err()
                .param,
            "to"
        );
    }

    #[test]
    fn utc_days() {
        assert_eq!(utc_day(JAN_31_2024_NOON), "2024-01-31");
        assert_eq!(utc_day(1_704_067_199_999), "2023-12-31");
    }

    #[test]
    fn lower_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.5), Some(5.0), "index floor(0.5*9)=4");
        assert_eq!(percentile(&v, 0.75), Some(7.0), "index floor(6.75)=6");
        assert_eq!(percentile(&v, 0.95), Some(9.0), "index floor(8.55)=8");
        assert_eq!(percentile(&[42.0], 0.95), Some(42.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn score_is_linear_between_thresholds_and_averages_the_measured_metrics() {
        assert_eq!(LCP.score(Some(2500.0)), 100);
        assert_eq!(LCP.score(Some(3250.0)), 50);
        assert_eq!(LCP.score(Some(4000.0)), 0);
        assert_eq!(CLS.score(Some(0.175)), 50);
        let s = performance_score(ScoreInputs {
            lcp: Some(2000.0),
            cls: Some(0.05),
            ttfb: Some(1300.0),
            fid: Some(300.0),
            inp: None,
        });
        assert_eq!(
            (s.lcp_score, s.cls_score, s.ttfb_score, s.inp_score, s.score),
            (100, 100, 50, 0, 83),
            "INP unmeasured is left out, not scored 0; FID is not counted"
        );
        assert_eq!((s.fid_score, s.measured), (0, true));
        let s = performance_score(ScoreInputs {
            inp: Some(350.0),
            ..Default::default()
        });
        assert_eq!(
            (s.inp_score, s.score, s.shown()),
            (50, 50, "50".to_string())
        );
        let none = performance_score(ScoreInputs::default());
        assert_eq!(
            (none.score, none.measured, none.shown()),
            (0, false, "—".into())
        );
        assert_eq!(none.badge_class(3), "");
        assert_eq!(TTFB.status(Some(900.0)), Some("needs-improvement"));
        assert_eq!(INP.status(Some(600.0)), Some("poor"));
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recent_paging_defaults_and_clamps() {
        assert_eq!(RecentPaging::parse(None, None), RecentPaging::default());
        assert_eq!(
            RecentPaging::parse(Some("0"), Some("0")),
            RecentPaging { page: 1, limit: 1 }
        );
        assert_eq!(
            RecentPaging::parse(Some("3"), Some("500")),
            RecentPaging { page: 3, limit: 50 }
        );
        assert_eq!(
            RecentPaging::parse(Some("x"), Some("-4")),
            RecentPaging { page: 1, limit: 1 }
        );
        assert_eq!(RecentPaging { page: 3, limit: 10 }.offset(), 20);
    }

    #[test]
    fn pagination_counts_pages_and_has_at_least_one() {
        let p = |total| Pagination::of(RecentPaging { page: 2, limit: 10 }, total).total_pages;
        assert_eq!((p(0), p(1), p(10), p(11), p(20)), (1, 1, 1, 2, 2));
    }

    #[test]
    fn property_types_are_inferred_from_samples() {
        assert_eq!(inferred_type(&[json!("a"), json!("b")]), "string");
        assert_eq!(
            inferred_type(&[json!(1), Value::Null, json!(2.5)]),
            "number"
        );
        assert_eq!(inferred_type(&[json!(true)]), "boolean");
        assert_eq!(inferred_type(&[json!({"a": 1})]), "object");
        assert_eq!(inferred_type(&[json!([1])]), "array");
        assert_eq!(inferred_type(&[json!(1), json!("1")]), "mixed");
        assert_eq!(inferred_type(&[Value::Null]), "null");
        assert_eq!(inferred_type(&[]), "null");
    }

    use serde_json::Value;
}

#[cfg(test)]
mod diagnostics_tests {
    use super::*;

    fn pairs<'a>(p: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a str)> + Clone {
        p.iter().copied()
    }

    #[test]
    fn error_filters_keep_known_browsers_real_types_and_document_segments() {
        let f = ErrorFilters::from_params(pairs(&[
            ("browser", "Firefox"),
            ("errorType", " unhandled_rejection "),
            ("clientId", "c1"),
            ("os", "Linux"),
            ("deviceType", "mobile"),
            ("meta", r#"{"release":"1.2","a..b":"x",".a":"y"}"#),
        ]));
        assert_eq!(f.browser.as_deref(), Some("Firefox"));
        assert_eq!(f.error_type.as_deref(), Some("unhandled_rejection"));
        assert_eq!(f.segment.client_id.as_deref(), Some("c1"));
        assert_eq!(
            (&f.segment.os, &f.segment.device_type, &f.segment.browser),
            (&None, &None, &None),
            "only clientId, userId and metadata apply to errors"
        );
        assert_eq!(
            f.segment.meta.keys().collect::<Vec<_>>(),
            vec!["release"],
            "keys with an empty path segment are dropped"
        );
        let all = ErrorFilters::from_params(pairs(&[
            ("browser", "Opera"),
            ("browser", "chrome"),
            ("errorType", "all"),
            ("errorType", "  "),
        ]));
        assert!(all.is_empty());
        assert_eq!(all.cache_token(), "-");
        assert_ne!(f.cache_token(), "-");
    }

    #[test]
    fn performance_filters_take_device_and_browser_from_the_query() {
        let f = PerformanceFilters::from_params(pairs(&[
            ("device_type", "tablet"),
            ("browser", "Safari"),
            ("userId", "u1"),
            ("utm_source", "news"),
        ]));
        assert_eq!(f.device_type.as_deref(), Some("tablet"));
        assert_eq!(f.browser.as_deref(), Some("Safari"));
        assert_eq!(f.segment.user_id.as_deref(), Some("u1"));
        assert_eq!(f.segment.utm_source, None);
        assert_eq!(f.segment.browser, None, "browser is the page's own filter");
        let all =
            PerformanceFilters::from_params(pairs(&[("deviceType", "tv"), ("browser", "IE")]));
        assert!(all.is_empty());
        assert_ne!(
            f.cache_token(),
            PerformanceFilters::from_params(pairs(&[("browser", "Safari")])).cache_token()
        );
    }

    #[test]
    fn rank_index_is_the_percentile_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        for p in [0.5, 0.75, 0.95] {
            assert_eq!(
                Some(v[rank_index(10, p) as usize]),
                percentile(&v, p),
                "p{p}"
            );
        }
        assert_eq!(rank_index(1, 0.95), 0);
        assert_eq!(rank_index(0, 0.5), 0);
    }

    #[test]
    fn occurrences_know_their_location_and_page() {
        let o = ErrorOccurrence {
            source_file: Some("app.js".into()),
            line_number: Some(3.0),
            column_number: Some(14.0),
            context: Some(serde_json::json!({"url": "https://x.example/"})),
            ..Default::default()
        };
        assert_eq!(o.location().as_deref(), Some("app.js:3:14"));
        assert_eq!(o.page_url(), Some("https://x.example/"));
        assert_eq!(ErrorOccurrence::default().location(), None);
    }
}
