//! The read-only analytics of one project: dashboard, page views, events, errors, performance.
//! The same routes are mounted twice: under `/projects/{id}` for signed-in members (session
//! area) and under `/p/{id}/{token}` (and `/docs/{id}/{token}`) for public links. Handlers take
//! an [`AnalyticsAccess`], which checks either the member or the link, and build every link from
//! its `base` so a public viewer never leaves the public prefix.

mod dashboard;
mod errors;
mod events;
mod pageviews;
mod performance;
mod realtime;

use super::{projects::ProjectAccess, session::AuthUser, views::Shell};
use crate::{
    domain::{
        analytics::{DayRange, Span, Timeframe, utc_day},
        ids::DocId,
        params::{BadParam, View},
        segment::SegmentFilters,
        timestamp::now_ms,
    },
    error::AppError,
    services::{dashboard::DashboardFilters, public_links},
    state::AppState,
    store::{Project, Stores},
};
use axum::{
    Json, Router,
    extract::{FromRequestParts, OriginalUri, Path},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Response},
};
use std::collections::HashMap;

/// The analytics routes, relative to the project prefix (`/projects/{id}` or `/p/{id}/{token}`).
/// Each view lives in its own submodule with its own `routes()`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(dashboard::routes())
        .merge(errors::routes())
        .merge(performance::routes())
        .merge(pageviews::routes())
        .merge(events::routes())
        .merge(realtime::routes())
}

/// Who is looking at a project's analytics.
pub enum Viewer {
    /// A signed-in member of the project's organization (or a platform admin), with their role.
    Member {
        auth: Box<AuthUser>,
        role: crate::domain::records::OrgRole,
    },
    /// A visitor holding a valid public link: read-only, no account.
    Public,
}

/// A project whose analytics the requester may read, and the URL prefix its pages live under.
pub struct AnalyticsAccess {
    pub project: Project,
    pub viewer: Viewer,
    /// `/projects/{id}` for members, `/p/{id}/{token}` (or `/docs/…`) for public links; no
    /// trailing slash.
    pub base: String,
    /// (id, name) of the other projects of the organization, for the project switcher
    /// (members only).
    pub siblings: Vec<(String, String)>,
}

impl AnalyticsAccess {
    /// The navigation shell: the member's, or the minimal read-only one.
    pub fn shell(&self) -> Shell {
        match &self.viewer {
            Viewer::Member { auth, .. } => Shell::of(auth),
            Viewer::Public => Shell::public(),
        }
    }

    /// Whether the viewer may open settings (owner or admin members).
    pub fn can_edit(&self) -> bool {
        use crate::domain::records::OrgRole;
        matches!(
            &self.viewer,
            Viewer::Member {
                role: OrgRole::Owner | OrgRole::Admin,
                ..
            }
        )
    }

    pub fn is_public(&self) -> bool {
        matches!(self.viewer, Viewer::Public)
    }
}

impl FromRequestParts<AppState> for AnalyticsAccess {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let id = params.get("id").cloned().unwrap_or_default();
        if let Some(token) = params.get("token") {
            // `parts.uri` has the nest prefix stripped; the original URI still has it.
            let original = OriginalUri::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
            let prefix = if original.path().starts_with("/docs/") {
                "/docs"
            } else {
                "/p"
            };
            let doc_id = DocId::parse(&id)
                .ok_or(AppError::NotFound)
                .map_err(IntoResponse::into_response)?;
            let project = public_links::verify(
                &state.stores,
                state.config.public_link_pepper.expose(),
                doc_id,
                token,
            )
            .await
            .map_err(|e| AppError::from(e).into_response())?;
            return Ok(Self {
                base: format!("{prefix}/{id}/{token}"),
                project,
                viewer: Viewer::Public,
                siblings: Vec::new(),
            });
        }
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let access = ProjectAccess::check(&state.stores, &auth, &id)
            .await
            .map_err(IntoResponse::into_response)?;
        let siblings = sibling_projects(&state.stores, &access.project)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            base: format!("/projects/{id}"),
            siblings,
            project: access.project,
            viewer: Viewer::Member {
                auth: Box::new(auth),
                role: access.role,
            },
        })
    }
}

