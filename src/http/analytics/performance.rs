//! The performance page (reference §4.6): web-vital percentiles with per-metric status, the
//! p75 score, daily trends against the thresholds and data quality, under device, browser and
//! segment filters. HTML, or JSON for clients that accept only JSON (1.x had HTML only).

use super::{
    AnalyticsAccess, PageContext, cell, checked, csv_href, csv_table, json_if_wanted, meta_json,
    page_context, script_json, span_of, wants_csv,
};
use crate::{
    domain::{
        analytics::{FILTER_BROWSERS, FILTER_DEVICE_TYPES, PerformanceFilters},
        params::View,
    },
    error::AppError,
    services::diagnostics::{self, PerformanceView},
    state::AppState,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Router,
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new().route("/performance", get(show_performance))
}

#[derive(Template, WebTemplate)]
#[template(path = "analytics/performance.html")]
struct PerformancePage {
    ctx: PageContext,
    browsers: &'static [&'static str],
    device_types: &'static [&'static str],
    view: PerformanceView,
    /// `meta` filter as JSON, for the form field.
    meta: String,
    charts_json: String,
    /// The metrics as CSV, with the page's query.
    csv_href: String,
}
page_context!(PerformancePage);

/// `GET {base}/performance`.
async fn show_performance(
    State(state): State<crate::state::ViewState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    checked(View::Performance, &query)?;
    let span = span_of(&query, state.dashboards.now_ms())?;
    let filters =
        PerformanceFilters::from_params(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let view = diagnostics::performance(
        &state.dashboards,
        &state.stores,
        access.project.id,
        span,
        filters,
    )
    .await?;
    if wants_csv(&query) {
        let rows = view.metrics.iter().map(|m| {
            vec![
                m.metric.to_uppercase(),
                cell(m.p50),
                cell(m.p75),
                cell(m.p95),
                m.status.unwrap_or_default().to_string(),
            ]
        });
        let header = ["Metric", "p50", "p75", "p95", "Status (p75)"];
        return Ok(csv_table(&access, span, "web-vitals", &header, rows));
    }
    if let Some(json) = json_if_wanted(&headers, &view) {
        return Ok(json);
    }
    let charts: Vec<_> = (view.metrics.iter().enumerate())
        .map(|(i, m)| {
            json!({
                "id": format!("chart-{}", m.metric), "label": m.metric.to_uppercase(),
                "index": i, "series": view.series, "good": m.good, "poor": m.poor,
                "unit": m.unit, "kind": "line",
            })
        })
        .collect();
    let page = PerformancePage {
        ctx: access.page("performance", span).with_query(&query),
        browsers: &FILTER_BROWSERS,
        device_types: &FILTER_DEVICE_TYPES,
        meta: meta_json(&view.filters.segment),
        charts_json: script_json(&json!({ "charts": charts })),
        csv_href: csv_href(&access.base, "performance", &query),
        view,
    };
    Ok(page.into_response())
}
