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

/// SuperInsights 1.x's performance score from p75 values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceScore {
    pub score: u32,
    pub lcp_score: u32,
    pub cls_score: u32,
    pub fid_score: u32,
    pub ttfb_score: u32,
    /// Always `p75`.
    pub basis: String,
}

/// Rounded mean of the four metric scores (a missing metric scores 0).
pub fn performance_score(
    lcp: Option<f64>,
    cls: Option<f64>,
    fid: Option<f64>,
    ttfb: Option<f64>,
) -> PerformanceScore {
    let (l, c, f, t) = (
        LCP.score(lcp),
        CLS.score(cls),
        FID.score(fid),
        TTFB.score(ttfb),
    );
    PerformanceScore {
        score: ((l + c + f + t) as f64 / 4.0).round() as u32,
        lcp_score: l,
        cls_score: c,
        fid_score: f,
        ttfb_score: t,
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

/// What the store answers about web vitals in a range; the score is derived by the caller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceFigures {
    /// Per metric of [`METRICS`], in that order.
    pub percentiles: Vec<(String, Percentiles)>,
    pub metrics_by_day: Vec<MetricsDay>,
    pub total_measurements: u64,
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

    /// SuperInsights 1.x's score from the p75 values.
    pub fn score(&self) -> PerformanceScore {
        performance_score(
            self.of("lcp").p75,
            self.of("cls").p75,
            self.of("fid").p75,
            self.of("ttfb").p75,
        )
    }
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
    fn score_is_linear_between_thresholds_and_missing_scores_zero() {
        assert_eq!(LCP.score(Some(2500.0)), 100);
        assert_eq!(LCP.score(Some(3250.0)), 50);
        assert_eq!(LCP.score(Some(4000.0)), 0);
        assert_eq!(CLS.score(Some(0.175)), 50);
        let s = performance_score(Some(2000.0), Some(0.05), None, Some(1300.0));
        assert_eq!(
            (s.lcp_score, s.cls_score, s.fid_score, s.ttfb_score, s.score),
            (100, 100, 0, 50, 63)
        );
        assert_eq!(TTFB.status(Some(900.0)), Some("needs-improvement"));
        assert_eq!(INP.status(Some(600.0)), Some("poor"));
    }
}
