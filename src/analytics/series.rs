//! Time series for the charts: which bucket a range is plotted in (minutes up to an hour, hours
//! up to 48 hours, UTC days up to 92 days, ISO weeks up to 200 days, calendar months beyond),
//! the buckets of a range with the partial ones (cut by the range's start or end, such as the
//! current hour) marked, and the figures per bucket from per-unit counts. Pure: the counts come
//! from the reports' day lists or, for minutes and hours, from a raw scan folded per unit
//! ([`crate::analytics::rollup::Folder::with_unit`], `engine::fine_counts`).

use super::plan::{DAY, HOUR};
use crate::domain::analytics::{DayCount, MetricsDay, TimeRange};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Date, Duration, Month};

const MINUTE: i64 = 60_000;

/// The bucket a chart plots a range in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Bucket {
    /// Minutes up to an hour, hours up to 48 hours, days up to 92 days (so 90 days stay
    /// daily), weeks up to 200 days, months beyond (a year to date, long custom ranges).
    pub fn for_range(range: TimeRange) -> Bucket {
        let len = range.end_ms - range.start_ms;
        if len <= HOUR + MINUTE {
            Bucket::Minute
        } else if len <= 48 * HOUR + MINUTE {
            Bucket::Hour
        } else if len <= 92 * DAY {
            Bucket::Day
        } else if len <= 200 * DAY {
            Bucket::Week
        } else {
            Bucket::Month
        }
    }

    /// The unit (ms) the figures are counted in: the bucket itself for minutes and hours, a
    /// UTC day for days, weeks and months (which are sums of days).
    pub fn unit(self) -> i64 {
        match self {
            Bucket::Minute => MINUTE,
            Bucket::Hour => HOUR,
            _ => DAY,
        }
    }

    /// True when the figures need a raw scan counted per minute or hour (the rollups answer
    /// whole days only).
    pub fn is_fine(self) -> bool {
        matches!(self, Bucket::Minute | Bucket::Hour)
    }

    /// The start (ms) of the bucket holding `ms`.
    fn floor(self, ms: i64) -> i64 {
        match self {
            Bucket::Minute | Bucket::Hour | Bucket::Day => ms.div_euclid(self.unit()) * self.unit(),
            Bucket::Week => {
                let day = ms.div_euclid(DAY);
                // 1970-01-01 was a Thursday: three days after a Monday.
                (day - (day + 3).rem_euclid(7)) * DAY
            }
            Bucket::Month => {
                let date = date_of(ms.div_euclid(DAY));
                let first = Date::from_calendar_date(date.year(), date.month(), 1).expect("day 1");
                day_of(first) * DAY
            }
        }
    }

    /// The start (ms) of the bucket after the one starting at `start`.
    fn next(self, start: i64) -> i64 {
        match self {
            Bucket::Week => start + 7 * DAY,
            Bucket::Month => {
                let d = date_of(start.div_euclid(DAY));
                let (y, m) = match d.month() {
                    Month::December => (d.year() + 1, Month::January),
                    m => (d.year(), m.next()),
                };
                day_of(Date::from_calendar_date(y, m, 1).expect("day 1")) * DAY
            }
            _ => start + self.unit(),
        }
    }
}

fn date_of(day: i64) -> Date {
    Date::from_calendar_date(1970, Month::January, 1).expect("epoch") + Duration::days(day)
}

fn day_of(date: Date) -> i64 {
    (date - Date::from_calendar_date(1970, Month::January, 1).expect("epoch")).whole_days()
}

/// Parses a `YYYY-MM-DD` day into days since 1970-01-01.
fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    Some(day_of(
        Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?,
    ))
}

