//! The errors and performance drill-downs (reference §4.5, §4.6) in SQL. Filters become one
//! `WHERE` clause with bound parameters only; the free-JSON columns (`errors.context`,
//! `performance_metrics.properties`) are matched with `json_extract` on a bound path.
//! Must not compute anything the dashboard queries in `stats.rs` already own.

use super::{SqliteStore, map_err};
use crate::domain::{
    analytics::{
        DayCount, ErrorDetail, ErrorFilters, ErrorGroup, ErrorOccurrence, ErrorsReport, METRICS,
        MetricsDay, Percentiles, PerformanceFigures, PerformanceFilters, PerformanceReport,
        TimeRange, rank_index,
    },
    ids::DocId,
    segment::SegmentFilters,
    timestamp::to_iso,
};
use crate::store::{StoreError, StoreResult};
use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};

/// The UTC day of `ts` (epoch ms) in SQL.
const DAY: &str = "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')";

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// `project = ? AND ts BETWEEN ? AND ?` plus the filters, with their text parameters in order.
struct Where {
    sql: String,
    params: Vec<String>,
}

impl Where {
    fn new() -> Self {
        Self {
            sql: "project = ? AND ts BETWEEN ? AND ?".into(),
            params: Vec::new(),
        }
    }

    /// `column = value` when a value is given.
    fn eq(&mut self, column: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.sql.push_str(&format!(" AND {column} = ?"));
            self.params.push(value.to_string());
        }
    }

    /// The JSON string at `key` (dots are nesting, as in a MongoDB path) equals `value`; a
    /// number or object there never matches a string filter, as in MongoDB.
    fn json_eq(&mut self, column: &'static str, key: &str, value: &str) {
        let path = json_path(key);
        self.sql.push_str(&format!(
            " AND json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?"
        ));
        self.params.extend([path.clone(), path, value.to_string()]);
    }

    /// The segment fields that apply to a document kind: `clientId` on `client_column` (a
    /// column, or the JSON key in `json_column` when `None`), `userId` and metadata in
    /// `json_column`.
    fn segment(
        &mut self,
        segment: &SegmentFilters,
        client_column: Option<&'static str>,
        json_column: &'static str,
    ) {
        if let Some(client) = segment.client_id.as_deref() {
            match client_column {
                Some(column) => self.eq(column, Some(client)),
                None => self.json_eq(json_column, "clientId", client),
            }
        }
        if let Some(user) = segment.user_id.as_deref() {
            self.json_eq(json_column, "userId", user);
        }
        for (key, value) in &segment.meta {
            self.json_eq(json_column, key, value);
        }
    }

    fn errors(filters: &ErrorFilters) -> Self {
        let mut w = Self::new();
        w.eq("browser", filters.browser.as_deref());
        w.eq("error_type", filters.error_type.as_deref());
        w.segment(&filters.segment, None, "context");
        w
    }

    fn performance(filters: &PerformanceFilters) -> Self {
        let mut w = Self::new();
        w.eq("device_type", filters.device_type.as_deref());
        w.eq("browser", filters.browser.as_deref());
        w.segment(&filters.segment, Some("client_id"), "properties");
        w
    }

    /// Binds the project, the range and the filter parameters, in the clause's order.
    fn bind<'q>(&'q self, q: SqliteQuery<'q>, pk: i64, range: TimeRange) -> SqliteQuery<'q> {
        let mut q = q.bind(pk).bind(range.start_ms).bind(range.end_ms);
        for p in &self.params {
            q = q.bind(p.as_str());
        }
        q
    }
}

/// `a.b` → `$."a"."b"` (keys are `[A-Za-z0-9_.-]`, so quoting needs no escapes).
fn json_path(key: &str) -> String {
    let mut path = String::from("$");
    for part in key.split('.') {
        path.push_str(&format!(".\"{part}\""));
    }
    path
}

fn count(row: &SqliteRow, column: &str) -> StoreResult<u64> {
    Ok(row
        .try_get::<Option<i64>, _>(column)
        .map_err(map_err)?
        .unwrap_or(0) as u64)
}

