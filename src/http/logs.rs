//! The log viewers (reference §5.9): `/admin/logs` (platform admins, every entry) and
//! `/org/logs` (owners of the current organization, only its projects' entries and its own),
//! with 1.x's filters and paging. HTML for browsers, JSON
//! `{entries,total,page,limit,pages}` for JSON clients.

use super::{admin::AdminUser, analytics::wants_json, session::AuthUser, views::Shell};
use crate::{
    domain::audit::{LogPage, LogQuery, OrgScope, RawLog, codes},
    error::AppError,
    services::audit,
    state::AppState,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/logs", get(admin_logs))
        .route("/org/logs", get(org_logs))
}

fn pairs(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn admin_logs(
    State(stores): State<crate::store::Stores>,
    AdminUser(auth): AdminUser,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let pairs = pairs(raw);
    let query = LogQuery::from_params(&pairs)?;
    let page = audit::query(&stores, &query).await?;
    respond(
        &auth,
        &headers,
        "/admin/logs",
        "All projects",
        &pairs,
        &query,
        page,
    )
}

async fn org_logs(
    State(stores): State<crate::store::Stores>,
    auth: AuthUser,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.clone();
    let pairs = pairs(raw);
    let mut query = LogQuery::from_params(&pairs)?;
    let projects = stores.projects.projects_of_org(org.id).await?;
    query.scope = Some(OrgScope {
        org_id: org.id.to_hex(),
        project_ids: projects.iter().map(|p| p.id.to_hex()).collect(),
    });
    let page = audit::query(&stores, &query).await?;
    respond(
        &auth,
        &headers,
        "/org/logs",
        &org.name,
        &pairs,
        &query,
        page,
    )
}

struct Row {
    time: String,
    kind: &'static str,
    what: String,
    detail: String,
    user: String,
    project: String,
    request: String,
    status: String,
    ip: String,
}

impl Row {
    fn of(l: &RawLog) -> Self {
        let iso = crate::domain::timestamp::to_iso(l.ts);
        Self {
            time: format!("{} {}", &iso[..10], &iso[11..19]),
            kind: l.kind.as_str(),
            what: l.action_code.clone().unwrap_or_else(|| "error".into()),
            detail: l.error_message.clone().unwrap_or_default(),
            user: l
                .email
                .clone()
                .or_else(|| l.user_id.clone())
                .unwrap_or_default(),
            project: l.project_id.clone().unwrap_or_default(),
            request: match (&l.method, &l.path) {
                (Some(m), Some(p)) => format!("{m} {p}"),
                _ => String::new(),
            },
            status: l.status.map(|s| s.to_string()).unwrap_or_default(),
            ip: l.ip.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "logs/logs.html")]
struct LogsPage {
    shell: Shell,
    path: &'static str,
    scope: String,
    codes: &'static [&'static str],
    f: Filters,
    rows: Vec<Row>,
    total: u64,
    page: u32,
    pages: u64,
    prev: Option<String>,
    next: Option<String>,
}

/// The submitted filter values, to fill the form again.
#[derive(Default)]
struct Filters {
    kind: String,
    action_code: String,
    user_id: String,
    email: String,
    project_id: String,
    contains: String,
    from: String,
    to: String,
    limit: u32,
}

fn log_json(l: &RawLog) -> serde_json::Value {
    json!({
        "id": l.id.to_hex(),
        "ts": crate::domain::timestamp::to_iso(l.ts),
        "kind": l.kind.as_str(),
        "actionCode": l.action_code,
        "errorMessage": l.error_message,
        "errorStack": l.error_stack,
        "userId": l.user_id,
        "email": l.email,
        "projectId": l.project_id,
        "orgId": l.org_id,
        "method": l.method,
        "path": l.path,
        "status": l.status,
        "ip": l.ip,
    })
}

/// The query string of `pairs` with `page` replaced.
fn page_link(path: &str, pairs: &[(String, String)], page: u32) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, v)| k != "page" && !v.is_empty()) {
        s.append_pair(k, v);
    }
    s.append_pair("page", &page.to_string());
    format!("{path}?{}", s.finish())
}

fn respond(
    auth: &AuthUser,
    headers: &HeaderMap,
    path: &'static str,
    scope: &str,
    pairs: &[(String, String)],
    query: &LogQuery,
    page: LogPage,
) -> Result<Response, AppError> {
    let pages = page.total.div_ceil(u64::from(query.limit)).max(1);
    if wants_json(headers) {
        return Ok(Json(json!({
            "entries": page.entries.iter().map(log_json).collect::<Vec<_>>(),
            "total": page.total,
            "page": query.page,
            "limit": query.limit,
            "pages": pages,
        }))
        .into_response());
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    Ok(LogsPage {
        shell: Shell::of(auth),
        path,
        scope: scope.to_string(),
        codes: codes::ALL,
        f: Filters {
            kind: get("kind"),
            action_code: get("actionCode"),
            user_id: get("userId"),
            email: get("email"),
            project_id: get("projectId"),
            contains: get("contains"),
            from: get("from"),
            to: get("to"),
            limit: query.limit,
        },
        rows: page.entries.iter().map(Row::of).collect(),
        total: page.total,
        page: query.page,
        pages,
        prev: (query.page > 1).then(|| page_link(path, pairs, query.page - 1)),
        next: (u64::from(query.page) < pages).then(|| page_link(path, pairs, query.page + 1)),
    }
    .into_response())
}
