//! Timeframes and custom day ranges: the spans every view covers, their UTC day buckets,
//! and the messages for ranges that make no sense.

use super::*;
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
    /// Each of the 24 hours up to `now` (the last one the current, partial hour), oldest
    /// first, then the UTC day so far (whole hours of them): what the projects list counts.
    pub fn hours_and_today(now: i64) -> Vec<TimeRange> {
        let current_hour = now - now.rem_euclid(HOUR);
        let mut ranges: Vec<TimeRange> = (0..24)
            .rev()
            .map(|back| {
                let start = current_hour - back * HOUR;
                TimeRange {
                    start_ms: start,
                    end_ms: (start + HOUR - 1).min(now),
                }
            })
            .collect();
        ranges.push(TimeRange {
            start_ms: now - now.rem_euclid(DAY),
            end_ms: now,
        });
        ranges
    }

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
}