/// Which documents a fine series counts, under the filters of the page it is drawn on.
#[derive(Clone, Copy, Debug)]
pub enum SeriesSource<'a> {
    Pageviews(&'a crate::domain::analytics::PageViewFilters),
    /// Events (of one name when given) matching a segment.
    Events {
        name: Option<&'a str>,
        segment: &'a crate::domain::segment::SegmentFilters,
    },
    Errors(&'a crate::domain::analytics::ErrorFilters),
    /// The errors of one fingerprint.
    ErrorGroup(&'a str),
    Performance(&'a crate::domain::analytics::PerformanceFilters),
}

/// Web vitals per unit: per metric of `METRICS`, the count and sum of the plausible values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VitalsUnit {
    pub n: [u64; 5],
    pub sum: [f64; 5],
}

/// Figures per unit (a minute, an hour or a UTC day, numbered from the epoch): what a series
/// is bucketed from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnitCounts {
    /// The unit's length in ms.
    pub unit: i64,
    pub counts: BTreeMap<i64, u64>,
    pub vitals: BTreeMap<i64, VitalsUnit>,
}

impl UnitCounts {
    /// Counts per UTC day from a report's day list (`viewsByDay`, `eventsByDay`, …).
    pub fn from_days(days: &[DayCount]) -> Self {
        let mut counts = BTreeMap::new();
        for d in days {
            if let Some(day) = parse_day(&d.date) {
                *counts.entry(day).or_default() += d.count;
            }
        }
        Self {
            unit: DAY,
            counts,
            vitals: BTreeMap::new(),
        }
    }

    /// Web vitals per UTC day from a report's daily averages and their counts.
    pub fn from_metric_days(days: &[MetricsDay]) -> Self {
        let mut vitals = BTreeMap::new();
        for d in days {
            let Some(day) = parse_day(&d.date) else {
                continue;
            };
            let mut v = VitalsUnit::default();
            for (m, avg) in [d.lcp, d.cls, d.fid, d.ttfb, d.inp].into_iter().enumerate() {
                if let Some(avg) = avg {
                    // Without counts (an older reader), every day weighs the same.
                    let n = d.n[m].max(1);
                    v.n[m] = n;
                    v.sum[m] = avg * n as f64;
                }
            }
            vitals.insert(day, v);
        }
        Self {
            unit: DAY,
            counts: BTreeMap::new(),
            vitals,
        }
    }
}

/// One bucket of a series: `[start, end)` in ms, `partial` when the range covers only part
/// of it (the current, still open bucket, or the first one cut by the range's start), and
/// one value per line (`None`: no measurement, for averages).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub start: i64,
    pub end: i64,
    pub partial: bool,
    pub values: Vec<Option<f64>>,
}

/// A chart's series: the bucket, the lines' keys, and every bucket of the range (empty ones
/// count 0, so the line never skips a quiet hour).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    pub bucket: Bucket,
    pub lines: Vec<String>,
    pub points: Vec<Point>,
}

