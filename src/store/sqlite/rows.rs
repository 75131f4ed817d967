//! Row-level SQL for the four analytics tables: chunked multi-row inserts (the ingest hot path)
//! and the mapping of stored rows back to SuperInsights-shaped JSON.

use super::map_err;
use crate::domain::{
    ids::DocId,
    model::{Channel, Docs, Enrichment, WriteBatch},
    timestamp::to_iso,
};
use crate::store::StoreResult;
use serde_json::{Map, Value};
use sqlx::{
    Column, QueryBuilder, Row, Sqlite, SqliteConnection, TypeInfo, ValueRef,
    query_builder::Separated, sqlite::SqliteRow,
};

/// Rows per INSERT statement. Chunks are split into powers of two so that only a handful of
/// distinct statements exist per table and the prepared-statement cache keeps hitting.
const MAX_ROWS_PER_STATEMENT: usize = 64;

pub(super) fn table(channel: Channel) -> &'static str {
    match channel {
        Channel::Pageviews => "pageviews",
        Channel::Events => "events",
        Channel::Errors => "errors",
        Channel::Performance => "performance_metrics",
    }
}

// `OR FAIL`: a failing row ends the statement without undoing the rows before it, so SQLite
// keeps no statement journal (a copy of every page a multi-row INSERT touches). Nothing is
// lost by it: any error rolls back the whole ingest transaction.
const PAGEVIEW_COLUMNS: &str = "INSERT OR FAIL INTO pageviews (project, ts, url, title, referrer, session_id, client_id, \
    utm_source, utm_medium, utm_campaign, utm_term, utm_content, device_type, browser, os, ip, country, is_bot, \
    timestamp_replaced) ";
const EVENT_COLUMNS: &str = "INSERT OR FAIL INTO events (project, ts, event_name, properties, duration_ms, session_id, \
    client_id, ip, country, is_bot, timestamp_replaced) ";
const ERROR_COLUMNS: &str = "INSERT OR FAIL INTO errors (project, ts, message, error_type, stack_trace, source_file, \
    line_number, column_number, browser, browser_version, os, os_version, device_type, context, fingerprint, \
    client_id, user_id, ip, country, is_bot, timestamp_replaced) ";
const PERFORMANCE_COLUMNS: &str = "INSERT OR FAIL INTO performance_metrics (project, ts, metric_type, lcp, cls, fid, ttfb, \
    inp, url, client_id, device_type, browser, connection_type, properties, ip, country, is_bot, \
    timestamp_replaced) ";

