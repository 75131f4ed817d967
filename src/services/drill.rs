//! What every drill-down page (page views, events, errors, performance) reads through: its
//! report from the stats port by way of the dashboard cache, keyed by the page's variant and
//! span, and the chart series beside it.

use crate::{
    analytics::series::{SeriesSource, TimeSeries},
    domain::{
        analytics::{DayCount, MetricsDay, Span, TimeRange},
        ids::DocId,
    },
    runtime::cache::DashboardCache,
    services::charts,
    store::{StatsReader, StoreResult, Stores},
};
use serde::{Serialize, de::DeserializeOwned};
use std::{future::Future, sync::Arc};

/// One drill-down of `project` over `span`.
#[derive(Clone, Copy)]
pub struct Drill<'a> {
    stores: &'a Stores,
    cache: &'a DashboardCache,
    project: DocId,
    span: Span,
    /// The server's clock when the page was asked for: where the span's range ends.
    now: i64,
}

impl<'a> Drill<'a> {
    pub fn new(stores: &'a Stores, cache: &'a DashboardCache, project: DocId, span: Span) -> Self {
        Self {
            stores,
            cache,
            project,
            span,
            now: cache.now_ms(),
        }
    }

    /// The server's clock when the page was asked for.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The report `read` answers from the stats port over the span's range, through the cache
    /// under `kind` and `variant` (the span's token appended). `read` runs only on a miss.
    pub async fn cached<T, Fut>(
        &self,
        kind: &str,
        variant: &str,
        read: impl FnOnce(Arc<dyn StatsReader>, TimeRange) -> Fut,
    ) -> StoreResult<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let (stats, span, now) = (self.stores.stats.clone(), self.span, self.now);
        let key = variant.to_string() + &span.cache_token();
        self.cache
            .get_or_compute(kind, self.project, span.timeframe, &key, move || {
                read(stats, span.range(now))
            })
            .await
    }

    /// The chart of one count (`key`) over the span: see [`charts::count_series`].
    pub async fn count_series(
        &self,
        key: &'static str,
        source: SeriesSource<'_>,
        days: &[DayCount],
    ) -> StoreResult<TimeSeries> {
        let range = self.span.range(self.now);
        charts::count_series(&*self.stores.stats, self.project, range, key, source, days).await
    }

    /// The chart of the web vitals `metrics` over the span: see [`charts::vitals_series`].
    pub async fn vitals_series(
        &self,
        source: SeriesSource<'_>,
        days: &[MetricsDay],
        metrics: &[(&'static str, usize)],
    ) -> StoreResult<TimeSeries> {
        let range = self.span.range(self.now);
        charts::vitals_series(
            &*self.stores.stats,
            self.project,
            range,
            source,
            days,
            metrics,
        )
        .await
    }
}
