//! The errors pages (reference §4.5): the list of error groups by signature (HTML, or JSON for
//! clients that accept only JSON, as the `si` CLI, with 1.x's fingerprint groups kept), one
//! fingerprint's detail, and the form that resolves, ignores or reopens a group (members with
//! write rights; CSRF-checked). Thin: parse the query, call `services::diagnostics`, render.
//! Messages and stacks are untrusted and only ever rendered escaped.

use super::{
    AnalyticsAccess, PageContext, Viewer, checked, csv_href, csv_table, json_if_wanted, meta_json,
    page_context, query_string, script_json, span_of, wants_csv, wants_json,
};
use crate::http::session::CsrfForm;
use crate::{
    domain::{
        analytics::{ErrorFilters, FILTER_BROWSERS, KeyCount},
        error_groups::{GroupState, ShownState, StateFilter},
        error_signature::is_signature_key,
        params::{BadParam, View},
    },
    error::AppError,
    services::diagnostics::{self, ErrorDetailView, ErrorGroupView, ErrorsView},
    state::AppState,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::{FromRequest, Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/errors", get(list_errors))
        .route("/errors/{fingerprint}", get(show_error))
        .route(
            "/errors/groups/{signature}/state",
            axum::routing::post(set_group_state),
        )
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
    /// Whether the viewer may change group states (members with write rights).
    can_triage: bool,
    /// The page's query without `signature` (the chip's remove link).
    without_signature: String,
    /// The page's path and query, where a state form returns.
    here: String,
    /// The state filter's links.
    tabs: Vec<StateTab>,
}

/// One link of the state filter.
struct StateTab {
    value: &'static str,
    label: &'static str,
    href: String,
    count: Option<u64>,
    current: bool,
}

impl ErrorsPage {
    /// The list filtered by one group (the row's link), other filters kept.
    fn group_href(&self, signature: &str) -> String {
        let sep = if self.without_signature.is_empty() {
            "?"
        } else {
            "&"
        };
        format!(
            "{}/errors{}{sep}signature={signature}",
            self.ctx.base, self.without_signature
        )
    }

    /// (state, label) of the forms a group's row offers.
    fn actions(&self, g: &ErrorGroupView) -> Vec<(&'static str, &'static str)> {
        match g.state {
            ShownState::Open | ShownState::Regressed => {
                vec![("resolved", "Resolve"), ("ignored", "Ignore")]
            }
            ShownState::Resolved => vec![("open", "Reopen"), ("ignored", "Ignore")],
            ShownState::Ignored => vec![("open", "Reopen"), ("resolved", "Resolve")],
        }
    }

    /// A message cut for a button's accessible name.
    fn short(&self, message: &str) -> String {
        let mut s: String = message.chars().take(60).collect();
        if s.len() < message.len() {
            s.push('…');
        }
        s
    }
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
    let span = span_of(&query, state.dashboards.now_ms())?;
    let filters = ErrorFilters::from_params(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let state_filter = query
        .iter()
        .rev()
        .find(|(k, v)| k == "state" && !v.trim().is_empty())
        .and_then(|(_, v)| StateFilter::parse(v.trim()))
        .unwrap_or_default();
    let view = diagnostics::errors(
        &state.dashboards,
        &state.stores,
        access.project.id,
        span,
        filters,
        state_filter,
    )
    .await?;
    if wants_csv(&query) {
        let rows = view.error_groups.iter().map(|g| {
            let keys = |v: &[KeyCount]| {
                v.iter()
                    .map(|k| format!("{} ({})", k.key, k.count))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let grp = &g.group;
            vec![
                grp.message.clone(),
                grp.count.to_string(),
                g.state.as_str().to_string(),
                grp.visitors.to_string(),
                grp.first_seen.clone(),
                grp.last_seen.clone(),
                keys(&grp.pages),
                keys(&grp.browsers),
                grp.error_type.clone().unwrap_or_default(),
                grp.frame.clone().unwrap_or_default(),
                grp.signature.clone(),
                grp.fingerprint.clone(),
            ]
        });
        let header = [
            "Message",
            "Count",
            "State",
            "Visitors",
            "First seen",
            "Last seen",
            "Pages",
            "Browsers",
            "Type",
            "Top frame",
            "Signature",
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
    let keep = |drop: &[&str]| {
        let pairs: Vec<(&str, String)> = query
            .iter()
            .filter(|(k, v)| !drop.contains(&k.as_str()) && k != "format" && !v.trim().is_empty())
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        query_string(&pairs)
    };
    let here = format!("{}/errors{}", access.base, keep(&[]));
    let without_state = keep(&["state"]);
    let counts = &view.state_counts;
    let tabs = [
        ("open", "Open", Some(counts.open)),
        ("resolved", "Resolved", Some(counts.resolved)),
        ("ignored", "Ignored", Some(counts.ignored)),
        ("all", "All", None),
    ]
    .into_iter()
    .map(|(value, label, count)| StateTab {
        value,
        label,
        count,
        current: view.state_filter.as_str() == value,
        href: format!(
            "{}/errors{}{}state={value}",
            access.base,
            without_state,
            if without_state.is_empty() { "?" } else { "&" }
        ),
    })
    .collect();
    let mut ctx = access.page("errors", span).with_query(&query);
    // The group goes back to the dashboard with the section link, as it came.
    ctx.carried.signature = view.filters.signature.clone();
    let page = ErrorsPage {
        tabs,
        can_triage: can_triage(&access),
        without_signature: keep(&["signature"]),
        here,
        ctx,
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
    let span = span_of(&query, state.dashboards.now_ms())?;
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

/// Members with write rights (owner, admin, member) change group states; viewers and public
/// links only read.
fn can_triage(access: &AnalyticsAccess) -> bool {
    use crate::domain::records::OrgRole;
    matches!(
        &access.viewer,
        Viewer::Member {
            role: OrgRole::Owner | OrgRole::Admin | OrgRole::Member,
            ..
        }
    )
}

/// `POST {base}/errors/groups/{signature}/state` (form: `_csrf`, `state` = `open`, `resolved`
/// or `ignored`, optional `back`, a same-origin path to return to): sets the group's state.
/// Browsers are sent back (303); JSON-only clients get `{success, signature, state}`. Public
/// links and viewers get 403, an unknown state or a malformed signature 400.
async fn set_group_state(
    State(state): State<AppState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Result<Response, AppError> {
    if !can_triage(&access) {
        return Err(AppError::Forbidden(
            "Your role does not allow changing error groups; they are read-only here.".into(),
        ));
    }
    let Viewer::Member { auth, .. } = &access.viewer else {
        return Err(AppError::Forbidden(
            "Sign in to change error groups.".into(),
        ));
    };
    let form = match CsrfForm::from_request(request, &state).await {
        Ok(form) => form,
        Err(rejection) => return Ok(rejection),
    };
    let signature = params.get("signature").map(String::as_str).unwrap_or("");
    if !is_signature_key(signature) {
        return Err(AppError::BadParameter(BadParam {
            name: "signature".into(),
            problem: "unknown error group: a signature is 16 hexadecimal digits".into(),
            code: "BAD_PARAMETER",
        }));
    }
    let Some(new_state) = form.get("state").and_then(GroupState::parse) else {
        return Err(AppError::BadParameter(BadParam {
            name: "state".into(),
            problem: "expected open, resolved or ignored".into(),
            code: "BAD_PARAMETER",
        }));
    };
    let record = diagnostics::set_group_state(
        &state.stores,
        &access.project,
        signature,
        new_state,
        auth.user.id,
    )
    .await?;
    if wants_json(&headers) {
        return Ok(Json(json!({
            "success": true,
            "signature": record.signature,
            "state": record.state.as_str(),
        }))
        .into_response());
    }
    let fallback = format!("{}/errors", access.base);
    let back = form
        .get("back")
        .filter(|b| b.starts_with(&format!("{fallback}?")) || *b == fallback)
        .map(|b| crate::domain::redirect::redirect_target(Some(b), &fallback))
        .unwrap_or(fallback);
    Ok(Redirect::to(&back).into_response())
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