/// What one line of a series plots.
#[derive(Clone, Copy, Debug)]
pub enum Line<'a> {
    /// The sum of the counts in each bucket.
    Count(&'a UnitCounts),
    /// The average of one metric (an index into `METRICS`) in each bucket.
    Average(&'a UnitCounts, usize),
}

/// The buckets of `range` in `bucket`: (start, end exclusive, partial).
pub fn buckets(range: TimeRange, bucket: Bucket) -> Vec<(i64, i64, bool)> {
    let mut out = Vec::new();
    if range.start_ms > range.end_ms {
        return out;
    }
    let mut start = bucket.floor(range.start_ms);
    while start <= range.end_ms {
        let end = bucket.next(start);
        out.push((start, end, range.start_ms > start || range.end_ms < end - 1));
        start = end;
    }
    out
}

/// The series of `lines` (key, line) over `range` in `bucket`. Units outside the range are
/// left out; units are assigned to the bucket holding their start.
pub fn series(range: TimeRange, bucket: Bucket, lines: &[(&'static str, Line<'_>)]) -> TimeSeries {
    let spans = buckets(range, bucket);
    let index = |unit: i64, u: i64| -> Option<usize> {
        let ms = u * unit;
        let i = spans.partition_point(|s| s.0 <= ms);
        (i > 0 && ms < spans[i - 1].1).then(|| i - 1)
    };
    let mut columns: Vec<Vec<Option<f64>>> = Vec::with_capacity(lines.len());
    for (_, line) in lines {
        let col = match *line {
            Line::Count(c) => {
                let mut sums = vec![0u64; spans.len()];
                for (&u, &n) in &c.counts {
                    if let Some(i) = index(c.unit, u) {
                        sums[i] += n;
                    }
                }
                sums.into_iter().map(|n| Some(n as f64)).collect()
            }
            Line::Average(c, m) => {
                let mut acc = vec![(0u64, 0f64); spans.len()];
                for (&u, v) in &c.vitals {
                    if let Some(i) = index(c.unit, u) {
                        acc[i].0 += v.n[m];
                        acc[i].1 += v.sum[m];
                    }
                }
                acc.into_iter()
                    .map(|(n, s)| (n > 0).then(|| s / n as f64))
                    .collect()
            }
        };
        columns.push(col);
    }
    let points = spans
        .iter()
        .enumerate()
        .map(|(i, &(start, end, partial))| Point {
            start,
            end,
            partial,
            values: columns.iter().map(|c| c[i]).collect(),
        })
        .collect();
    TimeSeries {
        bucket,
        lines: lines.iter().map(|(k, _)| k.to_string()).collect(),
        points,
    }
}

/// The previous period's series set beside `current` bucket by bucket: point `i` of the
/// result is the `i`-th bucket of the previous period (its own start and end, so a tooltip can
/// say which days it was), cut to `current`'s length. Both periods have the same length and
/// so the same bucket size; only calendar months and ISO weeks can give the earlier period a
/// bucket more or less, and a missing one is simply not drawn.
pub fn aligned_previous(current: &TimeSeries, mut previous: TimeSeries) -> TimeSeries {
    previous.points.truncate(current.points.len());
    previous
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start_ms: i64, end_ms: i64) -> TimeRange {
        TimeRange { start_ms, end_ms }
    }

    // 2026-12-07 (a Monday) 10:37:12 UTC.
    const NOW: i64 = 1_796_601_600_000 + 10 * HOUR + 37 * MINUTE + 12_000;

    #[test]
    fn the_previous_period_lines_up_bucket_by_bucket() {
        let now = range(NOW - 7 * DAY, NOW);
        let before = range(now.start_ms - 7 * DAY - 1, now.start_ms - 1);
        let days = UnitCounts {
            unit: DAY,
            counts: BTreeMap::from([((NOW - 10 * DAY) / DAY, 4)]),
            ..Default::default()
        };
        let current = series(now, Bucket::Day, &[("views", Line::Count(&days))]);
        let earlier = series(before, Bucket::Day, &[("views", Line::Count(&days))]);
        let aligned = aligned_previous(&current, earlier);
        assert_eq!(aligned.points.len(), current.points.len());
        assert_eq!(aligned.points.len(), 8);
        // The day 10 days ago is bucket 4 of the week before the last 7 days (its first
        // bucket is 14 days ago), as the day 3 days ago is bucket 4 of this week.
        let at = |s: &TimeSeries, i: usize| s.points[i].values[0];
        assert_eq!(at(&aligned, 4), Some(4.0));
        assert_eq!(
            aligned
                .points
                .iter()
                .filter_map(|p| p.values[0])
                .sum::<f64>(),
            4.0
        );
        assert_eq!(aligned.points[0].start, (NOW - 14 * DAY) / DAY * DAY);
        assert_eq!(aligned.points[4].end - aligned.points[4].start, DAY);
        let months = range(NOW - 340 * DAY, NOW);
        let short = series(months, Bucket::Month, &[("views", Line::Count(&days))]);
        let long = series(
            range(NOW - 700 * DAY, NOW),
            Bucket::Month,
            &[("views", Line::Count(&days))],
        );
        assert_eq!(
            aligned_previous(&short, long).points.len(),
            short.points.len()
        );
    }

    #[test]
    fn the_bucket_follows_the_length_of_the_range() {
        let b = |len: i64| Bucket::for_range(range(NOW - len, NOW));
        assert_eq!(b(5 * MINUTE), Bucket::Minute);
        assert_eq!(b(HOUR), Bucket::Minute);
        assert_eq!(b(6 * HOUR), Bucket::Hour);
        assert_eq!(b(48 * HOUR), Bucket::Hour);
        assert_eq!(b(7 * DAY), Bucket::Day);
        assert_eq!(b(90 * DAY), Bucket::Day);
        assert_eq!(b(150 * DAY), Bucket::Week);
        assert_eq!(b(340 * DAY), Bucket::Month);
    }

    #[test]
    fn buckets_cover_the_range_and_mark_the_cut_ones_partial() {
        let hours = buckets(range(NOW - 24 * HOUR, NOW), Bucket::Hour);
        assert_eq!(hours.len(), 25);
        assert_eq!(hours[0].0, NOW - 24 * HOUR - 37 * MINUTE - 12_000);
        assert!(hours[0].2 && hours[24].2);
        assert!(hours[1..24].iter().all(|b| !b.2));
        let minutes = buckets(range(NOW - 5 * MINUTE, NOW), Bucket::Minute);
        assert_eq!(minutes.len(), 6);
        // Whole days of a range ending at midnight: none partial.
        let midnight = NOW - 10 * HOUR - 37 * MINUTE - 12_000;
        let days = buckets(range(midnight - 7 * DAY, midnight - 1), Bucket::Day);
        assert_eq!((days.len(), days.iter().any(|b| b.2)), (7, false));
        // Weeks start on Mondays, months on the 1st.
        let weeks = buckets(range(midnight - 150 * DAY, NOW), Bucket::Week);
        assert!(weeks.iter().all(|w| (w.0 / DAY + 3) % 7 == 0));
        assert!(weeks.last().unwrap().2);
        let months = buckets(range(1_767_225_600_000, NOW), Bucket::Month); // 2026-01-01
        assert_eq!(months.len(), 12);
        assert_eq!(date_of(months[1].0 / DAY).to_string(), "2026-02-01");
        assert_eq!(date_of(months[11].1 / DAY).to_string(), "2027-01-01");
        assert!(!months[0].2 && months[11].2);
    }

    #[test]
    fn counts_are_summed_per_bucket_with_empty_buckets_as_zero() {
        let days = [
            DayCount {
                date: "2026-01-05".into(),
                count: 3,
            },
            DayCount {
                date: "2026-01-31".into(),
                count: 4,
            },
            DayCount {
                date: "2026-03-02".into(),
                count: 5,
            },
        ];
        let c = UnitCounts::from_days(&days);
        let s = series(
            range(1_767_225_600_000, NOW),
            Bucket::Month,
            &[("views", Line::Count(&c))],
        );
        let v: Vec<f64> = s.points.iter().map(|p| p.values[0].unwrap()).collect();
        assert_eq!(&v[..4], &[7.0, 0.0, 5.0, 0.0]);
        assert_eq!(v.iter().sum::<f64>(), 12.0);
    }

    #[test]
    fn averages_weigh_each_unit_by_its_measurements() {
        let mut c = UnitCounts {
            unit: MINUTE,
            ..Default::default()
        };
        let m = NOW.div_euclid(MINUTE);
        c.vitals.insert(
            m,
            VitalsUnit {
                n: [3, 0, 0, 0, 0],
                sum: [300.0, 0.0, 0.0, 0.0, 0.0],
            },
        );
        c.vitals.insert(
            m - 1,
            VitalsUnit {
                n: [1, 0, 0, 0, 0],
                sum: [500.0, 0.0, 0.0, 0.0, 0.0],
            },
        );
        let s = series(
            range(NOW - 2 * HOUR, NOW),
            Bucket::Hour,
            &[("lcp", Line::Average(&c, 0)), ("cls", Line::Average(&c, 1))],
        );
        let last = s.points.last().unwrap();
        assert_eq!(last.values, vec![Some(200.0), None]);
        assert!(last.partial);
        assert_eq!(s.points[0].values, vec![None, None]);
    }
}
