//! The errors drill-downs (reference §4.5) and the performance report (§4.6): the figures come
//! from the analytics engine; this file compiles their filters and reads an error's newest
//! occurrences. Filters become one `WHERE` clause with bound parameters only; the free-JSON
//! columns (`errors.context`, `performance_metrics.properties`) are matched with `json_extract`
//! on a bound path.

use super::{SqliteStore, filters::Where, map_err};
use crate::analytics::engine;
use crate::domain::{
    analytics::{
        ErrorDetail, ErrorFilters, ErrorOccurrence, ErrorsReport, PerformanceFilters,
        PerformanceReport, TimeRange,
    },
    ids::DocId,
    model::Channel,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use sqlx::{Row, sqlite::SqliteRow};

pub(super) fn errors_where(scope: Where, filters: &ErrorFilters) -> Where {
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
        match self.pk_for_stats(id).await? {
            Some(pk) => engine::errors_report(self, pk, range, filters, top).await,
            None => Ok(ErrorsReport::default()),
        }
    }

    pub(super) async fn report_error_detail(
        &self,
        id: DocId,
        fingerprint: &str,
        range: TimeRange,
        limit: usize,
    ) -> StoreResult<ErrorDetail> {
        let Some(pk) = self.pk_for_stats(id).await? else {
            return Ok(ErrorDetail {
                fingerprint: fingerprint.to_string(),
                ..Default::default()
            });
        };
        let mut detail = engine::error_detail(self, pk, range, fingerprint).await?;
        if detail.total_occurrences == 0 {
            return Ok(detail);
        }
        let mut w = Where::scope(pk, range);
        w.eq("fingerprint", Some(fingerprint));
        let rows_sql = format!(
            "SELECT ts, message, error_type, stack_trace, source_file, line_number, column_number, \
             browser, browser_version, os, os_version, device_type, country, context \
             FROM errors WHERE {} ORDER BY ts DESC, rowid DESC LIMIT ?",
            w.sql()
        );
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        detail.occurrences = w
            .bind(sqlx::query(&rows_sql))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(occurrence_from_row)
            .collect::<StoreResult<_>>()?;
        Ok(detail)
    }

    pub(super) async fn report_performance(
        &self,
        id: DocId,
        range: TimeRange,
        filters: &PerformanceFilters,
    ) -> StoreResult<PerformanceReport> {
        match self.pk_for_stats(id).await? {
            Some(pk) => engine::performance_report(self, pk, range, filters).await,
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
            signature: None,
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
