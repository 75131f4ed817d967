//! The events pages (reference §4.4): the list (top events, timed events, recent occurrences with
//! paging that keeps the filters), its live JSON (polled every 30 s by the page; available on
//! public links too, unlike SuperInsights 1.x), and one event name's detail. HTML for browsers,
//! JSON for clients that accept only JSON (the `si` CLI). Event names are untrusted text: always
//! rendered escaped, and percent-encoded in links (`$click` → `%24click`).

use super::{
    AnalyticsAccess, PageContext, TIMEFRAMES, checked, csv_href, csv_table, first_meta,
    json_if_wanted, page_context, query_string, script_json, span_of, wants_csv,
};
use crate::{
    domain::{
        analytics::{DurationSummary, inferred_type},
        params::View,
    },
    error::AppError,
    services::drill_downs::{self, EventDetailView, EventsQuery, EventsView},
    state::AppState,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(list_events))
        .route("/events/live.json", get(live_events))
        .route("/events/{event_name}", get(show_event))
}

/// The detail page's timeframes (SuperInsights 1.x offers these three there).
const DETAIL_TIMEFRAMES: [(&str, &str); 3] = [
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
];

/// `name` as one URL path segment: everything but unreserved characters percent-encoded.
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A duration for display: `12.3 ms`, or `—`.
fn ms(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{v:.1} ms"),
        None => "—".into(),
    }
}

/// Compact JSON for display (escaped by the template).
fn compact(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One row of the top-events table.
struct TopRow {
    name: String,
    href: String,
    count: u64,
    last: String,
}

/// One row of the timed-events table.
struct TimedRow {
    name: String,
    href: String,
    count: u64,
    avg: String,
    p50: String,
    p95: String,
    max: String,
}

/// One row of the recent-occurrences table.
struct OccurrenceRow {
    time: String,
    name: String,
    href: String,
    session: String,
    duration: String,
    properties: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "analytics/events.html")]
struct EventsPage {
    ctx: PageContext,
    event_name: String,
    /// Names for the event selector (the filtered name included even without data).
    names: Vec<String>,
    client_id: String,
    user_id: String,
    meta_key: String,
    meta_value: String,
    segment_open: bool,
    limit: u32,
    view: EventsView,
    top_rows: Vec<TopRow>,
    timed_rows: Vec<TimedRow>,
    recent_rows: Vec<OccurrenceRow>,
    prev_href: Option<String>,
    next_href: Option<String>,
    /// `live.json` with the page's query, for the 30 s refresh.
    live_url: String,
    /// The top events as CSV, with the page's query.
    csv_href: String,
    /// Query string (timeframe and segment) carried to the detail pages.
    detail_query: String,
    /// Events per day for the chart, escaped for a `<script type="application/json">` block.
    data_json: String,
}
page_context!(EventsPage, EventDetailPage);

/// `GET {base}/events`.
async fn list_events(
    State(state): State<crate::state::ViewState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    checked(View::Events, &pairs)?;
    let mut query = EventsQuery::parse(&pairs);
    query.days = span_of(&pairs, state.dashboards.now_ms())?.days;
    let view =
        drill_downs::events(&state.stores, &state.dashboards, access.project.id, &query).await?;
    if wants_csv(&pairs) {
        let rows = view.top_events.iter().map(|e| {
            vec![
                e.event_name.clone(),
                e.count.to_string(),
                e.most_recent_timestamp.clone(),
            ]
        });
        let header = ["Event", "Count", "Most recent"];
        return Ok(csv_table(&access, query.span(), "events", &header, rows));
    }
    if let Some(json) = json_if_wanted(&headers, &view) {
        return Ok(json);
    }
    let base = access.base.clone();
    let segment = &query.filters.segment;
    let mut detail_pairs = query.span().to_params();
    detail_pairs.extend(segment.to_params());
    let detail_query = query_string(&detail_pairs);
    let detail_href = |name: &str| format!("{base}/events/{}{detail_query}", path_segment(name));
    let page_href = |page: u32| {
        let mut pairs = query.to_params();
        pairs.push(("recentPage", page.to_string()));
        format!("{base}/events{}", query_string(&pairs))
    };
    let pagination = view.recent_pagination;
    let mut live_pairs = query.to_params();
    live_pairs.push(("recentPage", query.paging.page.to_string()));
    let mut names = view.unique_event_names.clone();
    if let Some(name) = &query.filters.event_name
        && !names.contains(name)
    {
        names.push(name.clone());
    }
    let (meta_key, meta_value) = first_meta(segment);
    let page = EventsPage {
        ctx: PageContext {
            carried: crate::services::dashboard::DashboardFilters {
                event_name: query.filters.event_name.clone(),
                ..Default::default()
            },
            ..access.page("events", query.span()).with_query(&pairs)
        },
        event_name: query.filters.event_name.clone().unwrap_or_default(),
        names,
        client_id: segment.client_id.clone().unwrap_or_default(),
        user_id: segment.user_id.clone().unwrap_or_default(),
        meta_key,
        meta_value,
        segment_open: !segment.is_empty(),
        limit: query.paging.limit,
        top_rows: view
            .top_events
            .iter()
            .map(|e| TopRow {
                href: detail_href(&e.event_name),
                name: e.event_name.clone(),
                count: e.count,
                last: e.most_recent_timestamp.clone(),
            })
            .collect(),
        timed_rows: view
            .timed_events
            .iter()
            .map(|t| TimedRow {
                href: detail_href(&t.event_name),
                name: t.event_name.clone(),
                count: t.count,
                avg: ms(Some(t.avg_ms)),
                p50: ms(t.p50_ms),
                p95: ms(t.p95_ms),
                max: ms(Some(t.max_ms)),
            })
            .collect(),
        recent_rows: view
            .recent_occurrences
            .iter()
            .map(|o| OccurrenceRow {
                time: o.timestamp.clone(),
                href: detail_href(&o.event_name),
                name: o.event_name.clone(),
                session: o.session_id.clone().unwrap_or_default(),
                duration: ms(o.duration_ms),
                properties: compact(&o.properties),
            })
            .collect(),
        prev_href: (pagination.page > 1).then(|| page_href(pagination.page - 1)),
        next_href: (u64::from(pagination.page) < pagination.total_pages)
            .then(|| page_href(pagination.page + 1)),
        live_url: format!("{base}/events/live.json{}", query_string(&live_pairs)),
        csv_href: csv_href(&base, "events", &pairs),
        detail_query: detail_query.clone(),
        data_json: script_json(&view.series),
        view,
    };
    Ok(page.into_response())
}

