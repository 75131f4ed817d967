//! One builder for the `WHERE` clauses of the drill-down reports, the diagnostics and the AI
//! sample documents: the `project = ? AND ts BETWEEN ? AND ?` bounds, exact filters and the
//! segment fields of reference §4.7 per table. Every value is a bound parameter, never spliced
//! into the SQL: column names are `'static` and JSON paths are bound too. The clause can be
//! used with `sqlx::query` ([`Where::sql`] + [`Where::bind`]) or pushed onto a `QueryBuilder`
//! ([`Where::push_to`]).

use super::SqliteStore;
#[cfg(test)]
use super::map_err;
use crate::domain::{analytics::TimeRange, ids::DocId, model::Channel, segment::SegmentFilters};
use crate::store::{StoreError, StoreResult};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

pub(super) type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// A bound parameter of a [`Where`].
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Param {
    Int(i64),
    Text(String),
}

/// A conjunction of conditions with `?` placeholders and their parameters, in order.
#[derive(Clone, Debug)]
pub(super) struct Where {
    sql: String,
    params: Vec<Param>,
}

impl Where {
    /// `project = ? AND ts BETWEEN ? AND ?`.
    pub(super) fn scope(pk: i64, range: TimeRange) -> Self {
        Self {
            sql: "project = ? AND ts BETWEEN ? AND ?".into(),
            params: vec![
                Param::Int(pk),
                Param::Int(range.start_ms),
                Param::Int(range.end_ms),
            ],
        }
    }

    /// The conditions, without `WHERE`.
    pub(super) fn sql(&self) -> &str {
        &self.sql
    }

    #[cfg(test)]
    pub(super) fn params(&self) -> &[Param] {
        &self.params
    }

    /// ` AND column = ?` when a value is given.
    pub(super) fn eq(&mut self, column: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.sql.push_str(&format!(" AND {column} = ?"));
            self.params.push(Param::Text(value.to_string()));
        }
        self
    }

    /// The JSON string at `key` in `column` (dots nest, as in a MongoDB path) equals `value`;
    /// a number, boolean, object or array there never matches a string filter, as in MongoDB.
    pub(super) fn json_eq(&mut self, column: &'static str, key: &str, value: &str) -> &mut Self {
        let path = json_path(key);
        self.sql.push_str(&format!(
            " AND json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?"
        ));
        self.params.extend([
            Param::Text(path.clone()),
            Param::Text(path),
            Param::Text(value.to_string()),
        ]);
        self
    }

    /// The error column `column` equals `value`, or `context`'s string at `key` does.
    fn own_or_context(&mut self, column: &'static str, key: &str, value: &str) -> &mut Self {
        let path = json_path(key);
        self.sql.push_str(&format!(
            " AND ({column} = ? OR (json_type(context, ?) = 'text' AND json_extract(context, ?) = ?))"
        ));
        self.params.extend([
            Param::Text(value.to_string()),
            Param::Text(path.clone()),
            Param::Text(path),
            Param::Text(value.to_string()),
        ]);
        self
    }

    /// The segment fields that apply to the table of `channel` (reference §4.7).
    pub(super) fn segment(&mut self, channel: Channel, s: &SegmentFilters) -> &mut Self {
        let json_column = match channel {
            Channel::Pageviews => {
                for (column, value) in [
                    ("client_id", &s.client_id),
                    ("device_type", &s.device_type),
                    ("browser", &s.browser),
                    ("os", &s.os),
                    ("utm_source", &s.utm_source),
                    ("utm_medium", &s.utm_medium),
                    ("utm_campaign", &s.utm_campaign),
                ] {
                    self.eq(column, value.as_deref());
                }
                return self;
            }
            Channel::Errors => {
                // The error's own id fields (what the SDK sends), or the same key in `context`
                // (where 1.x looked, and where server-side senders may have put it).
                for (column, key, value) in [
                    ("client_id", "clientId", &s.client_id),
                    ("user_id", "userId", &s.user_id),
                ] {
                    if let Some(value) = value {
                        self.own_or_context(column, key, value);
                    }
                }
                for (key, value) in &s.meta {
                    self.json_eq("context", key, value);
                }
                return self;
            }
            Channel::Events | Channel::Performance => {
                self.eq("client_id", s.client_id.as_deref());
                "properties"
            }
        };
        if let Some(user) = &s.user_id {
            self.json_eq(json_column, "userId", user);
        }
        for (key, value) in &s.meta {
            self.json_eq(json_column, key, value);
        }
        self
    }

    /// Binds the parameters, in the clause's order, onto a query made from SQL containing
    /// [`Where::sql`] (with no placeholder before it).
    pub(super) fn bind<'q>(&'q self, mut q: SqliteQuery<'q>) -> SqliteQuery<'q> {
        for p in &self.params {
            q = match p {
                Param::Int(i) => q.bind(*i),
                Param::Text(s) => q.bind(s.as_str()),
            };
        }
        q
    }

    /// Appends ` WHERE ` and the conditions, binding each parameter in place.
    pub(super) fn push_to(&self, q: &mut QueryBuilder<'_, Sqlite>) {
        q.push(" WHERE ");
        // Column names are 'static and every value is a parameter, so each `?` is a placeholder.
        let mut pieces = self.sql.split('?');
        if let Some(first) = pieces.next() {
            q.push(first);
        }
        for (piece, p) in pieces.zip(&self.params) {
            match p {
                Param::Int(i) => q.push_bind(*i),
                Param::Text(s) => q.push_bind(s.clone()),
            };
            q.push(piece);
        }
    }
}