fn push_enrichment(b: &mut Separated<'_, '_, Sqlite, &'static str>, e: &Enrichment) {
    b.push_bind(e.ip.clone())
        .push_bind(e.country.clone())
        .push_bind(e.is_bot as i64)
        .push_bind(e.timestamp_replaced.then_some(1i64));
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

/// Inserts every document of every batch, grouped by table, with `project` set to the batch's key.
pub(super) async fn insert_all(
    conn: &mut SqliteConnection,
    batches: &[(i64, &WriteBatch)],
) -> StoreResult<()> {
    let mut pageviews = Vec::new();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut performance = Vec::new();
    for (pk, batch) in batches {
        match &batch.docs {
            Docs::Pageviews(d) => pageviews.extend(d.iter().map(|x| (*pk, x))),
            Docs::Events(d) => events.extend(d.iter().map(|x| (*pk, x))),
            Docs::Errors(d) => errors.extend(d.iter().map(|x| (*pk, x))),
            Docs::Performance(d) => performance.extend(d.iter().map(|x| (*pk, x))),
        }
    }
    insert_chunks(conn, PAGEVIEW_COLUMNS, &pageviews, |b, (pk, p)| {
        b.push_bind(*pk)
            .push_bind(p.timestamp)
            .push_bind(p.url.clone())
            .push_bind(p.title.clone())
            .push_bind(p.referrer.clone())
            .push_bind(p.session_id.clone())
            .push_bind(p.client_id.clone())
            .push_bind(p.utm_source.clone())
            .push_bind(p.utm_medium.clone())
            .push_bind(p.utm_campaign.clone())
            .push_bind(p.utm_term.clone())
            .push_bind(p.utm_content.clone())
            .push_bind(p.device_type.map(|d| d.as_str()))
            .push_bind(p.browser.clone())
            .push_bind(p.os.clone());
        push_enrichment(b, &p.enrichment);
    })
    .await?;
    insert_chunks(conn, EVENT_COLUMNS, &events, |b, (pk, e)| {
        b.push_bind(*pk)
            .push_bind(e.timestamp)
            .push_bind(e.event_name.clone())
            .push_bind(json_text(&e.properties))
            .push_bind(e.duration_ms)
            .push_bind(e.session_id.clone())
            .push_bind(e.client_id.clone());
        push_enrichment(b, &e.enrichment);
    })
    .await?;
    insert_chunks(conn, ERROR_COLUMNS, &errors, |b, (pk, e)| {
        b.push_bind(*pk)
            .push_bind(e.timestamp)
            .push_bind(e.message.clone())
            .push_bind(e.error_type.clone())
            .push_bind(e.stack_trace.clone())
            .push_bind(e.source_file.clone())
            .push_bind(e.line_number)
            .push_bind(e.column_number)
            .push_bind(e.browser.clone())
            .push_bind(e.browser_version.clone())
            .push_bind(e.os.clone())
            .push_bind(e.os_version.clone())
            .push_bind(e.device_type.clone())
            .push_bind(e.context.as_ref().map(json_text))
            .push_bind(e.fingerprint.clone())
            .push_bind(e.client_id.clone())
            .push_bind(e.user_id.clone());
        push_enrichment(b, &e.enrichment);
    })
    .await?;
    insert_chunks(conn, PERFORMANCE_COLUMNS, &performance, |b, (pk, m)| {
        b.push_bind(*pk)
            .push_bind(m.timestamp)
            .push_bind(m.metric_type.clone())
            .push_bind(m.lcp)
            .push_bind(m.cls)
            .push_bind(m.fid)
            .push_bind(m.ttfb)
            .push_bind(m.inp)
            .push_bind(m.url.clone())
            .push_bind(m.client_id.clone())
            .push_bind(m.device_type.clone())
            .push_bind(m.browser.clone())
            .push_bind(m.connection_type.clone())
            .push_bind(json_text(&m.properties));
        push_enrichment(b, &m.enrichment);
    })
    .await
}

async fn insert_chunks<T>(
    conn: &mut SqliteConnection,
    head: &'static str,
    rows: &[T],
    mut bind: impl FnMut(&mut Separated<'_, '_, Sqlite, &'static str>, &T),
) -> StoreResult<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let take = MAX_ROWS_PER_STATEMENT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(take);
        let mut q = QueryBuilder::<Sqlite>::new(head);
        q.push_values(chunk, |mut b, row| bind(&mut b, row));
        q.build()
            .persistent(true)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        rest = tail;
    }
    Ok(())
}

/// A stored row as SuperInsights JSON: camelCase names, `timestamp` as ISO, JSON columns parsed.
pub(super) fn to_json(row: &SqliteRow, project_id: DocId) -> Value {
    let mut out = Map::new();
    out.insert("projectId".into(), Value::String(project_id.to_hex()));
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        if name == "project" {
            continue;
        }
        let Ok(raw) = row.try_get_raw(i) else {
            continue;
        };
        if raw.is_null() {
            continue;
        }
        let type_name = raw.type_info().name().to_string();
        let value = match (name, type_name.as_str()) {
            ("ts", _) => Value::String(to_iso(row.try_get::<i64, _>(i).unwrap_or_default())),
            ("is_bot" | "timestamp_replaced", _) => {
                Value::Bool(row.try_get::<i64, _>(i).unwrap_or_default() != 0)
            }
            ("properties" | "context", _) => {
                serde_json::from_str(&row.try_get::<String, _>(i).unwrap_or_default())
                    .unwrap_or(Value::Null)
            }
            (_, "INTEGER") => Value::from(row.try_get::<i64, _>(i).unwrap_or_default()),
            (_, "REAL") => row
                .try_get::<f64, _>(i)
                .ok()
                .map(Value::from)
                .unwrap_or(Value::Null),
            _ => row
                .try_get::<String, _>(i)
                .map(Value::String)
                .unwrap_or(Value::Null),
        };
        out.insert(camel_name(name), value);
    }
    Value::Object(out)
}

fn camel_name(column: &str) -> String {
    match column {
        "ts" => "timestamp".into(),
        _ => {
            let mut out = String::with_capacity(column.len());
            let mut upper = false;
            for c in column.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.push(c.to_ascii_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}