/// (id, name) of the other live projects of `project`'s organization, by name.
pub async fn sibling_projects(
    stores: &Stores,
    project: &Project,
) -> Result<Vec<(String, String)>, AppError> {
    let mut out: Vec<(String, String)> = (stores.projects)
        .projects_of_org(project.org_id)
        .await?
        .into_iter()
        .filter(|p| p.id != project.id)
        .map(|p| (p.id.to_hex(), p.name))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// SuperInsights 1.x content negotiation (reference §2.8): JSON when the client does not accept
/// HTML but accepts JSON (the `si` CLI sends `Accept: application/json`); browsers and `*/*` get
/// HTML.
pub fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !accept.contains("text/html") && !accept.contains("*/*") && accept.contains("application/json")
}

/// The frame every analytics page shares: navigation shell, project, link prefix, active
/// section, settings link and timeframe selector. Page structs embed it as `ctx` and deref to it
/// ([`page_context!`]), so the templates (`app.html`, `projects/subnav.html`) keep reading
/// `shell`, `project`, `base`, … directly.
pub struct PageContext {
    pub shell: Shell,
    pub project: Project,
    pub base: String,
    pub section: &'static str,
    pub can_edit: bool,
    pub timeframe: &'static str,
    /// The custom range of days replacing the timeframe, if any (`from`, `to`).
    pub days: Option<DayRange>,
    /// (value, label) of the timeframe selector.
    pub timeframes: Vec<(&'static str, &'static str)>,
    /// The filters the page is under, carried by the section links to the pages they apply to.
    pub carried: DashboardFilters,
    /// (id, name) of the organization's other projects (the switcher; empty for public links).
    pub siblings: Vec<(String, String)>,
    /// The page's query but its span and paging ([`PageContext::with_query`]): what the date
    /// picker keeps when it changes the range.
    pub kept: Vec<(String, String)>,
}

impl PageContext {
    /// The project switcher's entries.
    pub fn siblings(&self) -> &[(String, String)] {
        &self.siblings
    }

    /// Keeps the page's filters (its `query` but span, paging and format) for the date picker.
    pub fn with_query(mut self, query: &[(String, String)]) -> Self {
        const SPAN: [&str; 6] = ["timeframe", "from", "to", "format", "table", "recentPage"];
        self.kept = (query.iter())
            .filter(|(k, v)| !SPAN.contains(&k.as_str()) && !v.trim().is_empty())
            .cloned()
            .collect();
        self
    }

    /// `from` and `to` of the custom range as `YYYY-MM-DD` (both empty without one).
    pub fn range_dates(&self) -> (String, String) {
        self.days.map(DayRange::dates).unwrap_or_default()
    }

    /// Today (UTC), the date pickers' latest day.
    pub fn today(&self) -> String {
        utc_day(now_ms())
    }

    /// The page's span as URL parameters: `timeframe`, and `from`/`to` with a custom range.
    pub fn span_params(&self) -> Vec<(&'static str, String)> {
        Span {
            timeframe: Timeframe::parse(Some(self.timeframe)),
            days: self.days,
        }
        .to_params()
    }

    /// `?timeframe=…` plus the custom range, for links that keep the page's span only.
    pub fn span_query(&self) -> String {
        query_string(&self.span_params())
    }

    /// The query a section link carries: the timeframe, the custom range and the filters that
    /// apply to that section (page-view fields to the page views, the event name to the
    /// events, the error group to the errors; all to the dashboard); empty when the page is
    /// under neither range nor filter.
    pub fn query_for(&self, slug: &str) -> String {
        if self.carried.is_empty() && self.days.is_none() {
            return String::new();
        }
        let params = self.carried.to_params();
        let span = self.span_params();
        let spanned = span.len();
        let kept: Vec<(&str, String)> = span
            .into_iter()
            .chain(params.into_iter().filter(|(name, _)| match slug {
                "dashboard" => true,
                "pageviews" => !["eventName", "signature"].contains(name),
                "events" => *name == "eventName",
                "errors" => *name == "signature",
                _ => false,
            }))
            .collect();
        if kept.len() == 1 && spanned == 1 {
            return String::new();
        }
        query_string(&kept)
    }
}

impl AnalyticsAccess {
    /// The page frame of `section` for this viewer, with the full timeframe selector.
    pub fn page(&self, section: &'static str, span: impl Into<Span>) -> PageContext {
        let Span { timeframe, days } = span.into();
        PageContext {
            days,
            shell: self.shell(),
            project: self.project.clone(),
            base: self.base.clone(),
            section,
            can_edit: self.can_edit(),
            timeframe: timeframe.as_str(),
            timeframes: TIMEFRAMES.to_vec(),
            carried: DashboardFilters::default(),
            siblings: self.siblings.clone(),
            kept: Vec::new(),
        }
    }
}

