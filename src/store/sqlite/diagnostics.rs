//! The errors and performance drill-downs (reference §4.5, §4.6) in SQL. Filters become one
//! `WHERE` clause with bound parameters only; the free-JSON columns (`errors.context`,
//! `performance_metrics.properties`) are matched with `json_extract` on a bound path.
//! Must not compute anything the dashboard queries in `stats.rs` already own.

use super::{
    SqliteStore,
    filters::{
        DAY, Where, count, days, implausible_vitals_sum, plausible_vital, vital_is_plausible,
    },
    map_err,
};
use crate::domain::{
    analytics::{
        ErrorDetail, ErrorFilters, ErrorGroup, ErrorOccurrence, ErrorsReport, METRICS, MetricsDay,
        Percentiles, PerformanceFigures, PerformanceFilters, PerformanceReport, TimeRange,
        rank_index,
    },
    ids::DocId,
    model::Channel,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use sqlx::{Row, sqlite::SqliteRow};

fn errors_where(scope: Where, filters: &ErrorFilters) -> Where {
    let mut w = scope;
    w.eq("browser", filters.browser.as_deref())
        .eq("error_type", filters.error_type.as_deref())
        .segment(Channel::Errors, &filters.segment);
    w
}

fn performance_where(scope: Where, filters: &PerformanceFilters) -> Where {
    let mut w = scope;
    w.eq("device_type", filters.device_type.as_deref())
        .eq("browser", filters.browser.as_deref())
        .segment(Channel::Performance, &filters.segment);
    w
}

impl SqliteStore {
    pub(super) async fn report_errors(
        &self,
        id: DocId,
        range: TimeRange,
        filters: &ErrorFilters,
        top: usize,
    ) -> StoreResult<ErrorsReport> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(scope) = self.report_scope(&mut conn, id, range).await? else {
            return Ok(ErrorsReport::default());
        };
        let w = errors_where(scope, filters);
        let totals_sql = format!(
            "SELECT COUNT(*) AS total, COUNT(DISTINCT fingerprint) AS fingerprints FROM errors WHERE {}",
            w.sql()
        );
        let totals = w
            .bind(sqlx::query(&totals_sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        // One pass in (fingerprint, ts, rowid) order — the order of the
        // (project, fingerprint, ts) index — numbering each group's rows: row 1 is the earliest
        // occurrence (the first stored on equal times), whose fields describe the group.
        let groups_sql = format!(
            "SELECT fingerprint, message, browser, os, os_version, device_type, ts, n FROM (\
               SELECT fingerprint, message, browser, os, os_version, device_type, ts, \
                 COUNT(*) OVER (PARTITION BY fingerprint) AS n, \
                 ROW_NUMBER() OVER (PARTITION BY fingerprint ORDER BY ts, rowid) AS k \
               FROM errors WHERE {}) \
             WHERE k = 1 ORDER BY n DESC, fingerprint LIMIT ?",
            w.sql()
        );
        let grouped_errors = w
            .bind(sqlx::query(&groups_sql))
            .bind(i64::try_from(top).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(ErrorGroup {
                    fingerprint: r.try_get("fingerprint").map_err(map_err)?,
                    message: r.try_get("message").map_err(map_err)?,
                    browser: r.try_get("browser").map_err(map_err)?,
                    os: r.try_get("os").map_err(map_err)?,
                    os_version: r.try_get("os_version").map_err(map_err)?,
                    device_type: r.try_get("device_type").map_err(map_err)?,
                    first_seen: to_iso(r.try_get("ts").map_err(map_err)?),
                    count: count(r, "n")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(ErrorsReport {
            total_errors: count(&totals, "total")?,
            unique_fingerprints: count(&totals, "fingerprints")?,
            errors_by_day: days(&mut conn, "errors", &w).await?,
            grouped_errors,
        })
    }

    pub(super) async fn report_error_detail(
        &self,
        id: DocId,
        fingerprint: &str,
        range: TimeRange,
        limit: usize,
    ) -> StoreResult<ErrorDetail> {
        let empty = ErrorDetail {
            fingerprint: fingerprint.to_string(),
            ..Default::default()
        };
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(scope) = self.report_scope(&mut conn, id, range).await? else {
            return Ok(empty);
        };
        let mut w = scope;
        w.eq("fingerprint", Some(fingerprint));
        let totals_sql = format!(
            "SELECT COUNT(*) AS n, MIN(ts) AS first, MAX(ts) AS last FROM errors WHERE {}",
            w.sql()
        );
        let totals = w
            .bind(sqlx::query(&totals_sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        let total = count(&totals, "n")?;
        if total == 0 {
            return Ok(empty);
        }
        let seen = |column: &str| -> StoreResult<Option<String>> {
            Ok(totals
                .try_get::<Option<i64>, _>(column)
                .map_err(map_err)?
                .map(to_iso))
        };
        let rows_sql = format!(
            "SELECT ts, message, error_type, stack_trace, source_file, line_number, column_number, \
             browser, browser_version, os, os_version, device_type, country, context \
             FROM errors WHERE {} ORDER BY ts DESC, rowid DESC LIMIT ?",
            w.sql()
        );
        let occurrences = w
            .bind(sqlx::query(&rows_sql))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(occurrence_from_row)
            .collect::<StoreResult<_>>()?;
        Ok(ErrorDetail {
            fingerprint: fingerprint.to_string(),
            total_occurrences: total,
            first_seen: seen("first")?,
            last_seen: seen("last")?,
            errors_by_day: days(&mut conn, "errors", &w).await?,
            occurrences,
        })
    }

    pub(super) async fn report_performance(
        &self,
        id: DocId,
        range: TimeRange,
        filters: &PerformanceFilters,
    ) -> StoreResult<PerformanceReport> {
        let no_data = || PerformanceReport {
            figures: PerformanceFigures {
                percentiles: METRICS
                    .iter()
                    .map(|m| (m.to_string(), Percentiles::default()))
                    .collect(),
                ..Default::default()
            },
            complete_measurements: 0,
        };
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(scope) = self.report_scope(&mut conn, id, range).await? else {
            return Ok(no_data());
        };
        let w = performance_where(scope, filters);
        // Every count in one scan: all rows, non-null values per metric, complete rows.
        let counts_sql = format!(
            "SELECT COUNT(*) AS total, COUNT({}) AS lcp, COUNT({}) AS cls, COUNT({}) AS fid, \
             COUNT({}) AS ttfb, COUNT({}) AS inp, {} AS implausible, \
             SUM(lcp IS NOT NULL AND cls IS NOT NULL AND fid IS NOT NULL AND ttfb IS NOT NULL) AS complete \
             FROM performance_metrics WHERE {}",
            plausible_vital("lcp"),
            plausible_vital("cls"),
            plausible_vital("fid"),
            plausible_vital("ttfb"),
            plausible_vital("inp"),
            implausible_vitals_sum(),
            w.sql()
        );
        let counts = w
            .bind(sqlx::query(&counts_sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        let total = count(&counts, "total")?;
        if total == 0 {
            return Ok(no_data());
        }
        let mut percentiles = Vec::new();
        for metric in METRICS {
            let n = count(&counts, metric)?;
            let mut at = Percentiles::default();
            if n > 0 {
                // One sort per metric: the three ranks are read from the numbered values.
                let ranks = [0.5, 0.75, 0.95].map(|p| rank_index(n, p) as i64);
                let sql = format!(
                    "SELECT rn, v FROM (SELECT {metric} AS v, ROW_NUMBER() OVER (ORDER BY {metric}) - 1 AS rn \
                     FROM performance_metrics WHERE {} AND {}) WHERE rn IN (?, ?, ?)",
                    w.sql(),
                    vital_is_plausible(metric)
                );
                let rows = w
                    .bind(sqlx::query(&sql))
                    .bind(ranks[0])
                    .bind(ranks[1])
                    .bind(ranks[2])
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(map_err)?;
                for r in &rows {
                    let rn: i64 = r.try_get("rn").map_err(map_err)?;
                    let v: f64 = r.try_get("v").map_err(map_err)?;
                    for (rank, slot) in ranks.iter().zip([&mut at.p50, &mut at.p75, &mut at.p95]) {
                        if *rank == rn {
                            *slot = Some(v);
                        }
                    }
                }
            }
            percentiles.push((metric.to_string(), at));
        }
        let days_sql = format!(
            "SELECT {DAY} AS day, AVG({}) AS lcp, AVG({}) AS cls, AVG({}) AS fid, AVG({}) AS ttfb, \
             AVG({}) AS inp FROM performance_metrics WHERE {} GROUP BY day ORDER BY day",
            plausible_vital("lcp"),
            plausible_vital("cls"),
            plausible_vital("fid"),
            plausible_vital("ttfb"),
            plausible_vital("inp"),
            w.sql()
        );
        let metrics_by_day = w
            .bind(sqlx::query(&days_sql))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(MetricsDay {
                    date: r.try_get("day").map_err(map_err)?,
                    lcp: r.try_get("lcp").map_err(map_err)?,
                    cls: r.try_get("cls").map_err(map_err)?,
                    fid: r.try_get("fid").map_err(map_err)?,
                    ttfb: r.try_get("ttfb").map_err(map_err)?,
                    inp: r.try_get("inp").map_err(map_err)?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(PerformanceReport {
            figures: PerformanceFigures {
                percentiles,
                metrics_by_day,
                total_measurements: total,
                implausible_values: count(&counts, "implausible")?,
            },
            complete_measurements: count(&counts, "complete")?,
        })
    }
}

fn occurrence_from_row(r: &SqliteRow) -> StoreResult<ErrorOccurrence> {
    let text = |c: &str| r.try_get::<Option<String>, _>(c).map_err(map_err);
    let number = |c: &str| r.try_get::<Option<f64>, _>(c).map_err(map_err);
    Ok(ErrorOccurrence {
        timestamp: to_iso(r.try_get("ts").map_err(map_err)?),
        message: r.try_get("message").map_err(map_err)?,
        error_type: text("error_type")?,
        stack_trace: text("stack_trace")?,
        source_file: text("source_file")?,
        line_number: number("line_number")?,
        column_number: number("column_number")?,
        browser: text("browser")?,
        browser_version: text("browser_version")?,
        os: text("os")?,
        os_version: text("os_version")?,
        device_type: text("device_type")?,
        country: text("country")?,
        context: text("context")?.and_then(|c| serde_json::from_str(&c).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::segment::SegmentFilters;

    #[test]
    fn error_filters_become_bound_parameters() {
        let f = ErrorFilters {
            browser: Some("Firefox".into()),
            error_type: None,
            segment: SegmentFilters {
                client_id: Some("c'1".into()),
                ..Default::default()
            },
        };
        let scope = Where::scope(
            1,
            TimeRange {
                start_ms: 0,
                end_ms: 1,
            },
        );
        let w = errors_where(scope, &f);
        assert!(
            !w.sql().contains("c'1"),
            "values are never spliced: {}",
            w.sql()
        );
        assert_eq!(
            w.sql(),
            "project = ? AND ts BETWEEN ? AND ? AND browser = ? \
             AND (client_id = ? OR (json_type(context, ?) = 'text' AND json_extract(context, ?) = ?))",
            "an error's own clientId, or the one in its context"
        );
    }
}
