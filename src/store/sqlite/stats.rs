//! Summary queries over the analytics tables (SQLite), answered from rollups
//! (`rollups.rs`): full UTC days and closed hours pre-aggregated, edges scanned raw; the figures
//! are the same as raw scans give (pinned by `analytics_summaries` and `rollups_match_raw_scans`).

use super::{SqliteStore, map_err, rollups::Part};
use crate::analytics::rollup::Aggs;
#[cfg(test)]
use crate::domain::analytics::{DayCount, EventCount, METRICS, MetricsDay, PageCount, Percentiles};
use crate::domain::{
    analytics::{
        Breakdowns, ErrorsSummary, EventsSummary, PageViewsSummary, PerformanceFigures, TimeRange,
    },
    ids::DocId,
};
use crate::store::StoreResult;
use sqlx::SqliteConnection;

#[cfg(test)]
use super::{
    filters::{DAY as SQL_DAY, SqliteQuery},
    rows::table,
};
#[cfg(test)]
use crate::domain::model::Channel;
#[cfg(test)]
use sqlx::Row;

/// Binds `project = ? AND ts BETWEEN ? AND ?`.
#[cfg(test)]
fn bounded(q: SqliteQuery<'_>, pk: i64, range: TimeRange) -> SqliteQuery<'_> {
    q.bind(pk).bind(range.start_ms).bind(range.end_ms)
}

impl SqliteStore {
    /// The project's integer key, or `None` for an unknown project (its summaries are empty).
    pub(super) async fn key_for_stats(
        &self,
        conn: &mut SqliteConnection,
        id: DocId,
    ) -> StoreResult<Option<i64>> {
        match self.project_key(conn, id).await {
            Ok(pk) => Ok(Some(pk)),
            Err(crate::store::StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn pk_for_stats(&self, id: DocId) -> StoreResult<Option<i64>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        self.key_for_stats(&mut conn, id).await
    }

    pub(super) async fn stats_pageviews(
        &self,
        id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<PageViewsSummary> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(Default::default());
        };
        let a = self.rolled_up(pk, range, Part::Pageviews).await?;
        Ok(a.pageviews_summary(top))
    }

    pub(super) async fn stats_events(
        &self,
        id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<EventsSummary> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(Default::default());
        };
        Ok(self
            .rolled_up(pk, range, Part::Events)
            .await?
            .events_summary(top))
    }

    pub(super) async fn stats_errors(
        &self,
        id: DocId,
        range: TimeRange,
    ) -> StoreResult<ErrorsSummary> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(Default::default());
        };
        Ok(self
            .rolled_up(pk, range, Part::Errors)
            .await?
            .errors_summary())
    }

    pub(super) async fn stats_performance(
        &self,
        id: DocId,
        range: TimeRange,
    ) -> StoreResult<PerformanceFigures> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(Aggs::default().performance_figures());
        };
        Ok(self
            .rolled_up(pk, range, Part::Performance)
            .await?
            .performance_figures())
    }

    pub(super) async fn stats_breakdowns(
        &self,
        id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<Breakdowns> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(Breakdowns::default());
        };
        Ok(self
            .rolled_up(pk, range, Part::Breakdowns)
            .await?
            .breakdowns(top))
    }
}

/// The raw-scan summaries the rollups replaced, kept as the oracle the rollups are tested
/// against (`rollups_match_raw_scans`).
#[cfg(test)]
impl SqliteStore {
    async fn raw_days(
        &self,
        conn: &mut SqliteConnection,
        channel: Channel,
        pk: i64,
        range: TimeRange,
    ) -> StoreResult<Vec<DayCount>> {
        super::filters::days(
            conn,
            table(channel),
            &super::filters::Where::scope(pk, range),
        )
        .await
    }

