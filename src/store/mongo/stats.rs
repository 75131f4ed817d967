//! The dashboard summaries on MongoDB: the analytics engine reads them from rollups
//! (`rollups.rs` is this backend's port) and computes the figures with the same code as
//! SQLite's (`analytics::summaries`).

use super::MongoStore;
use crate::analytics::{
    engine,
    rollup::{Aggs, Part},
};
use crate::domain::{
    analytics::{
        Breakdowns, ErrorsSummary, EventsSummary, PageViewsSummary, PerformanceFigures, TimeRange,
    },
    ids::DocId,
};
use crate::store::StoreResult;

impl MongoStore {
    /// The aggregates of `part` over `range`.
    async fn folded(&self, project: DocId, range: TimeRange, part: Part) -> StoreResult<Aggs> {
        engine::aggregate(self, project, range, &[part]).await
    }

    pub(super) async fn stats_pageviews(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<PageViewsSummary> {
        Ok(self
            .folded(project, range, Part::Pageviews)
            .await?
            .pageviews_summary(top))
    }

    pub(super) async fn stats_events(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<EventsSummary> {
        Ok(self
            .folded(project, range, Part::Events)
            .await?
            .events_summary(top))
    }

    pub(super) async fn stats_errors(
        &self,
        project: DocId,
        range: TimeRange,
    ) -> StoreResult<ErrorsSummary> {
        Ok(self
            .folded(project, range, Part::Errors)
            .await?
            .errors_summary())
    }

    pub(super) async fn stats_performance(
        &self,
        project: DocId,
        range: TimeRange,
    ) -> StoreResult<PerformanceFigures> {
        Ok(self
            .folded(project, range, Part::Performance)
            .await?
            .performance_figures())
    }

    pub(super) async fn stats_breakdowns(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<Breakdowns> {
        Ok(self
            .folded(project, range, Part::Breakdowns)
            .await?
            .breakdowns(top))
    }
}
