//! The errors drill-downs (reference §4.5) in SQL, and the performance report (§4.6) through the
//! analytics engine (its filter compiled here). Filters become one `WHERE` clause with bound
//! parameters only; the free-JSON columns (`errors.context`, `performance_metrics.properties`)
//! are matched with `json_extract` on a bound path.

use super::{
    SqliteStore,
    filters::{Where, count, days},
    map_err,
};
use crate::domain::{
    analytics::{
        ErrorDetail, ErrorFilters, ErrorGroup, ErrorOccurrence, ErrorsReport, PerformanceFilters,
        PerformanceReport, TimeRange,
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

pub(super) fn performance_where(scope: Where, filters: &PerformanceFilters) -> Where {
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
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let key = self.key_for_stats(&mut conn, id).await?;
        drop(conn);
        match key {
            Some(pk) => {
                crate::analytics::engine::performance_report(self, pk, range, filters).await
            }
            None => Ok(crate::analytics::rollup::Aggs::default().performance_report()),
        }
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