/// `GET {base}/events/live.json`: always JSON `{timeframe,topEvents,recentOccurrences,
/// recentPagination}`, computed fresh.
async fn live_events(
    State(stores): State<crate::store::Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    access: AnalyticsAccess,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    checked(View::Events, &pairs)?;
    let now = clock.now_ms();
    let mut query = EventsQuery::parse(&pairs);
    query.days = span_of(&pairs, now)?.days;
    let live = drill_downs::live(&stores, access.project.id, &query, now).await?;
    Ok(Json(live).into_response())
}

/// One row of the property-schema table.
struct SchemaRow {
    key: String,
    kind: &'static str,
    samples: Vec<String>,
}

/// One row of the detail page's occurrences table.
struct DetailRow {
    time: String,
    client: String,
    session: String,
    duration: String,
    properties: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "analytics/event_detail.html")]
struct EventDetailPage {
    ctx: PageContext,
    client_id: String,
    user_id: String,
    meta_key: String,
    meta_value: String,
    segment_open: bool,
    view: EventDetailView,
    schema_rows: Vec<SchemaRow>,
    rows: Vec<DetailRow>,
    summary: DurationSummary,
    avg: String,
    p50: String,
    p95: String,
    max: String,
    /// The events list filtered on this name.
    list_href: String,
    data_json: String,
}

/// `GET {base}/events/{eventName}`: one event name's occurrences, property schema, days and
/// durations; JSON `{eventName,timeframe,segment,occurrences,propertySchema,eventsByDay,
/// durationSummary}` for JSON-only clients.
async fn show_event(
    State(state): State<crate::state::ViewState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let event_name = params.get("event_name").cloned().unwrap_or_default();
    checked(View::EventDetail, &pairs)?;
    let span = span_of(&pairs, state.dashboards.now_ms())?;
    let view = drill_downs::event_detail(
        &state.stores,
        &state.dashboards,
        access.project.id,
        &event_name,
        span,
        &pairs,
    )
    .await?;
    if let Some(json) = json_if_wanted(&headers, &view) {
        return Ok(json);
    }
    let timeframe = view.timeframe.as_str();
    let mut timeframes = DETAIL_TIMEFRAMES.to_vec();
    if !timeframes.iter().any(|(t, _)| *t == timeframe)
        && let Some(other) = TIMEFRAMES.iter().find(|(t, _)| *t == timeframe)
    {
        timeframes.push(*other);
    }
    let segment = &view.segment;
    let mut list_pairs = span.to_params();
    list_pairs.push(("eventName", event_name.clone()));
    list_pairs.extend(segment.to_params());
    let (meta_key, meta_value) = first_meta(segment);
    let summary = view.duration_summary.clone();
    let page = EventDetailPage {
        ctx: PageContext {
            timeframes,
            ..access.page("events", span).with_query(&pairs)
        },
        client_id: segment.client_id.clone().unwrap_or_default(),
        user_id: segment.user_id.clone().unwrap_or_default(),
        meta_key,
        meta_value,
        segment_open: !segment.is_empty(),
        schema_rows: view
            .property_schema
            .iter()
            .map(|p| SchemaRow {
                key: p.key.clone(),
                kind: inferred_type(&p.sample_values),
                samples: p.sample_values.iter().map(compact).collect(),
            })
            .collect(),
        rows: view
            .occurrences
            .iter()
            .map(|o| {
                let text = |field: &str| o[field].as_str().unwrap_or_default().to_string();
                DetailRow {
                    time: text("timestamp"),
                    client: text("clientId"),
                    session: text("sessionId"),
                    duration: ms(o["durationMs"].as_f64()),
                    properties: compact(&o["properties"]),
                }
            })
            .collect(),
        avg: ms(summary.avg_ms),
        p50: ms(summary.p50_ms),
        p95: ms(summary.p95_ms),
        max: ms(summary.max_ms),
        summary,
        list_href: format!("{}/events{}", access.base, query_string(&list_pairs)),
        data_json: script_json(&view.series),
        view,
    };
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_one_encoded_path_segment() {
        assert_eq!(path_segment("$click"), "%24click");
        assert_eq!(path_segment("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
        assert_eq!(path_segment("sign_up-2.x~"), "sign_up-2.x~");
    }
}
