//! The errors pages (reference §4.5): the list grouped by fingerprint (HTML, or JSON for clients
//! that accept only JSON, as the `si` CLI) and one fingerprint's detail. Thin: parse the query,
//! call `services::diagnostics`, render. Messages and stacks are untrusted and only ever
//! rendered escaped.

use super::{
    AnalyticsAccess, PageContext, checked, csv_href, csv_table, json_if_wanted, meta_json,
    page_context, query_string, script_json, span_of, wants_csv,
};
use crate::{
    domain::{
        analytics::{ErrorFilters, FILTER_BROWSERS},
        params::View,
    },
    error::AppError,
    services::diagnostics::{self, ErrorDetailView, ErrorsView},
    state::AppState,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Router,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/errors", get(list_errors))
        .route("/errors/{fingerprint}", get(show_error))
}

#[derive(Template, WebTemplate)]
#[template(path = "analytics/errors.html")]
struct ErrorsPage {
    ctx: PageContext,
    browsers: &'static [&'static str],
    view: ErrorsView,
    avg_per_day: String,
    /// `meta` filter as JSON, for the form field.
    meta: String,
    /// Query string carrying the timeframe to the detail pages.
    detail_query: String,
    charts_json: String,
    /// The error groups as CSV, with the page's query.
    csv_href: String,
}
page_context!(ErrorsPage, ErrorDetailPage);

/// `GET {base}/errors`: errors grouped by fingerprint; JSON
/// `{timeframe,totalErrors,groupedErrors,uniqueFingerprints,errorsByDay}` for JSON-only clients.
async fn list_errors(
    State(state): State<crate::state::ViewState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    checked(View::Errors, &query)?;
    let span = span_of(&query)?;
    let filters = ErrorFilters::from_params(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let view = diagnostics::errors(
        &state.dashboards,
        &state.stores,
        access.project.id,
        span,
        filters,
    )
    .await?;
    if wants_csv(&query) {
        let rows = view.grouped_errors.iter().map(|g| {
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            vec![
                g.message.clone(),
                g.count.to_string(),
                text(&g.browser),
                text(&g.os),
                text(&g.device_type),
                g.first_seen.clone(),
                g.fingerprint.clone(),
            ]
        });
        let header = [
            "Message",
            "Count",
            "Browser",
            "OS",
            "Device",
            "First seen",
            "Fingerprint",
        ];
        return Ok(csv_table(&access, span, "errors", &header, rows));
    }
    if let Some(json) = json_if_wanted(&headers, &view) {
        return Ok(json);
    }
    let charts = json!([{
        "id": "chart-errors", "label": "Errors", "index": 0, "series": view.series,
    }]);
    let page = ErrorsPage {
        ctx: access.page("errors", span).with_query(&query),
        browsers: &FILTER_BROWSERS,
        avg_per_day: format!("{:.2}", view.avg_per_day),
        meta: meta_json(&view.filters.segment),
        detail_query: query_string(&span.to_params()),
        csv_href: csv_href(&access.base, "errors", &query),
        charts_json: script_json(&json!({ "charts": charts })),
        view,
    };
    Ok(page.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "analytics/error_detail.html")]
struct ErrorDetailPage {
    ctx: PageContext,
    view: ErrorDetailView,
    /// The back link to the list, keeping the timeframe.
    back_query: String,
    charts_json: String,
}

/// `GET {base}/errors/{fingerprint}`: one fingerprint with its true occurrence count (HTML; the
/// same figures as JSON for clients that accept only JSON — SuperInsights 1.x had no JSON form).
async fn show_error(
    State(state): State<crate::state::ViewState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let fingerprint = params.get("fingerprint").cloned().unwrap_or_default();
    checked(View::ErrorDetail, &query)?;
    let span = span_of(&query)?;
    let view = diagnostics::error_detail(
        &state.dashboards,
        &state.stores,
        access.project.id,
        span,
        &fingerprint,
    )
    .await?;
    if let Some(json) = json_if_wanted(&headers, &view) {
        return Ok(json);
    }
    let charts = json!([{
        "id": "chart-error-days", "label": "Occurrences", "index": 0, "series": view.series,
    }]);
    let page = ErrorDetailPage {
        ctx: access.page("errors", span).with_query(&query),
        back_query: query_string(&span.to_params()),
        charts_json: script_json(&json!({ "charts": charts })),
        view,
    };
    Ok(page.into_response())
}

impl ErrorDetailPage {
    /// The newest occurrence's context as indented JSON (rendered escaped).
    fn context_text(&self) -> String {
        self.view
            .details
            .as_ref()
            .and_then(|d| d.context.as_ref())
            .and_then(|c| serde_json::to_string_pretty(c).ok())
            .unwrap_or_default()
    }
}