/// Implements `Deref<Target = PageContext>` for page structs with a `ctx: PageContext` field.
macro_rules! page_context {
    ($($page:ty),+ $(,)?) => {$(
        impl std::ops::Deref for $page {
            type Target = $crate::http::analytics::PageContext;
            fn deref(&self) -> &Self::Target {
                &self.ctx
            }
        }
    )+};
}
use page_context;

/// Content negotiation for one view (reference §2.8): the view as JSON for clients that accept
/// only JSON, `None` when the HTML page should be rendered.
pub fn json_if_wanted(headers: &HeaderMap, view: &impl serde::Serialize) -> Option<Response> {
    wants_json(headers).then(|| Json(view).into_response())
}

/// Rejects a query parameter `view` does not take or cannot use (a 400 naming it).
pub fn checked(view: View, query: &[(String, String)]) -> Result<(), AppError> {
    Ok(view.check(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?)
}

/// The `timeframe` query parameter (the default timeframe when absent or empty; other values
/// are rejected by [`checked`] first).
pub fn timeframe_of(query: &[(String, String)]) -> Timeframe {
    Timeframe::parse(
        query
            .iter()
            .find(|(k, _)| k == "timeframe")
            .map(|(_, v)| v.as_str()),
    )
}

/// The `timeframe` and, when `from`/`to` are given, the custom range of the query: a 400
/// `INVALID_DATE_RANGE` naming the parameter when the range makes no sense (reversed,
/// half-given, not dates, in the future, before 2000, longer than three years); "the future"
/// is after `now` (epoch ms, the views' clock).
pub fn span_of(query: &[(String, String)], now: i64) -> Result<Span, AppError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let days = DayRange::parse(get("from"), get("to"), now).map_err(BadParam::from)?;
    Ok(Span {
        timeframe: timeframe_of(query),
        days,
    })
}

/// `?a=b&…` from pairs, form-encoded (empty for none).
pub fn query_string<K: AsRef<str>>(pairs: &[(K, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k.as_ref(), v);
    }
    format!("?{}", s.finish())
}

/// The segment's metadata as JSON for a form field (empty when there is none).
pub fn meta_json(segment: &SegmentFilters) -> String {
    if segment.meta.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&segment.meta).unwrap_or_default()
    }
}

/// The segment's first metadata pair, for the single key/value form fields (empty when none).
pub fn first_meta(segment: &SegmentFilters) -> (String, String) {
    segment
        .meta
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap_or_default()
}

/// The timeframe selector's (value, label) pairs.
pub const TIMEFRAMES: [(&str, &str); 10] = [
    ("5m", "Last 5 minutes"),
    ("30m", "Last 30 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("12h", "Last 12 hours"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("3m", "Last 90 days"),
    ("1y", "This year"),
];

/// JSON that is safe inside a `<script>` element (no `</script>`, no HTML-significant characters).
pub fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A CSV download: `text/csv`, an attachment named after `name` (its safe characters).
pub fn csv_response(name: &str, body: String) -> Response {
    let disposition = format!(
        "attachment; filename=\"{}\"",
        crate::domain::csv::file_name(name)
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// True when the query asks for CSV (`format=csv`, checked first).
pub fn wants_csv(query: &[(String, String)]) -> bool {
    query.iter().any(|(k, v)| k == "format" && v == "csv")
}

/// One table as a CSV download named `{project}-{timeframe}-{table}.csv` (`{from}-{to}` in
/// place of the timeframe for a custom range).
pub fn csv_table(
    access: &AnalyticsAccess,
    span: impl Into<Span>,
    table: &str,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Response {
    let mut out = crate::domain::csv::Writer::new(header);
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.row(&cells);
    }
    let span: Span = span.into();
    let period = match span.days.map(DayRange::dates) {
        Some((from, to)) => format!("{from}-{to}"),
        None => span.timeframe.as_str().to_string(),
    };
    csv_response(
        &format!("{}-{period}-{table}.csv", access.project.name),
        out.finish(),
    )
}

/// An optional number as a CSV cell (empty when missing).
pub fn cell(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// `{base}/{view}` with the page's query and `format=csv`.
pub fn csv_href(base: &str, view: &str, query: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = query
        .iter()
        .filter(|(k, v)| k != "format" && !v.trim().is_empty())
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    pairs.push(("format", "csv".into()));
    format!("{base}/{view}{}", query_string(&pairs))
}