/// `a.b` → `$."a"."b"` (metadata keys are `[A-Za-z0-9_.-]`, so quoting needs no escapes).
pub(super) fn json_path(key: &str) -> String {
    let mut path = String::from("$");
    for label in key.split('.') {
        path.push_str(".\"");
        path.push_str(label);
        path.push('"');
    }
    path
}

impl SqliteStore {
    /// The bounds of a report over `id` in `range`; `None` for an unknown project, whose
    /// reports are empty.
    pub(super) async fn report_scope(
        &self,
        conn: &mut SqliteConnection,
        id: DocId,
        range: TimeRange,
    ) -> StoreResult<Option<Where>> {
        match self.project_key(conn, id).await {
            Ok(pk) => Ok(Some(Where::scope(pk, range))),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The UTC day (`YYYY-MM-DD`) of `ts` (epoch ms) in SQL.
#[cfg(test)]
pub(super) const DAY: &str = "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')";

/// The rows of `table` matching `w`, counted per UTC day, in day order.
#[cfg(test)]
pub(super) async fn days(
    conn: &mut SqliteConnection,
    table: &'static str,
    w: &Where,
) -> StoreResult<Vec<crate::domain::analytics::DayCount>> {
    use sqlx::Row;
    let sql = format!(
        "SELECT {DAY} AS day, COUNT(*) AS n FROM {table} WHERE {} GROUP BY day ORDER BY day",
        w.sql()
    );
    w.bind(sqlx::query(&sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(crate::domain::analytics::DayCount {
                date: r.try_get("day").map_err(map_err)?,
                count: count(r, "n")?,
            })
        })
        .collect()
}

/// Reads an optional integer count column (`NULL` is 0).
#[cfg(test)]
pub(super) fn count(row: &sqlx::sqlite::SqliteRow, column: &str) -> StoreResult<u64> {
    use sqlx::Row;
    Ok(row
        .try_get::<Option<i64>, _>(column)
        .map_err(map_err)?
        .unwrap_or(0) as u64)
}

/// `metric` (a web-vital column) where it lies within `domain::plausible`'s bound, else NULL:
/// for averages and percentiles. The bound is a constant, not input.
#[cfg(test)]
pub(super) fn plausible_vital(metric: &str) -> String {
    format!(
        "IIF({metric} BETWEEN 0 AND {}, {metric}, NULL)",
        crate::domain::plausible::vital_bound(metric)
    )
}

/// The condition "`metric` is a plausible value" (non-null and within its bound).
#[cfg(test)]
pub(super) fn vital_is_plausible(metric: &str) -> String {
    format!(
        "{metric} BETWEEN 0 AND {}",
        crate::domain::plausible::vital_bound(metric)
    )
}

/// `SUM` of the web-vital values of the selected rows that lie outside their bounds.
#[cfg(test)]
pub(super) fn implausible_vitals_sum() -> String {
    let terms: Vec<String> = crate::domain::analytics::METRICS
        .iter()
        .map(|m| {
            format!(
                "IFNULL({m} NOT BETWEEN 0 AND {}, 0)",
                crate::domain::plausible::vital_bound(m)
            )
        })
        .collect();
    format!("SUM({})", terms.join(" + "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> TimeRange {
        TimeRange {
            start_ms: 10,
            end_ms: 20,
        }
    }

    #[test]
    fn json_paths_nest_on_dots_and_quote_labels() {
        assert_eq!(json_path("userId"), r#"$."userId""#);
        assert_eq!(json_path("a.b-c"), r#"$."a"."b-c""#);
    }

    #[test]
    fn filters_become_bound_parameters_in_clause_order() {
        let mut w = Where::scope(7, range());
        w.eq("browser", Some("Firefox")).eq("os", None).segment(
            Channel::Errors,
            &SegmentFilters {
                client_id: Some("c'1".into()),
                ..Default::default()
            },
        );
        assert!(!w.sql().contains("c'1"));
        let text = |s: &str| Param::Text(s.into());
        assert_eq!(
            w.params(),
            [
                Param::Int(7),
                Param::Int(10),
                Param::Int(20),
                text("Firefox"),
                text("c'1"),
                text(r#"$."clientId""#),
                text(r#"$."clientId""#),
                text("c'1"),
            ]
        );
        assert_eq!(w.sql().matches('?').count(), w.params().len());
    }

    #[test]
    fn segments_map_onto_each_table() {
        let s = SegmentFilters {
            client_id: Some("c".into()),
            user_id: Some("u".into()),
            browser: Some("b".into()),
            meta: [("plan".to_string(), "pro".to_string())].into(),
            ..Default::default()
        };
        let sql = |table| {
            let mut w = Where::scope(1, range());
            w.segment(table, &s);
            w.sql().to_string()
        };
        let pageviews = sql(Channel::Pageviews);
        assert!(pageviews.contains("client_id = ?") && pageviews.contains("browser = ?"));
        assert!(!pageviews.contains("json_extract"));
        let events = sql(Channel::Events);
        assert_eq!(events, sql(Channel::Performance));
        assert!(events.contains("client_id = ?") && !events.contains("browser"));
        assert_eq!(events.matches("json_extract(properties, ?)").count(), 2);
        let errors = sql(Channel::Errors);
        assert_eq!(errors.matches("json_extract(context, ?)").count(), 3);
        assert!(errors.contains("(client_id = ? OR") && errors.contains("(user_id = ? OR"));
    }

    #[tokio::test]
    async fn pushed_clause_binds_values_and_matches_exact_strings_only() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (project INTEGER, ts INTEGER, url TEXT, properties TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        for (ts, url, props) in [
            (15, "/a%b", r#"{"plan":"pro"}"#),
            (15, "/axb", r#"{"plan":"pro"}"#),
            (15, "/a%c", r#"{"plan":3}"#),
            (25, "/a%b", r#"{"plan":"pro"}"#),
        ] {
            sqlx::query("INSERT INTO t VALUES (1, ?, ?, ?)")
                .bind(ts)
                .bind(url)
                .bind(props)
                .execute(&pool)
                .await
                .unwrap();
        }
        let mut w = Where::scope(1, range());
        w.eq("url", Some("/a%b"))
            .json_eq("properties", "plan", "pro");
        let mut q = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM t");
        w.push_to(&mut q);
        let (n,): (i64,) = q.build_query_as().fetch_one(&pool).await.unwrap();
        assert_eq!(n, 1);
        let sql = format!("SELECT COUNT(*) AS n FROM t WHERE {}", w.sql());
        let row = w.bind(sqlx::query(&sql)).fetch_one(&pool).await.unwrap();
        assert_eq!(count(&row, "n").unwrap(), 1);
    }
}
