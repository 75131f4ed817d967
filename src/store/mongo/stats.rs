//! The dashboard summaries (the same figures as the SQLite backend, pinned by the shared contract
//! suite): one `find` per summary, scoped by project and range and projected to the fields the
//! figure needs, folded in Rust by `scan`. No aggregation operators, so MongoDB and FerretDB
//! answer alike.

use super::{MongoStore, filters::Match, scan};
use crate::domain::{
    analytics::{
        Breakdowns, ErrorsSummary, EventCount, EventsSummary, PageCount, PageViewsSummary,
        PerformanceFigures, TimeRange,
    },
    ids::DocId,
    model::Channel,
};
use crate::store::StoreResult;

fn in_range(project: DocId, range: TimeRange) -> mongodb::bson::Document {
    Match::scope(project, range).build()
}

impl MongoStore {
    pub(super) async fn stats_pageviews(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<PageViewsSummary> {
        let docs = self
            .rows(
                Channel::Pageviews,
                in_range(project, range),
                &["url", "clientId", "timestamp"],
            )
            .await?;
        Ok(PageViewsSummary {
            total_views: docs.len() as u64,
            unique_visitors: scan::visitors(&docs),
            views_by_day: scan::days(&docs),
            top_pages: scan::top_counts(scan::counts_by(&docs, "url"), top)
                .into_iter()
                .map(|(url, views)| PageCount { url, views })
                .collect(),
        })
    }

    pub(super) async fn stats_events(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<EventsSummary> {
        let docs = self
            .rows(
                Channel::Events,
                in_range(project, range),
                &["eventName", "timestamp"],
            )
            .await?;
        Ok(EventsSummary {
            total_events: docs.len() as u64,
            top_events: scan::top_counts(scan::counts_by(&docs, "eventName"), top)
                .into_iter()
                .map(|(event_name, count)| EventCount { event_name, count })
                .collect(),
            events_by_day: scan::days(&docs),
        })
    }

    pub(super) async fn stats_errors(
        &self,
        project: DocId,
        range: TimeRange,
    ) -> StoreResult<ErrorsSummary> {
        let docs = self
            .rows(
                Channel::Errors,
                in_range(project, range),
                &["fingerprint", "timestamp"],
            )
            .await?;
        Ok(ErrorsSummary {
            total_errors: docs.len() as u64,
            unique_fingerprints: scan::distinct(&docs, "fingerprint"),
            errors_by_day: scan::days(&docs),
        })
    }

    pub(super) async fn stats_performance(
        &self,
        project: DocId,
        range: TimeRange,
    ) -> StoreResult<PerformanceFigures> {
        let docs = self
            .rows(
                Channel::Performance,
                in_range(project, range),
                &["lcp", "cls", "fid", "ttfb", "inp", "timestamp"],
            )
            .await?;
        Ok(scan::vitals(&docs).0)
    }

    /// Page-view breakdowns: the stored fields of every page view in range, mapped (referrer →
    /// host, missing → placeholder) and ranked by the shared domain code, so both backends
    /// label and order alike.
    pub(super) async fn stats_breakdowns(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<Breakdowns> {
        let fields = scan::BREAKDOWN_FIELDS.map(|(_, field)| field);
        let docs = self
            .rows(Channel::Pageviews, in_range(project, range), &fields)
            .await?;
        Ok(scan::breakdowns(&docs, top))
    }
}