    pub(super) async fn raw_pageviews(
        &self,
        id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<PageViewsSummary> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.key_for_stats(&mut conn, id).await? else {
            return Ok(Default::default());
        };
        let totals = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(DISTINCT client_id) AS uniques, \
             MAX(client_id IS NULL) AS anonymous FROM pageviews WHERE project = ? AND ts BETWEEN ? AND ?",
        )
        .bind(pk)
        .bind(range.start_ms)
        .bind(range.end_ms)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        let total: i64 = totals.try_get("total").map_err(map_err)?;
        let uniques: i64 = totals.try_get("uniques").map_err(map_err)?;
        let anonymous: Option<i64> = totals.try_get("anonymous").map_err(map_err)?;
        let top_pages = sqlx::query(
            "SELECT url, COUNT(*) AS n FROM pageviews WHERE project = ? AND ts BETWEEN ? AND ? \
             GROUP BY url ORDER BY n DESC, url LIMIT ?",
        )
        .bind(pk)
        .bind(range.start_ms)
        .bind(range.end_ms)
        .bind(top as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(PageCount {
                url: r.try_get("url").map_err(map_err)?,
                views: r.try_get::<i64, _>("n").map_err(map_err)? as u64,
            })
        })
        .collect::<StoreResult<_>>()?;
        Ok(PageViewsSummary {
            total_views: total as u64,
            unique_visitors: (uniques + anonymous.unwrap_or(0)) as u64,
            views_by_day: self
                .raw_days(&mut conn, Channel::Pageviews, pk, range)
                .await?,
            top_pages,
        })
    }

    pub(super) async fn raw_events(
        &self,
        id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<EventsSummary> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.key_for_stats(&mut conn, id).await? else {
            return Ok(Default::default());
        };
        let rows = sqlx::query(
            "SELECT event_name, COUNT(*) AS n FROM events WHERE project = ? AND ts BETWEEN ? AND ? \
             GROUP BY event_name ORDER BY n DESC, event_name",
        )
        .bind(pk)
        .bind(range.start_ms)
        .bind(range.end_ms)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let mut total = 0;
        let mut top_events = Vec::new();
        for r in &rows {
            let count = r.try_get::<i64, _>("n").map_err(map_err)? as u64;
            total += count;
            if top_events.len() < top {
                top_events.push(EventCount {
                    event_name: r.try_get("event_name").map_err(map_err)?,
                    count,
                });
            }
        }
        Ok(EventsSummary {
            total_events: total,
            top_events,
            events_by_day: self.raw_days(&mut conn, Channel::Events, pk, range).await?,
        })
    }

    pub(super) async fn raw_errors(
        &self,
        id: DocId,
        range: TimeRange,
    ) -> StoreResult<ErrorsSummary> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.key_for_stats(&mut conn, id).await? else {
            return Ok(Default::default());
        };
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(DISTINCT fingerprint) AS fingerprints FROM errors \
             WHERE project = ? AND ts BETWEEN ? AND ?",
        )
        .bind(pk)
        .bind(range.start_ms)
        .bind(range.end_ms)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        Ok(ErrorsSummary {
            total_errors: row.try_get::<i64, _>("total").map_err(map_err)? as u64,
            unique_fingerprints: row.try_get::<i64, _>("fingerprints").map_err(map_err)? as u64,
            errors_by_day: self.raw_days(&mut conn, Channel::Errors, pk, range).await?,
        })
    }

    pub(super) async fn raw_performance(
        &self,
        id: DocId,
        range: TimeRange,
    ) -> StoreResult<PerformanceFigures> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.key_for_stats(&mut conn, id).await? else {
            return Ok(PerformanceFigures {
                percentiles: METRICS
                    .iter()
                    .map(|m| (m.to_string(), Percentiles::default()))
                    .collect(),
                ..Default::default()
            });
        };
        let total: i64 = bounded(
            sqlx::query(
                "SELECT COUNT(*) FROM performance_metrics WHERE project = ? AND ts BETWEEN ? AND ?",
            ),
            pk,
            range,
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?
        .try_get(0)
        .map_err(map_err)?;
        let mut percentiles = Vec::new();
        for metric in METRICS {
            let filter = format!(
                "FROM performance_metrics WHERE project = ? AND ts BETWEEN ? AND ? AND {}",
                super::filters::vital_is_plausible(metric)
            );
            let count_sql = format!("SELECT COUNT(*) {filter}");
            let n: i64 = bounded(sqlx::query(&count_sql), pk, range)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?
                .try_get(0)
                .map_err(map_err)?;
            let rank_sql = format!("SELECT {metric} {filter} ORDER BY {metric} LIMIT 1 OFFSET ?");
            let mut at = Percentiles::default();
            for (p, slot) in [(0.5, &mut at.p50), (0.75, &mut at.p75), (0.95, &mut at.p95)] {
                if n == 0 {
                    continue;
                }
                let offset = (p * (n - 1) as f64).floor() as i64;
                let value: f64 = bounded(sqlx::query(&rank_sql), pk, range)
                    .bind(offset)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map_err)?
                    .try_get(0)
                    .map_err(map_err)?;
                *slot = Some(value);
            }
            percentiles.push((metric.to_string(), at));
        }
        let v = super::filters::plausible_vital;
        let days_sql = format!(
            "SELECT {SQL_DAY} AS day, AVG({}) AS lcp, AVG({}) AS cls, AVG({}) AS fid, AVG({}) AS ttfb, AVG({}) AS inp \
             FROM performance_metrics WHERE project = ? AND ts BETWEEN ? AND ? GROUP BY day ORDER BY day",
            v("lcp"),
            v("cls"),
            v("fid"),
            v("ttfb"),
            v("inp")
        );
        let implausible_sql = format!(
            "SELECT IFNULL({}, 0) FROM performance_metrics WHERE project = ? AND ts BETWEEN ? AND ?",
            super::filters::implausible_vitals_sum()
        );
        let implausible: i64 = bounded(sqlx::query(&implausible_sql), pk, range)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?
            .try_get(0)
            .map_err(map_err)?;
        let days = bounded(sqlx::query(&days_sql), pk, range)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        let metrics_by_day = days
            .iter()
            .map(|r| {
                Ok(MetricsDay {
                    date: r.try_get("day").map_err(map_err)?,
                    lcp: r.try_get("lcp").map_err(map_err)?,
                    cls: r.try_get("cls").map_err(map_err)?,
                    fid: r.try_get("fid").map_err(map_err)?,
                    ttfb: r.try_get("ttfb").map_err(map_err)?,
                    inp: r.try_get("inp").map_err(map_err)?,
                    n: [0; 5],
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(PerformanceFigures {
            percentiles,
            metrics_by_day,
            total_measurements: total as u64,
            implausible_values: implausible as u64,
        })
    }
}