impl SqliteStore {
    /// The project's integer key, `None` for an unknown project (its reports are empty).
    async fn diagnostics_key(
        &self,
        conn: &mut SqliteConnection,
        id: DocId,
    ) -> StoreResult<Option<i64>> {
        match self.project_key(conn, id).await {
            Ok(pk) => Ok(Some(pk)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn days_where(
        &self,
        conn: &mut SqliteConnection,
        table: &str,
        w: &Where,
        pk: i64,
        range: TimeRange,
    ) -> StoreResult<Vec<DayCount>> {
        let sql = format!(
            "SELECT {DAY} AS day, COUNT(*) AS n FROM {table} WHERE {} GROUP BY day ORDER BY day",
            w.sql
        );
        w.bind(sqlx::query(&sql), pk, range)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(DayCount {
                    date: r.try_get("day").map_err(map_err)?,
                    count: count(r, "n")?,
                })
            })
            .collect()
    }

    pub(super) async fn report_errors(
        &self,
        id: DocId,
        range: TimeRange,
        filters: &ErrorFilters,
        top: usize,
    ) -> StoreResult<ErrorsReport> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(pk) = self.diagnostics_key(&mut conn, id).await? else {
            return Ok(ErrorsReport::default());
        };
        let w = Where::errors(filters);
        let totals_sql = format!(
            "SELECT COUNT(*) AS total, COUNT(DISTINCT fingerprint) AS fingerprints FROM errors WHERE {}",
            w.sql
        );
        let totals = w
            .bind(sqlx::query(&totals_sql), pk, range)
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
            w.sql
        );
        let grouped_errors = w
            .bind(sqlx::query(&groups_sql), pk, range)
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
            errors_by_day: self.days_where(&mut conn, "errors", &w, pk, range).await?,
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
        let Some(pk) = self.diagnostics_key(&mut conn, id).await? else {
            return Ok(empty);
        };
        let mut w = Where::new();
        w.eq("fingerprint", Some(fingerprint));
        let totals_sql = format!(
            "SELECT COUNT(*) AS n, MIN(ts) AS first, MAX(ts) AS last FROM errors WHERE {}",
            w.sql
        );
        let totals = w
            .bind(sqlx::query(&totals_sql), pk, range)
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
            w.sql
        );
        let occurrences = w
            .bind(sqlx::query(&rows_sql), pk, range)
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
            errors_by_day: self.days_where(&mut conn, "errors", &w, pk, range).await?,
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
        let Some(pk) = self.diagnostics_key(&mut conn, id).await? else {
            return Ok(no_data());
        };
        let w = Where::performance(filters);
        // Every count in one scan: all rows, non-null values per metric, complete rows.
        let counts_sql = format!(
            "SELECT COUNT(*) AS total, COUNT(lcp) AS lcp, COUNT(cls) AS cls, COUNT(fid) AS fid, \
             COUNT(ttfb) AS ttfb, COUNT(inp) AS inp, \
             SUM(lcp IS NOT NULL AND cls IS NOT NULL AND fid IS NOT NULL AND ttfb IS NOT NULL) AS complete \
             FROM performance_metrics WHERE {}",
            w.sql
        );
        let counts = w
            .bind(sqlx::query(&counts_sql), pk, range)
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
                     FROM performance_metrics WHERE {} AND {metric} IS NOT NULL) WHERE rn IN (?, ?, ?)",
                    w.sql
                );
                let rows = w
                    .bind(sqlx::query(&sql), pk, range)
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
            "SELECT {DAY} AS day, AVG(lcp) AS lcp, AVG(cls) AS cls, AVG(fid) AS fid, AVG(ttfb) AS ttfb, \
             AVG(inp) AS inp FROM performance_metrics WHERE {} GROUP BY day ORDER BY day",
            w.sql
        );
        let metrics_by_day = w
            .bind(sqlx::query(&days_sql), pk, range)
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

    #[test]
    fn json_paths_quote_each_segment() {
        assert_eq!(json_path("userId"), r#"$."userId""#);
        assert_eq!(json_path("a.b-c"), r#"$."a"."b-c""#);
    }

    #[test]
    fn filters_become_bound_parameters_in_clause_order() {
        let f = ErrorFilters {
            browser: Some("Firefox".into()),
            error_type: None,
            segment: SegmentFilters {
                client_id: Some("c'1".into()),
                ..Default::default()
            },
        };
        let w = Where::errors(&f);
        assert!(
            !w.sql.contains("c'1"),
            "values are never spliced: {}",
            w.sql
        );
        assert_eq!(
            w.params,
            vec!["Firefox", r#"$."clientId""#, r#"$."clientId""#, "c'1"]
        );
        assert_eq!(w.sql.matches('?').count(), 3 + w.params.len());
    }
}
