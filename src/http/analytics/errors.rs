//! The errors pages (reference §4.5): the list grouped by fingerprint (HTML, or JSON for clients
//! that accept only JSON, as the `si` CLI) and one fingerprint's detail. Thin: parse the query,
//! call `services::diagnostics`, render. Messages and stacks are untrusted and only ever
//! rendered escaped.

use super::{AnalyticsAccess, TIMEFRAMES, script_json, wants_json};
use crate::{
    domain::analytics::{ErrorFilters, FILTER_BROWSERS, Timeframe},
    error::AppError,
    http::views::Shell,
    services::diagnostics::{self, ErrorDetailView, ErrorsView},
    state::AppState,
    store::Project,
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
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/errors", get(list_errors))
        .route("/errors/{fingerprint}", get(show_error))
}

fn timeframe_of(query: &[(String, String)]) -> Timeframe {
    Timeframe::parse(
        query
            .iter()
            .find(|(k, _)| k == "timeframe")
            .map(|(_, v)| v.as_str()),
    )
}

/// A query string (with `?`) keeping the filters, for links that change one thing.
fn query_string(pairs: &[(&str, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
}

#[derive(Template, WebTemplate)]
#[template(path = "analytics/errors.html")]
struct ErrorsPage {
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    timeframe: &'static str,
    timeframes: &'static [(&'static str, &'static str)],
    browsers: &'static [&'static str],
    view: ErrorsView,
    avg_per_day: String,
    /// `meta` filter as JSON, for the form field.
    meta: String,
    /// Query string carrying the timeframe to the detail pages.
    detail_query: String,
    charts_json: String,
}

/// `GET {base}/errors`: errors grouped by fingerprint; JSON
/// `{timeframe,totalErrors,groupedErrors,uniqueFingerprints,errorsByDay}` for JSON-only clients.
async fn list_errors(
    State(state): State<AppState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let timeframe = timeframe_of(&query);
    let filters = ErrorFilters::from_params(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let view = diagnostics::errors(
        &state.dashboards,
        &state.stores,
        access.project.id,
        timeframe,
        filters,
    )
    .await?;
    if wants_json(&headers) {
        return Ok(Json(&view).into_response());
    }
    let charts = json!([{
        "id": "chart-errors", "label": "Errors", "color": "#c53030",
        "days": view.errors_by_day.iter().map(|d| json!({"date": d.date, "value": d.count})).collect::<Vec<_>>(),
    }]);
    let page = ErrorsPage {
        shell: access.shell(),
        can_edit: access.can_edit(),
        base: access.base.clone(),
        section: "errors",
        project: access.project,
        timeframe: timeframe.as_str(),
        timeframes: &TIMEFRAMES,
        browsers: &FILTER_BROWSERS,
        avg_per_day: format!("{:.2}", view.avg_per_day),
        meta: if view.filters.segment.meta.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&view.filters.segment.meta).unwrap_or_default()
        },
        detail_query: query_string(&[("timeframe", timeframe.as_str().to_string())]),
        charts_json: script_json(&json!({ "charts": charts })),
        view,
    };
    Ok(page.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "analytics/error_detail.html")]
struct ErrorDetailPage {
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    timeframe: &'static str,
    timeframes: &'static [(&'static str, &'static str)],
    view: ErrorDetailView,
    /// The back link to the list, keeping the timeframe.
    back_query: String,
    charts_json: String,
}

/// `GET {base}/errors/{fingerprint}`: one fingerprint with its true occurrence count (HTML; the
/// same figures as JSON for clients that accept only JSON — SuperInsights 1.x had no JSON form).
async fn show_error(
    State(state): State<AppState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let fingerprint = params.get("fingerprint").cloned().unwrap_or_default();
    let timeframe = timeframe_of(&query);
    let view = diagnostics::error_detail(
        &state.dashboards,
        &state.stores,
        access.project.id,
        timeframe,
        &fingerprint,
    )
    .await?;
    if wants_json(&headers) {
        return Ok(Json(&view).into_response());
    }
    let charts = json!([{
        "id": "chart-error-days", "label": "Occurrences", "color": "#c53030",
        "days": view.detail.errors_by_day.iter().map(|d| json!({"date": d.date, "value": d.count})).collect::<Vec<_>>(),
    }]);
    let page = ErrorDetailPage {
        shell: access.shell(),
        can_edit: access.can_edit(),
        base: access.base.clone(),
        section: "errors",
        project: access.project,
        timeframe: timeframe.as_str(),
        timeframes: &TIMEFRAMES,
        back_query: query_string(&[("timeframe", timeframe.as_str().to_string())]),
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
