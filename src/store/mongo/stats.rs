//! The dashboard summaries on MongoDB: one `find` per channel, scoped by project and range and
//! projected to the fields the figures need, fed document by document into the analytics
//! engine's [`Folder`]; the figures come from the same code as SQLite's (`analytics::summaries`).
//! No aggregation operators, so MongoDB and FerretDB answer alike. (No rollups here yet: every
//! view scans its range.)

use super::{MongoStore, filters::Match, scan};
use crate::analytics::rollup::{Aggs, Folder, Part, Visitor};
use crate::domain::{
    analytics::{
        Breakdowns, ErrorsSummary, EventsSummary, METRICS, PageViewsSummary, PerformanceFigures,
        TimeRange,
    },
    ids::DocId,
    model::Channel,
};
use crate::store::StoreResult;

impl MongoStore {
    /// The aggregates of `part` over `range`, folded from the raw documents.
    async fn folded(&self, project: DocId, range: TimeRange, part: Part) -> StoreResult<Aggs> {
        let scope = Match::scope(project, range).build();
        let mut f = Folder::new(&[part]);
        match part {
            Part::Pageviews | Part::Breakdowns => {
                let mut fields = vec!["url", "clientId", "timestamp"];
                fields.extend(scan::BREAKDOWN_FIELDS.map(|(_, field)| field));
                for d in self.rows(Channel::Pageviews, scope, &fields).await? {
                    let Some(ts) = scan::millis(&d, "timestamp") else {
                        continue;
                    };
                    let visitor = match scan::text(&d, "clientId") {
                        Some(client) => Visitor::Unnamed(client),
                        None => Visitor::Anonymous,
                    };
                    let dims = scan::BREAKDOWN_FIELDS.map(|(_, field)| scan::text(&d, field));
                    f.pageview(ts, scan::text(&d, "url").unwrap_or(""), visitor, dims);
                }
            }
            Part::Events | Part::Errors => {
                let (channel, key) = if part == Part::Events {
                    (Channel::Events, "eventName")
                } else {
                    (Channel::Errors, "fingerprint")
                };
                for d in self.rows(channel, scope, &[key, "timestamp"]).await? {
                    let Some(ts) = scan::millis(&d, "timestamp") else {
                        continue;
                    };
                    let value = scan::text(&d, key).unwrap_or("");
                    if part == Part::Events {
                        f.event(ts, value);
                    } else {
                        f.error(ts, value);
                    }
                }
            }
            Part::Performance => {
                let mut fields = METRICS.to_vec();
                fields.push("timestamp");
                for d in self.rows(Channel::Performance, scope, &fields).await? {
                    let Some(ts) = scan::millis(&d, "timestamp") else {
                        continue;
                    };
                    f.vitals(ts, METRICS.map(|m| scan::number(&d, m)));
                }
            }
        }
        Ok(f.finish())
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
