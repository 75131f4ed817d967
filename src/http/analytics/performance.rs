//! The performance page (reference §4.6): web-vital percentiles with per-metric status, the
//! p75 score, daily trends against the thresholds and data quality, under device, browser and
//! segment filters. HTML, or JSON for clients that accept only JSON (1.x had HTML only).

use super::{AnalyticsAccess, TIMEFRAMES, script_json, wants_json};
use crate::{
    domain::analytics::{FILTER_BROWSERS, FILTER_DEVICE_TYPES, PerformanceFilters, Timeframe},
    error::AppError,
    http::views::Shell,
    services::diagnostics::{self, PerformanceView},
    state::AppState,
    store::Project,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
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
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    timeframe: &'static str,
    timeframes: &'static [(&'static str, &'static str)],
    browsers: &'static [&'static str],
    device_types: &'static [&'static str],
    view: PerformanceView,
    /// `meta` filter as JSON, for the form field.
    meta: String,
    charts_json: String,
}

/// Colours of the trend lines, per metric.
fn color_of(metric: &str) -> &'static str {
    match metric {
        "lcp" => "#7c3aed",
        "cls" => "#0f766e",
        "fid" => "#3559e0",
        "ttfb" => "#d97706",
        _ => "#be185d",
    }
}

/// `GET {base}/performance`.
async fn show_performance(
    State(state): State<AppState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let timeframe = Timeframe::parse(
        query
            .iter()
            .find(|(k, _)| k == "timeframe")
            .map(|(_, v)| v.as_str()),
    );
    let filters =
        PerformanceFilters::from_params(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let view = diagnostics::performance(
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
    let charts: Vec<_> = view
        .metrics
        .iter()
        .map(|m| {
            let days: Vec<_> = view
                .metrics_by_day
                .iter()
                .map(|d| {
                    let value = match m.metric {
                        "lcp" => d.lcp,
                        "cls" => d.cls,
                        "fid" => d.fid,
                        "ttfb" => d.ttfb,
                        _ => d.inp,
                    };
                    json!({"date": d.date, "value": value})
                })
                .collect();
            json!({
                "id": format!("chart-{}", m.metric), "label": m.metric.to_uppercase(),
                "color": color_of(m.metric), "days": days, "good": m.good, "poor": m.poor,
            })
        })
        .collect();
    let page = PerformancePage {
        shell: access.shell(),
        can_edit: access.can_edit(),
        base: access.base.clone(),
        section: "performance",
        project: access.project,
        timeframe: timeframe.as_str(),
        timeframes: &TIMEFRAMES,
        browsers: &FILTER_BROWSERS,
        device_types: &FILTER_DEVICE_TYPES,
        meta: if view.filters.segment.meta.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&view.filters.segment.meta).unwrap_or_default()
        },
        charts_json: script_json(&json!({ "charts": charts })),
        view,
    };
    Ok(page.into_response())
}
