//! The time series behind every chart (dashboard, drill-downs, public links): picks the bucket
//! for the range (`analytics::series`), sums whole days from the report's own day list, and
//! asks the store for one raw scan per minute or hour when the buckets are finer than a day.

use crate::{
    analytics::series::{Bucket, Line, SeriesSource, TimeSeries, UnitCounts, series},
    domain::{
        analytics::{DayCount, MetricsDay, TimeRange},
        ids::DocId,
    },
    store::{StatsReader, StoreResult},
};

/// The series of one count (`key`: `views`, `events`, `errors`) over `range`: from `days` (the
/// report's day list, so the chart and the report agree) or, for minute and hour buckets, from
/// the documents `source` names.
pub async fn count_series(
    stats: &dyn StatsReader,
    project: DocId,
    range: TimeRange,
    key: &'static str,
    source: SeriesSource<'_>,
    days: &[DayCount],
) -> StoreResult<TimeSeries> {
    let bucket = Bucket::for_range(range);
    let counts = if bucket.is_fine() {
        stats
            .unit_counts(project, range, bucket.unit(), source)
            .await?
    } else {
        UnitCounts::from_days(days)
    };
    Ok(series(range, bucket, &[(key, Line::Count(&counts))]))
}

/// The series of web-vital averages (`metrics`: key and index into `METRICS`) over `range`,
/// weighted by the number of values in each unit.
pub async fn vitals_series(
    stats: &dyn StatsReader,
    project: DocId,
    range: TimeRange,
    source: SeriesSource<'_>,
    days: &[MetricsDay],
    metrics: &[(&'static str, usize)],
) -> StoreResult<TimeSeries> {
    let bucket = Bucket::for_range(range);
    let counts = if bucket.is_fine() {
        stats
            .unit_counts(project, range, bucket.unit(), source)
            .await?
    } else {
        UnitCounts::from_metric_days(days)
    };
    let lines: Vec<(&'static str, Line<'_>)> = metrics
        .iter()
        .map(|&(k, m)| (k, Line::Average(&counts, m)))
        .collect();
    Ok(series(range, bucket, &lines))
}
